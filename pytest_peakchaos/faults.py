"""Fault values: what to do to the cloud→legacy link, when, and for how long.

Every fault is a frozen, validated value. Nothing here talks to Toxiproxy or Docker (that is
:mod:`pytest_peakchaos.link`), so this module imports cheaply and its values can be built, compared,
shown and serialised anywhere (reports, hypothesis strategies, YAML scenarios).

Kinds of fault:

* Toxiproxy toxics -- :func:`latency`, :func:`bandwidth`, :func:`timeout`, :func:`reset_peer`,
  :func:`slow_close`, :func:`slicer`, :func:`limit_data` and the generic :func:`toxic`; each on the
  ``"downstream"`` stream (legacy→cloud, the default), ``"upstream"`` (cloud→legacy) or ``"both"``;
* :func:`down` -- the proxy is disabled, so connections are refused;
* capacity faults on the legacy container -- :func:`cpu` (alias :func:`capacity`) throttles its CPU
  quota, :func:`pause` freezes it.

Timing (``start`` / ``length``) only matters inside a :class:`FaultSchedule`: ``start=None`` means at
once, ``length=None`` means until the scope (the run) ends. Durations are seconds or strings such as
``"15s"`` or ``"500ms"``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Final, Literal, cast

from pytest_peakchaos.units import parse_duration

__all__ = [
    "DIRECTIONS",
    "TOXIC_TYPES",
    "CpuFault",
    "DownFault",
    "Fault",
    "FaultSchedule",
    "FaultWindow",
    "PauseFault",
    "ToxicFault",
    "bandwidth",
    "capacity",
    "cpu",
    "down",
    "from_dict",
    "latency",
    "limit_data",
    "pause",
    "reset_peer",
    "slicer",
    "slow_close",
    "timeout",
    "toxic",
]

Direction = Literal["downstream", "upstream", "both"]
DurationLike = float | int | str

#: Accepted values of ``direction``.
DIRECTIONS: Final[tuple[str, ...]] = ("upstream", "downstream", "both")

_INT_MAX: Final = 2**31 - 1
#: Docker refuses CPU quotas under 1 ms per 100 ms period.
MIN_CPUS: Final = 0.01


@dataclass(frozen=True)
class _Attr:
    name: str  # Toxiproxy attribute name
    unit: str  # shown in messages and descriptions
    minimum: int


# Toxic types of Toxiproxy 2.x and their integer attributes (README §Toxics, toxics/*.go).
_TOXIC_SPECS: Final[dict[str, tuple[_Attr, ...]]] = {
    "latency": (_Attr("latency", "ms", 0), _Attr("jitter", "ms", 0)),
    "bandwidth": (_Attr("rate", "KB/s", 1),),
    "slow_close": (_Attr("delay", "ms", 0),),
    "timeout": (_Attr("timeout", "ms", 0),),
    "reset_peer": (_Attr("timeout", "ms", 0),),
    "slicer": (
        _Attr("average_size", "bytes", 1),
        _Attr("size_variation", "bytes", 0),
        _Attr("delay", "µs", 0),
    ),
    "limit_data": (_Attr("bytes", "bytes", 0),),
}

#: Toxic types understood by :func:`toxic` (``down`` is not a toxic: see :func:`down`).
TOXIC_TYPES: Final[tuple[str, ...]] = tuple(_TOXIC_SPECS)

_COMMON_KEYS: Final = ("start", "length")


# --------------------------------------------------------------------------- validation helpers


def _int_param(value: object, *, what: str, param: str, minimum: int, unit: str) -> int:
    """Return ``value`` as an int >= ``minimum``; ``ValueError`` naming ``what: param`` otherwise."""
    bound = f"a whole number from {minimum} to {_INT_MAX} ({unit})"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{what}: {param} must be {bound}, got {value!r}")
    if isinstance(value, float):
        if not math.isfinite(value) or not value.is_integer():
            raise ValueError(f"{what}: {param} must be {bound}, got {value!r}")
        value = int(value)
    if not minimum <= value <= _INT_MAX:
        raise ValueError(f"{what}: {param} must be {bound}, got {value!r}")
    return value


def _direction(value: object, *, what: str) -> Direction:
    if value not in DIRECTIONS:
        raise ValueError(f"{what}: direction must be one of {', '.join(DIRECTIONS)}; got {value!r}")
    return cast(Direction, value)


def _toxicity(value: object, *, what: str) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or not 0.0 <= value <= 1.0
    ):
        raise ValueError(
            f"{what}: toxicity must be a number from 0 to 1 (share of connections affected), got {value!r}"
        )
    return float(value)


def _start(value: object, *, what: str) -> float | None:
    if value is None:
        return None
    seconds = parse_duration(cast(DurationLike, value), what=f"{what}: start")
    if not math.isfinite(seconds):
        raise ValueError(f"{what}: start must be a finite duration, got {value!r}")
    return seconds


def _length(value: object, *, what: str) -> float | None:
    if value is None:
        return None
    seconds = parse_duration(cast(DurationLike, value), what=f"{what}: length")
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(
            f"{what}: length must be a positive finite duration (or None for 'until the scope ends'), "
            f"got {value!r}"
        )
    return seconds


def _fmt_s(seconds: float) -> str:
    """``0 -> '0s'``, ``0.25 -> '250ms'``, ``15 -> '15s'``, ``1.5 -> '1.5s'``."""
    if seconds == 0:
        return "0s"
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    return f"{seconds:g}s"


def _fmt_ms(ms: int) -> str:
    return f"{ms}ms"


# --------------------------------------------------------------------------- fault values


@dataclass(frozen=True, kw_only=True)
class Fault:
    """Base of every fault: an optional window inside a run.

    ``start``: seconds after the scope starts (``None`` = at once); ``length``: seconds it lasts
    (``None`` = until the scope ends). Both are only used by :class:`FaultSchedule` /
    ``Link.run_schedule``; ``Link.apply`` applies at once and reverts when its block exits.
    """

    kind: ClassVar[str] = "fault"
    #: needs a capacity target (the legacy container), not just the proxy
    needs_capacity: ClassVar[bool] = False

    start: float | None = None
    length: float | None = None

    def __post_init__(self) -> None:
        what = self._what()
        object.__setattr__(self, "start", _start(self.start, what=what))
        object.__setattr__(self, "length", _length(self.length, what=what))

    def _what(self) -> str:
        return self.kind

    def _body(self) -> str:
        return self.kind

    def _window_text(self) -> str:
        if self.start is None and self.length is None:
            return ""
        if self.length is None:
            return f" from {_fmt_s(self.start or 0.0)}"
        if self.start is None:
            return f" for {_fmt_s(self.length)}"
        return f" {_fmt_s(self.start)}→{_fmt_s(self.start + self.length)}"

    def describe(self) -> str:
        """Short human text, e.g. ``"latency 800±200ms downstream 15s→45s"``."""
        return self._body() + self._window_text()

    def _fields(self) -> dict[str, Any]:
        return {}

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form; :func:`from_dict` turns it back into an equal fault."""
        data: dict[str, Any] = {"kind": self.kind}
        data.update(self._fields())
        data["start"] = self.start
        data["length"] = self.length
        data["description"] = self.describe()
        return data

    def end(self) -> float | None:
        """Offset at which the fault is reverted, or ``None`` when it lasts until the scope ends."""
        if self.length is None:
            return None
        return (self.start or 0.0) + self.length

    def __str__(self) -> str:
        return self.describe()


