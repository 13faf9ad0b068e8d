"""Services: every supported key of a compose service, read into a :class:`ServiceSpec`.

Which keys exist, and what happens to the others, is :mod:`.policy`; volumes, secrets and configs
are :mod:`.mounts`. Each key is read under ``ctx.guard`` so one error lists every problem.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from . import policy
from .interpolate import _read_env_file
from .mounts import _parse_file_refs, _parse_tmpfs, _parse_volumes
from .specs import (
    DEFAULT_INTERVAL_S,
    DEFAULT_RETRIES,
    DEFAULT_START_PERIOD_S,
    DEFAULT_TIMEOUT_S,
    BuildSpec,
    DependsOn,
    FileMount,
    HealthcheckSpec,
    PortSpec,
    ServiceSpec,
)
from .values import (
    Problem,
    _boolean,
    _check_keys,
    _cpus,
    _Ctx,
    _duration,
    _got,
    _integer,
    _join,
    _list,
    _mapping,
    _memory,
    _port,
    _require,
    _scalar_text,
    _string,
    _INT_TEXT,
)

_SERVICE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_ALIAS = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_CONDITIONS = ("service_started", "service_healthy", "service_completed_successfully")
_LOCAL_IPS = ("", "127.0.0.1", "localhost")


@dataclass
class _Dep:
    spec: DependsOn
    key: str


@dataclass
class Declared:
    """Top-level names a service may refer to."""

    volumes: Sequence[str]
    secrets: Mapping[str, FileMount]  # name -> file (target = default)
    configs: Mapping[str, FileMount]
    networks: Sequence[str]


def check_keys(ctx: _Ctx, key: str, data: Mapping[str, object], notes: dict[str, list[str]]) -> None:
    """Every key of one service decided by the policy: rejected/unknown keys are problems."""
    for k in data:
        if k.startswith("x-"):
            continue
        r = policy.SERVICE.get(k)
        if r is None:
            ctx.problems.append(
                _problem(ctx, _join(key, k), f"unknown service key {k!r} (not in the Compose Specification); "
                         "check its spelling, see docs/compose.md for every key")
            )
        elif r.decision == policy.REJECTED:
            ctx.problems.append(_problem(ctx, _join(key, k), f"{k!r} is not supported: {r.text}"))
        elif r.decision == policy.IGNORED:
            notes.setdefault(k, []).append(key.split(".", 1)[1])


def _problem(ctx: _Ctx, key: str, detail: str) -> Problem:
    return Problem(ctx.file, key, detail)


def _parse_service(
    ctx: _Ctx, name: str, raw: object, declared: Declared, published: dict[tuple[int, str], str],
    notes: dict[str, list[str]],
) -> tuple[ServiceSpec, list[_Dep]]:
    key = _join("services", name)
    if raw is None:
        ctx.fail(key, f"service {name!r} is empty; it needs 'image' or 'build'")
    data = _mapping(ctx, key, raw)
    check_keys(ctx, key, data, notes)
    g = ctx.guard

    def k(sub: str) -> str:
        return _join(key, sub)

    image = g(_parse_image, ctx, k("image"), data.get("image"))
    build = g(_parse_build, ctx, k("build"), data["build"]) if data.get("build") is not None else None
    if image is None and build is None and data.get("image") is None and data.get("build") is None:
        ctx.problems.append(_problem(
            ctx, key,
            f"service {name!r} needs 'image' (an image to run) or 'build' (a folder with a Dockerfile), or both "
            "('image' then names the built image)",
        ))
    cpus = g(_cpus, ctx, k("cpus"), data["cpus"]) if data.get("cpus") is not None else None
    mem = g(_memory, ctx, k("mem_limit"), data["mem_limit"]) if data.get("mem_limit") is not None else None
    if data.get("deploy") is not None:
        got = g(_parse_deploy, ctx, k("deploy"), data["deploy"], notes, name)
        deploy_cpus, deploy_mem = got if got is not None else (None, None)
        limits = k("deploy.resources.limits")
        if deploy_cpus is not None:
            if cpus is not None and cpus != deploy_cpus:
                ctx.problems.append(_problem(ctx, _join(limits, "cpus"), f"{deploy_cpus:g} conflicts with {key}.cpus ({cpus:g}); set one"))
            cpus = deploy_cpus
        if deploy_mem is not None:
            if mem is not None and mem != deploy_mem:
                ctx.problems.append(_problem(ctx, _join(limits, "memory"), f"{deploy_mem} bytes conflicts with {key}.mem_limit ({mem}); set one"))
            mem = deploy_mem
    user = g(_parse_user, ctx, k("user"), data["user"]) if data.get("user") is not None else None
    working_dir = g(_abs_path, ctx, k("working_dir"), data["working_dir"]) if data.get("working_dir") is not None else None
    hostname = g(_alias, ctx, k("hostname"), data["hostname"], "a host name") if data.get("hostname") is not None else None
    aliases: list[str] = []
    if data.get("container_name") is not None:
        alias = g(_alias, ctx, k("container_name"), data["container_name"], "a container name")
        if alias:
            aliases.append(alias)
    if hostname:
        aliases.append(hostname)
    if data.get("networks") is not None:
        aliases += g(_parse_networks, ctx, k("networks"), data["networks"], declared.networks) or []

    deps = g(_parse_depends_on, ctx, k("depends_on"), data.get("depends_on"), notes, name) or []
    files: list[FileMount] = []
    long_tmpfs: list[str] = []
    volumes = g(_parse_volumes, ctx, k("volumes"), data.get("volumes"), declared.volumes, files, long_tmpfs) or []
    for what, known, default_dir in (("secrets", declared.secrets, "/run/secrets/"), ("configs", declared.configs, "/")):
        if data.get(what) is not None:
            files += g(_parse_file_refs, ctx, k(what), data[what], known, default_dir, what) or []
    spec = ServiceSpec(
        name=name,
        image=image,
        build=build,
        command=g(_parse_argv, ctx, k("command"), data.get("command")),
        entrypoint=g(_parse_argv, ctx, k("entrypoint"), data.get("entrypoint")),
        environment=g(_parse_environment, ctx, key, data) or {},
        ports=g(_parse_ports, ctx, k("ports"), data.get("ports"), published) or [],
        expose=g(_parse_expose, ctx, k("expose"), data.get("expose")) or [],
        depends_on=[d.spec for d in deps],
        healthcheck=g(_parse_healthcheck, ctx, k("healthcheck"), data.get("healthcheck")),
        cpus=cpus,
        mem_limit_bytes=mem,
        user=user,
        working_dir=working_dir,
        volumes=volumes,
        tmpfs=(g(_parse_tmpfs, ctx, k("tmpfs"), data.get("tmpfs")) or []) + long_tmpfs,
        files=files,
        aliases=list(dict.fromkeys(a for a in aliases if a != name)),
        hostname=hostname,
        runtime=g(_parse_runtime, ctx, key, data) or {},
    )
    return spec, deps


def _parse_image(ctx: _Ctx, key: str, raw: object) -> str | None:
    if raw is None:
        return None
    image = _string(ctx, key, raw, "an image name such as 'python:3.12-slim'")
    if any(ch.isspace() for ch in image):
        ctx.fail(key, f"an image name has no spaces, {_got(image)}")
    return image


def _parse_user(ctx: _Ctx, key: str, raw: object) -> str:
    user = _scalar_text(ctx, key, raw, "a user name or uid such as 'app' or '1000:1000'")
    if not user.strip():
        ctx.fail(key, "expected a user name or uid such as 'app' or '1000:1000', got an empty string")
    return user


def _abs_path(ctx: _Ctx, key: str, raw: object) -> str:
    path = _string(ctx, key, raw, "an absolute path such as '/app'")
    if not path.startswith("/"):
        ctx.fail(key, f"must be an absolute path such as '/app', {_got(path)}")
    return path


def _alias(ctx: _Ctx, key: str, raw: object, what: str) -> str:
    name = _string(ctx, key, raw, what)
    if not _ALIAS.match(name):
        ctx.fail(key, f"{what} uses letters, digits, '_', '.' and '-', {_got(name)}")
    return name


def _parse_networks(ctx: _Ctx, key: str, raw: object, declared: Sequence[str]) -> list[str]:
    """Aliases from ``networks`` (list of names, or map of name -> {aliases, ...}); names are ignored."""
    aliases: list[str] = []
    if isinstance(raw, list):
        for i, item in enumerate(raw):
            _network_name(ctx, _join(key, i), item, declared)
        return aliases
    data = _mapping(ctx, key, raw, "a list of network names or a mapping of network name -> {aliases: [...]}")
    for net, options in data.items():
        nkey = _join(key, net)
        _network_name(ctx, nkey, net, declared)
        if options is None:
            continue
        opts = _mapping(ctx, nkey, options, "null or a mapping with aliases")
        for opt, value in opts.items():
            if opt == "aliases":
                for i, alias in enumerate(_list(ctx, _join(nkey, "aliases"), value, "a list of host names")):
                    aliases.append(_alias(ctx, _join(_join(nkey, "aliases"), i), alias, "a network alias"))
            elif opt in ("ipv4_address", "ipv6_address", "link_local_ips", "mac_address", "driver_opts", "priority", "gw_priority", "interface_name"):
                continue  # addressing is the engine's on the run network (noted with networks)
            else:
                ctx.fail(_join(nkey, opt), f"unknown network option {opt!r}; valid: aliases (others of the spec are ignored)")
    return aliases


def _network_name(ctx: _Ctx, key: str, name: object, declared: Sequence[str]) -> None:
    text = _string(ctx, key, name, "a network name")
    if text != "default" and text not in declared:
        ctx.fail(key, f"network {text!r} is not declared; add it under the top-level 'networks' key (networks: {{{text}: {{}}}})")


_SIGNAL = re.compile(r"^(SIG[A-Z0-9+-]+|[0-9]+)$")


def _parse_runtime(ctx: _Ctx, key: str, data: Mapping[str, object]) -> dict[str, Any]:
    """Keys that go straight to the engine: cap_drop, read_only, shm_size, init, tty, stdin_open, ulimits, stop_*."""
    out: dict[str, Any] = {}
    if data.get("cap_drop") is not None:
        items = _list(ctx, _join(key, "cap_drop"), data["cap_drop"], "a list of capabilities such as [ALL] or [NET_RAW]")
        out["cap_drop"] = [_string(ctx, _join(_join(key, "cap_drop"), i), c, "a capability name") for i, c in enumerate(items)]
    for flag in ("read_only", "init", "tty", "stdin_open"):
        if data.get(flag) is not None:
            out[flag] = _boolean(ctx, _join(key, flag), data[flag])
    if data.get("shm_size") is not None:
        out["shm_size"] = _memory(ctx, _join(key, "shm_size"), data["shm_size"])
    if data.get("stop_signal") is not None:
        sig = _string(ctx, _join(key, "stop_signal"), data["stop_signal"], "a signal such as SIGTERM")
        if not _SIGNAL.match(sig):
            ctx.fail(_join(key, "stop_signal"), f"expected a signal name such as SIGTERM or SIGINT, {_got(sig)}")
        out["stop_signal"] = sig
    if data.get("stop_grace_period") is not None:
        out["stop_timeout"] = max(1, int(round(_duration(ctx, _join(key, "stop_grace_period"), data["stop_grace_period"], 0.0))))
    if data.get("ulimits") is not None:
        ukey = _join(key, "ulimits")
        limits = []
        for name, value in _mapping(ctx, ukey, data["ulimits"], "a mapping such as {nofile: {soft: 1024, hard: 2048}}").items():
            lkey = _join(ukey, name)
            if isinstance(value, dict):
                entry = _mapping(ctx, lkey, value)
                _check_keys(ctx, lkey, entry, ("soft", "hard"), "a ulimit")
                soft = _integer(ctx, _join(lkey, "soft"), _require(ctx, lkey, entry, "soft", "a ulimit", "write {soft: n, hard: n}"), -1, 2**62, "a number")
                hard = _integer(ctx, _join(lkey, "hard"), _require(ctx, lkey, entry, "hard", "a ulimit", "write {soft: n, hard: n}"), -1, 2**62, "a number")
            else:
                soft = hard = _integer(ctx, lkey, value, -1, 2**62, "a number or {soft, hard}")
            limits.append((name, soft, hard))
        out["ulimits"] = limits
    return out


_BUILD_KEYS = ("context", "dockerfile", "args", "target")
#: build keys that change how an image is built, not what it does in a test: accepted, not read
_BUILD_IGNORED = ("cache_from", "cache_to", "labels", "no_cache", "pull", "tags", "platforms", "platform", "provenance", "sbom")


def _parse_build(ctx: _Ctx, key: str, raw: object) -> BuildSpec:
    if isinstance(raw, str):
        data: dict[str, object] = {"context": raw}
        context_key = key
    else:
        data = _mapping(ctx, key, raw, "a context folder (string) or a mapping with context, dockerfile, args, target")
        data = {k: v for k, v in data.items() if k not in _BUILD_IGNORED}
        _check_keys(ctx, key, data, _BUILD_KEYS, "build")
        context_key = _join(key, "context")
    context_raw = data.get("context")
    context_text = "." if context_raw is None else _string(ctx, context_key, context_raw, "a folder path")
    if "://" in context_text or context_text.startswith("git@"):
        ctx.fail(context_key, f"the build context must be a local folder (a path relative to the compose file), {_got(context_text)}")
    context = (ctx.base / context_text).resolve()
    if not context.is_dir():
        ctx.fail(context_key, f"build context folder {context} does not exist (paths are relative to the compose file)")
    dockerfile = "Dockerfile"
    if data.get("dockerfile") is not None:
        dockerfile = _string(ctx, _join(key, "dockerfile"), data["dockerfile"], "a Dockerfile path relative to the context")
    target = None
    if data.get("target") is not None:
        target = _string(ctx, _join(key, "target"), data["target"], "a build stage name")
    args = _parse_key_values(ctx, _join(key, "args"), data.get("args"), "build args")
    return BuildSpec(context=context, dockerfile=dockerfile, args=args, target=target)


_DEPLOY_IGNORED = ("replicas", "mode", "placement", "update_config", "rollback_config", "restart_policy", "labels", "endpoint_mode")


def _parse_deploy(
    ctx: _Ctx, key: str, raw: object, notes: dict[str, list[str]], service: str
) -> tuple[float | None, int | None]:
    deploy = _mapping(ctx, key, raw)
    for ignored in _DEPLOY_IGNORED:
        if ignored in deploy:
            notes.setdefault(f"deploy.{ignored}", []).append(service)
    deploy = {k: v for k, v in deploy.items() if k not in _DEPLOY_IGNORED}
    _check_keys(ctx, key, deploy, ("resources",), "deploy (peakchaos reads deploy.resources.limits.cpus/memory)")
    if deploy.get("resources") is None:
        return None, None
    rkey = _join(key, "resources")
    resources = _mapping(ctx, rkey, deploy["resources"])
    if "reservations" in resources:
        notes.setdefault("deploy.resources.reservations", []).append(service)
    resources = {k: v for k, v in resources.items() if k != "reservations"}
    _check_keys(ctx, rkey, resources, ("limits",), "deploy.resources (peakchaos reads limits.cpus/memory)")
    if resources.get("limits") is None:
        return None, None
    lkey = _join(rkey, "limits")
    limits = _mapping(ctx, lkey, resources["limits"])
    if "pids" in limits:
        notes.setdefault("deploy.resources.limits.pids", []).append(service)
    limits = {k: v for k, v in limits.items() if k != "pids"}
    _check_keys(ctx, lkey, limits, ("cpus", "memory"), "deploy.resources.limits")
    cpus = _cpus(ctx, _join(lkey, "cpus"), limits["cpus"]) if limits.get("cpus") is not None else None
    mem = _memory(ctx, _join(lkey, "memory"), limits["memory"]) if limits.get("memory") is not None else None
    return cpus, mem


def _parse_argv(ctx: _Ctx, key: str, raw: object) -> list[str] | None:
    if raw is None:
        return None
    if isinstance(raw, str):
        try:
            return shlex.split(raw)
        except ValueError as exc:
            ctx.fail(key, f"cannot split {raw!r} into words like a shell would ({exc}); use a list instead")
    items = _list(ctx, key, raw, "a string (split like a shell) or a list of strings")
    return [_scalar_text(ctx, _join(key, i), item, "a string") for i, item in enumerate(items)]


def _parse_key_values(ctx: _Ctx, key: str, raw: object, what: str) -> dict[str, str]:
    """A map or a list of ``K=V``; a valueless ``K`` (or ``K:`` null) takes the variable's value, if set."""
    out: dict[str, str] = {}
    if raw is None:
        return out
    expected_value = "a string, number or boolean"
    if isinstance(raw, dict):
        data = _mapping(ctx, key, raw)
        for name, value in data.items():
            ikey = _join(key, name)
            _env_name(ctx, ikey, name)
            if value is None:
                if name in ctx.lookup:
                    out[name] = ctx.lookup[name]
                continue
            out[name] = _scalar_text(ctx, ikey, value, expected_value)
        return out
    items = _list(ctx, key, raw, f"{what} as a mapping (KEY: value) or a list of 'KEY=value' strings")
    for i, item in enumerate(items):
        ikey = _join(key, i)
        text = _string(ctx, ikey, item, "a 'KEY=value' string")
        name, sep, value_text = text.partition("=")
        _env_name(ctx, ikey, name)
        if sep:
            out[name] = value_text
        elif name in ctx.lookup:
            out[name] = ctx.lookup[name]
    return out


