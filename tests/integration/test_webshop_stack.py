"""A stack that is not the reference shop: login with a CSRF form, a session cookie and server-made
cart ids (fixtures/webshop, compose/webshop.yml), driven by its own profile through login → add →
remove → pay; every acknowledged order is in legacy's ledger exactly once."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pytest_peakchaos import latency
from pytest_peakchaos.stack.base import Stack

pytestmark = pytest.mark.docker

ROOT = Path(__file__).resolve().parents[2]
PROFILE = ROOT / "fixtures" / "webshop" / "profile.yml"


@pytest.fixture(scope="module")
def webshop(docker_engine: Any) -> Iterator[Stack]:
    from pytest_peakchaos.stack.compose import load_compose
    from pytest_peakchaos.stack.docker import DockerStack

    stack = DockerStack(load_compose(ROOT / "compose" / "webshop.yml", environ=dict(os.environ)), startup_timeout_s=240.0)
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()


def test_webshop_login_cart_checkout_orders_reach_the_ledger(webshop: Stack) -> None:
    from pytest_peakchaos.experiment import Experiment

    result = Experiment(webshop).run(
        profile=str(PROFILE), duration="10s", seed=11, scale=3.0,
        faults=[latency(ms=300, start="4s", length="3s")],
        checks={"min_requests": 5},
    )
    load = result.load
    for name in ("login_form", "login", "open_cart", "product", "add", "remove", "pay"):
        s = load.actions[name]
        assert s.count > 0 and s.errors["status_4xx"] == 0, (name, s.status)  # CSRF, cookie and cart ids all worked
    assert load.actions["login"].status.get("302", 0) == load.actions["login"].count
    assert "compare" not in load.actions
    assert not load.warnings, load.warnings
    assert result.ledger is not None
    ledger = result.ledger.to_dict()
    assert ledger["acknowledged"] >= 10 and load.actions["pay"].count >= 10 and ledger["missing"] == 0 and ledger["duplicated"] == 0, (ledger, load.summary())
    assert ledger["found"] == ledger["acknowledged"]
