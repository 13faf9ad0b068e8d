"""The headroom search on a fake prober: every decision checked exactly, a fake clock for budgets."""

from __future__ import annotations

import dataclasses
import functools
import json
import math
from dataclasses import dataclass, field
from typing import Any, cast

import pytest

from pytest_peakchaos import latency
from pytest_peakchaos.checks import CheckResult
from pytest_peakchaos.headroom import (
    FAIL,
    INCONCLUSIVE,
    PASS,
    HeadroomError,
    HeadroomPlan,
    HeadroomResult,
    Probe,
    classify,
    find_headroom,
    headroom_kwargs,
    plan_headroom,
    probe_seed,
    search,
)
from pytest_peakchaos.load import Constant
from pytest_peakchaos.profiles import load_profile

# ------------------------------------------------------------------------------------ fakes


@dataclass
class FakeResult:
    passed: bool
    checks: list[CheckResult]
    seed: int
    scale: float
    legacy_calls_per_session: float = 2.5

    def to_dict(self, test: str | None = None) -> dict[str, Any]:
        return {"test": test, "seed": self.seed, "scale": self.scale, "passed": self.passed}


def ok_row(name: str = "isolation", phase: str = "fault") -> CheckResult:
    return CheckResult(name, phase, True, "success >= 99%", "browse success 100.0%")


def bad_row(name: str = "isolation", phase: str = "fault", measured: str = "browse success 91 %") -> CheckResult:
    return CheckResult(name, phase, False, "success >= 99%", measured)


@dataclass
class FakeClock:
    now: float = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.now += s


@dataclass
class FakeShop:
    """Graceful iff rate <= ``threshold`` (rate = scale x base); ``flips`` turn given
    (rate rounded to 3 digits, nth probe there) verdicts around; each probe takes ``probe_s``."""

    threshold: float
    clock: FakeClock
    base: float = 1.0
    probe_s: float = 6.0
    flips: set[tuple[float, int]] = field(default_factory=set)
    inconclusive: set[tuple[float, int]] = field(default_factory=set)
    raises: set[tuple[float, int]] = field(default_factory=set)
    calls: list[tuple[float, int]] = field(default_factory=list)

    def __call__(self, scale: float, seed: int) -> FakeResult:
        rate = round(scale * self.base, 3)
        nth = sum(1 for r, _ in self.calls if r == rate)
        self.calls.append((rate, seed))
        self.clock.now += self.probe_s
        if (rate, nth) in self.raises:
            raise OSError("connection refused by the stack")
        if (rate, nth) in self.inconclusive:
            row = CheckResult.not_measured("recovery", "recovery", "back within 5s", "no recovery phase")
            return FakeResult(False, [ok_row(), row], seed, scale)
        good = scale * self.base <= self.threshold
        if (rate, nth) in self.flips:
            good = not good
        rows = [ok_row(), ok_row("fail_fast", "fault")] if good else [bad_row(), bad_row("fail_fast", "fault", "checkout p99 4936 ms")]
        return FakeResult(good, rows, seed, scale, legacy_calls_per_session=2.0 + scale)


def plan(**kw: Any) -> HeadroomPlan:
    base = dict(lo=2.0, hi=64.0, base_rate=1.0, duration_s=6.0, budget_s=10_000.0, max_probes=20,
                repeat=1, resolution=0.1, growth=2.0, seed=7, cooldown_s=0.0)
    base.update(kw)
    return HeadroomPlan(**cast(Any, base))


def run(shop: FakeShop, p: HeadroomPlan, **kw: Any) -> HeadroomResult:
    return search(p, shop, clock=shop.clock, sleep=shop.clock.sleep, profile="double11", **kw)


def rates(result: HeadroomResult) -> list[float]:
    return [round(p.rate, 2) for p in result.probes]


# ------------------------------------------------------------------------------------ the search


def test_bracket_then_bisect_then_repeat_the_boundary_exactly() -> None:
    shop = FakeShop(threshold=11.0, clock=FakeClock())
    result = run(shop, plan())
    # 2, 4, 8, 16 (bracket: x2 until a failure), geometric midpoints, then the boundary again
    mid1 = math.sqrt(8 * 16)
    mid2 = math.sqrt(8 * mid1)
    mid3 = math.sqrt(mid2 * mid1)
    assert rates(result) == [2, 4, 8, 16, round(mid1, 2), round(mid2, 2), round(mid3, 2), round(mid3, 2)]
    assert [p.step for p in result.probes] == ["bracket"] * 4 + ["bisect"] * 3 + ["repeat"]
    assert [p.verdict for p in result.probes] == [PASS, PASS, PASS, FAIL, FAIL, PASS, PASS, PASS]
    assert result.graceful_up_to == pytest.approx(mid3)
    assert result.not_at == pytest.approx(mid1)
    assert result.graceful_up_to <= 11.0 < result.not_at
    assert result.not_at / result.graceful_up_to <= 1.1
    assert result.stopped == "converged"
    # the repeat used a fresh seed; each probe kept its full result
    assert result.probes[-1].seed != result.probes[-2].seed
    assert all(p.result is not None and p.result.seed == p.seed for p in result.probes)
    assert result.first_failures[0].name == "isolation"
    assert result.failing_probe is result.probes[4]


