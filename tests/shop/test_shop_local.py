"""The reference shop's contract (docs/reference-shop.md), over real sockets, apps as processes."""

from __future__ import annotations

import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import pytest

from .conftest import CLOUD_APP, LEGACY_APP, PYTHON, App, Reply, Shop, app_env, free_port

T = TypeVar("T")


def wait_for(predicate: Callable[[], T], seconds: float = 5.0, interval: float = 0.05) -> T:
    deadline = time.monotonic() + seconds
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {seconds} s (last value {value!r})")
        time.sleep(interval)


def ledger(legacy: App) -> list[dict[str, Any]]:
    reply = legacy.get("/orders")
    assert reply.status == 200
    orders: list[dict[str, Any]] = reply.body["orders"]
    return orders


def key() -> str:
    return f"key-{uuid.uuid4().hex}"


# ----------------------------------------------------------------------------- legacy


def test_legacy_stock_lookup_and_stats(shop: Shop) -> None:
    legacy = shop.legacy()
    assert legacy.get("/health").body == {"status": "ok"}
    assert legacy.get("/stock/7").body == {"sku": 7, "available": 1000}
    assert legacy.get("/stock/51").status == 404  # PRODUCTS=50
    assert legacy.get("/stock/abc").status == 404
    assert legacy.get("/nope").status == 404
    stats = legacy.stats()
    assert stats["requests"] == {"stock": 3, "orders_post": 0, "orders_get": 0}
    assert stats["workers"] == 4 and stats["in_flight"] == 0 and stats["queued"] == 0
    assert stats["served"] == 3
    assert "legacy listening on 127.0.0.1:" in legacy.log()


def test_legacy_orders_are_idempotent(shop: Shop) -> None:
    legacy = shop.legacy()
    k = key()
    body = {"items": [{"sku": 7, "qty": 2}, {"sku": 8, "qty": 1}], "cart_id": "c1"}
    first = legacy.post("/orders", body, {"Idempotency-Key": k})
    assert first.status == 201, first.body
    assert first.body["status"] == "confirmed" and first.body["idempotency_key"] == k
    again = legacy.post("/orders", body, {"Idempotency-Key": k})
    assert again.status == 200 and again.body["order_id"] == first.body["order_id"]
    assert legacy.post("/orders", body).status == 400  # no key
    assert legacy.post("/orders", {"items": []}, {"Idempotency-Key": key()}).status == 400
    assert legacy.post("/orders", {"items": [{"sku": 999, "qty": 1}]}, {"Idempotency-Key": key()}).status == 404
    too_many = legacy.post("/orders", {"items": [{"sku": 9, "qty": 5000}]}, {"Idempotency-Key": key()})
    assert too_many.status == 409
    assert legacy.get("/stock/7").body["available"] == 998  # decremented once
    assert legacy.get("/stock/9").body["available"] == 1000  # rejected orders change nothing
    orders = ledger(legacy)
    assert [o["idempotency_key"] for o in orders] == [k]
    assert orders[0]["items"] == [{"sku": 7, "qty": 2}, {"sku": 8, "qty": 1}]
    assert orders[0]["cart_id"] == "c1" and orders[0]["created_at"]


def test_legacy_concurrent_duplicates_make_exactly_one_row(shop: Shop) -> None:
    legacy = shop.legacy(WORKERS=8)
    k = key()
    barrier = threading.Barrier(16)

    def post(_: int) -> Reply:
        barrier.wait()
        return legacy.post("/orders", {"items": [{"sku": 3, "qty": 1}]}, {"Idempotency-Key": k})

    with ThreadPoolExecutor(16) as pool:
        replies = list(pool.map(post, range(16)))
    assert sorted(r.status for r in replies) == [200] * 15 + [201]
    assert len({r.body["order_id"] for r in replies}) == 1
    assert [o["idempotency_key"] for o in ledger(legacy)] == [k]
    assert legacy.get("/stock/3").body["available"] == 999


