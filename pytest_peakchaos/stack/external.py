"""The ``external`` backend: a stack that already runs (staging, or one the team's own tooling started).

A stack file (YAML) names the endpoints; nothing is started or removed. The team runs Toxiproxy in
front of each legacy system; the file names its API and the proxy of each link. Faults are Toxiproxy
faults only (latency, down, timeout, ...): capacity faults (``cpu()``, ``pause()``) act on a
container and are refused with a clear message. Whatever this run applied is reverted when the
run ends (and when the stack stops, on every exit path); toxics somebody else set are left alone.

File format (``docs/scale-out.md``)::

    kind: external                 # marks an external stack file
    name: staging                  # optional: shown in reports
    services:                      # name -> base URL reachable from the test host
      cloud: http://127.0.0.1:8080
      legacy: http://127.0.0.1:9000   # optional: legacy's /stats counter, the ledger
    toxiproxy: http://127.0.0.1:8474  # the Toxiproxy API
    links:
      legacy:                      # link name
        proxy: legacy              # the Toxiproxy proxy (default: the link's name)
        client: cloud              # the service the load goes to
        service: legacy            # optional: legacy's entry in services
    ledger:                        # optional: the system of record's orders
      service: legacy
      path: /orders
    allow_any_host: false          # true: hosts other than loopback are allowed (your own test hosts)
"""

from __future__ import annotations

import ipaddress
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .base import HttpLedger, Stack, StackError

if TYPE_CHECKING:
    from ..link import Link
    from ..toxiproxy import ToxiproxyClient

__all__ = ["ExternalSpec", "ExternalStack", "is_external_file", "load_external"]

KIND = "external"
_TOP_KEYS = ("kind", "name", "services", "toxiproxy", "links", "ledger", "allow_any_host")
_LINK_KEYS = ("proxy", "client", "service")
_LEDGER_KEYS = ("service", "path")


@dataclass(frozen=True)
class ExternalLink:
    """A link of an external stack (the fields experiments read, as in a compose ``LinkSpec``)."""

    name: str
    proxy: str
    client: str
    service: str | None = None
    port: int | None = None
    env: str = ""


@dataclass(frozen=True)
class ExternalSpec:
    path: Path
    project: str
    services: dict[str, str]  # name -> base URL
    toxiproxy: str
    links: list[ExternalLink]
    ledger: HttpLedger | None = None
    allow_any_host: bool = False
    backend: str = field(default=KIND)
    #: link name -> legacy container id on the local engine (xdist's shared mode: capacity faults work)
    capacity: dict[str, str] = field(default_factory=dict)
    #: the run id of the stack this spec describes, when peakchaos itself started it (xdist shared mode)
    shared_run_id: str | None = None


def _read_yaml(path: Path) -> Any:
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise StackError(f"{path}: cannot read the stack file: {exc}") from exc
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise StackError(f"{path}: not valid YAML: {exc}") from exc


def is_external_file(path: str | Path) -> bool:
    """Whether ``path`` is an external stack file (a YAML mapping with ``kind: external``)."""
    p = Path(path)
    if not p.is_file():
        return False
    try:
        data = _read_yaml(p)
    except StackError:
        return False
    return isinstance(data, dict) and data.get("kind") == KIND


def _check_url(problems: list[str], where: str, value: Any, allow_any_host: bool) -> str:
    if not isinstance(value, str) or not value:
        problems.append(f"{where}: expected a URL like http://127.0.0.1:8080, got {value!r}")
        return ""
    parts = urllib.parse.urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        problems.append(f"{where}: expected an http:// or https:// URL with a host, got {value!r}")
        return ""
    try:
        parts.port
    except ValueError:
        problems.append(f"{where}: the port of {value!r} is not a number")
        return ""
    host = parts.hostname
    if not allow_any_host and host != "localhost":
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            problems.append(
                f"{where}: {host!r} is not a loopback address; peakchaos sends load and faults to "
                "127.0.0.0/8, ::1 or localhost unless the file says `allow_any_host: true` "
                "(only for your own test hosts)"
            )
    return value.rstrip("/")


def _unknown(problems: list[str], where: str, data: Mapping[str, Any], valid: tuple[str, ...]) -> None:
    for key in data:
        if key not in valid:
            problems.append(f"{where}.{key}: unknown key; valid keys: {', '.join(valid)}")


