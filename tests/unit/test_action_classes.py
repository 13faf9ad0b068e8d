"""Declared action classes and per-action thresholds reach the checks: a ``cached`` action may
degrade within its stated bounds (and fails beyond them), instead of being judged as isolated."""

from __future__ import annotations

from pytest_peakchaos.checks import Policy, isolation
from tests.unit.test_checks import build, evidence, mix, steady


def _load(search_outcome_in_fault: int) -> object:
    samples = {
        "browse": steady(0, 40, 20, 5.0),
        "search": mix(steady(0, 10, 20, 5.0), steady(10, 30, 20, 400.0, search_outcome_in_fault), steady(30, 40, 20, 5.0)),
        "add_to_cart": steady(0, 40, 10, 20.0),
    }
    return build(40.0, samples, legacy=("add_to_cart",))


def test_a_cached_action_may_degrade_within_its_bounds() -> None:
    load = _load(200)  # search slower (400 ms) during the fault, still answering
    plain = isolation(evidence(load), Policy())  # type: ignore[arg-type]
    assert any(not r.passed and "search" in r.measured for r in plain)  # judged as isolated: p95 bound broken
    ev = evidence(load, action_classes={"search": "cached", "browse": "isolated"},  # type: ignore[arg-type]
                  action_thresholds={"search": {"success": 0.9, "p95_ms": 1000.0}})
    rows = isolation(ev, Policy())
    assert all(r.passed for r in rows), [r.measured for r in rows if not r.passed]
    cached = [r for r in rows if r.phase.endswith("(cached)")]
    assert {r.phase for r in cached} == {"baseline (cached)", "fault (cached)", "recovery (cached)"}
    assert all("search" not in r.measured for r in rows if not r.phase.endswith("(cached)"))


def test_a_cached_action_beyond_its_bounds_fails() -> None:
    load = _load(503)  # search fails during the fault: beyond "may degrade"
    ev = evidence(load, action_classes={"search": "cached"}, action_thresholds={"search": {"p95_ms": 1000.0}})  # type: ignore[arg-type]
    fault = next(r for r in isolation(ev, Policy()) if r.phase == "fault (cached)")
    assert not fault.passed and "success" in fault.measured
