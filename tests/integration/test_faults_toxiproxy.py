"""The fault layer against a real toxiproxy-server and a real upstream HTTP server (127.0.0.1)."""

from __future__ import annotations

import statistics
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from pytest_peakchaos.faults import (
    Fault,
    FaultSchedule,
    bandwidth,
    cpu,
    down,
    latency,
    limit_data,
    pause,
    reset_peer,
    slicer,
    slow_close,
    timeout,
)
from pytest_peakchaos.link import Link, RevertError, ScheduleError
from pytest_peakchaos.toxiproxy import (
    ToxiproxyClient,
    ToxiproxyConflict,
    ToxiproxyError,
    ToxiproxyNotFound,
    ToxiproxyTimeout,
)

from .toxiproxy_local import (
    LOOPBACK,
    LocalToxiproxy,
    RawResponse,
    Upstream,
    blackhole_server,
    http_upstream,
    local_toxiproxy,
    raw_get,
)

BIG = 40_000  # bytes


@pytest.fixture(scope="module")
def toxiproxy() -> Iterator[LocalToxiproxy]:
    with local_toxiproxy() as server:
        yield server


@pytest.fixture(scope="module")
def upstream() -> Iterator[Upstream]:
    with http_upstream() as server:
        yield server


@pytest.fixture
def client(toxiproxy: LocalToxiproxy) -> ToxiproxyClient:
    return toxiproxy.client


@pytest.fixture
def link(client: ToxiproxyClient, upstream: Upstream) -> Iterator[Link]:
    name = f"legacy-{uuid.uuid4().hex[:8]}"
    proxy = client.create_proxy(name, f"{LOOPBACK}:0", upstream.address)
    the_link = Link("legacy", proxy, client, None, f"http://{proxy.listen}", revert_timeout_s=1.0)
    try:
        yield the_link
    finally:
        try:
            the_link.close(timeout=10)
        finally:
            client.delete_proxy(name, missing_ok=True)


def port_of(link: Link) -> int:
    return link.proxy.listen_port


def median_elapsed(link: Link, path: str = "/ok", n: int = 5) -> float:
    times = []
    for _ in range(n):
        response = raw_get(port_of(link), path)
        assert response.ok, response
        times.append(response.elapsed_s)
    return statistics.median(times)


def assert_clean(link: Link, baseline_s: float) -> None:
    """No toxics left, proxy enabled, requests as fast as before."""
    assert link.proxy.toxics() == []
    assert link.client.proxy(link.proxy.name).enabled
    assert median_elapsed(link, n=3) < baseline_s + 0.05
    assert link.active == []


# --------------------------------------------------------------------------- client


def test_client_api(client: ToxiproxyClient, upstream: Upstream) -> None:
    assert client.version()
    name = f"api-{uuid.uuid4().hex[:8]}"
    proxy = client.create_proxy(name, f"{LOOPBACK}:0", upstream.address)
    try:
        assert proxy.listen_port > 0 and proxy.listen_host == LOOPBACK
        assert name in client.proxies()
        assert client.proxy(name).listen == proxy.listen
        with pytest.raises(ToxiproxyConflict, match="already exists"):
            client.create_proxy(name, f"{LOOPBACK}:0", upstream.address)
        again = client.populate(name, proxy.listen, upstream.address)  # idempotent
        assert again.listen == proxy.listen
        assert proxy.add_toxic("latency", attributes={"latency": 10}) == "latency_downstream"
        assert proxy.add_toxic("latency", "upstream", {"latency": 5}, 0.5, name="mine") == "mine"
        infos = {t.name: t for t in proxy.toxics()}
        assert infos["mine"].stream == "upstream" and infos["mine"].toxicity == 0.5
        assert infos["mine"].attributes["latency"] == 5
        assert proxy.remove_toxic("mine", timeout_s=2.0) is True
        assert proxy.remove_toxic("mine", timeout_s=2.0) is False
        with pytest.raises(ToxiproxyNotFound):
            proxy.remove_toxic("mine", missing_ok=False)
        with pytest.raises(ToxiproxyError, match="invalid"):
            proxy.add_toxic("no_such_toxic")
        proxy.set_enabled(False)
        assert not client.proxy(name).enabled
        client.reset()
        assert client.proxy(name).enabled and proxy.toxics() == []
        proxy.add_toxic("latency", attributes={"latency": 10})
        proxy.recreate(timeout_s=2.0)
        assert proxy.toxics() == [] and client.proxy(name).listen == proxy.listen
        assert raw_get(proxy.listen_port).ok
        proxy.add_toxic("latency", attributes={"latency": 10})
        assert proxy.reset_toxics() == ["latency_downstream"]
    finally:
        assert client.delete_proxy(name) is True
    assert client.delete_proxy(name, missing_ok=True) is False
    with pytest.raises(ToxiproxyNotFound):
        client.proxy(name)