@dataclass(frozen=True, kw_only=True)
class ToxicFault(Fault):
    """A Toxiproxy toxic on one stream, or one per stream when ``direction="both"``."""

    kind: ClassVar[str] = "toxic"

    toxic_type: str
    #: ``(attribute, value)`` pairs in Toxiproxy's names and units; see :attr:`attributes`.
    attribute_items: tuple[tuple[str, int], ...] = ()
    direction: Direction = "downstream"
    toxicity: float = 1.0

    def __post_init__(self) -> None:
        if self.toxic_type not in _TOXIC_SPECS:
            raise ValueError(_unknown_toxic_message(self.toxic_type))
        what = self.toxic_type
        object.__setattr__(self, "direction", _direction(self.direction, what=what))
        object.__setattr__(self, "toxicity", _toxicity(self.toxicity, what=what))
        object.__setattr__(
            self, "attribute_items", _validate_attributes(self.toxic_type, dict(self.attribute_items))
        )
        super().__post_init__()

    def _what(self) -> str:
        return self.toxic_type

    @property
    def attributes(self) -> dict[str, int]:
        """Toxiproxy attributes, e.g. ``{"latency": 800, "jitter": 200}``."""
        return dict(self.attribute_items)

    @property
    def streams(self) -> tuple[str, ...]:
        """Toxiproxy streams to put a toxic on: one, or both for ``direction="both"``."""
        if self.direction == "both":
            return ("upstream", "downstream")
        return (self.direction,)

    def _body(self) -> str:
        a = self.attributes
        t = self.toxic_type
        if t == "latency":
            jitter = f"±{a['jitter']}" if a["jitter"] else ""
            what = f"latency {a['latency']}{jitter}ms"
        elif t == "bandwidth":
            what = f"bandwidth {a['rate']}KB/s"
        elif t == "timeout":
            what = "timeout never closes (data held)" if a["timeout"] == 0 else f"timeout {_fmt_ms(a['timeout'])}"
        elif t == "reset_peer":
            what = "reset_peer at once" if a["timeout"] == 0 else f"reset_peer after {_fmt_ms(a['timeout'])}"
        elif t == "slow_close":
            what = f"slow_close {_fmt_ms(a['delay'])}"
        elif t == "slicer":
            variation = f"±{a['size_variation']}" if a["size_variation"] else ""
            delay = f" every {a['delay']}µs" if a["delay"] else ""
            what = f"slicer {a['average_size']}{variation}B{delay}"
        else:  # limit_data
            what = f"limit_data {a['bytes']}B"
        if self.toxicity < 1.0:
            what += f" on {self.toxicity:.0%} of connections"
        return f"{what} {self.direction}"

    def _fields(self) -> dict[str, Any]:
        return {
            "type": self.toxic_type,
            "attributes": self.attributes,
            "direction": self.direction,
            "toxicity": self.toxicity,
        }