def test_the_interval_holds_the_threshold_for_many_thresholds() -> None:
    for threshold in (2.0, 2.5, 3.3, 7.9, 20.0, 41.0, 63.9):
        result = run(FakeShop(threshold=threshold, clock=FakeClock()), plan())
        lo, hi = result.interval
        assert lo is not None and hi is not None, (threshold, result.summary())
        assert lo <= threshold < hi
        assert hi / lo <= 1.1 + 1e-9


def test_graceful_at_the_top_of_the_range_is_an_open_interval() -> None:
    shop = FakeShop(threshold=1000.0, clock=FakeClock())
    result = run(shop, plan(lo=5.0, hi=30.0))
    assert rates(result) == [5, 10, 20, 30, 30]  # capped at the top, which is repeated
    assert result.interval == (30.0, None)
    assert result.stopped == "graceful at the top of the range"
    assert result.summary().startswith("graceful up to 30 sessions/s (the top of the range; no probe failed)")
    assert result.first_failures == []


def test_failing_at_the_bottom_of_the_range_stops_at_once() -> None:
    shop = FakeShop(threshold=1.0, clock=FakeClock())
    result = run(shop, plan(lo=2.0, hi=30.0))
    assert rates(result) == [2]
    assert result.interval == (None, 2.0)
    assert result.summary() == (
        "not graceful even at 2 sessions/s, the bottom of the range (isolation/fault: browse success 91 %); 1 probe, 6s"
    )


def test_a_flaky_boundary_counts_as_not_graceful_and_the_search_goes_on_below_it() -> None:
    # the repeat at the boundary fails: that rate is flaky, the bound moves down and bisection resumes
    shop = FakeShop(threshold=11.0, clock=FakeClock())
    first = run(shop, plan())
    boundary = round(first.graceful_up_to or 0, 3)
    shop = FakeShop(threshold=11.0, clock=FakeClock(), flips={(boundary, 1)})
    result = run(shop, plan())
    assert result.flaky == [pytest.approx(boundary, abs=1e-3)]
    assert result.not_at == pytest.approx(boundary, abs=1e-3)
    assert result.graceful_up_to is not None and result.graceful_up_to < boundary
    assert result.not_at / result.graceful_up_to <= 1.1 + 1e-9
    assert "flaky at" in result.summary()
    # the new lower bound was itself confirmed by a repeat
    lower = [p for p in result.probes if p.rate == result.graceful_up_to]
    assert len(lower) == 2 and all(p.passed for p in lower)


def test_repeat_zero_means_no_confirmation_and_two_means_two() -> None:
    r0 = run(FakeShop(threshold=11.0, clock=FakeClock()), plan(repeat=0))
    r2 = run(FakeShop(threshold=11.0, clock=FakeClock()), plan(repeat=2))
    assert len(r2.probes) == len(r0.probes) + 2
    assert [p.step for p in r2.probes[-2:]] == ["repeat", "repeat"]
    assert len({p.seed for p in r2.probes if p.rate == r2.graceful_up_to}) == 3


def test_not_measured_is_inconclusive_never_a_pass_and_is_retried_with_a_new_seed() -> None:
    shop = FakeShop(threshold=11.0, clock=FakeClock(), inconclusive={(4.0, 0)})
    result = run(shop, plan())
    p4 = [p for p in result.probes if p.rate == 4.0]
    assert [p.verdict for p in p4] == [INCONCLUSIVE, PASS]
    assert p4[1].step == "retry" and p4[0].seed != p4[1].seed
    assert p4[0].why().startswith("recovery/recovery: not measured")
    assert "1 inconclusive" in result.summary()
    assert result.graceful_up_to is not None and result.graceful_up_to <= 11.0 < (result.not_at or 0)


