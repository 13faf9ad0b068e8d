"""Errors, key paths and the small typed readers every part of the compose parser uses.

Parsers call ``ctx.fail(key, detail)`` for the first problem in a value; the loader runs each
independent part under ``ctx.guard`` so that one :class:`ComposeError` reports every problem of a
file at once.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from pytest_peakchaos.units import parse_duration

T = TypeVar("T")
_ROOT = "<root>"  # key path used for problems with the document itself


@dataclass(frozen=True)
class Problem:
    """One thing wrong in a compose file: where (file, key path) and what to do about it."""

    file: str
    key: str
    detail: str

    def __str__(self) -> str:
        return f"{self.file}: {self.key}: {self.detail}"


class ComposeError(ValueError):
    """A compose file peakchaos cannot use, with **every** problem found in it.

    ``str(err)`` is one line per problem, ``"<file>: <key path>: <what, how to fix>"``; ``.file``,
    ``.key`` and ``.detail`` describe the first one, ``.problems`` all of them.
    """

    def __init__(self, file: str, key: str, detail: str, problems: Sequence[Problem] = ()) -> None:
        self.problems = list(problems) or [Problem(file, key, detail)]
        first = self.problems[0]
        text = "\n".join(str(p) for p in self.problems)
        if len(self.problems) > 1:
            text += f"\n({len(self.problems)} problems; fix them all, then run again)"
        super().__init__(text)
        self.file = first.file
        self.key = first.key
        self.detail = first.detail

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.file, self.key, self.detail, self.problems))


class _Ctx:
    def __init__(self, file: str, base: Path, lookup: Mapping[str, str]) -> None:
        self.file = file
        self.base = base  # folder of the compose file, absolute
        self.lookup = lookup  # variables for interpolation and valueless environment entries
        self.problems: list[Problem] = []

    def fail(self, key: str, detail: str) -> NoReturn:
        raise ComposeError(self.file, key, detail)

    def guard(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T | None:
        """``fn(*args)``, or None with its problems recorded (the parse goes on with the next part)."""
        try:
            return fn(*args, **kwargs)
        except ComposeError as exc:
            self.problems.extend(exc.problems)
            return None

    def raise_problems(self) -> None:
        if self.problems:
            first = self.problems[0]
            raise ComposeError(first.file, first.key, first.detail, self.problems)


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

