"""pytest-xdist support: who owns the stack, how workers learn it, and who may fault a link when.

``--peakchaos-xdist`` (ini ``peakchaos_xdist``) chooses one of :data:`MODES`:

* ``per-worker`` (default): every worker starts, owns and tears down its own stack (run ids,
  containers, networks and ports are its own, so nothing collides); experiments are isolated.
* ``shared``: the controller starts one stack (lazily, when the first worker is set up) and owns its
  teardown; each worker is told the endpoints through ``pytest_configure_node`` and sees them as an
  external stack (capacity faults still act on the legacy container through the same engine).
  Tests that fault a link (the ``legacy_link`` / ``peakchaos`` fixtures) hold a cross-process lock
  of that link for the whole test, so two workers never fault one link at once; tests that only
  read the stack (``peakchaos_stack`` alone) run in parallel.

Workers send their experiments' results to the controller (``workeroutput``), which writes the one
report and prints the one summary. Importing this module imports nothing heavy.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from .session import PeakchaosSession
    from .stack.base import Stack

__all__ = ["MODES", "ControllerPlugin", "export_stack", "is_worker", "locked", "shared_spec"]

MODES = ("per-worker", "shared")
SHARED_KEY = "peakchaos_shared"
RESULTS_KEY = "peakchaos_results"
#: the worker's headroom searches (``HeadroomResult.to_dict`` entries, JSON) in its workeroutput
HEADROOM_KEY = "peakchaos_headroom"
LOCK_TIMEOUT_S = 1800.0


def is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def check_mode(value: object) -> str:
    mode = str(value or "per-worker").strip()
    if mode not in MODES:
        raise pytest.UsageError(f"--peakchaos-xdist / ini peakchaos_xdist: invalid value {value!r}; valid values: {', '.join(MODES)}")
    return mode


def export_stack(stack: Stack) -> dict[str, Any]:
    """What a worker needs to use the controller's running stack (JSON-able)."""
    services: dict[str, str] = {}
    for name in getattr(stack.spec, "services", {}):
        try:
            services[name] = stack.url(name)
        except Exception:  # noqa: BLE001 - a service that publishes no port is not reachable from the host
            continue
    links = []
    for spec_link in stack.spec.links:
        link = stack.link(spec_link.name)
        capacity = getattr(link.capacity, "container", None)
        links.append({
            "name": spec_link.name, "proxy": link.proxy.name, "client": spec_link.client,
            "service": spec_link.service if spec_link.service in services else None,
            "container": getattr(capacity, "id", None),
        })
    ledger = getattr(stack.spec, "ledger", None)
    return {
        "path": str(stack.spec.path), "project": stack.spec.project, "run_id": stack.run_id,
        "services": services, "toxiproxy": stack.toxiproxy.api_url, "links": links,
        "ledger": {"service": ledger.service, "path": ledger.path} if ledger is not None else None,
    }


def shared_spec(data: dict[str, Any]) -> Any:
    """The external-stack spec a worker builds from :func:`export_stack`'s data."""
    from .stack.base import HttpLedger
    from .stack.external import ExternalLink, ExternalSpec

    links = [ExternalLink(name=x["name"], proxy=x["proxy"], client=x["client"], service=x["service"]) for x in data["links"]]
    ledger = HttpLedger(**data["ledger"]) if data.get("ledger") else None
    return ExternalSpec(
        path=Path(data["path"]), project=data["project"], services=dict(data["services"]), toxiproxy=data["toxiproxy"],
        links=links, ledger=ledger, capacity={x["name"]: x["container"] for x in data["links"] if x.get("container")},
        shared_run_id=data["run_id"],
    )


def _lock_dir(config: pytest.Config) -> Path | None:
    workerinput = getattr(config, "workerinput", None)
    if not workerinput or SHARED_KEY not in workerinput:
        return None
    path = Path(tempfile.gettempdir()) / f"peakchaos-locks-{workerinput['testrunuid']}"
    path.mkdir(parents=True, exist_ok=True)
    return path


_LOCKS: dict[str, Any] = {}  # one FileLock per path and process: re-entrant (flock is per open file)


@contextmanager
def locked(session: PeakchaosSession | None, link: str) -> Iterator[None]:
    """Hold the cross-process lock of ``link`` (shared mode on a worker); a no-op elsewhere.
    Re-entrant within the process (a fixture and the experiment it runs may both take it)."""
    directory = getattr(session, "lock_dir", None)
    if directory is None:
        yield
        return
    from filelock import FileLock

    path = str(Path(directory) / f"link-{link}.lock")
    lock = _LOCKS.get(path)
    if lock is None:
        lock = _LOCKS[path] = FileLock(path, timeout=LOCK_TIMEOUT_S)
    with lock:
        yield


class ControllerPlugin:
    """Registered on the controller only: tells workers the mode (and, shared, the stack), and
    gathers their results."""

    def __init__(self, session: PeakchaosSession, mode: str) -> None:
        self.session = session
        self.mode = mode
        self._shared: str | None = None

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        if self.mode != "shared" or self.session.spec is None:
            return
        if self._shared is None:
            from .stack.base import StackError

            try:
                stack = self.session.get_stack()
                self._shared = json.dumps({"ok": export_stack(stack)})
            except StackError as exc:  # every worker's tests then fail with this reason
                self._shared = json.dumps({"error": str(exc)})
        node.workerinput[SHARED_KEY] = self._shared

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        out = getattr(node, "workeroutput", None) or {}
        raw = out.get(RESULTS_KEY)
        if raw:
            self.session.remote_results.extend(json.loads(raw))
        rooms = out.get(HEADROOM_KEY)
        if rooms:
            self.session.remote_headroom.extend(json.loads(rooms))


def configure_worker(config: pytest.Config, session: PeakchaosSession) -> None:
    """On a worker in shared mode: use the controller's stack instead of starting one."""
    from .stack.base import StackError

    raw = getattr(config, "workerinput", {}).get(SHARED_KEY)
    if not raw:
        return
    data = json.loads(raw)
    if "error" in data:
        session.start_error = StackError(f"the shared stack (started by the xdist controller) failed: {data['error']}")
        return
    session.spec = shared_spec(data["ok"])
    session.shared = True
    session.lock_dir = _lock_dir(config)
