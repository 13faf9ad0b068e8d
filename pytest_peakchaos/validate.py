"""Check ``peakchaos.run(...)`` / ``@pytest.mark.peakchaos(...)`` arguments before anything starts.

Everything that needs no running stack is checked here: the marker's keywords, the profile (built-in
name or YAML, loaded now), the duration, the faults (a list of faults that fit in the duration), the
checks policy, seed, scale, bounds and the legacy actions. The plugin calls it at collection (marker)
and the ``peakchaos`` fixture calls it before it starts the stack. Every error is a ``ValueError``
naming the argument, the value and what is valid. Plain Python, no pytest.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["RUN_KEYS", "check_run_args", "check_marker"]

#: keywords of ``peakchaos.run`` (and of the marker)
RUN_KEYS = (
    "profile",
    "duration",
    "faults",
    "seed",
    "scale",
    "checks",
    "max_requests",
    "concurrency_cap",
    "request_timeout",
    "settle",
    "legacy_actions",
    "workers",
    "link",
    "ledger",
    "cluster",
    "engine",
)


def _number(name: str, value: Any, *, minimum: float, strict: bool, example: str) -> float:
    bound = f"> {minimum:g}" if strict else f">= {minimum:g}"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name}: expected a number {bound} (e.g. {example}), got {value!r}")
    ok = value > minimum if strict else value >= minimum
    if not ok or not math.isfinite(value):
        raise ValueError(f"{name}: expected a finite number {bound} (e.g. {example}), got {value!r}")
    return float(value)


def _whole(name: str, value: Any, *, minimum: int, example: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name}: expected a whole number >= {minimum} (e.g. {example}), got {value!r}")
    return value


def _duration(name: str, value: Any, *, positive: bool, example: str) -> float:
    from .units import parse_duration

    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"{name}: expected a duration such as {example!r} or a number of seconds, got {value!r}")
    try:
        seconds = parse_duration(value, what=name)
    except ValueError as exc:
        text = str(exc)
        raise ValueError(text if text.startswith(name) else f"{name}: {text}") from None
    if not math.isfinite(seconds) or seconds < 0 or (positive and seconds == 0):
        need = "> 0" if positive else ">= 0"
        raise ValueError(f"{name}: expected a finite duration {need} such as {example!r}, got {value!r}")
    return seconds


def check_run_args(kwargs: Mapping[str, Any]) -> None:
    """Raise ``ValueError`` for the first bad argument of ``peakchaos.run(**kwargs)``."""
    from .checks import resolve_policy
    from .faults import Fault, FaultSchedule
    from .profiles import ACTIONS, load_profile

    unknown = sorted(set(kwargs) - set(RUN_KEYS))
    if unknown:
        raise ValueError(f"unknown argument(s) {', '.join(unknown)}; valid arguments: {', '.join(RUN_KEYS)}")
    prof = None
    if "profile" in kwargs:
        try:
            prof = load_profile(kwargs["profile"])
        except ValueError as exc:
            text = str(exc)
            raise ValueError(text if "profile" in text else f"profile: {text}") from None
    duration = _duration("duration", kwargs.get("duration", "60s"), positive=True, example="30s")
    faults = kwargs.get("faults", ())
    if isinstance(faults, (str, bytes, Fault, Mapping)) or not isinstance(faults, (list, tuple)):
        raise ValueError(
            f"faults: expected a list of faults, e.g. faults=[latency(ms=800, start='5s', length='10s')], "
            f"got {faults!r}" + (" (wrap the single fault in a list)" if isinstance(faults, Fault) else "")
        )
    try:
        FaultSchedule(list(faults), duration)
    except ValueError as exc:
        raise ValueError(f"faults: {exc}") from None
    if kwargs.get("seed") is not None:
        _whole("seed", kwargs["seed"], minimum=0, example="42")
    if "scale" in kwargs:
        _number("scale", kwargs["scale"], minimum=0, strict=True, example="0.5 or 2")
    try:
        resolve_policy(kwargs.get("checks"))
    except (TypeError, ValueError) as exc:
        text = str(exc)
        raise ValueError(text if text.startswith("checks") else f"checks: {text}") from None
    if "max_requests" in kwargs:
        _whole("max_requests", kwargs["max_requests"], minimum=1, example="100000")
    if "concurrency_cap" in kwargs:
        _whole("concurrency_cap", kwargs["concurrency_cap"], minimum=1, example="2000")
    if "workers" in kwargs:
        _whole("workers", kwargs["workers"], minimum=1, example="2")
    if "request_timeout" in kwargs:
        _duration("request_timeout", kwargs["request_timeout"], positive=True, example="5s")
    if "settle" in kwargs:
        _duration("settle", kwargs["settle"], positive=False, example="10s")
    if kwargs.get("legacy_actions") is not None:
        actions = kwargs["legacy_actions"]
        names = tuple(prof.states) if prof is not None else ACTIONS  # the profile's own states
        if isinstance(actions, str) or not isinstance(actions, (list, tuple, set, frozenset)):
            raise ValueError(f"legacy_actions: expected a list of action names from {', '.join(names)}, got {actions!r}")
        bad = sorted(str(a) for a in actions if a not in names)
        if bad:
            raise ValueError(f"legacy_actions: unknown action(s) {', '.join(bad)}; valid values: {', '.join(names)}")
    if kwargs.get("engine") is not None:
        from .load.native import ENGINES

        if kwargs["engine"] not in ENGINES:
            raise ValueError(f"engine: unknown engine {kwargs['engine']!r}; valid values: {', '.join(ENGINES)}")
    if kwargs.get("cluster") is not None:
        from .load.distributed import check_address

        check_address(kwargs["cluster"])
    link = kwargs.get("link")
    if link is not None and not isinstance(link, str):
        raise ValueError(f"link: expected the name of a link of the stack (a string), got {link!r}")


def check_keywords(marker: str, args: tuple[Any, ...], kwargs: Mapping[str, Any], valid: Sequence[str]) -> None:
    """``@pytest.mark.<marker>(...)`` takes keywords only, each one of ``valid``; a ``ValueError`` names
    the marker, what was wrong and the valid keywords."""
    if args:
        raise ValueError(
            f"@pytest.mark.{marker} takes keyword arguments only (got positional {args!r}); "
            f"valid keywords: {', '.join(valid)}"
        )
    unknown = sorted(set(kwargs) - set(valid))
    if unknown:
        raise ValueError(
            f"@pytest.mark.{marker}: unknown keyword(s) {', '.join(unknown)}; valid keywords: {', '.join(valid)}"
        )


def check_marker(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The marker's keywords, checked like :func:`check_run_args` (keywords only)."""
    check_keywords("peakchaos", args, kwargs, RUN_KEYS)
    try:
        check_run_args(kwargs)
    except ValueError as exc:
        raise ValueError(f"@pytest.mark.peakchaos: {exc}") from None
    return dict(kwargs)
