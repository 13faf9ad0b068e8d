"""Measurement: sketch accuracy, HdrHistogram folding, merge and JSON round trip, time windows."""

from __future__ import annotations

import json
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_peakchaos.load.result import (
    ActionStats,
    AckOrder,
    LoadResult,
    LogSketch,
    SecondStats,
    SessionCounts,
    fine_index,
    hdr_from_fine,
    sketch_index,
)


def _sketch(values: list[float]) -> LogSketch:
    acc: dict[int, int] = {}
    for v in values:
        k = sketch_index(v)
        acc[k] = acc.get(k, 0) + 1
    return LogSketch.from_dict_counts(acc, max(values))


def _exact(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[max(0, int(q * len(s) + 0.999999) - 1)]


@settings(max_examples=30, deadline=None)
@given(
    values=st.lists(st.floats(2.0, 5e7), min_size=1, max_size=400),
    q=st.sampled_from([0.5, 0.9, 0.95, 0.99, 1.0]),
)
def test_sketch_quantiles_within_two_percent(values: list[float], q: float) -> None:
    got = _sketch(values).quantile_us(q)
    want = _exact(values, q)
    assert abs(got - want) / want <= 0.021


def test_sketch_merge_equals_sketch_of_union() -> None:
    rng = random.Random(1)
    a = [rng.lognormvariate(8, 1) for _ in range(3000)]
    b = [rng.lognormvariate(10, 0.5) for _ in range(1000)]
    merged = _sketch(a).merge(_sketch(b))
    both = _sketch(a + b)
    assert list(merged.keys) == list(both.keys) and list(merged.counts) == list(both.counts)
    assert merged.max_us == both.max_us
    assert LogSketch.from_pairs(merged.to_pairs(), merged.max_us).quantile_us(0.5) == merged.quantile_us(0.5)


def test_fine_buckets_fold_into_hdr_within_a_fraction_of_a_percent() -> None:
    rng = random.Random(2)
    values = [rng.uniform(100, 300_000) for _ in range(20_000)]
    fine: dict[int, int] = {}
    for v in values:
        k = fine_index(v)
        fine[k] = fine.get(k, 0) + 1
    h = hdr_from_fine(fine)
    assert h.get_total_count() == len(values)
    for q in (50, 95, 99):
        want = _exact(values, q / 100)
        assert abs(h.get_value_at_percentile(q) - want) / want < 0.003


def _result(seed: int, n: int, t_offset: float = 0.0) -> LoadResult:
    rng = random.Random(seed)
    r = LoadResult(seed=1, profile="p", run_id="r", t0=100.0 + t_offset, duration_s=10.0, elapsed_s=10.0)
    r.legacy_actions = frozenset({"checkout"})
    for action in ("home", "checkout"):
        s = ActionStats(action)
        per: dict[int, SecondStats] = {}
        fine: dict[int, int] = {}
        for i in range(n):
            lat = rng.uniform(1000, 5000)
            k = fine_index(lat)
            fine[k] = fine.get(k, 0) + 1
            s.count += 1
            s.ok += 1
            sec = i % 10
            st_ = per.setdefault(sec, SecondStats(sec))
            st_.count += 1
            st_.ok += 1
            st_.sketch = st_.sketch.merge(_sketch([lat]))
        s.latency = hdr_from_fine(fine)
        s.by_class = {"2xx": hdr_from_fine(fine)}
        s.status = {"200": n}
        r.actions[action] = s
        r.series[action] = per
    r.sessions = SessionCounts(arrived=n, started=n, completed=n)
    r.orders = [AckOrder(f"k{seed}-{i}", 201, str(i)) for i in range(3)]
    r.session_series = {0: [n, 0]}
    r.requests_sent = 2 * n
    return r


def test_merge_adds_everything_up() -> None:
    a, b = _result(1, 200), _result(2, 300)
    a.merge(b)
    assert a.workers == 2
    assert a.actions["home"].count == 500
    assert a.actions["home"].latency.get_total_count() == 500
    assert sum(s.count for s in a.series["home"].values()) == 500
    assert a.sessions.started == 500
    assert len(a.orders) == 6
    assert a.legacy_calls == 500
    assert a.legacy_calls_per_session == pytest.approx(1.0)
    assert a.session_series[0] == [500, 0]


def test_to_dict_is_json_and_round_trips() -> None:
    r = _result(3, 250)
    d = r.to_dict()
    text = json.dumps(d)
    back = LoadResult.from_dict(json.loads(text))
    assert back.to_dict() == d
    assert d["actions"]["home"]["latency_ms"]["p50"] == pytest.approx(r.actions["home"].p50_ms)
    small = r.to_dict(histograms=False)
    assert "hdr" not in small["actions"]["home"] and "sketch" not in small["series"]["home"][0]
    assert len(json.dumps(small)) < len(text)


def test_window_and_timeline() -> None:
    r = _result(4, 1000)
    w = r.window(2, 5, ["home"])
    assert w.count == 300 and w.ok == 300 and w.success_rate == 1.0
    assert 1.0 <= w.p50_ms <= 5.0
    all_w = r.window(0, 10)
    assert all_w.count == 2000
    line = r.timeline("home")
    assert [s.second for s in line] == list(range(10))
    assert sum(s.count for s in r.timeline()) == 2000
    assert "home" in r.summary()
