"""The native engine (load/native.py, load/native/engine.c) passes the Python engine's own tests.

The engine tests below are the very functions of test_load_engine.py and test_load_bounds.py (their
parametrizations included), run again with ``PEAKCHAOS_ENGINE=native``: the same scripted target,
the same assertions. Tests of features the native engine refuses (captures, https) are not
re-run here; that it refuses them before anything starts is tested below.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import Any

import pytest

from pytest_peakchaos.load import run_load
from tests.integration import test_generator_health as H
from tests.integration import test_load_engine as E
from tests.unit import test_load_bounds as B
from tests.unit.test_load_bounds import one_action_profile
from tests.unit.test_load_target import Target


@pytest.fixture(autouse=True)
def _native(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PEAKCHAOS_ENGINE", "native")


test_errors_are_classified = E.test_errors_are_classified
test_refused_is_classified = E.test_refused_is_classified
test_http_variants_are_ok = E.test_http_variants_are_ok
test_impatience_retries_feed_back_into_load = E.test_impatience_retries_feed_back_into_load
test_abandon_without_retry = E.test_abandon_without_retry
test_acknowledged_orders_are_kept_for_reconciliation = E.test_acknowledged_orders_are_kept_for_reconciliation
test_an_impatient_checkout_retry_reuses_the_idempotency_key = E.test_an_impatient_checkout_retry_reuses_the_idempotency_key
test_stall_shows_in_percentiles_no_coordinated_omission = E.test_stall_shows_in_percentiles_no_coordinated_omission
test_workers_merge_and_keep_the_same_sessions = E.test_workers_merge_and_keep_the_same_sessions
test_after_a_run_no_session_is_counted_active = E.test_after_a_run_no_session_is_counted_active
test_bounds_always_stop_the_engine = B.test_bounds_always_stop_the_engine
test_max_requests_is_exact = B.test_max_requests_is_exact
test_max_sessions_then_sessions_done_ends_early = B.test_max_sessions_then_sessions_done_ends_early
test_stop_event_and_on_start = B.test_stop_event_and_on_start
test_refused_only_targets_loopback = B.test_refused_only_targets_loopback
test_same_seed_same_requests = B.test_same_seed_same_requests


# -- a starved native engine says so ---------------------------------------------------------------

def _stopped_run(url: str, *, starve: bool) -> Any:
    """The generator-health test's run, with the engine process stopped (SIGSTOP: what a stolen
    core does to it) for BLOCK_S at BLOCK_AT instead of a blocking call on an event loop."""
    from pytest_peakchaos.load import native

    def starve_it(t0: float) -> None:
        time.sleep(max(0.0, t0 + H.BLOCK_AT - time.monotonic()))
        pids = native.engine_pids()
        assert len(pids) == 1, pids
        os.kill(pids[0], signal.SIGSTOP)
        time.sleep(H.BLOCK_S)
        os.kill(pids[0], signal.SIGCONT)

    def on_start(t0: float) -> None:
        if starve:
            threading.Thread(target=starve_it, args=(t0,), daemon=True).start()

    prof = one_action_profile("/ok", 60, stay=0.9, think=0.02)
    return run_load(url, prof, duration=4.0, seed=5, max_requests=100_000, max_sessions=None,
                    concurrency_cap=2000, request_timeout_s=3.0, on_start=on_start)


@pytest.fixture(scope="module")
def stopped_runs() -> dict[str, Any]:
    mp = pytest.MonkeyPatch()
    mp.setenv("PEAKCHAOS_ENGINE", "native")
    try:
        with Target() as t:
            return {"blocked": _stopped_run(t.url, starve=True), "free": _stopped_run(t.url, starve=False)}
    finally:
        mp.undo()


test_a_blocked_generator_reports_its_own_delay = H.test_a_blocked_generator_reports_its_own_delay


@pytest.fixture()
def runs(stopped_runs: dict[str, Any]) -> dict[str, Any]:
    return stopped_runs


def test_the_runs_were_native(stopped_runs: dict[str, Any]) -> None:
    from pytest_peakchaos.load import native

    assert native.engine_pids() == []  # the children are gone
    # the native engine's ticker is in C: its CPU share is the child's, counted per second
    assert any(row.cpu_s > 0 for row in stopped_runs["free"].generator.timeline())


# -- what it cannot run is refused before anything starts -----------------------------------------

def test_unsupported_profiles_are_refused_before_the_run_with_the_reasons() -> None:
    from pytest_peakchaos.load.native import NativeEngineError
    from pytest_peakchaos.profiles import RequestBinding

    prof = one_action_profile("/ok", 10)
    b = dict(prof.bindings)
    b["home"] = RequestBinding.from_dict({**b["home"].to_dict(), "capture": {"oid": {"regex": "x(\\\\d+)"}}}, "test")
    with pytest.raises(NativeEngineError, match="binding 'home' captures response values.*engine=python or auto can"):
        run_load("http://127.0.0.1:9", prof.with_(bindings=b), duration=1, seed=1, max_requests=10, max_sessions=None,
                 concurrency_cap=10, request_timeout_s=1, engine="native")
    with pytest.raises(NativeEngineError, match="https://"):
        run_load("https://127.0.0.1:9", prof, duration=1, seed=1, max_requests=10, max_sessions=None,
                 concurrency_cap=10, request_timeout_s=1, engine="native")
    with pytest.raises(ValueError, match="engine: unknown engine 'rust'; valid values: python, native, auto"):
        run_load("http://127.0.0.1:9", prof, duration=1, seed=1, max_requests=10, max_sessions=None,
                 concurrency_cap=10, request_timeout_s=1, engine="rust")


def test_auto_falls_back_to_python_for_what_native_cannot_run() -> None:
    from pytest_peakchaos.profiles import RequestBinding

    prof = one_action_profile("/ok", 20, stay=0.5)
    b = dict(prof.bindings)
    b["home"] = RequestBinding.from_dict({**b["home"].to_dict(), "capture": {"v": "ok"}}, "test")
    with Target() as t:
        r = run_load(t.url, prof.with_(bindings=b), duration=1.0, seed=1, max_requests=200, max_sessions=None,
                     concurrency_cap=50, request_timeout_s=1, engine="auto")
    assert r.total.count > 0 and r.total.ok == r.total.count  # the Python engine ran it


# -- the same walk --------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["double11", "normal"])
def test_the_native_walk_is_the_planner_s_walk(name: str) -> None:
    from pytest_peakchaos.load.engine import EngineConfig
    from pytest_peakchaos.load.native import native_walks
    from pytest_peakchaos.load.plan import CompiledPlan
    from pytest_peakchaos.profiles import load_profile

    prof = load_profile(name)
    for seed in (7, 2**40 + 3):  # a one-word and a two-word Mersenne Twister key
        cfg = EngineConfig(base_url="http://127.0.0.1:9", profile=prof, duration=10, seed=seed, scale=1.0, max_requests=10,
                           max_sessions=None, concurrency_cap=10, request_timeout_s=5.0, connections=10, run_id="t")
        walks = native_walks(cfg, 400)
        cp = CompiledPlan(prof)
        steps = 0
        for i, got in enumerate(walks):
            rng, patience = cp.start(seed, i)
            want = [(-1, patience, -1, -1, -1)] + [(a, th, -1 if sku is None else sku, page, term)
                                                   for a, th, sku, page, term, _ in cp.walk(rng, None, i)]
            assert got == want, (seed, i)
            steps += len(want)
        assert len(walks) == 400 and steps > 400 * 5
