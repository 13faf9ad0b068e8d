"""pytest_peakchaos.strategies: every generated value is valid, windows fit the run, and shrinking
reaches the smallest example ("less": fewer faults, shorter windows, gentler values, shorter
sessions, lower scale)."""

from __future__ import annotations

import random
from typing import Any, Callable, TypeVar

import pytest
from hypothesis import HealthCheck, find, given, settings
from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy

from pytest_peakchaos.faults import DIRECTIONS, CpuFault, Fault, FaultSchedule, ToxicFault, from_dict
from pytest_peakchaos.load import load_profile
from pytest_peakchaos.profiles.model import NEEDS_CART
from pytest_peakchaos.strategies import (
    CAPACITY_KINDS,
    EXCLUSIVE_KINDS,
    KINDS,
    FaultBounds,
    ShopperSession,
    capacity_faults,
    fault_kind,
    fault_schedules,
    faults,
    scales,
    seeds,
    shopper_sessions,
    toxic_faults,
)

T = TypeVar("T")

CHECK = settings(max_examples=150, database=None, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def smallest(strategy: SearchStrategy[T], condition: Callable[[T], bool], seed: int = 0) -> T:
    """hypothesis.find, seeded (the same answer every run) and without the example database."""
    return find(strategy, condition, settings=settings(database=None, max_examples=2000), random=random.Random(seed))


def is_latency(f: Fault, at_least: int = 0) -> bool:
    return isinstance(f, ToxicFault) and f.toxic_type == "latency" and f.attributes["latency"] >= at_least


# --------------------------------------------------------------------------- single faults


@CHECK
@given(fault=faults())
def test_every_generated_fault_is_valid_and_round_trips(fault: Fault) -> None:
    assert fault_kind(fault) in KINDS
    assert fault.start is None and fault.length is None  # a window only comes with a schedule
    assert from_dict(fault.to_dict()) == fault  # validated again from its JSON form
    if isinstance(fault, ToxicFault):
        assert fault.direction in DIRECTIONS and fault.toxicity == 1.0


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_can_be_generated(kind: str) -> None:
    found = smallest(faults(), lambda f: fault_kind(f) == kind)
    assert fault_kind(found) == kind


@CHECK
@given(fault=faults(bounds={"latency_ms": (300, 400), "jitter_ms": (0, 50), "bandwidth_kb_per_s": (10, 20), "cpus": (0.2, 0.3)}))
def test_bounds_are_respected(fault: Fault) -> None:
    kind = fault_kind(fault)
    if kind == "latency":
        assert isinstance(fault, ToxicFault)
        assert 300 <= fault.attributes["latency"] <= 400 and 0 <= fault.attributes["jitter"] <= 50
    elif kind == "bandwidth":
        assert isinstance(fault, ToxicFault)
        assert 10 <= fault.attributes["rate"] <= 20
    elif kind == "cpu":
        assert isinstance(fault, CpuFault)
        assert 0.2 <= fault.cpus <= 0.3


@CHECK
@given(toxic=toxic_faults(), capacity=capacity_faults())
def test_toxic_and_capacity_families(toxic: Fault, capacity: Fault) -> None:
    assert isinstance(toxic, ToxicFault)
    assert fault_kind(capacity) in CAPACITY_KINDS and capacity.needs_capacity


@pytest.mark.parametrize(
    ("kind", "gentlest"),
    [
        ("latency", "latency 50ms downstream"),
        ("bandwidth", "bandwidth 1024KB/s downstream"),  # more bandwidth is less of a fault
        ("limit_data", "limit_data 65536B downstream"),
        ("slicer", "slicer 512B downstream"),
        ("slow_close", "slow_close 100ms downstream"),
        ("cpu", "cpu 0.5 CPU"),  # more CPU is less of a fault
        ("down", "down"),
    ],
)
def test_each_kind_shrinks_to_its_gentlest_value(kind: str, gentlest: str) -> None:
    assert smallest(faults(kinds=(kind,)), lambda f: True).describe() == gentlest


def test_directions_can_be_restricted() -> None:
    found = smallest(faults(kinds=("latency",), directions=("upstream",)), lambda f: True)
    assert isinstance(found, ToxicFault) and found.direction == "upstream"


# --------------------------------------------------------------------------- schedules


@CHECK
@given(data=st.data())
def test_every_schedule_is_valid_and_fits_the_run(data: st.DataObject) -> None:
    duration = data.draw(st.sampled_from([2.0, 3.0, 4.5, 10.0, 60.0]), label="duration")
    step = data.draw(st.sampled_from([0.25, 0.5, 1.0]), label="step")
    min_length = data.draw(st.sampled_from([step, 2 * step, 1.0]), label="min_length")
    overlapping = data.draw(st.booleans(), label="overlapping")
    fit = int(duration / step) // max(1, round(min_length / step))
    max_faults = data.draw(st.integers(1, min(4, fit) if not overlapping else 4), label="max_faults")
    schedule = data.draw(
        fault_schedules(duration, max_faults=max_faults, overlapping=overlapping, min_length=min_length, step=step),
        label="schedule",
    )
    assert isinstance(schedule, FaultSchedule)  # constructing it validated windows and overlaps
    assert schedule.duration_s == duration
    assert 1 <= len(schedule) <= max_faults
    for w in schedule.windows():
        assert w.fault.start is not None and w.fault.length is not None
        assert 0 <= w.start_s < w.end_s <= duration + 1e-9
        assert w.end_s - w.start_s >= min_length - 1e-9
        assert abs(w.start_s / step - round(w.start_s / step)) < 1e-6  # on the step grid
        assert abs((w.end_s - w.start_s) / step - round((w.end_s - w.start_s) / step)) < 1e-6
    starts = [w.start_s for w in schedule.windows()]
    assert starts == sorted(starts)  # listed in time order
    assert FaultSchedule.from_dict(schedule.to_dict()) == schedule


@CHECK
@given(schedule=fault_schedules(6, max_faults=4, overlapping=False, min_length=0.5, step=0.5))
def test_non_overlapping_windows_are_ordered_and_disjoint(schedule: FaultSchedule) -> None:
    windows = schedule.windows()
    for a, b in zip(windows, windows[1:]):
        assert a.end_s <= b.start_s + 1e-9, (a, b)


@CHECK
@given(schedule=fault_schedules(4, max_faults=4, kinds=("down", "pause", "cpu", "latency")))
def test_overlapping_schedules_never_overlap_exclusive_kinds(schedule: FaultSchedule) -> None:
    for kind in EXCLUSIVE_KINDS:
        same = [w for w in schedule.windows() if fault_kind(w.fault) == kind]
        for a, b in zip(same, same[1:]):
            assert a.end_s <= b.start_s + 1e-9


@CHECK
@given(schedule=fault_schedules(30, max_faults=3, min_faults=2, max_length=5, kinds=("latency",)))
def test_min_faults_and_max_length(schedule: FaultSchedule) -> None:
    assert 2 <= len(schedule) <= 3
    assert all(w.end_s - w.start_s <= 5 for w in schedule.windows())


def test_shrinks_to_a_single_latency_of_exactly_the_threshold_with_the_shortest_window() -> None:
    schedule = smallest(fault_schedules(10, max_faults=4), lambda s: any(is_latency(f, 500) for f in s.faults))
    assert len(schedule) == 1
    (fault,) = schedule.faults
    assert isinstance(fault, ToxicFault) and fault.toxic_type == "latency"
    assert fault.attributes == {"latency": 500, "jitter": 0}
    assert fault.direction == "downstream"
    assert (fault.start, fault.length) == (0.0, 1.0)  # starts with the run, min_length long
    assert schedule.describe() == "latency 500ms downstream 0s→1s"


def test_shrinks_to_the_minimum_length_it_is_given() -> None:
    schedule = smallest(
        fault_schedules("20s", max_faults=3, min_length="2s", step="500ms"),
        lambda s: any(is_latency(f, 800) for f in s.faults),
    )
    assert schedule.describe() == "latency 800ms downstream 0s→2s"


def test_shrinks_toward_fewer_faults() -> None:
    schedule = smallest(fault_schedules(10, max_faults=4, overlapping=False), lambda s: len(s) >= 2)
    assert len(schedule) == 2
    assert [(w.start_s, w.end_s) for w in schedule.windows()] == [(0.0, 1.0), (1.0, 2.0)]  # back to back, shortest


def test_shrinks_toward_shorter_windows() -> None:
    schedule = smallest(fault_schedules(10, max_faults=3), lambda s: any((f.length or 0) >= 3 for f in s.faults))
    assert len(schedule) == 1
    assert (schedule.faults[0].start, schedule.faults[0].length) == (0.0, 3.0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"duration": 0}, "duration must be a positive"),
        ({"duration": 2, "min_length": 3}, "does not fit in the run"),
        ({"duration": 3, "max_faults": 4, "overlapping": False}, "non-overlapping faults"),
        ({"duration": 3, "min_faults": 2, "max_faults": 1}, "min_faults (2) is more than max_faults (1)"),
        ({"duration": 3, "kinds": ("latency", "flood")}, "unknown kind 'flood'"),
        ({"duration": 3, "directions": ("sideways",)}, "unknown direction 'sideways'"),
        ({"duration": 3, "bounds": {"latency": (1, 2)}}, "unknown key(s) latency"),
        ({"duration": 3, "bounds": {"latency_ms": (500, 100)}}, "FaultBounds.latency_ms"),
        ({"duration": 3, "min_length": 2, "max_length": 1}, "shorter than min_length"),
        ({"duration": 3, "step": 0}, "step must be a positive duration"),
        ({"duration": 2, "min_faults": 3, "max_faults": 3, "kinds": ("down",)}, "do not fit"),
    ],
)
def test_bad_arguments_are_clear_errors(kwargs: dict[str, Any], message: str) -> None:
    duration = kwargs.pop("duration")
    with pytest.raises(ValueError) as info:
        fault_schedules(duration, **kwargs)
    assert message in str(info.value)


