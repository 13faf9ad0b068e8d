"""Profiles: built-ins, YAML validation (errors name the key and the valid values), composition."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_peakchaos.load.shapes import Constant, Ramp
from pytest_peakchaos.profiles import (
    Profile,
    ProfileError,
    RequestBinding,
    builtin_bindings,
    builtin_profiles,
    load_bindings,
    load_profile,
    profile_from_yaml_text,
)

MINIMAL = """
name: tiny
arrival: {shape: constant, rate: 5, duration: 10s}
behaviour:
  transitions:
    entry: {home: 1.0}
    home: {home: 0.5, exit: 0.5}
bindings:
  home: {method: GET, path: /}
"""


def test_builtins_are_listed_and_valid() -> None:
    assert set(builtin_profiles()) >= {"normal", "double11"}
    assert "reference_shop" in builtin_bindings()
    for name in ("normal", "double11"):
        p = load_profile(name)
        assert p.name == name
        assert p.legacy_actions == frozenset({"add_to_cart", "remove_from_cart", "checkout"})
        assert "view_product" not in p.legacy_actions
        assert set(p.actions) <= set(p.bindings)
        assert p.sources, "every built-in documents where its numbers come from"
    assert load_profile("double11").patience.wait.mean < load_profile("normal").patience.wait.mean


def test_reference_shop_bindings() -> None:
    bindings, legacy = load_bindings("reference_shop")
    assert bindings["add_to_cart"] == RequestBinding(
        method="POST", path="/carts/{cart_id}/items", json={"sku": "{sku}", "qty": "{qty}"}, cart="add", klass="legacy"
    )
    checkout = bindings["checkout"]
    assert checkout.idempotency_key == "Idempotency-Key"
    assert checkout.order_id == "order_id"
    assert {201, 202} <= set(checkout.acknowledge)
    assert legacy == frozenset({"add_to_cart", "remove_from_cart", "checkout"})


def test_double11_means_more_legacy_calls_per_session() -> None:
    normal = load_profile("normal").expected_legacy_calls_per_session(4000)
    d11 = load_profile("double11").expected_legacy_calls_per_session(4000)
    assert d11 > 5 * normal


def test_minimal_yaml_and_defaults() -> None:
    p = profile_from_yaml_text(MINIMAL)
    assert p.name == "tiny"
    assert p.shape == Constant(10.0, 5.0)
    assert p.actions == ("home",)
    assert p.behaviour.think_default.mean == 7.0  # TPC-W default


def test_round_trip_through_dict() -> None:
    for name in ("normal", "double11"):
        p = load_profile(name)
        assert Profile.from_dict(p.to_dict()) == p


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("colour: red\n", r"unknown key 'colour'; valid keys: name, kind, base, description, arrival"),
        (
            "arrival: {shape: wave}\n",
            r"arrival\.shape: unknown shape 'wave'; valid values: constant, ramp, step, spike, double11",
        ),
        (
            "behaviour:\n  transitions:\n    entry: {home: 0.7}\n    home: {exit: 1.0}\n",
            r"behaviour\.transitions\.entry: probabilities must sum to 1, they sum to 0\.7",
        ),
        (
            "behaviour:\n  transitions:\n    entry: {hom: 1.0}\n",
            r"behaviour\.transitions\.entry\.hom: unknown target state 'hom' \(it has no row\); valid values: exit",
        ),
        (
            "behaviour:\n  transitions:\n    entry: {home: 1.0}\n    home: {exit: 1.0}\n  think:\n    home: {dist: gamma, mean: 1}\n",
            r"behaviour\.think\.home\.dist: unknown distribution 'gamma'; valid values: constant, exponential, uniform, lognormal",
        ),
        (
            "bindings:\n  home: {method: FETCH, path: /}\n",
            r"bindings\.home\.method: unknown HTTP method 'FETCH'; valid values: GET, POST",
        ),
        (
            "bindings:\n  home: {method: GET, path: '/x/{colour}'}\n",
            r"unknown template variable \{colour\}; valid values: cart, cart_id, cart_items, cart_size, idempotency_key, page, qty, query, run_id, session, sku",
        ),
        (
            "bindings:\n  hme: {method: GET, path: /}\n",
            r"state 'home' can be reached but has no binding; bound states: hme",
        ),
        (
            "bindings:\n  home: {method: GET, path: /}\n  hme: {method: GET, path: /}\n",
            r"bindings\.hme: not a state of the behaviour graph; valid values: home",
        ),
        (
            "behaviour:\n  transitions:\n    entry: {home: 0.5, search: 0.5}\n    home: {exit: 1.0}\n    search: {exit: 1.0}\n",
            r"state 'search' can be reached but has no binding; bound states: home",
        ),
        (
            "patience: {retry_probability: 2}\n",
            r"patience\.retry_probability: must be <= 1",
        ),
        (
            "legacy_actions: [pay]\n",
            r"legacy_actions: unknown action 'pay'; valid values: home",
        ),
        (
            "behaviour:\n  transitions:\n    entry: {home: 1.0}\n    home: {home: 1.0}\n",
            r"no way out: no path from 'home' to 'exit'",
        ),
        ("arrival: {shape: constant, rate: 5, duration: soon}\n", r"arrival\.duration: cannot read 'soon' as a duration"),
        ("catalog: {products: 0}\n", r"catalog\.products: must be >= 1"),
    ],
)
def test_yaml_errors_name_the_key_and_the_valid_values(change: str, message: str) -> None:
    import yaml

    data = yaml.safe_load(MINIMAL)
    data.update(yaml.safe_load(change))
    with pytest.raises(ProfileError, match=message):
        profile_from_yaml_text(yaml.safe_dump(data))


def test_unknown_profile_name_lists_builtins() -> None:
    with pytest.raises(ProfileError, match=r"'black-friday': not a built-in profile \(valid values: .*double11.*normal"):
        load_profile("black-friday")


def test_yaml_file_with_base_and_named_bindings(tmp_path: Path) -> None:
    path = tmp_path / "flash.yml"
    path.write_text(
        """