def test_two_inconclusive_probes_in_a_row_end_the_search() -> None:
    shop = FakeShop(threshold=11.0, clock=FakeClock(), raises={(2.0, 0), (2.0, 1)})
    result = run(shop, plan())
    assert [p.verdict for p in result.probes] == [INCONCLUSIVE, INCONCLUSIVE]
    assert result.probes[0].error == "OSError: connection refused by the stack"
    assert result.interval == (None, None)
    assert result.stopped == "2 inconclusive probes in a row"
    assert result.summary().startswith("no conclusive probe between 2 and 64 sessions/s")


def test_a_value_error_of_a_probe_propagates() -> None:
    def prober(scale: float, seed: int) -> FakeResult:
        raise ValueError("checks: unknown key 'isolaton'")

    with pytest.raises(ValueError, match="isolaton"):
        search(plan(), prober, clock=FakeClock())


def test_the_budget_bounds_the_search_and_the_first_probe_always_runs() -> None:
    clock = FakeClock()
    shop = FakeShop(threshold=11.0, clock=clock, probe_s=10.0)
    result = run(shop, plan(budget_s=35.0, duration_s=10.0))
    # 3 probes of 10 s fit; a 4th would end at 40 s > 35 s
    assert len(result.probes) == 3
    assert result.stopped == "budget (35s)"
    assert result.wall_s == 30.0
    assert "stopped by budget (35s)" in result.summary()
    # the slowest probe so far is the estimate: a probe that took 20 s stops the next at 25 of 35
    clock = FakeClock()
    result = run(FakeShop(threshold=11.0, clock=clock, probe_s=20.0), plan(budget_s=35.0, duration_s=10.0))
    assert len(result.probes) == 1


def test_cooldown_counts_against_the_budget_and_is_slept_between_probes() -> None:
    clock = FakeClock()
    result = run(FakeShop(threshold=11.0, clock=clock, probe_s=6.0), plan(cooldown_s=2.0, budget_s=30.0))
    # 6, +2+6=14, +2+6=22, +2+6=30: 4 probes; a 5th would end at 38
    assert len(result.probes) == 4
    assert clock.now == 30.0


def test_max_probes_bounds_the_search() -> None:
    result = run(FakeShop(threshold=11.0, clock=FakeClock()), plan(max_probes=5))
    assert len(result.probes) == 5
    assert result.stopped == "max_probes (5)"
    lo, hi = result.interval
    assert lo is not None and hi is not None and lo <= 11 < hi  # a wider, still honest interval


def test_same_seed_same_probes_other_seed_other_requests() -> None:
    a = run(FakeShop(threshold=11.0, clock=FakeClock()), plan(seed=42))
    b = run(FakeShop(threshold=11.0, clock=FakeClock()), plan(seed=42))
    c = run(FakeShop(threshold=11.0, clock=FakeClock()), plan(seed=43))
    assert [(p.rate, p.seed) for p in a.probes] == [(p.rate, p.seed) for p in b.probes]
    assert [p.seed for p in a.probes] != [p.seed for p in c.probes]
    assert a.overlaps(b) and a.overlaps(c)
    assert probe_seed(42, 8.0, 0) == a.probes[2].seed


def test_overlaps_compares_intervals_with_open_ends() -> None:
    def interval(lo: float | None, hi: float | None) -> HeadroomResult:
        return HeadroomResult("", "p", plan(), [], lo, hi, "converged", 0.0)

    assert interval(10, 12).overlaps(interval(11, 14))
    assert interval(10, 12).overlaps(interval(12, 14))
    assert not interval(10, 12).overlaps(interval(13, 14))
    assert interval(None, 3).overlaps(interval(None, 2))
    assert interval(30, None).overlaps(interval(25, 31))
    assert not interval(30, None).overlaps(interval(2, 4))


def test_on_probe_sees_every_probe_and_before_probe_runs_before_each() -> None:
    seen: list[Probe] = []
    before: list[float] = []
    clock = FakeClock()
    shop = FakeShop(threshold=5.0, clock=clock)
    result = search(plan(hi=16.0), shop, clock=clock, sleep=clock.sleep, on_probe=seen.append,
                    before_probe=lambda: before.append(clock.now))
    assert seen == result.probes
    assert len(before) == len(result.probes)


# ------------------------------------------------------------------------------------ words


