"""Stateful chaos: a cart model against the live resilient shop while faults come and go.

A ``RuleBasedStateMachine`` adds to, removes from, views and checks out a cart on the reference
shop's cloud, and -- as just more rules -- switches faults on the legacy link (latency, link down)
or heals it. After every step:

* the cart equals the model (carts live in the cloud: legacy faults must not corrupt them);
* the cloud never answered 500 (nor hung: every call has a 5 s client time-out);
* no acknowledged order is in legacy's ledger twice.

At the end (teardown) the link is healed and, once the outbox has drained, every acknowledged
order (201/200 confirmed, 202 queued) is in the ledger exactly once, with the cart's items.
hypothesis shrinks a failure to the shortest sequence of steps and faults that shows it.

The machine holds against the resilient session stack; against ``CLOUD_MODE=naive`` it must fail
(the invariants have teeth), shrunk to a handful of steps.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    multiple,
    rule,
    run_state_machine_as_test,
)

from pytest_peakchaos.faults import Fault
from pytest_peakchaos.link import AppliedFault, Link
from pytest_peakchaos.stack.base import Stack
from pytest_peakchaos.strategies import FaultBounds, faults

pytestmark = pytest.mark.docker

CLIENT_TIMEOUT_S = 5.0  # resilient checkout answers within ~2 s even with legacy hanging
DRAIN_TIMEOUT_S = 25.0  # breaker reset (3 s) + outbox drain (500 ms) + margin for a busy machine
SKUS = st.integers(1, 12)
#: faults hypothesis switches on the link: latency up to 1.5 s (beyond cloud's 500 ms timeout) or down
LINK_FAULTS = faults(kinds=("latency", "down"), bounds=FaultBounds(latency_ms=(50, 1500), jitter_ms=(0, 50)))

LIVE = settings.get_profile("peakchaos-chaos")


def call(method: str, url: str, body: Any = None, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    """One HTTP call to the shop (127.0.0.1 only); an error status is returned, not raised."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=CLIENT_TIMEOUT_S) as resp:  # noqa: S310 - loopback only
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as err:
        try:
            return err.code, json.loads(err.read() or b"null")
        finally:
            err.close()


def items_of(body: Any) -> dict[int, int]:
    return {int(i["sku"]): int(i["qty"]) for i in body.get("items", [])}


