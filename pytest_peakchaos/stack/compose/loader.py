"""``load_compose``: one compose file, or several merged like ``-f a.yml -f b.yml``, into a StackSpec.

The steps: read each file (:mod:`.yamlfile`), interpolate it (:mod:`.interpolate`), merge them,
decide every key by the policy (:mod:`.policy`), read the services (:mod:`.services`, :mod:`.mounts`)
and the ``x-peakchaos`` block (:mod:`.link`). Every problem found on the way is collected, and one
:class:`ComposeError` lists them all.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from . import policy
from .interpolate import _interpolate_tree, _read_env_file
from .link import _parse_peakchaos
from .mounts import parse_top_files
from .services import _SERVICE_NAME, Declared, _Dep, _parse_service
from .specs import LinkSpec, ServiceSpec, StackSpec
from .values import _ROOT, _Ctx, _got, _join, _mapping, _string, Problem
from .yamlfile import load_document, merge_documents

_PROJECT_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_VOLUME_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_VOLUME_IGNORED = ("driver", "driver_opts", "external", "labels", "name")
_NETWORK_KEYS = ("driver", "driver_opts", "attachable", "enable_ipv4", "enable_ipv6", "external", "internal", "ipam", "labels", "name")


def _default_project(folder: Path) -> str:
    name = re.sub(r"[^a-z0-9_-]", "", folder.name.lower()).lstrip("_-")
    return name or "peakchaos"


def load_compose(
    path: str | Path | Sequence[str | Path], environ: Mapping[str, str] | None = None
) -> StackSpec:
    """Parse the compose file(s) at ``path`` (and the ``x-peakchaos`` block) into a :class:`StackSpec`.

    ``path`` may be a list: later files override and extend earlier ones, as with ``docker compose
    -f a.yml -f b.yml``; relative paths in every file are relative to the first file's folder (the
    project folder). ``environ`` supplies ``${VAR}`` values (default: ``os.environ``), over a
    ``.env`` file in the project folder. Raises :class:`ComposeError` listing every problem.
    """
    paths = [path] if isinstance(path, (str, Path)) else list(path)
    if not paths:
        raise ValueError("load_compose: give at least one compose file")
    files = [Path(p).expanduser().resolve() for p in paths]
    shown = " + ".join(str(p) for p in paths)
    base = files[0].parent
    environment = dict(os.environ if environ is None else environ)
    variables: dict[str, str] = {}
    documents = []
    for raw_path, file in zip(paths, files):
        bootstrap = _Ctx(str(raw_path), base, environment)
        documents.append(load_document(bootstrap, file))
    dotenv = base / ".env"
    if dotenv.is_file():
        variables.update(_read_env_file(_Ctx(str(dotenv), base, environment), ".env", dotenv, environment))
    variables.update(environment)
    interpolated = []
    problems: list[Problem] = []
    for raw_path, document in zip(paths, documents):
        fctx = _Ctx(str(raw_path), base, variables)
        value = fctx.guard(_interpolate_tree, fctx, "", document)
        problems += fctx.problems
        if isinstance(value, dict):
            interpolated.append(value)
    ctx = _Ctx(shown, base, variables)
    ctx.problems += problems
    if problems:
        ctx.raise_problems()
    data = merge_documents(interpolated)
    spec = _read(ctx, data, files)
    ctx.raise_problems()
    return spec


def _top_level(ctx: _Ctx, data: Mapping[str, object], notes: dict[str, list[str]]) -> None:
    for k in data:
        if k.startswith("x-"):
            continue
        r = policy.TOP_LEVEL.get(k)
        if r is None:
            ctx.problems.append(Problem(ctx.file, k, f"unknown top-level key {k!r} (not in the Compose Specification); valid keys: "
                                        f"{', '.join(policy.TOP_LEVEL)} and x-* extension fields; see docs/compose.md"))
        elif r.decision == policy.REJECTED:
            ctx.problems.append(Problem(ctx.file, k, f"{k!r} is not supported: {r.text}"))
        elif r.decision == policy.IGNORED:
            notes.setdefault(k, []).append("(top level)")


def _volumes(ctx: _Ctx, raw: object, notes: dict[str, list[str]]) -> list[str]:
    volumes: list[str] = []
    if raw is None:
        return volumes
    vdata = _mapping(ctx, "volumes", raw, "a mapping of volume names (e.g. volumes: {data: {}})")
    for name, options in vdata.items():
        vkey = _join("volumes", name)
        if not _VOLUME_NAME.match(name):
            ctx.problems.append(Problem(ctx.file, vkey, f"a volume name uses letters, digits, '_', '.' and '-', {_got(name)}"))
            continue
        if options is not None:
            opts = ctx.guard(_mapping, ctx, vkey, options, "null or a mapping")
            for opt in opts or {}:
                if opt in _VOLUME_IGNORED:
                    notes.setdefault(f"volumes.*.{opt}", []).append(name)
                else:
                    ctx.problems.append(Problem(ctx.file, _join(vkey, opt), f"unknown volume option {opt!r}; valid: {', '.join(_VOLUME_IGNORED)} (all ignored: peakchaos creates a fresh volume per run)"))
        volumes.append(name)
    return volumes


def _networks(ctx: _Ctx, raw: object, notes: dict[str, list[str]]) -> list[str]:
    if raw is None:
        return []
    data = _mapping(ctx, "networks", raw, "a mapping of network names")
    for name, options in data.items():
        if options is None:
            continue
        opts = ctx.guard(_mapping, ctx, _join("networks", name), options, "null or a mapping")
        for opt in opts or {}:
            if opt not in _NETWORK_KEYS:
                ctx.problems.append(Problem(ctx.file, _join(_join("networks", name), opt), f"unknown network option {opt!r}; valid: {', '.join(_NETWORK_KEYS)}"))
    if data:
        notes.setdefault("networks", []).extend(data)
    return list(data)


def _active_profiles(ctx: _Ctx) -> set[str]:
    text = ctx.lookup.get("COMPOSE_PROFILES", "")
    return {p.strip() for p in text.split(",") if p.strip()}


def _read(ctx: _Ctx, data: dict[str, object], files: list[Path]) -> StackSpec:
    notes: dict[str, list[str]] = {}
    _top_level(ctx, data, notes)
    project = _default_project(files[0].parent)
    if data.get("name") is not None:
        got = ctx.guard(_string, ctx, "name", data["name"], "a project name")
        if got is not None and not _PROJECT_NAME.match(got):
            ctx.problems.append(Problem(ctx.file, "name", f"a project name uses only a-z, 0-9, '_' and '-' and starts with a letter or digit, {_got(got)}"))
        elif got is not None:
            project = got
    volumes = ctx.guard(_volumes, ctx, data.get("volumes"), notes) or []
    networks = ctx.guard(_networks, ctx, data.get("networks"), notes) or []
    declared = Declared(
        volumes=volumes,
        secrets=ctx.guard(parse_top_files, ctx, "secrets", data.get("secrets"), "/run/secrets/") or {},
        configs=ctx.guard(parse_top_files, ctx, "configs", data.get("configs"), "/") or {},
        networks=networks,
    )

    if "services" not in data or data["services"] is None:
        ctx.fail("services", "missing: a compose file needs a 'services' mapping with at least one service")
    raw_services = _mapping(ctx, "services", data["services"], "a mapping of service name to service")
    if not raw_services:
        ctx.fail("services", "is empty: define at least one service")
    active = _active_profiles(ctx)
    inactive: dict[str, list[str]] = {}
    services: dict[str, ServiceSpec] = {}
    deps: dict[str, list[_Dep]] = {}
    published: dict[tuple[int, str], str] = {}
    for name, raw in raw_services.items():
        if not _SERVICE_NAME.match(name):
            ctx.problems.append(Problem(ctx.file, _join("services", name), f"a service name uses letters, digits, '_', '.' and '-', {_got(name)}"))
            continue
        profiles = raw.get("profiles") if isinstance(raw, dict) else None
        if profiles is not None:
            if not isinstance(profiles, list) or not all(isinstance(p, str) for p in profiles):
                ctx.problems.append(Problem(ctx.file, _join(_join("services", name), "profiles"), f"expected a list of profile names, {_got(profiles)}"))
                continue
            if not active.intersection(profiles) and "*" not in active:
                inactive[name] = list(profiles)
                continue
        parsed = ctx.guard(_parse_service, ctx, name, raw, declared, published, notes)
        if parsed is not None:
            services[name], deps[name] = parsed
    if not services and not ctx.problems:
        ctx.fail("services", "no service is active: every service has profiles; set COMPOSE_PROFILES to start some")

    for name, entries in deps.items():
        for dep in entries:
            target = dep.spec.service
            if target == name:
                ctx.problems.append(Problem(ctx.file, dep.key, f"service {name!r} cannot depend on itself"))
            elif target in inactive:
                ctx.problems.append(Problem(ctx.file, dep.key, f"{target!r} is only in profiles {', '.join(inactive[target])}, none active; set COMPOSE_PROFILES={inactive[target][0]} (or remove the dependency)"))
            elif target not in services:
                if target in raw_services:
                    continue  # its own problems are reported already
                ctx.problems.append(Problem(ctx.file, dep.key, f"no service named {target!r}; services in this file: {', '.join(raw_services)}"))
            elif dep.spec.condition == "service_healthy" and services[target].healthcheck is None:
                ctx.problems.append(Problem(
                    ctx.file, dep.key,
                    f"condition service_healthy needs a healthcheck on {target!r}; add services.{target}.healthcheck "
                    "or use condition: service_started",
                ))
    got_xp = ctx.guard(_parse_peakchaos, ctx, data.get("x-peakchaos"), services)
    links, ledger = got_xp if got_xp is not None else ([], None)
    if not ctx.problems:
        _check_cycles(ctx, services, deps, links)
    note_lines = [
        f"{key} ({', '.join(dict.fromkeys(where))}): ignored: {_why(key)}" for key, where in notes.items()
    ]
    return StackSpec(
        path=files[0], project=project, services=services, volumes=volumes, links=links, ledger=ledger,
        notes=note_lines, files=files,
    )


def _why(key: str) -> str:
    r = policy.SERVICE.get(key) or policy.TOP_LEVEL.get(key)
    if r is not None and r.decision == policy.IGNORED:
        return r.text
    if key == "networks":
        return "one private network per run; services' aliases are honoured"
    if key.startswith("volumes."):
        return "peakchaos creates a fresh local volume per run"
    if key.startswith("deploy"):
        return "peakchaos reads only deploy.resources.limits.cpus/memory"
    if key.startswith("depends_on"):
        return "a test run never restarts containers, and every listed service is started"
    return "not needed for a test run"


def _check_cycles(
    ctx: _Ctx, services: Mapping[str, ServiceSpec], deps: Mapping[str, list[_Dep]], links: Sequence[LinkSpec]
) -> None:
    edges: dict[str, list[tuple[str, str, bool]]] = {name: [(d.spec.service, d.key, False) for d in deps[name]] for name in services}
    for i, link in enumerate(links):
        if all(target != link.service for target, _, _ in edges[link.client]):
            edges[link.client].append((link.service, f"x-peakchaos.links[{i}]", True))
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for target, _, _ in edges[node]:
            if state.get(target) == 1:
                return stack[stack.index(target) :] + [target]
            if target not in state:
                found = visit(target)
                if found is not None:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for name in services:
        if name in state:
            continue
        cycle = visit(name)
        if cycle is None:
            continue
        steps = list(zip(cycle, cycle[1:]))
        first_key = next(k for target, k, _ in edges[steps[0][0]] if target == steps[0][1])
        implicit = [
            f"{a} -> {b} comes from {k} (a link's client starts after its service)"
            for a, b in steps
            for target, k, is_link in edges[a]
            if target == b and is_link
        ]
        note = f"; {'; '.join(implicit)}" if implicit else ""
        ctx.guard(
            ctx.fail,
            first_key,
            f"dependency cycle {' -> '.join(cycle)} ('a -> b' means a starts after b){note}; remove one of these "
            "dependencies",
        )
        return
