"""Traffic shapes and the Poisson arrival process: counts match the shape within 2 %."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_peakchaos.load.plan import arrival_rng
from pytest_peakchaos.load.shapes import Constant, Double11, Ramp, Spike, Step, arrival_times, shape_from_dict


def test_constant_ramp_step_spike_rates() -> None:
    assert Constant(10, 5.0).rate(3) == 5.0
    assert Constant(10, 5.0).rate(10) == 0.0
    r = Ramp(10, 0.0, 100.0)
    assert r.rate(5) == pytest.approx(50.0)
    assert r.peak() == 100.0
    s = Step(30, ((0.0, 1.0), (10.0, 5.0), (20.0, 2.0)))
    assert [s.rate(t) for t in (0, 9.9, 10, 25)] == [1.0, 1.0, 5.0, 2.0]
    sp = Spike(10, 1.0, 50.0, 4.0, 1.0)
    assert [sp.rate(t) for t in (3.9, 4.0, 4.99, 5.0)] == [1.0, 50.0, 50.0, 1.0]


def test_double11_phases() -> None:
    d = Double11(100, baseline=2, forecast=10, spike_multiple=3, buildup=0.3, spike=0.1, plateau=0.2, decay=0.2)
    assert d.rate(10) == 2  # baseline (first 20 s)
    assert 2 < d.rate(35) < 10  # evening build-up
    assert d.rate(55) == pytest.approx(30)  # midnight spike: 3x forecast
    assert d.rate(70) == pytest.approx(10)  # plateau at forecast
    assert 2 <= d.rate(95) < 10  # decay
    assert d.peak() == pytest.approx(30)
    with pytest.raises(ValueError, match="add up to at most 1"):
        Double11(60, buildup=0.5, spike=0.5, plateau=0.5)


def test_over_and_scaled_keep_proportions() -> None:
    d = Double11(100, baseline=2, forecast=10)
    short = d.over(10)
    assert short.duration == 10
    assert short.rate(5.5) == pytest.approx(d.rate(55))
    assert d.scaled(2).rate(55) == pytest.approx(2 * d.rate(55))
    s = Spike(10, 1, 9, 4, 1).over(20)
    assert s.rate(8.5) == 9
    assert s.expected_sessions() == pytest.approx(2 * Spike(10, 1, 9, 4, 1).expected_sessions(), rel=1e-3)


def test_shape_from_dict_round_trip_and_errors() -> None:
    for shape in (Constant(60, 3), Ramp(30, 1, 9), Step(20, ((0, 1), (5, 3))), Spike(20, 1, 5, 3, 2), Double11(60, 1, 5)):
        assert shape_from_dict(shape.to_dict()) == shape
    assert shape_from_dict({"shape": "constant", "rate": 4, "duration": "2m"}) == Constant(120, 4)
    with pytest.raises(ValueError, match=r"arrival\.shape: unknown shape 'wave'; valid values: constant, ramp, step, spike, double11"):
        shape_from_dict({"shape": "wave"})
    with pytest.raises(ValueError, match=r"arrival\.rat: unknown key .*valid keys: shape, duration, rate"):
        shape_from_dict({"shape": "constant", "rat": 3})
    with pytest.raises(ValueError, match=r"arrival\.start: expected a number"):
        shape_from_dict({"shape": "ramp", "start": "x", "end": 1})


def _count(shape: object, seed: int, scale: float = 1.0) -> list[float]:
    assert hasattr(shape, "peak")
    return list(arrival_times(shape, random.Random(seed), scale=scale))  # type: ignore[arg-type]


def test_constant_arrival_count_within_2_percent() -> None:
    times = _count(Constant(100.0, 1000.0), seed=1)
    assert abs(len(times) - 100_000) / 100_000 <= 0.02
    assert times == sorted(times) and times[-1] < 100.0
    # exponential inter-arrival times: mean 1/rate, coefficient of variation ~1
    gaps = [b - a for a, b in zip(times, times[1:])]
    mean = sum(gaps) / len(gaps)
    sd = math.sqrt(sum((g - mean) ** 2 for g in gaps) / len(gaps))
    assert mean == pytest.approx(0.001, rel=0.02)
    assert sd / mean == pytest.approx(1.0, rel=0.05)


def test_double11_arrivals_follow_each_phase() -> None:
    shape = Double11(100.0, baseline=300, forecast=1000, spike_multiple=3)
    times = _count(shape, seed=5)
    build, spike, plateau, decay = shape._bounds()
    edges = [0.0, build, spike, plateau, decay, shape.duration]
    for lo, hi in zip(edges, edges[1:]):
        expected = shape.expected_sessions(lo, hi)
        got = sum(1 for t in times if lo <= t < hi)
        assert abs(got - expected) / expected <= 0.02, (lo, hi, got, expected)


@settings(max_examples=10, deadline=None)
@given(
    kind=st.sampled_from(["constant", "ramp", "step", "spike", "double11"]),
    level=st.floats(1500, 3000),
    scale=st.sampled_from([0.5, 1.0, 2.0]),
    seed=st.integers(0, 2**32),
)
def test_arrival_counts_match_any_shape(kind: str, level: float, scale: float, seed: int) -> None:
    duration = 60.0
    shape = {
        "constant": Constant(duration, level),
        "ramp": Ramp(duration, level / 4, level),
        "step": Step(duration, ((0.0, level / 2), (20.0, level), (40.0, level / 3))),
        "spike": Spike(duration, level / 2, level * 2, 20.0, 10.0),
        "double11": Double11(duration, baseline=level / 3, forecast=level, spike_multiple=2.5),
    }[kind]
    expected = shape.expected_sessions() * scale
    assert expected >= 25_000  # enough sessions: one standard deviation is <= 0.63 %, 2 % is > 3 sd
    got = len(list(arrival_times(shape, arrival_rng(seed), scale=scale)))
    assert abs(got - expected) / expected <= 0.02, (kind, got, expected)


def test_arrivals_are_bounded_by_limit_and_deterministic() -> None:
    shape = Constant(10.0, 100.0)
    assert len(list(arrival_times(shape, random.Random(3), limit=17))) == 17
    assert _count(shape, 9) == _count(shape, 9)
    assert _count(shape, 9) != _count(shape, 10)
    assert list(arrival_times(Constant(10.0, 0.0), random.Random(1))) == []
