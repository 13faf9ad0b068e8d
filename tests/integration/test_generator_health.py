"""A starved load generator is detected and says so, instead of blaming the system.

The starvation is injected, not timed: a blocking call on the engine's own event loop (what a slow
hook, a collector pause or a stolen core does to it) while a target on 127.0.0.1 keeps answering
fast. The engine must report the seconds it was saturated, and a latency check that failed over
them must come out *not measured* (the skip form of CheckResult) when they are most of its phase,
or be judged again on the seconds the generator kept up in, never FAIL for the generator's delay.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from pytest_peakchaos.checks import Evidence, Policy, derive_phases, evaluate
from pytest_peakchaos.load import run_load
from tests.unit.test_load_bounds import one_action_profile
from tests.unit.test_load_target import Target

BLOCK_S = 0.6
BLOCK_AT = 2.2  # seconds after t0: inside second 2


def _blocked_run(url: str, *, block: bool) -> Any:
    def on_start(t0: float) -> None:
        if block:  # on_start runs on the engine's thread, inside its running loop
            loop = asyncio.get_running_loop()
            loop.call_at(t0 + BLOCK_AT, time.sleep, BLOCK_S)  # the injected blocking call

    prof = one_action_profile("/ok", 60, stay=0.9, think=0.02)
    return run_load(url, prof, duration=4.0, seed=5, max_requests=100_000, max_sessions=None,
                    concurrency_cap=2000, request_timeout_s=3.0, on_start=on_start)


@pytest.fixture(scope="module")
def runs() -> dict[str, Any]:
    with Target() as t:
        return {"blocked": _blocked_run(t.url, block=True), "free": _blocked_run(t.url, block=False)}


def test_a_blocked_generator_reports_its_own_delay(runs: dict[str, Any]) -> None:
    r = runs["blocked"]
    g = r.generator
    assert sorted(g.seconds)[:4] == [0, 1, 2, 3]
    row = g.seconds[2]
    # the ticker slept through the block: the loop lag of second 2 is the blocked time
    assert row.lag_max_ms >= 0.9 * BLOCK_S * 1000, row.to_dict()
    assert row.send_max_ms >= 0.5 * BLOCK_S * 1000  # requests due during the block went out late
    assert 2 in g.saturated_seconds(Policy().generator_delay_p99_ms)
    line = g.describe(Policy().generator_delay_p99_ms)
    assert line.startswith("the load generator was saturated: its own p99 delay was ") and "add workers or a cluster" in line
    assert line in r.summary()
    # ...and the block is what the latency of that second shows (the target answered in < 1 ms)
    assert r.timeline()[2].max_ms >= 0.5 * BLOCK_S * 1000
    # the blocked second's delay is far above the unblocked run's worst second on the same machine
    assert runs["free"].generator.worst_ms() < 0.5 * BLOCK_S * 1000, runs["free"].generator.to_dict()["totals"]


def test_saturated_seconds_make_latency_checks_not_measured_not_failed(runs: dict[str, Any]) -> None:
    r = runs["blocked"]
    ev = Evidence(load=r, phases=derive_phases([(2.0, 3.0)], 4.0), legacy_actions=frozenset({"home"}),
                  request_timeout_s=3.0, has_faults=True)
    # a bound well above this shared machine's scheduling noise and well below the injected block
    # fail_fast's bound: below what the block adds, above this shared machine's scheduling noise
    strict = Policy(fail_fast_p99_ms=0.5 * BLOCK_S * 1000, min_phase_s=1.0, min_requests=5, generator_delay_p99_ms=0.5 * BLOCK_S * 1000)
    # with the generator rule switched off (an absurd bound), the generator's own delay fails the system
    blind = [c for c in evaluate(ev, strict.with_(generator_delay_p99_ms=1e9)) if c.name == "fail_fast" and c.phase == "fault"]
    assert blind and not blind[0].passed and not blind[0].skipped, blind
    rows = evaluate(ev, strict)
    fault = [c for c in rows if c.name == "fail_fast" and c.phase == "fault"]
    # not measured (the strict default does not pass it), never a fail
    assert len(fault) == 1 and fault[0].outcome == "not measured" and not fault[0].passed, fault
    assert "the load generator was saturated" in fault[0].measured and "(worst: second 2)" in fault[0].measured
    assert not [c for c in rows if c.phase == "fault" and c.outcome == "fail"], rows
    lenient = [c for c in evaluate(ev, strict.with_(strict=False)) if c.name == "fail_fast" and c.phase == "fault"]
    assert lenient[0].outcome == "not measured" and lenient[0].passed
    # the unblocked run's verdict stands on the same checks
    ev_free = Evidence(load=runs["free"], phases=ev.phases, legacy_actions=ev.legacy_actions,
                       request_timeout_s=3.0, has_faults=True)
    free_fault = [c for c in evaluate(ev_free, strict) if c.name == "fail_fast" and c.phase == "fault"]
    assert free_fault and not free_fault[0].skipped and free_fault[0].passed, free_fault


def test_too_few_connections_is_the_generator_s_delay_too() -> None:
    """One connection for shoppers who need several at once: requests queue for it inside the
    generator, and that wait is reported as the generator's own delay with the queue it formed."""
    with Target() as t:
        prof = one_action_profile("/slow/100", 40, stay=0.5)
        r = run_load(t.url, prof, duration=2.0, seed=6, max_requests=10_000, max_sessions=None,
                     concurrency_cap=500, request_timeout_s=5.0, connections=1)
    g = r.generator
    assert max(row.conn_queue_max for row in g.seconds.values()) >= 3, g.to_dict()["totals"]
    assert g.window_delay_p99_ms(0, 2) >= 200.0  # 100 ms per answer, several shoppers ahead in the queue
    assert g.saturated_window(0, 2, Policy().generator_delay_p99_ms)


def test_a_failed_row_is_judged_again_without_the_saturated_seconds(runs: dict[str, Any]) -> None:
    """A phase with one saturated second among several is judged on the others: the block's delay
    does not fail the system, and the row says which second was left out and why."""
    r = runs["blocked"]
    ev = Evidence(load=r, phases=derive_phases([(1.0, 4.0)], 4.0), legacy_actions=frozenset({"home"}),
                  request_timeout_s=3.0, has_faults=True)
    strict = Policy(fail_fast_p99_ms=0.5 * BLOCK_S * 1000, min_phase_s=1.0, min_requests=5, generator_delay_p99_ms=0.5 * BLOCK_S * 1000)
    blind = [c for c in evaluate(ev, strict.with_(generator_delay_p99_ms=1e9)) if c.name == "fail_fast" and c.phase == "fault"]
    assert blind and blind[0].outcome == "fail", blind
    fault = [c for c in evaluate(ev, strict) if c.name == "fail_fast" and c.phase == "fault"]
    assert len(fault) == 1 and fault[0].outcome == "pass", fault
    assert fault[0].measured.startswith("without second 2 (generator saturated): "), fault[0]
    assert "second 2 left out: the load generator was saturated there" in fault[0].detail
    # a system that is slow in the generator's good seconds too still fails: the rule only removes
    # the generator's seconds, it never excuses the rest
    tight = strict.with_(fail_fast_p99_ms=0.001)
    again = [c for c in evaluate(ev, tight) if c.name == "fail_fast" and c.phase == "fault"]
    assert again[0].outcome == "fail" and again[0].measured.startswith("without second 2"), again
