"""The acceptance scenarios of DESIGN.md, on real containers behind real Toxiproxy.

A  resilient cloud, legacy latency 800 ms ± 200 ms for 20 s under double11  -> passes
B  naive cloud, the same load and faults  -> fails, naming isolation (browse availability fell)
C  the Double-11 lesson: at the same session arrival rate, normal passes and double11 fails against
   legacy's capacity; legacy calls per session rise
D  legacy link down for 10 s  -> checkouts queued, none lost, none duplicated after recovery

Rates are scaled so each runs in well under a minute on a 2-core CI machine shared with other
work; docs/checks.md explains the numbers. Each test prints its result's summary.
"""

from __future__ import annotations

import pytest

from pytest_peakchaos import down, latency
from pytest_peakchaos.experiment import GracefulDegradationError
from pytest_peakchaos.link import Link
from pytest_peakchaos.load import Constant
from pytest_peakchaos.profiles import load_profile
from pytest_peakchaos.stack.base import Stack

from ..conftest import AB_CHECKS
from .conftest import NAIVE_LEGACY_ACTIONS, RunFn

pytestmark = [pytest.mark.docker]

#: A and B: double11's sale-night curve at 3/4 of the built-in rates (baseline 3.75 sessions/s,
#: forecast 15/s, midnight spike 45/s), 40 s, the legacy link slow from 8 s to 28 s: the fault
#: window covers the build-up and the spike, recovery the plateau and the decay.
AB_LOAD = {"profile": "double11", "duration": "40s", "scale": 0.75}
AB_FAULTS = [latency(ms=800, jitter=200, start="8s", length="20s")]
#: their checks: ``AB_CHECKS`` (tests/conftest.py), the default ones with a 500 ms isolation floor

#: C: one constant session arrival rate for both behaviours (sessions/s) against the naive shop's
#: legacy (~75 requests/s): normal needs ~38 legacy calls/s there, double11 ~250/s.
C_RATE = 16.0
C_DURATION = 30.0


def test_a_resilient_cloud_degrades_gracefully_under_legacy_latency(
    peakchaos_stack: Stack, legacy_link: Link, experiment: RunFn
) -> None:
    result = experiment(peakchaos_stack, **AB_LOAD, faults=AB_FAULTS, checks=AB_CHECKS)
    result.assert_graceful()
    assert [p.name for p in result.phases] == ["baseline", "fault", "recovery"]
    assert [e["action"] for e in result.fault_events] == ["apply", "revert"]
    assert not legacy_link.active


def test_b_naive_cloud_fails_and_names_the_cascade(naive_stack: Stack, experiment: RunFn) -> None:
    result = experiment(naive_stack, **AB_LOAD, faults=AB_FAULTS, checks=AB_CHECKS, legacy_actions=NAIVE_LEGACY_ACTIONS)
    with pytest.raises(GracefulDegradationError) as info:
        result.assert_graceful()
    text = str(info.value)
    iso = result.check("isolation", "fault")
    assert not iso.passed, text
    # the first failed row of the table is isolation in the fault phase, and it says browse fell
    first_row = text.splitlines()[5]
    assert first_row.startswith("isolation") and " fault " in first_row and first_row.endswith("FAIL"), text
    assert " success " in first_row and "(baseline 100.0%)" in first_row and "browse" in first_row, text
    assert iso.measured.startswith(("browse success", "search success", "view_cart success", "home success")), text
    assert f"replay: seed={result.seed} profile=double11 scale=0.75" in text


def test_c_the_double11_lesson_same_arrival_rate_different_shoppers(fresh_naive_stack: Stack, experiment: RunFn) -> None:
    runs = {}
    for name in ("normal", "double11"):
        profile = load_profile(name).with_shape(Constant(duration=C_DURATION, rate_per_s=C_RATE))
        runs[name] = experiment(fresh_naive_stack, profile=profile, duration=C_DURATION, legacy_actions=NAIVE_LEGACY_ACTIONS)
    normal, d11 = runs["normal"], runs["double11"]
    print(
        f"legacy calls per session at {C_RATE:g} sessions/s: normal {normal.legacy_calls_per_session:.2f}, "
        f"double11 {d11.legacy_calls_per_session:.2f}"
    )
    normal.assert_graceful()
    with pytest.raises(GracefulDegradationError) as info:
        d11.assert_graceful()
    failed = {c.name for c in d11.failures}
    # no fault: double11's shoppers alone overload legacy from the first seconds, so the baseline
    # gate reports a system that does not work at this rate (or, when it holds out for a while,
    # isolation / fail_fast catch the cascade)
    assert failed & {"baseline", "fail_fast", "isolation"}, str(info.value)
    # double11 shoppers hit legacy more per session, even though the overload makes many of
    # them give up early (abandoned sessions make fewer calls): 3.8-5.7 vs 2.1-2.4 measured
    assert d11.legacy_calls_per_session > normal.legacy_calls_per_session
    assert normal.to_dict()["legacy_calls_per_session"] == round(normal.legacy_calls_per_session, 4)
    # the same arrival process: the sessions differ, not how many came
    assert abs(normal.load.sessions.arrived - d11.load.sessions.arrived) <= 0.25 * normal.load.sessions.arrived


def test_d_legacy_down_checkouts_queued_none_lost_none_twice(
    peakchaos_stack: Stack, legacy_link: Link, experiment: RunFn
) -> None:
    result = experiment(
        peakchaos_stack, profile="double11", duration="30s", scale=0.75, faults=[down(start="8s", length="10s")],
    )
    result.assert_graceful()
    fault = result.phase_window("fault", ["checkout"])
    assert fault.queued > 0, "checkouts during the outage are queued (202)"
    assert result.ledger is not None
    assert result.ledger.acknowledged > 0
    assert (result.ledger.missing, result.ledger.duplicated) == (0, 0)
    assert result.ledger.found == result.ledger.acknowledged
