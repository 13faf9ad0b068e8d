"""Harness health, kept apart from the verdict: is the test rig itself (Toxiproxy, the links) sound?

* :func:`probe_links` runs at stack start: a TCP connection through each link's proxy must reach
  something that listens on the link's port; else a :class:`StackError` naming the service, the
  port and the ports the service does listen on.
* :func:`harness_problem` says whether the Docker engine still answers and the Toxiproxy container
  still runs and answers; the ``peakchaos`` fixture calls it after (or when) an experiment failed,
  so that a dead Toxiproxy is a :class:`HarnessError` naming the container, its exit code and last
  log lines, and an unreachable engine one naming the engine (``DOCKER_HOST``), the last error and
  what is left behind; never a graceful / not graceful verdict on the shop.
* :class:`HarnessWatch` asks :func:`watch_problem` (engine, Toxiproxy's container) twice a second while an experiment's load runs
  and stops the load at the first problem (the experiment then raises :class:`HarnessError`).

Legacy services are *not* harness: a legacy that dies is what the shop must survive (a verdict).
"""

from __future__ import annotations

import os
import threading
import time
from typing import TYPE_CHECKING, Any

from .base import StackError

if TYPE_CHECKING:
    from .base import Stack

__all__ = ["HarnessError", "HarnessWatch", "engine_address", "engine_problem", "container_problem", "watch_problem", "probe_links", "harness_problem", "listening_ports"]


class HarnessError(StackError):
    """The test harness broke (not the system under test): no verdict can be given.

    ``problem`` is what broke (the Docker engine, Toxiproxy, a load worker), without the message's
    ``harness error (no verdict on the shop): `` prefix; ``message`` replaces the whole message."""

    PREFIX = "harness error (no verdict on the shop): "

    def __init__(self, problem: str, message: str | None = None) -> None:
        self.problem = problem
        super().__init__(self.PREFIX + problem if message is None else message)

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:  # pickled (a worker's error) as it was made
        return (type(self), (self.problem, str(self)))


def _through_proxy(host: str, port: int) -> bool:
    """Toxiproxy accepts at once, then dials the upstream and closes us when that fails: a
    connection that stays open (or gets data) reached a listener."""
    from .docker import _tcp_open

    return _tcp_open(host, port)


def listening_ports(container: Any) -> list[int]:
    """TCP ports the container listens on (from /proc/net/tcp{,6} inside it; [] when unknown)."""
    ports: set[int] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            code, out = container.exec_run(["cat", table], demux=False)
        except Exception:  # noqa: BLE001 - diagnostics only
            continue
        if code != 0 or not out:
            continue
        for line in out.decode(errors="replace").splitlines()[1:]:
            parts = line.split()
            if len(parts) > 3 and parts[3] == "0A":  # LISTEN
                ports.add(int(parts[1].rsplit(":", 1)[1], 16))
    return sorted(ports)


def probe_links(stack: Any, timeout_s: float = 3.0) -> None:
    """Every link reaches a listener on its port, or a StackError that says what listens instead."""
    for spec in stack.spec.links:
        link = stack.links.get(spec.name)
        if link is None:
            continue
        host, _, port = link.url.rpartition("//")[2].partition(":")
        deadline = time.monotonic() + timeout_s
        while not _through_proxy(host, int(port)):
            if time.monotonic() > deadline:
                container = getattr(stack, "containers", {}).get(spec.service)
                found = listening_ports(container) if container is not None else []
                listens = ", ".join(map(str, found)) if found else "nothing that could be read"
                raise StackError(
                    f"{stack.spec.path}: x-peakchaos.links[{spec.name}]: nothing answers on {spec.service}:{spec.port} "
                    f"through Toxiproxy; {spec.service} listens on {listens}. Fix the link's port"
                )
            time.sleep(0.2)


#: where docker.from_env() connects when DOCKER_HOST is not set
DEFAULT_ENGINE = "unix:///var/run/docker.sock"
#: how long one engine ping may take before the engine counts as unreachable
ENGINE_PING_TIMEOUT_S = 5.0


def engine_address() -> str:
    """The Docker engine the stack talks to, as the user configures it (``DOCKER_HOST``)."""
    host = os.environ.get("DOCKER_HOST")
    return f"DOCKER_HOST={host}" if host else f"{DEFAULT_ENGINE} (the default; DOCKER_HOST is not set)"


