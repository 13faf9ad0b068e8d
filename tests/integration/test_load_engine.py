"""The load engine against a real HTTP target on 127.0.0.1: error classes, impatience feedback,
acknowledged orders, honest latency under a stall, worker processes, flat memory."""

from __future__ import annotations

import json
import threading
import time

import pytest

from pytest_peakchaos.load import Constant, run_load
from pytest_peakchaos.profiles import Behaviour, Dist, Patience, Profile, RequestBinding
from tests.unit.test_load_bounds import free_port, one_action_profile
from tests.unit.test_load_target import Target


def _run(url: str, profile: Profile, duration: float = 1.0, **kw: object) -> object:
    args: dict[str, object] = dict(seed=1, max_requests=100_000, max_sessions=None, concurrency_cap=500, request_timeout_s=2.0)
    args.update(kw)
    return run_load(url, profile, duration=duration, **args)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("path", "kind", "status_class"),
    [
        ("/status/503", "status_5xx", "5xx"),
        ("/status/404", "status_4xx", "4xx"),
        ("/hang", "timeout", "none"),
        ("/reset", "reset", "none"),
    ],
)
def test_errors_are_classified(path: str, kind: str, status_class: str) -> None:
    with Target() as t:
        r = run_load(t.url, one_action_profile(path, 30, stay=0.5), duration=0.5, seed=1, max_requests=1000,
                     max_sessions=None, concurrency_cap=100, request_timeout_s=0.3)
        s = r.actions["home"]
        assert s.count > 5
        assert s.errors[kind] == s.count, s.errors
        assert s.ok == 0
        assert set(s.by_class) == {status_class}
        assert s.status_classes == {status_class: s.count}
        if kind == "timeout":
            assert 290 <= s.p50_ms <= 400  # timed out at the deadline, measured from the intended send
        assert t.wait_idle()


def test_refused_is_classified() -> None:
    r = run_load(f"http://127.0.0.1:{free_port()}", one_action_profile("/ok", 30), duration=0.3, seed=1,
                 max_requests=1000, max_sessions=None, concurrency_cap=100, request_timeout_s=0.5)
    s = r.actions["home"]
    assert s.count > 3 and s.errors["refused"] == s.count


def test_http_variants_are_ok() -> None:
    with Target() as t:
        for path in ("/ok", "/close", "/chunked", "/http10", "/queued"):
            r = run_load(t.url, one_action_profile(path, 50), duration=0.4, seed=2, max_requests=1000,
                         max_sessions=None, concurrency_cap=100, request_timeout_s=1)
            s = r.actions["home"]
            assert s.count > 5 and s.ok == s.count, (path, s.errors)
            if path == "/queued":
                assert s.queued == s.count and s.status == {"202": s.count}
        assert t.wait_idle()


def test_impatience_retries_feed_back_into_load() -> None:
    """Responses slower than the shopper's patience make shoppers refresh: more requests reach the
    target than sessions planned, the slow ones still complete and are recorded as they end."""
    with Target() as t:
        prof = one_action_profile("/slow/300", 20, stay=0.0, patience=0.1, retry=1.0, retries=2)
        r = run_load(t.url, prof, duration=5.0, seed=3, max_requests=10_000, max_sessions=12,
                     concurrency_cap=500, request_timeout_s=2)
        assert r.stop_reason == "max_sessions"  # every session played out
        s = r.actions["home"]
        started = r.sessions.started
        assert started == 12
        assert r.retries_impatience == 2 * started  # every step refreshed twice...
        assert r.sessions.abandoned == started  # ...then given up
        assert s.impatient == 3 * started
        assert s.count == 3 * started and s.ok == s.count  # the slow requests all completed
        assert t.paths()["/slow/300"] == 3 * started
        assert 300 <= s.p50_ms < 500
        # a patient population sends one request per session
        r2 = run_load(t.url, one_action_profile("/slow/300", 20, stay=0.0, patience=5.0, retry=1.0, retries=2),
                      duration=1.0, seed=3, max_requests=10_000, max_sessions=None, concurrency_cap=500, request_timeout_s=2)
        assert r2.retries_impatience == 0 and r2.actions["home"].count == r2.sessions.started


