"""Proof that each check catches its defect: the reference shop with one defect switched on at a time.

``CLOUD_MUTANT=<name>`` (fixtures/cloud/app.py, docs/reference-shop.md "Mutants") breaks exactly one
thing in the otherwise resilient cloud. Each case starts a stack of that mutant, runs a short
experiment under a fault that exposes the defect, and asserts that the check named for it fails;
where the defect is meant to trip only that check, the resilient session shop passes the same run
(same profile, rate, seed and faults).

The default run has the two cheapest cases (one shared resilient run); the full matrix is
``@pytest.mark.slow`` (``-m slow`` or ``PEAKCHAOS_SLOW=1``). Every case also checks, in the cloud's
``/stats``, that its defect was live (the breaker disabled, carts lost, ...).

The rows (mutant, check, caught, measured) go to ``<report dir>/verdict-proof.json`` when
``--peakchaos-report`` is given, and from there into the HTML report's "verdict proof" section.
docs/checks.md ("Verdict proof") has the table and the numbers.
"""

from __future__ import annotations

import json
import os
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from pytest_peakchaos import down, latency, limit_data
from pytest_peakchaos.experiment import ExperimentResult
from pytest_peakchaos.faults import Fault
from pytest_peakchaos.load import Constant
from pytest_peakchaos.profiles import load_profile
from pytest_peakchaos.report.proof import ProofRow, write_proof
from pytest_peakchaos.stack.base import Stack
from tests.conftest import require_docker

from .conftest import COMPOSE, RunFn

pytestmark = pytest.mark.docker

#: every case: double11 shoppers at a constant rate; fault from 3 s to 9 s, then 4 s of recovery
#: (retry_storm: fault from 3 s to 15 s of 19 s)
DURATION_S = 13.0
RATE = 6.0
SEED = 20261201
#: the ledger is read until every acknowledged order is there, at most this long (the outbox drains
#: once the breaker closes again: 3 s after its last failed trial, then every 0.5 s; on a crowded
#: machine the resilient shop needed more than 12 s in several runs). Ends early once settled.
SETTLE = "20s"


def _profile(rate: float, duration: float = DURATION_S) -> Any:
    return load_profile("double11").with_shape(Constant(duration=duration, rate_per_s=rate))


@dataclass(frozen=True)
class Case:
    mutant: str
    check: str
    faults: tuple[Fault, ...]
    #: the defect trips only this check (others may fail only where the resilient shop fails too)
    only: bool = True
    slow: bool = False
    #: sessions per second of the run (its demand on legacy)
    rate: float = RATE
    #: seconds of the run (its faults must end 4 s before)
    duration: float = DURATION_S

    @property
    def param(self) -> Any:
        marks = [pytest.mark.slow] if self.slow else []
        return pytest.param(self, id=self.mutant, marks=marks)


SLOW_LINK = (latency(ms=3000, start="3s", length="6s"),)
LINK_DOWN = (down(start="3s", length="6s"),)
#: a flaky link whose answers are lost fast: legacy does the work, and then the connection is closed
#: after the first byte of its answer on 92 % of connections, and after 600 bytes (two or three
#: answers) on the rest, so the cloud's connection pool cannot settle on the good ones. Each attempt
#: fails at once (a bad status line) and a retry on another connection may get through: a storm
#: retries a call until one does, several attempts per call, and its breaker never sees a failure
#: streak. Every connection cut at once instead: the storms fail, the breaker opens after five and
#: contains the storm. (64 bytes would not do either: http.client takes headers cut short by the
#: close, without a Content-Length, as a complete 200 with an empty body.)
#: 12 s of it (a 19 s run): a breaker opened by a chance streak of failed storms stays open 3 s and
#: may re-open on a failed trial; a longer window holds more 2 s windows in which it was closed
ANSWERS_CUT = (limit_data(1, toxicity=0.92, start="3s", length="12s"), limit_data(600, start="3s", length="12s"))
SLOWISH_LINK = (latency(ms=300, start="3s", length="6s"),)  # well below the cloud's 500 ms time-out

CASES = [
    # default run: these two share one fault set, so the resilient shop runs it once
    Case("no_timeout", "fail_fast", SLOW_LINK, only=False),  # requests in flight at 3 s also hang to the client time-out
    Case("errors_500", "honest_degradation", SLOW_LINK, only=False),  # 500s last while the breaker is open after the fault
    Case("lossy_outbox", "ledger", SLOW_LINK, slow=True),
    Case("no_idempotency", "ledger", SLOW_LINK, slow=True),  # read as "missing": redelivered under other keys
    # 8 legacy slots / 0.3 s = ~26 calls/s; at 9 sessions/s product pages alone ask for more: they queue
    Case("blocking_stock", "isolation", SLOWISH_LINK, rate=9.0, only=False, slow=True),  # waiting pages hold request workers
    Case("no_breaker", "shedding", SLOW_LINK, slow=True),  # legacy keeps getting ~1 call per action it cannot answer
    Case("retry_storm", "amplification", ANSWERS_CUT, slow=True, duration=19.0),
    Case("cart_loss", "ledger", LINK_DOWN, slow=True),  # orders lack items the shopper had in the cart
]

