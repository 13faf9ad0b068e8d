"""Headroom search: the highest session arrival rate at which a system still degrades gracefully
under a given fault schedule, and the lowest at which it does not.

    from pytest_peakchaos import latency
    from pytest_peakchaos.experiment import Experiment
    from pytest_peakchaos.headroom import find_headroom

    room = find_headroom(
        Experiment(stack), profile="double11", faults=[latency(ms=800, start="2s", length="3s")],
        rates=(2, 60), duration="8s", budget="4m", max_probes=8, seed=7,
    )
    print(room.summary())   # graceful up to 38 sessions/s; not at 44 (isolation/fault: ...); 7 probes, 3m12s
    room.assert_headroom(at_least=forecast * 3)

Each *probe* is one short :meth:`Experiment.run` of the profile at a *scale* (the profile's arrival
curve multiplied by it) with the same faults; a rate is ``scale x`` the profile's peak arrival rate
(sessions/s). The search, on one running stack:

1. **bracket**: the bottom of the range first, then rates ``growth`` times higher (capped at the
   top) until a probe fails;
2. **bisect** (geometric midpoints) between the highest graceful and the lowest failing rate
   until they are within ``resolution`` of each other;
3. **repeat** the boundary: the highest graceful rate is probed ``repeat`` more times (fresh seeds).
   A rate whose probes disagree is *flaky* and counts as not graceful; the search goes on below it.

The answer is an interval ``(graceful_up_to, not_at)``, never one made-up number; either end may be
open (``None``: the bottom of the range already failed / the top still passed). A probe is graceful
iff its result ``passed``; one whose failures are all "not measured" rows or harness errors (a fault
that could not be applied, a stack error) is *inconclusive*: it moves no bound and is retried once;
one whose unmeasured rows all lacked requests (``too_few``: a low rate in a short probe) makes the
search step up to a higher rate instead, while it is still bracketing.
The search stops when the interval is narrow enough and confirmed, or before a probe that would end
past the time ``budget``, or after ``max_probes`` probes. Every probe's full result is kept.

Same seed, same probe seeds: a probe's seed is derived from the search seed, its rate and how many
probes that rate had before, so two searches with one seed send the same requests as long as their
verdicts agree.

No pytest here: the ``peakchaos`` fixture's ``headroom(...)`` and the ``peakchaos_headroom`` marker
are thin wrappers over :func:`find_headroom`; :func:`search` is the bare algorithm over any prober.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from pytest_peakchaos.units import parse_duration

if TYPE_CHECKING:
    from pytest_peakchaos.experiment import Experiment
    from pytest_peakchaos.faults import Fault
    from pytest_peakchaos.profiles.model import Profile

__all__ = [
    "HEADROOM_KEYS",
    "HeadroomError",
    "HeadroomPlan",
    "HeadroomResult",
    "Probe",
    "classify",
    "find_headroom",
    "headroom_kwargs",
    "plan_headroom",
    "search",
]

PASS = "pass"
FAIL = "fail"
INCONCLUSIVE = "inconclusive"

#: Rows that report on the harness, not on the system under test: a failing one makes a probe
#: inconclusive, never a failure.
HARNESS_CHECKS = frozenset({"faults_applied", "harness"})

#: Keyword arguments of :func:`find_headroom` besides the experiment (also the marker's keywords).
HEADROOM_KEYS = (
    "profile",
    "faults",
    "rates",
    "scales",
    "duration",
    "budget",
    "max_probes",
    "repeat",
    "resolution",
    "growth",
    "seed",
    "cooldown",
    "checks",
    "max_requests",
    "concurrency_cap",
    "request_timeout",
    "settle",
    "legacy_actions",
    "workers",
    "link",
    "at_least",
)

#: How many inconclusive probes in a row end the search (a harness that keeps failing).
MAX_INCONCLUSIVE_IN_A_ROW = 2


class HeadroomError(AssertionError):
    """``HeadroomResult.assert_headroom(at_least=...)`` failed; the message has the interval."""

    def __init__(self, message: str, result: HeadroomResult) -> None:
        super().__init__(message)
        self.result = result


# --------------------------------------------------------------------------------------- probes


class ProbeResult(Protocol):
    """What the search needs of a probe's result (an :class:`ExperimentResult` has all of it)."""

    @property
    def passed(self) -> bool: ...

    @property
    def checks(self) -> Sequence[Any]: ...

    @property
    def legacy_calls_per_session(self) -> float: ...

    @property
    def seed(self) -> int: ...

    def to_dict(self, test: str | None = None) -> dict[str, Any]: ...