@dataclass(frozen=True, kw_only=True)
class DownFault(Fault):
    """The proxy is disabled: the link refuses connections and drops live ones."""

    kind: ClassVar[str] = "down"

    def _body(self) -> str:
        return "down"


@dataclass(frozen=True, kw_only=True)
class CpuFault(Fault):
    """CPU quota throttle on the legacy container (``docker update --cpus``)."""

    kind: ClassVar[str] = "cpu"
    needs_capacity: ClassVar[bool] = True

    cpus: float

    def __post_init__(self) -> None:
        value = self.cpus
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
            or value < MIN_CPUS
        ):
            raise ValueError(
                f"cpu: cpus must be a number of CPUs >= {MIN_CPUS} (e.g. 0.1 for a tenth of a core; "
                f"Docker's smallest quota is 1ms per 100ms), got {value!r}"
            )
        object.__setattr__(self, "cpus", float(value))
        super().__post_init__()

    def _body(self) -> str:
        return f"cpu {self.cpus:g} CPU"

    def _fields(self) -> dict[str, Any]:
        return {"cpus": self.cpus}


@dataclass(frozen=True, kw_only=True)
class PauseFault(Fault):
    """The legacy container is frozen (``docker pause``): connections open but nothing answers."""

    kind: ClassVar[str] = "pause"
    needs_capacity: ClassVar[bool] = True

    def _body(self) -> str:
        return "pause"


_KINDS: Final[dict[str, type[Fault]]] = {
    "toxic": ToxicFault,
    "down": DownFault,
    "cpu": CpuFault,
    "pause": PauseFault,
}


def _unknown_toxic_message(toxic_type: object) -> str:
    return (
        f"unknown toxic type {toxic_type!r}; valid types: {', '.join(TOXIC_TYPES)} "
        "(a proxy outage is down(), not a toxic)"
    )


def _validate_attributes(
    toxic_type: str, given: Mapping[str, object], params: Mapping[str, str] | None = None
) -> tuple[tuple[str, int], ...]:
    """Check ``given`` against the spec of ``toxic_type``; missing attributes take Toxiproxy's 0.

    ``params`` maps attribute names to the constructor's parameter names, used in messages.
    """
    spec = _TOXIC_SPECS[toxic_type]
    names = [a.name for a in spec]
    unknown = sorted(set(given) - set(names))
    if unknown:
        raise ValueError(
            f"{toxic_type}: unknown attribute(s) {', '.join(unknown)}; valid attributes: {', '.join(names)}"
        )
    params = params or {}
    values: dict[str, int] = {}
    for attr in spec:
        raw = given.get(attr.name, max(attr.minimum, 0))
        if attr.name not in given and attr.minimum > 0:
            raise ValueError(f"{toxic_type}: {params.get(attr.name, attr.name)} is required ({attr.unit})")
        values[attr.name] = _int_param(
            raw, what=toxic_type, param=params.get(attr.name, attr.name), minimum=attr.minimum, unit=attr.unit
        )
    if toxic_type == "latency" and values["jitter"] > values["latency"]:
        raise ValueError(
            f"latency: {params.get('jitter', 'jitter')} must be from 0 to "
            f"{params.get('latency', 'latency')} ({values['latency']}ms), got {values['jitter']}"
        )
    if toxic_type == "slicer" and values["size_variation"] >= values["average_size"]:
        raise ValueError(
            f"slicer: {params.get('size_variation', 'size_variation')} must be from 0 to "
            f"{params.get('average_size', 'average_size')} - 1 ({values['average_size'] - 1}), "
            f"got {values['size_variation']}"
        )
    return tuple((attr.name, values[attr.name]) for attr in spec)


