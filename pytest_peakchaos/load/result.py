"""What a load run measured: merge-able latency histograms per action, per status class and per
second, error kinds, session fates, impatience retries and acknowledged orders.

Latency is in microseconds internally, measured from each request's *intended* send time (so a
stalled system shows up as latency instead of as fewer requests: no coordinated omission).

* Totals per action and per (action, status class) are HdrHistograms (``hdrh``; 3 significant
  digits, 1 µs .. 1 h) — exact to 0.1 %, merge-able, and exported in the standard compressed form.
* Per-second series use ``LogSketch``: a DDSketch-style log-bucketed histogram (2 % relative
  accuracy) stored as two small arrays, so memory grows with run *seconds* and never with requests.
"""

from __future__ import annotations

import math
from array import array
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Container, Iterable, Iterator

if TYPE_CHECKING:
    from hdrh.histogram import HdrHistogram

__all__ = [
    "ERROR_KINDS",
    "STATUS_CLASSES",
    "LogSketch",
    "ActionStats",
    "SecondStats",
    "SessionCounts",
    "AckOrder",
    "WindowStats",
    "LoadResult",
    "new_hdr",
    "SCHEMA_VERSION",
    "GeneratorSecond",
    "GeneratorHealth",
    "DEFAULT_GENERATOR_BOUND_MS",
    "seconds_text",
    "seconds_phrase",
]

SCHEMA_VERSION = 1
ERROR_KINDS: tuple[str, ...] = ("status_5xx", "status_4xx", "timeout", "reset", "refused", "other")
STATUS_CLASSES: tuple[str, ...] = ("1xx", "2xx", "3xx", "4xx", "5xx", "none")
HDR_LOWEST_US = 1
HDR_HIGHEST_US = 3_600_000_000
HDR_DIGITS = 3

#: Fine log buckets (0.1 %) used on the hot path; folded into HdrHistograms when a run ends.
FINE_GAMMA = 1.001
INV_LOG_FINE = 1.0 / math.log(FINE_GAMMA)
#: Per-second sketches use every COARSE_FACTOR fine buckets as one (γ = 1.001^40 ≈ 1.041, ≤ 2 %).
COARSE_FACTOR = 40
SKETCH_GAMMA = FINE_GAMMA**COARSE_FACTOR
INV_LOG_GAMMA = 1.0 / math.log(SKETCH_GAMMA)


def new_hdr() -> HdrHistogram:
    from hdrh.histogram import HdrHistogram

    return HdrHistogram(HDR_LOWEST_US, HDR_HIGHEST_US, HDR_DIGITS)


def fine_index(value_us: float) -> int:
    """Fine bucket of a latency in µs: ``(γ^(i-1), γ^i]`` with γ = 1.001 (values ≤ 1 µs: bucket 0)."""
    return int(math.log(value_us) * INV_LOG_FINE) + 1 if value_us > 1.0 else 0


def sketch_index(value_us: float) -> int:
    """Per-second (coarse) bucket of a latency in µs: ``(fine_index + COARSE_FACTOR - 1) //
    COARSE_FACTOR``, written out (it runs once per request, for the generator's send delay)."""
    return (int(math.log(value_us) * INV_LOG_FINE) + COARSE_FACTOR) // COARSE_FACTOR if value_us > 1.0 else 0


def fine_value(index: int) -> float:
    if index <= 0:
        return 1.0
    return 2.0 * FINE_GAMMA**index / (FINE_GAMMA + 1.0)


def hdr_from_fine(buckets: dict[int, int]) -> HdrHistogram:
    """An HdrHistogram holding the fine buckets' representative values (adds ≤ 0.05 % error)."""
    h = new_hdr()
    for index, count in buckets.items():
        v = int(round(fine_value(index)))
        h.record_value(min(max(v, HDR_LOWEST_US), HDR_HIGHEST_US), count)
    return h


def sketch_value(index: int) -> float:
    """Representative value (µs) of a bucket: the middle of ``(γ^(i-1), γ^i]``, relative error ≤ 2 %."""
    if index <= 0:
        return 1.0
    return 2.0 * SKETCH_GAMMA**index / (SKETCH_GAMMA + 1.0)