def test_client_times_out_and_reports_unreachable() -> None:
    with blackhole_server() as url:
        slow = ToxiproxyClient(url, timeout=0.3)
        started = time.monotonic()
        with pytest.raises(ToxiproxyTimeout, match=r"GET http://127\.0\.0\.1:\d+/version: no answer within 0\.3s"):
            slow.version()
        assert time.monotonic() - started < 2.0
        with pytest.raises(ToxiproxyError, match="not ready after 0.5s"):
            slow.wait_ready(0.5)
    with pytest.raises(ValueError, match="api_url must look like"):
        ToxiproxyClient("ftp://127.0.0.1:1")


def test_client_instances_do_not_share_the_address(toxiproxy: LocalToxiproxy) -> None:
    """toxiproxy-python keeps host/port in class attributes; ours must not leak between clients."""
    from toxiproxy.api import APIConsumer

    before = (APIConsumer.host, APIConsumer.port)
    with blackhole_server() as url:
        other = ToxiproxyClient(url, timeout=0.2)
        with pytest.raises(ToxiproxyTimeout):
            other.version()
        assert toxiproxy.client.version()  # still talks to its own server
    assert (APIConsumer.host, APIConsumer.port) == before


# --------------------------------------------------------------------------- latency, for real


def test_latency_300ms_downstream_is_added_and_reverted(link: Link, record_property: Any) -> None:
    baseline = median_elapsed(link)
    with link.apply(latency(300)) as applied:
        assert [t.name for t in link.proxy.toxics()] == applied.toxic_names
        faulty = median_elapsed(link, n=3)
    added = faulty - baseline
    record_property("latency_added_ms", round(added * 1000, 1))
    print(f"\nlatency 300ms: baseline {baseline * 1000:.1f}ms, with toxic {faulty * 1000:.1f}ms, added {added * 1000:.1f}ms")
    assert 0.255 <= added <= 0.345, f"added {added * 1000:.0f}ms, expected 300ms ± 15%"
    assert applied.reverted and applied.via == "delete"
    assert_clean(link, baseline)
    actions = [(e.action, e.fault, e.via) for e in link.events]
    assert actions[0][:2] == ("apply", "latency 300ms downstream")
    assert actions[1] == ("revert", "latency 300ms downstream", "delete")


def test_direction_both_puts_one_toxic_per_stream(link: Link) -> None:
    baseline = median_elapsed(link)
    with link.apply(latency(150, direction="upstream")):
        upstream_only = median_elapsed(link, n=3) - baseline
    with link.apply(latency(150, direction="both")) as applied:
        streams = sorted(t.stream for t in link.proxy.toxics())
        both = median_elapsed(link, n=3) - baseline
    assert streams == ["downstream", "upstream"]
    assert len(applied.toxic_names) == 2
    assert 0.1275 <= upstream_only <= 0.1725, upstream_only
    assert 0.255 <= both <= 0.345, both
    assert_clean(link, baseline)


# --------------------------------------------------------------------------- every toxic


def _slow_body(r: RawResponse, baseline: float) -> None:
    assert r.ok and r.body == Upstream.expected_body(BIG)
    assert r.elapsed_s >= 0.25, r  # 40 KB at 100 KB/s is ~0.4 s


def _held(r: RawResponse, baseline: float) -> None:
    assert r.error == "timeout" and r.received == 0, r