def _make_toxic(
    toxic_type: str,
    attributes: Mapping[str, object],
    params: Mapping[str, str],
    *,
    direction: object,
    toxicity: object,
    start: object,
    length: object,
) -> ToxicFault:
    items = _validate_attributes(toxic_type, attributes, params)
    return ToxicFault(
        toxic_type=toxic_type,
        attribute_items=items,
        direction=cast(Direction, direction),
        toxicity=cast(float, toxicity),
        start=cast(Any, start),
        length=cast(Any, length),
    )


# --------------------------------------------------------------------------- constructors


def latency(
    ms: int,
    jitter: int = 0,
    *,
    direction: Direction = "downstream",
    toxicity: float = 1.0,
    start: DurationLike | None = None,
    length: DurationLike | None = None,
) -> ToxicFault:
    """Delay data by ``ms`` ± ``jitter`` milliseconds (``0 <= jitter <= ms``)."""
    return _make_toxic(
        "latency",
        {"latency": ms, "jitter": jitter},
        {"latency": "ms", "jitter": "jitter"},
        direction=direction,
        toxicity=toxicity,
        start=start,
        length=length,
    )


def bandwidth(
    kb_per_s: int,
    *,
    direction: Direction = "downstream",
    toxicity: float = 1.0,
    start: DurationLike | None = None,
    length: DurationLike | None = None,
) -> ToxicFault:
    """Limit each connection (not the proxy as a whole, Toxiproxy #190) to ``kb_per_s`` KB/s."""
    return _make_toxic(
        "bandwidth",
        {"rate": kb_per_s},
        {"rate": "kb_per_s"},
        direction=direction,
        toxicity=toxicity,
        start=start,
        length=length,
    )


def timeout(
    ms: int,
    *,
    direction: Direction = "downstream",
    toxicity: float = 1.0,
    start: DurationLike | None = None,
    length: DurationLike | None = None,
) -> ToxicFault:
    """Stop all data and close the connection after ``ms``; ``ms=0`` holds it open forever.

    Data is dropped, but an end-of-stream is still passed on: on ``"downstream"`` a server that
    answers and closes still ends the connection at once. To make legacy look hung for
    one-request-per-connection clients, use ``direction="upstream"`` (requests never arrive).
    """
    return _make_toxic(
        "timeout",
        {"timeout": ms},
        {"timeout": "ms"},
        direction=direction,
        toxicity=toxicity,
        start=start,
        length=length,
    )


def reset_peer(
    timeout_ms: int = 0,
    *,
    direction: Direction = "downstream",
    toxicity: float = 1.0,
    start: DurationLike | None = None,
    length: DurationLike | None = None,
) -> ToxicFault:
    """Reset connections (TCP RST) at once or after ``timeout_ms``."""
    return _make_toxic(
        "reset_peer",
        {"timeout": timeout_ms},
        {"timeout": "timeout_ms"},
        direction=direction,
        toxicity=toxicity,
        start=start,
        length=length,
    )


def slow_close(
    delay_ms: int,
    *,
    direction: Direction = "downstream",
    toxicity: float = 1.0,
    start: DurationLike | None = None,
    length: DurationLike | None = None,
) -> ToxicFault:
    """Delay the close of connections by ``delay_ms``."""
    return _make_toxic(
        "slow_close",
        {"delay": delay_ms},
        {"delay": "delay_ms"},
        direction=direction,
        toxicity=toxicity,
        start=start,
        length=length,
    )


