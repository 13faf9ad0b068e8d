"""The ``docker`` backend: a compose-described stack run as real containers through the docker SDK.

Lifecycle of :class:`DockerStack` (``start``):

1. sweep resources of runs whose owner process is gone (see :mod:`.reaper`);
2. create a per-run bridge network and the named volumes, all labelled with the run id;
3. build images (``build:``) or find them locally (``image:``; pulled only when missing);
4. start a Toxiproxy container on the network under the legacy services' names (and aliases) and
   alias ``peakchaos-toxiproxy``, and create one proxy per ``x-peakchaos`` link listening on the
   link's port; each legacy service sits on a second, private network that only Toxiproxy (and the
   legacy's own dependencies) joins, under a run-private alias, so nothing can bypass the proxy;
5. start services in dependency order (project files and secrets copied in before start; a link
   with ``env`` also has its client variable rewritten to the proxy), honouring ``depends_on``
   conditions; wait for health;
6. publish every port on 127.0.0.1 with a random host port (unless the compose file pins one).

``stop`` captures logs and removes every container, the network and the volumes, even after a
failed start. With ``keep=True`` everything stays up and :meth:`describe` says how to reach it.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from . import health, labels, lease, reaper
from .base import Stack, StackError

if TYPE_CHECKING:
    import docker
    from docker.models.containers import Container

    from ..toxiproxy import ToxiproxyClient
    from .compose import ServiceSpec, StackSpec

TOXIPROXY_VERSION = "2.12.0"
DEFAULT_TOXIPROXY_IMAGE = f"ghcr.io/shopify/toxiproxy:{TOXIPROXY_VERSION}"
TOXIPROXY_API_PORT = 8474
TOXIPROXY_ALIAS = "peakchaos-toxiproxy"
LOOPBACK = "127.0.0.1"

ENGINE_MISSING = (
    "no Docker engine answers ({error}). Start one (`make setup` installs and starts dockerd on "
    "Debian), point DOCKER_HOST at it, or check `peakchaos doctor`."
)


def docker_client(timeout: int = 600) -> docker.DockerClient:
    """A docker SDK client from the environment, or :class:`StackError` explaining how to get one."""
    import docker
    import docker.errors

    try:
        client = docker.from_env(timeout=timeout)
        client.ping()
    except (docker.errors.DockerException, OSError) as exc:
        raise StackError(ENGINE_MISSING.format(error=exc)) from exc
    return client


def _retry_until(
    what: str, check: Callable[[], bool], timeout_s: float, *, interval_s: float = 0.25
) -> None:
    """Call ``check`` until it returns True; StackError after ``timeout_s``. Exceptions from ``check`` stop at once."""
    import tenacity

    retrying = tenacity.Retrying(
        stop=tenacity.stop_after_delay(timeout_s),
        wait=tenacity.wait_fixed(interval_s),
        retry=tenacity.retry_if_result(lambda ok: not ok),
    )
    try:
        retrying(check)
    except tenacity.RetryError:
        raise StackError(f"timed out after {timeout_s:.0f}s waiting for {what}") from None


def _tcp_open(host: str, port: int) -> bool:
    """True when something really listens behind ``host:port``.

    A published port accepts connections (docker-proxy) before the container listens, then closes
    them at once; so a connection that stays open for a moment, or that gets data, counts as ready.
    """
    try:
        with socket.create_connection((host, port), timeout=0.5) as sock:
            sock.settimeout(0.2)
            try:
                return sock.recv(1) != b""
            except TimeoutError:
                return True
    except OSError:
        return False


class DockerStack(Stack):
    """A stack of real containers. Use as a context manager or call :meth:`start` / :meth:`stop`."""

    #: the stack's Toxiproxy runs with ``-proxy-metrics`` (its byte counters are the link's evidence)
    proxy_metrics = True

    def __init__(
        self,
        spec: StackSpec,
        *,
        run_id: str | None = None,
        toxiproxy_image: str = DEFAULT_TOXIPROXY_IMAGE,
        keep: bool = False,
        startup_timeout_s: float = 180.0,
        sweep: bool = True,
        client: docker.DockerClient | None = None,
        log: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__()
        self.spec = spec
        self.run_id = run_id or labels.new_run_id()
        self.toxiproxy_image = toxiproxy_image
        self.keep = keep
        self.startup_timeout_s = startup_timeout_s
        self._sweep = sweep
        self._client = client
        self._log = log or (lambda msg: None)
        self._owner = labels.current_owner()
        self.network_name = f"peakchaos-{self.run_id}"
        self.private_network_name = f"peakchaos-{self.run_id}-private"
        self._private: Any = None
        self.containers: dict[str, Container] = {}
        self._volumes: dict[str, str] = {}  # compose name -> engine name
        self._network: Any = None
        self._toxiproxy: ToxiproxyClient | None = None
        self._ports: dict[tuple[str, int], int] = {}
        self.sweep_report: reaper.SweepReport | None = None
        self._lease: Any = None
        self.started = False
        self.startup_seconds: float | None = None

    # -- helpers ----------------------------------------------------------------------------
    @property
    def client(self) -> docker.DockerClient:
        if self._client is None:
            self._client = docker_client()
        return self._client

    @property
    def engine_client(self) -> docker.DockerClient | None:
        """The client this stack talks to the engine with (None before it made one): the harness
        watch pings it (see :mod:`.health`)."""
        return self._client

    def labels(self, **extra: str) -> dict[str, str]:
        lab = {
            labels.RUN: self.run_id,
            labels.OWNER: self._owner.label(),
            labels.PROJECT: self.spec.project,
        }
        if self.keep:
            lab[labels.KEEP] = "1"
        lab.update(extra)
        return lab

    def container_name(self, service: str) -> str:
        return f"peakchaos-{self.run_id}-{service}"

    def private_alias(self, service: str) -> str:
        """The legacy service's name on the private network (only Toxiproxy resolves it)."""
        return f"peakchaos-{self.run_id}-{service}-real"

    def _private_members(self) -> set[str]:
        """Legacy services and what they depend on: the services on the private network."""
        members = set(self.spec.legacy_services())
        for name in list(members):
            members.update(d.service for d in self.spec.services[name].depends_on)
        return members

    def image_for(self, svc: ServiceSpec) -> str:
        if svc.image:
            return svc.image
        return f"peakchaos/{self.spec.project}-{svc.name}:latest"

    # -- life -------------------------------------------------------------------------------
    def start(self) -> None:
        if self.started:
            return
        t_start = time.monotonic()
        client = self.client
        if self._sweep:
            self.sweep_report = reaper.sweep(client)
            if self.sweep_report:
                self._log(self.sweep_report.summary())
        try:
            self._create_network()
            self._create_volumes()
            self._prepare_images()
            self._lease = lease.acquire(self)  # the owner model (see .lease): lives as long as we do
            self._start_toxiproxy()
            self._create_links_proxies()
            self._start_services()
            self._make_links()
            health.probe_links(self)  # each link reaches a listener (else: what the service listens on)
        except BaseException:
            self._capture_logs()
            self._teardown()
            raise
        self.started = True
        self.startup_seconds = time.monotonic() - t_start
        self._log(f"stack {self.run_id} up in {self.startup_seconds:.1f}s")

    def stop(self) -> None:
        problem = health.engine_problem(self) if self.containers else None
        if problem is not None:  # logs and removal would fail (or hang): say what is left instead
            self._log(f"teardown of {self.run_id} impossible: {problem}")
            self.started = False
            return
        self._capture_logs()
        if self.keep and self.started:
            self._log(self.describe() + f"\n  left running (--peakchaos-keep); remove with: peakchaos prune --run {self.run_id}")
            return
        self._teardown()
        self.started = False

    def rebuild(self) -> None:
        """Tear the stack down and start a fresh one under a new run id (after a harness error)."""
        self.stop()
        if self._lease is not None:
            lease._close(self._lease)
            self._lease = None
        self.run_id = labels.new_run_id()
        self.network_name = f"peakchaos-{self.run_id}"
        self.private_network_name = f"peakchaos-{self.run_id}-private"
        self.links = {}
        self.captured_logs = {}
        self._toxiproxy = None
        self._ports = {}
        self.started = False
        self.start()

    def _teardown(self) -> None:
        import docker.errors

        problem = health.engine_problem(self) if self.containers or self._network is not None else None
        if problem is not None:  # every call would fail (or hang): say what is left and how to prune it
            self._log(f"teardown of {self.run_id} impossible: {problem}")
            return
        errors: list[str] = []
        for link in self.links.values():
            try:
                link.close()
            except Exception as exc:  # noqa: BLE001 - teardown goes on
                errors.append(f"link {link.name}: {exc}")
        def remove(item: tuple[str, Container]) -> str | None:
            name, container = item
            try:
                container.remove(force=True, v=True)
            except docker.errors.NotFound:
                pass
            except Exception as exc:  # noqa: BLE001 - API or connection errors: teardown goes on
                return f"container {name}: {exc}"
            return None

        # all at once (force: each is killed, nothing waits on another): ~1.0 s instead of ~1.4 s
        from concurrent.futures import ThreadPoolExecutor

        items = list(reversed(list(self.containers.items())))
        if items:
            with ThreadPoolExecutor(max_workers=min(8, len(items)), thread_name_prefix="peakchaos-teardown") as pool:
                errors.extend(e for e in pool.map(remove, items) if e)
        self.containers.clear()
        def remove_network(item: tuple[str, str]) -> str | None:
            attr, net_name = item
            network = getattr(self, attr)
            setattr(self, attr, None)
            try:
                if network is not None:
                    network.remove()
            except docker.errors.NotFound:
                pass
            except Exception as exc:  # noqa: BLE001
                return f"network {net_name}: {exc}"
            return None

        nets = [("_network", self.network_name), ("_private", self.private_network_name)]
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="peakchaos-teardown") as pool:  # both at once too
            errors.extend(e for e in pool.map(remove_network, nets) if e)
        for vol in self._volumes.values():
            try:
                self.client.volumes.get(vol).remove(force=True)
            except docker.errors.NotFound:
                pass
            except Exception as exc:  # noqa: BLE001
                errors.append(f"volume {vol}: {exc}")
        self._volumes.clear()
        if errors:
            # A later sweep removes leftovers; say what was left so nothing is lost silently.
            self._log(
                "teardown left resources (the next run sweeps them, or: peakchaos prune --run "
                f"{self.run_id}): " + "; ".join(errors)
            )

    # -- steps ------------------------------------------------------------------------------
    def _create_network(self) -> None:
        self._network = self.client.networks.create(
            self.network_name, driver="bridge", labels=self.labels(**{labels.ROLE: "network"})
        )
        if self.spec.links:
            self._private = self.client.networks.create(
                self.private_network_name, driver="bridge", labels=self.labels(**{labels.ROLE: "network"})
            )

    def _create_volumes(self) -> None:
        for name in self.spec.volumes:
            engine_name = f"peakchaos-{self.run_id}-{name}"
            self.client.volumes.create(name=engine_name, labels=self.labels(**{labels.ROLE: "volume"}))
            self._volumes[name] = engine_name
        for svc in self.spec.services.values():  # anonymous volumes: fresh per run, labelled like the rest
            for i, mount in enumerate(svc.volumes):
                if mount.source is None:
                    engine_name = f"peakchaos-{self.run_id}-{svc.name}-anon{i}"
                    self.client.volumes.create(name=engine_name, labels=self.labels(**{labels.ROLE: "volume"}))
                    self._volumes[f"\0{svc.name}\0{i}"] = engine_name

    def _prepare_images(self) -> None:
        import docker.errors

        for svc in self.spec.services.values():
            tag = self.image_for(svc)
            if svc.build is not None:
                dockerfile = svc.build.context / svc.build.dockerfile
                if not dockerfile.is_file():
                    raise StackError(
                        f"{self.spec.path}: services.{svc.name}.build.dockerfile: {dockerfile} does not exist"
                    )
                self._log(f"building {tag} from {svc.build.context}")
                try:
                    self.client.images.build(
                        path=str(svc.build.context),
                        dockerfile=svc.build.dockerfile,
                        buildargs=dict(svc.build.args),
                        target=svc.build.target,
                        tag=tag,
                        rm=True,
                        forcerm=True,
                        labels={labels.PROJECT: self.spec.project},
                    )
                except docker.errors.BuildError as exc:
                    tail = "".join(str(chunk.get("stream", chunk.get("error", ""))) for chunk in exc.build_log)
                    tail = "\n".join(tail.strip().splitlines()[-15:])
                    hint = ""
                    if "pull" in tail or "not found" in tail or "manifest" in tail:
                        hint = (
                            "\nhint: the base image could not be found or pulled; build it locally and pass it "
                            "as a build arg (e.g. BASE_IMAGE) — see README 'Offline images'"
                        )
                    raise StackError(
                        f"{self.spec.path}: services.{svc.name}.build: image build failed:\n{tail}{hint}"
                    ) from exc
                except docker.errors.APIError as exc:
                    raise StackError(f"{self.spec.path}: services.{svc.name}.build: {exc}") from exc
            else:
                self._ensure_image(tag, f"services.{svc.name}.image")
        self._ensure_image(self.toxiproxy_image, "toxiproxy image (--peakchaos-toxiproxy-image)")

    def _ensure_image(self, ref: str, what: str) -> None:
        import docker.errors

        try:
            self.client.images.get(ref)
            return
        except docker.errors.ImageNotFound:
            pass
        self._log(f"pulling {ref}")
        try:
            self.client.images.pull(ref)
        except docker.errors.APIError as exc:
            raise StackError(
                f"{self.spec.path}: {what}: image {ref!r} is not present locally and could not be pulled "
                f"({exc}). Build or load it first (`make setup` builds the Toxiproxy and base images), "
                "or name an image that exists."
            ) from exc

    def _host_config(
        self, ports: list[tuple[int, str, int | None]], svc: ServiceSpec | None = None
    ) -> dict[str, Any]:
        from docker.types import Mount

        api = self.client.api
        kwargs: dict[str, Any] = {
            "port_bindings": {f"{p}/{proto}": (LOOPBACK, hp) for p, proto, hp in ports},
            "security_opt": ["no-new-privileges:true"],
            "privileged": False,
        }
        if svc is not None:
            if svc.cpus is not None:
                # CFS period/quota rather than NanoCpus: the engine refuses to update a quota on a
                # container created with NanoCpus, and capacity faults update the quota.
                kwargs["cpu_period"] = 100_000
                kwargs["cpu_quota"] = max(1000, int(svc.cpus * 100_000))
            if svc.mem_limit_bytes is not None:
                kwargs["mem_limit"] = svc.mem_limit_bytes
            if svc.tmpfs:
                kwargs["tmpfs"] = dict(
                    (entry.split(":", 1)[0], entry.split(":", 1)[1] if ":" in entry else "") for entry in svc.tmpfs
                )
            if svc.volumes:
                kwargs["mounts"] = [
                    Mount(
                        target=v.target,
                        source=self._volumes[v.source if v.source is not None else f"\0{svc.name}\0{i}"],
                        type="volume",
                        read_only=v.read_only,
                    )
                    for i, v in enumerate(svc.volumes)
                ]
            rt = svc.runtime
            if rt.get("cap_drop"):
                kwargs["cap_drop"] = list(rt["cap_drop"])
            if rt.get("read_only"):
                kwargs["read_only"] = True
            if rt.get("shm_size"):
                kwargs["shm_size"] = rt["shm_size"]
            if rt.get("init"):
                kwargs["init"] = True
            if rt.get("ulimits"):
                from docker.types import Ulimit

                kwargs["ulimits"] = [Ulimit(name=n, soft=soft, hard=hard) for n, soft, hard in rt["ulimits"]]
        result: dict[str, Any] = api.create_host_config(**kwargs)
        return result

    def _run_container(
        self,
        key: str,
        image: str,
        *,
        aliases: list[str],
        ports: list[tuple[int, str, int | None]],
        svc: ServiceSpec | None = None,
        environment: dict[str, str] | None = None,
        command: list[str] | None = None,
        network: str | None = None,
        also: dict[str, list[str]] | None = None,
    ) -> Container:
        """Create, copy files in, connect to ``also``'s networks (name -> aliases), start."""
        api = self.client.api
        create_kwargs: dict[str, Any] = {
            "name": self.container_name(key),
            "labels": self.labels(**{labels.SERVICE: key, labels.ROLE: "service" if svc else "toxiproxy"}),
            "ports": [(p, proto) if proto != "tcp" else p for p, proto, _ in ports],
            "host_config": self._host_config(ports, svc),
            "networking_config": api.create_networking_config(
                {network or self.network_name: api.create_endpoint_config(aliases=aliases)}  # type: ignore[arg-type]
            ),
            "environment": environment or {},
        }
        if command is not None:
            create_kwargs["command"] = command
        if svc is not None:
            if svc.command is not None:
                create_kwargs["command"] = svc.command
            if svc.entrypoint is not None:
                create_kwargs["entrypoint"] = svc.entrypoint
            if svc.user is not None:
                create_kwargs["user"] = svc.user
            if svc.working_dir is not None:
                create_kwargs["working_dir"] = svc.working_dir
            if svc.hostname is not None:
                create_kwargs["hostname"] = svc.hostname
            for opt in ("stop_signal", "tty", "stdin_open"):
                if opt in svc.runtime:
                    create_kwargs[opt] = svc.runtime[opt]
            if "stop_timeout" in svc.runtime:
                create_kwargs["stop_timeout"] = svc.runtime["stop_timeout"]
            if svc.healthcheck is not None:
                hc = svc.healthcheck
                create_kwargs["healthcheck"] = {
                    "test": list(hc.test),
                    "interval": int(hc.interval_s * 1e9),
                    "timeout": int(hc.timeout_s * 1e9),
                    "retries": hc.retries,
                    "start_period": int(hc.start_period_s * 1e9),
                }
        created = api.create_container(image, **create_kwargs)
        container = self.client.containers.get(created["Id"])
        self.containers[key] = container
        if svc is not None and svc.files:
            from .projectfiles import copy_into

            copy_into(container, svc.files)
        for net_name, net_aliases in (also or {}).items():
            api.connect_container_to_network(created["Id"], net_name, aliases=net_aliases)
        api.start(created["Id"])
        container.reload()
        for port, proto, _ in ports:
            bound = (container.attrs["NetworkSettings"]["Ports"] or {}).get(f"{port}/{proto}") or []
            loopback = [b for b in bound if b.get("HostIp") == LOOPBACK]
            if not loopback:
                raise StackError(f"{key}: port {port}/{proto} was not published on {LOOPBACK}: {bound}")
            self._ports[(key, port)] = int(loopback[0]["HostPort"])
        return container

    def _start_toxiproxy(self) -> None:
        from ..toxiproxy import ToxiproxyClient

        ports: list[tuple[int, str, int | None]] = [(TOXIPROXY_API_PORT, "tcp", None)]
        ports += [(link.listen_port, "tcp", None) for link in self.spec.links]
        # -proxy-metrics: per-proxy byte counters on GET /metrics, the link's own evidence of traffic
        # On the run network Toxiproxy answers to every legacy name (transparent interception); on
        # the private network it reaches the real legacy services under their run-private aliases.
        names = [TOXIPROXY_ALIAS] + [n for link in self.spec.links for n in link.names]
        self._run_container(
            "toxiproxy", self.toxiproxy_image, aliases=list(dict.fromkeys(names)), ports=ports,
            # an empty -host: the API listens on every interface *inside* the container (other
            # containers reach it); on the host it is published on 127.0.0.1 only
            command=["-host=", "-proxy-metrics"],
            # legacy services that call each other (a chain of links) find Toxiproxy by name too
            also={self.private_network_name: list(dict.fromkeys(n for link in self.spec.links for n in link.names))}
            if self.spec.links else None,
        )
        api_url = f"http://{LOOPBACK}:{self._ports[('toxiproxy', TOXIPROXY_API_PORT)]}"
        self._toxiproxy = ToxiproxyClient(api_url)
        try:
            self._toxiproxy.wait_ready(timeout_s=30)
        except Exception as exc:
            raise StackError(f"Toxiproxy ({self.toxiproxy_image}) did not answer at {api_url}: {exc}") from exc

    def _create_links_proxies(self) -> None:
        for link in self.spec.links:
            self.toxiproxy.create_proxy(
                link.name, listen=f":{link.listen_port}", upstream=f"{self.private_alias(link.service)}:{link.port}"
            )

    def _environment(self, svc: ServiceSpec) -> dict[str, str]:
        env = dict(svc.environment)
        for link in self.spec.links:
            if link.env is not None and link.client == svc.name:
                env[link.env] = env[link.env].replace(
                    f"{link.service}:{link.port}", f"{TOXIPROXY_ALIAS}:{link.listen_port}"
                )
        return env

    def _start_services(self) -> None:
        deadline = time.monotonic() + self.startup_timeout_s
        for name in self.spec.start_order():
            svc = self.spec.services[name]
            for dep in svc.depends_on:
                self._wait_condition(dep.service, dep.condition, deadline)
            ports: list[tuple[int, str, int | None]] = []
            seen: set[tuple[int, str]] = set()
            for p in svc.ports:
                ports.append((p.container_port, p.protocol, p.host_port))
                seen.add((p.container_port, p.protocol))
            for port in svc.expose:
                if (port, "tcp") not in seen:
                    ports.append((port, "tcp", None))
            self._log(f"starting {name}")
            legacy = self.spec.legacy_services()
            private = self._private_members()
            if name in legacy:  # only on the private network: reachable through Toxiproxy alone
                self._run_container(
                    name, self.image_for(svc), aliases=[self.private_alias(name)], ports=ports, svc=svc,
                    environment=self._environment(svc), network=self.private_network_name,
                )
            else:
                self._run_container(
                    name, self.image_for(svc), aliases=[name, *svc.aliases], ports=ports, svc=svc,
                    environment=self._environment(svc),
                    also={self.private_network_name: [name, *svc.aliases]} if name in private else None,
                )
        for name, svc in self.spec.services.items():
            self._wait_condition(name, "service_healthy" if svc.healthcheck else "service_started", deadline)

    def _state(self, name: str) -> dict[str, Any]:
        container = self.containers[name]
        container.reload()
        state: dict[str, Any] = container.attrs["State"]
        return state

    def _wait_condition(self, name: str, condition: str, deadline: float) -> None:
        svc = self.spec.services[name]
        timeout = max(1.0, deadline - time.monotonic())

        def dead(state: dict[str, Any]) -> None:
            raise StackError(
                f"service {name} exited with code {state.get('ExitCode')} while starting; last log lines:\n"
                + self._tail(name, 30)
            )

        if condition == "service_completed_successfully":
            def done() -> bool:
                state = self._state(name)
                if state["Status"] == "exited":
                    if state.get("ExitCode") != 0:
                        dead(state)
                    return True
                return False
            _retry_until(f"{name} to complete", done, timeout)
            return

        if condition == "service_healthy" and svc.healthcheck is not None:
            def healthy() -> bool:
                state = self._state(name)
                if state["Status"] in ("exited", "dead"):
                    dead(state)
                health = (state.get("Health") or {}).get("Status")
                if health == "unhealthy":
                    raise StackError(
                        f"service {name} is unhealthy (healthcheck {svc.healthcheck.test if svc.healthcheck else ''}); "
                        "last log lines:\n" + self._tail(name, 30)
                    )
                return bool(health == "healthy")
            _retry_until(f"{name} to become healthy", healthy, timeout)
            return

        # service_started (or healthy without a healthcheck): running, and its published ports accept.
        def running() -> bool:
            state = self._state(name)
            if state["Status"] in ("exited", "dead"):
                dead(state)
            if state["Status"] != "running":
                return False
            return all(_tcp_open(LOOPBACK, hp) for (svc_name, _), hp in self._ports.items() if svc_name == name)
        _retry_until(f"{name} to start", running, timeout)

    def _make_links(self) -> None:
        from ..throttle import DockerCapacity
        from ..link import Link

        for spec in self.spec.links:
            self.links[spec.name] = Link(
                name=spec.name,
                proxy=self.toxiproxy.proxy(spec.name),
                client=self.toxiproxy,
                capacity=DockerCapacity(self.containers[spec.service]),
                url=f"http://{LOOPBACK}:{self._ports[('toxiproxy', spec.listen_port)]}",
            )

    # -- endpoints & diagnostics -----------------------------------------------------------
    @property
    def toxiproxy(self) -> ToxiproxyClient:
        if self._toxiproxy is None:
            raise StackError("the stack is not started")
        return self._toxiproxy

    def endpoint(self, service: str, port: int | None = None) -> tuple[str, int]:
        if service not in self.spec.services and service != "toxiproxy":
            raise StackError(f"no service {service!r}; services: {', '.join(self.spec.services)}")
        if port is None:
            ports = [p for (s, p) in self._ports if s == service]
            if not ports:
                raise StackError(f"service {service} publishes no port; add `ports` or `expose` in the compose file")
            port = ports[0]
        try:
            return LOOPBACK, self._ports[(service, port)]
        except KeyError:
            known = sorted(p for (s, p) in self._ports if s == service)
            raise StackError(f"service {service} has no published port {port}; published: {known}") from None

    def exec(self, service: str, argv: list[str], *, user: str | None = None, timeout_s: float = 10.0) -> str:
        if service not in self.containers:
            raise StackError(f"no running service {service!r}; services: {', '.join(self.containers)}")
        result = self.containers[service].exec_run(argv, user=user or "", demux=True)
        raw: Any = result.output
        out, err = raw if isinstance(raw, tuple) else (raw, b"")
        out, err = bytes(out or b""), bytes(err or b"")
        if result.exit_code != 0:
            raise StackError(
                f"{' '.join(argv[:1])} in {service} exited {result.exit_code}: {(err or out).decode(errors='replace')[-500:]}"
            )
        return out.decode(errors="replace")

    def container(self, service: str) -> Container:
        return self.containers[service]

    def _tail(self, name: str, lines: int) -> str:
        try:
            raw: bytes = self.containers[name].logs(tail=lines)
            return raw.decode(errors="replace")
        except Exception as exc:  # noqa: BLE001 - diagnostics only
            return f"<no logs: {exc}>"

    def logs(self, tail: int = 200) -> dict[str, str]:
        if not self.containers:
            return dict(self.captured_logs)
        return {name: self._tail(name, tail) for name in self.containers}

    def _capture_logs(self) -> None:
        for name in self.containers:
            self.captured_logs[name] = self._tail(name, 500)


def start_docker_stack(path: str | Path, **kwargs: Any) -> DockerStack:
    """Load ``path`` and start it; the caller stops it (or uses the result as a context manager)."""
    from .compose import load_compose

    stack = DockerStack(load_compose(path), **kwargs)
    stack.start()
    return stack