class CartMachine(RuleBasedStateMachine):
    """The model: ``cart`` (sku -> qty) and ``acknowledged`` (idempotency key -> items ordered)."""

    keys = Bundle("keys")

    def __init__(self, stack: Stack, link: Link, stats: Counter[str] | None = None) -> None:
        super().__init__()
        self.stats: Counter[str] = stats if stats is not None else Counter()
        self.stats["examples"] += 1
        self.stack = stack
        self.link = link
        self.cloud = stack.url("cloud")
        self.cart_id = f"sm-{uuid.uuid4().hex[:12]}"
        self.cart: dict[int, int] = {}
        self.acknowledged: dict[str, dict[int, int]] = {}
        self.fault = "none"
        self.applied: AppliedFault | None = None
        link.reset()

    # -- helpers -----------------------------------------------------------------------------

    def _call(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> tuple[int, Any]:
        try:
            status, payload = call(method, self.cloud + path, body, headers)
        except (OSError, urllib.error.URLError) as exc:  # time-out, reset, refused
            raise AssertionError(f"{method} {path} with the link at {self.fault!r}: no answer ({exc})") from None
        self.stats["requests"] += 1
        assert status != 500, f"{method} {path} with the link at {self.fault!r}: 500 {payload}"
        assert status < 500 or status == 503, f"{method} {path} with the link at {self.fault!r}: {status} {payload}"
        return status, payload

    # -- shopper rules -----------------------------------------------------------------------

    @initialize(sku=SKUS)
    def first_item(self, sku: int) -> None:
        """Every run starts with something in the cart (else most checkouts would be of nothing)."""
        self.add(sku, 1)

    @rule(sku=SKUS, qty=st.integers(1, 3))
    def add(self, sku: int, qty: int) -> None:
        self.stats["add"] += 1
        status, body = self._call("POST", f"/carts/{self.cart_id}/items", {"sku": sku, "qty": qty})
        assert status == 200, (status, body)
        self.cart[sku] = self.cart.get(sku, 0) + qty
        assert items_of(body) == self.cart

    @rule(sku=SKUS)
    def remove(self, sku: int) -> None:
        self.stats["remove"] += 1
        status, body = self._call("DELETE", f"/carts/{self.cart_id}/items/{sku}")
        assert status == 200, (status, body)
        self.cart.pop(sku, None)
        assert items_of(body) == self.cart

    @rule()
    def view(self) -> None:
        status, body = self._call("GET", f"/carts/{self.cart_id}")
        assert status == 200 and items_of(body) == self.cart, (status, body, self.cart)

    @rule(target=keys)
    def checkout(self) -> Any:
        key = f"sm-{uuid.uuid4().hex}"
        status, body = self._call("POST", f"/carts/{self.cart_id}/checkout", {}, {"Idempotency-Key": key})
        if not self.cart:
            self.stats["checkout of an empty cart"] += 1
            assert status == 400, (status, body)  # nothing to order
            return multiple()
        # 201 confirmed, 200 confirmed (legacy already had the key from a timed-out attempt), 202 queued
        assert status in (200, 201, 202), f"checkout with the link at {self.fault!r}: {status} {body}"
        assert body.get("idempotency_key") == key, body
        self.acknowledged[key] = dict(self.cart)
        self.cart.clear()
        self.stats[f"checkout {status}" + (f" under {self.fault.split()[0]}" if self.fault != "none" else "")] += 1
        return key

    @rule(key=consumes(keys))
    def checkout_again(self, key: str) -> None:
        """A refresh of an acknowledged checkout: the same answer, no second order, cart untouched."""
        status, body = self._call("POST", f"/carts/{self.cart_id}/checkout", {}, {"Idempotency-Key": key})
        self.stats["checkout replayed"] += 1
        assert status in (200, 202), f"replayed checkout {key}: {status} {body}"
        assert body.get("idempotency_key") == key and body.get("status") in ("confirmed", "queued"), body

    # -- fault rules -------------------------------------------------------------------------

    def _revert(self) -> None:
        # revert just our toxic / outage (Link.reset would also restore the container's CPU and
        # unpause it: docker API calls, ~0.1 s each, on every switch)
        if self.applied is not None:
            self.applied.revert()
            self.applied = None
        self.fault = "none"

    @rule(fault=LINK_FAULTS)
    def switch_fault(self, fault: Fault) -> None:
        self._revert()
        self.applied = self.link.activate(fault)
        self.fault = fault.describe()
        self.stats["faults switched on"] += 1

    @rule()
    def heal(self) -> None:
        self._revert()

    # -- invariants --------------------------------------------------------------------------

    @invariant()
    def cart_equals_model(self) -> None:
        status, body = self._call("GET", f"/carts/{self.cart_id}")
        assert status == 200 and items_of(body) == self.cart, f"cart {items_of(body)} != model {self.cart}"

    @invariant()
    def no_acknowledged_order_twice(self) -> None:
        if not self.acknowledged:
            return
        counts = Counter(o.get("idempotency_key") for o in self.stack.ledger())
        twice = {k: counts[k] for k in self.acknowledged if counts[k] > 1}
        assert not twice, f"orders in the ledger more than once: {twice}"

    def teardown(self) -> None:
        """Heal the link; every acknowledged order must reach the ledger exactly once."""
        try:
            self._revert()
            if not self.acknowledged:
                return
            rows: list[dict[str, Any]] = []
            deadline = time.monotonic() + DRAIN_TIMEOUT_S
            for _ in range(int(DRAIN_TIMEOUT_S / 0.25) + 1):  # bounded wait for the outbox
                rows = [o for o in self.stack.ledger() if o.get("idempotency_key") in self.acknowledged]
                if {o["idempotency_key"] for o in rows} >= set(self.acknowledged) or time.monotonic() > deadline:
                    break
                time.sleep(0.25)
            counts = Counter(o["idempotency_key"] for o in rows)
            lost = sorted(k for k in self.acknowledged if counts[k] == 0)
            twice = sorted(k for k in self.acknowledged if counts[k] > 1)
            assert not lost, f"{len(lost)} acknowledged order(s) lost after {DRAIN_TIMEOUT_S:g}s: {lost}"
            assert not twice, f"acknowledged order(s) in the ledger twice: {twice}"
            for o in rows:
                assert items_of(o) == self.acknowledged[o["idempotency_key"]], f"order {o} != the cart at checkout"
        finally:
            self.link.reset()


def test_cart_matches_its_model_while_faults_come_and_go(peakchaos_stack: Stack, legacy_link: Link) -> None:
    stats: Counter[str] = Counter()
    t0 = time.monotonic()

    class Cart(CartMachine):  # hypothesis makes a fresh machine per example: bind the live stack
        def __init__(self) -> None:
            super().__init__(peakchaos_stack, legacy_link, stats)

    run_state_machine_as_test(Cart, settings=settings(LIVE, max_examples=25, stateful_step_count=25))
    print(f"\ncart state machine: {time.monotonic() - t0:.0f}s; " + ", ".join(f"{k}: {v}" for k, v in sorted(stats.items())))
    assert stats["examples"] >= 1


@pytest.mark.slow
def test_the_same_machine_catches_the_naive_shop(naive_stack: Stack) -> None:
    """Sanity of the invariants: against ``CLOUD_MODE=naive`` the machine fails, and hypothesis
    shrinks it to a few steps around a fault (the naive cloud answers 500 when legacy is down).

    The long form (60-80 s of live examples and shrinking on 2 cores): the default run keeps the
    machine on the resilient shop above, and the shrink-to-one-fault proof on the naive shop in
    tests/chaos/test_property_chaos.py."""
    stats: Counter[str] = Counter()
    link = naive_stack.link()

    class NaiveCart(CartMachine):
        def __init__(self) -> None:
            super().__init__(naive_stack, link, stats)

    t0 = time.monotonic()
    try:
        with pytest.raises(AssertionError) as info:
            run_state_machine_as_test(NaiveCart, settings=settings(LIVE, max_examples=50, stateful_step_count=25))
    finally:
        link.reset()
    report = "\n".join([str(info.value), *getattr(info.value, "__notes__", [])])
    print(f"\nnaive cart state machine: {time.monotonic() - t0:.0f}s, {stats['examples']} runs\n{report}")
    assert "with the link at" in report  # the failing call names the fault that was on
    assert "state.switch_fault(" in report  # the shrunk steps include switching that fault on
    steps = [line for line in report.splitlines() if line.startswith("state.") and "(" in line]
    assert len(steps) <= 12, f"not shrunk: {len(steps)} steps"