def _closed_after_300ms(r: RawResponse, baseline: float) -> None:
    assert r.error is None and r.received == 0 and 0.25 <= r.elapsed_s < 1.5, r


def _reset(r: RawResponse, baseline: float) -> None:
    assert r.error == "reset" and r.status is None, r


def _truncated(r: RawResponse, baseline: float) -> None:
    assert r.received == 100 and r.status == 200 and len(r.body) < BIG, r


def _sliced_but_whole(r: RawResponse, baseline: float) -> None:
    assert r.ok and r.body == Upstream.expected_body(BIG), r


def _late_close(r: RawResponse, baseline: float) -> None:
    assert r.ok and r.body == b"ok\n", r
    assert r.first_byte_s is not None and r.first_byte_s < 0.2, r
    assert r.elapsed_s >= 0.35, r


def _refused(r: RawResponse, baseline: float) -> None:
    assert r.error == "refused", r


TOXIC_CASES: list[tuple[Fault, str, float, Callable[[RawResponse, float], None]]] = [
    (bandwidth(100), f"/bytes/{BIG}", 5.0, _slow_body),
    # upstream: the request never reaches legacy (on downstream, legacy closing its side after
    # answering would end the connection at once -- the toxic passes EOF on)
    (timeout(0, direction="upstream"), "/ok", 0.6, _held),
    (timeout(300, direction="upstream"), "/ok", 3.0, _closed_after_300ms),
    (reset_peer(), "/ok", 3.0, _reset),
    (limit_data(100), f"/bytes/{BIG}", 3.0, _truncated),
    (slicer(64, 16, 20), f"/bytes/{BIG}", 5.0, _sliced_but_whole),
    (slow_close(400), "/ok", 3.0, _late_close),
    (down(), "/ok", 3.0, _refused),
]


@pytest.mark.parametrize(
    ("fault", "path", "probe_timeout", "check"), TOXIC_CASES, ids=[c[0].describe() for c in TOXIC_CASES]
)
def test_each_fault_takes_effect_and_is_reverted(
    link: Link, fault: Fault, path: str, probe_timeout: float, check: Callable[[RawResponse, float], None]
) -> None:
    baseline = median_elapsed(link)
    before = raw_get(port_of(link), path)
    assert before.ok
    with link.apply(fault):
        check(raw_get(port_of(link), path, timeout_s=probe_timeout), baseline)
    after = raw_get(port_of(link), path)
    assert after.ok and after.body == before.body
    assert after.elapsed_s < before.elapsed_s + 0.1
    assert_clean(link, baseline)


# --------------------------------------------------------------------------- every exit path


def test_reverted_when_the_block_raises(link: Link) -> None:
    baseline = median_elapsed(link)
    with pytest.raises(RuntimeError, match="boom"):
        with link.apply(latency(200)):
            raise RuntimeError("boom")
    assert_clean(link, baseline)
    with pytest.raises(KeyboardInterrupt):
        with link.apply(latency(200, direction="both")):
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        with link.apply(down()):
            raise KeyboardInterrupt
    assert_clean(link, baseline)
    assert [e.action for e in link.events] == ["apply", "revert"] * 3


def test_interrupt_during_revert_still_reverts(link: Link, monkeypatch: pytest.MonkeyPatch) -> None:
    baseline = median_elapsed(link)
    real = link.proxy.remove_toxic
    calls = {"n": 0}

    def interrupted_once(name: str, timeout_s: float | None = None, *, missing_ok: bool = True) -> bool:
        calls["n"] += 1
        if calls["n"] == 1:
            raise KeyboardInterrupt  # Ctrl-C lands while the revert runs
        return real(name, timeout_s, missing_ok=missing_ok)

    monkeypatch.setattr(link.proxy, "remove_toxic", interrupted_once)
    with pytest.raises(KeyboardInterrupt):
        with link.apply(latency(100)):
            pass
    monkeypatch.undo()
    assert_clean(link, baseline)