_proof: list[ProofRow] = []
_peers: dict[tuple[Any, ...], ExperimentResult] = {}


@pytest.fixture
def mutant_stack(case: Case) -> Iterator[Stack]:
    """The reference shop with ``CLOUD_MUTANT=<case.mutant>`` (its own containers, network and
    Toxiproxy), started for one case and always stopped: one at a time, on a shared machine."""
    require_docker()
    from pytest_peakchaos.stack.compose import load_compose
    from pytest_peakchaos.stack.docker import DockerStack

    stack = DockerStack(load_compose(COMPOSE, environ={**os.environ, "CLOUD_MUTANT": case.mutant}), startup_timeout_s=240.0)
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()


def _run(experiment: RunFn, stack: Stack, case: Case) -> ExperimentResult:
    return experiment(stack, profile=_profile(case.rate, case.duration), duration=case.duration, faults=list(case.faults), seed=SEED,
                      settle=SETTLE)


def _peer(experiment: RunFn, stack: Stack, case: Case) -> ExperimentResult:
    key = (case.rate, case.duration, *(f.describe() for f in case.faults))
    if key not in _peers:
        _peers[key] = _run(experiment, stack, case)
    return _peers[key]


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 - 127.0.0.1 only
        return json.loads(resp.read())


def _calls_per_action(result: ExperimentResult) -> float:
    """Calls legacy received per legacy-bound action: in the fault phase, or over the run when the
    counter missed a phase boundary."""
    amp = result.amplification
    assert amp is not None, "no legacy call counter"
    calls, actions = amp.per_phase.get("fault", (amp.total, amp.actions))
    return calls / max(1, actions)


def _defect_was_live(case: Case, stats: dict[str, Any], mutated: ExperimentResult) -> None:
    """The cloud's own counters show the defect at work (and the numbers docs/checks.md quotes)."""
    if case.mutant == "no_breaker":
        assert stats["breaker"] == "disabled", stats
        print(f"no_breaker: {_calls_per_action(mutated):.2f} legacy calls per legacy-bound action in the fault phase")
    elif case.mutant == "cart_loss":
        print(f"cart_loss: {stats['carts_lost']} carts emptied by a failed stock check")
        assert stats["carts_lost"] > 0, stats
    elif case.mutant == "retry_storm":
        print(f"retry_storm: {_calls_per_action(mutated):.2f} legacy calls per legacy-bound action in the fault phase;"
              f" legacy calls by kind {stats['legacy_calls']}")
        assert stats["legacy_calls"]["stock"] + stats["legacy_calls"]["orders"] > 0, stats


def _failed(result: ExperimentResult, name: str) -> list[str]:
    return [f"{c.phase}: {c.measured}" for c in result.checks if c.name == name and not c.passed]


@pytest.fixture(scope="module", autouse=True)
def _write_proof(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    from pytest_peakchaos.plugin import SESSION_KEY

    pc = request.config.stash.get(SESSION_KEY, None)
    if _proof and pc is not None and pc.settings.report is not None:
        write_proof(_proof, pc.settings.report)


@pytest.mark.parametrize("case", [c.param for c in CASES])
def test_mutant_is_caught_by_its_check(case: Case, mutant_stack: Stack, peakchaos_stack: Stack, experiment: RunFn) -> None:
    mutated = _run(experiment, mutant_stack, case)
    failed = _failed(mutated, case.check)
    caught = bool(failed)
    detail = "; ".join(failed) if failed else f"not caught: {mutated.check(case.check).measured}"
    others = sorted({c.name for c in mutated.failures} - {case.check})
    if others:
        detail += f" (also failed: {', '.join(others)})"
    _proof.append((case.mutant, case.check, caught, detail))
    stats = _get_json(mutant_stack.url("cloud") + "/stats")
    assert stats["mutants"] == [case.mutant], stats
    _defect_was_live(case, stats, mutated)
    assert caught, f"{case.mutant}: {case.check} did not fail\n{mutated.summary()}"
    # the same run (profile, rate, seed, faults) on the resilient session shop, once per fault set:
    # it passes the named check, so the failure is the defect's, not the fault's
    peer = _peer(experiment, peakchaos_stack, case)
    assert not _failed(peer, case.check), f"the resilient shop fails {case.check} on the run that caught {case.mutant}\n{peer.summary()}"
    if case.only:
        # ... and the defect trips no other check: whatever else failed, failed on the resilient shop too
        extra = {c.name for c in mutated.failures} - {c.name for c in peer.failures} - {case.check}
        assert not extra, f"{case.mutant} also fails {sorted(extra)}, which the resilient shop passed\n{mutated.summary()}\n{peer.summary()}"