def _env_name(ctx: _Ctx, key: str, name: str) -> None:
    if not name or any(ch.isspace() for ch in name) or "=" in name:
        ctx.fail(key, f"invalid variable name {name!r}; write KEY=value with a KEY without spaces or '='")


def _parse_environment(ctx: _Ctx, key: str, data: Mapping[str, object]) -> dict[str, str]:
    env: dict[str, str] = {}
    raw_files = data.get("env_file")
    if raw_files is not None:
        fkey = _join(key, "env_file")
        if isinstance(raw_files, str):
            files: list[tuple[str, object]] = [(fkey, raw_files)]
        else:
            items = _list(ctx, fkey, raw_files, "a path or a list of paths")
            files = [(_join(fkey, i), item) for i, item in enumerate(items)]
        for ikey, item in files:
            rel = _string(ctx, ikey, item, "a path relative to the compose file")
            # a file's $VARs see the shell/.env and, over them, the files read before it
            env.update(_read_env_file(ctx, ikey, (ctx.base / rel).resolve(), {**ctx.lookup, **env}))
    env.update(_parse_key_values(ctx, _join(key, "environment"), data.get("environment"), "environment"))
    return env


_PORT_RANGE = re.compile(r"^\s*[0-9]+\s*-\s*[0-9]+\s*$")