def test_inject_several_and_nested_downs(link: Link) -> None:
    baseline = median_elapsed(link)
    with link.inject(latency(100), limit_data(10_000), bandwidth(1000)) as applied:
        assert len(link.proxy.toxics()) == 3 and len(applied) == 3
        with link.apply(down()):
            with link.apply(down()):
                assert raw_get(port_of(link)).error == "refused"
            assert raw_get(port_of(link)).error == "refused"  # the outer down still holds
        assert raw_get(port_of(link)).ok
    assert_clean(link, baseline)
    with pytest.raises(ValueError, match="has no capacity target"):
        with link.inject(latency(100), cpu(0.5)):
            pass  # pragma: no cover
    assert_clean(link, baseline)


def test_capacity_faults_need_a_capacity_target(link: Link) -> None:
    with pytest.raises(ValueError, match=r"link 'legacy' has no capacity target, so 'cpu 0\.1 CPU' cannot be applied"):
        with link.apply(cpu(0.1)):
            pass  # pragma: no cover
    with pytest.raises(ValueError, match="has no capacity target.*pause"):
        link.run_schedule(FaultSchedule([latency(1), pause(start=1)], duration_s=2))
    assert link.proxy.toxics() == [] and link.events == []


def test_link_reset_removes_everything(link: Link) -> None:
    baseline = median_elapsed(link)
    a = link.activate(latency(100))
    b = link.activate(down())
    link.proxy.add_toxic("slow_close", attributes={"delay": 10}, name="foreign")  # not ours: removed too
    assert link.reset() == "delete"
    assert a.reverted and b.reverted and a.via == "reset"
    assert a.revert() == "reset"  # no-op now
    assert_clean(link, baseline)
    assert link.events[-1][:3] == (link.events[-1].t, "reset", "all faults")


# --------------------------------------------------------------------------- schedules


def _observe(link: Link, until: float, t0: float) -> list[tuple[float, int, bool]]:
    """Poll the server every 20 ms: (t since t0, number of toxics, enabled)."""
    seen = []
    while time.monotonic() < until:
        state = link.client.proxy(link.proxy.name)
        seen.append((time.monotonic() - t0, len(link.proxy.toxics()), state.enabled))
        time.sleep(0.02)
    return seen


def _first(seen: list[tuple[float, int, bool]], pred: Callable[[tuple[float, int, bool]], bool], after: float = 0) -> float:
    return next(t for t, n, e in seen if t >= after and pred((t, n, e)))


def test_schedule_applies_and_reverts_at_the_right_offsets(link: Link) -> None:
    schedule = FaultSchedule(
        [latency(200, start=0.3, length=0.5), down(start=1.0, length=0.3)], duration_s=1.5
    )
    t0 = time.monotonic()
    runner = link.run_schedule(schedule, t0)
    seen = _observe(link, t0 + 1.6, t0)
    runner.join(5)
    link.join()
    assert not runner.running
    tol = 0.15
    events = [(e.action, e.fault, e.t) for e in link.events]
    expected = [
        ("apply", "latency 200ms downstream 300ms→800ms", 0.3),
        ("revert", "latency 200ms downstream 300ms→800ms", 0.8),
        ("apply", "down 1s→1.3s", 1.0),
        ("revert", "down 1s→1.3s", 1.3),
    ]
    assert [e[:2] for e in events] == [e[:2] for e in expected]
    for (_, _, got), (_, _, want) in zip(events, expected):
        assert abs(got - want) <= tol, (events, expected)
    # what the server really showed, polled from outside
    assert abs(_first(seen, lambda s: s[1] == 1) - 0.3) <= tol
    assert abs(_first(seen, lambda s: s[1] == 0, after=0.4) - 0.8) <= tol
    assert abs(_first(seen, lambda s: not s[2]) - 1.0) <= tol
    assert abs(_first(seen, lambda s: s[2], after=1.05) - 1.3) <= tol
    assert link.proxy.toxics() == [] and link.client.proxy(link.proxy.name).enabled