name: flash-sale
base: double11
arrival: {shape: ramp, start: 1, end: 50, duration: 30s}
behaviour:
  think_scale: 0.01
  transitions:
    checkout: {exit: 1.0}
patience: {retry_probability: 1.0}
bindings: reference_shop
"""
    )
    p = load_profile(path)
    base = load_profile("double11")
    assert p.name == "flash-sale"
    assert p.shape == Ramp(30.0, 1.0, 50.0)
    assert p.behaviour.think_scale == 0.01
    assert p.behaviour.transitions["checkout"] == {"exit": 1.0}
    assert p.behaviour.transitions["view_cart"] == base.behaviour.transitions["view_cart"]
    assert p.patience.retry_probability == 1.0
    assert p.patience.wait == base.patience.wait
    assert p.bindings == base.bindings
    assert p.legacy_actions == base.legacy_actions


def test_profile_error_from_a_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.yml"
    path.write_text("base: normal\nbehaviour: {think_scale: -1}\n")
    with pytest.raises(ProfileError, match=r"think_scale: must be >= 0"):
        load_profile(path)
    path.write_text("base: nosuch\n")
    with pytest.raises(ProfileError, match=r"'nosuch': not a built-in profile"):
        load_profile(path)
    path.write_text(": : :")
    with pytest.raises(ProfileError, match="not valid YAML"):
        load_profile(path)


def test_compose_in_python() -> None:
    d11 = load_profile("double11")
    p = d11.with_(name="d11-fast", think_scale=0.0, retry_probability=0.0, zipf_s=2.0, shape=Constant(5, 100))
    assert (p.name, p.behaviour.think_scale, p.patience.retry_probability, p.catalog.zipf_s) == ("d11-fast", 0.0, 0.0, 2.0)
    assert p.behaviour.transitions == d11.behaviour.transitions
    # partial transitions replace just those rows
    q = d11.with_(transitions={"checkout": {"exit": 1.0}})
    assert q.behaviour.transitions["checkout"] == {"exit": 1.0}
    assert q.behaviour.transitions["home"] == d11.behaviour.transitions["home"]
    # the normal shoppers bound to another shop
    other = {a: RequestBinding("GET", f"/v2/{a}") for a in load_profile("normal").actions}
    n2 = load_profile("normal").with_bindings(other, legacy_actions={"checkout"})
    assert n2.bindings["home"].path == "/v2/home"
    assert n2.legacy_actions == frozenset({"checkout"})
    assert load_profile("normal").with_bindings(d11).bindings == d11.bindings
    assert d11.scaled(2).shape.peak() == pytest.approx(2 * d11.shape.peak())
    with pytest.raises(ProfileError, match=r"unknown field 'thinkscale'; valid values: .*think_scale"):
        d11.with_(thinkscale=1)
    with pytest.raises(ProfileError, match="probabilities must sum to 1"):
        d11.with_(transitions={"home": {"exit": 0.5}})


def test_matrix_view() -> None:
    p = load_profile("normal")
    assert p.states[0] == "entry" and p.states[-1] == "exit"
    for row, state in zip(p.matrix, p.states):
        if state != "exit":
            assert sum(row) == pytest.approx(1.0)


OWN = """
name: own
arrival: {shape: constant, rate: 5, duration: 10s}
behaviour:
  transitions:
    entry: {landing: 1.0}
    landing: {wish: 0.5, pay: 0.3, exit: 0.2}
    wish: {landing: 0.5, exit: 0.5}
    pay: {exit: 1.0}