def _host_ip(ctx: _Ctx, key: str, ip: str, example: str) -> None:
    if ip.strip("[]") not in _LOCAL_IPS:
        ctx.fail(
            key,
            f"host IP {ip!r} is not allowed: peakchaos publishes ports on 127.0.0.1 only, so a test stack is "
            f"never reachable from other machines; write {example!r} or leave the IP out",
        )


def _protocol(ctx: _Ctx, key: str, value: object) -> str:
    proto = _string(ctx, key, value, "'tcp' or 'udp'").strip().lower()
    if proto not in ("tcp", "udp"):
        ctx.fail(key, f"protocol must be 'tcp' or 'udp', got {value!r}")
    return proto


def _no_range(ctx: _Ctx, key: str, text: str) -> None:
    if _PORT_RANGE.match(text):
        ctx.fail(key, f"port ranges ({text.strip()!r}) are not supported; list each port on its own")


def _parse_ports(
    ctx: _Ctx, key: str, raw: object, published: dict[tuple[int, str], str]
) -> list[PortSpec]:
    if raw is None:
        return []
    items = _list(ctx, key, raw, "a list of ports such as '8000', '8080:8000' or '127.0.0.1::8000'")
    ports: list[PortSpec] = []
    for i, item in enumerate(items):
        ikey = _join(key, i)
        if isinstance(item, dict):
            port = _parse_port_long(ctx, ikey, item)
        elif isinstance(item, int) and not isinstance(item, bool):
            port = PortSpec(_port(ctx, ikey, item), "tcp", None, "127.0.0.1")
        elif isinstance(item, str):
            port = _parse_port_short(ctx, ikey, item)
        else:
            ctx.fail(
                ikey,
                "expected a port such as 8000, '8080:8000', '127.0.0.1:8080:8000', '8000/udp' or a mapping "
                f"with target, published, host_ip, protocol; {_got(item)}",
            )
        if port.host_port is not None:
            slot = (port.host_port, port.protocol)
            if slot in published:
                ctx.fail(ikey, f"host port {port.host_port}/{port.protocol} is already published by {published[slot]}")
            published[slot] = ikey
        ports.append(port)
    return ports