class LogSketch:
    """A compact merge-able latency histogram (DDSketch-style log buckets, 2 % relative accuracy)."""

    __slots__ = ("keys", "counts", "max_us")

    def __init__(self, keys: Iterable[int] = (), counts: Iterable[int] = (), max_us: float = 0.0) -> None:
        self.keys = array("i", keys)
        self.counts = array("I", counts)
        self.max_us = float(max_us)

    @classmethod
    def from_dict_counts(cls, buckets: dict[int, int], max_us: float) -> LogSketch:
        items = sorted(buckets.items())
        return cls((k for k, _ in items), (c for _, c in items), max_us)

    @property
    def count(self) -> int:
        return sum(self.counts)

    def merge(self, other: LogSketch) -> LogSketch:
        acc: dict[int, int] = dict(zip(self.keys, self.counts))
        for k, c in zip(other.keys, other.counts):
            acc[k] = acc.get(k, 0) + c
        return LogSketch.from_dict_counts(acc, max(self.max_us, other.max_us))

    def quantile_us(self, q: float) -> float:
        total = self.count
        if total == 0:
            return 0.0
        rank = q * total
        seen = 0
        for k, c in zip(self.keys, self.counts):
            seen += c
            if seen >= rank:
                return min(sketch_value(k), self.max_us) if self.max_us else sketch_value(k)
        return self.max_us

    def to_pairs(self) -> list[list[int]]:
        return [[k, c] for k, c in zip(self.keys, self.counts)]

    @classmethod
    def from_pairs(cls, pairs: Iterable[Iterable[int]], max_us: float) -> LogSketch:
        ps = [tuple(p) for p in pairs]
        return cls((p[0] for p in ps), (p[1] for p in ps), max_us)


def _hdr_ms(h: HdrHistogram | None, q: float) -> float:
    if h is None or h.get_total_count() == 0:
        return 0.0
    return float(h.get_value_at_percentile(q)) / 1000.0


class _Percentiles:
    """p50/p95/p99 in ms from the subclass's ``percentile_ms(q)``."""

    def percentile_ms(self, q: float) -> float:
        raise NotImplementedError

    @property
    def p50_ms(self) -> float:
        return self.percentile_ms(50)

    @property
    def p95_ms(self) -> float:
        return self.percentile_ms(95)

    @property
    def p99_ms(self) -> float:
        return self.percentile_ms(99)


@dataclass
class ActionStats(_Percentiles):
    """Totals for one action over the run."""

    action: str
    count: int = 0
    ok: int = 0
    queued: int = 0
    impatient: int = 0
    errors: dict[str, int] = field(default_factory=lambda: {k: 0 for k in ERROR_KINDS})
    status: dict[str, int] = field(default_factory=dict)
    latency: HdrHistogram = field(default_factory=new_hdr)
    by_class: dict[str, HdrHistogram] = field(default_factory=dict)
    service: HdrHistogram = field(default_factory=new_hdr)

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    @property
    def status_classes(self) -> dict[str, int]:
        """Responses per status class (``"2xx"`` ...), plus ``"none"`` for requests without a response."""
        out: dict[str, int] = {}
        for code, n in self.status.items():
            key = f"{str(code)[0]}xx"
            out[key] = out.get(key, 0) + n
        answered = sum(out.values())
        if self.count > answered:
            out["none"] = self.count - answered
        return dict(sorted(out.items()))

    @property
    def success_rate(self) -> float:
        return self.ok / self.count if self.count else 1.0

    def percentile_ms(self, q: float, status_class: str | None = None) -> float:
        """Latency percentile ``q`` (0..100) in ms, from intended send time, optionally for one class."""
        return _hdr_ms(self.latency if status_class is None else self.by_class.get(status_class), q)

    @property
    def max_ms(self) -> float:
        return float(self.latency.get_max_value()) / 1000.0 if self.latency.get_total_count() else 0.0

    def merge(self, other: ActionStats) -> None:
        self.count += other.count
        self.ok += other.ok
        self.queued += other.queued
        self.impatient += other.impatient
        for k, v in other.errors.items():
            self.errors[k] = self.errors.get(k, 0) + v
        for k, v in other.status.items():
            self.status[k] = self.status.get(k, 0) + v
        self.latency.add(other.latency)
        self.service.add(other.service)
        for k, h in other.by_class.items():
            if k not in self.by_class:
                self.by_class[k] = new_hdr()
            self.by_class[k].add(h)

    def to_dict(self, *, histograms: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "count": self.count,
            "ok": self.ok,
            "queued": self.queued,
            "impatient": self.impatient,
            "errors": dict(self.errors),
            "status": dict(sorted(self.status.items())),
            "status_classes": self.status_classes,
            "latency_ms": _summary(self.latency),
            "service_ms": _summary(self.service),
            "by_class": {k: _summary(h) for k, h in sorted(self.by_class.items())},
        }
        if histograms:
            out["hdr"] = _encode(self.latency)
            out["hdr_by_class"] = {k: _encode(h) for k, h in sorted(self.by_class.items())}
            out["hdr_service"] = _encode(self.service)
        return out

    @classmethod
    def from_dict(cls, action: str, d: dict[str, Any]) -> ActionStats:
        s = cls(action, count=d["count"], ok=d["ok"], queued=d["queued"], impatient=d["impatient"])
        s.errors.update(d["errors"])
        s.status = dict(d["status"])
        s.latency = _decode(d["hdr"])
        s.service = _decode(d["hdr_service"])
        s.by_class = {k: _decode(v) for k, v in d["hdr_by_class"].items()}
        return s