def test_legacy_keeps_orders_across_restart_and_seeds_once(shop: Shop) -> None:
    legacy = shop.legacy(db="persist.db")
    k = key()
    assert legacy.post("/orders", {"items": [{"sku": 1, "qty": 10}]}, {"Idempotency-Key": k}).status == 201
    assert legacy.terminate() == 0
    again = shop.legacy(db="persist.db")
    assert [o["idempotency_key"] for o in ledger(again)] == [k]
    assert again.get("/stock/1").body["available"] == 990


def test_legacy_worker_pool_is_the_capacity_limit(shop: Shop) -> None:
    def burst(legacy: App) -> tuple[float, Any]:
        barrier = threading.Barrier(11)

        def one(_: int) -> int:
            barrier.wait()
            return legacy.get("/stock/1").status

        with ThreadPoolExecutor(10) as pool:
            started = time.perf_counter()
            futures = [pool.submit(one, i) for i in range(10)]
            barrier.wait()
            time.sleep(0.2)
            mid = legacy.stats()  # /stats takes no worker: it answers during the burst
            assert [f.result() for f in futures] == [200] * 10
            return time.perf_counter() - started, mid

    narrow = shop.legacy(db="narrow.db", WORKERS=1, WORK_MS=0, IO_MS=50)
    seconds, mid = burst(narrow)
    assert seconds >= 0.45, f"10 requests through 1 worker of 50 ms took only {seconds:.3f} s"
    assert mid["in_flight"] == 1 and mid["queued"] >= 3, mid
    wide = shop.legacy(db="wide.db", WORKERS=10, WORK_MS=0, IO_MS=50)
    wide_seconds, _ = burst(wide)
    assert wide_seconds < seconds / 2, (wide_seconds, seconds)


def test_healthcheck_flag(shop: Shop) -> None:
    legacy = shop.legacy()
    cloud = shop.cloud(legacy)

    def check(script: Any, port: int) -> int:
        done = subprocess.run(
            [PYTHON, str(script), "--healthcheck"],
            env=app_env(PORT=port),
            capture_output=True,
            timeout=10,
            check=False,
        )
        return done.returncode

    assert check(LEGACY_APP, legacy.port) == 0
    assert check(CLOUD_APP, cloud.port) == 0
    assert check(LEGACY_APP, free_port()) == 1
    assert check(CLOUD_APP, free_port()) == 1


def test_sigterm_stops_both_quickly_even_with_a_request_hung_on_legacy(shop: Shop) -> None:
    legacy = shop.legacy()
    cloud = shop.cloud(legacy, MODE="naive")
    conn_open = threading.Event()

    def hung_view() -> None:
        conn_open.set()
        with pytest.raises(OSError):
            cloud.get("/products/7", timeout=3.0)

    legacy.pause()
    hung = threading.Thread(target=hung_view)
    hung.start()
    conn_open.wait()
    time.sleep(0.2)
    started = time.monotonic()
    assert cloud.terminate(timeout=3.0) == 0
    assert time.monotonic() - started < 2.0
    hung.join(timeout=5)
    assert "cloud stopped" in cloud.log()
    legacy.resume()
    assert legacy.terminate(timeout=3.0) == 0
    assert "legacy stopped" in legacy.log()


# ----------------------------------------------------------------------------- cloud


