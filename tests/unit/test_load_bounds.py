"""Bounds: whatever the target does, the engine stops by itself within its limits and closes its
connections; same seed, same requests."""

from __future__ import annotations

import socket
import threading
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_peakchaos.load import run_load
from pytest_peakchaos.load.shapes import Constant
from pytest_peakchaos.profiles import Behaviour, Dist, Patience, Profile, RequestBinding
from tests.unit.test_load_target import Target


def one_action_profile(path: str, rate: float, *, stay: float = 0.8, think: float = 0.0, patience: float = 30.0,
                       retry: float = 0.0, retries: int = 0) -> Profile:
    """Shoppers who only load ``path`` (home), ``1/(1-stay)`` times on average."""
    return Profile(
        name="one",
        shape=Constant(1.0, rate),
        behaviour=Behaviour(
            transitions={"entry": {"home": 1.0}, "home": {"home": stay, "exit": round(1 - stay, 10)}},
            think_default=Dist.constant(think),
            max_actions=50,
        ),
        patience=Patience(wait=Dist.constant(patience), retry_probability=retry, max_retries=retries),
        bindings={"home": RequestBinding("GET", path)},
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    behaviour=st.sampled_from(["/ok", "/hang", "/slow/50", "refused", "/reset"]),
    duration=st.floats(0.1, 0.6),
    rate=st.floats(5, 400),
    max_requests=st.integers(1, 300),
    max_sessions=st.none() | st.integers(0, 30),
    cap=st.integers(1, 50),
)
def test_bounds_always_stop_the_engine(behaviour: str, duration: float, rate: float, max_requests: int,
                                       max_sessions: int | None, cap: int) -> None:
    timeout = 0.3
    with Target() as target:
        url = f"http://127.0.0.1:{free_port()}" if behaviour == "refused" else target.url
        profile = one_action_profile("/ok" if behaviour == "refused" else behaviour, rate)
        start = time.monotonic()
        r = run_load(url, profile, duration=duration, seed=1, max_requests=max_requests, max_sessions=max_sessions,
                     concurrency_cap=cap, request_timeout_s=timeout)
        wall = time.monotonic() - start
        assert wall <= duration + timeout + 1.5, (wall, r.stop_reason)
        assert r.requests_sent <= max_requests
        done = sum(s.count for s in r.actions.values())
        assert done <= r.requests_sent
        assert r.stop_reason
        if max_sessions is not None:
            assert r.sessions.arrived <= max_sessions
        assert r.sessions.started + r.sessions.refused_by_cap == r.sessions.arrived
        assert r.sessions.started <= r.sessions.arrived
        assert target.wait_idle(), "the engine left connections open"


def test_max_requests_is_exact() -> None:
    with Target() as target:
        r = run_load(target.url, one_action_profile("/ok", 500, stay=0.95), duration=5, seed=2, max_requests=120,
                     max_sessions=None, concurrency_cap=100, request_timeout_s=1)
        assert r.requests_sent == 120
        assert sum(s.count for s in r.actions.values()) == 120
        assert r.stop_reason.startswith("max_requests")
        assert r.elapsed_s < 2


def test_max_sessions_then_sessions_done_ends_early() -> None:
    with Target() as target:
        r = run_load(target.url, one_action_profile("/ok", 200), duration=10, seed=3, max_requests=10_000,
                     max_sessions=25, concurrency_cap=100, request_timeout_s=1)
        assert r.sessions.arrived == 25 and r.sessions.completed == 25
        assert r.elapsed_s < 2
        assert r.stop_reason == "max_sessions"


def test_stop_event_and_on_start() -> None:
    stop = threading.Event()
    seen: list[float] = []

    def on_start(t0: float) -> None:
        seen.append(t0)
        threading.Timer(0.3, stop.set).start()

    with Target() as target:
        before = time.monotonic()
        r = run_load(target.url, one_action_profile("/ok", 100, think=0.01), duration=30, seed=4, max_requests=10**6,
                     max_sessions=None, concurrency_cap=100, request_timeout_s=5, on_start=on_start, stop_event=stop)
        assert time.monotonic() - before < 3
        assert r.stop_reason.startswith("stop_event")
        assert len(seen) == 1 and before <= seen[0] <= before + 1
        assert r.t0 == seen[0]
        assert target.wait_idle()


def test_refused_only_targets_loopback() -> None:
    with pytest.raises(ValueError, match="loopback addresses only"):
        run_load("http://shop.example:80", one_action_profile("/ok", 1), duration=1, seed=1, max_requests=1,
                 max_sessions=None, concurrency_cap=1, request_timeout_s=1)


def test_same_seed_same_requests() -> None:
    """The target sees the same requests, per session and in order, for the same seed and run id, and
    they are exactly the planned sessions."""
    from pytest_peakchaos.load import plan_session
    from pytest_peakchaos.profiles import load_profile

    profile = load_profile("double11").with_(shape=Constant(1.0, 40), think_scale=0.002)
    logs = []
    for _ in range(2):
        with Target() as target:
            r = run_load(target.url, profile, duration=10, seed=99, max_requests=10_000, max_sessions=20,
                         concurrency_cap=1000, request_timeout_s=2, run_id="fixed")
            assert r.sessions.completed == 20 and r.stop_reason == "max_sessions"
            by_session: dict[str, list[tuple[str, str, str | None, bytes]]] = {}
            with target.lock:
                for method, path, key, body in target.log:
                    sid = path.split("/")[2] if path.startswith("/carts/") else "-"
                    by_session.setdefault(sid, []).append((method, path, key, body))
            logs.append({k: v for k, v in by_session.items() if k != "-"})
    assert logs[0] == logs[1]
    assert len(logs[0]) >= 15
    cart_actions = {"add_to_cart", "remove_from_cart", "view_cart", "checkout"}
    for sid, requests in logs[0].items():
        plan = plan_session(profile, 99, int(sid.rsplit("-", 1)[1]))
        planned = [s for s in plan.steps if s.action in cart_actions]
        assert len(planned) == len(requests)
        for step, (method, path, key, body) in zip(planned, requests):
            if step.action == "add_to_cart":
                assert (method, body) == ("POST", b'{"sku":%d,"qty":1}' % step.sku)
            elif step.action == "remove_from_cart":
                assert (method, path) == ("DELETE", f"/carts/{sid}/items/{step.sku}")
            elif step.action == "checkout":
                assert method == "POST" and key is not None and key.startswith(f"{sid}-")