def test_schedule_stopped_early_reverts_everything(link: Link) -> None:
    baseline = median_elapsed(link)
    stop = threading.Event()
    schedule = FaultSchedule(
        [latency(100, start=0.1), bandwidth(10, start=0.1, length=20), down(start=0.2, length=10)], duration_s=30
    )
    t0 = time.monotonic()
    runner = link.run_schedule(schedule, t0, stop)
    time.sleep(0.5)
    assert len(link.proxy.toxics()) == 2 and not link.client.proxy(link.proxy.name).enabled
    stop.set()
    runner.join(5)
    assert time.monotonic() - t0 < 2.0
    assert [e.action for e in link.events] == ["apply"] * 3 + ["revert"] * 3
    assert all(e.t < 1.5 for e in link.events)
    assert_clean(link, baseline)


def test_schedule_failures_surface_on_join(link: Link, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> str:
        raise ToxiproxyError("refused for the test")

    monkeypatch.setattr(link.proxy, "add_toxic", refuse)
    runner = link.run_schedule(FaultSchedule([latency(10, start=0.05), down(start=0.1, length=0.1)], duration_s=0.3))
    with pytest.raises(ScheduleError, match="1 failure.*refused for the test"):
        runner.join(5)
    assert [e.action for e in link.events] == ["error", "apply", "revert"]
    assert link.client.proxy(link.proxy.name).enabled


# --------------------------------------------------------------------------- hung DELETE (#412/#558)


def _route_to_blackhole(
    monkeypatch: pytest.MonkeyPatch, client: ToxiproxyClient, blackhole: ToxiproxyClient, hang: Callable[[str, str], bool]
) -> None:
    """Send the calls selected by ``hang(method, path)`` to a server that never answers."""
    real = client._request

    def routed(method: str, path: str, *, json: Any = None, timeout: float | None = None) -> Any:
        target = blackhole._request if hang(method, path) else real
        return target(method, path, json=json, timeout=timeout)

    monkeypatch.setattr(client, "_request", routed)


def test_hung_toxic_delete_falls_back_to_recreate(link: Link, monkeypatch: pytest.MonkeyPatch) -> None:
    baseline = median_elapsed(link)
    outer = link.activate(latency(50))
    with blackhole_server() as url:
        with monkeypatch.context() as m:
            _route_to_blackhole(
                m, link.client, ToxiproxyClient(url), lambda method, path: method == "DELETE" and "/toxics/" in path
            )
            with link.apply(latency(300)) as inner:
                assert len(link.proxy.toxics()) == 2
                started = time.monotonic()
            revert_s = time.monotonic() - started
    assert inner.via == "recreate"
    event = link.events[-1]
    assert (event.action, event.fault, event.via) == ("revert", "latency 300ms downstream", "recreate")
    assert "no answer within 1s" in event.detail
    assert 1.0 <= revert_s < 3.0  # the DELETE timeout (1 s) plus the recreate
    # the hung toxic is gone, the other active fault was put back
    assert [t.name for t in link.proxy.toxics()] == outer.toxic_names
    assert outer.revert() == "delete"
    assert_clean(link, baseline)


def test_hung_delete_and_recreate_fall_back_to_reset(link: Link, monkeypatch: pytest.MonkeyPatch) -> None:
    baseline = median_elapsed(link)
    with blackhole_server() as url:
        with monkeypatch.context() as m:
            _route_to_blackhole(m, link.client, ToxiproxyClient(url), lambda method, path: method == "DELETE")
            with link.apply(latency(300, direction="both")) as applied:
                pass
    assert applied.via == "reset"
    assert "DELETE:" in link.events[-1].detail and "recreate:" in link.events[-1].detail
    assert_clean(link, baseline)


def test_revert_error_when_every_path_fails(link: Link, monkeypatch: pytest.MonkeyPatch) -> None:
    baseline = median_elapsed(link)
    with blackhole_server() as url:
        with monkeypatch.context() as m:
            _route_to_blackhole(m, link.client, ToxiproxyClient(url), lambda method, path: method == "DELETE" or path == "/reset")
            with pytest.raises(RevertError, match=r"could not revert latency 100ms downstream: DELETE: .*recreate: .*reset: "):
                with link.apply(latency(100)):
                    pass
    assert link.events[-1].action == "error"
    assert link.reset() == "delete"  # with the server answering again, reset cleans up
    assert_clean(link, baseline)