def test_bad_mode_exits_non_zero_naming_the_valid_modes() -> None:
    done = subprocess.run(
        [PYTHON, str(CLOUD_APP)],
        env=app_env(MODE="yolo", PORT=free_port()),
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    assert done.returncode != 0
    assert "resilient" in done.stderr and "naive" in done.stderr and "yolo" in done.stderr


def test_catalogue_browse_search_and_product_pages(shop: Shop) -> None:
    legacy = shop.legacy()
    cloud = shop.cloud(legacy, STOCK_REFRESH_MS=50)
    home = cloud.get("/")
    assert home.status == 200 and home.body["featured"] and home.body["categories"]
    page1 = cloud.get("/products?page=1").body
    assert page1["total"] == 50 and len(page1["products"]) == 20
    assert [p["sku"] for p in page1["products"]] == list(range(1, 21))
    assert len(cloud.get("/products?page=3").body["products"]) == 10
    assert cloud.get("/products?page=4").body["products"] == []
    assert cloud.get("/products?page=0").status == 400
    product = page1["products"][0]
    assert product["name"] and product["category"] and product["price"] > 0
    found = cloud.get("/search?q=" + product["name"].split()[-1].lower()).body
    assert found["total"] >= 1
    assert all(product["name"].split()[-1] in p["name"] for p in found["products"])
    assert cloud.get("/search?q=zzzz").body["products"] == []
    assert cloud.get("/search").status == 400
    view = cloud.get("/products/7")
    assert view.status == 200 and view.body["sku"] == 7 and view.body["stock_source"] == "cache"
    assert wait_for(lambda: cloud.get("/products/7").body["stock"]) == 1000
    assert cloud.get("/products/51").status == 404
    assert cloud.get("/nothing").status == 404
    assert cloud.post("/products", {}).status == 405
    assert "mode=resilient" in cloud.log()
    # the catalogue is deterministic: another process serves the same one
    other = shop.cloud(legacy)
    assert other.get("/products?page=2").body == cloud.get("/products?page=2").body


def test_cart_add_remove_view_and_stock_calls(shop: Shop) -> None:
    legacy = shop.legacy()
    cloud = shop.cloud(legacy, STOCK_REFRESH_BATCH=0)  # no background stock refresh here
    before = legacy.stats()["requests"]["stock"]
    added = cloud.post("/carts/c1/items", {"sku": 7, "qty": 1})
    assert added.status == 200, added.body
    assert added.body["items"] == [{"sku": 7, "qty": 1, "stock_check": "ok"}]
    assert legacy.stats()["requests"]["stock"] == before + 1  # cart churn hits legacy
    assert cloud.stats()["legacy_calls"]["stock"] == 1
    cloud.post("/carts/c1/items", {"sku": 7, "qty": 2})
    cart = cloud.post("/carts/c1/items", {"sku": 8}).body  # qty defaults to 1
    assert [(i["sku"], i["qty"]) for i in cart["items"]] == [(7, 3), (8, 1)]
    assert cloud.get("/carts/c1").body["items"] == cart["items"]
    assert cloud.get("/carts/other").body == {"cart_id": "other", "items": []}
    removed = cloud.delete("/carts/c1/items/7")
    assert removed.status == 200 and [i["sku"] for i in removed.body["items"]] == [8]
    assert cloud.stats()["legacy_calls"]["stock"] == 4  # 3 adds + 1 remove re-check
    assert cloud.delete("/carts/c1/items/7").status == 200  # not in the cart: no-op
    assert cloud.stats()["legacy_calls"]["stock"] == 4
    assert cloud.post("/carts/c1/items", {"sku": 7, "qty": 0}).status == 400
    assert cloud.post("/carts/c1/items", {"sku": "7"}).status == 400
    assert cloud.post("/carts/c1/items", {"sku": 51}).status == 404
    assert cloud.post("/carts/c1/items", {"sku": 9, "qty": 600}).status == 200  # stock is 1000
    short = cloud.post("/carts/c1/items", {"sku": 9, "qty": 500})  # 1100 in the cart: too many
    assert short.status == 409 and short.body["available"] == 1000
    assert [(i["sku"], i["qty"]) for i in cloud.get("/carts/c1").body["items"]] == [(8, 1), (9, 600)]


def test_resilient_checkout_confirms_and_is_idempotent(shop: Shop) -> None:
    legacy = shop.legacy()
    cloud = shop.cloud(legacy)
    k = key()
    assert cloud.post("/carts/c1/checkout", {}, {"Idempotency-Key": k}).status == 400  # empty
    cloud.post("/carts/c1/items", {"sku": 4, "qty": 2})
    assert cloud.post("/carts/c1/checkout", {}).status == 400  # no key
    done = cloud.post("/carts/c1/checkout", {}, {"Idempotency-Key": k})
    assert done.status == 201, done.body
    assert done.body["status"] == "confirmed" and done.body["idempotency_key"] == k
    assert cloud.get("/carts/c1").body["items"] == []  # checkout empties the cart
    again = cloud.post("/carts/c1/checkout", {}, {"Idempotency-Key": k})
    assert again.status == 200 and again.body["order_id"] == done.body["order_id"]
    orders = ledger(legacy)
    assert [(o["idempotency_key"], o["items"], o["cart_id"]) for o in orders] == [
        (k, [{"sku": 4, "qty": 2}], "c1")
    ]
    assert cloud.stats()["breaker"] == "closed"


def test_resilient_checkout_queues_while_legacy_hangs_and_delivers_once(shop: Shop) -> None:
    legacy = shop.legacy()
    cloud = shop.cloud(legacy)  # default LEGACY_TIMEOUT_MS=300, RETRIES=2
    cloud.post("/carts/c1/items", {"sku": 5, "qty": 2})
    k = key()
    legacy.pause()
    added = cloud.post("/carts/c1/items", {"sku": 6, "qty": 1}, timeout=2.0)
    assert added.status == 200 and added.body["stock_check"] == "deferred"
    assert added.seconds < 1.0
    queued = cloud.post("/carts/c1/checkout", {}, {"Idempotency-Key": k}, timeout=3.0)
    assert queued.status == 202, queued.body
    assert queued.body == {"status": "queued", "idempotency_key": k}
    assert int(queued.headers["retry-after"]) >= 1
    assert queued.seconds < 2.0, f"checkout took {queued.seconds:.2f} s"
    assert cloud.get("/carts/c1").body["items"] == []
    assert cloud.get("/outbox").body == {"pending": [k]}
    replay = cloud.post("/carts/c1/checkout", {}, {"Idempotency-Key": k})
    assert replay.status == 202  # a retried checkout is not queued twice
    assert cloud.stats()["outbox"]["pending"] == 1
    legacy.resume()
    wait_for(lambda: cloud.stats()["outbox"]["delivered"] == 1, seconds=10)
    time.sleep(0.4)  # a few more drain rounds: a redelivery would show now
    stats = cloud.stats()
    assert stats["outbox"]["pending"] == 0 and stats["outbox"]["delivered"] == 1
    # the timed-out attempts reached legacy too once it resumed: still exactly one order
    orders = ledger(legacy)
    assert [o["idempotency_key"] for o in orders] == [k]
    assert sorted((i["sku"], i["qty"]) for i in orders[0]["items"]) == [(5, 2), (6, 1)]
    assert legacy.get("/stock/5").body["available"] == 998
    confirmed = cloud.post("/carts/c1/checkout", {}, {"Idempotency-Key": k})
    assert confirmed.status == 200 and confirmed.body["status"] == "confirmed"


def test_resilient_checkout_survives_legacy_killed_and_restarted(shop: Shop) -> None:
    legacy = shop.legacy(db="kill.db")
    cloud = shop.cloud(legacy)
    keys = [key() for _ in range(3)]
    for n, k in enumerate(keys):
        cloud.post(f"/carts/c{n}/items", {"sku": 1 + n, "qty": 1})
    legacy.kill()
    for n, k in enumerate(keys):
        reply = cloud.post(f"/carts/c{n}/checkout", {}, {"Idempotency-Key": k})
        assert reply.status == 202 and reply.seconds < 2.0, reply
    assert sorted(cloud.get("/outbox").body["pending"]) == sorted(keys)
    restarted = shop.legacy(db="kill.db", port=legacy.port)
    wait_for(lambda: cloud.stats()["outbox"]["pending"] == 0, seconds=10)
    time.sleep(0.3)
    assert sorted(o["idempotency_key"] for o in ledger(restarted)) == sorted(keys)
    assert cloud.stats()["outbox"]["delivered"] == 3


def test_outbox_full_answers_503(shop: Shop) -> None:
    legacy = shop.legacy()
    cloud = shop.cloud(legacy, OUTBOX_MAX=1, RETRIES=0, LEGACY_TIMEOUT_MS=100)
    cloud.post("/carts/a/items", {"sku": 1})
    cloud.post("/carts/b/items", {"sku": 2})
    legacy.kill()
    assert cloud.post("/carts/a/checkout", {}, {"Idempotency-Key": key()}).status == 202
    full = cloud.post("/carts/b/checkout", {}, {"Idempotency-Key": key()})
    assert full.status == 503 and int(full.headers["retry-after"]) >= 1
    assert [i["sku"] for i in cloud.get("/carts/b").body["items"]] == [2]  # cart kept


def test_breaker_opens_stops_calling_legacy_and_closes_again(shop: Shop) -> None:
    legacy = shop.legacy()
    cloud = shop.cloud(
        legacy, LEGACY_TIMEOUT_MS=100, BREAKER_FAILS=3, BREAKER_RESET_S=1, STOCK_REFRESH_BATCH=0
    )
    legacy.pause()
    for _ in range(3):
        reply = cloud.post("/carts/c1/items", {"sku": 2}, timeout=2.0)
        assert reply.status == 200 and reply.body["stock_check"] == "deferred"
    stats = cloud.stats()
    assert stats["breaker"] == "open" and stats["legacy_calls"]["stock"] == 3
    fast = cloud.post("/carts/c1/items", {"sku": 2})
    assert fast.body["stock_check"] == "deferred" and fast.seconds < 0.08
    stats = cloud.stats()
    assert stats["legacy_calls"]["stock"] == 3, "an open breaker must not call legacy"
    assert stats["fallbacks"]["breaker_open"] >= 1
    legacy.resume()
    time.sleep(1.1)
    healed = cloud.post("/carts/c1/items", {"sku": 2})
    assert healed.body["stock_check"] == "ok"
    assert cloud.stats()["breaker"] == "closed"


def test_product_view_resilient_keeps_working_while_legacy_hangs(shop: Shop) -> None:
    legacy = shop.legacy()
    cloud = shop.cloud(legacy, STOCK_REFRESH_MS=50, WORKERS=4)
    wait_for(lambda: cloud.get("/products/7").body["stock"] == 1000)
    legacy.pause()
    hung_calls = [
        threading.Thread(target=cloud.post, args=(f"/carts/h{i}/items", {"sku": 3}))
        for i in range(4)
    ]
    for thread in hung_calls:  # legacy-bound calls in flight while pages are served
        thread.start()
    try:
        for path in ("/products/7", "/products?page=1", "/search?q=lamp", "/"):
            reply = cloud.get(path, timeout=1.0)
            assert reply.status == 200 and reply.seconds < 0.5, (path, reply)
        view = cloud.get("/products/7", timeout=1.0).body
        assert view["stock"] == 1000 and view["stock_source"] == "cache"
    finally:
        for thread in hung_calls:
            thread.join(timeout=5)
    legacy.resume()


def test_product_view_naive_calls_legacy_every_time_and_hangs_with_it(shop: Shop) -> None:
    legacy = shop.legacy()
    cloud = shop.cloud(legacy, MODE="naive", WORKERS=2)
    for _ in range(3):
        view = cloud.get("/products/7").body
        assert view["stock"] == 1000 and view["stock_source"] == "live"
    assert legacy.stats()["requests"]["stock"] == 3
    stats = cloud.stats()
    assert stats["mode"] == "naive" and stats["legacy_calls"]["stock"] == 3
    legacy.pause()
    for _ in range(2):  # the client gives up; the worker stays blocked on legacy
        with pytest.raises(TimeoutError):
            cloud.get("/products/7", timeout=0.5)
    # the cascade: two hung views hold both workers, so even browsing (no legacy call) stalls
    with pytest.raises(TimeoutError):
        cloud.get("/products?page=1", timeout=0.5)
    assert cloud.stats()["in_flight"] == 2
    legacy.resume()
    assert cloud.get("/products?page=1", timeout=5.0).status == 200


def test_naive_errors_are_500_when_legacy_is_killed(shop: Shop) -> None:
    legacy = shop.legacy()
    cloud = shop.cloud(legacy, MODE="naive")
    assert cloud.post("/carts/c1/items", {"sku": 7}).body["stock_check"] == "ok"
    legacy.kill()
    checkout = cloud.post("/carts/c1/checkout", {}, {"Idempotency-Key": key()})
    assert checkout.status == 500 and "error" in checkout.body
    assert cloud.post("/carts/c1/items", {"sku": 8}).status == 500
    assert cloud.get("/products/7").status == 500
    assert cloud.get("/outbox").body == {"pending": []}
    assert [i["sku"] for i in cloud.get("/carts/c1").body["items"]] == [7]  # nothing lost
    assert cloud.get("/products?page=1").status == 200  # cloud-only pages still work