def test_summary_reads_like_the_issue() -> None:
    p = plan(lo=2.0, hi=64.0)
    probes = [Probe(i + 1, r, r, 1, "bisect", v, 1.0, None, rows) for i, (r, v, rows) in enumerate([
        (38.0, PASS, []), (44.0, FAIL, [bad_row()]),
    ])]
    probes += [Probe(3 + i, 38.0, 38.0, 2, "repeat", PASS, 1.0) for i in range(5)]
    result = HeadroomResult("t", "double11", p, probes, 38.0, 44.0, "converged", 192.0)
    assert result.summary() == "graceful up to 38 sessions/s; not at 44 (isolation/fault: browse success 91 %); 7 probes, 3m12s"
    text = result.report()
    assert "replay: seed=7 profile=double11 rates=(2, 64) duration=6s" in text
    assert " 44 " in text.splitlines()[5] and "isolation/fault: browse success 91 %" in text


def test_assert_headroom_passes_at_or_below_the_graceful_rate() -> None:
    result = run(FakeShop(threshold=11.0, clock=FakeClock()), plan())
    lo = result.graceful_up_to
    assert lo is not None
    result.assert_headroom(at_least=lo)
    result.assert_headroom(at_least=3)


def test_assert_headroom_fails_with_the_interval_and_the_first_failing_checks() -> None:
    result = run(FakeShop(threshold=11.0, clock=FakeClock()), plan())
    with pytest.raises(HeadroomError) as info:
        result.assert_headroom(at_least=15)  # 3 x a forecast of 5/s
    text = str(info.value)
    assert text.startswith("headroom below the gate: needed graceful at >= 15 sessions/s; not graceful at 11.3 sessions/s")
    assert "first failing checks at 11.3 sessions/s:" in text
    assert "isolation" in text and "browse success 91 %" in text and "checkout p99 4936 ms" in text
    assert result.summary() in text and "replay: seed=7" in text
    assert info.value.result is result
    # a gate inside the interval is not proven either
    lo, hi = result.interval
    assert lo is not None and hi is not None
    with pytest.raises(HeadroomError, match="which is not proof"):
        result.assert_headroom(at_least=(lo + hi) / 2)
    top = run(FakeShop(threshold=1000.0, clock=FakeClock()), plan(hi=20.0))
    with pytest.raises(HeadroomError, match="search higher"):
        top.assert_headroom(at_least=25)
    with pytest.raises(ValueError, match="at_least"):
        top.assert_headroom(at_least=0)


def test_to_dict_keeps_every_probe_and_its_run() -> None:
    result = run(FakeShop(threshold=11.0, clock=FakeClock()), plan(), name="t::x")
    d = result.to_dict()
    assert d["test"] == "t::x" and d["rate_unit"] == "sessions/s"
    assert d["graceful_up_to"] == round(result.graceful_up_to or 0, 4)
    assert d["not_at"] == round(result.not_at or 0, 4)
    assert len(d["probes"]) == len(result.probes)
    assert d["probes"][3]["verdict"] == FAIL and d["probes"][3]["first_failure"]["name"] == "isolation"
    assert d["probes"][0]["run"]["seed"] == result.probes[0].seed
    assert d["first_failures"][0] == {"name": "isolation", "phase": "fault", "measured": "browse success 91 %"}
    assert d["summary"] == result.summary()


# ------------------------------------------------------------------------------------ classify


def test_classify_is_strict() -> None:
    assert classify(FakeResult(True, [ok_row()], 1, 1.0)) == (PASS, [])
    verdict, rows = classify(FakeResult(False, [ok_row(), bad_row()], 1, 1.0))
    assert verdict == FAIL and [r.name for r in rows] == ["isolation"]
    harness = CheckResult("faults_applied", "fault", False, "every fault applied and reverted", "1 schedule error(s)")
    assert classify(FakeResult(False, [harness, ok_row()], 1, 1.0))[0] == INCONCLUSIVE
    # a real failure next to a harness error is still a failure
    assert classify(FakeResult(False, [harness, bad_row()], 1, 1.0))[0] == FAIL

    @dataclass
    class ThreeState:
        name: str
        phase: str
        passed: bool
        measured: str
        state: str

    nm = ThreeState("baseline", "baseline", False, "too few requests", "not_measured")
    assert classify(FakeResult(False, [nm], 1, 1.0))[0] == INCONCLUSIVE
    # a strict not-measured row (passed=False, skipped=True) is inconclusive, a real failure is not,
    # and a class with a ``not_measured`` constructor does not make every row unmeasured
    strict_nm = CheckResult("recovery", "recovery", False, "back within 5s", "too short", skipped=True)
    assert classify(FakeResult(False, [strict_nm, ok_row()], 1, 1.0))[0] == INCONCLUSIVE

    class WithFactory(CheckResult):
        @classmethod
        def not_measured(cls) -> None:  # the "verdict" branch's CheckResult has such a factory
            return None

    real = WithFactory("isolation", "fault", False, "success >= 99%", "browse success 91 %")
    assert classify(FakeResult(False, [real], 1, 1.0))[0] == FAIL


