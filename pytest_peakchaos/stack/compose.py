"""Read a docker-compose file plus its ``x-peakchaos`` block into frozen specs.

peakchaos supports a deliberate subset of the compose format (see ``docs/compose.md``). Anything
outside it is a :class:`ComposeError` that names the file, the key path, what is wrong and how to
fix it: nothing is ignored silently. The module is pure — it reads files, never Docker or the
network — so every backend (docker, local, external) shares one parser.

Compose behaviours kept on purpose:

* ``${VAR}``, ``$VAR``, ``${VAR:-default}``, ``${VAR-default}``, ``${VAR:?message}``,
  ``${VAR?message}``, ``${VAR:+alt}``, ``${VAR+alt}`` and ``$$`` are interpolated in every string
  value (not in keys) before validation; an undefined ``${VAR}`` is an empty string.
* Variables come from ``environ`` (default ``os.environ``) over a ``.env`` file next to the compose
  file, when there is one.
* YAML is read with the YAML 1.2 core schema, like compose's Go parser: ``22:22`` is a string (not
  the sexagesimal integer 1342), ``yes``/``no``/``on``/``off`` are strings, dates are strings, and a
  key repeated in one mapping is an error.
"""

from __future__ import annotations

import json
import os
import re
import shlex
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import yaml
from yaml.constructor import ConstructorError

from pytest_peakchaos.units import parse_duration

__all__ = [
    "ComposeError",
    "BuildSpec",
    "HealthcheckSpec",
    "PortSpec",
    "VolumeMount",
    "DependsOn",
    "ServiceSpec",
    "LinkSpec",
    "LedgerSpec",
    "StackSpec",
    "load_compose",
    "DEFAULT_LISTEN_PORT",
]

#: Toxiproxy listen port of the first link; link ``i`` defaults to ``DEFAULT_LISTEN_PORT + i``.
DEFAULT_LISTEN_PORT = 8666
#: Healthcheck defaults. ``interval`` is peakchaos' own (compose/Docker use 30s, far too slow for a
#: test that waits for a stack); the others are the ones a test stack usually needs.
DEFAULT_INTERVAL_S = 1.0
DEFAULT_TIMEOUT_S = 5.0
DEFAULT_RETRIES = 30
DEFAULT_START_PERIOD_S = 0.0

_ROOT = "<root>"  # key path used for problems with the document itself


# --------------------------------------------------------------------------------------------------
# Public types
# --------------------------------------------------------------------------------------------------


class ComposeError(ValueError):
    """A compose file peakchaos cannot use. ``str(err)`` is ``"<file>: <key path>: <what, how to fix>"``."""

    def __init__(self, file: str, key: str, detail: str) -> None:
        super().__init__(f"{file}: {key}: {detail}")
        self.file = file
        self.key = key
        self.detail = detail

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.file, self.key, self.detail))


@dataclass(frozen=True)
class BuildSpec:
    context: Path  # absolute
    dockerfile: str
    args: dict[str, str]


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
    source: str  # a named volume declared under the top-level ``volumes``
    target: str
    read_only: bool


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

    def container_ports(self) -> list[int]:
        """Container ports of ``ports`` then ``expose``, each once, in order."""
        seen: list[int] = []
        for port in [p.container_port for p in self.ports] + list(self.expose):
            if port not in seen:
                seen.append(port)
        return seen


@dataclass(frozen=True)
class LinkSpec:
    name: str
    service: str  # the legacy service
    port: int  # legacy's port
    client: str  # the cloud service that calls it
    env: str  # client's env var whose value contains "<service>:<port>"
    listen_port: int  # Toxiproxy's port for this link


@dataclass(frozen=True)
class LedgerSpec:
    service: str
    port: int
    path: str


@dataclass(frozen=True)
class StackSpec:
    path: Path  # the compose file, absolute
    project: str
    services: dict[str, ServiceSpec]  # file order
    volumes: list[str]
    links: list[LinkSpec]
    ledger: LedgerSpec | None

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


# --------------------------------------------------------------------------------------------------
# YAML: 1.2 core schema (like compose's Go parser) and no duplicate keys
# --------------------------------------------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """A SafeLoader (no arbitrary objects) with YAML 1.2 core scalars and duplicate-key errors."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        seen: set[object] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, Hashable):
                if key in seen:
                    raise ConstructorError(
                        "while constructing a mapping",
                        node.start_mark,
                        f"found duplicate key {key!r}; each key may appear once in a mapping",
                        key_node.start_mark,
                    )
                seen.add(key)
        return super().construct_mapping(node, deep)


def _construct_int(loader: yaml.SafeLoader, node: yaml.Node) -> int:
    assert isinstance(node, yaml.ScalarNode)
    text = loader.construct_scalar(node).replace("_", "")
    if text.startswith(("0o", "0O")):
        return int(text[2:], 8)
    if text.startswith(("0x", "0X")):
        return int(text[2:], 16)
    return int(text, 10)


def _construct_float(loader: yaml.SafeLoader, node: yaml.Node) -> float:
    assert isinstance(node, yaml.ScalarNode)
    text = loader.construct_scalar(node).lower()
    if text.endswith(".inf"):
        return float("-inf") if text.startswith("-") else float("inf")
    if text == ".nan":
        return float("nan")
    return float(text)