def slicer(
    average_size: int,
    size_variation: int = 0,
    delay_us: int = 0,
    *,
    direction: Direction = "downstream",
    toxicity: float = 1.0,
    start: DurationLike | None = None,
    length: DurationLike | None = None,
) -> ToxicFault:
    """Slice data into ``average_size`` ± ``size_variation`` byte pieces, ``delay_us`` µs apart."""
    return _make_toxic(
        "slicer",
        {"average_size": average_size, "size_variation": size_variation, "delay": delay_us},
        {"average_size": "average_size", "size_variation": "size_variation", "delay": "delay_us"},
        direction=direction,
        toxicity=toxicity,
        start=start,
        length=length,
    )


def limit_data(
    bytes: int,  # noqa: A002 - Toxiproxy's own name for the attribute
    *,
    direction: Direction = "downstream",
    toxicity: float = 1.0,
    start: DurationLike | None = None,
    length: DurationLike | None = None,
) -> ToxicFault:
    """Close each connection once ``bytes`` bytes have passed."""
    return _make_toxic(
        "limit_data",
        {"bytes": bytes},
        {"bytes": "bytes"},
        direction=direction,
        toxicity=toxicity,
        start=start,
        length=length,
    )


def toxic(
    toxic_type: str,
    /,
    *,
    direction: Direction = "downstream",
    toxicity: float = 1.0,
    start: DurationLike | None = None,
    length: DurationLike | None = None,
    **attributes: int,
) -> ToxicFault:
    """Any Toxiproxy toxic by type name, with attributes in Toxiproxy's names and units.

    ``toxic("latency", latency=800, jitter=200)`` equals ``latency(800, 200)``. Attributes left out
    take Toxiproxy's default of 0 (where 0 is valid).
    """
    if toxic_type not in _TOXIC_SPECS:
        raise ValueError(_unknown_toxic_message(toxic_type))
    return _make_toxic(
        toxic_type,
        attributes,
        {},
        direction=direction,
        toxicity=toxicity,
        start=start,
        length=length,
    )


def down(*, start: DurationLike | None = None, length: DurationLike | None = None) -> DownFault:
    """Take the link down (proxy disabled): connections are refused."""
    return DownFault(start=cast(Any, start), length=cast(Any, length))


def cpu(
    cpus: float, *, start: DurationLike | None = None, length: DurationLike | None = None
) -> CpuFault:
    """Throttle the legacy container to ``cpus`` CPUs (e.g. ``0.1``) via its CPU quota."""
    return CpuFault(cpus=cpus, start=cast(Any, start), length=cast(Any, length))


def capacity(
    *, cpus: float, start: DurationLike | None = None, length: DurationLike | None = None
) -> CpuFault:
    """Alias of :func:`cpu`: ``capacity(cpus=0.1, start="15s", length="30s")``."""
    return cpu(cpus, start=start, length=length)


def pause(*, start: DurationLike | None = None, length: DurationLike | None = None) -> PauseFault:
    """Freeze the legacy container (``docker pause``) for the window."""
    return PauseFault(start=cast(Any, start), length=cast(Any, length))


# --------------------------------------------------------------------------- (de)serialisation


def from_dict(data: Mapping[str, Any]) -> Fault:
    """Rebuild a fault from :meth:`Fault.to_dict` output (validating it again).

    The ``description`` key is informational and ignored; any other unknown key is an error.
    """
    if not isinstance(data, Mapping):
        raise ValueError(f"fault: expected a mapping with a 'kind' key, got {data!r}")
    kind = data.get("kind")
    if kind not in _KINDS:
        raise ValueError(f"fault: kind must be one of {', '.join(_KINDS)}; got {kind!r}")
    allowed = {"kind", "description", *_COMMON_KEYS}
    if kind == "toxic":
        allowed |= {"type", "attributes", "direction", "toxicity"}
    elif kind == "cpu":
        allowed |= {"cpus"}
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ValueError(f"{kind} fault: unknown key(s) {', '.join(unknown)}; valid keys: {', '.join(sorted(allowed))}")
    timing: dict[str, Any] = {"start": data.get("start"), "length": data.get("length")}
    if kind == "toxic":
        toxic_type = data.get("type")
        if not isinstance(toxic_type, str):
            raise ValueError(_unknown_toxic_message(toxic_type))
        attributes = data.get("attributes", {})
        if not isinstance(attributes, Mapping) or not all(
            isinstance(k, str) and k not in ("direction", "toxicity", *_COMMON_KEYS) for k in attributes
        ):
            raise ValueError(
                f"{toxic_type}: attributes must be a mapping of Toxiproxy attribute names to integers, "
                f"got {attributes!r}"
            )
        return toxic(
            toxic_type,
            direction=data.get("direction", "downstream"),
            toxicity=data.get("toxicity", 1.0),
            **timing,
            **attributes,
        )
    if kind == "cpu":
        if "cpus" not in data:
            raise ValueError("cpu fault: cpus is required")
        return cpu(data["cpus"], **timing)
    if kind == "pause":
        return pause(**timing)
    return down(**timing)


