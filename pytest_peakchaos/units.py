"""Parsing of human-friendly durations ("15s", "500ms", "2m") shared by faults, load and options."""

from __future__ import annotations

import re

__all__ = ["parse_duration", "format_duration"]

_DURATION = re.compile(r"^\s*(?P<num>\d+(?:\.\d+)?)\s*(?P<unit>ms|s|m|h)?\s*$")
_FACTORS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(value: float | int | str, *, what: str = "duration") -> float:
    """Return seconds for ``value``: a number of seconds or a string like ``"15s"``, ``"500ms"``, ``"2m"``.

    Raises ``ValueError`` naming ``what`` and the accepted forms for anything else, including
    negative numbers.
    """
    if isinstance(value, bool):
        raise ValueError(f"{what}: expected a duration such as 15, '15s', '500ms' or '2m', got {value!r}")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str):
        match = _DURATION.match(value)
        if match is None:
            raise ValueError(
                f"{what}: cannot read {value!r} as a duration; use a non-negative number of seconds or "
                "a number with one of the units ms, s, m, h (e.g. '15s', '500ms', '2m')"
            )
        seconds = float(match["num"]) * _FACTORS[match["unit"]]
    else:
        raise ValueError(f"{what}: expected a duration such as 15, '15s', '500ms' or '2m', got {value!r}")
    if seconds < 0 or seconds != seconds:  # negative or NaN
        raise ValueError(f"{what}: must be zero or positive, got {value!r}")
    return seconds


def format_duration(seconds: float) -> str:
    """Short human form: ``0.25 -> '250ms'``, ``15 -> '15s'``, ``90 -> '90s'``."""
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if float(seconds).is_integer():
        return f"{int(seconds)}s"
    return f"{seconds:.1f}s"
