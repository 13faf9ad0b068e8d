"""What every stack backend offers: endpoints, links, the ledger, logs, a context-managed life."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..link import Link
    from ..toxiproxy import ToxiproxyClient
    from .compose import StackSpec


@dataclass(frozen=True)
class HttpLedger:
    """A ledger read over HTTP: GET ``path`` on ``service`` (the external and local backends)."""

    service: str
    path: str
    port: int | None = None


class StackError(RuntimeError):
    """A stack could not be started, reached or torn down. The message says what and how to fix it."""


class Stack(ABC):
    """A running system under test: services, a Toxiproxy on each legacy link, and their handles."""

    spec: StackSpec
    run_id: str

    def __init__(self) -> None:
        self.links: dict[str, Link] = {}
        self.captured_logs: dict[str, str] = {}

    # -- life -------------------------------------------------------------------------------
    @abstractmethod
    def start(self) -> None: ...

    @abstractmethod
    def stop(self) -> None: ...

    def rebuild(self) -> None:
        """Tear down and start again (the plugin does this once after a harness error)."""
        self.stop()
        self.start()

    def __enter__(self) -> Stack:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- endpoints --------------------------------------------------------------------------
    @abstractmethod
    def endpoint(self, service: str, port: int | None = None) -> tuple[str, int]:
        """``(host, port)`` on which the host reaches ``service``'s container ``port``."""

    def url(self, service: str, port: int | None = None) -> str:
        host, hport = self.endpoint(service, port)
        return f"http://{host}:{hport}"

    @property
    @abstractmethod
    def toxiproxy(self) -> ToxiproxyClient: ...

    def link(self, name: str | None = None) -> Link:
        """The link called ``name``; without a name, the only link (an error when there are several)."""
        if not self.links:
            raise StackError(
                f"{self.spec.path}: x-peakchaos.links: the stack declares no legacy link; add one "
                "(service, port, client, env) to inject faults"
            )
        if name is None:
            if len(self.links) > 1:
                raise StackError(f"the stack has several links; name one of: {', '.join(self.links)}")
            return next(iter(self.links.values()))
        try:
            return self.links[name]
        except KeyError:
            raise StackError(f"no link named {name!r}; links: {', '.join(self.links)}") from None

    # -- system of record -------------------------------------------------------------------
    def ledger(self, timeout_s: float = 10.0) -> list[dict[str, Any]]:
        """The orders in the system of record (``x-peakchaos.ledger``: HTTP, SQL or Python), read
        directly (never through Toxiproxy). See :mod:`.ledger`."""
        from .ledger import read_ledger

        ledger = self.spec.ledger
        if ledger is None:
            raise StackError(
                f"{self.spec.path}: x-peakchaos.ledger is not set; the stack has no ledger hook "
                "(add {service, port, path}, {service, sql} or {python: module:function})"
            )
        return read_ledger(self, ledger, timeout_s)

    def exec(self, service: str, argv: list[str], *, user: str | None = None, timeout_s: float = 10.0) -> str:
        """Run ``argv`` inside ``service``'s container; its standard output. Backends override it."""
        raise StackError(f"this stack backend cannot run commands inside {service}")

    # -- diagnostics ------------------------------------------------------------------------
    @abstractmethod
    def logs(self, tail: int = 200) -> dict[str, str]:
        """The last ``tail`` lines of every service's log (captured ones after stop)."""

    def describe(self) -> str:
        """How to reach the stack, for people (``--peakchaos-keep``)."""
        lines = [f"peakchaos stack {self.run_id} ({self.spec.path}):"]
        for name, svc in self.spec.services.items():
            for port in svc.container_ports():
                lines.append(f"  {name}:{port} -> {self.url(name, port)}")
        for link in self.links.values():
            lines.append(f"  link {link.name} (via Toxiproxy) -> {link.url}")
        return "\n".join(lines)
