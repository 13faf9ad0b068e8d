"""End to end against the reference shop (fixtures/cloud + fixtures/legacy as local processes):
at the same session arrival rate, double11 shoppers make many more legacy-bound calls per session
than normal ones, and every acknowledged order is in legacy's ledger."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pytest_peakchaos.load import Constant, LoadResult, run_load
from pytest_peakchaos.profiles import load_profile
from tests.unit.test_load_bounds import free_port

ROOT = Path(__file__).resolve().parents[2]
LEGACY_APP = ROOT / "fixtures" / "legacy" / "app.py"
CLOUD_APP = ROOT / "fixtures" / "cloud" / "app.py"


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 - loopback only
        return json.loads(resp.read())


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    for _ in range(int(timeout / 0.1) + 1):
        if proc.poll() is not None:
            pytest.fail(f"{url} exited with {proc.returncode}:\n{log.read_text()[-2000:]}")
        try:
            _get(url + "/health")
            return
        except (urllib.error.URLError, OSError, ValueError):
            pass
        if time.monotonic() > deadline:
            break
        time.sleep(0.1)
    pytest.fail(f"{url}/health did not answer within {timeout:.0f}s:\n{log.read_text()[-2000:]}")


@dataclass
class Shop:
    cloud: str
    legacy: str


@pytest.fixture()
def shop(tmp_path: Path) -> Iterator[Shop]:
    missing = [str(p.relative_to(ROOT)) for p in (LEGACY_APP, CLOUD_APP) if not p.is_file()]
    if missing:
        pytest.skip(f"reference shop not available yet: {', '.join(missing)} missing (contract: docs/reference-shop.md)")
    lport, cport = free_port(), free_port()
    env = dict(os.environ)
    env.update(HOST="127.0.0.1", PORT=str(lport), DB_PATH=str(tmp_path / "legacy.db"))
    procs: list[subprocess.Popen[bytes]] = []
    logs = []
    try:
        llog = tmp_path / "legacy.log"
        with llog.open("wb") as out:
            procs.append(subprocess.Popen([sys.executable, str(LEGACY_APP)], env=env, stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path))
        logs.append(llog)
        _wait_healthy(f"http://127.0.0.1:{lport}", procs[0], llog)
        env.update(PORT=str(cport), LEGACY_URL=f"http://127.0.0.1:{lport}", MODE="resilient")
        clog = tmp_path / "cloud.log"
        with clog.open("wb") as out:
            procs.append(subprocess.Popen([sys.executable, str(CLOUD_APP)], env=env, stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path))
        _wait_healthy(f"http://127.0.0.1:{cport}", procs[1], clog)
        yield Shop(cloud=f"http://127.0.0.1:{cport}", legacy=f"http://127.0.0.1:{lport}")
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)


def _legacy_calls(stats: dict[str, Any]) -> int | None:
    calls = stats.get("legacy_calls")
    if not isinstance(calls, dict):
        return None
    return int(calls.get("stock", 0)) + int(calls.get("orders", 0))


def _drive(shop: Shop, name: str, sessions: int) -> tuple[LoadResult, int | None]:
    profile = load_profile(name).with_(shape=Constant(30.0, 10.0), think_scale=0.01)
    before = _legacy_calls(_get(shop.cloud + "/stats"))
    result = run_load(shop.cloud, profile, duration=30, seed=2018, max_requests=50_000, max_sessions=sessions,
                      concurrency_cap=500, request_timeout_s=10)
    after = _legacy_calls(_get(shop.cloud + "/stats"))
    server_side = None if before is None or after is None else after - before
    return result, server_side


def test_double11_makes_more_legacy_calls_per_session_than_normal(shop: Shop) -> None:
    sessions = 40
    runs = {name: _drive(shop, name, sessions) for name in ("normal", "double11")}
    for name, (r, server) in runs.items():
        print(f"\n--- {name} ---\n{r.summary()}")
        per_session = f"{server / r.sessions.started:.2f}" if server is not None else "n/a"
        print(f"{name}: legacy-bound calls/session measured by the load engine = {r.legacy_calls_per_session:.2f}; "
              f"legacy calls/session counted by cloud /stats = {per_session}")
        assert r.stop_reason == "max_sessions"  # every session played out
        assert r.sessions.started == sessions
        total = r.total
        assert total.ok >= 0.99 * total.count, total.errors
    normal, d11 = runs["normal"][0], runs["double11"][0]
    assert d11.legacy_calls_per_session > 3 * normal.legacy_calls_per_session
    n_server, d_server = runs["normal"][1], runs["double11"][1]
    if n_server is not None and d_server is not None:
        assert d_server > 3 * max(1, n_server)

    # nothing lost: every order the cloud confirmed (201) is in legacy's ledger
    ledger = {o["idempotency_key"] for o in _get(shop.legacy + "/orders")["orders"]}
    confirmed = [o for r in (normal, d11) for o in r.orders if o.status == 201]
    assert confirmed
    assert all(o.idempotency_key in ledger for o in confirmed)