_Loader.yaml_implicit_resolvers = {}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:int", re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"), list("-+0123456789")
)
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+0123456789."),
)
_Loader.add_implicit_resolver("tag:yaml.org,2002:null", re.compile(r"^(?:~|null|Null|NULL|)$"), ["~", "n", "N", ""])
_Loader.add_implicit_resolver("tag:yaml.org,2002:merge", re.compile(r"^(?:<<)$"), ["<"])
_Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)
_Loader.add_constructor("tag:yaml.org,2002:float", _construct_float)


# --------------------------------------------------------------------------------------------------
# Small helpers: errors, types, key paths
# --------------------------------------------------------------------------------------------------


class _Ctx:
    def __init__(self, file: str, base: Path, lookup: Mapping[str, str]) -> None:
        self.file = file
        self.base = base  # folder of the compose file, absolute
        self.lookup = lookup  # variables for interpolation and valueless environment entries

    def fail(self, key: str, detail: str) -> NoReturn:
        raise ComposeError(self.file, key, detail)


def _join(parent: str, child: str | int) -> str:
    if isinstance(child, int):
        return f"{parent}[{child}]"
    return f"{parent}.{child}" if parent else child


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def _got(value: object) -> str:
    if value is None:
        return "got nothing (null)"
    text = repr(value)
    if len(text) > 80:
        text = text[:77] + "..."
    return f"got {text} ({_kind(value)})"


def _mapping(ctx: _Ctx, key: str, value: object, expected: str = "a mapping") -> dict[str, object]:
    if not isinstance(value, dict):
        ctx.fail(key, f"expected {expected}, {_got(value)}")
    out: dict[str, object] = {}
    for k, v in value.items():
        if not isinstance(k, str):
            ctx.fail(_join(key, str(k)), f"keys must be strings, got {k!r} ({_kind(k)}); quote it")
        out[k] = v
    return out


def _list(ctx: _Ctx, key: str, value: object, expected: str = "a list") -> list[object]:
    if not isinstance(value, list):
        ctx.fail(key, f"expected {expected}, {_got(value)}")
    return list(value)


def _string(ctx: _Ctx, key: str, value: object, expected: str = "a string") -> str:
    if not isinstance(value, str):
        ctx.fail(key, f"expected {expected}, {_got(value)}")
    if not value.strip():
        ctx.fail(key, f"expected {expected}, got an empty string")
    return value


def _scalar_text(ctx: _Ctx, key: str, value: object, expected: str) -> str:
    """A string, or a number/boolean written as compose does ("true", "3", "0.5")."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, str)):
        return str(value)
    ctx.fail(key, f"expected {expected}, {_got(value)}")


def _check_keys(ctx: _Ctx, key: str, mapping: Mapping[str, object], allowed: Sequence[str], what: str) -> None:
    for k in mapping:
        if k not in allowed:
            ctx.fail(_join(key, k), f"unknown key {k!r} in {what}; valid keys: {', '.join(allowed)}")


def _require(ctx: _Ctx, key: str, mapping: Mapping[str, object], name: str, what: str, needs: str) -> object:
    if name not in mapping or mapping[name] is None:
        ctx.fail(_join(key, name), f"missing required key {name!r} in {what}; {needs}")
    return mapping[name]


_INT_TEXT = re.compile(r"^\s*\+?[0-9]+\s*$")
_NUM_TEXT = re.compile(r"^\s*\+?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*$")


def _integer(ctx: _Ctx, key: str, value: object, lo: int, hi: int, expected: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and _INT_TEXT.match(value):
        number = int(value)
    else:
        ctx.fail(key, f"expected {expected}, {_got(value)}")
    if not lo <= number <= hi:
        ctx.fail(key, f"must be between {lo} and {hi}, got {number}")
    return number


def _port(ctx: _Ctx, key: str, value: object, lo: int = 1) -> int:
    return _integer(ctx, key, value, lo, 65535, f"a port number ({lo}..65535)")


def _number(ctx: _Ctx, key: str, value: object, expected: str) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str) and _NUM_TEXT.match(value):
        number = float(value)
    else:
        ctx.fail(key, f"expected {expected}, {_got(value)}")
    if number != number or number in (float("inf"), float("-inf")):
        ctx.fail(key, f"expected {expected}, {_got(value)}")
    return number


def _boolean(ctx: _Ctx, key: str, value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    ctx.fail(key, f"expected true or false, {_got(value)}")


_GO_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h)")
_GO_FACTORS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def _compose_duration(value: object) -> float:
    """Seconds for a compose duration: a number of seconds, ``"500ms"``, ``"1s"``, Go's ``"1m30s"``."""
    if not isinstance(value, (int, float, str)):
        raise ValueError(f"not a duration: {value!r}")
    try:
        return parse_duration(value, what="duration")
    except ValueError:
        if not isinstance(value, str):
            raise
    text = value.strip()
    pos, total = 0, 0.0
    while pos < len(text):
        match = _GO_DURATION_PART.match(text, pos)
        if match is None:
            raise ValueError(f"cannot read {value!r} as a duration")
        total += float(match[1]) * _GO_FACTORS[match[2]]
        pos = match.end()
    if not text:
        raise ValueError("empty duration")
    return total