def test_fault_bounds_of() -> None:
    assert FaultBounds.of(None) == FaultBounds()
    assert FaultBounds.of({"latency_ms": [800, 900]}).latency_ms == (800, 900)
    with pytest.raises(ValueError, match="cpus"):
        FaultBounds(cpus=(0.001, 0.5))


# --------------------------------------------------------------------------- scales and seeds


@CHECK
@given(scale=scales(0.5, 4.0), seed=seeds())
def test_scales_and_seeds_stay_in_bounds(scale: float, seed: int) -> None:
    assert 0.5 <= scale <= 4.0
    assert 0 <= seed < 2**31


def test_scales_shrink_to_the_lower_bound() -> None:
    assert smallest(scales(0.5, 4.0), lambda x: True) == 0.5
    assert 2.0 < smallest(scales(0.5, 4.0), lambda x: x > 2.0) <= 3.0
    assert smallest(seeds(), lambda s: True) == 0
    with pytest.raises(ValueError, match="lo"):
        scales(3.0, 1.0)


# --------------------------------------------------------------------------- shopper sessions


@pytest.mark.parametrize("name", ["double11", "normal"])
def test_every_session_walks_non_zero_transitions_from_entry_to_exit(name: str) -> None:
    profile = load_profile(name)
    transitions = profile.behaviour.transitions

    @CHECK
    @given(session=shopper_sessions(name, max_actions=30))
    def check(session: ShopperSession) -> None:
        path = session.path
        assert path[0] == "entry" and path[-1] == "exit"
        assert 1 <= len(session) <= 30
        for a, b in zip(path, path[1:]):
            assert transitions[a].get(b, 0.0) > 0, f"{a} -> {b} has probability 0 in {name}"
        cart: set[int] = set()
        last_viewed = None
        for prev, step in zip(("entry", *session.actions), session.steps):
            if step.action in NEEDS_CART:
                assert cart, f"{step.action} with an empty cart: {session.describe()}"
            if step.action == "view_product":
                last_viewed = step.sku
            elif step.action == "add_to_cart":
                assert step.sku is not None
                if prev == "view_product":
                    assert step.sku == last_viewed  # adds the product just viewed
                cart.add(step.sku)
            elif step.action == "remove_from_cart":
                assert step.sku in cart
                cart.discard(step.sku)
            elif step.action == "checkout":
                cart.clear()
            if step.sku is not None:
                assert profile.catalog.first_sku <= step.sku < profile.catalog.first_sku + profile.catalog.products
        assert session.legacy_calls == sum(1 for a in session.actions if a in profile.legacy_actions)

    check()