def _parse_port_short(ctx: _Ctx, key: str, item: str) -> PortSpec:
    text = item.strip()
    proto = "tcp"
    if "/" in text:
        text, proto_text = text.rsplit("/", 1)
        proto = _protocol(ctx, key, proto_text)
    parts = text.rsplit(":", 2)
    ip, host = "", ""
    if len(parts) == 3:
        ip, host, container = parts
    elif len(parts) == 2:
        host, container = parts
    else:
        container = parts[0]
    for part in (host, container):
        _no_range(ctx, key, part)
    _host_ip(ctx, key, ip, f"127.0.0.1:{host}:{container}")
    if not _INT_TEXT.match(container):
        ctx.fail(key, f"cannot read {item!r} as a port; use '8000', '8080:8000', '127.0.0.1:8080:8000', '127.0.0.1::8000' or '8000/udp'")
    if host and not _INT_TEXT.match(host):
        ctx.fail(
            key,
            f"cannot read host port {host!r} in {item!r}; use '8080:8000', '127.0.0.1:8080:8000' or "
            "'127.0.0.1::8000' (random host port)",
        )
    host_port = _port(ctx, key, host) if host else None
    return PortSpec(_port(ctx, key, container), proto, host_port, "127.0.0.1")


def _parse_port_long(ctx: _Ctx, key: str, raw: object) -> PortSpec:
    data = _mapping(ctx, key, raw)
    _check_keys(ctx, key, data, ("target", "published", "host_ip", "protocol"), "a port")
    target = _port(ctx, _join(key, "target"), _require(ctx, key, data, "target", "a port", "target is the container port"))
    host_port = None
    if data.get("published") is not None:
        pkey = _join(key, "published")
        published = data["published"]
        if isinstance(published, str):
            _no_range(ctx, pkey, published)
        host_port = _port(ctx, pkey, published)
    if data.get("host_ip") is not None:
        ip = _string(ctx, _join(key, "host_ip"), data["host_ip"], "'127.0.0.1'")
        _host_ip(ctx, _join(key, "host_ip"), ip, "127.0.0.1")
    proto = _protocol(ctx, _join(key, "protocol"), data["protocol"]) if data.get("protocol") is not None else "tcp"
    return PortSpec(target, proto, host_port, "127.0.0.1")


