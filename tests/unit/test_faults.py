"""Fault values: validation, descriptions, serialisation and schedules (no network)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from pytest_peakchaos import faults
from pytest_peakchaos.faults import (
    CpuFault,
    DownFault,
    Fault,
    FaultSchedule,
    PauseFault,
    ToxicFault,
    bandwidth,
    capacity,
    cpu,
    down,
    from_dict,
    latency,
    limit_data,
    pause,
    reset_peer,
    slicer,
    slow_close,
    timeout,
    toxic,
)

# --------------------------------------------------------------------------- constructors


def test_latency_values() -> None:
    f = latency(800, jitter=200, start="15s", length="30s")
    assert isinstance(f, ToxicFault)
    assert f.toxic_type == "latency"
    assert f.attributes == {"latency": 800, "jitter": 200}
    assert f.direction == "downstream"
    assert f.toxicity == 1.0
    assert (f.start, f.length, f.end()) == (15.0, 30.0, 45.0)
    assert f.streams == ("downstream",)
    assert f.describe() == "latency 800±200ms downstream 15s→45s"


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda: latency(-1), r"latency: ms must be a whole number from 0 to \d+ \(ms\), got -1"),
        (lambda: latency(10.5), r"latency: ms must be a whole number .*got 10\.5"),  # type: ignore[arg-type]
        (lambda: latency("800"), r"latency: ms must be .*got '800'"),  # type: ignore[arg-type]
        (lambda: latency(True), r"latency: ms must be .*got True"),
        (lambda: latency(100, jitter=-5), r"latency: jitter must be a whole number from 0"),
        (lambda: latency(100, jitter=150), r"latency: jitter must be from 0 to ms \(100ms\), got 150"),
        (lambda: bandwidth(0), r"bandwidth: kb_per_s must be a whole number from 1 to \d+ \(KB/s\), got 0"),
        (lambda: bandwidth(-10), r"bandwidth: kb_per_s must be .*got -10"),
        (lambda: timeout(-1), r"timeout: ms must be a whole number from 0 .*\(ms\), got -1"),
        (lambda: reset_peer(-3), r"reset_peer: timeout_ms must be a whole number from 0 .*got -3"),
        (lambda: slow_close(-1), r"slow_close: delay_ms must be .*got -1"),
        (lambda: slicer(0), r"slicer: average_size must be a whole number from 1 .*\(bytes\), got 0"),
        (lambda: slicer(64, size_variation=-1), r"slicer: size_variation must be a whole number from 0"),
        (lambda: slicer(64, size_variation=64), r"slicer: size_variation must be from 0 to average_size - 1 \(63\)"),
        (lambda: slicer(64, delay_us=-1), r"slicer: delay_us must be a whole number from 0 .*\(µs\), got -1"),
        (lambda: limit_data(-1), r"limit_data: bytes must be a whole number from 0 .*\(bytes\), got -1"),
        (lambda: latency(2**40), r"latency: ms must be a whole number from 0 to 2147483647"),
    ],
)
def test_toxic_constructors_reject_bad_values(make: Any, expected: str) -> None:
    with pytest.raises(ValueError, match=expected):
        make()


@pytest.mark.parametrize("direction", ["sideways", "Downstream", "", None, "up"])
def test_unknown_direction_lists_valid_values(direction: Any) -> None:
    with pytest.raises(ValueError, match="direction must be one of upstream, downstream, both") as info:
        latency(100, direction=direction)
    assert repr(direction) in str(info.value)


@pytest.mark.parametrize("toxicity", [-0.1, 1.01, float("nan"), "1", True])
def test_toxicity_must_be_between_0_and_1(toxicity: Any) -> None:
    with pytest.raises(ValueError, match=r"latency: toxicity must be a number from 0 to 1"):
        latency(100, toxicity=toxicity)


@pytest.mark.parametrize("toxicity", [0, 0.0, 0.25, 1])
def test_toxicity_bounds_are_inclusive(toxicity: float) -> None:
    assert latency(100, toxicity=toxicity).toxicity == float(toxicity)


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"start": -1}, r"latency: start: must be zero or positive"),
        ({"start": "soon"}, r"latency: start: cannot read 'soon' as a duration"),
        ({"start": float("inf")}, r"latency: start must be a finite duration"),
        ({"length": 0}, r"latency: length must be a positive finite duration"),
        ({"length": "0s"}, r"latency: length must be a positive finite duration"),
        ({"length": -2}, r"latency: length: must be zero or positive"),
        ({"length": "1 fortnight"}, r"latency: length: cannot read"),
    ],
)
def test_timing_is_validated(kwargs: dict[str, Any], expected: str) -> None:
    with pytest.raises(ValueError, match=expected):
        latency(100, **kwargs)


def test_timing_accepts_numbers_and_unit_strings() -> None:
    f = latency(100, start="500ms", length=2)
    assert (f.start, f.length) == (0.5, 2.0)
    assert latency(100).start is None and latency(100).length is None
    assert latency(100, start=0).start == 0.0


def test_every_toxic_constructor() -> None:
    assert bandwidth(64).attributes == {"rate": 64}
    assert timeout(0).attributes == {"timeout": 0}
    assert reset_peer().attributes == {"timeout": 0}
    assert reset_peer(timeout_ms=250).attributes == {"timeout": 250}
    assert slow_close(500).attributes == {"delay": 500}
    assert slicer(64, 8, 10).attributes == {"average_size": 64, "size_variation": 8, "delay": 10}
    assert limit_data(1024).attributes == {"bytes": 1024}
    assert latency(100.0).attributes == {"latency": 100, "jitter": 0}  # type: ignore[arg-type]  # whole floats are fine


def test_generic_toxic_matches_named_constructors() -> None:
    assert toxic("latency", latency=800, jitter=200) == latency(800, 200)
    assert toxic("bandwidth", rate=10, direction="upstream") == bandwidth(10, direction="upstream")
    assert toxic("reset_peer") == reset_peer()
    assert toxic("slicer", average_size=10, delay=5) == slicer(10, delay_us=5)


def test_generic_toxic_unknown_type_lists_all_types() -> None:
    with pytest.raises(ValueError) as info:
        toxic("packet_loss", loss_rate=10)
    message = str(info.value)
    assert "unknown toxic type 'packet_loss'" in message
    for name in ("latency", "bandwidth", "slow_close", "timeout", "reset_peer", "slicer", "limit_data"):
        assert name in message
    assert "down()" in message
    assert faults.TOXIC_TYPES == (
        "latency", "bandwidth", "slow_close", "timeout", "reset_peer", "slicer", "limit_data",
    )


def test_generic_toxic_unknown_or_missing_attribute() -> None:
    with pytest.raises(ValueError, match=r"latency: unknown attribute\(s\) rate; valid attributes: latency, jitter"):
        toxic("latency", rate=5)
    with pytest.raises(ValueError, match=r"bandwidth: rate is required \(KB/s\)"):
        toxic("bandwidth")
    with pytest.raises(ValueError, match=r"latency: latency must be a whole number from 0"):
        toxic("latency", latency=-5)


def test_down_pause_cpu() -> None:
    assert isinstance(down(), DownFault)
    assert down(start="1s", length="2s").describe() == "down 1s→3s"
    assert isinstance(pause(length=5), PauseFault)
    assert pause(length=5).describe() == "pause for 5s"
    c = cpu(0.1, start=10)
    assert isinstance(c, CpuFault) and c.cpus == 0.1
    assert c.describe() == "cpu 0.1 CPU from 10s"
    assert capacity(cpus=0.1, start=10) == c
    assert cpu(2).cpus == 2.0
    assert c.needs_capacity and pause().needs_capacity
    assert not down().needs_capacity and not latency(1).needs_capacity


@pytest.mark.parametrize("cpus", [0, -1, 0.001, float("nan"), float("inf"), "0.5", True])
def test_cpu_must_be_positive(cpus: Any) -> None:
    with pytest.raises(ValueError, match=r"cpu: cpus must be a number of CPUs >= 0\.01"):
        cpu(cpus)
    with pytest.raises(ValueError, match=r"cpu: cpus must be"):
        capacity(cpus=cpus)


def test_down_takes_no_direction() -> None:
    with pytest.raises(TypeError):
        down(direction="upstream")  # type: ignore[call-arg]


def test_faults_are_frozen_and_hashable() -> None:
    f = latency(100)
    with pytest.raises(AttributeError):
        f.start = 3  # type: ignore[misc]
    assert len({latency(100), latency(100), down(), down(), cpu(0.5)}) == 3


def test_direct_construction_is_validated_too() -> None:
    with pytest.raises(ValueError, match="unknown toxic type 'nope'"):
        ToxicFault(toxic_type="nope")
    with pytest.raises(ValueError, match="latency: latency must be"):
        ToxicFault(toxic_type="latency", attribute_items=(("latency", -1),))
    with pytest.raises(ValueError, match="cpu: cpus must be"):
        CpuFault(cpus=0)


# --------------------------------------------------------------------------- describe


@pytest.mark.parametrize(
    ("fault", "text"),
    [
        (latency(800, 200, start="15s", length="30s"), "latency 800±200ms downstream 15s→45s"),
        (latency(300), "latency 300ms downstream"),
        (latency(300, direction="both", length="500ms"), "latency 300ms both for 500ms"),
        (latency(300, toxicity=0.5), "latency 300ms on 50% of connections downstream"),
        (bandwidth(64, direction="upstream"), "bandwidth 64KB/s upstream"),
        (timeout(0), "timeout never closes (data held) downstream"),
        (timeout(2000, start=1.5, length=1), "timeout 2000ms downstream 1.5s→2.5s"),
        (reset_peer(), "reset_peer at once downstream"),
        (reset_peer(500), "reset_peer after 500ms downstream"),
        (slow_close(500), "slow_close 500ms downstream"),
        (slicer(64, 8, 10), "slicer 64±8B every 10µs downstream"),
        (slicer(64), "slicer 64B downstream"),
        (limit_data(1024), "limit_data 1024B downstream"),
        (down(start=0, length=10), "down 0s→10s"),
        (cpu(0.25), "cpu 0.25 CPU"),
        (pause(), "pause"),
    ],
)
def test_describe(fault: Fault, text: str) -> None:
    assert fault.describe() == text
    assert str(fault) == text


# --------------------------------------------------------------------------- to_dict / from_dict

ALL_FAULTS = [
    latency(800, 200, start="15s", length="30s"),
    latency(5, direction="both", toxicity=0.3),
    bandwidth(100, direction="upstream", start=1),
    timeout(0),
    timeout(250, length=3),
    reset_peer(10),
    slow_close(100),
    slicer(32, 4, 100),
    limit_data(0),
    toxic("latency", latency=1),
    down(start=2, length=3),
    cpu(0.1, start="1s", length="2s"),
    capacity(cpus=1.5),
    pause(start=4),
]


@pytest.mark.parametrize("fault", ALL_FAULTS, ids=lambda f: f.describe())
def test_to_dict_from_dict_roundtrip(fault: Fault) -> None:
    data = fault.to_dict()
    assert data["kind"] == fault.kind
    assert data["description"] == fault.describe()
    again = from_dict(json.loads(json.dumps(data)))
    assert again == fault
    assert type(again) is type(fault)


def test_to_dict_shape() -> None:
    assert latency(800, 200, start=15, length=30).to_dict() == {
        "kind": "toxic",
        "type": "latency",
        "attributes": {"latency": 800, "jitter": 200},
        "direction": "downstream",
        "toxicity": 1.0,
        "start": 15.0,
        "length": 30.0,
        "description": "latency 800±200ms downstream 15s→45s",
    }
    assert cpu(0.1).to_dict() == {"kind": "cpu", "cpus": 0.1, "start": None, "length": None, "description": "cpu 0.1 CPU"}


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"kind": "meteor"}, r"fault: kind must be one of toxic, down, cpu, pause; got 'meteor'"),
        ({}, r"fault: kind must be one of"),
        ("latency", r"fault: expected a mapping"),
        ({"kind": "down", "colour": "red"}, r"down fault: unknown key\(s\) colour; valid keys:"),
        ({"kind": "toxic", "type": "gremlin"}, r"unknown toxic type 'gremlin'; valid types: latency"),
        ({"kind": "toxic", "type": "latency", "attributes": {"latency": -1}}, r"latency: latency must be"),
        ({"kind": "toxic", "type": "latency", "attributes": [1]}, r"latency: attributes must be a mapping"),
        ({"kind": "toxic", "type": "latency", "attributes": {"start": 1}}, r"latency: attributes must be a mapping"),
        ({"kind": "toxic", "type": "latency", "direction": "left"}, r"direction must be one of upstream, downstream, both"),
        ({"kind": "cpu"}, r"cpu fault: cpus is required"),
        ({"kind": "cpu", "cpus": 0}, r"cpu: cpus must be"),
        ({"kind": "pause", "start": -1}, r"pause: start: must be zero or positive"),
    ],
)
def test_from_dict_rejects_bad_input(data: Any, expected: str) -> None:
    with pytest.raises(ValueError, match=expected):
        from_dict(data)


# --------------------------------------------------------------------------- schedules


def test_schedule_windows() -> None:
    schedule = FaultSchedule(
        [latency(800, start="15s", length="30s"), down(start=50), cpu(0.5, length=10)], duration_s="60s"
    )
    assert schedule.duration_s == 60.0
    windows = schedule.windows()
    assert [(w.index, w.start_s, w.end_s) for w in windows] == [(0, 15.0, 45.0), (1, 50.0, 60.0), (2, 0.0, 10.0)]
    assert windows[1].fault == down(start=50)
    assert schedule.needs_capacity
    assert not FaultSchedule([latency(1)], 1).needs_capacity
    assert len(schedule) == 3
    assert "latency 800ms downstream 15s→45s" in schedule.describe()


def test_schedule_roundtrip() -> None:
    schedule = FaultSchedule([latency(800, 100, start=1, length=2), pause(start=3)], duration_s=5)
    data = json.loads(json.dumps(schedule.to_dict()))
    assert FaultSchedule.from_dict(data) == schedule
    assert schedule.windows()[0].to_dict()["fault"]["type"] == "latency"


@pytest.mark.parametrize(
    ("faults_", "duration", "expected"),
    [
        (
            [latency(800, start="15s", length="30s")],
            "40s",
            r"fault #0 \(latency 800ms downstream 15s→45s\) ends at 45s \(start 15s \+ length 30s\), "
            r"after the run ends at 40s \(duration_s\)",
        ),
        (
            [latency(1), down(start=70)],
            60,
            r"fault #1 \(down from 70s\) starts at 70s, not before the run ends at 60s \(duration_s\)",
        ),
        ([down(start=60)], 60, r"fault #0 \(down from 60s\) starts at 60s, not before the run ends at 60s"),
        ([pause(length=61)], 60, r"fault #0 \(pause for 61s\) ends at 61s"),
        (
            [down(start=10, length=10), down(start=15, length=10)],
            60,
            r"faults #0 \(down 10s→20s\) and #1 \(down 15s→25s\) overlap from 15s to 20s; "
            r"down faults on a link must not overlap",
        ),
        ([cpu(0.1, start=1), cpu(0.5, start=30)], 60, r"faults #0 .* and #1 .* overlap from 30s to 60s; cpu faults"),
        ([pause(), pause(start=5, length=1)], 60, r"pause faults on a link must not overlap"),
        ([latency(1)], 0, r"duration_s must be a positive finite duration"),
        ([latency(1)], "-5s", r"duration_s: cannot read '-5s'"),
        (["latency"], 10, r"faults\[0\] is not a fault \('latency'\)"),
    ],
)
def test_schedule_bounds(faults_: list[Any], duration: Any, expected: str) -> None:
    with pytest.raises(ValueError, match=expected):
        FaultSchedule(faults_, duration_s=duration)


def test_schedule_allows_back_to_back_and_overlapping_toxics() -> None:
    FaultSchedule([down(start=0, length=10), down(start=10, length=10)], duration_s=20)
    FaultSchedule([latency(1, start=0, length=10), latency(2, start=5, length=10), bandwidth(5)], duration_s=20)
    FaultSchedule([latency(1, start=0, length=20)], duration_s=20)  # ends exactly with the run


def test_public_names_exist() -> None:
    for name in faults.__all__:
        assert hasattr(faults, name), name
    assert re.fullmatch(r"[a-z_, ]+", ", ".join(faults.DIRECTIONS))
