"""The experiment layer without containers: validation, orchestration (load + fault schedule in
step, always reverted, counters, ledger), the verdict message and the run dict.

A stub shop (stdlib HTTP server on 127.0.0.1) answers the reference shop's routes, counts the
"legacy" calls it would make and keeps a ledger; faults go through the real ``Link`` onto a fake
Toxiproxy proxy that slows the stub down while a toxic is on.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Iterator
from types import SimpleNamespace
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from pytest_peakchaos import latency
from pytest_peakchaos.checks import Amplification, CheckResult, CounterReading, Policy, Reconciliation, derive_phases, evaluate
from pytest_peakchaos.experiment import (
    Experiment,
    ExperimentResult,
    GracefulDegradationError,
    legacy_stats_counter,
    toxiproxy_bytes_counter,
)
from pytest_peakchaos.evidence import BoundaryReadings, phase_deltas, realised_phases, settle_and_reconcile
from pytest_peakchaos.faults import FaultSchedule
from pytest_peakchaos.link import Link, LinkEvent
from tests.unit.test_checks import build, evidence, healthy, mix, steady

# ------------------------------------------------------------------------------------ stub shop


@dataclass
class ShopState:
    slow_s: float = 0.0  # added to legacy-bound answers while a toxic is on
    drop_every: int = 0  # lose every n-th order (a broken outbox)
    metrics: str = ""  # the body of GET /metrics (Toxiproxy's Prometheus text)
    calls: dict[str, int] = field(default_factory=lambda: {"stock": 0, "orders_post": 0, "orders_get": 0})
    orders: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    def _send(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> None:
        n = int(self.headers.get("Content-Length") or 0)
        if n:
            self.rfile.read(n)

    def do_GET(self) -> None:  # noqa: N802
        st = self.server.state
        if self.path == "/stats":
            with st.lock:
                self._send(200, {"requests": dict(st.calls)})
            return
        if self.path == "/metrics":
            data = st.metrics.encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        self._send(200, {"ok": True})

    def do_DELETE(self) -> None:  # noqa: N802
        self._legacy("stock")
        self._send(200, {"items": []})

    def do_POST(self) -> None:  # noqa: N802
        self._body()
        st = self.server.state
        if self.path.endswith("/checkout"):
            key = self.headers.get("Idempotency-Key", "")
            self._legacy("orders_post")
            with st.lock:
                n = len(st.orders) + 1
                if not (st.drop_every and n % st.drop_every == 0):
                    st.orders.append({"order_id": n, "idempotency_key": key})
                else:
                    st.orders.append({"order_id": n, "idempotency_key": "lost"})
            self._send(201, {"order_id": n, "status": "confirmed", "idempotency_key": key})
            return
        self._legacy("stock")
        self._send(200, {"items": []})

    def _legacy(self, kind: str) -> None:
        st = self.server.state
        with st.lock:
            st.calls[kind] += 1
            slow = st.slow_s
        if slow:
            time.sleep(slow)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, state: ShopState) -> None:
        self.state = state
        super().__init__(("127.0.0.1", 0), _Handler)


@dataclass
class FakeProxy:
    """Enough of ``ProxyHandle`` for ``Link``: a toxic slows the stub shop down."""

    state: ShopState
    name: str = "legacy"
    enabled: bool = True
    toxic_names: list[str] = field(default_factory=list)

    def add_toxic(self, type: str, stream: str, attributes: dict[str, int], toxicity: float, *, name: str, timeout_s: float | None = None) -> None:  # noqa: A002
        self.toxic_names.append(name)
        self.state.slow_s = attributes.get("latency", 0) / 1000.0

    def remove_toxic(self, name: str, timeout_s: float | None = None, *, missing_ok: bool = True) -> bool:
        self.toxic_names.remove(name)
        if not self.toxic_names:
            self.state.slow_s = 0.0
        return True

    def set_enabled(self, enabled: bool, timeout_s: float | None = None) -> None:
        self.enabled = enabled

    def toxics(self, timeout_s: float | None = None) -> list[Any]:
        return []

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name}


@dataclass
class _LinkSpec:
    name: str = "legacy"
    service: str = "legacy"
    port: int = 9000
    client: str = "cloud"


@dataclass
class _Spec:
    links: list[_LinkSpec]
    ledger: object | None = True


class FakeStack:
    """Duck-typed ``Stack``: one service URL for everything, a real Link on a fake proxy."""

    def __init__(self, url: str, state: ShopState) -> None:
        self._url = url
        self.state = state
        self.spec = _Spec([_LinkSpec()])
        self.proxy = FakeProxy(state)
        self.the_link = Link("legacy", self.proxy, object(), None, "http://127.0.0.1:1")  # type: ignore[arg-type]

    def url(self, service: str, port: int | None = None) -> str:
        return self._url

    def link(self, name: str | None = None) -> Link:
        return self.the_link

    @property
    def toxiproxy(self) -> Any:
        """A Toxiproxy that answers (the harness check) but has no API URL (no byte metrics)."""
        from types import SimpleNamespace

        return SimpleNamespace(proxies=lambda timeout=None: {"legacy": self.proxy})

    def ledger(self) -> list[dict[str, Any]]:
        with self.state.lock:
            return [dict(o) for o in self.state.orders]


@pytest.fixture
def shop() -> Iterator[FakeStack]:
    state = ShopState()
    server = _Server(state)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield FakeStack(f"http://127.0.0.1:{server.server_address[1]}", state)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


SMALL = {"min_phase_s": 1.0, "min_requests": 5}


# ------------------------------------------------------------------------------------ validation


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"profile": "blackfriday"}, "valid values: double11, normal"),
        ({"duration": "soon"}, "duration: cannot read 'soon'"),
        ({"duration": 0}, "duration: must be a positive finite duration"),
        ({"duration": 10, "faults": [latency(ms=100, start=8, length=5)]}, "faults: fault #0 (latency 100ms downstream 8s→13s) ends at 13s"),
        ({"faults": ["latency"]}, "faults: faults[0] is not a fault"),
        ({"checks": {"speed": 1}}, "checks: unknown key 'speed'"),
        ({"checks": {"enabled": ["isolation", "ledgr"]}}, "unknown check(s) 'ledgr'; valid values: baseline, isolation, fail_fast"),
        ({"checks": {"strict": "no"}}, "checks: strict must be True or False"),
        ({"seed": "1"}, "seed: expected a whole number"),
        ({"scale": -1}, "scale: expected a finite number >= 0"),
        ({"max_requests": 0}, "max_requests: expected a whole number >= 1"),
        ({"legacy_actions": ["pay"]}, "legacy_actions: unknown action(s) pay; valid values: home"),
        ({"settle": "-1s"}, "settle:"),
    ],
)
def test_run_validates_up_front(shop: FakeStack, kwargs: dict[str, Any], message: str) -> None:
    t = time.monotonic()
    with pytest.raises(ValueError) as info:
        Experiment(shop).run(**{"duration": 5, **kwargs})
    assert message in str(info.value)
    assert time.monotonic() - t < 2  # nothing ran
    assert shop.state.calls["stock"] == 0


def test_experiment_needs_a_link_or_a_url() -> None:
    class NoLinks(FakeStack):
        def __init__(self) -> None:
            super().__init__("http://127.0.0.1:1", ShopState())
            self.spec = _Spec([])

    with pytest.raises(ValueError, match="base_url: the stack declares no legacy link"):
        Experiment(NoLinks())  # type: ignore[arg-type]
    exp = Experiment(NoLinks(), base_url="http://127.0.0.1:1")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="faults: the stack declares no legacy link"):
        exp.run("normal", 5, [latency(ms=10, start=1, length=1)])
    with pytest.raises(ValueError, match="link: the stack has no link 'billing'; links: legacy"):
        Experiment(FakeStack("http://127.0.0.1:1", ShopState()), link="billing")  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------ orchestration


def test_run_aligns_faults_with_the_load_and_reverts_them(shop: FakeStack) -> None:
    lines: list[str] = []
    exp = Experiment(shop, name="tests/unit::demo", on_progress=lines.append)  # type: ignore[arg-type]
    result = exp.run(
        "normal", duration=5, faults=[latency(ms=40, start=1.5, length=2)], seed=5, scale=0.4,
        checks=SMALL, settle="3s",
    )
    events = [(e["action"], e["t"]) for e in result.fault_events]
    assert [a for a, _ in events] == ["apply", "revert"]
    # applied and reverted on the load's clock (generous margins: a busy 2-core machine)
    assert 1.4 <= events[0][1] <= 2.3 and 3.4 <= events[1][1] <= 4.3
    # phases follow what happened: the fault phase ends at the recorded revert, not the plan
    assert [(p.name, p.start) for p in result.phases] == [("baseline", 0), ("fault", 1.5), ("recovery", events[1][1])]
    assert result.phase("fault").end == events[1][1] and result.phase("recovery").end == 5
    assert not shop.the_link.active and shop.state.slow_s == 0.0
    # progress: one line a second with live numbers from the engine
    assert 3 <= len(lines) <= 7 and "req/s" in lines[1] and "errors" in lines[1]
    assert any(" fault " in line for line in lines)
    # counters and ledger
    assert result.amplification is not None and result.amplification.unit == "calls"
    assert result.amplification.total == shop.state.calls["stock"] + shop.state.calls["orders_post"]
    assert result.ledger is not None and result.ledger.missing == 0 and result.ledger.duplicated == 0
    assert result.ledger.acknowledged == len({o.idempotency_key for o in result.load.orders})
    assert result.seed == 5 and result.profile == "normal" and result.scale == 0.4


def test_run_dict_follows_the_report_schema(shop: FakeStack) -> None:
    schema = pytest.importorskip("pytest_peakchaos.report.schema")
    result = Experiment(shop).run("normal", 4, [latency(ms=30, start=1, length=2)], seed=9, scale=0.3, checks=SMALL, settle="2s")  # type: ignore[arg-type]
    d = result.to_dict("tests/test_x.py::test_y")
    assert schema.validate_run(d) == []
    assert json.loads(json.dumps(d)) == d
    assert d["test"] == "tests/test_x.py::test_y" and d["seed"] == 9 and d["passed"] is result.passed
    assert set(d) == {
        "test", "stack", "seed", "profile", "scale", "duration_s", "passed", "verdict", "strict", "not_measured", "warning", "phases", "faults", "fault_events", "sessions",
        "requests", "legacy_calls_per_session", "legacy_actions", "actions", "series", "checks", "ledger", "legacy", "failure",
    }
    [f] = d["faults"]
    assert f["kind"] == "toxic" and f["describe"] == "latency 30ms downstream 1s→3s" and (f["start"], f["end"]) == (1.0, 3.0)
    assert set(d["fault_events"][0]) == {"t", "action", "fault", "via"}
    assert set(d["checks"][0]) == {"name", "phase", "outcome", "passed", "expected", "measured", "reason", "detail"}
    assert set(d["sessions"]) == {"arrived", "started", "refused_by_cap", "completed", "abandoned"}
    assert d["legacy"]["calls"] >= 1 and d["ledger"]["acknowledged"] == d["ledger"]["found"]
    # one row per second, gaps filled with empty seconds
    rows = d["series"]["search"]
    assert [r["t"] for r in rows] == list(range(len(rows)))
    assert d["actions"]["search"]["status_classes"] == {"2xx": d["actions"]["search"]["count"]}


def test_lost_orders_fail_the_ledger_check(shop: FakeStack) -> None:
    shop.state.drop_every = 2
    result = Experiment(shop, name="lossy").run("double11", 4, [], seed=2, scale=1.0, checks=SMALL, settle="1s")  # type: ignore[arg-type]
    assert result.ledger is not None and result.ledger.missing >= 1
    row = result.check("ledger")
    assert not row.passed and f"{result.ledger.missing} missing" in row.measured
    assert 0.5 <= result.ledger.waited_s <= 3.0  # waited for the outbox, bounded by settle
    with pytest.raises(GracefulDegradationError) as info:
        result.assert_graceful()
    assert isinstance(info.value, AssertionError) and info.value.result is result
    assert "ledger" in str(info.value) and str(info.value).rstrip().endswith("replay: seed=2 profile=double11 scale=1")


def test_faults_are_reverted_when_the_load_fails(shop: FakeStack, monkeypatch: pytest.MonkeyPatch) -> None:
    import pytest_peakchaos.load as load_pkg

    def broken_run_load(*args: Any, on_start: Any = None, **kwargs: Any) -> Any:
        on_start(time.monotonic())
        time.sleep(0.6)
        assert shop.the_link.active, "the fault was applied at t0"
        raise KeyboardInterrupt

    monkeypatch.setattr(load_pkg, "run_load", broken_run_load)
    with pytest.raises(KeyboardInterrupt):
        Experiment(shop).run("normal", 10, [latency(ms=10, start=0, length=5)], seed=1)  # type: ignore[arg-type]
    assert not shop.the_link.active and shop.proxy.toxic_names == [] and shop.state.slow_s == 0.0
    assert [e.action for e in shop.the_link.events] == ["apply", "revert"]


# ------------------------------------------------------------------------------------ counters


def test_legacy_stats_counter_reads_stock_and_orders(shop: FakeStack) -> None:
    shop.state.calls.update(stock=7, orders_post=2, orders_get=50)
    reading = legacy_stats_counter(shop.url("legacy"))()
    assert reading is not None and reading.value == 9 and reading.unit == "calls"
    assert legacy_stats_counter("http://127.0.0.1:1")() is None
    assert toxiproxy_bytes_counter("http://127.0.0.1:1", "legacy")() is None
    # Toxiproxy shows a proxy's series only after bytes crossed it: until then 0 where the stack
    # started it with -proxy-metrics itself, unknown (None) for someone else's Toxiproxy
    assert toxiproxy_bytes_counter(shop.url("toxiproxy"), "legacy")() is None
    fresh = toxiproxy_bytes_counter(shop.url("toxiproxy"), "legacy", metrics_on=True)()
    assert fresh is not None and fresh.value == 0 and fresh.unit == "bytes" and "no series yet" in fresh.source
    shop.state.metrics = (
        'toxiproxy_proxy_received_bytes_total{direction="upstream",listener="[::]:8666",proxy="legacy",upstream="legacy:9000"} 1234\n'
        'toxiproxy_proxy_received_bytes_total{direction="downstream",listener="[::]:8666",proxy="legacy",upstream="legacy:9000"} 99999\n'
        'toxiproxy_proxy_received_bytes_total{direction="upstream",listener="[::]:8667",proxy="other",upstream="x:1"} 5\n'
    )
    read = toxiproxy_bytes_counter(shop.url("toxiproxy"), "legacy")()
    assert read is not None and read.value == 1234


# ------------------------------------------------------------------------------------ verdict text


def _result(
    samples: dict[str, Any], *, seed: int = 1234, name: str = "tests/test_shop.py::test_b", counter: bool = True,
    policy: Policy | None = None,
) -> ExperimentResult:
    policy = policy or Policy()
    load = build(40, samples, seed=seed)
    phases = derive_phases([(10, 30)], 40)
    amp = Amplification("calls", "GET /stats", 600, 480, {"baseline": (120.0, 120), "fault": (300.0, 240), "recovery": (180.0, 120)})
    ev = evidence(load, phases, ledger=Reconciliation.reconcile(["a"], ["a"]), amplification=amp if counter else None)
    fault = latency(ms=800, jitter=200, start=10, length=20)
    return ExperimentResult(
        name=name, load=load, seed=seed, profile="double11", scale=1.0, duration_s=40.0, phases=phases,
        faults=(fault,), fault_windows=tuple(FaultSchedule([fault], 40).windows()),
        fault_events=[{"t": 10.0, "action": "apply", "fault": fault.describe(), "via": "x", "detail": ""}],
        ledger=ev.ledger, amplification=ev.amplification, checks=evaluate(ev, policy), policy=policy,
        legacy_actions=load.legacy_actions, request_timeout_s=5.0,
    )


def test_assert_graceful_message_is_a_small_table_with_the_replay_line() -> None:
    s = healthy()
    s["browse"] = mix(steady(0, 10, 20, 5), steady(10, 30, 8.2, 5), steady(10, 30, 11.8, 5, "timeout"), steady(30, 40, 20, 5))
    result = _result(s)
    assert not result.passed
    with pytest.raises(GracefulDegradationError) as info:
        result.assert_graceful()
    text = str(info.value)
    lines = text.splitlines()
    assert lines[0] == "graceful degradation failed: 2 of 14 checks (tests/test_shop.py::test_b)"
    assert lines[1] == "faults: latency 800±200ms downstream 10s→30s"
    header = lines[3]
    assert header.split() == ["check", "phase", "expected", "measured", "result"]
    body = lines[5:5 + 14]
    # failed rows first, each a single aligned line
    assert body[0].startswith("isolation") and body[0].endswith("FAIL") and "fault" in body[0]
    assert "browse success 41.0% (baseline 100.0%)" in body[0]
    assert body[1].startswith("honest_degradation") and body[1].endswith("FAIL")
    assert all(b.endswith("pass") for b in body[2:])
    assert lines[-1] == "replay: seed=1234 profile=double11 scale=1"
    assert result.failure_message() == text
    assert result.to_dict()["failure"] == text


def test_passing_result_and_summary() -> None:
    result = _result(healthy())
    assert result.passed and result.failure_message() is None
    result.assert_graceful()
    text = result.summary()
    assert text.startswith("peakchaos tests/test_shop.py::test_b: PASSED")
    assert "replay: seed=1234 profile=double11 scale=1" in text
    assert "ledger: 1 acknowledged, 1 found, 0 missing, 0 duplicated" in text
    assert result.check("isolation", "fault").passed
    with pytest.raises(KeyError):
        result.check("speed")
    assert isinstance(result.checks[0], CheckResult)


def test_not_measured_fails_a_strict_run_and_warns_a_lenient_one() -> None:
    strict = _result(healthy(), counter=False)
    assert not strict.passed
    [row] = [c for c in strict.checks if c.name == "amplification"]
    assert row.outcome == "not measured" and not row.passed and row.status == "NOT MEASURED"
    text = strict.failure_message() or ""
    assert "1 of them not measured, which fails a strict policy" in text and "NOT MEASURED" in text
    lenient = _result(healthy(), counter=False, policy=Policy(strict=False))
    assert lenient.passed and lenient.failure_message() is None
    assert lenient.warning is not None and "amplification/run (no legacy call counter)" in lenient.warning
    assert lenient.warning in lenient.summary()
    d = lenient.to_dict()
    assert d["not_measured"] == 1 and d["strict"] is False and d["warning"] == lenient.warning
    [c] = [c for c in d["checks"] if c["name"] == "amplification"]
    assert c["outcome"] == "not measured" and c["reason"] == "no legacy call counter"


# ------------------------------------------------------------------------------------ evidence sources


def _window(start: float, end: float) -> Any:
    return next(iter(FaultSchedule([latency(ms=800, start=start, length=end - start)], 40).windows()))


def test_phases_come_from_the_recorded_revert_not_the_plan() -> None:
    w = _window(10, 30)
    desc = w.fault.describe()
    real = realised_phases([w], [LinkEvent(10.02, "apply", desc, "t1"), LinkEvent(31.7, "revert", desc, "recreate")], 40)
    assert [(p.name, p.start, p.end) for p in real.phases] == [("baseline", 0, 10), ("fault", 10, 31.7), ("recovery", 31.7, 40)]
    assert real.problems == {}


def test_a_fault_that_did_not_apply_or_was_lost_is_a_phase_problem() -> None:
    w = _window(10, 30)
    desc = w.fault.describe()
    failed = realised_phases([w], [LinkEvent(10.1, "error", desc, "apply", "ToxiproxyError: 500")], 40)
    assert "did not apply (ToxiproxyError: 500)" in failed.problems["fault"] and "never applied" in failed.problems["recovery"]
    lost = realised_phases([w], [LinkEvent(10.0, "apply", desc), LinkEvent(14.0, "error", desc, "re-apply", "timed out"),
                                 LinkEvent(30.0, "revert", desc)], 40)
    assert lost.problems == {"fault": f"the faults did not really happen: {desc} was lost at 14.0s (re-apply failed: timed out)"}
    stuck = realised_phases([w], [LinkEvent(10.0, "apply", desc), LinkEvent(30.0, "error", desc, "revert", "RevertError: x")], 40)
    assert stuck.problems == {"recovery": f"{desc}: its revert failed: RevertError: x"} and stuck.phases[-1].name == "fault"


def test_a_counter_read_failing_at_a_boundary_is_named() -> None:
    values = iter([CounterReading(10.0), None, CounterReading(50.0)])

    def flaky() -> CounterReading | None:
        return next(values)

    def broken() -> CounterReading | None:
        raise OSError("connection refused")

    readings = BoundaryReadings({"legacy": flaky, "link": broken})
    for t in (0.0, 10.0, math.inf):
        readings.read(t)
    phases = derive_phases([(10, 30)], 40)[:2]
    deltas, unread = phase_deltas(readings, "legacy", phases, end_t=math.inf)
    assert deltas == {} and unread == {
        "baseline": "the legacy counter could not be read at 10s: no answer",
        "fault": "the legacy counter could not be read at 10s: no answer",
    }
    _, unread = phase_deltas(readings, "link", phases, end_t=math.inf)
    assert unread["baseline"] == "the link counter could not be read at 0s: OSError: connection refused"


def test_ledger_polling_reports_unreadable_and_unsettled() -> None:
    def down() -> list[dict[str, Any]]:
        raise OSError("legacy paused")

    rec, error = settle_and_reconcile(down, ["a", "b"], prefix="pc-x-", settle_s=0.2, poll_s=0.05)
    assert rec is None and error == "no answer within 0.2s (2 acknowledged orders unchecked); last error: OSError: legacy paused"
    calls = iter([[{"idempotency_key": "a"}]] * 100)
    answers: list[Any] = []

    def partial() -> list[dict[str, Any]]:
        answers.append(1)
        if len(answers) % 2 == 0:
            raise OSError("outbox stuck")
        return next(calls)

    rec, error = settle_and_reconcile(partial, ["a", "b"], prefix="pc-x-", settle_s=0.3, poll_s=0.05)
    assert error == "" and rec is not None and not rec.settled and rec.missing == 1 and rec.waited_s >= 0.25
    assert rec.last_error == "" or rec.last_error == "OSError: outbox stuck"


def test_a_fault_that_fails_to_apply_leaves_its_window_not_measured(shop: FakeStack) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("Toxiproxy said 500")

    shop.proxy.add_toxic = refuse  # type: ignore[method-assign]
    result = Experiment(shop).run("normal", 4, [latency(ms=30, start=1, length=2)], seed=3, scale=0.3,  # type: ignore[arg-type]
                                  checks=SMALL, settle="1s")
    assert not result.passed
    assert result.checks[0].name == "faults_applied" and not result.checks[0].passed
    fault_rows = [c for c in result.checks if c.phase == "fault" and c.name != "faults_applied"]
    assert fault_rows and all(c.outcome in ("not measured", "fail") for c in fault_rows)
    assert any("did not apply (RuntimeError: Toxiproxy said 500)" in c.reason for c in fault_rows)


def test_junit_properties_name_not_measured_checks_and_the_hook_gets_the_result(shop: FakeStack) -> None:
    from pytest_peakchaos.fixture import Chaos
    from pytest_peakchaos.session import PeakchaosSession, Settings

    session = PeakchaosSession(settings=Settings(seed=4, scale=1.0))
    props: list[tuple[str, object]] = []
    finished: list[ExperimentResult] = []
    chaos = Chaos(shop, session, test="tests/t.py::test_x", record=lambda k, v: props.append((k, v)),
                  finished=finished.append)
    # the fault lasts to the end of the load: recovery cannot be measured
    result = chaos.run("normal", 3, [latency(ms=20, start=1, length=2)], scale=0.3, checks=SMALL, settle="1s")
    assert finished == [result]
    d = dict(props)
    assert "recovery/recovery" in str(d["peakchaos_not_measured_checks"]).split(",")
    # nothing failed, recovery could not be measured: the strict default fails it as "not measured"
    assert d["peakchaos_verdict"] == "not measured" and d["peakchaos_passed"] is False


def test_a_down_fault_lost_after_a_proxy_recreate_is_a_phase_problem() -> None:
    from pytest_peakchaos import down

    [w] = FaultSchedule([down(start=8, length=10)], 30).windows()
    events = [LinkEvent(8.0, "apply", w.fault.describe(), "down"), LinkEvent(12.0, "error", "down", "re-apply", "timed out"),
              LinkEvent(18.0, "revert", w.fault.describe(), "enable")]
    assert "was lost at 12.0s (re-apply failed: timed out)" in realised_phases([w], events, 30).problems["fault"]


def test_no_bytes_through_the_proxy_fails_after_its_connections_were_closed_once(shop: FakeStack) -> None:
    """The stub's Toxiproxy /metrics never shows a series for the proxy: after the run the proxy
    is disabled/enabled once (Toxiproxy books bytes when connections close), still 0: the cloud
    does not reach legacy through the proxy."""
    toggles: list[bool] = []
    shop.proxy.set_enabled = lambda enabled, timeout_s=None: toggles.append(enabled)  # type: ignore[method-assign]

    class WithToxiproxy(FakeStack):
        proxy_metrics = True  # it started its Toxiproxy with -proxy-metrics

        @property
        def toxiproxy(self) -> Any:
            return SimpleNamespace(api_url=self._url)

    stack = WithToxiproxy(shop._url, shop.state)
    stack.proxy = shop.proxy
    stack.the_link = shop.the_link
    result = Experiment(stack).run("normal", 3, [], seed=3, scale=0.4, checks=SMALL, settle="1s")  # type: ignore[arg-type]
    assert toggles == [False, True]
    assert any("closed the proxy's connections" in n for n in result.notes)
    [row] = [c for c in result.checks if c.name == "baseline"]
    assert not row.passed and "the cloud does not reach legacy through the proxy" in row.measured, result.summary()


def test_a_lost_load_share_is_a_harness_error_not_a_verdict(shop: FakeStack, monkeypatch: pytest.MonkeyPatch) -> None:
    """A distributed run that lost a worker's share (``missing_shares``) has no verdict: the
    experiment raises LoadWorkerDied naming the share and worker, and its fault is reverted."""
    import pytest_peakchaos.load as load_mod
    from pytest_peakchaos.load.api import LoadWorkerDied

    real = load_mod.run_load

    def losing_a_share(*args: Any, **kwargs: Any) -> Any:
        result = real(*args, **kwargs)  # a real run; then, as run_on_dask reports a lost worker:
        result.missing_shares = [{"share": 1, "of": 2, "worker": "tcp://127.0.0.1:40001", "error": "the worker was lost mid-run"}]
        return result

    monkeypatch.setattr(load_mod, "run_load", losing_a_share)
    with pytest.raises(LoadWorkerDied, match=r"load share 1 of 2 on Dask worker tcp://127\.0\.0\.1:40001: the worker was lost mid-run; .*no verdict"):
        Experiment(shop).run("normal", 1.5, [latency(ms=40, start=0.5, length=0.5)], seed=3, scale=0.4, checks=SMALL, settle="1s")  # type: ignore[arg-type]
    assert not shop.the_link.active and shop.state.slow_s == 0.0
