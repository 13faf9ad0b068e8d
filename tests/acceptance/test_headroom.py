"""Headroom on the reference shop (issue 13): how much sale can each cloud take under the same faults?

Each probe is a short double11 burst at a constant session arrival rate (the profile's shape is a
``Constant`` of 1 session/s, so scale = sessions/s) with legacy 3 s slow in its middle (2.5 s to 6.5 s of 9 s). The probes'
checks are the default ones with wider latency margins (``PROBE_CHECKS``): the 2-core CI machine
is shared, and a check that fails on a starved CPU would measure the machine, not the shop. A
cascade (workers held by slow legacy calls, browse queued to the client time-out) fails them all
the same.

Default run: the short form (coarse interval, one search per cloud). ``-m slow``: the long forms
(finer intervals, the same seed twice, and the Double-11 lesson: double11 shoppers' headroom on the
naive shop far below normal shoppers').
"""

from __future__ import annotations

from typing import Any

import pytest

from pytest_peakchaos import latency
from pytest_peakchaos.fixture import Chaos
from pytest_peakchaos.headroom import HeadroomError, HeadroomResult
from pytest_peakchaos.load import Constant
from pytest_peakchaos.profiles import load_profile
from pytest_peakchaos.report import new_document, validate
from pytest_peakchaos.stack.base import Stack

from .conftest import NAIVE_LEGACY_ACTIONS, wait_quiet

pytestmark = [pytest.mark.docker]

PROBE_S = 9.0
#: the same faults for every probe of every search: legacy 3 s slow from 2.5 s to 6.5 s of each probe
#: (the resilient cloud gives up on legacy after a few hundred ms; the naive one holds a worker for
#: the whole 3 s). Half-second edges: the checks judge whole seconds lying inside a phase, so the
#: last baseline second ends 0.5 s before the fault starts (a call sent at 1.9 s that is answered
#: after the fault started would count as a slow *baseline* call).
FAULTS = [latency(ms=3000, start="2.5s", length="4s")]
#: the default checks with margins for a shared 2-core machine; phases of 2 s are enough to judge
#: (fail_fast above the fault's 3 s: a legacy call made just before the fault starts is answered
#: after it, and a short probe's p99 is its slowest few requests; a hung request still fails it)
PROBE_CHECKS: dict[str, Any] = {
    "min_phase_s": 2.0,
    "min_requests": 5,
    "amplification": False,
    # the lessons here are about capacity: the naive cloud has no breaker, so ``shedding`` fails it at
    # any rate under a 3 s latency (and cannot be measured for normal shoppers, who reach legacy
    # rarely in a 4 s window); judged by the mutant matrix and the scenarios instead
    "shedding": False,
    "patience_s": 3.0,
    "fail_fast_p99_ms": 4500.0,
    "isolation_p95_floor_ms": 1500.0,
    # 4x the probe's baseline p95 (the default is 3x): the naive shop's cascade puts its isolated
    # p95s at 2.2-2.5 s, so a factor of 10 let a CI baseline of 250 ms (a starved machine's noise in
    # a 2.5 s baseline) lift the bound above them and the naive shop passed at 16 sessions/s
    "isolation_p95_factor": 4.0,
}


#: the Double-11 lesson starts at 1 session/s, where a 4 s fault window holds fewer than
#: ``min_requests`` requests of isolated actions: the probe is `not measured` for lack of data
#: (the search then steps up, ``headroom.starved``), so the lowest rates would go unjudged. Its
#: probes are longer (an 8 s fault), 3 requests make a judged row, and a row that still lacks data
#: (no order attempted at 2 sessions/s) is a warning, not a verdict (``strict`` off): the lesson is
#: read from the checks that fail as the rate grows.
LESSON_PROBE: dict[str, Any] = {"duration": 13.0, "faults": [latency(ms=3000, start="2.5s", length="8s")],
                                "checks": {**PROBE_CHECKS, "min_requests": 3, "strict": False}}


def per_second(name: str) -> Any:
    """``name``'s behaviour arriving at a constant 1 session/s: scale is then sessions/s."""
    return load_profile(name).with_shape(Constant(duration=60, rate_per_s=1.0))


def search(peakchaos: Chaos, stack: Stack, profile: str = "double11", **kwargs: Any) -> HeadroomResult:
    args: dict[str, Any] = {
        "profile": per_second(profile),
        "faults": FAULTS,
        "duration": PROBE_S,
        "checks": PROBE_CHECKS,
        "request_timeout": "6s",
        "settle": "20s",  # the resilient outbox drains after the fault: give it time before the ledger check
        "cooldown": 0,
        "before_probe": lambda: wait_quiet(stack, 30.0),  # an overloaded naive shop drains its backlog first
    }
    args.update(kwargs)
    room = peakchaos.on(stack).headroom(**args)
    print(room.report())
    return room


