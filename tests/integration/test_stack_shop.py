"""The reference shop as real containers behind real Toxiproxy, through the plugin's fixtures.

The stack comes from ``peakchaos_stack = compose/shop.yml`` in pyproject's pytest ini (the ini
twin of ``--peakchaos-stack``) and is shared by the whole session.
"""

from __future__ import annotations

import json
import statistics
import threading
import time
import urllib.error
import urllib.request
import uuid
from typing import Any

import pytest

from pytest_peakchaos import capacity, down, latency
from pytest_peakchaos.link import Link
from pytest_peakchaos.stack import labels
from pytest_peakchaos.stack.base import Stack

pytestmark = pytest.mark.docker


def call(method: str, url: str, body: Any = None, headers: dict[str, str] | None = None, timeout: float = 10.0) -> tuple[int, Any, float]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json", **(headers or {})})
    t0 = time.perf_counter()
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - 127.0.0.1 only
            status, payload = resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as err:
        status, payload = err.code, json.loads(err.read() or b"null")
        err.close()
    return status, payload, time.perf_counter() - t0


def median_ms(fn: Any, n: int = 9) -> float:
    return statistics.median(fn() for _ in range(n)) * 1000


def test_every_published_port_is_on_loopback_and_labelled(peakchaos_stack: Stack, docker_engine: Any) -> None:
    containers = docker_engine.containers.list(filters={"label": f"{labels.RUN}={peakchaos_stack.run_id}"})
    assert {c.labels.get(labels.SERVICE) for c in containers if c.labels.get(labels.ROLE) != "lease"} == {"legacy", "cloud", "toxiproxy"}
    assert [c.labels.get(labels.ROLE) for c in containers].count("lease") == 1  # the run's owner lease
    published = 0
    for container in containers:
        assert container.attrs["HostConfig"]["Privileged"] is False
        binds = [m for m in container.attrs["Mounts"] if m["Type"] == "bind"]
        assert binds == [], "no host path (let alone the docker socket) is mounted"
        for bindings in (container.attrs["NetworkSettings"]["Ports"] or {}).values():
            for binding in bindings or []:
                published += 1
                assert binding["HostIp"] == "127.0.0.1", (container.name, binding)
    assert published >= 4  # cloud 8000, legacy 9000, toxiproxy API + link
    network = docker_engine.networks.get(f"peakchaos-{peakchaos_stack.run_id}")
    assert network.attrs["Labels"][labels.RUN] == peakchaos_stack.run_id


def test_latency_toxic_adds_its_latency_only_to_calls_that_reach_legacy(peakchaos_stack: Stack, legacy_link: Link) -> None:
    cloud = peakchaos_stack.url("cloud")
    cart = f"{cloud}/carts/lat-{uuid.uuid4().hex[:8]}/items"

    def add_to_cart() -> float:  # reaches legacy: stock check
        status, body, seconds = call("POST", cart, {"sku": 3, "qty": 1})
        assert status == 200 and body.get("stock_check") != "deferred", body
        return seconds

    def browse() -> float:  # cloud only
        status, _, seconds = call("GET", f"{cloud}/products?page=1")
        assert status == 200
        return seconds

    base_add, base_browse = median_ms(add_to_cart), median_ms(browse)
    with legacy_link.apply(latency(ms=300)):
        slow_add, slow_browse = median_ms(add_to_cart), median_ms(browse)
    after_add = median_ms(add_to_cart)
    added = slow_add - base_add
    print(f"\nadd-to-cart median {base_add:.1f} ms -> {slow_add:.1f} ms (+{added:.1f} ms); "
          f"browse {base_browse:.1f} -> {slow_browse:.1f} ms; after revert {after_add:.1f} ms")
    assert 255 <= added <= 345, f"300 ms latency added {added:.1f} ms to a legacy-bound call"
    assert slow_browse - base_browse < 45, "a cloud-only call must not see the legacy latency"
    assert after_add - base_add < 45, "the toxic was reverted"


def test_link_down_queues_checkout_and_delivers_it_exactly_once(peakchaos_stack: Stack, legacy_link: Link) -> None:
    cloud = peakchaos_stack.url("cloud")
    cart_id = f"down-{uuid.uuid4().hex[:8]}"
    key = f"key-{uuid.uuid4().hex}"
    assert call("POST", f"{cloud}/carts/{cart_id}/items", {"sku": 5, "qty": 2})[0] == 200
    with legacy_link.apply(down()):
        status, body, seconds = call("POST", f"{cloud}/carts/{cart_id}/checkout", {}, {"Idempotency-Key": key})
        print(f"\ncheckout with the link down: {status} {body} in {seconds * 1000:.0f} ms")
        assert status == 202 and body["status"] == "queued", body
        assert seconds < 2.0
        time.sleep(1.0)  # the drain loop keeps failing while down: still nothing in legacy
        assert [o for o in peakchaos_stack.ledger() if o["idempotency_key"] == key] == []
    deadline = time.monotonic() + 20
    matches: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        matches = [o for o in peakchaos_stack.ledger() if o["idempotency_key"] == key]
        if matches:
            break
        time.sleep(0.25)
    time.sleep(1.5)  # a few more drain cycles: a redelivery would show up as a duplicate now
    matches = [o for o in peakchaos_stack.ledger() if o["idempotency_key"] == key]
    print(f"delivered after the link returned: {len(matches)} order(s) for the key")
    assert len(matches) == 1


def _legacy_throughput(url: str, seconds: float, threads: int = 8) -> float:
    count = 0
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def worker() -> None:
        nonlocal count
        n = 0
        while time.monotonic() < stop:
            with urllib.request.urlopen(f"{url}/stock/{1 + n % 50}", timeout=30) as resp:  # noqa: S310
                resp.read()
            n += 1
        with lock:
            count += n

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(timeout=seconds + 60)
    return count / seconds


def test_cpu_throttle_lowers_legacy_throughput(peakchaos_stack: Stack, legacy_link: Link) -> None:
    legacy = peakchaos_stack.url("legacy", 9000)
    baseline = _legacy_throughput(legacy, 3.0)
    with legacy_link.apply(capacity(cpus=0.1)):
        throttled = _legacy_throughput(legacy, 3.0)
    restored = _legacy_throughput(legacy, 2.0)
    print(f"\nlegacy throughput: {baseline:.0f} req/s -> {throttled:.0f} req/s at 0.1 CPU "
          f"({throttled / baseline:.2f}x) -> {restored:.0f} req/s restored")
    assert throttled < 0.6 * baseline
    assert restored > 0.75 * baseline
