"""Session planning: seeded determinism, transitions that match the profile's matrix (chi-square),
cart rules, think times and Zipf popularity."""

from __future__ import annotations

from collections import Counter, defaultdict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from pytest_peakchaos.load.plan import plan_session, plan_sessions
from pytest_peakchaos.profiles import load_profile
from pytest_peakchaos.profiles.model import ENTRY, EXIT, NEEDS_CART, Profile

SESSIONS = 6000


def _transitions(profile: Profile, seed: int, n: int) -> dict[tuple[str, bool], Counter[str]]:
    """Observed next-state counts per (state, cart non-empty before the move)."""
    out: dict[tuple[str, bool], Counter[str]] = defaultdict(Counter)
    for plan in plan_sessions(profile, seed, n):
        if len(plan.steps) >= profile.behaviour.max_actions:
            continue  # cut by the bound, not by the chain
        state, cart = ENTRY, 0
        for step in plan.steps:
            out[(state, cart > 0)][step.action] += 1
            state, cart = step.action, step.cart_size
        out[(state, cart > 0)][EXIT] += 1
    return out


def _expected_row(profile: Profile, state: str, cart: bool) -> dict[str, float]:
    row = {b: p for b, p in profile.behaviour.transitions[state].items() if p > 0}
    if cart:
        return row
    allowed = {b: p for b, p in row.items() if b not in NEEDS_CART}
    total = sum(allowed.values())
    return {b: p / total for b, p in allowed.items()} if allowed else {EXIT: 1.0}


@pytest.mark.parametrize("name", ["normal", "double11"])
def test_transitions_match_the_matrix_chi_square(name: str) -> None:
    profile = load_profile(name)
    observed = _transitions(profile, seed=11, n=SESSIONS)
    tested = 0
    for (state, cart), counts in observed.items():
        expected = _expected_row(profile, state, cart)
        assert set(counts) <= set(expected), f"{state} (cart={cart}) went to {set(counts) - set(expected)}"
        total = sum(counts.values())
        targets = sorted(expected)
        exp = [expected[t] * total for t in targets]
        if total < 200 or min(exp) < 5:
            continue
        obs = [counts.get(t, 0) for t in targets]
        result = stats.chisquare(obs, exp)
        assert result.pvalue > 1e-4, f"{name}: row {state} (cart non-empty={cart}) differs: {dict(zip(targets, obs))} vs {exp}"
        tested += 1
    assert tested >= 8  # most rows had enough data to test


def test_a_wrong_matrix_is_detected() -> None:
    """The chi-square check has power: a small change to one row is caught."""
    profile = load_profile("double11")
    row = dict(profile.behaviour.transitions["view_product"])
    row["add_to_cart"] -= 0.05
    row["search"] += 0.05
    skewed = profile.with_(transitions={"view_product": row})
    observed = _transitions(skewed, seed=11, n=SESSIONS)
    counts = observed[("view_product", True)]
    expected = _expected_row(profile, "view_product", True)
    targets = sorted(expected)
    total = sum(counts.values())
    result = stats.chisquare([counts.get(t, 0) for t in targets], [expected[t] * total for t in targets])
    assert result.pvalue < 1e-4


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(-(2**40), 2**40), index=st.integers(0, 10**6), name=st.sampled_from(["normal", "double11"]))
def test_same_seed_same_session(seed: int, index: int, name: str) -> None:
    profile = load_profile(name)
    a = plan_session(profile, seed, index)
    b = plan_session(profile, seed, index)
    assert a == b
    assert len(a.steps) <= profile.behaviour.max_actions


def test_seed_and_index_change_the_sequence() -> None:
    profile = load_profile("double11")
    base = plan_sessions(profile, 1, 50)
    assert base == plan_sessions(profile, 1, 50)
    assert base != plan_sessions(profile, 2, 50)
    # a session's plan does not depend on how many sessions were planned before it
    assert plan_sessions(profile, 1, 10, first=40) == base[40:]
    assert len({p.actions for p in base}) > 25


@pytest.mark.parametrize("name", ["normal", "double11"])
def test_cart_rules(name: str) -> None:
    for plan in plan_sessions(load_profile(name), 3, 2000):
        cart: set[int] = set()
        for step in plan.steps:
            if step.action in NEEDS_CART:
                assert cart, f"{step.action} with an empty cart"
            if step.action == "add_to_cart":
                assert step.sku is not None
                cart.add(step.sku)
            elif step.action == "remove_from_cart":
                assert step.sku in cart
                cart.discard(step.sku)
            elif step.action == "checkout":
                cart.clear()
            assert step.cart_size == len(cart)


def test_add_to_cart_adds_the_product_just_viewed() -> None:
    for plan in plan_sessions(load_profile("double11"), 5, 500):
        for prev, step in zip(plan.steps, plan.steps[1:]):
            if step.action == "add_to_cart" and prev.action == "view_product":
                assert step.sku == prev.sku


def test_think_times_follow_the_profile() -> None:
    profile = load_profile("normal")
    scale = profile.behaviour.think_scale
    thinks: dict[str, list[float]] = defaultdict(list)
    for plan in plan_sessions(profile, 8, 4000):
        assert plan.steps[0].think_s == 0.0  # a session starts at its arrival
        for prev, step in zip(plan.steps, plan.steps[1:]):
            thinks[prev.action].append(step.think_s)
    for action, values in thinks.items():
        if len(values) < 2000:
            continue
        dist = profile.behaviour.think_for(action)
        mean = sum(values) / len(values)
        assert mean == pytest.approx(dist.expected() * scale, rel=0.08), action
        assert max(values) <= dist.high * scale + 1e-9


def test_product_picks_are_zipf_popular() -> None:
    profile = load_profile("double11")
    counts = Counter(s.sku for p in plan_sessions(profile, 4, 3000) for s in p.steps if s.action == "view_product")
    s_exp = profile.catalog.zipf_s
    n = profile.catalog.products
    weights = [1 / k**s_exp for k in range(1, n + 1)]
    total_w = sum(weights)
    total = sum(counts.values())
    top = 10
    first = profile.catalog.first_sku
    obs = [counts.get(first + k, 0) for k in range(top)] + [total - sum(counts.get(first + k, 0) for k in range(top))]
    exp = [weights[k] / total_w * total for k in range(top)] + [sum(weights[top:]) / total_w * total]
    assert stats.chisquare(obs, exp).pvalue > 1e-4
    assert counts.most_common(1)[0][0] == first  # the hottest deal is the most viewed


def test_double11_shoppers_churn_the_cart_more_than_normal_ones() -> None:
    normal = load_profile("normal").expected_visits(6000)
    d11 = load_profile("double11").expected_visits(6000)
    assert sum(d11.values()) > 2 * sum(normal.values())  # longer sessions
    assert d11["add_to_cart"] > 5 * normal["add_to_cart"]  # repeated add-to-cart
    assert d11["remove_from_cart"] > 20 * normal["remove_from_cart"]  # removals before paying
    share = lambda v: v["checkout"] / sum(v.values())  # noqa: E731
    assert share(d11) > 1.3 * share(normal)  # higher checkout share