#: ``prober(scale, seed)`` runs one probe and returns its result.
Prober = Callable[[float, int], ProbeResult]


def _not_measured(check: Any) -> bool:
    """A row that could not measure: ``skipped``, an ``outcome``/``status`` of "not measured" (or
    "skip"), or a measured text starting so. Only plain values count (never methods)."""
    if getattr(check, "skipped", False) is True:
        return True
    for attr in ("outcome", "state", "status"):
        value = getattr(check, attr, None)
        if isinstance(value, str) and value.lower().replace("_", " ") in ("not measured", "skip", "skipped"):
            return True
    measured = getattr(check, "measured", "")
    return isinstance(measured, str) and measured.lower().startswith("not measured")


def classify(result: ProbeResult) -> tuple[str, list[Any]]:
    """``(verdict, rows)``: ``pass`` iff ``result.passed``; ``fail`` with the failing rows that
    measured something; else ``inconclusive`` with the rows that could not measure (or the harness
    errors)."""
    if result.passed:
        return PASS, []
    bad = [c for c in result.checks if not c.passed]
    real = [c for c in bad if c.name not in HARNESS_CHECKS and not _not_measured(c)]
    if real:
        return FAIL, real
    return INCONCLUSIVE, bad


@dataclass
class Probe:
    """One short experiment of the search, at ``rate`` sessions/s (``scale`` x the profile's peak)."""

    index: int
    rate: float
    scale: float
    seed: int
    step: str  # bracket, bisect, repeat, retry, step up
    verdict: str  # pass, fail, inconclusive
    wall_s: float
    result: Any = None  # the probe's ExperimentResult (None when it raised)
    failures: list[Any] = field(default_factory=list)  # the failing rows (fail) or unmeasured ones
    error: str = ""

    @property
    def passed(self) -> bool:
        return self.verdict == PASS

    @property
    def first_failure(self) -> Any:
        return self.failures[0] if self.failures else None

    @property
    def legacy_calls_per_session(self) -> float | None:
        if self.result is None:
            return None
        try:
            return float(self.result.legacy_calls_per_session)
        except (AttributeError, TypeError, ValueError):
            return None

    def why(self) -> str:
        """The first failing check, ``name/phase: measured`` (or the error), shortened."""
        if self.error:
            return _short(self.error, 90)
        c = self.first_failure
        if c is None:
            return ""
        return _short(f"{c.name}/{c.phase}: {c.measured}", 90)

    def to_dict(self, test: str = "") -> dict[str, Any]:
        c = self.first_failure
        run = None
        if self.result is not None:
            run = self.result.to_dict(test=f"{test} [probe {self.index} at {_rate(self.rate)}/s]" if test else None)
        lcs = self.legacy_calls_per_session
        return {
            "index": self.index,
            "rate": round(self.rate, 4),
            "scale": round(self.scale, 6),
            "seed": self.seed,
            "step": self.step,
            "verdict": self.verdict,
            "passed": self.passed,
            "wall_s": round(self.wall_s, 3),
            "legacy_calls_per_session": None if lcs is None else round(lcs, 4),
            "first_failure": None if c is None else {
                "name": str(c.name), "phase": str(c.phase), "measured": str(c.measured),
            },
            "error": self.error,
            "run": run,
        }


# --------------------------------------------------------------------------------------- plan


@dataclass(frozen=True)
class HeadroomPlan:
    """A validated search: rates in sessions/s, times in seconds."""

    lo: float
    hi: float
    base_rate: float  # the profile's peak arrival rate at scale 1, sessions/s
    duration_s: float
    budget_s: float
    max_probes: int
    repeat: int = 1
    resolution: float = 0.1
    growth: float = 2.0
    seed: int = 0
    cooldown_s: float = 0.0

    def scale_of(self, rate: float) -> float:
        return rate / self.base_rate


def _positive_number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{what}: expected a finite number > 0, got {value!r}")
    return float(value)


