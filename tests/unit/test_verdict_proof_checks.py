"""The checks that catch the last three mutants of the verdict proof (tests/acceptance/test_mutants.py),
on crafted data: ``shedding`` (no_breaker), the faults it judges, and the ledger's items
comparison (cart_loss); plus the re-minted-key presence the settle loop now understands."""

from __future__ import annotations

import json

import pytest

from pytest_peakchaos import down, latency, limit_data, reset_peer, timeout
from pytest_peakchaos.checks import (
    Amplification,
    CounterReading,
    Policy,
    Reconciliation,
    SheddingWindow,
    evaluate,
    ledger,
    shedding,
)
from pytest_peakchaos.evidence.boundaries import BoundaryReadings
from pytest_peakchaos.evidence.ledger import row_items, settle_and_reconcile
from pytest_peakchaos.evidence.shedding import grace_boundaries, shedding_windows, starving_reason
from pytest_peakchaos.faults import FaultSchedule, bandwidth
from pytest_peakchaos.load.result import AckOrder, LoadResult
from tests.unit.test_checks import build, evidence, healthy

AMP = Amplification("calls", "GET /stats", 500.0, 480, {"baseline": (130.0, 120), "fault": (250.0, 240), "recovery": (120.0, 120)})


def _window(calls: float | None, actions: int, note: str = "") -> SheddingWindow:
    return SheddingWindow("latency 3000ms downstream 10s→30s", "latency 3000 ms >= 2000 ms", 11.0, 30.0, calls, actions, note)


# ------------------------------------------------------------------------------ which faults


@pytest.mark.parametrize(
    ("fault", "judged"),
    [
        (latency(ms=3000), True),
        (latency(ms=2000), True),  # at the bound: no call is in time
        (latency(ms=1999), False),
        (latency(ms=800, jitter=200), False),  # slow but in time: keep calling, rightly
        (latency(ms=1000, direction="both"), True),  # 1000 ms each way
        (latency(ms=3000, toxicity=0.5), False),  # half the connections are fine
        (limit_data(1), True),
        (limit_data(16), True),
        (limit_data(600), False),  # the first answers of each connection get through
        (reset_peer(), True),
        (timeout(0), True),
        (limit_data(1, direction="upstream"), False),  # nothing reaches legacy: the link sheds, not the cloud
        (down(), False),
        (bandwidth(1), False),
    ],
)
def test_starving_faults(fault: object, judged: bool) -> None:
    why = starving_reason(fault, Policy())
    assert bool(why) is judged, why


def test_the_latency_bound_is_the_policys() -> None:
    assert starving_reason(latency(ms=800), Policy(shedding_min_latency_ms=500)) == (
        "latency 800 ms >= 500 ms: no call through the link is in time")
    assert starving_reason(latency(ms=800), Policy()) == ""


def test_grace_boundaries_and_windows_from_readings() -> None:
    windows = FaultSchedule([latency(ms=3000, start="10s", length="20s"), latency(ms=300, start="32s", length="5s"),
                             reset_peer(start="38s", length="1s")], 40).windows()
    assert grace_boundaries(windows, Policy()) == [11.0, 30.0]  # the 1 s reset_peer is all grace
    assert grace_boundaries(windows, Policy(shedding_grace_s=0.5)) == [10.5, 30.0, 38.5, 39.0]
    readings = BoundaryReadings({})
    readings.values["legacy"] = {11.0: CounterReading(200.0), 30.0: CounterReading(290.0)}
    load = build(40, healthy())  # add_to_cart 10/s + checkout 2/s are legacy-bound
    [w, short] = shedding_windows(windows, Policy(), readings, load, frozenset({"add_to_cart", "checkout"}))
    assert (w.start, w.end, w.calls) == (11.0, 30.0, 90.0)
    assert w.actions == 19 * 12  # whole seconds 11..29
    assert short.calls is None and "grace" in short.note
    readings.values["legacy"][30.0] = None
    readings.errors["legacy"] = {30.0: "URLError: refused"}
    [w, _] = shedding_windows(windows, Policy(), readings, load, frozenset({"add_to_cart", "checkout"}))
    assert w.calls is None and "could not be read at 30s: URLError: refused" in w.note


# ------------------------------------------------------------------------------ shedding