bindings:
  landing: {method: GET, path: /, class: cached, thresholds: {p95_ms: 900}}
  wish: {request: false}
  pay: {method: POST, path: /pay, legacy: true, order: {idempotency_key: Idem, id: id}}
"""


def test_own_states_classes_and_thresholds() -> None:
    p = profile_from_yaml_text(OWN)
    assert p.actions == ("landing", "wish", "pay")
    assert p.action_classes() == {"landing": "cached", "wish": "client", "pay": "legacy"}
    assert p.legacy_actions == frozenset({"pay"})
    assert p.action_thresholds() == {"landing": {"p95_ms": 900.0}}
    pay = p.bindings["pay"]
    assert (pay.idempotency_key, pay.order_id, pay.acknowledge) == ("Idem", "id", (200, 201, 202))
    # to_dict / from_dict round trip keeps the declarations
    assert RequestBinding.from_dict(pay.to_dict(), "x") == pay
    assert RequestBinding.from_dict(p.bindings["wish"].to_dict(), "x") == p.bindings["wish"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("bindings:\n  landing: {method: GET, path: /}\n  pay: {method: POST, path: /pay}\n",
         r"state 'wish' can be reached but has no binding; bound states: landing, pay"),
        ("behaviour:\n  transitions:\n    entry: {landing: 1.0}\n    landing: {wishlist: 1.0}\n",
         r"landing\.wishlist: unknown target state 'wishlist' \(it has no row\); valid values: landing, exit"),
        ("bindings:\n  landing: {method: GET, path: /, class: fast}\n  wish: {request: false}\n  pay: {method: GET, path: /}\n",
         r"landing\.class: unknown action class 'fast'; valid values: isolated, cached, legacy, client"),
        ("bindings:\n  landing: {method: GET, path: /, cart: empty}\n  wish: {request: false}\n  pay: {method: GET, path: /}\n",
         r"landing\.cart: unknown cart effect 'empty'; valid values: add, remove, clear"),
        ("bindings:\n  landing: {method: GET, path: /, capture: {t: {regex: '(unclosed'}}}\n  wish: {request: false}\n  pay: {method: GET, path: /}\n",
         r"capture\.t\.regex: not a valid regular expression"),
        ("bindings:\n  landing: {method: GET, path: /, draw: [colour]}\n  wish: {request: false}\n  pay: {method: GET, path: /}\n",
         r"draw: unknown value 'colour'; valid values: page, query, sku"),
        ("bindings:\n  landing: {method: GET, path: /, thresholds: {p50: 1}}\n  wish: {request: false}\n  pay: {method: GET, path: /}\n",
         r"thresholds\.p50: unknown key; valid keys: success, p95_ms, p99_ms"),
        ("bindings:\n  landing: {method: GET, path: /, json: {}, form: {}}\n  wish: {request: false}\n  pay: {method: GET, path: /}\n",
         r"give at most one body, got json, form"),
        ("bindings:\n  landing: {request: false, path: /}\n  wish: {request: false}\n  pay: {method: GET, path: /}\n",
         r"sends nothing; remove path"),
        ("behaviour:\n  transitions:\n    entry: {landing: 1.0}\n    landing: {landing: 1.0}\n",
         r"no way out: no path from 'landing' to 'exit'"),
        ("session: {cookies: maybe}\n", r"session\.cookies: expected true or false"),
        ("data: {user: {values: [], pick: zipf}}\n", r"data\.user: no values"),
        ("data: {user: {values: [a], pick: random}}\n", r"pick: unknown pick 'random'; valid values: zipf, uniform, sequential"),
    ],
)
def test_own_state_errors(change: str, message: str) -> None:
    import yaml

    data = yaml.safe_load(OWN)
    for k, v in yaml.safe_load(change).items():
        if k == "behaviour":
            data["behaviour"] = v
        else:
            data[k] = v
    with pytest.raises(ProfileError, match=message):
        profile_from_yaml_text(yaml.safe_dump(data))


def test_unreachable_state_is_reported_not_an_error() -> None:
    text = OWN.replace("    pay: {exit: 1.0}\n", "    pay: {exit: 1.0}\n    orphan: {exit: 1.0}\n")
    with pytest.warns(UserWarning, match=r"state 'orphan' has transitions but cannot be reached"):
        p = profile_from_yaml_text(text)
    assert "orphan" not in p.actions


def test_bindings_of_another_stack_are_never_merged_with_the_reference_shop(tmp_path: Path) -> None:
    path = tmp_path / "mine.yml"
    path.write_text("base: double11\nbindings:\n  home: {method: GET, path: /index.html}\n")
    with pytest.raises(ProfileError, match=r"states 'browse', 'search', 'view_product', .* can be reached but have no binding; bound states: home"):
        load_profile(path)


def test_data_sets_from_csv_and_yaml(tmp_path: Path) -> None:
    (tmp_path / "users.csv").write_text("name,password\namy,a1\nbo,b2\n")
    (tmp_path / "skus.yml").write_text("- A-1\n- B-2\n- C-3\n")
    (tmp_path / "p.yml").write_text(
        "name: d\narrival: {shape: constant, rate: 1, duration: 1s}\n"
        "data:\n  user: {file: users.csv, pick: sequential}\n  sku: {file: skus.yml, pick: zipf, zipf_s: 2}\n"
        "behaviour:\n  transitions:\n    entry: {login: 1.0}\n    login: {item: 1.0}\n    item: {exit: 1.0}\n"
        "bindings:\n  login: {method: POST, path: /l, draw: [user], form: {u: '{user.name}'}}\n"
        "  item: {method: GET, path: '/i/{sku}', draw: [sku]}\n"
    )
    from pytest_peakchaos.load.plan import plan_sessions

    p = load_profile(tmp_path / "p.yml")
    assert p.data["user"].values == ({"name": "amy", "password": "a1"}, {"name": "bo", "password": "b2"})
    plans = plan_sessions(p, 1, 400)
    assert [dict(pl.steps[0].data)["user"]["name"] for pl in plans[:4]] == ["amy", "bo", "amy", "bo"]
    skus = [pl.steps[1].sku for pl in plans]
    assert set(skus) <= {"A-1", "B-2", "C-3"} and skus.count("A-1") > skus.count("B-2") > skus.count("C-3")