def _parse_expose(ctx: _Ctx, key: str, raw: object) -> list[int]:
    if raw is None:
        return []
    items = _list(ctx, key, raw, "a list of container ports such as [8000, 9000]")
    out: list[int] = []
    for i, item in enumerate(items):
        ikey = _join(key, i)
        if isinstance(item, str):
            text = item.strip()
            if "/" in text:
                text, proto = text.rsplit("/", 1)
                if _protocol(ctx, ikey, proto) != "tcp":
                    ctx.fail(ikey, f"expose is for tcp ports; publish udp ports under 'ports' (e.g. '{text}/udp'), got {item!r}")
            _no_range(ctx, ikey, text)
            item = text
        out.append(_port(ctx, ikey, item))
    return out


def _parse_depends_on(ctx: _Ctx, key: str, raw: object, notes: dict[str, list[str]], service: str) -> list[_Dep]:
    if raw is None:
        return []
    deps: list[_Dep] = []
    if isinstance(raw, dict):
        data = _mapping(ctx, key, raw)
        for name, value in data.items():
            ikey = _join(key, name)
            condition = "service_started"
            if value is not None:
                entry = _mapping(ctx, ikey, value, "a mapping with 'condition'")
                for extra in ("restart", "required"):
                    if extra in entry:
                        notes.setdefault(f"depends_on.*.{extra}", []).append(service)
                entry = {k: v for k, v in entry.items() if k not in ("restart", "required")}
                _check_keys(ctx, ikey, entry, ("condition",), "depends_on")
                if entry.get("condition") is not None:
                    ckey = _join(ikey, "condition")
                    condition = _string(ctx, ckey, entry["condition"], f"one of {', '.join(_CONDITIONS)}")
                    if condition not in _CONDITIONS:
                        ctx.fail(ckey, f"unknown condition {condition!r}; valid conditions: {', '.join(_CONDITIONS)}")
            deps.append(_Dep(DependsOn(name, condition), ikey))
    else:
        items = _list(ctx, key, raw, "a list of service names or a mapping of service: {condition: ...}")
        for i, item in enumerate(items):
            ikey = _join(key, i)
            deps.append(_Dep(DependsOn(_string(ctx, ikey, item, "a service name"), "service_started"), ikey))
    return deps