def _summary(h: HdrHistogram) -> dict[str, float]:
    n = h.get_total_count()
    if not n:
        return {"count": 0, "p50": 0.0, "p95": 0.0, "p99": 0.0, "max": 0.0, "mean": 0.0}
    return {
        "count": n,
        "p50": h.get_value_at_percentile(50) / 1000.0,
        "p95": h.get_value_at_percentile(95) / 1000.0,
        "p99": h.get_value_at_percentile(99) / 1000.0,
        "max": h.get_max_value() / 1000.0,
        "mean": round(h.get_mean_value() / 1000.0, 3),
    }


def _encode(h: HdrHistogram) -> str:
    if h.get_total_count() == 0:
        return ""
    raw = h.encode()
    return raw.decode("ascii") if isinstance(raw, bytes) else str(raw)


def _decode(text: str) -> HdrHistogram:
    h = new_hdr()
    if text:
        from hdrh.histogram import HdrHistogram

        h.add(HdrHistogram.decode(text))
    return h


class _SketchPercentiles(_Percentiles):
    """Percentiles of a ``sketch`` attribute (a :class:`LogSketch`), in milliseconds."""

    sketch: LogSketch

    def percentile_ms(self, q: float) -> float:
        return self.sketch.quantile_us(q / 100.0) / 1000.0

    @property
    def max_ms(self) -> float:
        return self.sketch.max_us / 1000.0