def test_abandon_without_retry() -> None:
    with Target() as t:
        prof = one_action_profile("/slow/200", 20, stay=0.9, patience=0.05, retry=0.0)
        r = run_load(t.url, prof, duration=0.5, seed=4, max_requests=10_000, max_sessions=None,
                     concurrency_cap=500, request_timeout_s=2)
        assert r.sessions.abandoned == r.sessions.started > 3
        assert r.retries_impatience == 0


def _checkout_profile(rate: float, path: str = "/order") -> Profile:
    return Profile(
        name="buyers",
        shape=Constant(1.0, rate),
        behaviour=Behaviour(
            transitions={"entry": {"add_to_cart": 1.0}, "add_to_cart": {"checkout": 1.0}, "checkout": {"exit": 1.0}},
            think_default=Dist.constant(0.0),
        ),
        patience=Patience(wait=Dist.constant(0.05), retry_probability=1.0, max_retries=1),
        bindings={
            "add_to_cart": RequestBinding("POST", "/ok/{cart_id}", json={"sku": "{sku}", "qty": "{qty}"}),
            "checkout": RequestBinding("POST", path, idempotency_key="Idempotency-Key", order_id="order_id",
                                       acknowledge=(201, 202)),
        },
        legacy_actions=frozenset({"add_to_cart", "checkout"}),
    )


def test_acknowledged_orders_are_kept_for_reconciliation() -> None:
    with Target() as t:
        r = run_load(t.url, _checkout_profile(40), duration=0.5, seed=5, max_requests=10_000, max_sessions=None,
                     concurrency_cap=500, request_timeout_s=2, run_id="rec")
        keys = [o.idempotency_key for o in r.orders]
        assert len(keys) == r.actions["checkout"].count == r.sessions.started > 5
        assert len(set(keys)) == len(keys)
        assert all(k.startswith("pc-rec-") for k in keys)
        assert {o.status for o in r.orders} == {201}
        assert sorted(t.orders) == sorted(keys)  # the target saw exactly these keys
        assert all(o.order_id == str(t.orders[o.idempotency_key]) for o in r.orders)
        assert r.legacy_calls_per_session == pytest.approx(2.0)
        d = json.loads(json.dumps(r.to_dict()))
        assert len(d["orders"]) == len(keys)


def test_an_impatient_checkout_retry_reuses_the_idempotency_key() -> None:
    with Target() as t:
        r = run_load(t.url, _checkout_profile(20, "/slow/120"), duration=5, seed=6, max_requests=10_000,
                     max_sessions=8, concurrency_cap=500, request_timeout_s=2)
        assert r.stop_reason == "max_sessions"
        with t.lock:
            keys = [k for m, p, k, _ in t.log if p == "/slow/120"]
        assert r.retries_impatience == r.sessions.started > 3
        assert len(keys) == 2 * len(set(keys))  # every key sent twice: the original and the refresh


def test_stall_shows_in_percentiles_no_coordinated_omission() -> None:
    """The target stops answering for 1 s. Requests intended during the stall are measured from
    their intended send time, so the stall appears in the per-second percentiles and the max."""
    with Target() as t:
        prof = one_action_profile("/ok", 100, stay=0.9, think=0.02).with_(shape=Constant(3.0, 100))

        def stall(t0: float) -> None:
            def run() -> None:
                time.sleep(max(0.0, t0 + 1.0 - time.monotonic()))
                t.paused = True
                time.sleep(1.0)
                t.paused = False

            threading.Thread(target=run, daemon=True).start()

        r = run_load(t.url, prof, duration=3.0, seed=7, max_requests=100_000, max_sessions=None,
                     concurrency_cap=2000, request_timeout_s=3, on_start=stall)
        s = r.actions["home"]
        assert s.errors["timeout"] == 0
        assert 900 <= s.max_ms <= 1300
        line = r.timeline("home")
        # before the stall: fast (p50, not p99: requests sent in second 0's last milliseconds are
        # caught by the stall and counted in second 0, from their intended send time)
        assert line[0].p50_ms < 100
        assert line[1].p50_ms > 300  # during the stall: half a second on average
        assert line[1].max_ms > 850
        assert s.p99_ms > 500