def test_shedding_fails_when_legacy_keeps_getting_the_load() -> None:
    load = build(40, healthy())
    [r] = shedding(evidence(load, amplification=AMP, shedding=(_window(180.0, 228),)), Policy())
    assert not r.passed and r.phase == "fault" and r.measured.startswith("0.79 calls per action (180 calls / 228 actions")
    assert "could not answer" in r.measured and "baseline (not judged): 130 calls / 120 actions" in r.detail
    [r] = shedding(evidence(load, amplification=AMP, shedding=(_window(18.0, 228),)), Policy())
    assert r.passed and r.measured.startswith("0.08 calls per action")
    # the bound is the policy's
    [r] = shedding(evidence(load, amplification=AMP, shedding=(_window(180.0, 228),)), Policy(shedding_max_calls=1.0))
    assert r.passed


def test_shedding_not_measured_and_not_judged() -> None:
    load = build(40, healthy())
    assert shedding(evidence(load, amplification=AMP), Policy()) == []  # no starving fault: nothing to judge
    for ev_kw, why in [
        ({"amplification": None, "amplification_note": "no legacy call counter: x"}, "no legacy call counter: x"),
        ({"amplification": Amplification("bytes", "toxiproxy", 1.0, 1, {})}, "counts bytes"),
        ({"amplification": AMP, "shedding": (_window(None, 0, "the legacy counter could not be read at 30s: boom"),)}, "boom"),
        ({"amplification": AMP, "shedding": (_window(3.0, 5),)}, "only 5 legacy-bound actions"),
    ]:
        ev_kw.setdefault("shedding", (_window(10.0, 100),))
        [r] = shedding(evidence(load, **ev_kw), Policy())
        assert r.skipped and why in r.reason, (why, r)
    # strict (the default) fails the run on it; evaluate keeps shedding last
    ev = evidence(load, amplification=AMP, shedding=(_window(3.0, 5),))
    rows = evaluate(ev, Policy())
    assert rows[-1].name == "shedding" and rows[-1].status == "NOT MEASURED"
    assert evaluate(ev, Policy(strict=False))[-1].status == "not measured"


def test_shedding_policy_fields_are_validated() -> None:
    assert Policy().shedding_max_calls == 0.5 and Policy().shedding_grace_s == 1.0
    with pytest.raises(ValueError, match="shedding_max_calls must be >= 0"):
        Policy(shedding_max_calls=-1)
    with pytest.raises(ValueError, match="shedding_min_latency_ms must be > 0"):
        Policy(shedding_min_latency_ms=0)
    assert not Policy().with_(shedding=False).is_enabled("shedding")


# ------------------------------------------------------------------------------ ledger items


def test_items_short_orders_fail_the_ledger() -> None:
    ordered = {"k1": (("1", "2", "3"), ()), "k2": (("4", "5"), ("5",)), "k3": (("6",), ())}
    rows = {"k1": frozenset({"3"}), "k2": frozenset({"4"}), "k3.r1": frozenset({"6"})}
    rec = Reconciliation.reconcile(["k1", "k2", "k3"], ["k1", "k2", "k3.r1"], ordered=ordered, ledger_items=rows)
    # k1 lost 1 and 2; k2's 5 was unsure (its add failed), k3 is found under a re-minted key
    assert (rec.found, rec.items_compared, rec.items_short, rec.items_note) == (3, 3, 1, "")
    assert rec.items_short_keys == ("k1: 1, 2",)
    load = build(40, healthy())
    [r] = ledger(evidence(load, ledger=rec), Policy())
    assert not r.passed and "1 of 3 orders lack items the shopper had in the cart" in r.measured
    assert "short e.g. k1: 1, 2" in r.detail
    ok = Reconciliation.reconcile(["k1"], ["k1"], ordered={"k1": (("1", "2"), ())}, ledger_items={"k1": frozenset({"1", "2", "9"})})
    [r] = ledger(evidence(load, ledger=ok), Policy())
    assert r.passed and "items of 1 orders as in the cart" in r.measured  # an extra item is not a loss


def test_items_not_measured_is_said_never_passed_as_compared() -> None:
    load = build(40, healthy())
    no_items = Reconciliation.reconcile(["k1"], ["k1"], ordered={"k1": (("1",), ())}, ledger_items=None)
    [r] = ledger(evidence(load, ledger=no_items), Policy())
    assert r.passed and "items not measured: the ledger's rows have no items" in r.measured
    no_carts = Reconciliation.reconcile(["k1"], ["k1"], ledger_items={"k1": frozenset({"1"})})
    assert no_carts.items_note == "the load recorded no cart for its orders"
    missing = Reconciliation.reconcile(["k1"], [], ordered={"k1": (("1",), ())}, ledger_items={})
    assert missing.items_compared == 0 and missing.items_note == "no found order had a known cart"