# ------------------------------------------------------------------------------------ bad input


CONSTANT = load_profile("normal").with_shape(Constant(duration=60, rate_per_s=2.0))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rates": (10, 10)}, r"rates: the range is empty \(10 to 10\)"),
        ({"rates": (20, 10)}, r"rates: the range is inverted \(20 > 10\)"),
        ({"rates": (0, 10)}, r"rates\[0\] \(lowest\): expected a finite number > 0, got 0"),
        ({"rates": (1, math.inf)}, r"rates\[1\] \(highest\)"),
        ({"rates": 10}, r"rates: expected \(lowest, highest\) in sessions/s"),
        ({"scales": (2, 1)}, r"scales: the range is inverted"),
        ({}, r"rates: give the range .* not neither"),
        ({"rates": (1, 2), "scales": (1, 2)}, r"not both"),
        ({"rates": (1, 2), "budget": "5s", "duration": "6s"}, r"budget: '5s' is too small for one probe of 6s \(duration\)"),
        ({"rates": (1, 2), "duration": 0}, r"duration: one probe's length"),
        ({"rates": (1, 2), "max_probes": 0}, r"max_probes: expected a whole number >= 1, got 0"),
        ({"rates": (1, 2), "growth": 1}, r"growth: .* must be > 1"),
        ({"rates": (1, 2), "resolution": -0.1}, r"resolution: expected a finite number > 0"),
        ({"rates": (1, 2), "seed": "x"}, r"seed: expected a whole number"),
    ],
)
def test_bad_plans_name_the_argument(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        plan_headroom(CONSTANT, **kwargs)


def test_a_profile_without_arrivals_is_refused() -> None:
    silent = load_profile("normal").with_shape(Constant(duration=60, rate_per_s=0.0))
    with pytest.raises(ValueError, match=r"profile: 'normal' has an arrival shape with no arrivals .*with_shape"):
        plan_headroom(silent, rates=(1, 2))

    @dataclass
    class NoShape:
        name: str = "mine"

    with pytest.raises(ValueError, match=r"profile: 'mine' has no arrival shape"):
        plan_headroom(NoShape(), rates=(1, 2))


def test_scales_are_multiples_of_the_profiles_peak() -> None:
    p = plan_headroom(CONSTANT, scales=(0.5, 4), seed=1)
    assert (p.lo, p.hi, p.base_rate) == (1.0, 8.0, 2.0)
    assert p.scale_of(3.0) == 1.5
    assert plan_headroom(load_profile("double11"), scales=(1, 2), seed=1).base_rate == load_profile("double11").shape.peak()


class StubExperiment:
    """Stands in for an Experiment: find_headroom must refuse bad input before ``run``."""

    name = "stub"

    def __init__(self, link: Any = None) -> None:
        from pytest_peakchaos.checks import Policy

        self.policy = Policy()
        self.link = link
        self.calls: list[dict[str, Any]] = []

    def run(self, **kwargs: Any) -> FakeResult:
        self.calls.append(kwargs)
        good = kwargs["scale"] * 2.0 <= 5.0
        return FakeResult(good, [ok_row() if good else bad_row()], kwargs["seed"], kwargs["scale"])


class StubLink:
    def check(self, fault: Any) -> None:
        pass


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"faults": [latency(ms=100, start="5s", length="5s")]}, r"faults: .*inside every probe of 6s"),
        ({"checks": {"isolaton_min_success": 0.9}}, r"isolaton"),
        ({"rates": (3, 3)}, r"rates: the range is empty"),
        ({"budget": "1s"}, r"budget: '1s' is too small"),
        ({"wrkers": 2}, r"find_headroom: unknown keyword\(s\) wrkers"),
        ({"profile": "no-such-profile"}, r"no-such-profile"),
    ],
)
def test_find_headroom_refuses_bad_input_before_any_probe(kwargs: dict[str, Any], message: str) -> None:
    exp = StubExperiment(link=StubLink())
    args: dict[str, Any] = {"profile": CONSTANT, "rates": (1, 10), "duration": "6s", "budget": "2m", "seed": 3}
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        find_headroom(cast(Any, exp), **args)
    assert exp.calls == []


def test_find_headroom_without_a_link_refuses_faults() -> None:
    with pytest.raises(ValueError, match="no legacy link"):
        find_headroom(cast(Any, StubExperiment()), CONSTANT, [latency(ms=100)], rates=(1, 2), duration="6s")