def _parse_healthcheck(ctx: _Ctx, key: str, raw: object) -> HealthcheckSpec | None:
    if raw is None:
        return None
    allowed = ("test", "interval", "timeout", "retries", "start_period", "start_interval", "disable")
    data = _mapping(ctx, key, raw, f"a mapping with {', '.join(allowed)}")
    _check_keys(ctx, key, data, allowed, "healthcheck")
    disabled = _boolean(ctx, _join(key, "disable"), data["disable"]) if data.get("disable") is not None else False
    tkey = _join(key, "test")
    raw_test = data.get("test")
    if disabled:
        if raw_test is not None and raw_test != ["NONE"] and raw_test != "NONE":
            ctx.fail(_join(key, "disable"), "'disable: true' and 'test' contradict each other; remove one")
        return None
    if raw_test is None:
        ctx.fail(
            tkey,
            "missing: peakchaos needs the check command (it does not read the image's HEALTHCHECK), e.g. "
            "test: [\"CMD\", \"curl\", \"-f\", \"http://localhost:8000/health\"] or a shell command string",
        )
    test = _parse_health_test(ctx, tkey, raw_test)
    if test is None:
        return None
    return HealthcheckSpec(
        test=test,
        interval_s=_duration(ctx, _join(key, "interval"), data["interval"], 0.001)
        if data.get("interval") is not None
        else DEFAULT_INTERVAL_S,
        timeout_s=_duration(ctx, _join(key, "timeout"), data["timeout"], 0.001)
        if data.get("timeout") is not None
        else DEFAULT_TIMEOUT_S,
        retries=_integer(ctx, _join(key, "retries"), data["retries"], 1, 1_000_000, "a whole number of retries")
        if data.get("retries") is not None
        else DEFAULT_RETRIES,
        start_period_s=_duration(ctx, _join(key, "start_period"), data["start_period"], 0.0)
        if data.get("start_period") is not None
        else DEFAULT_START_PERIOD_S,
    )