def test_the_resilient_cloud_has_more_headroom_than_the_naive_one(
    peakchaos: Chaos, peakchaos_stack: Stack, naive_stack: Stack
) -> None:
    # coarse on purpose (factor 4 steps, no repeat: 2 + 3 probes): the long form repeats the boundary.
    # The top is 16, not 12: the naive shop's cliff lies between 4 and 16 and moves with the seed
    # (it failed at 8 in one of three searches and passed 12 in a `make demo`); at 16 it failed in
    # all three, with fault-window p95s of 2.2-2.5 s against the 1.5 s bound
    common = {"rates": (4, 16), "growth": 4.0, "resolution": 1.0, "repeat": 0, "budget": "45s", "max_probes": 3}
    resilient = search(peakchaos, peakchaos_stack, **common)
    naive = search(peakchaos, naive_stack, legacy_actions=NAIVE_LEGACY_ACTIONS, **common)
    # both are intervals on the same rate axis; the naive one fails where the resilient one holds
    assert naive.not_at is not None, naive.report()
    assert resilient.graceful_up_to is not None, resilient.report()
    assert naive.not_at <= resilient.graceful_up_to, (naive.summary(), resilient.summary())
    assert naive.first_failures and naive.failing_probe is not None and naive.failing_probe.result is not None
    # the gate: the resilient shop holds what the naive one does not
    resilient.assert_headroom(at_least=naive.not_at)
    with pytest.raises(HeadroomError, match="headroom below the gate"):
        naive.assert_headroom(at_least=naive.not_at)
    # the report entries, with every probe's full run, follow the schema
    document = new_document([])
    document["headroom"] = [resilient.to_dict(), naive.to_dict()]
    assert validate(document) == []
    for room in (resilient, naive):
        assert all(p.result is not None for p in room.probes)  # every probe's full result is kept
        assert room.wall_s <= 45 + 2 * PROBE_S + 20  # the budget (+ one slow probe and quiet waits)


@pytest.mark.slow
def test_long_form_intervals_with_a_repeated_boundary(peakchaos: Chaos, peakchaos_stack: Stack, naive_stack: Stack) -> None:
    common = {"rates": (1, 32), "resolution": 0.3, "repeat": 1, "budget": "4m", "max_probes": 9}
    resilient = search(peakchaos, peakchaos_stack, **common)
    naive = search(peakchaos, naive_stack, legacy_actions=NAIVE_LEGACY_ACTIONS, **common)
    assert naive.not_at is not None and resilient.graceful_up_to is not None
    assert naive.not_at <= resilient.graceful_up_to
    assert any(p.step == "repeat" for p in naive.probes)


@pytest.mark.slow
def test_the_same_seed_gives_overlapping_intervals(peakchaos: Chaos, naive_stack: Stack) -> None:
    common = {"rates": (1, 16), "resolution": 0.5, "repeat": 1, "budget": "2m", "max_probes": 6, "seed": 20181111,
              "legacy_actions": NAIVE_LEGACY_ACTIONS}
    first = search(peakchaos, naive_stack, **common)
    second = search(peakchaos, naive_stack, **common)
    assert first.overlaps(second), (first.summary(), second.summary())
    # same seed, same first probe: the same rate and the same probe seed
    assert (first.probes[0].rate, first.probes[0].seed) == (second.probes[0].rate, second.probes[0].seed)


@pytest.mark.slow
def test_the_double11_lesson_as_headroom(peakchaos: Chaos, naive_stack: Stack) -> None:
    """Tests that misjudge behaviour overstate headroom: on the naive shop, under the same faults,
    double11 shoppers' headroom is far below normal shoppers'."""
    common = {"rates": (1, 32), "resolution": 0.5, "repeat": 1, "budget": "150s", "max_probes": 7,
              "legacy_actions": NAIVE_LEGACY_ACTIONS, **LESSON_PROBE}
    normal = search(peakchaos, naive_stack, "normal", **common)
    d11 = search(peakchaos, naive_stack, "double11", **common)
    assert_the_lesson(normal, d11)


def assert_the_lesson(normal: HeadroomResult, d11: HeadroomResult) -> float:
    """normal shoppers hold a rate at which double11 shoppers already fail, and their graceful rate
    is a multiple of double11's; returns that ratio. Measured on a loaded 2-core machine: normal
    [4, 8) vs double11 [2, 2.83) sessions/s with 9 s probes (graceful rates 2x; longer probes widen
    it, since normal shoppers take longer to reach legacy)."""
    assert d11.not_at is not None and d11.graceful_up_to is not None, d11.report()
    assert normal.graceful_up_to is not None, normal.report()
    ratio = normal.graceful_up_to / d11.graceful_up_to
    print(f"headroom, normal / double11 shoppers: {ratio:.1f}x ({normal.summary()} | {d11.summary()})")
    assert normal.graceful_up_to >= d11.not_at, (normal.summary(), d11.summary())
    assert ratio >= 1.5, (normal.summary(), d11.summary())
    return ratio