def load_external(path: str | Path) -> ExternalSpec:
    """Parse and validate an external stack file; every problem of the file in one ``StackError``."""
    file = Path(path).resolve()
    data = _read_yaml(file)
    if not isinstance(data, dict):
        raise StackError(f"{file}: an external stack file is a mapping with kind: external, got {type(data).__name__}")
    problems: list[str] = []
    if data.get("kind") != KIND:
        problems.append(f"kind: must be {KIND!r} for an external stack file, got {data.get('kind')!r}")
    _unknown(problems, "(top level)", data, _TOP_KEYS)
    allow = data.get("allow_any_host", False)
    if not isinstance(allow, bool):
        problems.append(f"allow_any_host: expected true or false, got {allow!r}")
        allow = False
    name = data.get("name", file.stem)
    if not isinstance(name, str) or not name:
        problems.append(f"name: expected a non-empty string, got {name!r}")
        name = file.stem

    services: dict[str, str] = {}
    raw_services = data.get("services")
    if not isinstance(raw_services, dict) or not raw_services:
        problems.append("services: expected a mapping of service name -> base URL (e.g. cloud: http://127.0.0.1:8080)")
    else:
        for sname, url in raw_services.items():
            services[str(sname)] = _check_url(problems, f"services.{sname}", url, allow)

    toxi = _check_url(problems, "toxiproxy", data.get("toxiproxy"), allow) if "toxiproxy" in data else ""
    if "toxiproxy" not in data:
        problems.append("toxiproxy: missing; give the Toxiproxy API URL (e.g. http://127.0.0.1:8474)")

    links: list[ExternalLink] = []
    raw_links = data.get("links")
    if not isinstance(raw_links, dict) or not raw_links:
        problems.append("links: expected a mapping of link name -> {proxy, client, service}")
    else:
        for lname, raw in raw_links.items():
            where = f"links.{lname}"
            if raw is None:
                raw = {}
            if not isinstance(raw, dict):
                problems.append(f"{where}: expected a mapping with keys {', '.join(_LINK_KEYS)}, got {raw!r}")
                continue
            _unknown(problems, where, raw, _LINK_KEYS)
            proxy = raw.get("proxy", lname)
            client = raw.get("client")
            service = raw.get("service")
            if not isinstance(proxy, str) or not proxy:
                problems.append(f"{where}.proxy: expected the Toxiproxy proxy's name, got {proxy!r}")
            if not isinstance(client, str) or client not in services:
                problems.append(
                    f"{where}.client: expected the service the load goes to, one of: {', '.join(services) or '(none)'}; "
                    f"got {client!r}"
                )
            if service is not None and (not isinstance(service, str) or service not in services):
                problems.append(f"{where}.service: expected one of: {', '.join(services) or '(none)'}; got {service!r}")
            links.append(ExternalLink(name=str(lname), proxy=str(proxy), client=str(client), service=service))

    ledger = None
    raw_ledger = data.get("ledger")
    if raw_ledger is not None:
        if not isinstance(raw_ledger, dict):
            problems.append(f"ledger: expected a mapping with keys {', '.join(_LEDGER_KEYS)}, got {raw_ledger!r}")
        else:
            _unknown(problems, "ledger", raw_ledger, _LEDGER_KEYS)
            lsvc, lpath = raw_ledger.get("service"), raw_ledger.get("path", "/orders")
            if not isinstance(lsvc, str) or lsvc not in services:
                problems.append(f"ledger.service: expected one of: {', '.join(services) or '(none)'}; got {lsvc!r}")
            if not isinstance(lpath, str) or not lpath.startswith("/"):
                problems.append(f"ledger.path: expected a path starting with '/', got {lpath!r}")
            if not problems:
                ledger = HttpLedger(service=str(lsvc), path=str(lpath))
    if problems:
        raise StackError(f"{file}: {len(problems)} problem(s) in the external stack file:\n  " + "\n  ".join(problems))
    return ExternalSpec(
        path=file, project=name, services=services, toxiproxy=toxi, links=links, ledger=ledger, allow_any_host=allow
    )