def _left_behind(stack: Any) -> str:
    names = [getattr(c, "name", "?") for c in getattr(stack, "containers", {}).values()]
    nets = [n for n in (getattr(stack, "network_name", None), getattr(stack, "private_network_name", None)) if n]
    parts = [f"{len(names)} container(s) ({', '.join(names) or 'none'})"]
    if nets:
        parts.append(f"network(s) {', '.join(nets)}")
    return (
        f"left behind (cannot be removed while the engine is unreachable): stack {stack.run_id}: "
        + "; ".join(parts)
        + f". Once the engine answers again, remove them with: peakchaos prune --run {stack.run_id} "
        "(a later session's sweep removes them too, once the run's lease has ended with its engine connection)"
    )


def engine_problem(stack: Any) -> str | None:
    """None when the stack's Docker engine answers a ping (or the stack has no engine); else what
    is wrong: the engine, the last error, what is left behind and how to prune it."""
    client = getattr(stack, "engine_client", None)
    if client is None:
        return None
    try:
        api = client.api
        api._result(api._get(api._url("/_ping"), timeout=ENGINE_PING_TIMEOUT_S))
    except Exception as exc:  # noqa: BLE001 - any failure to reach the engine is the problem
        return (
            f"the Docker engine at {engine_address()} does not answer (last error: {type(exc).__name__}: {exc}); "
            + _left_behind(stack)
        )
    return None


def container_problem(stack: Any) -> str | None:
    """None when the stack's Toxiproxy container runs (or the stack has none); else its state,
    exit code and last log lines."""
    container = getattr(stack, "containers", {}).get("toxiproxy")
    if container is None:
        return None
    try:
        container.reload()
        state = container.attrs.get("State", {})
    except Exception as exc:  # noqa: BLE001
        return f"the Toxiproxy container {container.name} is gone ({exc})"
    if state.get("Status") == "running":
        return None
    try:
        tail = container.logs(tail=15).decode(errors="replace").strip()
    except Exception as exc:  # noqa: BLE001
        tail = f"<no logs: {exc}>"
    return (
        f"the Toxiproxy container {container.name} is {state.get('Status')} "
        f"(exit code {state.get('ExitCode')}{', OOM-killed' if state.get('OOMKilled') else ''}); "
        f"last log lines:\n{tail or '<empty>'}"
    )


def watch_problem(stack: Any) -> str | None:
    """What :class:`HarnessWatch` asks during a run: the engine answers and Toxiproxy's container
    runs (not its API: a slow answer under load is no reason to stop a run)."""
    return engine_problem(stack) or container_problem(stack)


def harness_problem(stack: Stack) -> str | None:
    """None when the engine and Toxiproxy run and answer; else what is wrong (for a HarnessError)."""
    problem = watch_problem(stack)
    if problem is not None:
        return problem
    try:
        stack.toxiproxy.proxies(timeout=3.0)
    except Exception as exc:  # noqa: BLE001
        return f"Toxiproxy does not answer: {exc}"
    return None


class HarnessWatch:
    """While an experiment's load runs: :func:`watch_problem` every ``every_s``; at the first
    problem ``problem`` is set and ``on_problem`` called (the experiment stops its load with it)."""

    def __init__(self, stack: Any, on_problem: Any, every_s: float = 0.5) -> None:
        self.stack = stack
        self.on_problem = on_problem
        self.every_s = every_s
        self.problem: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="peakchaos-harness-watch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.ident is not None:
            self._thread.join(2 * ENGINE_PING_TIMEOUT_S + 5.0)

    def _run(self) -> None:
        failed = 0
        while not self._stop.wait(self.every_s):
            try:
                problem = watch_problem(self.stack)
            except Exception as exc:  # noqa: BLE001 - a broken check is itself a harness problem
                problem = f"the harness check failed: {type(exc).__name__}: {exc}"
            failed = failed + 1 if problem is not None else 0
            # twice in a row (half a second apart): one slow answer from a busy engine is not a failure
            if failed >= 2 and not self._stop.is_set():
                self.problem = problem
                self.on_problem(problem)
                return
