"""Traffic shapes: how fast shopper *sessions* arrive over the course of a run.

A shape is a pure function ``rate(t) -> sessions/s`` over ``[0, duration)``. The engine turns it
into arrival instants with a non-homogeneous Poisson process (Lewis-Shedler thinning, seeded), so
arrivals never slow down when the system under test does (the *open* half of the partly-open model).

Shapes are immutable; ``over(duration)`` stretches the time axis (a 24 h sale curve compressed into a
60 s CI run keeps its proportions) and ``scaled(factor)`` multiplies every rate (``--peakchaos-scale``).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, replace
from typing import Any, Iterator

__all__ = [
    "Shape",
    "Constant",
    "Ramp",
    "Step",
    "Spike",
    "Double11",
    "shape_from_dict",
    "SHAPE_KINDS",
    "arrival_times",
]


def _check_rate(value: float, what: str) -> float:
    v = float(value)
    if not (v >= 0.0) or math.isinf(v):
        raise ValueError(f"{what}: must be a finite rate >= 0 sessions/s, got {value!r}")
    return v


def _check_positive(value: float, what: str) -> float:
    v = float(value)
    if not (v > 0.0) or math.isinf(v):
        raise ValueError(f"{what}: must be a finite number > 0, got {value!r}")
    return v


def _check_fraction(value: float, what: str) -> float:
    v = float(value)
    if not (0.0 <= v <= 1.0):
        raise ValueError(f"{what}: must be a fraction between 0 and 1, got {value!r}")
    return v


@dataclass(frozen=True)
class Shape:
    """Base class. Subclasses define ``rate(t)`` (sessions/s) and ``peak()`` (its maximum)."""

    duration: float

    kind = "shape"

    def rate(self, t: float) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    def peak(self) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    def over(self, duration: float) -> Shape:
        """The same curve with its time axis stretched (or compressed) to ``duration`` seconds."""
        _check_positive(duration, "duration")
        return self._stretch(float(duration) / self.duration)

    def _stretch(self, factor: float) -> Shape:
        return replace(self, duration=self.duration * factor)

    def scaled(self, factor: float) -> Shape:  # pragma: no cover - abstract
        raise NotImplementedError

    def expected_sessions(self, start: float = 0.0, end: float | None = None, *, steps: int = 20_000) -> float:
        """Expected number of arrivals in ``[start, end)``: the integral of ``rate`` (midpoint rule)."""
        stop = self.duration if end is None else min(end, self.duration)
        begin = max(0.0, start)
        if stop <= begin:
            return 0.0
        n = max(1, int(steps))
        width = (stop - begin) / n
        return sum(self.rate(begin + (i + 0.5) * width) for i in range(n)) * width

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"shape": self.kind}
        aliases = _ALIASES.get(self.kind, {})
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            out[aliases.get(name, name)] = [list(x) for x in value] if isinstance(value, tuple) else value
        return out

    def describe(self) -> str:
        return f"{self.kind} over {self.duration:g}s, peak {self.peak():g} sessions/s"


@dataclass(frozen=True)
class Constant(Shape):
    """A flat arrival rate."""

    rate_per_s: float = 1.0
    kind = "constant"

    def __post_init__(self) -> None:
        _check_positive(self.duration, "constant.duration")
        _check_rate(self.rate_per_s, "constant.rate")

    def rate(self, t: float) -> float:
        return self.rate_per_s if 0.0 <= t < self.duration else 0.0

    def peak(self) -> float:
        return self.rate_per_s

    def scaled(self, factor: float) -> Constant:
        return replace(self, rate_per_s=self.rate_per_s * _check_rate(factor, "scale"))


@dataclass(frozen=True)
class Ramp(Shape):
    """A linear change from ``start`` to ``end`` sessions/s."""

    start: float = 0.0
    end: float = 1.0
    kind = "ramp"

    def __post_init__(self) -> None:
        _check_positive(self.duration, "ramp.duration")
        _check_rate(self.start, "ramp.start")
        _check_rate(self.end, "ramp.end")

    def rate(self, t: float) -> float:
        if not 0.0 <= t < self.duration:
            return 0.0
        return self.start + (self.end - self.start) * (t / self.duration)

    def peak(self) -> float:
        return max(self.start, self.end)

    def scaled(self, factor: float) -> Ramp:
        f = _check_rate(factor, "scale")
        return replace(self, start=self.start * f, end=self.end * f)


@dataclass(frozen=True)
class Step(Shape):
    """Piecewise-constant rates: ``levels`` is a sequence of ``(at_seconds, rate)``; the first starts at 0."""

    levels: tuple[tuple[float, float], ...] = ((0.0, 1.0),)
    kind = "step"

    def __post_init__(self) -> None:
        _check_positive(self.duration, "step.duration")
        if not self.levels:
            raise ValueError("step.levels: needs at least one [at, rate] pair")
        norm: list[tuple[float, float]] = []
        for i, pair in enumerate(self.levels):
            if len(pair) != 2:
                raise ValueError(f"step.levels[{i}]: expected [at_seconds, rate], got {pair!r}")
            at, r = float(pair[0]), _check_rate(pair[1], f"step.levels[{i}].rate")
            if at < 0 or (norm and at <= norm[-1][0]):
                raise ValueError(f"step.levels[{i}]: 'at' times must start at 0 and increase, got {at!r}")
            norm.append((at, r))
        if norm[0][0] != 0.0:
            raise ValueError("step.levels[0]: the first level must start at 0")
        object.__setattr__(self, "levels", tuple(norm))

    def rate(self, t: float) -> float:
        if not 0.0 <= t < self.duration:
            return 0.0
        current = 0.0
        for at, r in self.levels:
            if t >= at:
                current = r
            else:
                break
        return current

    def peak(self) -> float:
        return max(r for at, r in self.levels if at < self.duration)

    def _stretch(self, factor: float) -> Shape:
        return replace(self, duration=self.duration * factor, levels=tuple((a * factor, r) for a, r in self.levels))

    def scaled(self, factor: float) -> Step:
        f = _check_rate(factor, "scale")
        return replace(self, levels=tuple((a, r * f) for a, r in self.levels))


@dataclass(frozen=True)
class Spike(Shape):
    """``base`` sessions/s with a burst to ``peak_rate`` in ``[at, at + length)``."""

    base: float = 1.0
    peak_rate: float = 10.0
    at: float = 0.0
    length: float = 1.0
    kind = "spike"

    def __post_init__(self) -> None:
        _check_positive(self.duration, "spike.duration")
        _check_rate(self.base, "spike.base")
        _check_rate(self.peak_rate, "spike.peak")
        if self.at < 0 or self.length <= 0:
            raise ValueError(f"spike: 'at' must be >= 0 and 'length' > 0, got at={self.at!r} length={self.length!r}")

    def rate(self, t: float) -> float:
        if not 0.0 <= t < self.duration:
            return 0.0
        return self.peak_rate if self.at <= t < self.at + self.length else self.base

    def peak(self) -> float:
        return max(self.base, self.peak_rate) if self.at < self.duration else self.base

    def _stretch(self, factor: float) -> Shape:
        return replace(self, duration=self.duration * factor, at=self.at * factor, length=self.length * factor)

    def scaled(self, factor: float) -> Spike:
        f = _check_rate(factor, "scale")
        return replace(self, base=self.base * f, peak_rate=self.peak_rate * f)


@dataclass(frozen=True)
class Double11(Shape):
    """The sale-night curve, in five phases whose lengths are fractions of ``duration``.

    1. *baseline* (whatever the other phases leave at the start): ``baseline`` sessions/s;
    2. *evening build-up* (``buildup``): geometric rise from ``baseline`` to ``forecast``;
    3. *midnight spike* (``spike``): ``forecast * spike_multiple`` (the forecast was wrong);
    4. *plateau* (``plateau``): ``forecast * plateau_multiple``;
    5. *decay* (``decay``): geometric fall back to ``baseline``.
    """

    baseline: float = 1.0
    forecast: float = 5.0
    spike_multiple: float = 3.0
    plateau_multiple: float = 1.0
    buildup: float = 0.3
    spike: float = 0.1
    plateau: float = 0.2
    decay: float = 0.2
    kind = "double11"

    def __post_init__(self) -> None:
        _check_positive(self.duration, "double11.duration")
        _check_rate(self.baseline, "double11.baseline")
        _check_rate(self.forecast, "double11.forecast")
        _check_rate(self.spike_multiple, "double11.spike_multiple")
        _check_rate(self.plateau_multiple, "double11.plateau_multiple")
        total = 0.0
        for name in ("buildup", "spike", "plateau", "decay"):
            total += _check_fraction(getattr(self, name), f"double11.{name}")
        if total > 1.0 + 1e-9:
            raise ValueError(
                f"double11: buildup + spike + plateau + decay are fractions of the run and must add up to "
                f"at most 1, got {total:g}"
            )

    def _bounds(self) -> tuple[float, float, float, float]:
        d = self.duration
        end = d
        decay_start = end - self.decay * d
        plateau_start = decay_start - self.plateau * d
        spike_start = plateau_start - self.spike * d
        build_start = spike_start - self.buildup * d
        return build_start, spike_start, plateau_start, decay_start

    @staticmethod
    def _geo(a: float, b: float, x: float) -> float:
        if a > 0 and b > 0:
            return float(a * (b / a) ** x)
        return a + (b - a) * x

    def rate(self, t: float) -> float:
        if not 0.0 <= t < self.duration:
            return 0.0
        build, spike, plateau, decay = self._bounds()
        if t < build:
            return self.baseline
        if t < spike:
            return self._geo(self.baseline, self.forecast, (t - build) / (spike - build))
        if t < plateau:
            return self.forecast * self.spike_multiple
        if t < decay:
            return self.forecast * self.plateau_multiple
        span = self.duration - decay
        return self._geo(self.forecast * self.plateau_multiple, self.baseline, (t - decay) / span)

    def peak(self) -> float:
        candidates = [self.baseline, self.forecast, self.forecast * self.plateau_multiple]
        if self.spike > 0:
            candidates.append(self.forecast * self.spike_multiple)
        return max(candidates)

    def scaled(self, factor: float) -> Double11:
        f = _check_rate(factor, "scale")
        return replace(self, baseline=self.baseline * f, forecast=self.forecast * f)


SHAPE_KINDS: dict[str, type[Shape]] = {
    "constant": Constant,
    "ramp": Ramp,
    "step": Step,
    "spike": Spike,
    "double11": Double11,
}

# dataclass field -> YAML spelling (only where they differ).
_ALIASES: dict[str, dict[str, str]] = {"constant": {"rate_per_s": "rate"}, "spike": {"peak_rate": "peak"}}


def shape_from_dict(data: dict[str, Any], *, where: str = "arrival") -> Shape:
    """Build a shape from its YAML/JSON form, e.g. ``{"shape": "ramp", "duration": "60s", "start": 1, "end": 20}``.

    Errors name the key and the valid values.
    """
    from pytest_peakchaos.units import parse_duration

    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected a mapping with a 'shape' key, got {data!r}")
    kind = data.get("shape")
    if kind not in SHAPE_KINDS:
        raise ValueError(f"{where}.shape: unknown shape {kind!r}; valid values: {', '.join(SHAPE_KINDS)}")
    cls = SHAPE_KINDS[kind]
    aliases = _ALIASES.get(kind, {})
    # YAML key -> dataclass field; a field with an alias is spelled only by its alias.
    accepted = {aliases.get(f, f): f for f in cls.__dataclass_fields__}
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if key == "shape":
            continue
        if key not in accepted:
            valid = ["shape", *sorted(accepted)]
            raise ValueError(f"{where}.{key}: unknown key for shape {kind!r}; valid keys: {', '.join(valid)}")
        field = accepted[key]
        if field in ("duration", "at", "length"):
            value = parse_duration(value, what=f"{where}.{key}")
        elif field == "levels":
            if not isinstance(value, list):
                raise ValueError(f"{where}.levels: expected a list of [at, rate] pairs, got {value!r}")
            pairs = []
            for i, item in enumerate(value):
                if not isinstance(item, (list, tuple)) or len(item) != 2:
                    raise ValueError(f"{where}.levels[{i}]: expected [at, rate], got {item!r}")
                pairs.append((parse_duration(item[0], what=f"{where}.levels[{i}].at"), _num(item[1], f"{where}.levels[{i}].rate")))
            value = tuple(pairs)
        else:
            value = _num(value, f"{where}.{key}")
        kwargs[field] = value
    if "duration" not in kwargs:
        kwargs["duration"] = 60.0
    try:
        return cls(**kwargs)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None


def _num(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{what}: expected a number, got {value!r}")
    return float(value)


def arrival_times(shape: Shape, rng: random.Random, *, scale: float = 1.0, limit: int | None = None) -> Iterator[float]:
    """Seconds (from the run start) at which sessions arrive: a non-homogeneous Poisson process.

    Lewis-Shedler thinning against the shape's peak rate. Bounded in time (the shape's duration) and
    in count (``limit``, or a generous multiple of the expected count).
    """
    peak = shape.peak() * scale
    if peak <= 0.0 or (limit is not None and limit <= 0):
        return
    expected = shape.expected_sessions(steps=2_000) * scale
    cap = limit if limit is not None else int(expected * 4 + 10 * math.sqrt(expected) + 1_000)
    # Thinning proposes ~peak*duration candidates; bound the loop by a multiple of that as well.
    max_candidates = int(peak * shape.duration * 4 + 10 * math.sqrt(peak * shape.duration) + 1_000)
    t = 0.0
    produced = 0
    rate = shape.rate
    expo = rng.expovariate
    rand = rng.random
    for _ in range(max_candidates):
        t += expo(peak)
        if t >= shape.duration:
            return
        if rand() * peak < rate(t) * scale:
            yield t
            produced += 1
            if produced >= cap:
                return