def test_find_headroom_drives_experiment_run_with_scales_and_seeds() -> None:
    exp = StubExperiment(link=StubLink())
    fault = latency(ms=100, start="1s", length="2s")
    result = find_headroom(cast(Any, exp), CONSTANT, [fault], rates=(1, 16), duration="4s", budget="10m",
                           seed=5, cooldown=0, legacy_actions=["checkout"])
    # graceful iff rate <= 5 sessions/s; the profile's peak is 2/s, so scale = rate / 2
    assert result.graceful_up_to is not None and result.not_at is not None
    assert result.graceful_up_to <= 5.0 < result.not_at
    assert [c["scale"] for c in exp.calls] == [p.scale for p in result.probes]
    assert all(c["duration"] == 4.0 and c["faults"] == [fault] and c["legacy_actions"] == ["checkout"] for c in exp.calls)
    assert [c["seed"] for c in exp.calls] == [p.seed for p in result.probes]
    assert result.profile == "normal" and result.faults == (fault,)
    assert result.probes[0].scale == 0.5 and result.probes[0].rate == 1.0


def test_marker_keywords_are_checked() -> None:
    assert headroom_kwargs((), {"rates": (1, 2), "at_least": 1}) == {"rates": (1, 2), "at_least": 1}
    with pytest.raises(ValueError, match="keyword arguments only"):
        headroom_kwargs((1,), {})
    with pytest.raises(ValueError, match=r"unknown keyword\(s\) rate; valid keywords: profile, faults, rates"):
        headroom_kwargs((), {"rate": (1, 2)})




# ------------------------------------------------------------------------------------ reports


@dataclass
class RunResult(FakeResult):
    """A fake probe result whose to_dict is a realistic run dict (tests/unit/test_report.py)."""

    def to_dict(self, test: str | None = None) -> dict[str, Any]:
        run: dict[str, Any] = json.loads(_run_template(not self.passed))
        run.update(test=test or "probe", seed=self.seed, scale=self.scale, passed=self.passed)
        return run


@functools.lru_cache(maxsize=2)
def _run_template(naive: bool) -> str:
    from tests.unit.test_report import make_run

    return json.dumps(make_run(naive=naive, duration=12, fault=(3.0, 8.0)))


def realistic(threshold: float = 11.0, name: str = "tests/acceptance/test_headroom.py::test_x") -> HeadroomResult:
    clock = FakeClock()
    shop = FakeShop(threshold=threshold, clock=clock)

    def prober(scale: float, seed: int) -> RunResult:
        r = shop(scale, seed)
        return RunResult(r.passed, r.checks, r.seed, r.scale, r.legacy_calls_per_session)

    return search(plan(), prober, name=name, profile="double11", faults=[latency(ms=800, start="3s", length="2s")],
                  clock=clock, sleep=clock.sleep)


def test_the_report_entry_follows_the_schema_and_round_trips(tmp_path: Any) -> None:
    from pytest_peakchaos.report import load_json, new_document, validate, write_reports

    doc = new_document([])
    doc["headroom"] = [realistic().to_dict(), realistic(30.0, "t2").to_dict()]
    assert validate(doc) == []
    paths = write_reports(doc, tmp_path)
    back = load_json(paths["json"])
    assert back["headroom"][0]["probes"][0]["run"]["seed"] == doc["headroom"][0]["probes"][0]["seed"]
    assert back["headroom"][1]["graceful_up_to"] == doc["headroom"][1]["graceful_up_to"]
    # the entry is validated like the runs: a wrong type is named with its place
    bad = json.loads(json.dumps(doc))
    bad["headroom"][0]["probes"][2]["rate"] = "fast"
    assert validate(bad) == ["headroom[0].probes[2].rate: expected number, got string 'fast'"]
    del bad["headroom"][1]["not_at"]
    assert "headroom[1]: missing required key 'not_at'" in validate(bad)


def test_the_html_section_plots_verdict_against_rate() -> None:
    import re

    from pytest_peakchaos.report import new_document, render_html

    doc = new_document([])
    a, b = realistic(), realistic(30.0, "tests/acceptance/test_headroom.py::test_x#2")
    doc["headroom"] = [a.to_dict(), b.to_dict()]
    page = render_html(doc)
    assert "No experiments ran" not in page
    assert page.count('class="card headroom"') == 2
    assert page.count('aria-label="headroom: verdict against rate') == 2
    # the overview compares the two graceful rates
    ratio = f"{(b.graceful_up_to or 0) / (a.graceful_up_to or 1):.2f}× of #1"
    assert ratio in page
    # every probe is a row; a failing one names its first failing check
    assert page.count("✘ not graceful") == sum(1 for p in a.probes + b.probes if p.verdict == FAIL)
    assert "isolation/fault: browse success 91 %" in page
    assert a.summary() in page
    # the plot labels the bounds and the failing probes
    svg = re.search(r'<svg[^>]*verdict against rate, tests/acceptance.*?</svg>', page, flags=re.S)
    assert svg is not None
    assert "graceful up to" in svg.group(0) and "not at" in svg.group(0) and "isolation/fault" in svg.group(0)
    assert "session arrival rate (sessions/s)" in svg.group(0)