def test_workers_merge_and_keep_the_same_sessions() -> None:
    with Target() as t:
        prof = one_action_profile("/ok", 200, stay=0.5).with_(shape=Constant(1.0, 200))
        one = run_load(t.url, prof, duration=5.0, seed=8, max_requests=100_000, max_sessions=150,
                       concurrency_cap=1000, request_timeout_s=2)
        two = run_load(t.url, prof, duration=5.0, seed=8, max_requests=100_000, max_sessions=150,
                       concurrency_cap=1000, request_timeout_s=2, workers=2)
        assert one.sessions.completed == two.sessions.completed == 150
        assert two.workers == 2
        assert two.sessions.arrived == one.sessions.arrived  # the same seeded arrival stream
        assert two.actions["home"].count == one.actions["home"].count  # the same planned sessions
        assert two.actions["home"].latency.get_total_count() == two.actions["home"].count
        assert sum(s.count for s in two.series["home"].values()) == two.actions["home"].count
        assert t.wait_idle()


def test_memory_is_flat_in_the_number_of_requests() -> None:
    """The result's size depends on run seconds and latency spread, not on how many requests ran."""
    with Target() as t:
        sizes = []
        counts = []
        for rate in (20, 400):
            prof = one_action_profile("/ok", rate, stay=0.9)
            r = run_load(t.url, prof, duration=1.0, seed=9, max_requests=1_000_000, max_sessions=None,
                         concurrency_cap=5000, request_timeout_s=2)
            counts.append(r.actions["home"].count)
            sizes.append(len(json.dumps(r.to_dict())))
        assert counts[1] > 10 * counts[0]
        assert sizes[1] < 3 * sizes[0], (sizes, counts)


def test_not_loopback_needs_opt_in() -> None:
    with pytest.raises(ValueError, match="loopback"):
        _run("http://shop.example:80", one_action_profile("/ok", 1))


def test_capture_reads_session_variables_from_responses() -> None:
    prof = Profile(
        name="capture",
        shape=Constant(1.0, 20),
        behaviour=Behaviour(transitions={"entry": {"home": 1.0}, "home": {"view_cart": 1.0}, "view_cart": {"exit": 1.0}},
                            think_default=Dist.constant(0.0)),
        bindings={
            "home": RequestBinding("GET", "/order", capture=(("order", "order_id"),), headers=(("Idempotency-Key", "{cart_id}"),)),
            "view_cart": RequestBinding("GET", "/ok/{order}"),
        },
    )
    with Target() as t:
        r = run_load(t.url, prof, duration=5, seed=10, max_requests=1000, max_sessions=5, concurrency_cap=50,
                     request_timeout_s=2)
        assert r.sessions.completed == 5
        with t.lock:
            seen = sorted(p for _, p, _, _ in t.log if p.startswith("/ok/"))
        assert seen == sorted(f"/ok/{n}" for n in t.orders.values())


def test_after_a_run_no_session_is_counted_active() -> None:
    # the run stops at max_requests while most shoppers are thinking (0.3 s, well inside the 5 s)
    totals: list[object] = []
    with Target() as t:
        r = run_load(t.url, one_action_profile("/ok", 100, stay=0.98, think=0.3), duration=5.0, seed=1, max_requests=60,
                     max_sessions=None, concurrency_cap=100, request_timeout_s=0.5, on_live=totals.append)
    assert r.stop_reason.startswith("max_requests")
    s = r.sessions
    assert s.truncated > 5 and s.truncated == s.started - s.completed - s.abandoned
    live = totals[0]
    assert callable(live)
    assert live()[2] == 0  # (completed, ok, active): the stopped run holds no active session
