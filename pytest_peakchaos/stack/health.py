"""Harness health, kept apart from the verdict: is the test rig itself (Toxiproxy, the links) sound?

* :func:`probe_links` runs at stack start: a TCP connection through each link's proxy must reach
  something that listens on the link's port; else a :class:`StackError` naming the service, the
  port and the ports the service does listen on.
* :func:`harness_problem` says whether the Toxiproxy container still runs and answers; the
  ``peakchaos`` fixture calls it after (or when) an experiment failed, so that a dead Toxiproxy is
  a :class:`HarnessError` naming the container, its exit code and last log lines, never a
  graceful / not graceful verdict on the shop.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from .base import StackError

if TYPE_CHECKING:
    from .base import Stack

__all__ = ["HarnessError", "probe_links", "harness_problem", "listening_ports"]


class HarnessError(StackError):
    """The test harness broke (not the system under test): no verdict can be given."""


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


def harness_problem(stack: Stack) -> str | None:
    """None when Toxiproxy runs and answers; else what is wrong with it (for a HarnessError)."""
    containers = getattr(stack, "containers", {})
    container = containers.get("toxiproxy")
    if container is not None:
        try:
            container.reload()
            state = container.attrs.get("State", {})
        except Exception as exc:  # noqa: BLE001
            return f"the Toxiproxy container {container.name} is gone ({exc})"
        if state.get("Status") != "running":
            try:
                tail = container.logs(tail=15).decode(errors="replace").strip()
            except Exception as exc:  # noqa: BLE001
                tail = f"<no logs: {exc}>"
            return (
                f"the Toxiproxy container {container.name} is {state.get('Status')} "
                f"(exit code {state.get('ExitCode')}{', OOM-killed' if state.get('OOMKilled') else ''}); "
                f"last log lines:\n{tail or '<empty>'}"
            )
    try:
        stack.toxiproxy.proxies(timeout=3.0)
    except Exception as exc:  # noqa: BLE001
        return f"Toxiproxy does not answer: {exc}"
    return None