def test_the_html_section_without_matplotlib_keeps_the_tables(monkeypatch: pytest.MonkeyPatch) -> None:
    from pytest_peakchaos.report import html as html_mod
    from pytest_peakchaos.report import new_document, render_html

    monkeypatch.setattr(html_mod, "matplotlib_available", lambda: False)
    doc = new_document([])
    doc["headroom"] = [realistic().to_dict()]
    page = render_html(doc)
    assert "<svg" not in page and "Plots need matplotlib" in page and "✘ not graceful" in page


# ------------------------------------------------------------------------------------ the marker

FAKE_CHAOS = '''
import json
import pytest
from dataclasses import dataclass
from pytest_peakchaos.checks import CheckResult
from pytest_peakchaos.headroom import plan_headroom, search
from pytest_peakchaos.load import Constant
from pytest_peakchaos.profiles import load_profile

@dataclass
class R:
    passed: bool
    checks: list
    seed: int
    legacy_calls_per_session: float = 3.0
    def to_dict(self, test=None):
        from tests.unit.test_headroom import _run_template

        return dict(json.loads(_run_template(not self.passed)), test=test or "probe", seed=self.seed)

class FakeChaos:
    """Stands in for the plugin's ``peakchaos`` fixture: graceful iff rate <= 10 sessions/s."""
    def headroom(self, profile="double11", faults=(), **kw):
        prof = load_profile(profile).with_shape(Constant(duration=60, rate_per_s=1.0))
        plan = plan_headroom(prof, rates=kw["rates"], duration="1s", budget="1h", seed=1, cooldown=0)
        def prober(scale, seed):
            ok = scale <= 10
            return R(ok, [CheckResult("isolation", "fault", ok, "x", "browse success 91 %")], seed)
        return search(plan, prober, name="fake", profile=prof.name)

@pytest.fixture
def peakchaos():
    return FakeChaos()
'''


