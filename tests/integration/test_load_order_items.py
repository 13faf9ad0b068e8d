"""The load engine records, with each acknowledged order, the cart the session ordered (the skus of
its planned cart) and which of them are unsure (their cart request failed): the ledger check
compares them with the system of record's items (docs/checks.md, "ledger")."""

from __future__ import annotations

from pytest_peakchaos.load import Constant, run_load
from pytest_peakchaos.profiles import Behaviour, Dist, Patience, Profile, RequestBinding
from tests.unit.test_load_target import Target


def _profile(second_add: str) -> Profile:
    return Profile(
        name="buyers",
        shape=Constant(1.0, 30.0),
        behaviour=Behaviour(
            transitions={"entry": {"add_to_cart": 1.0}, "add_to_cart": {"view_product": 1.0},
                         "view_product": {"checkout": 1.0}, "checkout": {"exit": 1.0}},
            think_default=Dist.constant(0.0),
        ),
        patience=Patience(wait=Dist.constant(5.0), retry_probability=0.0, max_retries=0),
        bindings={
            "add_to_cart": RequestBinding("POST", "/ok/{cart_id}", json={"sku": "{sku}"}, draw=("sku",), cart="add"),
            # a second add, to a path that answers as given: 409 = "not added" (out of stock)
            "view_product": RequestBinding("POST", second_add, json={"sku": "{sku}"}, draw=("sku",), cart="add"),
            "checkout": RequestBinding("POST", "/order", idempotency_key="Idempotency-Key", order_id="order_id",
                                       acknowledge=(201, 202), cart="clear"),
        },
        legacy_actions=frozenset({"add_to_cart", "view_product", "checkout"}),
    )


def test_acknowledged_orders_carry_their_cart_and_the_unsure_skus() -> None:
    with Target() as t:
        ok = run_load(t.url, _profile("/ok/x"), duration=0.5, seed=5, max_requests=10_000, max_sessions=None,
                      concurrency_cap=500, request_timeout_s=2, run_id="items")
        refused = run_load(t.url, _profile("/status/409"), duration=0.5, seed=5, max_requests=10_000, max_sessions=None,
                           concurrency_cap=500, request_timeout_s=2, run_id="items2")
    assert len(ok.orders) > 5  # (a session that arrived just before the end may not have ordered)
    for o in ok.orders:
        assert o.items is not None and 1 <= len(o.items) <= 2 and o.unsure == (), o
    # the same sessions (same seed): the same carts, but the second add was refused, so its sku is unsure
    def by_session(orders: list) -> dict[str, object]:  # type: ignore[type-arg]
        return {o.idempotency_key.split("-", 2)[2]: o.items for o in orders}

    mine, theirs = by_session(refused.orders), by_session(ok.orders)
    common = set(mine) & set(theirs)
    assert len(common) > 5 and all(mine[k] == theirs[k] for k in common)
    for o in refused.orders:
        assert o.items is not None and len(o.unsure) == 1 and o.unsure[0] in o.items, o
    assert any(len(o.items or ()) == 2 and o.unsure[0] == (o.items or ())[1] for o in refused.orders)
    d = refused.to_dict()["orders"][0]
    assert d["items"] == list(refused.orders[0].items or ()) and d["unsure"] == list(refused.orders[0].unsure)
