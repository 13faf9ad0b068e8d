"""Property-based chaos against the live reference shop (DESIGN part 7, issue #5).

The property: *whatever faults hit the legacy link during a short burst of sale-day shoppers, the
shop degrades gracefully* -- cloud-only actions stay available (answers within a second), legacy-
bound actions fail fast, failures are explicit (no 500s, resets or time-outs), and every
acknowledged order ends up in legacy's ledger exactly once. hypothesis generates the fault
schedules (``pytest_peakchaos.strategies``), each example is one burst run by
:class:`pytest_peakchaos.experiment.Experiment`, and a failure is shrunk to the smallest schedule
that still breaks the shop.

* against ``CLOUD_MODE=naive`` the property fails, and hypothesis shrinks the failure to a single
  fault in the shortest window at the start of the run;
* against the resilient shop (the session stack) it holds for the bounded budget;
* the long search (``-m slow`` or ``PEAKCHAOS_LONG_SEARCH=1``) adds every fault kind, traffic
  scales and more examples.

Budget (2-core machine): one burst is ~3 s of load plus settling, so ~3-5 s; the naive test runs
~10-15 bursts (search + shrink), the resilient one ``max_examples`` (5). See docs/property-chaos.md.
"""

from __future__ import annotations

import dataclasses
import json
import time
import urllib.error
import urllib.request
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis.strategies import SearchStrategy

# pytest_peakchaos.load first: it imports the profile modules in an order that always works
from pytest_peakchaos.load import Constant, load_profile
from pytest_peakchaos.experiment import Experiment, ExperimentResult
from pytest_peakchaos.faults import FaultSchedule, ToxicFault
from pytest_peakchaos.link import Link
from pytest_peakchaos.profiles.model import Profile
from pytest_peakchaos.stack.base import Stack
from pytest_peakchaos.strategies import FaultBounds, fault_kind, fault_schedules, scales, seeds

pytestmark = pytest.mark.docker

#: length of one burst (the fault schedule's run)
BURST_S = 3.0
#: shopper sessions arriving per second during a burst (double11 behaviour, compressed think times)
BURST_RATE = 8.0
#: the fault space of the bounded searches. Latency starts well past the resilient cloud's 500 ms
#: legacy timeout and the 1 s patience below, so whether a latency fault breaks a shop depends on
#: the shop and the window, not on a noisy threshold. (Toxiproxy releases delayed data when a
#: latency toxic is removed: a window delays an answer by at most its own length, so on the naive
#: shop a 1 s latency window at the start of a burst stays just under the 1 s patience.)
BURST_KINDS = ("latency", "down")
BURST_STEP_S = 0.5  # fault_schedules' default window step
BURST_MIN_LENGTH_S = 1.0  # ... and its default shortest window
BURST_BOUNDS = FaultBounds(latency_ms=(1500, 3000))
#: the graceful-degradation policy for short bursts (see pytest_peakchaos.checks.Policy)
BURST_CHECKS: dict[str, Any] = {
    "patience_s": 1.0,  # a cloud-only answer slower than 1 s counts as unavailable (isolation)
    "min_requests": 5,  # a 1 s fault window holds a handful of requests per action
    "fail_fast_p99_ms": 2500.0,  # resilient checkout: 3 attempts x 500 ms timeout + backoff
    "amplification": False,  # in 3 s the stock refresher's calls would dominate the ratio
    "shedding": False,  # a burst's 1-3 s fault windows are hardly longer than shedding's 1 s grace
    # a 3 s burst has no room for a 3 s baseline or recovery phase: those rows are "not measured";
    # here they warn instead of failing (the checks that can see the burst still judge it)
    "strict": False,
}
BURST_REQUEST_TIMEOUT = "3s"
BURST_SETTLE = "12s"  # queued orders drain once the breaker closes (3 s) -- then the ledger is read

LIVE = settings.get_profile("peakchaos-chaos")
LONG = settings.get_profile("peakchaos-chaos-long")


def burst_profile() -> Profile:
    return load_profile("double11").with_(shape=Constant(duration=BURST_S, rate_per_s=BURST_RATE), think_scale=0.02)