def _duration(ctx: _Ctx, key: str, value: object, minimum: float) -> float:
    try:
        seconds = _compose_duration(value)
    except ValueError:
        ctx.fail(
            key,
            f"expected a duration such as '1s', '500ms', '1m30s' or a number of seconds, {_got(value)}",
        )
    if seconds < minimum:
        if minimum == 0:
            ctx.fail(key, f"must be zero or positive, {_got(value)}")
        ctx.fail(key, f"must be at least {minimum * 1000:g}ms, {_got(value)}")
    return seconds


_MEMORY = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([kmgtp]?)(i?)(b?)\s*$", re.IGNORECASE)
_MEMORY_FACTORS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4, "p": 1024**5}
_MIN_MEMORY = 6 * 1024**2  # Docker refuses smaller limits


def _memory(ctx: _Ctx, key: str, value: object) -> int:
    expected = "a memory size such as '512m', '1g', '256MiB' or a number of bytes"
    if isinstance(value, int) and not isinstance(value, bool):
        size = value
    elif isinstance(value, str) and (match := _MEMORY.match(value)) and not (match[3] and not match[2]):
        size = int(float(match[1]) * _MEMORY_FACTORS[match[2].lower()])
    else:
        ctx.fail(key, f"expected {expected}, {_got(value)}")
    if size < _MIN_MEMORY:
        ctx.fail(key, f"must be at least 6m (Docker refuses smaller memory limits), {_got(value)}")
    return size


def _cpus(ctx: _Ctx, key: str, value: object) -> float:
    cpus = _number(ctx, key, value, "a number of CPUs such as 0.5 or 2")
    if cpus < 0.01:
        ctx.fail(key, f"must be at least 0.01 (omit it for no limit), {_got(value)}")
    return cpus


# --------------------------------------------------------------------------------------------------
# Interpolation and env files
# --------------------------------------------------------------------------------------------------


class _InterpolationError(Exception):
    pass


_VAR_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_BRACED = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])(.*))?", re.DOTALL)


def _interpolate(text: str, lookup: Mapping[str, str]) -> str:
    if "$" not in text:
        return text
    out: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char != "$":
            out.append(char)
            i += 1
            continue
        nxt = text[i + 1 : i + 2]
        if nxt == "$":
            out.append("$")
            i += 2
        elif nxt == "{":
            end = _closing_brace(text, i + 2)
            if end < 0:
                raise _InterpolationError(f"unclosed '${{' in {text!r}; write '$$' for a literal '$'")
            out.append(_braced(text[i + 2 : end], lookup))
            i = end + 1
        elif match := _VAR_NAME.match(text, i + 1):
            out.append(lookup.get(match[0], ""))
            i = match.end()
        else:
            raise _InterpolationError(
                f"invalid interpolation in {text!r}: '$' must be followed by a variable name, "
                "'{' or another '$' (write '$$' for a literal '$')"
            )
    return "".join(out)


def _closing_brace(text: str, start: int) -> int:
    depth = 0
    j = start
    while j < len(text):
        if text.startswith("$$", j):
            j += 2
        elif text.startswith("${", j):
            depth += 1
            j += 2
        elif text[j] == "}":
            if depth == 0:
                return j
            depth -= 1
            j += 1
        else:
            j += 1
    return -1


def _braced(inner: str, lookup: Mapping[str, str]) -> str:
    match = _BRACED.fullmatch(inner)
    if match is None:
        raise _InterpolationError(
            f"invalid interpolation '${{{inner}}}'; valid forms: ${{VAR}}, ${{VAR:-default}}, ${{VAR-default}}, "
            "${VAR:?message}, ${VAR?message}, ${VAR:+alternative}, ${VAR+alternative}"
        )
    name, op, arg = match[1], match[2], match[3] or ""
    value = lookup.get(name)
    is_set = value is not None
    non_empty = bool(value)
    if op is None:
        return value or ""
    if op in (":-", "-"):
        use_default = not non_empty if op == ":-" else not is_set
        return _interpolate(arg, lookup) if use_default else (value or "")
    if op in (":?", "?"):
        missing = not non_empty if op == ":?" else not is_set
        if missing:
            message = _interpolate(arg, lookup) or "set it in the environment or in .env"
            raise _InterpolationError(f"required variable {name} is missing a value: {message}")
        return value or ""
    # ":+" / "+": the alternative when set
    present = non_empty if op == ":+" else is_set
    return _interpolate(arg, lookup) if present else ""


def _interpolate_tree(ctx: _Ctx, key: str, value: object) -> object:
    if isinstance(value, str):
        try:
            return _interpolate(value, ctx.lookup)
        except _InterpolationError as exc:
            ctx.fail(key or _ROOT, str(exc))
    if isinstance(value, list):
        return [_interpolate_tree(ctx, _join(key, i), item) for i, item in enumerate(value)]
    if isinstance(value, dict):
        return {k: _interpolate_tree(ctx, _join(key, str(k)), v) for k, v in value.items()}
    return value


_ENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")