def _whole(value: Any, what: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{what}: expected a whole number >= {minimum}, got {value!r}")
    return value


def _range(value: Any, what: str, unit: str) -> tuple[float, float]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or len(value) != 2:
        raise ValueError(f"{what}: expected (lowest, highest) in {unit}, e.g. {what}=(2, 40); got {value!r}")
    lo = _positive_number(value[0], f"{what}[0] (lowest)")
    hi = _positive_number(value[1], f"{what}[1] (highest)")
    if lo > hi:
        raise ValueError(f"{what}: the range is inverted ({lo:g} > {hi:g}); give (lowest, highest) in {unit}")
    if lo == hi:
        raise ValueError(f"{what}: the range is empty ({lo:g} to {hi:g}); give lowest < highest in {unit}")
    return lo, hi


def _base_rate(profile: Any) -> float:
    name = getattr(profile, "name", repr(profile))
    shape = getattr(profile, "shape", None)
    peak = None
    if shape is not None:
        try:
            peak = float(shape.peak())
        except (AttributeError, TypeError, ValueError, NotImplementedError):
            peak = None
    if peak is None or not math.isfinite(peak) or peak <= 0:
        what = "no arrival shape" if shape is None else f"an arrival shape with no arrivals ({shape.describe()})"
        raise ValueError(
            f"profile: {name!r} has {what}, so a scale changes nothing and there is no rate to search; "
            "give it an arrival curve (arrival: {shape: constant, rate: 1, duration: 60s} in YAML, or "
            "profile.with_shape(Constant(duration=60, rate_per_s=1)))"
        )
    return peak


def plan_headroom(
    profile: Any,
    *,
    rates: Sequence[float] | None = None,
    scales: Sequence[float] | None = None,
    duration: float | str = "6s",
    budget: float | str = "3m",
    max_probes: int = 8,
    repeat: int = 1,
    resolution: float = 0.1,
    growth: float = 2.0,
    seed: int | None = None,
    cooldown: float | str = "1s",
) -> HeadroomPlan:
    """Validate the search's own arguments (``profile``: a loaded profile); a ``ValueError`` names
    the argument and what is valid."""
    base = _base_rate(profile)
    if (rates is None) == (scales is None):
        raise ValueError(
            "rates: give the range to search as rates=(lowest, highest) in sessions/s "
            f"(the profile's peak is {base:g} sessions/s at scale 1) or as scales=(lowest, highest), not "
            + ("both" if rates is not None else "neither")
        )
    if rates is not None:
        lo, hi = _range(rates, "rates", "sessions/s")
    else:
        slo, shi = _range(scales, "scales", "multiples of the profile's arrival curve")
        lo, hi = slo * base, shi * base
    duration_s = parse_duration(duration, what="duration")
    if not (duration_s > 0) or math.isinf(duration_s):
        raise ValueError(f"duration: one probe's length must be a positive finite duration, got {duration!r}")
    budget_s = parse_duration(budget, what="budget")
    if math.isinf(budget_s):
        raise ValueError(f"budget: must be finite, got {budget!r}")
    if budget_s < duration_s:
        raise ValueError(
            f"budget: {budget!r} is too small for one probe of {duration_s:g}s (duration); give a budget of "
            f"at least {duration_s:g}s, better several probes' worth (e.g. budget='{max(60, int(8 * duration_s))}s')"
        )
    cooldown_s = parse_duration(cooldown, what="cooldown")
    if math.isinf(cooldown_s):
        raise ValueError(f"cooldown: must be finite, got {cooldown!r}")
    max_probes = _whole(max_probes, "max_probes", 1)
    repeat = _whole(repeat, "repeat", 0)
    resolution = _positive_number(resolution, "resolution")
    growth = _positive_number(growth, "growth")
    if growth <= 1:
        raise ValueError(f"growth: each bracketing step multiplies the rate by it, so it must be > 1, got {growth!r}")
    if seed is None:
        seed = random.SystemRandom().randrange(1, 2**31)
    elif isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed: expected a whole number, got {seed!r}")
    return HeadroomPlan(lo, hi, base, duration_s, budget_s, max_probes, repeat, resolution, growth, seed, cooldown_s)


def probe_seed(seed: int, rate: float, nth: int) -> int:
    """The seed of the ``nth`` probe (0, 1, ...) at ``rate`` in a search seeded ``seed``."""
    return random.Random(f"peakchaos-headroom:{seed}:{rate:.6g}:{nth}").randrange(1, 2**31)


# --------------------------------------------------------------------------------------- search


def _by_rate(probes: Iterable[Probe]) -> dict[float, list[str]]:
    out: dict[float, list[str]] = {}
    for p in probes:
        if p.verdict != INCONCLUSIVE:
            out.setdefault(p.rate, []).append(p.verdict)
    return out


def bounds(probes: Iterable[Probe]) -> tuple[float | None, float | None]:
    """``(graceful_up_to, not_at)``: the lowest rate any probe failed at, and the highest rate
    below it at which every conclusive probe passed."""
    seen = _by_rate(probes)
    fails = [r for r, vs in seen.items() if FAIL in vs]
    upper = min(fails) if fails else None
    ok = [r for r, vs in seen.items() if FAIL not in vs and (upper is None or r < upper)]
    return (max(ok) if ok else None), upper


def starved(probe: Probe) -> bool:
    """An inconclusive probe whose every unmeasured row lacked requests (``CheckResult.too_few``):
    a probe at a higher rate has more of them, so the search steps up rather than retrying."""
    return (probe.verdict == INCONCLUSIVE and not probe.error and bool(probe.failures)
            and all(getattr(c, "too_few", False) is True for c in probe.failures))


def _inconclusive_run(probes: list[Probe]) -> int:
    """Inconclusive probes in a row at the last probe's rate (a starved probe's step up to a higher
    rate starts the count again)."""
    n = 0
    for p in reversed(probes):
        if p.verdict != INCONCLUSIVE or p.rate != probes[-1].rate:
            break
        n += 1
    return n


def _next(plan: HeadroomPlan, probes: list[Probe]) -> tuple[float, str] | None:
    """The next probe ``(rate, step)``, or ``None`` when the interval is settled."""
    last = probes[-1] if probes else None
    lower, upper = bounds(probes)
    if last is not None and last.verdict == INCONCLUSIVE:
        if upper is None and starved(last) and last.rate < plan.hi * (1 - 1e-9):
            return min(plan.hi, last.rate * plan.growth), "step up"  # more load, more data
        return last.rate, "retry"
    if lower is None and upper is None:
        return plan.lo, "bracket"
    if upper is None:
        assert lower is not None
        if lower < plan.hi * (1 - 1e-9):
            return min(plan.hi, lower * plan.growth), "bracket"
    elif lower is None:
        return None  # the bottom of the range is not graceful
    elif upper / lower > 1 + plan.resolution + 1e-9:
        return math.sqrt(lower * upper), "bisect"
    assert lower is not None
    if len(_by_rate(probes).get(lower, ())) < 1 + plan.repeat:
        return lower, "repeat"
    return None


def search(
    plan: HeadroomPlan,
    prober: Prober,
    *,
    name: str = "",
    profile: str = "",
    faults: Sequence[Any] = (),
    before_probe: Callable[[], None] | None = None,
    on_probe: Callable[[Probe], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> HeadroomResult:
    """Run the search with ``prober(scale, seed)``; every decision is :func:`_next`'s.

    ``before_probe`` runs before every probe (e.g. wait until the system is quiet); its time counts
    against the budget. A ``ValueError`` from a probe is bad input (or a bug) and propagates; any other
    exception of a probe makes it inconclusive (``KeyboardInterrupt`` and friends propagate).
    """
    t0 = clock()
    probes: list[Probe] = []
    slowest = plan.duration_s
    stopped = "converged"
    while True:
        step = _next(plan, probes)
        if step is None:
            lower, upper = bounds(probes)
            if lower is None and upper is not None:
                stopped = "failed at the bottom of the range"
            elif upper is None:
                stopped = "graceful at the top of the range"
            break
        if len(probes) >= plan.max_probes:
            stopped = f"max_probes ({plan.max_probes})"
            break
        pause = plan.cooldown_s if probes else 0.0
        if clock() - t0 + pause + slowest > plan.budget_s:
            stopped = f"budget ({_clock(plan.budget_s)})"
            break
        run = _inconclusive_run(probes)
        if run >= MAX_INCONCLUSIVE_IN_A_ROW:
            stopped = f"{run} inconclusive probes in a row"
            break
        rate, why = step
        nth = sum(1 for p in probes if p.rate == rate)
        seed = probe_seed(plan.seed, rate, nth)
        if pause:
            sleep(pause)
        started = clock()
        if before_probe is not None:
            before_probe()
        result: Any = None
        error = ""
        try:
            result = prober(plan.scale_of(rate), seed)
        except ValueError:
            raise  # bad input (or a bug): never an inconclusive probe
        except Exception as exc:  # noqa: BLE001 - a harness error: inconclusive, reported
            error = f"{type(exc).__name__}: {exc}"
        wall = clock() - started
        slowest = max(slowest, wall)
        rows: list[Any] = []
        if result is None:
            verdict = INCONCLUSIVE
        else:
            verdict, rows = classify(result)
        probe = Probe(len(probes) + 1, rate, plan.scale_of(rate), seed, why, verdict, wall, result, rows, error)
        probes.append(probe)
        if on_probe is not None:
            on_probe(probe)
    lower, upper = bounds(probes)
    return HeadroomResult(
        name=name,
        profile=profile,
        plan=plan,
        probes=probes,
        graceful_up_to=lower,
        not_at=upper,
        stopped=stopped,
        wall_s=clock() - t0,
        faults=tuple(faults),
    )


# --------------------------------------------------------------------------------------- result


def _rate(x: float | None) -> str:
    if x is None:
        return "—"
    if x >= 1000:
        return f"{x:,.0f}"
    return f"{x:.3g}"


def _clock(seconds: float) -> str:
    s = int(round(seconds))
    if s < 60:
        return f"{seconds:.0f}s" if seconds >= 1 else f"{seconds:.1f}s"
    return f"{s // 60}m{s % 60:02d}s"


def _short(text: str, limit: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass
class HeadroomResult:
    """The interval a search found, and every probe (with its full result) that found it."""

    name: str
    profile: str
    plan: HeadroomPlan
    probes: list[Probe]
    graceful_up_to: float | None  # sessions/s; None: not even the bottom of the range was graceful
    not_at: float | None  # sessions/s; None: no probe failed (graceful up to the top of the range)
    stopped: str
    wall_s: float
    faults: tuple[Any, ...] = ()

    # -- reading ------------------------------------------------------------------------------
    @property
    def interval(self) -> tuple[float | None, float | None]:
        return self.graceful_up_to, self.not_at

    @property
    def seed(self) -> int:
        return self.plan.seed

    @property
    def failing_probe(self) -> Probe | None:
        """The first failing probe at :attr:`not_at`."""
        if self.not_at is None:
            return None
        return next((p for p in self.probes if p.rate == self.not_at and p.verdict == FAIL), None)

    @property
    def first_failures(self) -> list[Any]:
        """The failing check rows of :attr:`failing_probe` (``[]`` when none failed)."""
        p = self.failing_probe
        return list(p.failures) if p is not None else []

    @property
    def flaky(self) -> list[float]:
        """Rates whose conclusive probes disagreed."""
        return sorted(r for r, vs in _by_rate(self.probes).items() if PASS in vs and FAIL in vs)

    @property
    def inconclusive(self) -> list[Probe]:
        return [p for p in self.probes if p.verdict == INCONCLUSIVE]

    def overlaps(self, other: HeadroomResult) -> bool:
        """Do the two intervals (open ends: the range's ends) share a rate?"""
        a_lo, a_hi = self._closed()
        b_lo, b_hi = other._closed()
        return max(a_lo, b_lo) <= min(a_hi, b_hi)

    def _closed(self) -> tuple[float, float]:
        lo = self.graceful_up_to if self.graceful_up_to is not None else 0.0
        hi = self.not_at if self.not_at is not None else math.inf
        return lo, hi

    # -- words --------------------------------------------------------------------------------
    def _verdict_text(self) -> str:
        lo, hi = self.interval
        bad = self.failing_probe
        why = f" ({bad.why()})" if bad is not None and bad.why() else ""
        if lo is not None and hi is not None:
            text = f"graceful up to {_rate(lo)} sessions/s; not at {_rate(hi)}{why}"
        elif lo is not None:
            top = "the top of the range" if lo >= self.plan.hi * (1 - 1e-9) else "the highest rate probed"
            text = f"graceful up to {_rate(lo)} sessions/s ({top}; no probe failed)"
        elif hi is not None:
            text = f"not graceful even at {_rate(hi)} sessions/s, the bottom of the range{why}"
        else:
            text = f"no conclusive probe between {_rate(self.plan.lo)} and {_rate(self.plan.hi)} sessions/s"
        return text

    def summary(self) -> str:
        """One line: ``graceful up to 38 sessions/s; not at 44 (isolation/fault: ...); 7 probes, 3m12s``."""
        n = len(self.probes)
        parts = [self._verdict_text(), f"{n} probe{'s' if n != 1 else ''}, {_clock(self.wall_s)}"]
        extra = []
        if self.flaky:
            extra.append("flaky at " + ", ".join(_rate(r) for r in self.flaky))
        if self.inconclusive:
            extra.append(f"{len(self.inconclusive)} inconclusive")
        if self.stopped not in ("converged", "failed at the bottom of the range", "graceful at the top of the range"):
            extra.append(f"stopped by {self.stopped}")
        line = "; ".join(parts)
        return line + (f" ({'; '.join(extra)})" if extra else "")

    def table(self) -> str:
        """The probes, one line each, in the order they ran."""
        head = f"{'#':>2}  {'rate/s':>8}  {'scale':>7}  {'step':<7}  {'verdict':<12}  {'wall':>6}  {'legacy/sess':>11}  first failing check"
        lines = [head]
        for p in self.probes:
            lcs = p.legacy_calls_per_session
            lines.append(
                f"{p.index:>2}  {_rate(p.rate):>8}  {p.scale:>7.3g}  {p.step:<7}  {p.verdict:<12}  {p.wall_s:>5.1f}s"
                f"  {'—' if lcs is None else f'{lcs:.2f}':>11}  {p.why()}".rstrip()
            )
        return "\n".join(lines)

    def replay(self) -> str:
        return (f"replay: seed={self.seed} profile={self.profile} rates=({self.plan.lo:g}, {self.plan.hi:g}) "
                f"duration={self.plan.duration_s:g}s")

    def report(self) -> str:
        """The summary, the faults, the probe table and the replay line."""
        faults = "; ".join(f.describe() for f in self.faults) or "no faults"
        title = f"headroom {self.name}: " if self.name else "headroom: "
        return "\n".join([title + self.summary(), f"faults: {faults}", "", self.table(), "", self.replay()])

    def assert_headroom(self, at_least: float) -> None:
        """Raise :class:`HeadroomError` unless the search showed graceful degradation at
        ``at_least`` sessions/s or more (an interval that straddles it is not proof)."""
        gate = _positive_number(at_least, "at_least")
        if self.graceful_up_to is not None and self.graceful_up_to >= gate:
            return
        lo, hi = self.interval
        if hi is not None and hi <= gate:
            how = f"not graceful at {_rate(hi)} sessions/s"
        elif lo is None and hi is None:
            how = "no probe was conclusive"
        else:
            how = f"graceful only up to {_rate(lo)} sessions/s, which is not proof for {_rate(gate)}"
            if hi is None:
                how += f" (the range ended at {_rate(self.plan.hi)}: search higher)"
        lines = [f"headroom below the gate: needed graceful at >= {_rate(gate)} sessions/s; {how}", ""]
        rows = self.first_failures
        if rows:
            lines.append(f"first failing checks at {_rate(self.not_at)} sessions/s:")
            for c in rows[:6]:
                lines.append(f"  {c.name:<20} {c.phase:<9} {_short(c.measured, 100)}")
            lines.append("")
        lines.append(self.report())
        raise HeadroomError("\n".join(lines), self)

    # -- export -------------------------------------------------------------------------------
    def to_dict(self, test: str | None = None) -> dict[str, Any]:
        """The report entry (``headroom[]`` in ``peakchaos.json``; see docs/headroom.md)."""
        name = self.name if test is None else test
        faults: list[dict[str, Any]] = []
        for f in self.faults:
            d: dict[str, Any] = {}
            try:
                d = dict(f.to_dict())
            except (AttributeError, TypeError):
                d = {"kind": type(f).__name__}
            d["describe"] = f.describe() if hasattr(f, "describe") else str(f)
            faults.append(d)
        return {
            "test": name,
            "profile": self.profile,
            "seed": self.seed,
            "rate_unit": "sessions/s",
            "base_rate": round(self.plan.base_rate, 6),
            "range": [round(self.plan.lo, 4), round(self.plan.hi, 4)],
            "duration_s": self.plan.duration_s,
            "budget_s": self.plan.budget_s,
            "max_probes": self.plan.max_probes,
            "resolution": self.plan.resolution,
            "graceful_up_to": None if self.graceful_up_to is None else round(self.graceful_up_to, 4),
            "not_at": None if self.not_at is None else round(self.not_at, 4),
            "first_failures": [
                {"name": str(c.name), "phase": str(c.phase), "measured": str(c.measured)} for c in self.first_failures
            ],
            "flaky": [round(r, 4) for r in self.flaky],
            "stopped": self.stopped,
            "wall_s": round(self.wall_s, 3),
            "summary": self.summary(),
            "faults": faults,
            "probes": [p.to_dict(test=name) for p in self.probes],
        }

    def __repr__(self) -> str:
        return f"<HeadroomResult {self.name or ''} {self.profile} {self.summary()}>"


# --------------------------------------------------------------------------------------- experiments


def find_headroom(
    experiment: Experiment,
    profile: str | Profile = "double11",
    faults: Iterable[Fault] = (),
    *,
    rates: Sequence[float] | None = None,
    scales: Sequence[float] | None = None,
    duration: float | str = "6s",
    budget: float | str = "3m",
    max_probes: int = 8,
    repeat: int = 1,
    resolution: float = 0.1,
    growth: float = 2.0,
    seed: int | None = None,
    cooldown: float | str = "1s",
    before_probe: Callable[[], None] | None = None,
    on_probe: Callable[[Probe], None] | None = None,
    **run_kwargs: Any,
) -> HeadroomResult:
    """Search ``experiment``'s stack for the headroom of ``profile`` under ``faults``.

    ``rates=(lo, hi)`` in sessions/s (the profile's peak arrival rate x scale) or ``scales=(lo, hi)``;
    ``duration``: one probe's length (the faults' ``start``/``length`` are inside it); ``budget``:
    the whole search's wall time; ``run_kwargs`` go to every :meth:`Experiment.run` (``checks``,
    ``legacy_actions``, ``request_timeout``, ...). Everything is validated before the first probe,
    including one dry validation of the probe itself.
    """
    from pytest_peakchaos.checks import resolve_policy
    from pytest_peakchaos.faults import Fault, FaultSchedule
    from pytest_peakchaos.profiles import load_profile

    unknown = sorted(set(run_kwargs) - set(_RUN_KEYS))
    if unknown:
        raise ValueError(f"find_headroom: unknown keyword(s) {', '.join(unknown)}; valid keywords: {', '.join(HEADROOM_KEYS)}")
    prof = load_profile(profile)
    plan = plan_headroom(
        prof, rates=rates, scales=scales, duration=duration, budget=budget, max_probes=max_probes,
        repeat=repeat, resolution=resolution, growth=growth, seed=seed, cooldown=cooldown,
    )
    fault_list = [faults] if isinstance(faults, Fault) else list(faults)
    try:
        FaultSchedule(fault_list, plan.duration_s)
    except ValueError as exc:
        raise ValueError(f"faults: {exc} (the faults run inside every probe of {plan.duration_s:g}s: duration)") from None
    if "checks" in run_kwargs:
        resolve_policy(run_kwargs["checks"], experiment.policy)
    if fault_list and experiment.link is None:
        raise ValueError("faults: the stack declares no legacy link to put them on")
    if experiment.link is not None:
        for f in fault_list:
            experiment.link.check(f)

    def prober(scale: float, probe_seed: int) -> ProbeResult:
        return experiment.run(
            profile=prof, duration=plan.duration_s, faults=fault_list, seed=probe_seed, scale=scale, **run_kwargs
        )

    return search(
        plan, prober, name=experiment.name, profile=prof.name, faults=fault_list,
        before_probe=before_probe, on_probe=on_probe,
    )


#: keywords :func:`find_headroom` passes on to every ``Experiment.run``
_RUN_KEYS = ("checks", "max_requests", "concurrency_cap", "request_timeout", "settle", "legacy_actions", "workers")


def headroom_kwargs(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """Validate ``@pytest.mark.peakchaos_headroom(...)`` arguments: keywords from :data:`HEADROOM_KEYS`."""
    from .validate import check_keywords

    check_keywords("peakchaos_headroom", args, kwargs, HEADROOM_KEYS)
    return dict(kwargs)
