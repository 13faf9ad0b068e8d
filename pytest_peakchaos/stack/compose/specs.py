"""The frozen result of reading a compose file: what every backend starts."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Toxiproxy listen port of the first link; link ``i`` defaults to ``DEFAULT_LISTEN_PORT + i``.
DEFAULT_LISTEN_PORT = 8666
#: Healthcheck defaults. ``interval`` is peakchaos' own (compose/Docker use 30s, far too slow for a
#: test that waits for a stack); the others are the ones a test stack usually needs.
DEFAULT_INTERVAL_S = 1.0
DEFAULT_TIMEOUT_S = 5.0
DEFAULT_RETRIES = 30
DEFAULT_START_PERIOD_S = 0.0


@dataclass(frozen=True)
class BuildSpec:
    context: Path  # absolute
    dockerfile: str
    args: dict[str, str]
    target: str | None = None  # a multi-stage build's stage


@dataclass(frozen=True)
class HealthcheckSpec:
    test: list[str]  # exec form for Docker: ["CMD", ...] or ["CMD-SHELL", "cmd"]
    interval_s: float
    timeout_s: float
    retries: int
    start_period_s: float


@dataclass(frozen=True)
class PortSpec:
    container_port: int
    protocol: str  # "tcp" | "udp"
    host_port: int | None  # None: Docker picks a free port
    host_ip: str  # always "127.0.0.1"


@dataclass(frozen=True)
class VolumeMount:
    source: str | None  # a named volume declared under the top-level ``volumes``; None: anonymous
    target: str
    read_only: bool


@dataclass(frozen=True)
class FileMount:
    """A project file or folder (a bind mount, a file secret) copied into the container before it starts."""

    source: Path  # absolute, inside the project folder
    target: str
    read_only: bool
    what: str  # key path it came from, for messages


@dataclass(frozen=True)
class DependsOn:
    service: str
    condition: str  # "service_started" | "service_healthy" | "service_completed_successfully"


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    image: str | None
    build: BuildSpec | None
    command: list[str] | None
    entrypoint: list[str] | None
    environment: dict[str, str]
    ports: list[PortSpec]
    expose: list[int]
    depends_on: list[DependsOn]
    healthcheck: HealthcheckSpec | None
    cpus: float | None
    mem_limit_bytes: int | None
    user: str | None
    working_dir: str | None
    volumes: list[VolumeMount]
    tmpfs: list[str]
    files: list[FileMount] = field(default_factory=list)  # copied in before start (never bound)
    aliases: list[str] = field(default_factory=list)  # container_name, hostname, networks.*.aliases
    hostname: str | None = None
    runtime: dict[str, Any] = field(default_factory=dict)  # cap_drop, read_only, shm_size, init, ulimits, ...

    def container_ports(self) -> list[int]:
        """Container ports of ``ports`` then ``expose``, each once, in order."""
        seen: list[int] = []
        for port in [p.container_port for p in self.ports] + list(self.expose):
            if port not in seen:
                seen.append(port)
        return seen


@dataclass(frozen=True)
class LinkSpec:
    """One legacy port Toxiproxy sits on.

    Transparent (the default): Toxiproxy answers to the legacy service's names on ``listen_port``
    (= ``port``) and the real legacy is reachable only on a private network. With ``env`` set, the
    client's variable is also rewritten to point at Toxiproxy's alias and ``listen_port``.
    """

    name: str
    service: str  # the legacy service
    port: int  # legacy's port
    client: str  # the cloud service that calls it (given, or inferred: see link.py)
    env: str | None  # client's env var whose value contains "<service>:<port>" (rewrite mode)
    listen_port: int  # Toxiproxy's port for this link
    names: tuple[str, ...] = ()  # what Toxiproxy answers to on the run network (service, aliases)


@dataclass(frozen=True)
class LedgerSpec:
    """Where the system of record's orders are read after a run (see ``ledger_sources``).

    ``kind`` is ``http`` (GET ``path`` on ``service:port``, JSON list or ``{"orders": [...]}``),
    ``sql`` (``query`` run with ``psql`` inside ``service``, never through the proxy) or
    ``python`` (``callable`` = ``"module:function"``, called with the stack). ``key`` names the
    field that identifies an order (the idempotency key).
    """

    service: str | None
    port: int | None
    path: str | None
    kind: str = "http"
    key: str = "idempotency_key"
    query: str | None = None
    database: str | None = None
    user: str | None = None
    callable: str | None = None


@dataclass(frozen=True)
class StackSpec:
    path: Path  # the compose file, absolute
    project: str
    services: dict[str, ServiceSpec]  # file order
    volumes: list[str]
    links: list[LinkSpec]
    ledger: LedgerSpec | None
    notes: list[str] = field(default_factory=list)  # accepted-and-ignored keys, for the run header
    files: list[Path] = field(default_factory=list)  # the compose files merged, in order

    def legacy_services(self) -> list[str]:
        """Services behind a link: they live on the private network only Toxiproxy joins."""
        return list(dict.fromkeys(link.service for link in self.links))

    def start_order(self) -> list[str]:
        """Services in dependency order (``depends_on``, plus: a link's client after its service).

        Stable: among services whose dependencies have all started, the earliest in the file first.
        """
        deps = _dependency_names(self.services, self.links)
        order: list[str] = []
        placed: set[str] = set()
        remaining = list(self.services)
        while remaining:
            for name in remaining:
                if all(dep in placed for dep in deps[name]):
                    order.append(name)
                    placed.add(name)
                    remaining.remove(name)
                    break
            else:  # only reachable for specs built by hand; load_compose rejects cycles
                raise ValueError(f"dependency cycle among services: {', '.join(remaining)}")
        return order


def _dependency_names(services: Mapping[str, ServiceSpec], links: Sequence[LinkSpec]) -> dict[str, list[str]]:
    deps: dict[str, list[str]] = {name: [d.service for d in spec.depends_on] for name, spec in services.items()}
    for link in links:
        if link.client in deps and link.service not in deps[link.client]:
            deps[link.client].append(link.service)
    return deps

