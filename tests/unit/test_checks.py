"""The graceful-degradation checks on crafted load data: each passes and fails; policy overrides
and errors; phases; the failure table.

The load package records through its engine only (no public recording API), so ``build`` makes
``LoadResult`` from its public dataclasses the way the engine fills them: per-action totals
(HdrHistograms from fine log buckets), per status class, and per-second sketches.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Union

import pytest

import pytest_peakchaos.load  # noqa: F401  (load before profiles: import order)
from pytest_peakchaos.checks import (
    CHECK_NAMES,
    Amplification,
    CheckResult,
    Evidence,
    Phase,
    Policy,
    Reconciliation,
    amplification,
    baseline,
    derive_phases,
    evaluate,
    fail_fast,
    format_table,
    honest_degradation,
    isolation,
    ledger,
    recovery,
    resolve_policy,
)
from pytest_peakchaos.load.result import (
    ActionStats,
    AckOrder,
    LoadResult,
    LogSketch,
    SecondStats,
    SessionCounts,
    fine_index,
    hdr_from_fine,
    sketch_index,
)

# ------------------------------------------------------------------------------------ builders

Outcome = Union[int, str]
#: (intended send time s, latency ms, outcome: an HTTP status or an error kind such as "timeout")
Sample = tuple[float, float, Outcome]


def steady(t0: float, t1: float, rate: float, latency_ms: float, outcome: Outcome = 200) -> list[Sample]:
    """``rate`` requests per second from ``t0`` to ``t1``, evenly spaced, all alike."""
    n = int(round((t1 - t0) * rate))
    return [(t0 + (i + 0.5) / rate, latency_ms, outcome) for i in range(n)]


def mix(*parts: Iterable[Sample]) -> list[Sample]:
    out: list[Sample] = []
    for p in parts:
        out.extend(p)
    return sorted(out, key=lambda s: (s[0], s[1]))


@dataclass
class _Sec:
    count: int = 0
    ok: int = 0
    errors: int = 0
    queued: int = 0
    max_us: float = 0.0
    buckets: dict[int, int] = field(default_factory=dict)
    kinds: dict[str, int] = field(default_factory=dict)


def build(
    duration_s: float,
    samples: dict[str, Sequence[Sample]],
    *,
    legacy: Iterable[str] = ("add_to_cart", "checkout"),
    orders: Iterable[str] = (),
    sessions: int = 100,
    seed: int = 7,
    profile: str = "double11",
) -> LoadResult:
    r = LoadResult(seed=seed, profile=profile, run_id="synth", t0=1000.0, duration_s=duration_s, elapsed_s=duration_s)
    r.legacy_actions = frozenset(legacy)
    total = 0
    for action, rows in samples.items():
        s = ActionStats(action)
        fine: dict[int, int] = {}
        by_class: dict[str, dict[int, int]] = {}
        per: dict[int, _Sec] = {}
        for t, lat_ms, outcome in rows:
            lat_us = lat_ms * 1000.0
            fi = fine_index(lat_us)
            fine[fi] = fine.get(fi, 0) + 1
            s.count += 1
            ok = queued = 0
            if isinstance(outcome, int):
                s.status[str(outcome)] = s.status.get(str(outcome), 0) + 1
                cls = f"{outcome // 100}xx"
                if outcome < 400:
                    ok = 1
                    s.ok += 1
                    if outcome == 202:
                        queued = 1
                        s.queued += 1
                elif outcome >= 500:
                    s.errors["status_5xx"] += 1
                else:
                    s.errors["status_4xx"] += 1
            else:
                cls = "none"
                s.errors[outcome] += 1
            bc = by_class.setdefault(cls, {})
            bc[fi] = bc.get(fi, 0) + 1
            row = per.setdefault(int(t), _Sec())
            row.count += 1
            row.ok += ok
            row.errors += 1 - ok
            row.queued += queued
            if not ok:
                kind = str(outcome)
                row.kinds[kind] = row.kinds.get(kind, 0) + 1
            row.max_us = max(row.max_us, lat_us)
            k = sketch_index(lat_us)
            row.buckets[k] = row.buckets.get(k, 0) + 1
        s.latency = hdr_from_fine(fine)
        s.service = hdr_from_fine(fine)
        s.by_class = {k: hdr_from_fine(v) for k, v in by_class.items()}
        r.actions[action] = s
        r.series[action] = {
            sec: SecondStats(sec, row.count, row.ok, row.errors, row.queued, LogSketch.from_dict_counts(row.buckets, row.max_us), row.kinds)
            for sec, row in sorted(per.items())
        }
        total += s.count
    r.sessions = SessionCounts(arrived=sessions, started=sessions, completed=sessions)
    r.requests_sent = total
    r.orders = [AckOrder(k, 201, str(i)) for i, k in enumerate(orders)]
    return r


PHASES = derive_phases([(10.0, 30.0)], 40.0)  # baseline 0-10, fault 10-30, recovery 30-40


def evidence(load: LoadResult, phases: tuple[Phase, ...] = PHASES, **kw: Any) -> Evidence:
    kw.setdefault("legacy_actions", load.legacy_actions)
    kw.setdefault("request_timeout_s", 5.0)
    kw.setdefault("has_faults", any(p.name == "fault" for p in phases))
    kw.setdefault("patience_s", 2.0)
    return Evidence(load=load, phases=phases, **kw)


def healthy(duration: float = 40.0, *, browse_ms: float = 5.0, cart_ms: float = 20.0) -> dict[str, list[Sample]]:
    return {
        "browse": steady(0, duration, 20, browse_ms),
        "view_product": steady(0, duration, 20, browse_ms),
        "add_to_cart": steady(0, duration, 10, cart_ms),
        "checkout": steady(0, duration, 2, cart_ms, 201),
    }


def row(results: list[CheckResult], phase: str) -> CheckResult:
    [r] = [r for r in results if r.phase == phase]
    return r


# ------------------------------------------------------------------------------------ phases


def test_phases_from_fault_windows() -> None:
    assert derive_phases([], 30) == (Phase("baseline", 0, 30),)
    assert derive_phases([(8, 28)], 40) == (Phase("baseline", 0, 8), Phase("fault", 8, 28), Phase("recovery", 28, 40))
    # several faults: the fault phase spans from the first start to the last end
    assert derive_phases([(12, 15), (5, 9)], 30) == (Phase("baseline", 0, 5), Phase("fault", 5, 15), Phase("recovery", 15, 30))
    # faults from the start / to the end leave out the empty phases
    assert derive_phases([(0, 10)], 30) == (Phase("fault", 0, 10), Phase("recovery", 10, 30))
    assert derive_phases([(5, 30)], 30) == (Phase("baseline", 0, 5), Phase("fault", 5, 30))
    assert Phase("fault", 7.5, 27.5).seconds() == (8, 27)  # only whole seconds inside the phase
    assert Phase("baseline", 0, 8).to_dict() == {"name": "baseline", "start": 0.0, "end": 8.0}


# ------------------------------------------------------------------------------------ policy


def test_policy_defaults_and_overrides() -> None:
    p = Policy()
    assert p.isolation_min_success == 0.99 and p.isolation_p95_factor == 3.0
    assert p.fail_fast_p99_ms == 2000 and p.amplification_max == 3.0
    assert p.enabled == CHECK_NAMES
    q = p.with_(isolation_p95_factor=4, amplification=False, fail_fast_p99_ms=1500)
    assert q.isolation_p95_factor == 4 and q.fail_fast_p99_ms == 1500
    assert "amplification" not in q.enabled and p.is_enabled("amplification")
    assert q.with_(amplification=True).enabled == CHECK_NAMES  # canonical order kept
    assert resolve_policy(None) == Policy()
    assert resolve_policy({"ledger": False}).enabled == tuple(n for n in CHECK_NAMES if n != "ledger")
    assert resolve_policy(q) is q
    assert resolve_policy({"min_requests": 5}, base=q).isolation_p95_factor == 4
    assert Policy().to_dict()["dishonest_kinds"] == ["status_5xx", "timeout", "reset", "refused", "other"]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"isolation_p95": 3}, "unknown key 'isolation_p95'; valid keys: thresholds isolation_min_success"),
        ({"isolation_min_success": 1.5}, "isolation_min_success must be a number from 0 to 1"),
        ({"isolation_p95_factor": 0.5}, "isolation_p95_factor must be >= 1"),
        ({"fail_fast_p99_ms": -1}, "fail_fast_p99_ms must be > 0"),
        ({"ledger": "no"}, "ledger turns a check on or off and takes True or False"),
        ({"dishonest_kinds": ("status_5xx", "boom")}, "unknown kind(s) 'boom'; valid values: status_5xx"),
        ({"honest_statuses": [503, 999]}, "honest_statuses must be HTTP status codes"),
        ({"enabled": ("isolation", "speed")}, "unknown check(s) 'speed'; valid values: baseline, isolation"),
        ({"strict": "yes"}, "strict must be True or False"),
        ({"retry_after_statuses": ["503"]}, "retry_after_statuses must be HTTP status codes"),
        ({"min_requests": 2.5}, "min_requests must be a whole number"),
        ({"patience_s": 0}, "patience_s must be > 0"),
    ],
)
def test_policy_errors_name_the_key(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as info:
        Policy().with_(**overrides)
    assert message in str(info.value)
    assert str(info.value).startswith("checks: ")


def test_unknown_key_lists_check_names_too() -> None:
    with pytest.raises(ValueError, match="a check name to turn it on/off \\(baseline, isolation, fail_fast, honest_degradation, ledger, recovery, amplification, shedding\\)"):
        resolve_policy({"nope": 1})
    with pytest.raises(ValueError, match="checks: expected a Policy, a dict of overrides"):
        resolve_policy(["isolation"])  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------ isolation


def test_isolation_passes_when_browse_is_untouched() -> None:
    ev = evidence(build(40, healthy()))
    rows = isolation(ev, Policy())
    assert [r.phase for r in rows] == ["baseline", "fault", "recovery"]
    assert all(r.passed and not r.skipped for r in rows)
    assert row(rows, "fault").expected == "success >= 99.0% within 2s, p95 <= max(3x baseline, 250 ms)"
    assert row(rows, "baseline").expected == "success >= 99.0% within 2s"  # nothing to compare with


def test_isolation_fails_on_availability_and_names_the_action() -> None:
    s = healthy()
    # browse: 59 % of requests fail (503s are explicit but still unavailable) during the fault
    s["browse"] = mix(steady(0, 10, 20, 5), steady(10, 30, 8.2, 5), steady(10, 30, 11.8, 5, 503), steady(30, 40, 20, 5))
    rows = isolation(evidence(build(40, s)), Policy())
    fault = row(rows, "fault")
    assert not fault.passed
    assert fault.measured == "browse success 41.0% (baseline 100.0%)"
    assert row(rows, "baseline").passed and row(rows, "recovery").passed


def test_isolation_names_every_action_whose_success_fell_most_requested_first() -> None:
    s = healthy()
    s["browse"] = mix(steady(0, 10, 10, 5), steady(10, 30, 6, 5), steady(10, 30, 4, 5, "timeout"), steady(30, 40, 10, 5))
    s["search"] = mix(steady(0, 10, 30, 5), steady(10, 30, 15, 900), steady(10, 30, 15, 5, 500), steady(30, 40, 30, 5))
    fault = row(isolation(evidence(build(40, s)), Policy()), "fault")
    assert not fault.passed
    assert re.fullmatch(r"search success 50\.0% \(baseline 100\.0%\); browse 60\.0%; p95 up to (\d+) ms \(bound 250 ms\)", fault.measured)


def test_isolation_counts_answers_slower_than_the_shoppers_patience_as_unavailable() -> None:
    s = healthy()
    # every 4th browse takes 3 s: a 200, but the shopper (patience 2 s) had given up
    slow = [(t, 3000.0 if i % 4 == 0 else 5.0, 200) for i, (t, _, _) in enumerate(steady(10, 30, 20, 5))]
    s["browse"] = mix(steady(0, 10, 20, 5), slow, steady(30, 40, 20, 5))
    fault = row(isolation(evidence(build(40, s)), Policy()), "fault")
    assert not fault.passed and fault.measured.startswith("browse success 75.0% (baseline 100.0%)")
    assert "100 slower than 2s" in fault.detail
    # a more patient shopper (policy override) still sees the p95 blow the bound
    fault = row(isolation(evidence(build(40, s)), Policy(patience_s=5)), "fault")
    assert not fault.passed and fault.measured.startswith("browse p95 3")


def test_isolation_p95_factor_with_absolute_floor() -> None:
    s = healthy()
    s["browse"] = mix(steady(0, 10, 20, 2), steady(10, 30, 20, 7), steady(30, 40, 20, 2))
    # 7 ms is 3.5x a 2 ms baseline, but under the 250 ms floor: not a failure
    assert all(r.passed for r in isolation(evidence(build(40, s)), Policy()))
    s["browse"] = mix(steady(0, 10, 20, 100), steady(10, 30, 20, 400), steady(30, 40, 20, 100))
    fault = row(isolation(evidence(build(40, s)), Policy()), "fault")
    assert not fault.passed
    # per-second sketches are accurate to 2 %: 400 ms vs a 100 ms baseline, bound 3x = 300 ms
    m = re.fullmatch(r"browse p95 (\d+) ms \(baseline (\d+) ms, bound (\d+) ms\)", fault.measured)
    assert m is not None, fault.measured
    assert [int(x) for x in m.groups()] == pytest.approx([400, 100, 300], rel=0.025)
    assert row(isolation(evidence(build(40, s)), Policy(isolation_p95_factor=5)), "fault").passed


def test_isolation_without_baseline_only_checks_success() -> None:
    phases = derive_phases([(1.0, 30.0)], 40.0)  # 1 s of baseline: too short to compare with
    s = healthy()
    s["browse"] = mix(steady(0, 1, 20, 2), steady(1, 30, 20, 900), steady(30, 40, 20, 2))
    rows = isolation(evidence(build(40, s), phases), Policy())
    fault = row(rows, "fault")
    assert fault.passed and fault.expected == "success >= 99.0% within 2s"
    assert "p95 not compared: no baseline phase: only 1s before the first fault (need >= 3s)" in fault.detail


def test_isolation_small_actions_are_judged_as_a_group() -> None:
    s = healthy()
    s["home"] = mix(steady(0, 40, 0.2, 5, 500))  # 8 requests, all errors: too few alone
    s["search"] = mix(steady(0, 40, 0.3, 5, 500))  # 12 more: together 20
    fault = row(isolation(evidence(build(40, s)), Policy()), "fault")
    # the group (4 + 6 requests in the fault phase) stays under min_requests: not judged
    assert fault.passed
    rows = isolation(evidence(build(40, s)), Policy(min_requests=5))
    assert not row(rows, "fault").passed


# ------------------------------------------------------------------------------------ fail fast


def test_fail_fast_passes_and_fails_on_p99() -> None:
    assert all(r.passed for r in fail_fast(evidence(build(40, healthy())), Policy()))
    s = healthy()
    s["add_to_cart"] = mix(steady(0, 10, 10, 20), steady(10, 30, 10, 2600), steady(30, 40, 10, 20))
    rows = fail_fast(evidence(build(40, s)), Policy())
    fault = row(rows, "fault")
    assert not fault.passed and fault.measured.startswith("add_to_cart p99 26")
    assert fault.expected == "p99 <= 2000 ms, none hung to the 5s time-out"
    assert row(rows, "baseline").passed and row(rows, "recovery").passed
    assert row(fail_fast(evidence(build(40, s)), Policy(fail_fast_p99_ms=3000)), "fault").passed


def test_fail_fast_counts_requests_that_hung_to_the_client_timeout() -> None:
    s = healthy()
    fast = steady(10, 30, 10, 20)
    # 1 % time out at the client's 5 s: p99 may still look fine, but they hung
    hung = [(t, 5000.0, "timeout") if i % 100 == 0 else (t, lat, out) for i, (t, lat, out) in enumerate(fast)]
    s["add_to_cart"] = mix(steady(0, 10, 10, 20), hung, steady(30, 40, 10, 20))
    fault = row(fail_fast(evidence(build(40, s)), Policy(fail_fast_p99_ms=6000)), "fault")
    assert not fault.passed and "2 of 200 hung to the 5s time-out" in fault.measured
    assert row(fail_fast(evidence(build(40, s)), Policy(fail_fast_p99_ms=6000, fail_fast_max_hung=2)), "fault").passed


# ------------------------------------------------------------------------------------ honest


def test_honest_degradation_accepts_503_429_and_202() -> None:
    s = healthy()
    s["checkout"] = mix(steady(0, 40, 1, 20, 202), steady(0, 40, 0.5, 5, 503), steady(0, 40, 0.5, 5, 429))
    results = honest_degradation(evidence(build(40, s)), Policy())
    assert [r.phase for r in results] == [p.name for p in PHASES]
    assert all(r.passed for r in results)
    fault = row(results, "fault")
    fault_s = next(p for p in PHASES if p.name == "fault")
    n = int(fault_s.end - fault_s.start)
    assert f"explicit: {n} queued (202), {n // 2} 503, {n // 2} 429" in fault.measured


@pytest.mark.parametrize("bad", [500, "timeout", "reset", "refused"])
def test_honest_degradation_fails_on_500s_resets_and_timeouts_in_their_phase(bad: Outcome) -> None:
    s = healthy()
    s["add_to_cart"] = mix(steady(0, 40, 10, 20), steady(12, 14, 2, 20, bad))
    results = honest_degradation(evidence(build(40, s)), Policy())
    bad_phase = next(p for p in PHASES if p.start <= 12 < p.end)
    for r in results:
        assert r.passed == (r.phase != bad_phase.name), r
    r = row(results, bad_phase.name)
    assert r.measured.startswith("4 of ") and f"4 {bad}" in r.measured
    assert all(r.passed for r in honest_degradation(evidence(build(40, s)), Policy(honest_max_share=0.01)))


# ------------------------------------------------------------------------------------ ledger


def test_reconcile_missing_and_duplicated_keys() -> None:
    rec = Reconciliation.reconcile(["k1", "k2", "k2", "k3"], ["k1", "k1", "k3", "other", "pc-x-1", "pc-x-1"], also=lambda k: k.startswith("pc-x-"))
    assert rec.to_dict() == {"acknowledged": 3, "found": 2, "missing": 1, "duplicated": 2, "settled": False, "waited_s": 0.0, "last_error": "",
                             "items_compared": 0, "items_short": 0, "items_note": "the load recorded no cart for its orders"}
    assert rec.missing_keys == ("k2",) and rec.duplicated_keys == ("k1", "pc-x-1")


def test_ledger_check() -> None:
    load = build(40, healthy())
    ok = Reconciliation.reconcile(["a", "b"], ["a", "b"], waited_s=1.5)
    [r] = ledger(evidence(load, ledger=ok), Policy())
    assert r.passed and r.phase == "recovery"
    assert r.measured == ("2 acknowledged: 2 found, 0 missing, 0 duplicated (waited 1.5s for the outbox); "
                          "items not measured: the load recorded no cart for its orders")
    [r] = ledger(evidence(load, ledger=Reconciliation.reconcile(["a", "b"], ["a", "a"])), Policy())
    assert not r.passed and "1 missing, 1 duplicated" in r.measured and "missing e.g. b" in r.detail
    [r] = ledger(evidence(load, ledger=None, ledger_note="the stack has no ledger hook"), Policy())
    assert r.skipped and r.outcome == "not measured" and r.measured == "not measured: the stack has no ledger hook"
    [r] = ledger(evidence(build(40, {"browse": steady(0, 40, 20, 5)}), ledger=Reconciliation.reconcile([], [])), Policy())
    assert r.skipped and r.measured == "not measured: no order was attempted"


# ------------------------------------------------------------------------------------ recovery


def _with_total_failure(until: float) -> dict[str, list[Sample]]:
    s = healthy()
    for a in list(s):
        ok = 201 if a == "checkout" else 200
        s[a] = mix(steady(0, 10, 20, 5, ok), steady(10, until, 20, 5, 500), steady(until, 40, 20, 5, ok))
    return s


def test_recovery_passes_when_success_is_back_soon() -> None:
    [r] = recovery(evidence(build(40, _with_total_failure(32))), Policy())
    assert r.passed and r.measured == "back to >= 99.0% 2s after the last revert"
    assert r.expected == "success >= 99.0% within 5s of the last revert at 30.0s (baseline 100.0%)"


def test_recovery_fails_when_slow_or_never() -> None:
    [r] = recovery(evidence(build(40, _with_total_failure(37))), Policy())
    assert not r.passed and r.measured == "back to >= 99.0% 7s after the last revert"
    assert recovery(evidence(build(40, _with_total_failure(37))), Policy(recovery_within_s=8))[0].passed
    [r] = recovery(evidence(build(40, _with_total_failure(40))), Policy())
    assert not r.passed and r.measured == "not back by the end of the run: 0.0% in the last 2s"


def test_recovery_needs_a_recovery_phase_not_a_baseline() -> None:
    load = build(40, healthy())
    [r] = recovery(evidence(load, derive_phases([(0, 20)], 40)), Policy())
    assert r.passed and not r.skipped  # an absolute floor: no baseline needed
    [r] = recovery(evidence(load, derive_phases([(10, 38)], 40)), Policy())
    assert r.skipped and "no recovery phase: only 2s after the last fault was reverted (need >= 3s)" in r.measured
    assert recovery(evidence(load, derive_phases([], 40)), Policy()) == []  # no faults: nothing to recover from


# ------------------------------------------------------------------------------------ amplification


def test_amplification_per_phase() -> None:
    load = build(40, healthy())
    amp = Amplification("calls", "GET /stats", 900, 480, {"baseline": (900.0, 120), "fault": (1000.0, 240), "recovery": (90.0, 120)})
    rows = amplification(evidence(load, amplification=amp), Policy())
    assert [r.phase for r in rows] == ["fault", "recovery"]  # with faults, the baseline is the reference
    assert not rows[0].passed and rows[0].measured == "4.17 calls per action (1000 calls / 240 actions)"
    assert rows[1].passed and rows[0].expected == "<= 3 legacy calls per legacy-bound action"
    assert all(r.passed for r in amplification(evidence(load, amplification=amp), Policy(amplification_max=5.0)))
    assert "baseline (not judged): 900 calls / 120 actions" in rows[0].detail


def test_amplification_without_faults_judges_the_whole_run_and_skips_without_counter() -> None:
    load = build(40, healthy())
    amp = Amplification("calls", "GET /stats", 480, 480, {"baseline": (480.0, 480)})
    [r] = amplification(evidence(load, derive_phases([], 40), amplification=amp), Policy())
    assert r.passed and r.phase == "baseline" and r.measured.startswith("1.00 calls per action")
    [r] = amplification(evidence(load, amplification=None, amplification_note="no legacy call counter: x"), Policy())
    assert r.skipped and r.measured == "not measured: no legacy call counter: x"


def test_amplification_from_bytes_is_relative_to_the_baseline() -> None:
    load = build(40, healthy())
    amp = Amplification("bytes", "toxiproxy", 0, 0, {"baseline": (12000.0, 120), "fault": (96000.0, 240), "recovery": (12000.0, 120)})
    rows = amplification(evidence(load, amplification=amp), Policy())
    assert rows[0].phase == "fault" and not rows[0].passed and rows[0].measured.startswith("4.00x baseline")
    assert rows[1].passed
    assert amp.to_dict() is None  # bytes are not calls: the run dict's "legacy" stays null


# ------------------------------------------------------------------------------------ table


def test_evaluate_runs_enabled_checks_in_order() -> None:
    ev = evidence(build(40, healthy()), ledger=Reconciliation.reconcile(["a"], ["a"]))
    names = [r.name for r in evaluate(ev, Policy())]
    assert names == ["baseline"] + ["isolation"] * 3 + ["fail_fast"] * 3 + ["honest_degradation"] * 3 + ["ledger", "recovery", "amplification"]
    assert "ledger" not in [r.name for r in evaluate(ev, Policy().with_(ledger=False))]


def test_table_is_aligned_and_failed_rows_come_first() -> None:
    rows = [
        CheckResult("isolation", "baseline", True, "success >= 99.0%", "lowest: browse success 100.0%"),
        CheckResult("isolation", "fault", False, "success >= 99.0%", "browse success 41.0% (baseline 100.0%)"),
        CheckResult.skip("recovery", "recovery", "back within 5s", "no recovery phase"),
    ]
    text = format_table(rows)
    lines = text.splitlines()
    assert lines[0].split() == ["check", "phase", "expected", "measured", "result"]
    assert set(lines[1]) <= {"-", " "}
    assert lines[2].startswith("isolation  fault") and lines[2].endswith("FAIL")
    assert lines[3].endswith("pass") and lines[4].endswith("not measured")
    # columns line up: "measured" starts at the same offset on every row
    col = lines[0].index("measured")
    assert lines[2][col:].startswith("browse success 41.0%") and lines[3][col:].startswith("lowest:")


# ------------------------------------------------------------------------------------ false passes (issue #9)
# Each of these was once reported as a pass. Each now fails the run with a readable row.


def _verdict(ev: Evidence, policy: Policy | None = None) -> tuple[bool, list[CheckResult]]:
    rows = evaluate(ev, policy or Policy())
    return all(r.passed for r in rows), rows


def _counted(**kw: Any) -> Evidence:
    """Evidence with a working legacy counter and ledger, so only the defect under test is missing."""
    load = kw.pop("load")
    kw.setdefault("amplification", Amplification("calls", "GET /stats", 480, 480,
                                                 {"baseline": (120.0, 120), "fault": (240.0, 240), "recovery": (120.0, 120)}))
    kw.setdefault("ledger", Reconciliation.reconcile([o.idempotency_key for o in load.orders], [o.idempotency_key for o in load.orders]))
    kw.setdefault("link_bytes", {"baseline": 9000.0, "fault": 20000.0, "recovery": 9000.0})
    return evidence(load, **kw)


def test_a_healthy_run_passes_strictly() -> None:
    ok, rows = _verdict(_counted(load=build(40, healthy(), orders=["k1", "k2"])))
    assert ok, format_table(rows)
    assert rows[0].name == "baseline" and rows[0].outcome == "pass" and "9,000 bytes to legacy through the proxy" in rows[0].measured


@pytest.mark.parametrize("status", [503, 400, 409])
def test_false_pass_cart_and_checkout_answer_an_instant_error_in_every_phase(status: int) -> None:
    s = healthy()
    s["add_to_cart"] = steady(0, 40, 10, 2, status)
    s["checkout"] = steady(0, 40, 2, 2, status)
    ok, rows = _verdict(_counted(load=build(40, s)))
    assert not ok
    [r] = rows  # one clear row: nothing else is judged against a broken system
    assert r.name == "baseline" and r.outcome == "fail" and r.phase == "baseline"
    assert r.measured.startswith(f"add_to_cart: 0 of 100 succeeded in the baseline (100 {status})"), r.measured
    assert "checkout: 0 of 20 succeeded" in r.measured and "the system is broken before any fault; nothing else was judged" in r.measured


def test_false_pass_mostly_404_is_a_wrong_binding() -> None:
    s = healthy()
    s["view_product"] = steady(0, 40, 20, 1, 404)
    [r] = evaluate(_counted(load=build(40, s)), Policy())
    assert r.name == "baseline" and not r.passed
    assert "view_product: 200 of 200 answered 404/405 in the baseline: the profile's binding does not match the system" in r.measured


def test_false_pass_zero_requests() -> None:
    ok, rows = _verdict(_counted(load=build(40, {})))
    assert not ok
    [r] = rows
    assert r.name == "baseline" and r.outcome == "fail" and r.measured.startswith("0 requests in the run")


def test_false_pass_checkouts_attempted_none_acknowledged() -> None:
    s = healthy()
    s["checkout"] = mix(steady(0, 10, 2, 20, 201), steady(10, 40, 2, 20, 200))  # the shop answers, never acknowledges
    ok, rows = _verdict(_counted(load=build(40, s), ledger=Reconciliation.reconcile([], [])))
    assert not ok
    r = row([r for r in rows if r.name == "ledger"], "recovery")
    assert r.outcome == "fail" and r.measured == "80 order attempts (checkout), none acknowledged: no order could be checked"


def test_false_pass_ledger_unreadable() -> None:
    ev = _counted(load=build(40, healthy(), orders=["k1"]), ledger=None,
                  ledger_error="no answer within 10s (1 acknowledged orders unchecked); last error: URLError: refused")
    ok, rows = _verdict(ev)
    assert not ok
    [r] = [r for r in rows if r.name == "ledger"]
    assert r.outcome == "fail" and "the ledger could not be read: no answer within 10s" in r.measured and "URLError" in r.measured


def test_false_pass_ledger_never_settled() -> None:
    rec = Reconciliation.reconcile(["k1", "k2", "k3"], ["k1"], waited_s=10.2, last_error="HTTPError: 503 legacy paused")
    ok, rows = _verdict(_counted(load=build(40, healthy(), orders=["k1", "k2", "k3"]), ledger=rec))
    assert not ok
    [r] = [r for r in rows if r.name == "ledger"]
    assert r.outcome == "fail" and "3 acknowledged: 1 found, 2 missing" in r.measured
    assert "not settled after 10.2s (last error: HTTPError: 503 legacy paused)" in r.measured


def test_false_pass_not_measured_is_never_a_pass() -> None:
    ev = _counted(load=build(40, healthy(), orders=["k1"]), amplification=None, amplification_note="no legacy call counter: legacy has no /stats")
    ok, rows = _verdict(ev)
    assert not ok
    [r] = [r for r in rows if r.name == "amplification"]
    assert r.outcome == "not measured" and r.status == "NOT MEASURED" and r.reason == "no legacy call counter: legacy has no /stats"
    assert r.to_dict()["outcome"] == "not measured"
    assert format_table(rows).splitlines()[2].endswith("NOT MEASURED")  # failing rows first
    ok, rows = _verdict(ev, Policy(strict=False))
    assert ok and [r.status for r in rows if r.name == "amplification"] == ["not measured"]


def test_false_pass_counter_read_failing_at_a_boundary_is_a_row() -> None:
    amp = Amplification("calls", "GET /stats", 480, 480, {"baseline": (120.0, 120), "recovery": (120.0, 120)},
                        {"fault": "the legacy counter could not be read at 30s: no answer"})
    ok, rows = _verdict(_counted(load=build(40, healthy(), orders=["k1"]), amplification=amp))
    assert not ok
    r = row([r for r in rows if r.name == "amplification"], "fault")
    assert r.outcome == "not measured" and r.reason == "the legacy counter could not be read at 30s: no answer"
    assert [(f.name, f.phase) for f in rows if not f.passed] == [("amplification", "fault")]


def test_false_pass_fault_lost_mid_window_makes_its_phase_not_measured() -> None:
    ev = _counted(load=build(40, healthy(), orders=["k1"]), phase_problems={"fault": "the faults did not really happen: latency 800ms was lost at 14.0s"})
    ok, rows = _verdict(ev)
    assert not ok
    fault_rows = [r for r in rows if r.phase == "fault"]
    assert fault_rows and all(r.outcome == "not measured" for r in fault_rows)
    assert all(r.phase == "fault" for r in rows if not r.passed)
    assert "latency 800ms was lost at 14.0s" in fault_rows[0].reason


def test_false_pass_503_without_retry_after_is_dishonest() -> None:
    s = healthy()
    s["add_to_cart"] = mix(steady(0, 10, 10, 20), steady(10, 30, 10, 3, 503), steady(30, 40, 10, 20))
    load = build(40, s)
    honest = honest_degradation(evidence(load), Policy())
    assert row(honest, "fault").passed  # a 503 with Retry-After is explicit back-pressure
    for sec in load.series["add_to_cart"].values():
        if "503" in sec.kinds:
            sec.kinds["503_no_retry_after"] = sec.kinds.pop("503")
    r = row(honest_degradation(evidence(load), Policy()), "fault")
    assert not r.passed and r.measured == "200 of 1040 requests (19.2%): 200 503 without Retry-After"
    assert row(honest_degradation(evidence(load), Policy(retry_after_statuses=())), "fault").passed


def test_honest_statuses_can_be_widened_for_a_fast_504() -> None:
    s = healthy()
    s["add_to_cart"] = mix(steady(0, 10, 10, 20), steady(10, 30, 10, 3, 504), steady(30, 40, 10, 20))
    load = build(40, s)
    assert not row(honest_degradation(evidence(load), Policy()), "fault").passed
    assert row(honest_degradation(evidence(load), Policy(honest_statuses=(503, 504))), "fault").passed


def test_false_pass_no_bytes_through_the_proxy() -> None:
    ev = _counted(load=build(40, healthy()), link_bytes={"baseline": 0.0, "fault": 0.0, "recovery": 0.0})
    ok, rows = _verdict(ev)
    assert not ok
    [r] = rows
    assert r.name == "baseline" and r.outcome == "fail"
    assert r.measured.startswith("120 legacy-bound requests succeeded but 0 bytes crossed the proxy in the baseline")
    assert r.measured.endswith("the cloud does not reach legacy through the proxy: faults on this link cannot affect it")
    # bytes booked later (Toxiproxy books them when a connection closes): legacy was reached
    ev = _counted(load=build(40, healthy(), orders=["k1"]), link_bytes={"baseline": 0.0, "fault": 300.0, "recovery": 900.0})
    [r] = baseline(ev, Policy())
    assert r.passed and "0 bytes booked in the baseline, 1,200 in the run" in r.measured


def test_false_pass_recovery_target_is_an_absolute_floor() -> None:
    s = {a: mix(steady(0, 10, 20, 5, 200), steady(0, 10, 20, 5, 500), steady(10, 40, 20, 5, 200), steady(10, 40, 20, 5, 500))
         for a in ("browse", "add_to_cart")}
    [r] = recovery(evidence(build(40, s)), Policy())  # 50% everywhere: once "back to the baseline"
    assert not r.passed and r.measured == "not back by the end of the run: 50.0% in the last 2s"
    assert "success >= 99.0%" in r.expected and "(baseline 50.0%)" in r.expected


def test_old_check_names_are_deprecated_aliases() -> None:
    with pytest.warns(DeprecationWarning, match="'nothing_lost' is now called 'ledger'"):
        p = Policy().with_(nothing_lost=False)
    assert not p.is_enabled("ledger")
    with pytest.warns(DeprecationWarning, match="'bounded_amplification' is now called 'amplification'"):
        assert Policy(enabled=("bounded_amplification",)).enabled == ("amplification",)


def test_an_order_redelivered_under_a_re_minted_key_counts_twice() -> None:
    """``<key>.r2`` in the ledger next to ``<key>`` is the same order placed again (a retry that
    dropped the shopper's idempotency key); alone it is that order, found once."""
    from pytest_peakchaos.checks import Reconciliation

    rec = Reconciliation.reconcile(
        ["pc-x-1-0", "pc-x-2-0", "pc-x-3-0"],
        ["pc-x-1-0", "pc-x-1-0.r2", "pc-x-2-0.d7", "pc-x-3-0", "pc-x-3-00"],
        also=lambda k: k.startswith("pc-x-"),
    )
    assert (rec.found, rec.missing, rec.duplicated) == (3, 0, 1)
    assert rec.duplicated_keys == ("pc-x-1-0",)