def test_row_items_reads_mappings_scalars_and_json_text() -> None:
    rows = [{"idempotency_key": "a", "items": [{"sku": 1, "qty": 2}, {"sku": 7}]}, {"idempotency_key": "b", "items": ["x", 3]},
            {"idempotency_key": "c", "items": json.dumps([{"sku": 5}])}, {"idempotency_key": "d"}, {"items": [1]}]
    assert row_items(rows) == {"a": frozenset({"1", "7"}), "b": frozenset({"x", "3"}), "c": frozenset({"5"})}
    assert row_items([{"idempotency_key": "a"}]) is None


def test_settle_sees_an_order_under_a_re_minted_key_and_compares_its_items() -> None:
    rows = [{"idempotency_key": "pc-r-1-0.d1", "items": [{"sku": 9}]}, {"idempotency_key": "pc-r-2-0", "items": [{"sku": 3}]}]
    rec, err = settle_and_reconcile(lambda: rows, ["pc-r-1-0", "pc-r-2-0"], prefix="pc-r-", settle_s=5.0, poll_s=0.5,
                                    ordered={"pc-r-1-0": (("8", "9"), ()), "pc-r-2-0": (("3",), ())})
    assert err == "" and rec is not None
    assert rec.waited_s < 0.4  # present at once: no waiting for a key that is there under another name
    assert (rec.found, rec.missing, rec.items_short, rec.items_short_keys) == (2, 0, 1, ("pc-r-1-0: 8",))


def test_ack_order_items_round_trip() -> None:
    r = LoadResult(seed=1, profile="p", run_id="x", t0=0.0, duration_s=1.0, elapsed_s=1.0)
    r.orders = [AckOrder("k1", 201, "o1", "checkout", ("1", "2"), ("2",)), AckOrder("k2", 202)]
    back = LoadResult.from_dict(json.loads(json.dumps(r.to_dict())))
    assert back.orders == r.orders
    assert "items" not in r.to_dict()["orders"][1]


# ------------------------------------------------------------------------------ amplification peak


def test_amplification_peak_fails_a_storm_the_phase_average_hides() -> None:
    from pytest_peakchaos.checks import amplification

    load = build(40, healthy())
    # 2.0 calls per action over the fault phase, but 4 per action in 12s-14s (the breaker was open
    # for the rest): the storm is judged where it happened
    windows = ((10.0, 12.0, 24.0, 24), (12.0, 14.0, 96.0, 24), (14.0, 16.0, 0.0, 24), (16.0, 18.0, 40.0, 10))
    amp = Amplification("calls", "GET /stats", 500.0, 480, {"baseline": (130.0, 120), "fault": (480.0, 240)}, windows=windows)
    rows = amplification(evidence(load, amplification=amp), Policy())
    fault = [r for r in rows if r.phase == "fault"][0]
    assert not fault.passed and fault.measured == "2.00 calls per action (480 calls / 240 actions); peak 4.00 in 12s-14s (96 calls / 24 actions)"
    # the 10-action window (4.0 per action) is below min_requests: not the peak
    assert all(r.passed for r in amplification(evidence(load, amplification=amp), Policy(amplification_max=4.5)))
    calm = Amplification("calls", "GET /stats", 500.0, 480, {"fault": (240.0, 240)}, windows=windows[:1] + windows[2:])
    [r] = [r for r in amplification(evidence(load, amplification=calm), Policy()) if r.phase == "fault"]
    assert r.passed and "peak 1.00 in 10s-12s" in r.measured


def test_peak_windows_from_readings() -> None:
    from pytest_peakchaos.checks import Phase
    from pytest_peakchaos.evidence.shedding import peak_boundaries, peak_windows

    phases = (Phase("baseline", 0, 10), Phase("fault", 10, 14.5), Phase("recovery", 14.5, 40))
    assert peak_boundaries(phases, Policy()) == [10.0, 11.0, 12.0, 13.0, 14.0]
    assert peak_boundaries(phases, Policy(amplification_window_s=0)) == []
    readings = BoundaryReadings({})
    readings.values["legacy"] = {10.0: CounterReading(0.0), 11.0: CounterReading(5.0), 12.0: CounterReading(30.0),
                                 13.0: None, 14.0: CounterReading(60.0)}
    load = build(40, healthy())
    got = peak_windows(phases, Policy(), readings, load, frozenset({"add_to_cart", "checkout"}))
    assert got == ((10.0, 12.0, 30.0, 24), (12.0, 14.0, 30.0, 24))  # 11-13 needs the failed reading at 13s