class ExternalStack(Stack):
    """Endpoints that already run. ``start`` checks that Toxiproxy and every link's proxy answer;
    ``stop`` reverts what this run applied. Nothing is created or removed."""

    def __init__(self, spec: ExternalSpec, *, run_id: str | None = None, log: Callable[[str], None] | None = None) -> None:
        super().__init__()
        from ..load.engine import new_run_id

        self.spec = spec  # type: ignore[assignment]  # duck-typed like a compose StackSpec
        self.run_id = run_id or spec.shared_run_id or new_run_id()
        #: the Toxiproxy is peakchaos's own (xdist shared mode), so it runs with -proxy-metrics
        self.proxy_metrics = spec.shared_run_id is not None
        self._log = log or (lambda msg: None)
        self._toxiproxy: ToxiproxyClient | None = None
        self.started = False

    # -- life -------------------------------------------------------------------------------
    def start(self) -> None:
        if self.started:
            return
        from ..link import Link
        from ..toxiproxy import ToxiproxyClient, ToxiproxyError

        spec: ExternalSpec = self.spec  # type: ignore[assignment]
        client = ToxiproxyClient(spec.toxiproxy)
        try:
            client.wait_ready(timeout_s=10.0)
            proxies = client.proxies()
        except ToxiproxyError as exc:
            raise StackError(f"{spec.path}: toxiproxy: no Toxiproxy answers at {spec.toxiproxy}: {exc}") from exc
        missing = [lk for lk in spec.links if lk.proxy not in proxies]
        if missing:
            have = ", ".join(sorted(proxies)) or "(none)"
            raise StackError(
                f"{spec.path}: links: Toxiproxy at {spec.toxiproxy} has no proxy "
                + ", ".join(repr(lk.proxy) for lk in missing)
                + f"; its proxies: {have}"
            )
        host = urllib.parse.urlsplit(spec.toxiproxy).hostname or "127.0.0.1"
        capacities: dict[str, Any] = {}
        if spec.capacity:
            from ..throttle import DockerCapacity
            from .docker import docker_client

            engine = docker_client()
            capacities = {name: DockerCapacity(engine.containers.get(cid)) for name, cid in spec.capacity.items()}
        for lk in spec.links:
            handle = proxies[lk.proxy]
            if handle.toxics():
                self._log(
                    f"link {lk.name}: proxy {lk.proxy!r} already has toxics "
                    f"({', '.join(t.name for t in handle.toxics())}); they are not ours and are left alone"
                )
            self.links[lk.name] = Link(name=lk.name, proxy=handle, client=client, capacity=capacities.get(lk.name),
                                       url=f"http://{host}:{handle.listen_port}")
        self._toxiproxy = client
        self.started = True
        self._log(f"external stack {spec.project} ({spec.path}): {len(spec.links)} link(s); nothing started")

    def stop(self) -> None:
        """Revert every fault this run applied; nothing is removed."""
        errors: list[str] = []
        for link in self.links.values():
            try:
                link.close()
            except Exception as exc:  # noqa: BLE001 - every link gets its turn
                errors.append(f"link {link.name}: {exc}")
        self.started = False
        if errors:
            raise StackError("external stack: some faults could not be reverted: " + "; ".join(errors))

    # -- endpoints --------------------------------------------------------------------------
    @property
    def toxiproxy(self) -> ToxiproxyClient:
        if self._toxiproxy is None:
            raise StackError("the external stack is not started")
        return self._toxiproxy

    def endpoint(self, service: str, port: int | None = None) -> tuple[str, int]:
        url = self.url(service, port)
        parts = urllib.parse.urlsplit(url)
        return parts.hostname or "127.0.0.1", parts.port or (443 if parts.scheme == "https" else 80)

    def url(self, service: str, port: int | None = None) -> str:
        spec: ExternalSpec = self.spec  # type: ignore[assignment]
        try:
            return spec.services[service]
        except KeyError:
            raise StackError(f"no service {service!r} in {spec.path}; services: {', '.join(spec.services)}") from None

    def ledger(self, timeout_s: float = 10.0) -> list[dict[str, Any]]:
        import json
        import urllib.request

        spec: ExternalSpec = self.spec  # type: ignore[assignment]
        if spec.ledger is None:
            raise StackError(f"{spec.path}: ledger is not set; the stack has no ledger hook")
        url = self.url(spec.ledger.service) + spec.ledger.path
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:  # noqa: S310 - validated host
            body = json.loads(resp.read().decode())
        orders = body.get("orders", body) if isinstance(body, dict) else body
        if not isinstance(orders, list):
            raise StackError(f"ledger {url} answered {type(orders).__name__}, expected a list of orders")
        return orders

    def logs(self, tail: int = 200) -> dict[str, str]:
        return {}

    def describe(self) -> str:
        spec: ExternalSpec = self.spec  # type: ignore[assignment]
        lines = [f"peakchaos external stack {spec.project} ({spec.path}):"]
        lines += [f"  {name} -> {url}" for name, url in spec.services.items()]
        lines += [f"  link {link.name} (Toxiproxy proxy {link.proxy.name}) -> {link.url}" for link in self.links.values()]
        return "\n".join(lines)