@dataclass
class SecondStats(_SketchPercentiles):
    """One second (by *intended* send time, from t0) of one action."""

    second: int
    count: int = 0
    ok: int = 0
    errors: int = 0
    queued: int = 0
    sketch: LogSketch = field(default_factory=LogSketch)
    #: errors of this second by kind: the HTTP status ("500", "503", "429", ...) or the transport
    #: failure ("timeout", "reset", "refused", "other"); a 429/503 without Retry-After is
    #: "429_no_retry_after" / "503_no_retry_after"
    kinds: dict[str, int] = field(default_factory=dict)

    def merge(self, other: SecondStats) -> None:
        self.count += other.count
        self.ok += other.ok
        self.errors += other.errors
        self.queued += other.queued
        self.sketch = self.sketch.merge(other.sketch)
        for kind, n in other.kinds.items():
            self.kinds[kind] = self.kinds.get(kind, 0) + n

    def to_dict(self) -> dict[str, Any]:
        return {
            "t": self.second,
            "count": self.count,
            "ok": self.ok,
            "errors": self.errors,
            "queued": self.queued,
            "p50_ms": round(self.p50_ms, 3),
            "p95_ms": round(self.p95_ms, 3),
            "p99_ms": round(self.p99_ms, 3),
            "max_ms": round(self.max_ms, 3),
            "sketch": self.sketch.to_pairs(),
            "kinds": dict(self.kinds),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SecondStats:
        return cls(
            d["t"], d["count"], d["ok"], d["errors"], d.get("queued", 0), LogSketch.from_pairs(d["sketch"], d["max_ms"] * 1000.0),
            {str(k): int(v) for k, v in (d.get("kinds") or {}).items()},
        )


@dataclass
class SessionCounts:
    arrived: int = 0
    started: int = 0
    refused_by_cap: int = 0
    completed: int = 0
    abandoned: int = 0
    truncated: int = 0

    def merge(self, other: SessionCounts) -> None:
        for k in self.__dataclass_fields__:
            setattr(self, k, getattr(self, k) + getattr(other, k))

    def to_dict(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass(frozen=True)
class AckOrder:
    """An order the system acknowledged (e.g. 201 confirmed, 202 queued): reconcile these."""

    idempotency_key: str
    status: int
    order_id: str | None = None
    action: str = "checkout"
    #: the skus the session's planned cart held when it ordered (``None``: not known, e.g. the
    #: request was abandoned by an impatient shopper); compared with the ledger row's items
    items: tuple[str, ...] | None = None
    #: those of ``items`` whose cart request failed: the shop may rightly not have them
    unsure: tuple[str, ...] = ()


@dataclass
class WindowStats(_SketchPercentiles):
    """Aggregate over a time window of the per-second series (see ``LoadResult.window``)."""

    start: float
    end: float
    count: int
    ok: int
    errors: int
    queued: int
    sketch: LogSketch
    kinds: dict[str, int] = field(default_factory=dict)  # errors by kind, as in SecondStats.kinds

    @property
    def success_rate(self) -> float:
        return self.ok / self.count if self.count else 1.0


#: Default bound on the load generator's own p99 delay per second (``Policy.generator_delay_p99_ms``).
DEFAULT_GENERATOR_BOUND_MS = 100.0

@dataclass
class GeneratorSecond:
    """One second (from t0) of the generator's own health."""

    second: int
    lag: LogSketch = field(default_factory=LogSketch)  # loop lag samples, µs
    send: LogSketch = field(default_factory=LogSketch)  # send delay per request, µs
    gc_count: int = 0
    gc_pause_ms: float = 0.0
    gc_max_ms: float = 0.0
    conn_queue_max: int = 0
    cpu_s: float = 0.0
    wall_s: float = 0.0

    @property
    def lag_p99_ms(self) -> float:
        return self.lag.quantile_us(0.99) / 1000.0

    @property
    def lag_max_ms(self) -> float:
        return self.lag.max_us / 1000.0

    @property
    def send_p99_ms(self) -> float:
        return self.send.quantile_us(0.99) / 1000.0

    @property
    def send_max_ms(self) -> float:
        return self.send.max_us / 1000.0

    @property
    def delay_p99_ms(self) -> float:
        """The generator's own p99 delay in this second: the larger of loop lag and send delay."""
        return max(self.lag_p99_ms, self.send_p99_ms)

    @property
    def cpu_share(self) -> float:
        """CPU seconds per wall second the engine got (per worker on average when merged)."""
        return self.cpu_s / self.wall_s if self.wall_s > 0 else 0.0

    def merge(self, other: GeneratorSecond) -> None:
        self.lag = self.lag.merge(other.lag)
        self.send = self.send.merge(other.send)
        self.gc_count += other.gc_count
        self.gc_pause_ms += other.gc_pause_ms
        self.gc_max_ms = max(self.gc_max_ms, other.gc_max_ms)
        self.conn_queue_max = max(self.conn_queue_max, other.conn_queue_max)
        self.cpu_s += other.cpu_s
        self.wall_s += other.wall_s

    def to_dict(self) -> dict[str, Any]:
        return {
            "t": self.second,
            "delay_p99_ms": round(self.delay_p99_ms, 3),
            "lag_p99_ms": round(self.lag_p99_ms, 3),
            "lag_max_ms": round(self.lag_max_ms, 3),
            "send_p99_ms": round(self.send_p99_ms, 3),
            "send_max_ms": round(self.send_max_ms, 3),
            "gc_count": self.gc_count,
            "gc_pause_ms": round(self.gc_pause_ms, 3),
            "gc_max_ms": round(self.gc_max_ms, 3),
            "conn_queue_max": self.conn_queue_max,
            "cpu_s": round(self.cpu_s, 4),
            "wall_s": round(self.wall_s, 4),
            "lag": self.lag.to_pairs(),
            "send": self.send.to_pairs(),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GeneratorSecond:
        return cls(
            int(d["t"]),
            LogSketch.from_pairs(d.get("lag", []), float(d.get("lag_max_ms", 0.0)) * 1000.0),
            LogSketch.from_pairs(d.get("send", []), float(d.get("send_max_ms", 0.0)) * 1000.0),
            int(d.get("gc_count", 0)),
            float(d.get("gc_pause_ms", 0.0)),
            float(d.get("gc_max_ms", 0.0)),
            int(d.get("conn_queue_max", 0)),
            float(d.get("cpu_s", 0.0)),
            float(d.get("wall_s", 0.0)),
        )


def seconds_text(seconds: Iterable[int]) -> str:
    """``[3, 4, 5, 9]`` -> ``"3–5, 9"``."""
    secs = sorted(set(seconds))
    parts: list[str] = []
    i = 0
    while i < len(secs):
        j = i
        while j + 1 < len(secs) and secs[j + 1] == secs[j] + 1:
            j += 1
        parts.append(str(secs[i]) if i == j else f"{secs[i]}–{secs[j]}")
        i = j + 1
    return ", ".join(parts)


def seconds_phrase(seconds: Iterable[int]) -> str:
    """``[2]`` -> ``"second 2"``, ``[3, 4, 9]`` -> ``"seconds 3–4, 9"``."""
    secs = sorted(set(seconds))
    return f"{'second' if len(secs) == 1 else 'seconds'} {seconds_text(secs)}"


@dataclass
class GeneratorHealth:
    """Per-second generator health of a run (all workers merged)."""

    seconds: dict[int, GeneratorSecond] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.seconds)

    def timeline(self) -> list[GeneratorSecond]:
        return [self.seconds[s] for s in sorted(self.seconds)]

    def delay_p99_ms(self, second: int) -> float:
        row = self.seconds.get(second)
        return row.delay_p99_ms if row is not None else 0.0

    def saturated_seconds(self, bound_ms: float = DEFAULT_GENERATOR_BOUND_MS) -> list[int]:
        """Seconds whose generator p99 delay exceeded ``bound_ms``: their latency is not the system's."""
        return [s for s in sorted(self.seconds) if self.seconds[s].delay_p99_ms > bound_ms]

    def saturated_in(self, start: float, end: float, bound_ms: float = DEFAULT_GENERATOR_BOUND_MS) -> list[int]:
        """Saturated seconds within the run-relative window ``[start, end)``."""
        lo, hi = int(math.floor(start)), int(math.ceil(end))
        return [s for s in self.saturated_seconds(bound_ms) if lo <= s < hi]

    def window_delay_p99_ms(self, start: float, end: float) -> float:
        """The generator's own p99 delay over the run-relative window ``[start, end)``: loop lag
        and send delay samples of its seconds merged (one bad second among many is not the p99)."""
        lo, hi = int(math.floor(start)), int(math.ceil(end))
        rows = [self.seconds[s] for s in range(lo, hi) if s in self.seconds]
        if not rows:
            return 0.0
        lag = LogSketch()
        send = LogSketch()
        for r in rows:
            lag = lag.merge(r.lag)
            send = send.merge(r.send)
        return max(lag.quantile_us(0.99), send.quantile_us(0.99)) / 1000.0

    def saturated_window(self, start: float, end: float, bound_ms: float = DEFAULT_GENERATOR_BOUND_MS) -> str:
        """``""``, or why latency over ``[start, end)`` is not the system's: the generator's p99
        delay over the window exceeded ``bound_ms`` (the worst seconds named)."""
        p99 = self.window_delay_p99_ms(start, end)
        if p99 <= bound_ms:
            return ""
        worst = self.saturated_in(start, end, bound_ms)
        where = f" (worst: {seconds_phrase(worst)})" if worst else ""
        return (f"the load generator was saturated: its own p99 delay was {p99:.0f} ms over seconds "
                f"{int(math.floor(start))}–{int(math.ceil(end)) - 1}{where}, bound {bound_ms:g} ms; add workers or a cluster")

    def worst_ms(self, seconds: Iterable[int] | None = None) -> float:
        rows = self.seconds.values() if seconds is None else [self.seconds[s] for s in seconds if s in self.seconds]
        return max((r.delay_p99_ms for r in rows), default=0.0)

    def describe(self, bound_ms: float = DEFAULT_GENERATOR_BOUND_MS, seconds: Iterable[int] | None = None) -> str:
        """One line: ``""`` when the generator kept up, else what it added and where (the reason a
        latency verdict in those seconds is *not measured*)."""
        sat = self.saturated_seconds(bound_ms) if seconds is None else sorted(set(seconds))
        if not sat:
            return ""
        return (f"the load generator was saturated: its own p99 delay was {self.worst_ms(sat):.0f} ms in {seconds_phrase(sat)} "
                f"(bound {bound_ms:g} ms); add workers or a cluster")

    def totals(self) -> dict[str, float]:
        rows = list(self.seconds.values())
        cpu = sum(r.cpu_s for r in rows)
        wall = sum(r.wall_s for r in rows)
        return {
            "delay_p99_ms_max": round(self.worst_ms(), 3),
            "gc_count": sum(r.gc_count for r in rows),
            "gc_pause_ms": round(sum(r.gc_pause_ms for r in rows), 3),
            "gc_max_ms": round(max((r.gc_max_ms for r in rows), default=0.0), 3),
            "conn_queue_max": max((r.conn_queue_max for r in rows), default=0),
            "cpu_share": round(cpu / wall, 3) if wall > 0 else 0.0,
        }

    def merge(self, other: GeneratorHealth) -> None:
        for sec, row in other.seconds.items():
            mine = self.seconds.get(sec)
            if mine is None:
                mine = self.seconds[sec] = GeneratorSecond(sec)
            mine.merge(row)

    def to_dict(self) -> dict[str, Any]:
        return {"totals": self.totals(), "seconds": [r.to_dict() for r in self.timeline()]}

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> GeneratorHealth:
        if not d:
            return cls()
        rows = (GeneratorSecond.from_dict(r) for r in d.get("seconds", []))
        return cls({r.second: r for r in rows})


@dataclass
class LoadResult:
    """Everything one run (or several merged worker runs) measured."""

    seed: int
    profile: str
    run_id: str
    t0: float
    duration_s: float
    elapsed_s: float = 0.0
    stop_reason: str = ""
    workers: int = 1
    requests_sent: int = 0
    actions: dict[str, ActionStats] = field(default_factory=dict)
    series: dict[str, dict[int, SecondStats]] = field(default_factory=dict)
    session_series: dict[int, list[int]] = field(default_factory=dict)  # second -> [arrived, refused]
    sessions: SessionCounts = field(default_factory=SessionCounts)
    retries_impatience: int = 0
    orders: list[AckOrder] = field(default_factory=list)
    legacy_actions: frozenset[str] = frozenset()
    scale: float = 1.0
    #: the load generator's own health per second (loop lag, send delay, collector pauses)
    generator: GeneratorHealth = field(default_factory=lambda: GeneratorHealth())
    #: counted problems with the profile's session state: {kind: {what: {"count": n, "example": text}}}
    #: (kinds: capture_miss, bad_cookie, unset_variable; see docs/load.md)
    warnings: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    #: shares of a distributed run whose worker was lost: ``{share, of, worker, error}`` each
    missing_shares: list[dict[str, Any]] = field(default_factory=list)

    # -- derived ----------------------------------------------------------------------------------
    @property
    def total(self) -> ActionStats:
        """All actions together."""
        t = ActionStats("*")
        for s in self.actions.values():
            t.merge(s)
        return t

    @property
    def legacy_calls(self) -> int:
        """Requests sent for legacy-bound actions (retries included)."""
        return sum(s.count for a, s in self.actions.items() if a in self.legacy_actions)

    @property
    def legacy_calls_per_session(self) -> float:
        started = self.sessions.started
        return self.legacy_calls / started if started else 0.0

    @property
    def throughput(self) -> float:
        """Completed requests per second of elapsed run time."""
        n = sum(s.count for s in self.actions.values())
        return n / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def stats(self, action: str) -> ActionStats:
        return self.actions.get(action) or ActionStats(action)

    def timeline(self, action: str | None = None) -> list[SecondStats]:
        """Per-second stats (all actions merged when ``action`` is None), in time order, gaps filled."""
        data: dict[int, SecondStats]
        if action is not None:
            data = self.series.get(action, {})
        else:
            data = {}
            for per in self.series.values():
                for sec, st in per.items():
                    if sec not in data:
                        data[sec] = SecondStats(sec)
                    data[sec].merge(st)
        if not data:
            return []
        last = max(max(data), int(math.ceil(self.duration_s)) - 1)
        return [data.get(s) or SecondStats(s) for s in range(0, last + 1)]

    def window(self, start: float, end: float, actions: Iterable[str] | None = None,
               skip: Container[int] = ()) -> WindowStats:
        """Merge the seconds ``[start, end)`` (run-relative, by intended send time) of ``actions``,
        leaving out the seconds in ``skip`` (e.g. those in which the generator was saturated)."""
        names = list(self.series) if actions is None else list(actions)
        count = ok = errors = queued = 0
        kinds: dict[str, int] = {}
        acc: dict[int, int] = {}
        mx = 0.0
        lo, hi = int(math.floor(start)), int(math.ceil(end))
        for a in names:
            per = self.series.get(a, {})
            for sec in range(lo, hi):
                st = per.get(sec)
                if st is None or sec in skip:
                    continue
                count += st.count
                ok += st.ok
                errors += st.errors
                queued += st.queued
                for kind, n in st.kinds.items():
                    kinds[kind] = kinds.get(kind, 0) + n
                mx = max(mx, st.sketch.max_us)
                for k, c in zip(st.sketch.keys, st.sketch.counts):
                    acc[k] = acc.get(k, 0) + c
        return WindowStats(start, end, count, ok, errors, queued, LogSketch.from_dict_counts(acc, mx), kinds)

    # -- combine ----------------------------------------------------------------------------------
    def merge(self, *others: LoadResult) -> LoadResult:
        """Fold other results (e.g. from worker processes of the same run) into this one; returns self."""
        for o in others:
            self.workers += o.workers
            self.requests_sent += o.requests_sent
            self.elapsed_s = max(self.elapsed_s, o.elapsed_s)
            self.t0 = min(self.t0, o.t0)
            self.retries_impatience += o.retries_impatience
            self.sessions.merge(o.sessions)
            self.orders.extend(o.orders)
            self.missing_shares.extend(o.missing_shares)
            self.legacy_actions = self.legacy_actions | o.legacy_actions
            for kind, wper in o.warnings.items():
                mine_w = self.warnings.setdefault(kind, {})
                for what, w in wper.items():
                    if what in mine_w:
                        mine_w[what]["count"] += w["count"]
                    else:
                        mine_w[what] = dict(w)
            if o.stop_reason and o.stop_reason not in self.stop_reason.split(","):
                self.stop_reason = ",".join(x for x in (self.stop_reason, o.stop_reason) if x)
            for a, ast in o.actions.items():
                if a in self.actions:
                    self.actions[a].merge(ast)
                else:
                    mine = ActionStats(a)
                    mine.merge(ast)
                    self.actions[a] = mine
            for a, per in o.series.items():
                target = self.series.setdefault(a, {})
                for sec, st in per.items():
                    if sec in target:
                        target[sec].merge(st)
                    else:
                        target[sec] = SecondStats(sec, st.count, st.ok, st.errors, st.queued, st.sketch)
            self.generator.merge(o.generator)
            for sec, pair in o.session_series.items():
                mine_pair = self.session_series.setdefault(sec, [0, 0])
                mine_pair[0] += pair[0]
                mine_pair[1] += pair[1]
        return self

    # -- export -----------------------------------------------------------------------------------
    def iter_orders(self) -> Iterator[AckOrder]:
        return iter(self.orders)

    def to_dict(self, *, histograms: bool = True) -> dict[str, Any]:
        """A JSON-able form (versioned). ``histograms=False`` drops the encoded HdrHistograms and
        per-second sketches for a smaller summary."""
        series: dict[str, list[dict[str, Any]]] = {}
        for a, per in sorted(self.series.items()):
            rows = [per[s].to_dict() for s in sorted(per)]
            if not histograms:
                for r in rows:
                    r.pop("sketch")
            series[a] = rows
        total = self.total
        return {
            "schema": SCHEMA_VERSION,
            "seed": self.seed,
            "profile": self.profile,
            "run_id": self.run_id,
            "t0": self.t0,
            "duration_s": self.duration_s,
            "elapsed_s": round(self.elapsed_s, 4),
            "stop_reason": self.stop_reason,
            "workers": self.workers,
            "scale": self.scale,
            "requests_sent": self.requests_sent,
            "throughput_rps": round(self.throughput, 1),
            "sessions": self.sessions.to_dict(),
            "retries_impatience": self.retries_impatience,
            "legacy_actions": sorted(self.legacy_actions),
            "legacy_calls": self.legacy_calls,
            "legacy_calls_per_session": round(self.legacy_calls_per_session, 4),
            "total": total.to_dict(histograms=False),
            "actions": {a: s.to_dict(histograms=histograms) for a, s in sorted(self.actions.items())},
            "series": series,
            "session_series": [[s, *self.session_series[s]] for s in sorted(self.session_series)],
            "generator": self.generator.to_dict() if histograms else {
                "totals": self.generator.totals(),
                "seconds": [{k: v for k, v in row.items() if k not in ("lag", "send")} for row in self.generator.to_dict()["seconds"]],
            },
            "missing_shares": [dict(x) for x in self.missing_shares],
            "orders": [
                {"idempotency_key": o.idempotency_key, "status": o.status, "order_id": o.order_id, "action": o.action,
                 **({"items": list(o.items), "unsure": list(o.unsure)} if o.items is not None else {})}
                for o in self.orders
            ],
            **({"warnings": {k: {w: dict(v) for w, v in per.items()} for k, per in self.warnings.items()}} if self.warnings else {}),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LoadResult:
        """Inverse of ``to_dict()`` (with histograms)."""
        r = cls(
            seed=d["seed"],
            profile=d["profile"],
            run_id=d["run_id"],
            t0=d["t0"],
            duration_s=d["duration_s"],
            elapsed_s=d["elapsed_s"],
            stop_reason=d["stop_reason"],
            workers=d["workers"],
            requests_sent=d["requests_sent"],
            retries_impatience=d["retries_impatience"],
            legacy_actions=frozenset(d["legacy_actions"]),
            scale=d.get("scale", 1.0),
        )
        r.sessions = SessionCounts(**d["sessions"])
        r.actions = {a: ActionStats.from_dict(a, s) for a, s in d["actions"].items()}
        r.series = {a: {row["t"]: SecondStats.from_dict(row) for row in rows} for a, rows in d["series"].items()}
        r.session_series = {row[0]: [row[1], row[2]] for row in d["session_series"]}
        r.generator = GeneratorHealth.from_dict(d.get("generator"))
        r.missing_shares = [dict(x) for x in d.get("missing_shares", [])]
        r.orders = [
            AckOrder(o["idempotency_key"], o["status"], o["order_id"], o.get("action", "checkout"),
                     None if o.get("items") is None else tuple(map(str, o["items"])), tuple(map(str, o.get("unsure", ()))))
            for o in d["orders"]
        ]
        r.warnings = {k: {w: dict(v) for w, v in per.items()} for k, per in d.get("warnings", {}).items()}
        return r

    def summary(self) -> str:
        """A small human-readable table."""
        lines = [
            f"profile={self.profile} seed={self.seed} workers={self.workers} elapsed={self.elapsed_s:.1f}s "
            f"requests={sum(s.count for s in self.actions.values())} ({self.throughput:.0f}/s) stop={self.stop_reason}",
            f"sessions: {self.sessions.to_dict()} impatience retries={self.retries_impatience} "
            f"legacy calls/session={self.legacy_calls_per_session:.2f} orders acknowledged={len(self.orders)}",
            f"{'action':<17}{'count':>9}{'ok%':>8}{'err':>7}{'p50ms':>9}{'p95ms':>9}{'p99ms':>9}{'maxms':>9}",
        ]
        gen = self.generator.describe()
        if gen:
            lines.insert(2, gen)
        for a, s in sorted(self.actions.items()):
            lines.append(
                f"{a:<17}{s.count:>9}{100 * s.success_rate:>7.1f}%{s.error_count:>7}"
                f"{s.p50_ms:>9.1f}{s.p95_ms:>9.1f}{s.p99_ms:>9.1f}{s.max_ms:>9.1f}"
            )
        for kind, per in sorted(self.warnings.items()):
            for what, w in sorted(per.items()):
                lines.append(f"warning {kind} {what}: {w['count']}x, e.g. {str(w.get('example', ''))[:200]}")
        return "\n".join(lines)