# --------------------------------------------------------------------------- schedules


@dataclass(frozen=True)
class FaultWindow:
    """Where a fault sits in a run: ``start_s`` to ``end_s`` seconds after the run starts."""

    index: int
    fault: Fault
    start_s: float
    end_s: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "start_s": self.start_s,
            "end_s": self.end_s,
            "fault": self.fault.to_dict(),
        }


class FaultSchedule:
    """Faults placed on the timeline of a run lasting ``duration_s``.

    Every window must fit in the run; down, cpu and pause faults may not overlap one another of
    the same kind (what would the CPU quota be, and when does the link come back up?). Toxics may
    overlap freely.
    """

    def __init__(self, faults: Iterable[Fault], duration_s: DurationLike) -> None:
        duration = parse_duration(duration_s, what="duration_s")
        if not math.isfinite(duration) or duration <= 0:
            raise ValueError(f"duration_s must be a positive finite duration, got {duration_s!r}")
        self.duration_s: float = duration
        items = tuple(faults)
        for i, fault in enumerate(items):
            if not isinstance(fault, Fault):
                raise ValueError(
                    f"faults[{i}] is not a fault ({fault!r}); build faults with latency(), down(), cpu(), ..."
                )
        self.faults: tuple[Fault, ...] = items
        self._windows = [self._window(i, f) for i, f in enumerate(items)]
        self._check_overlaps()

    def _window(self, index: int, fault: Fault) -> FaultWindow:
        start = fault.start or 0.0
        bound = f"the run ends at {_fmt_s(self.duration_s)} (duration_s)"
        if start >= self.duration_s:
            raise ValueError(
                f"fault #{index} ({fault.describe()}) starts at {_fmt_s(start)}, not before {bound}"
            )
        end = fault.end()
        if end is None:
            end = self.duration_s
        elif end > self.duration_s + 1e-9:
            raise ValueError(
                f"fault #{index} ({fault.describe()}) ends at {_fmt_s(end)} "
                f"(start {_fmt_s(start)} + length {_fmt_s(fault.length or 0.0)}), after {bound}"
            )
        return FaultWindow(index=index, fault=fault, start_s=start, end_s=min(end, self.duration_s))

    def _check_overlaps(self) -> None:
        for kind in ("down", "cpu", "pause"):
            same = sorted((w for w in self._windows if w.fault.kind == kind), key=lambda w: w.start_s)
            for a, b in zip(same, same[1:]):
                if b.start_s < a.end_s:
                    raise ValueError(
                        f"faults #{a.index} ({a.fault.describe()}) and #{b.index} ({b.fault.describe()}) "
                        f"overlap from {_fmt_s(b.start_s)} to {_fmt_s(min(a.end_s, b.end_s))}; "
                        f"{kind} faults on a link must not overlap"
                    )

    def windows(self) -> list[FaultWindow]:
        """One window per fault, in the order given; open-ended faults end with the run."""
        return list(self._windows)

    @property
    def needs_capacity(self) -> bool:
        return any(f.needs_capacity for f in self.faults)

    def describe(self) -> str:
        return "; ".join(f.describe() for f in self.faults) or "no faults"

    def to_dict(self) -> dict[str, Any]:
        return {"duration_s": self.duration_s, "faults": [f.to_dict() for f in self.faults]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FaultSchedule:
        if not isinstance(data, Mapping) or "duration_s" not in data:
            raise ValueError(f"schedule: expected a mapping with duration_s and faults, got {data!r}")
        return cls([from_dict(f) for f in data.get("faults", [])], data["duration_s"])

    def __len__(self) -> int:
        return len(self.faults)

    def __repr__(self) -> str:
        return f"FaultSchedule({list(self.faults)!r}, duration_s={self.duration_s!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FaultSchedule):
            return NotImplemented
        return self.faults == other.faults and self.duration_s == other.duration_s

    def __hash__(self) -> int:
        return hash((self.faults, self.duration_s))