def test_sessions_shrink_toward_shorter_paths() -> None:
    assert len(smallest(shopper_sessions("double11"), lambda s: True)) == 1  # one action, then exit
    paying: list[int] = []

    def pays(s: ShopperSession) -> bool:
        if "checkout" in s.actions:
            paying.append(len(s))
            return True
        return False

    with_checkout = smallest(shopper_sessions("double11"), pays)
    # the shortest way to pay is view_product -> add_to_cart -> view_cart -> checkout (4 actions);
    # hypothesis' shrinking is a local search, so the promise is "shorter than what it found"
    assert "checkout" in with_checkout.actions, with_checkout.describe()
    assert len(with_checkout) <= paying[0], (paying[0], with_checkout.describe())
    assert len(with_checkout) < max(paying) or len(set(paying)) == 1
    assert with_checkout.describe().startswith("entry → ") and with_checkout.describe().endswith(" → exit")


def test_long_sessions_are_generated_too() -> None:
    lengths: list[int] = []

    @settings(max_examples=200, database=None, derandomize=True)
    @given(session=shopper_sessions("double11", max_actions=40))
    def collect(session: ShopperSession) -> None:
        lengths.append(len(session))

    collect()
    assert max(lengths) >= 30
    assert sum(lengths) / len(lengths) >= 8  # not just the trivial sessions