def test_the_marker_runs_the_search_and_gates_on_at_least(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(FAKE_CHAOS)
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.peakchaos_headroom(rates=(2, 40), at_least=5)
        def test_holds_the_gate():
            pass

        @pytest.mark.peakchaos_headroom(rates=(2, 40), at_least=20)
        def test_below_the_gate():
            pass

        @pytest.mark.peakchaos_headroom(rates=(2, 40))
        def test_reads_the_result(peakchaos_headroom):
            assert peakchaos_headroom.graceful_up_to <= 10 < peakchaos_headroom.not_at

        @pytest.mark.peakchaos_headroom(rate=(2, 40))
        def test_bad_keyword():
            pass

        def test_fixture_without_marker(peakchaos_headroom):
            pass
        """
    )
    result = pytester.runpytest("-p", "peakchaos", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, failed=1, errors=2)
    for line in (
        "*headroom below the gate: needed graceful at >= 20 sessions/s; not graceful at*",
        "*unknown keyword(s) rate; valid keywords: profile, faults, rates*",
        "*peakchaos_headroom needs a @pytest.mark.peakchaos_headroom*",
    ):
        result.stdout.fnmatch_lines([line])


def test_the_headroom_marker_is_registered(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("-p", "peakchaos", "--markers")
    result.stdout.fnmatch_lines(["@pytest.mark.peakchaos_headroom(profile=*"])


FAKE_STACK = '''
import pytest
from types import SimpleNamespace
from pytest_peakchaos.fixture import Chaos
from pytest_peakchaos.plugin import SESSION_KEY

class FakeStack:
    spec = SimpleNamespace(links=[SimpleNamespace(name="legacy", client="cloud", service="legacy", port=9000)])
    def url(self, service, port=None):
        return "http://127.0.0.1:9"

@pytest.fixture
def peakchaos(request, monkeypatch):
    """The real Chaos recorder on a fake stack, with find_headroom's probes faked."""
    import pytest_peakchaos.headroom as h

    def fake_find(experiment, profile, faults=(), **kw):
        prof = load_profile(profile).with_shape(Constant(duration=60, rate_per_s=1.0))
        plan = plan_headroom(prof, rates=kw["rates"], duration="1s", budget="1h", seed=kw["seed"], cooldown=0)
        def prober(scale, seed):
            ok = scale <= kw.get("threshold", 10)
            return R(ok, [CheckResult("isolation", "fault", ok, "x", "browse success 91 %")], seed)
        return search(plan, prober, name=experiment.name, profile=prof.name)

    monkeypatch.setattr(h, "find_headroom", fake_find)
    return Chaos(FakeStack(), request.config.stash[SESSION_KEY], test=request.node.nodeid,
                 record=lambda k, v: request.node.user_properties.append((k, v)))
'''


def test_the_fixture_records_searches_for_the_report_and_the_summary(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(FAKE_CHAOS.replace("@pytest.fixture\ndef peakchaos():\n    return FakeChaos()\n", "") + FAKE_STACK)
    pytester.makepyfile(
        """
        def test_two_searches(peakchaos):
            a = peakchaos.headroom("normal", rates=(2, 40), threshold=20)
            b = peakchaos.headroom("double11", rates=(2, 40), threshold=5)
            assert a.name.endswith("test_two_searches") and b.name.endswith("test_two_searches#2")
        """
    )
    reports = pytester.path / "reports"
    result = pytester.runpytest("-p", "peakchaos", "-p", "no:cacheprovider", f"--peakchaos-report={reports}",
                                f"--junitxml={pytester.path / 'junit.xml'}", "-o", "junit_family=legacy", "--peakchaos-seed=5")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*peakchaos headroom*", "*test_two_searches: graceful up to * sessions/s; not at *",
                                 "*test_two_searches#2: graceful up to *"])
    doc = json.loads((reports / "peakchaos.json").read_text())
    assert doc["runs"] == [] and [e["profile"] for e in doc["headroom"]] == ["normal", "double11"]
    assert doc["headroom"][1]["seed"] == 5
    page = (reports / "peakchaos.html").read_text()
    assert "× of #1" in page  # the second search of the test compared with its first
    junit = (pytester.path / "junit.xml").read_text()
    assert 'name="peakchaos_headroom_graceful_up_to"' in junit and 'name="peakchaos_headroom2_not_at"' in junit


@dataclass
class StarvedShop(FakeShop):
    """Below ``enough`` sessions/s a probe has too few requests: its rows are not measured (too_few)."""

    enough: float = 8.0

    def __call__(self, scale: float, seed: int) -> FakeResult:
        rate = round(scale * self.base, 3)
        if rate < self.enough:
            self.calls.append((rate, seed))
            self.clock.now += self.probe_s
            row = CheckResult.skip("fail_fast", "fault", "p99 <= 2000 ms", "fewer than 20 requests of isolated actions", too_few=True)
            row = dataclasses.replace(row, passed=False)  # as evaluate() settles it under a strict policy
            return FakeResult(False, [ok_row(), row], seed, scale)
        return super().__call__(scale, seed)


def test_a_probe_starved_of_requests_steps_up_instead_of_retrying() -> None:
    shop = StarvedShop(threshold=11.0, clock=FakeClock(), enough=8.0)
    result = run(shop, plan())
    assert rates(result)[:3] == [2.0, 4.0, 8.0]  # 2 and 4 lacked data: the search stepped up, it did not retry
    assert [p.step for p in result.probes[:3]] == ["bracket", "step up", "step up"]
    assert [p.verdict for p in result.probes[:2]] == [INCONCLUSIVE, INCONCLUSIVE]
    assert result.stopped == "converged"
    assert result.graceful_up_to is not None and 8.0 <= result.graceful_up_to <= 11.0 < (result.not_at or 0)


def test_starved_at_every_rate_ends_at_the_top_without_a_verdict() -> None:
    shop = StarvedShop(threshold=11.0, clock=FakeClock(), enough=1e9)
    result = run(shop, plan())
    assert rates(result) == [2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 64.0]  # up to the top, retried there once
    assert result.stopped == "2 inconclusive probes in a row"
    assert result.interval == (None, None)


def test_a_not_measured_row_for_another_reason_is_retried_at_the_same_rate() -> None:
    # FakeShop's inconclusive rows are "no recovery phase": not a lack of requests
    shop = FakeShop(threshold=11.0, clock=FakeClock(), inconclusive={(2.0, 0)})
    result = run(shop, plan())
    assert rates(result)[:2] == [2.0, 2.0] and result.probes[1].step == "retry"