def _read_env_file(ctx: _Ctx, key: str, path: Path, lookup: Mapping[str, str]) -> dict[str, str]:
    """``KEY=VALUE`` lines; ``#`` comments; optional ``export``; quotes; ``$VAR`` interpolated (not in '…')."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        ctx.fail(key, f"env file {path} does not exist; create it or remove it from the list")
    except (OSError, UnicodeDecodeError) as exc:
        ctx.fail(key, f"cannot read env file {path}: {exc}")
    values: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export ") :].lstrip()
        name, sep, rest = line.partition("=")
        name = name.strip()
        where = f"line {number} of {path}"
        if not _ENV_KEY.match(name):
            ctx.fail(key, f"{where}: expected KEY=VALUE with KEY made of letters, digits and _, got {raw.strip()!r}")
        if not sep:  # a bare KEY takes its value from the environment, when set there
            if name in lookup:
                values[name] = lookup[name]
            continue
        rest = rest.lstrip()
        chained = {**lookup, **values}
        try:
            if rest[:1] in ("'", '"'):
                quote = rest[0]
                end = _closing_quote(rest, quote)
                if end < 0:
                    ctx.fail(key, f"{where}: unterminated {quote} quote (values must fit on one line)")
                body = rest[1:end]
                trailing = rest[end + 1 :].strip()
                if trailing and not trailing.startswith("#"):
                    ctx.fail(key, f"{where}: unexpected text {trailing!r} after the closing quote")
                if quote == '"':
                    body = (
                        body.replace("\\\\", "\x00")
                        .replace('\\"', '"')
                        .replace("\\n", "\n")
                        .replace("\\t", "\t")
                        .replace("\x00", "\\")
                    )
                    values[name] = _interpolate(body, chained)
                else:
                    values[name] = body  # single quotes: literal
            else:
                comment = re.search(r"\s#", rest)
                if comment is not None:
                    rest = rest[: comment.start()]
                values[name] = _interpolate(rest.rstrip(), chained)
        except _InterpolationError as exc:
            ctx.fail(key, f"{where}: {exc}")
    return values


def _closing_quote(text: str, quote: str) -> int:
    j = 1
    while j < len(text):
        if quote == '"' and text[j] == "\\":
            j += 2
            continue
        if text[j] == quote:
            return j
        j += 1
    return -1


# --------------------------------------------------------------------------------------------------
# Services
# --------------------------------------------------------------------------------------------------

_SERVICE_KEYS = (
    "image",
    "build",
    "command",
    "entrypoint",
    "environment",
    "env_file",
    "ports",
    "expose",
    "depends_on",
    "healthcheck",
    "cpus",
    "mem_limit",
    "deploy",
    "user",
    "working_dir",
    "volumes",
    "tmpfs",
)
_SERVICE_KEY_REASONS = {
    "container_name": "peakchaos names containers per run (so runs never collide); remove it",
    "privileged": "privileged containers can reach the host, and peakchaos containers must not; remove it",
    "network_mode": "peakchaos puts every service on one private network per run, next to Toxiproxy; "
    "remove it (services reach each other by service name)",
    "networks": "peakchaos puts every service on one private network per run, next to Toxiproxy; "
    "remove it (services reach each other by service name)",
    "restart": "peakchaos never restarts containers: a service that exits fails the run, and capacity "
    "faults pause it on purpose; remove it",
}
_SERVICE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_CONDITIONS = ("service_started", "service_healthy", "service_completed_successfully")
_BIND_MOUNT = (
    "bind mounts are not supported: peakchaos containers must not see the host's files; use a named "
    "volume declared under the top-level 'volumes' key (e.g. 'data:/var/lib/app'), or COPY the files "
    "in the image's Dockerfile"
)
_LOCAL_IPS = ("", "127.0.0.1", "localhost")


@dataclass
class _Dep:
    spec: DependsOn
    key: str


def _parse_service(
    ctx: _Ctx, name: str, raw: object, volumes: Sequence[str], published: dict[tuple[int, str], str]
) -> tuple[ServiceSpec, list[_Dep]]:
    key = _join("services", name)
    if raw is None:
        ctx.fail(key, f"service {name!r} is empty; it needs 'image' or 'build'")
    data = _mapping(ctx, key, raw)
    for k in data:
        if k in _SERVICE_KEYS or k.startswith("x-"):
            continue
        reason = _SERVICE_KEY_REASONS.get(k)
        if reason is not None:
            ctx.fail(_join(key, k), f"{k!r} is not supported: {reason}")
        ctx.fail(
            _join(key, k),
            f"unsupported key {k!r} in service {name!r}; peakchaos supports: {', '.join(_SERVICE_KEYS)} "
            "(and x-* extension fields); see docs/compose.md",
        )

    image = None
    if data.get("image") is not None:
        image = _string(ctx, _join(key, "image"), data["image"], "an image name such as 'python:3.12-slim'")
        if any(ch.isspace() for ch in image):
            ctx.fail(_join(key, "image"), f"an image name has no spaces, {_got(image)}")
    build = _parse_build(ctx, _join(key, "build"), data["build"]) if data.get("build") is not None else None
    if image is None and build is None:
        ctx.fail(
            key,
            f"service {name!r} needs 'image' (an image to run) or 'build' (a folder with a Dockerfile), or both "
            "('image' then names the built image)",
        )

    cpus = _cpus(ctx, _join(key, "cpus"), data["cpus"]) if data.get("cpus") is not None else None
    mem = _memory(ctx, _join(key, "mem_limit"), data["mem_limit"]) if data.get("mem_limit") is not None else None
    if data.get("deploy") is not None:
        deploy_cpus, deploy_mem = _parse_deploy(ctx, _join(key, "deploy"), data["deploy"])
        limits = _join(key, "deploy.resources.limits")
        if deploy_cpus is not None:
            if cpus is not None and cpus != deploy_cpus:
                ctx.fail(_join(limits, "cpus"), f"{deploy_cpus:g} conflicts with {key}.cpus ({cpus:g}); set one")
            cpus = deploy_cpus
        if deploy_mem is not None:
            if mem is not None and mem != deploy_mem:
                ctx.fail(_join(limits, "memory"), f"{deploy_mem} bytes conflicts with {key}.mem_limit ({mem}); set one")
            mem = deploy_mem

    user = None
    if data.get("user") is not None:
        user = _scalar_text(ctx, _join(key, "user"), data["user"], "a user name or uid such as 'app' or '1000:1000'")
        if not user.strip():
            ctx.fail(_join(key, "user"), "expected a user name or uid such as 'app' or '1000:1000', got an empty string")
    working_dir = None
    if data.get("working_dir") is not None:
        working_dir = _string(ctx, _join(key, "working_dir"), data["working_dir"], "an absolute path such as '/app'")
        if not working_dir.startswith("/"):
            ctx.fail(_join(key, "working_dir"), f"must be an absolute path such as '/app', {_got(working_dir)}")

    deps = _parse_depends_on(ctx, _join(key, "depends_on"), data.get("depends_on"))
    spec = ServiceSpec(
        name=name,
        image=image,
        build=build,
        command=_parse_argv(ctx, _join(key, "command"), data.get("command")),
        entrypoint=_parse_argv(ctx, _join(key, "entrypoint"), data.get("entrypoint")),
        environment=_parse_environment(ctx, key, data),
        ports=_parse_ports(ctx, _join(key, "ports"), data.get("ports"), published),
        expose=_parse_expose(ctx, _join(key, "expose"), data.get("expose")),
        depends_on=[d.spec for d in deps],
        healthcheck=_parse_healthcheck(ctx, _join(key, "healthcheck"), data.get("healthcheck")),
        cpus=cpus,
        mem_limit_bytes=mem,
        user=user,
        working_dir=working_dir,
        volumes=_parse_volumes(ctx, _join(key, "volumes"), data.get("volumes"), volumes),
        tmpfs=_parse_tmpfs(ctx, _join(key, "tmpfs"), data.get("tmpfs")),
    )
    return spec, deps


def _parse_build(ctx: _Ctx, key: str, raw: object) -> BuildSpec:
    if isinstance(raw, str):
        data: dict[str, object] = {"context": raw}
        context_key = key
    else:
        data = _mapping(ctx, key, raw, "a context folder (string) or a mapping with context, dockerfile, args")
        _check_keys(ctx, key, data, ("context", "dockerfile", "args"), "build")
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
    args = _parse_key_values(ctx, _join(key, "args"), data.get("args"), "build args")
    return BuildSpec(context=context, dockerfile=dockerfile, args=args)


def _parse_deploy(ctx: _Ctx, key: str, raw: object) -> tuple[float | None, int | None]:
    deploy = _mapping(ctx, key, raw)
    _check_keys(ctx, key, deploy, ("resources",), "deploy (peakchaos supports deploy.resources.limits.cpus/memory only)")
    if deploy.get("resources") is None:
        return None, None
    rkey = _join(key, "resources")
    resources = _mapping(ctx, rkey, deploy["resources"])
    _check_keys(ctx, rkey, resources, ("limits",), "deploy.resources (peakchaos supports limits.cpus/memory only)")
    if resources.get("limits") is None:
        return None, None
    lkey = _join(rkey, "limits")
    limits = _mapping(ctx, lkey, resources["limits"])
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


def _parse_depends_on(ctx: _Ctx, key: str, raw: object) -> list[_Dep]:
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
    allowed = ("test", "interval", "timeout", "retries", "start_period", "disable")
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


def _parse_volumes(ctx: _Ctx, key: str, raw: object, declared: Sequence[str]) -> list[VolumeMount]:
    if raw is None:
        return []
    items = _list(ctx, key, raw, "a list of named volumes such as 'data:/var/lib/app'")
    mounts: list[VolumeMount] = []
    for i, item in enumerate(items):
        ikey = _join(key, i)
        if isinstance(item, str):
            mount = _parse_volume_short(ctx, ikey, item)
        elif isinstance(item, dict):
            mount = _parse_volume_long(ctx, ikey, item)
        else:
            ctx.fail(ikey, f"expected 'name:/path[:ro]' or a mapping with type: volume, source, target, read_only; {_got(item)}")
        if mount.source not in declared:
            ctx.fail(
                ikey,
                f"volume {mount.source!r} is not declared; add it under the top-level 'volumes' key "
                f"(volumes: {{{mount.source}: {{}}}})",
            )
        if not mount.target.startswith("/"):
            ctx.fail(ikey, f"the mount target must be an absolute path such as '/data', got {mount.target!r}")
        mounts.append(mount)
    return mounts


def _looks_like_path(source: str) -> bool:
    return source.startswith(("/", ".", "~", "\\")) or "/" in source or "\\" in source


def _parse_volume_short(ctx: _Ctx, key: str, item: str) -> VolumeMount:
    parts = item.split(":")
    if len(parts) == 1:
        if _looks_like_path(item):
            ctx.fail(
                key,
                f"anonymous volumes ({item!r}) are not supported; declare a named volume under the top-level "
                f"'volumes' key and write 'name:{item}'",
            )
        ctx.fail(key, f"expected 'name:/path' or 'name:/path:ro', got {item!r}")
    if len(parts) > 3:
        ctx.fail(key, f"expected 'name:/path' or 'name:/path:ro', got {item!r}")
    source, target = parts[0], parts[1]
    if _looks_like_path(source) or not source:
        ctx.fail(key, f"{_BIND_MOUNT}; got {item!r}")
    read_only = False
    if len(parts) == 3:
        mode = parts[2]
        if mode not in ("ro", "rw"):
            ctx.fail(key, f"unsupported mount option {mode!r} in {item!r}; valid options: ro, rw")
        read_only = mode == "ro"
    return VolumeMount(source, target, read_only)


def _parse_volume_long(ctx: _Ctx, key: str, raw: object) -> VolumeMount:
    data = _mapping(ctx, key, raw)
    _check_keys(ctx, key, data, ("type", "source", "target", "read_only"), "a volume mount")
    kind = _string(ctx, _join(key, "type"), _require(ctx, key, data, "type", "a volume mount", "write type: volume"), "'volume'")
    if kind == "bind":
        ctx.fail(_join(key, "type"), _BIND_MOUNT)
    if kind == "tmpfs":
        ctx.fail(_join(key, "type"), "use the service's 'tmpfs' key for tmpfs mounts (e.g. tmpfs: ['/tmp'])")
    if kind != "volume":
        ctx.fail(_join(key, "type"), f"unsupported mount type {kind!r}; valid types: volume")
    needs = "a volume mount needs type: volume, source (a declared volume) and target (a path)"
    source = _string(ctx, _join(key, "source"), _require(ctx, key, data, "source", "a volume mount", needs), "a volume name")
    if _looks_like_path(source):
        ctx.fail(_join(key, "source"), _BIND_MOUNT)
    target = _string(ctx, _join(key, "target"), _require(ctx, key, data, "target", "a volume mount", needs), "an absolute path")
    read_only = _boolean(ctx, _join(key, "read_only"), data["read_only"]) if data.get("read_only") is not None else False
    return VolumeMount(source, target, read_only)


def _parse_tmpfs(ctx: _Ctx, key: str, raw: object) -> list[str]:
    if raw is None:
        return []
    items: list[tuple[str, object]]
    if isinstance(raw, str):
        items = [(key, raw)]
    else:
        items = [(_join(key, i), v) for i, v in enumerate(_list(ctx, key, raw, "a path or a list of paths"))]
    out: list[str] = []
    for ikey, item in items:
        path = _string(ctx, ikey, item, "an absolute path such as '/tmp'")
        if not path.startswith("/"):
            ctx.fail(ikey, f"a tmpfs mount must be an absolute path such as '/tmp' (options after ':'), {_got(path)}")
        out.append(path)
    return out


# --------------------------------------------------------------------------------------------------
# x-peakchaos
# --------------------------------------------------------------------------------------------------

_LINK_KEYS = ("name", "service", "port", "client", "env", "listen_port")
_LINK_NEEDS = "a link needs service, port, client and env (optional: name, listen_port)"
_LEDGER_KEYS = ("service", "port", "path")
_LINK_NAME = re.compile(r"^[a-z0-9_-]+$")


def _known_service(ctx: _Ctx, key: str, value: object, services: Mapping[str, ServiceSpec]) -> str:
    name = _string(ctx, key, value, "a service name")
    if name not in services:
        ctx.fail(key, f"no service named {name!r}; services in this file: {', '.join(services)}")
    return name


def _parse_peakchaos(
    ctx: _Ctx, raw: object, services: Mapping[str, ServiceSpec]
) -> tuple[list[LinkSpec], LedgerSpec | None]:
    key = "x-peakchaos"
    if raw is None:
        return [], None
    data = _mapping(ctx, key, raw, "a mapping with links and ledger")
    _check_keys(ctx, key, data, ("links", "ledger"), "x-peakchaos")
    links: list[LinkSpec] = []
    if data.get("links") is not None:
        lkey = _join(key, "links")
        names: dict[str, str] = {}
        listen: dict[int, str] = {}
        for i, item in enumerate(_list(ctx, lkey, data["links"], "a list of links")):
            link = _parse_link(ctx, _join(lkey, i), i, item, services)
            ikey = _join(lkey, i)
            if link.name in names:
                ctx.fail(_join(ikey, "name"), f"link name {link.name!r} is already used by {names[link.name]}; names must be unique")
            names[link.name] = ikey
            if link.listen_port in listen:
                how = "" if isinstance(item, dict) and item.get("listen_port") is not None else f" (the default, {DEFAULT_LISTEN_PORT} + {i})"
                ctx.fail(
                    _join(ikey, "listen_port"),
                    f"{link.listen_port}{how} is already used by {listen[link.listen_port]}; each link needs its own listen_port",
                )
            listen[link.listen_port] = ikey
            links.append(link)
    ledger = None
    if data.get("ledger") is not None:
        gkey = _join(key, "ledger")
        ledger_data = _mapping(ctx, gkey, data["ledger"], "a mapping with service, port, path")
        _check_keys(ctx, gkey, ledger_data, _LEDGER_KEYS, "x-peakchaos.ledger")
        needs = "the ledger needs service, port and path (GET http://<service>:<port><path> lists the orders)"
        service = _known_service(ctx, _join(gkey, "service"), _require(ctx, gkey, ledger_data, "service", "the ledger", needs), services)
        port = _port(ctx, _join(gkey, "port"), _require(ctx, gkey, ledger_data, "port", "the ledger", needs))
        path = _string(ctx, _join(gkey, "path"), _require(ctx, gkey, ledger_data, "path", "the ledger", needs), "a URL path such as '/orders'")
        if not path.startswith("/"):
            ctx.fail(_join(gkey, "path"), f"must start with '/', e.g. '/orders', {_got(path)}")
        ledger = LedgerSpec(service, port, path)
    return links, ledger


def _parse_link(ctx: _Ctx, key: str, index: int, raw: object, services: Mapping[str, ServiceSpec]) -> LinkSpec:
    data = _mapping(ctx, key, raw, "a mapping with service, port, client, env (optional: name, listen_port)")
    _check_keys(ctx, key, data, _LINK_KEYS, "a link")
    service = _known_service(ctx, _join(key, "service"), _require(ctx, key, data, "service", "a link", _LINK_NEEDS), services)
    port = _port(ctx, _join(key, "port"), _require(ctx, key, data, "port", "a link", _LINK_NEEDS))
    ckey = _join(key, "client")
    client = _known_service(ctx, ckey, _require(ctx, key, data, "client", "a link", _LINK_NEEDS), services)
    if client == service:
        ctx.fail(ckey, f"the client must be another service than the legacy service {service!r} it calls")
    ekey = _join(key, "env")
    env = _string(ctx, ekey, _require(ctx, key, data, "env", "a link", _LINK_NEEDS), "an environment variable name")
    authority = f"{service}:{port}"
    environment = services[client].environment
    if env not in environment:
        ctx.fail(
            ekey,
            f"service {client!r} has no environment variable {env!r}; set it under services.{client}.environment "
            f"to the legacy address, e.g. {env}: http://{authority}",
        )
    value = environment[env]
    if not re.search(rf"(?<![A-Za-z0-9_.-]){re.escape(authority)}(?![0-9])", value):
        ctx.fail(
            ekey,
            f"services.{client}.environment.{env} is {value!r}, which does not contain {authority!r}; peakchaos "
            f"rewrites that host:port to point at Toxiproxy, so write e.g. {env}: http://{authority}",
        )
    name = service
    if data.get("name") is not None:
        name = _string(ctx, _join(key, "name"), data["name"], "a link name")
    if not _LINK_NAME.match(name):
        ctx.fail(
            _join(key, "name"),
            f"link name {name!r} may use only a-z, 0-9, '_' and '-'"
            + ("" if data.get("name") is not None else " (it defaults to the service name; set name explicitly)"),
        )
    listen_port = DEFAULT_LISTEN_PORT + index
    if data.get("listen_port") is not None:
        listen_port = _integer(ctx, _join(key, "listen_port"), data["listen_port"], 1024, 65535, "a port number (1024..65535)")
    elif listen_port > 65535:
        ctx.fail(_join(key, "listen_port"), f"the default {listen_port} is not a port; set listen_port explicitly")
    return LinkSpec(name=name, service=service, port=port, client=client, env=env, listen_port=listen_port)


# --------------------------------------------------------------------------------------------------
# Top level
# --------------------------------------------------------------------------------------------------

_TOP_KEYS = ("services", "volumes", "name", "version", "x-peakchaos")
_TOP_KEY_REASONS = {
    "networks": "peakchaos creates one private network per run (with Toxiproxy on it); remove it",
    "configs": "not supported; bake configuration into the image or pass it through environment",
    "secrets": "not supported; pass test credentials through environment",
    "include": "not supported; put every service in this one file",
}
_PROJECT_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_VOLUME_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def _default_project(folder: Path) -> str:
    name = re.sub(r"[^a-z0-9_-]", "", folder.name.lower()).lstrip("_-")
    return name or "peakchaos"


def _load_document(ctx: _Ctx, path: Path) -> dict[str, object]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        ctx.fail(_ROOT, f"compose file {path} does not exist; check --peakchaos-stack or the path you passed")
    except IsADirectoryError:
        ctx.fail(_ROOT, f"{path} is a folder; pass the compose file inside it (e.g. compose/shop.yml)")
    except (OSError, UnicodeDecodeError) as exc:
        ctx.fail(_ROOT, f"cannot read the compose file: {exc}")
    try:
        document = yaml.load(text, Loader=_Loader)  # _Loader is a SafeLoader: no arbitrary objects
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = ": ".join(p for p in (exc.context, exc.problem) if p)
        what = "invalid YAML" if isinstance(exc, ConstructorError) else "YAML syntax error"
        ctx.fail(_ROOT, f"{what}{where}: {problem or exc}")
    except yaml.YAMLError as exc:
        ctx.fail(_ROOT, f"YAML syntax error: {exc}")
    if document is None:
        ctx.fail(_ROOT, "the file is empty; a compose file needs at least 'services:'")
    return _mapping(ctx, _ROOT, document, "a mapping with 'services' at the top of the file")


def load_compose(path: str | Path, environ: Mapping[str, str] | None = None) -> StackSpec:
    """Parse the compose file at ``path`` (and its ``x-peakchaos`` block) into a :class:`StackSpec`.

    ``environ`` supplies ``${VAR}`` values (default: ``os.environ``), over a ``.env`` file next to the
    compose file. Raises :class:`ComposeError` for anything peakchaos cannot use.
    """
    shown = str(path)
    file = Path(path).expanduser().resolve()
    variables: dict[str, str] = {}
    bootstrap = _Ctx(shown, file.parent, dict(os.environ if environ is None else environ))
    document = _load_document(bootstrap, file)
    dotenv = file.parent / ".env"
    if dotenv.is_file():
        variables.update(_read_env_file(bootstrap, ".env", dotenv, bootstrap.lookup))
    variables.update(bootstrap.lookup)
    ctx = _Ctx(shown, file.parent, variables)
    data = _interpolate_tree(ctx, "", document)
    assert isinstance(data, dict)

    for k in data:
        if k in _TOP_KEYS or (k.startswith("x-") and k != "x-peakchaos"):
            continue
        if k in _TOP_KEY_REASONS:
            ctx.fail(k, f"{k!r} is not supported: {_TOP_KEY_REASONS[k]}")
        ctx.fail(
            k,
            f"unknown top-level key {k!r}; valid keys: {', '.join(_TOP_KEYS)} and x-* extension fields; "
            "see docs/compose.md",
        )

    project = _default_project(file.parent)
    if data.get("name") is not None:
        project = _string(ctx, "name", data["name"], "a project name")
        if not _PROJECT_NAME.match(project):
            ctx.fail("name", f"a project name uses only a-z, 0-9, '_' and '-' and starts with a letter or digit, {_got(project)}")

    volumes: list[str] = []
    if data.get("volumes") is not None:
        vdata = _mapping(ctx, "volumes", data["volumes"], "a mapping of volume names (e.g. volumes: {data: {}})")
        for name, options in vdata.items():
            vkey = _join("volumes", name)
            if not _VOLUME_NAME.match(name):
                ctx.fail(vkey, f"a volume name uses letters, digits, '_', '.' and '-', {_got(name)}")
            if options is not None:
                opts = _mapping(ctx, vkey, options, "null or {}")
                if opts:
                    ctx.fail(
                        _join(vkey, next(iter(opts))),
                        "volume options (driver, driver_opts, external, labels, name) are not supported: peakchaos "
                        f"creates a fresh local volume per run; write '{name}: {{}}'",
                    )
            volumes.append(name)

    if "services" not in data or data["services"] is None:
        ctx.fail("services", "missing: a compose file needs a 'services' mapping with at least one service")
    raw_services = _mapping(ctx, "services", data["services"], "a mapping of service name to service")
    if not raw_services:
        ctx.fail("services", "is empty: define at least one service")
    services: dict[str, ServiceSpec] = {}
    deps: dict[str, list[_Dep]] = {}
    published: dict[tuple[int, str], str] = {}
    for name, raw in raw_services.items():
        if not _SERVICE_NAME.match(name):
            ctx.fail(_join("services", name), f"a service name uses letters, digits, '_', '.' and '-', {_got(name)}")
        services[name], deps[name] = _parse_service(ctx, name, raw, volumes, published)

    for name, entries in deps.items():
        for dep in entries:
            target = dep.spec.service
            if target == name:
                ctx.fail(dep.key, f"service {name!r} cannot depend on itself")
            if target not in services:
                ctx.fail(dep.key, f"no service named {target!r}; services in this file: {', '.join(services)}")
            if dep.spec.condition == "service_healthy" and services[target].healthcheck is None:
                ctx.fail(
                    dep.key,
                    f"condition service_healthy needs a healthcheck on {target!r}; add services.{target}.healthcheck "
                    "or use condition: service_started",
                )

    links, ledger = _parse_peakchaos(ctx, data.get("x-peakchaos"), services)
    _check_cycles(ctx, services, deps, links)
    return StackSpec(path=file, project=project, services=services, volumes=volumes, links=links, ledger=ledger)


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
        ctx.fail(
            first_key,
            f"dependency cycle {' -> '.join(cycle)} ('a -> b' means a starts after b){note}; remove one of these "
            "dependencies",
        )