def _parse_health_test(ctx: _Ctx, key: str, raw: object) -> list[str] | None:
    if isinstance(raw, str):
        if raw.strip() == "NONE":
            return None
        if not raw.strip():
            ctx.fail(key, "the check command is empty")
        return ["CMD-SHELL", raw]
    items = _list(ctx, key, raw, "a list such as [\"CMD\", \"curl\", \"-f\", \"http://localhost/health\"] or a shell command string")
    test = [_scalar_text(ctx, _join(key, i), item, "a string") for i, item in enumerate(items)]
    if not test:
        ctx.fail(key, "the check command is empty")
    head = test[0]
    if head == "NONE":
        return None
    if head == "CMD" and len(test) >= 2:
        return test
    if head == "CMD-SHELL" and len(test) == 2:
        return test
    if head == "CMD":
        ctx.fail(key, "[\"CMD\"] needs the program and its arguments after it, e.g. [\"CMD\", \"curl\", \"-f\", \"http://localhost/health\"]")
    if head == "CMD-SHELL":
        ctx.fail(key, f"[\"CMD-SHELL\", ...] takes exactly one shell command string, got {len(test) - 1}")
    ctx.fail(
        key,
        f"the first item must be 'CMD', 'CMD-SHELL' or 'NONE', got {head!r}; write {json.dumps(['CMD', *test])} "
        "or one string for a shell command",
    )