def test_session_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="max_actions"):
        shopper_sessions("double11", max_actions=0)


def test_shopper_sessions_walk_a_profile_with_its_own_states() -> None:
    from hypothesis import given, settings

    from pytest_peakchaos.profiles import profile_from_yaml_text
    from pytest_peakchaos.strategies import shopper_sessions

    prof = profile_from_yaml_text(
        "name: own\narrival: {shape: constant, rate: 1, duration: 1s}\n"
        "behaviour:\n  transitions:\n    entry: {item: 1.0}\n    item: {put: 0.5, item: 0.3, exit: 0.2}\n"
        "    put: {item: 0.3, take: 0.3, pay: 0.4}\n    take: {item: 0.5, exit: 0.5}\n    pay: {exit: 1.0}\n"
        "bindings:\n  item: {method: GET, path: '/i/{sku}', draw: [sku]}\n"
        "  put: {method: POST, path: /c, cart: add}\n  take: {method: DELETE, path: '/c/{sku}', cart: remove}\n"
        "  pay: {method: POST, path: /pay, cart: clear, legacy: true}\n"
    )

    @settings(max_examples=60, deadline=None)
    @given(shopper_sessions(prof, max_actions=12))
    def check(session: Any) -> None:
        cart: list[int] = []
        prev = "entry"
        for step in session.steps:
            assert prof.behaviour.transitions[prev].get(step.action, 0) > 0
            if step.action == "put":
                assert step.sku is not None
                cart.append(step.sku) if step.sku not in cart else None
            elif step.action == "take":
                assert step.sku in cart
                cart.remove(step.sku)
            elif step.action == "pay":
                assert cart
                cart.clear()
            prev = step.action
        assert prof.behaviour.transitions[prev].get("exit", 0) > 0
        assert session.legacy_calls == session.actions.count("pay")

    check()