def burst_schedules(max_faults: int = 2) -> SearchStrategy[FaultSchedule]:
    """The bounded fault space: up to ``max_faults`` latency / down faults in a 3 s burst."""
    return fault_schedules(BURST_S, max_faults=max_faults, kinds=BURST_KINDS, bounds=BURST_BOUNDS)


def _get_json(url: str, timeout: float = 3.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - 127.0.0.1 only
        return json.loads(resp.read())


class Bursts:
    """Runs one short experiment per (schedule, seed, scale) on a stack and remembers its verdict.

    hypothesis calls the property again for the same values while shrinking and for the final
    report; a live shop is not perfectly repeatable, so the first verdict is kept: hypothesis sees
    one answer per example (no "flaky" surprises) and no burst is run twice.
    """

    def __init__(self, stack: Stack, label: str) -> None:
        self.stack = stack
        self.label = label
        self.link: Link = stack.link()
        self.cloud = stack.url("cloud")
        self.profile = burst_profile()
        self.verdicts: dict[str, str | None] = {}
        self.calls = 0
        self.wall_s = 0.0
        self.results: list[ExperimentResult] = []
        self.history: list[str] = []  # one line per burst, in the order hypothesis asked for them
        self.last: tuple[FaultSchedule, int, float] | None = None

    @property
    def runs(self) -> int:
        return len(self.verdicts)

    @staticmethod
    def _key(schedule: FaultSchedule, seed: int, scale: float) -> str:
        return json.dumps([schedule.to_dict(), seed, scale], sort_keys=True)

    def tried(self, schedule: FaultSchedule, seed: int, scale: float = 1.0) -> bool:
        return self._key(schedule, seed, scale) in self.verdicts

    def verdict(self, schedule: FaultSchedule, seed: int, scale: float = 1.0) -> str | None:
        """The burst's failure text, or None when the shop degraded gracefully."""
        return self.verdicts[self._key(schedule, seed, scale)]

    def check(self, schedule: FaultSchedule, seed: int, scale: float = 1.0) -> None:
        """The property: the shop degrades gracefully under ``schedule``; AssertionError if not."""
        self.calls += 1
        self.last = (schedule, seed, scale)
        key = self._key(schedule, seed, scale)
        if key not in self.verdicts:
            self.verdicts[key] = self._burst(schedule, seed, scale)
        verdict = self.verdicts[key]
        if verdict is not None:
            raise AssertionError(verdict)

    def _quiet(self) -> None:
        """Faults off and the cloud idle (a naive cloud may still hold requests of the last burst)."""
        self.link.reset()
        for _ in range(60):  # bounded: 15 s
            try:
                if int(_get_json(self.cloud + "/stats").get("in_flight", 0)) == 0:
                    return
            except (OSError, ValueError, urllib.error.URLError):
                pass
            time.sleep(0.25)

    def _burst(self, schedule: FaultSchedule, seed: int, scale: float) -> str | None:
        self._quiet()
        t0 = time.monotonic()
        result = Experiment(self.stack, name=f"{self.label} burst").run(
            profile=self.profile,
            duration=schedule.duration_s,
            faults=schedule.faults,
            seed=seed,
            scale=scale,
            checks=BURST_CHECKS,
            request_timeout=BURST_REQUEST_TIMEOUT,
            settle=BURST_SETTLE,
            max_requests=20_000,
            concurrency_cap=200,
        )
        self.link.reset()
        self.wall_s += time.monotonic() - t0
        self.results.append(result)
        failed = sorted({f"{c.name}/{c.phase}" for c in result.failures})
        self.history.append(
            f"  {schedule.describe()}  seed={seed} scale={scale:g}: {result.requests} requests, "
            + ("graceful" if result.passed else "NOT graceful (" + ", ".join(failed) + ")")
        )
        if result.passed:
            return None
        return "\n".join(
            [
                f"the {self.label} shop did not degrade gracefully under: {schedule.describe()}  (seed={seed}, scale={scale:g})",
                f"schedule: FaultSchedule.from_dict({json.dumps(schedule.to_dict())})",
                "",
                result.failure_message() or "",
            ]
        )

    def summary(self) -> str:
        head = (
            f"{self.label}: {self.calls} property calls, {self.runs} bursts run in {self.wall_s:.0f}s "
            f"({sum(r.requests for r in self.results)} requests)"
        )
        return "\n".join([head, *self.history])


def failure_report(exc: BaseException) -> str:
    """What pytest shows for a hypothesis failure: the exception and hypothesis' notes."""
    return "\n".join([f"{type(exc).__name__}: {exc}", *getattr(exc, "__notes__", [])])


# --------------------------------------------------------------------------- naive: fails, shrinks


def test_naive_shop_fails_and_hypothesis_shrinks_it_to_a_single_fault(naive_stack: Stack) -> None:
    bursts = Bursts(naive_stack, "naive")

    @settings(LIVE, max_examples=6)  # the search stops at the first failure, then shrinks it
    @given(schedule=burst_schedules(), seed=seeds())
    def shop_degrades_gracefully(schedule: FaultSchedule, seed: int) -> None:
        bursts.check(schedule, seed)

    t0 = time.monotonic()
    with pytest.raises(AssertionError) as info:
        shop_degrades_gracefully()
    report = failure_report(info.value)
    print(f"\n{bursts.summary()}; search + shrink took {time.monotonic() - t0:.0f}s\n{report}")

    assert bursts.last is not None
    schedule, seed, _ = bursts.last  # the last call is hypothesis replaying the shrunk example
    assert len(schedule) == 1, f"not shrunk to one fault: {schedule.describe()}"
    (fault,) = schedule.faults
    assert fault_kind(fault) in BURST_KINDS
    if isinstance(fault, ToxicFault):  # the gentlest latency in the space, on the default stream
        assert fault.attributes == {"latency": BURST_BOUNDS.latency_ms[0], "jitter": 0}
        assert fault.direction == "downstream"
    assert fault.start == 0.0, "the window starts at the start of the burst"
    # Shrunk in length: the shortest window, or the next-shorter window (same fault, same seed) was
    # run and the shop coped -- a short latency window at the start can be graceful (Toxiproxy
    # releases delayed data when the toxic goes), so the minimal failing length is the system's.
    assert fault.length is not None
    if fault.length > BURST_MIN_LENGTH_S:
        shorter = FaultSchedule([dataclasses.replace(fault, length=fault.length - BURST_STEP_S)], schedule.duration_s)
        assert bursts.tried(shorter, seed) and bursts.verdict(shorter, seed) is None, (
            f"not shrunk in length: {schedule.describe()}; one step shorter was "
            + ("never tried" if not bursts.tried(shorter, seed) else "not graceful either")
        )
    # the failure names the shrunk schedule and the seed, and says which check broke
    assert f"under: {schedule.describe()}  (seed={seed}" in report
    assert "FaultSchedule.from_dict(" in report
    assert "Failing test case" in report or "Falsifying example" in report  # hypothesis' own line
    assert "graceful degradation failed" in report
    assert bursts.runs <= 25, bursts.summary()


# --------------------------------------------------------------------------- resilient: holds


def test_resilient_shop_degrades_gracefully_under_generated_schedules(peakchaos_stack: Stack, legacy_link: Link) -> None:
    bursts = Bursts(peakchaos_stack, "resilient")

    @LIVE
    @given(schedule=burst_schedules(), seed=seeds())
    def shop_degrades_gracefully(schedule: FaultSchedule, seed: int) -> None:
        bursts.check(schedule, seed)

    shop_degrades_gracefully()
    print(f"\n{bursts.summary()}")
    assert bursts.runs >= 1


@pytest.mark.slow
def test_long_search_resilient_shop_every_fault_kind(peakchaos_stack: Stack, legacy_link: Link) -> None:
    """The long search: every fault kind, overlapping windows, traffic scales, 40 examples."""
    bursts = Bursts(peakchaos_stack, "resilient")
    kinds = ("latency", "down", "timeout", "reset_peer", "slow_close", "bandwidth", "slicer", "limit_data", "cpu", "pause")

    @LONG
    @given(
        schedule=fault_schedules(BURST_S, max_faults=3, kinds=kinds, bounds=BURST_BOUNDS),
        seed=seeds(),
        scale=scales(0.5, 2.0),
    )
    def shop_degrades_gracefully(schedule: FaultSchedule, seed: int, scale: float) -> None:
        bursts.check(schedule, seed, scale)

    shop_degrades_gracefully()
    print(f"\n{bursts.summary()}")
