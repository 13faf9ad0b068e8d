"""The ``local`` backend: services as plain subprocesses and a ``toxiproxy-server`` binary, no engine.

For machines where no container engine answers, and for stacks that are programs anyway (the
reference shop's apps are). A local stack file (YAML) names each service's command::

    kind: local
    name: shop-local
    services:
      legacy:
        command: ["{python}", "../fixtures/legacy/app.py"]   # argv, no shell
        environment: {PORT: "{port}", DB_PATH: "{tmp}/legacy.db"}
        health: /health                    # GET path that answers 200 once the service is up
      cloud:
        command: ["{python}", "../fixtures/cloud/app.py"]
        environment: {PORT: "{port}", LEGACY_URL: "http://{link:legacy}"}
        health: /health
    links:
      legacy: {service: legacy, client: cloud}
    ledger: {service: legacy, path: /orders}

Placeholders in ``command`` and ``environment``: ``{python}`` (the running interpreter), ``{port}``
(a free 127.0.0.1 port given to this service; it must listen there), ``{tmp}`` (the run's private
directory, removed at stop), ``{service:NAME}`` (``127.0.0.1:<port>`` of another service) and
``{link:NAME}`` (``127.0.0.1:<port>`` of the link's Toxiproxy listener: point the client at it).
Relative paths in ``command`` resolve against the stack file's folder. Services start in file order
(a link's legacy before its client), each waited for; ``stop`` reverts faults, terminates every
process (SIGTERM, then SIGKILL) and removes ``{tmp}``. Capacity faults (``cpu()``, ``pause()``) need
containers and are refused.

The Toxiproxy binary: ``$PEAKCHAOS_TOXIPROXY_SERVER``, else ``toxiproxy-server`` on ``PATH``.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from .base import HttpLedger, Stack, StackError

if TYPE_CHECKING:
    from ..toxiproxy import ToxiproxyClient

__all__ = ["LocalSpec", "LocalStack", "find_toxiproxy_server", "is_local_file", "load_local"]

KIND = "local"
LOOPBACK = "127.0.0.1"
_TOP_KEYS = ("kind", "name", "services", "links", "ledger")
_SERVICE_KEYS = ("command", "environment", "health", "startup_timeout")
_LINK_KEYS = ("service", "client")
_PLACEHOLDER = re.compile(r"\{(python|port|tmp|service:[A-Za-z0-9_.-]+|link:[A-Za-z0-9_.-]+)\}")


@dataclass(frozen=True)
class LocalService:
    name: str
    command: tuple[str, ...]
    environment: dict[str, str]
    health: str | None = "/health"
    startup_timeout_s: float = 30.0


@dataclass(frozen=True)
class LocalLink:
    name: str
    service: str
    client: str
    port: int | None = None
    env: str = ""


@dataclass(frozen=True)
class LocalSpec:
    path: Path
    project: str
    services: dict[str, LocalService]
    links: list[LocalLink]
    ledger: HttpLedger | None = None
    backend: str = field(default=KIND)


def is_local_file(path: str | Path) -> bool:
    from .external import _read_yaml

    p = Path(path)
    if not p.is_file():
        return False
    try:
        data = _read_yaml(p)
    except StackError:
        return False
    return isinstance(data, dict) and data.get("kind") == KIND


def load_local(path: str | Path) -> LocalSpec:
    """Parse and validate a local stack file; every problem in one ``StackError``."""
    from .external import _read_yaml, _unknown

    file = Path(path).resolve()
    data = _read_yaml(file)
    problems: list[str] = []
    if not isinstance(data, dict):
        raise StackError(f"{file}: a local stack file is a mapping with kind: local, got {type(data).__name__}")
    if data.get("kind") != KIND:
        problems.append(f"kind: must be {KIND!r} for a local stack file, got {data.get('kind')!r}")
    _unknown(problems, "(top level)", data, _TOP_KEYS)
    services: dict[str, LocalService] = {}
    raw_services = data.get("services")
    if not isinstance(raw_services, dict) or not raw_services:
        problems.append("services: expected a mapping of service name -> {command, environment, health}")
        raw_services = {}
    for sname, raw in raw_services.items():
        where = f"services.{sname}"
        if not isinstance(raw, dict):
            problems.append(f"{where}: expected a mapping with keys {', '.join(_SERVICE_KEYS)}")
            continue
        _unknown(problems, where, raw, _SERVICE_KEYS)
        cmd = raw.get("command")
        if not isinstance(cmd, list) or not cmd or not all(isinstance(c, (str, int, float)) for c in cmd):
            problems.append(f"{where}.command: expected a list of arguments (no shell), e.g. [\"{{python}}\", app.py], got {cmd!r}")
            cmd = ["?"]
        env = raw.get("environment") or {}
        if not isinstance(env, dict):
            problems.append(f"{where}.environment: expected a mapping of NAME: value, got {env!r}")
            env = {}
        health = raw.get("health", "/health")
        if health is not None and (not isinstance(health, str) or not health.startswith("/")):
            problems.append(f"{where}.health: expected a GET path starting with '/' (or null for a port check), got {health!r}")
        timeout = raw.get("startup_timeout", 30)
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
            problems.append(f"{where}.startup_timeout: expected seconds > 0, got {timeout!r}")
            timeout = 30
        services[str(sname)] = LocalService(
            name=str(sname), command=tuple(str(c) for c in cmd),
            environment={str(k): "" if v is None else str(v) for k, v in env.items()},
            health=health if isinstance(health, str) else None, startup_timeout_s=float(timeout),
        )
    links: list[LocalLink] = []
    raw_links = data.get("links") or {}
    if not isinstance(raw_links, dict):
        problems.append("links: expected a mapping of link name -> {service, client}")
        raw_links = {}
    for lname, raw in raw_links.items():
        where = f"links.{lname}"
        if not isinstance(raw, dict):
            problems.append(f"{where}: expected a mapping with keys {', '.join(_LINK_KEYS)}")
            continue
        _unknown(problems, where, raw, _LINK_KEYS)
        svc, client = raw.get("service"), raw.get("client")
        for key, value in (("service", svc), ("client", client)):
            if value not in services:
                problems.append(f"{where}.{key}: expected one of: {', '.join(services) or '(none)'}; got {value!r}")
        links.append(LocalLink(name=str(lname), service=str(svc), client=str(client)))
    ledger = None
    raw_ledger = data.get("ledger")
    if raw_ledger is not None:
        if not isinstance(raw_ledger, dict) or raw_ledger.get("service") not in services:
            problems.append(f"ledger: expected {{service: <one of {', '.join(services)}>, path: /orders}}, got {raw_ledger!r}")
        else:
            ledger = HttpLedger(service=str(raw_ledger["service"]), path=str(raw_ledger.get("path", "/orders")))
    for svc in services.values():
        for text in (*svc.command, *svc.environment.values()):
            for ref in re.findall(r"\{([a-z]+):([^}]+)\}", text):
                kind, name = ref
                pool = services if kind == "service" else {lk.name for lk in links} if kind == "link" else None
                if pool is None:
                    problems.append(f"services.{svc.name}: unknown placeholder {{{kind}:{name}}}; valid: {{python}}, {{port}}, {{tmp}}, {{service:NAME}}, {{link:NAME}}")
                elif name not in pool:
                    problems.append(f"services.{svc.name}: {{{kind}:{name}}} names no {kind}; valid: {', '.join(pool) or '(none)'}")
    if problems:
        raise StackError(f"{file}: {len(problems)} problem(s) in the local stack file:\n  " + "\n  ".join(problems))
    return LocalSpec(path=file, project=str(data.get("name", file.stem)), services=services, links=links, ledger=ledger)


def find_toxiproxy_server() -> Path | None:
    env = os.environ.get("PEAKCHAOS_TOXIPROXY_SERVER")
    if env:
        return Path(env) if Path(env).is_file() else None
    found = shutil.which("toxiproxy-server")
    return Path(found) if found else None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def _tcp_open(port: int) -> bool:
    try:
        with socket.create_connection((LOOPBACK, port), timeout=0.5):
            return True
    except OSError:
        return False


class _Proc:
    def __init__(self, name: str, argv: list[str], env: dict[str, str], cwd: Path, log_path: Path) -> None:
        self.name = name
        self.log_path = log_path
        self._log: IO[bytes] = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(argv, env=env, cwd=str(cwd), stdin=subprocess.DEVNULL,
                                     stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        try:
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(timeout=5)
        finally:
            self._log.close()


class LocalStack(Stack):
    """Runs a local stack file's services and a Toxiproxy as subprocesses on 127.0.0.1."""

    #: its toxiproxy-server runs with ``-proxy-metrics``
    proxy_metrics = True

    def __init__(self, spec: LocalSpec, *, run_id: str | None = None, log: Callable[[str], None] | None = None,
                 toxiproxy_server: str | Path | None = None) -> None:
        super().__init__()
        from ..load.engine import new_run_id

        self.spec = spec  # type: ignore[assignment]  # duck-typed like a compose StackSpec
        self.run_id = run_id or new_run_id()
        self._log = log or (lambda msg: None)
        self._binary = Path(toxiproxy_server) if toxiproxy_server else find_toxiproxy_server()
        self._procs: dict[str, _Proc] = {}
        self._ports: dict[str, int] = {}
        self._link_ports: dict[str, int] = {}
        self._toxiproxy: ToxiproxyClient | None = None
        self._tmp: Path | None = None
        self.started = False

    @property
    def local_spec(self) -> LocalSpec:
        spec: LocalSpec = self.spec  # type: ignore[assignment]
        return spec

    def _expand(self, text: str, own_port: int) -> str:
        assert self._tmp is not None

        def sub(m: re.Match[str]) -> str:
            key = m.group(1)
            if key == "python":
                return sys.executable
            if key == "port":
                return str(own_port)
            if key == "tmp":
                return str(self._tmp)
            kind, _, name = key.partition(":")
            port = self._ports[name] if kind == "service" else self._link_ports[name]
            return f"{LOOPBACK}:{port}"

        return _PLACEHOLDER.sub(sub, text)

    def start(self) -> None:
        if self.started:
            return
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        self.started = True

    def _start(self) -> None:
        from ..link import Link
        from ..toxiproxy import ToxiproxyClient

        spec = self.local_spec
        if self._binary is None or not self._binary.is_file():
            raise StackError(
                "local backend: no toxiproxy-server binary; set PEAKCHAOS_TOXIPROXY_SERVER or put "
                "toxiproxy-server on PATH (`go install github.com/Shopify/toxiproxy/v2/cmd/server@v2.12.0`)"
            )
        self._tmp = Path(tempfile.mkdtemp(prefix=f"peakchaos-{self.run_id}-"))
        self._ports = {name: _free_port() for name in spec.services}
        self._link_ports = {lk.name: _free_port() for lk in spec.links}
        api_port = _free_port()
        self._procs["toxiproxy"] = _Proc(
            "toxiproxy", [str(self._binary), "-host", LOOPBACK, "-port", str(api_port), "-proxy-metrics"],
            {**os.environ, "LOG_LEVEL": "warn"}, self._tmp, self._tmp / "toxiproxy.log",
        )
        client = ToxiproxyClient(f"http://{LOOPBACK}:{api_port}")
        try:
            client.wait_ready(timeout_s=10.0)
        except Exception as exc:
            raise StackError(f"local backend: toxiproxy-server did not answer: {exc}\n{self._procs['toxiproxy'].tail()}") from exc
        self._toxiproxy = client
        for lk in spec.links:
            client.create_proxy(lk.name, listen=f"{LOOPBACK}:{self._link_ports[lk.name]}",
                                upstream=f"{LOOPBACK}:{self._ports[lk.service]}")
        for name in self._start_order():
            svc = spec.services[name]
            port = self._ports[name]
            argv = [self._expand(a, port) for a in svc.command]
            if argv and not os.path.isabs(argv[0]) and "/" in argv[0]:
                argv[0] = str((spec.path.parent / argv[0]).resolve())
            argv = [argv[0], *[str((spec.path.parent / a).resolve()) if a.startswith(("./", "../")) else a for a in argv[1:]]]
            env = {**os.environ, "PYTHONUNBUFFERED": "1", **{k: self._expand(v, port) for k, v in svc.environment.items()}}
            proc = self._procs[name] = _Proc(name, argv, env, spec.path.parent, self._tmp / f"{name}.log")
            self._wait(svc, proc, port)
            self._log(f"local: {name} up on {LOOPBACK}:{port}")
        for lk in spec.links:
            self.links[lk.name] = Link(name=lk.name, proxy=client.proxy(lk.name), client=client, capacity=None,
                                       url=f"http://{LOOPBACK}:{self._link_ports[lk.name]}")

    def _start_order(self) -> list[str]:
        spec = self.local_spec
        order = list(spec.services)
        for lk in spec.links:  # a link's legacy before its client
            if order.index(lk.service) > order.index(lk.client):
                order.remove(lk.service)
                order.insert(order.index(lk.client), lk.service)
        return order

    def _wait(self, svc: LocalService, proc: _Proc, port: int) -> None:
        deadline = time.monotonic() + svc.startup_timeout_s
        while time.monotonic() < deadline:
            code = proc.proc.poll()
            if code is not None:
                raise StackError(f"local backend: {svc.name} exited with {code} while starting:\n{proc.tail()}")
            if svc.health is None:
                if _tcp_open(port):
                    return
            else:
                try:
                    with urllib.request.urlopen(f"http://{LOOPBACK}:{port}{svc.health}", timeout=1.0) as resp:  # noqa: S310
                        if resp.status == 200:
                            return
                except OSError:
                    pass
            time.sleep(0.05)
        raise StackError(f"local backend: {svc.name} was not healthy within {svc.startup_timeout_s:.0f}s:\n{proc.tail()}")

    def stop(self) -> None:
        errors: list[str] = []
        for link in self.links.values():
            try:
                link.close()
            except Exception as exc:  # noqa: BLE001
                errors.append(f"link {link.name}: {exc}")
        self.links.clear()
        for name in reversed(list(self._procs)):
            proc = self._procs.pop(name)
            self.captured_logs[name] = proc.tail(200)
            proc.stop()
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None
        self._toxiproxy = None
        self.started = False
        if errors:
            raise StackError("local stack: " + "; ".join(errors))

    @property
    def toxiproxy(self) -> ToxiproxyClient:
        if self._toxiproxy is None:
            raise StackError("the local stack is not started")
        return self._toxiproxy

    def endpoint(self, service: str, port: int | None = None) -> tuple[str, int]:
        try:
            return LOOPBACK, self._ports[service]
        except KeyError:
            raise StackError(f"no service {service!r}; services: {', '.join(self.local_spec.services)}") from None

    def logs(self, tail: int = 200) -> dict[str, str]:
        if self._procs:
            return {name: p.tail(tail) for name, p in self._procs.items()}
        return dict(self.captured_logs)

    def describe(self) -> str:
        lines = [f"peakchaos local stack {self.local_spec.project} ({self.local_spec.path}):"]
        lines += [f"  {name} -> http://{LOOPBACK}:{port}" for name, port in self._ports.items()]
        lines += [f"  link {link.name} (via Toxiproxy) -> {link.url}" for link in self.links.values()]
        return "\n".join(lines)

    def processes(self) -> dict[str, Any]:
        """Running subprocesses by service name (for tests and diagnostics)."""
        return {name: p.proc for name, p in self._procs.items()}
