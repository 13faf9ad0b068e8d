"""Distributed load on a real Dask cluster (``distributed.LocalCluster``, 2 worker processes, on
127.0.0.1) against the reference shop run as local processes: the same sessions as a one-process
run with the same seed, the same transition statistics, and a killed worker reported."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pytest_peakchaos.load import Constant, run_load
from pytest_peakchaos.load.distributed import DaskUnavailable
from pytest_peakchaos.profiles import load_profile
from pytest_peakchaos.stack.local import LocalStack, load_local

from .toxiproxy_local import find_toxiproxy_server
from ..conftest import unavailable

distributed = pytest.importorskip("distributed")

ROOT = Path(__file__).resolve().parents[2]
RATE = 50.0
DURATION = 6.0
SEED = 4242


@pytest.fixture(scope="module")
def shop() -> Iterator[LocalStack]:
    binary = find_toxiproxy_server()
    if binary is None:
        unavailable("no toxiproxy-server binary: run the project setup")
    stack = LocalStack(load_local(ROOT / "compose" / "shop.local.yml"), toxiproxy_server=binary)
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None, silence_logs=40) as c:
        yield c


def _load(shop: LocalStack, **kwargs: Any) -> Any:
    profile = load_profile("normal").with_shape(Constant(duration=DURATION, rate_per_s=RATE))
    return run_load(shop.url("cloud"), profile, duration=DURATION, seed=SEED, max_requests=200_000,
                    max_sessions=None, concurrency_cap=2_000, request_timeout_s=3.0, **kwargs)


def _chi2_same(a: dict[str, int], b: dict[str, int]) -> float:
    from scipy.stats import chi2_contingency

    keys = sorted(set(a) | set(b))
    table = [[a.get(k, 0) for k in keys], [b.get(k, 0) for k in keys]]
    return float(chi2_contingency(table)[1])


def test_dask_run_is_the_same_process_as_a_local_run(shop: LocalStack, cluster: Any) -> None:
    starts: list[float] = []
    dist = _load(shop, cluster=cluster.scheduler_address, on_start=starts.append)
    local = _load(shop)
    assert dist.workers == 2 and dist.missing_shares == []
    assert len(starts) == 1 and abs(starts[0] - dist.t0) < 1e-9
    # the same seeded arrival stream, split by session index: the same sessions arrive
    expected = RATE * DURATION
    err = abs(dist.sessions.arrived - local.sessions.arrived) / local.sessions.arrived
    print(f"arrivals: dask {dist.sessions.arrived}, local {local.sessions.arrived} (planned {expected:.0f}); error {err:.2%}")
    assert err <= 0.02
    assert abs(dist.sessions.arrived - expected) <= 4 * expected**0.5  # a Poisson count near its mean
    # the same behaviour: per-action request counts are one distribution (chi-square homogeneity)
    counts_d = {a: s.count for a, s in dist.actions.items()}
    counts_l = {a: s.count for a, s in local.actions.items()}
    p = _chi2_same(counts_d, counts_l)
    print(f"actions dask {counts_d}\nactions local {counts_l}\nchi-square p = {p:.3f}")
    assert p > 0.01
    # the merged result has the local schema
    assert set(dist.to_dict()) == set(local.to_dict())


def test_a_killed_worker_is_reported_not_dropped(shop: LocalStack, cluster: Any) -> None:
    from distributed import Client

    with Client(cluster.scheduler_address, set_as_default=False) as c:
        pids = c.run(os.getpid)  # worker address -> pid
    victim_addr, victim_pid = sorted(pids.items())[0]

    def kill_soon() -> None:
        time.sleep(2.0 + 1.5)  # START_LEAD_S, then 1.5 s into the run
        os.kill(victim_pid, signal.SIGKILL)

    killer = threading.Thread(target=kill_soon, daemon=True)
    killer.start()
    result = _load(shop, cluster=cluster.scheduler_address)
    killer.join()
    print(result.stop_reason, result.missing_shares)
    assert len(result.missing_shares) == 1
    lost = result.missing_shares[0]
    assert lost["worker"] == victim_addr and lost["of"] == 2
    assert "1 of 2 shares lost" in result.stop_reason and victim_addr in result.stop_reason
    # the other half still arrived and was measured
    assert 0.3 * RATE * DURATION <= result.sessions.arrived <= 0.7 * RATE * DURATION
    assert result.to_dict()["missing_shares"][0]["worker"] == victim_addr


def test_unreachable_scheduler_is_a_clear_error_before_any_load(monkeypatch: pytest.MonkeyPatch) -> None:
    from pytest_peakchaos.load import distributed as dist_mod
    from pytest_peakchaos.stack.local import _free_port

    monkeypatch.setattr(dist_mod, "CONNECT_TIMEOUT_S", 2.0)
    address = f"tcp://127.0.0.1:{_free_port()}"
    t = time.monotonic()
    with pytest.raises(DaskUnavailable, match=r"no Dask scheduler answers at 'tcp://127\.0\.0\.1:\d+'"):
        run_load("http://127.0.0.1:9", "normal", duration=5, seed=1, max_requests=10, max_sessions=None,
                 concurrency_cap=10, request_timeout_s=1.0, cluster=address)
    assert time.monotonic() - t < 30


@pytest.mark.parametrize("bad", ["abc", "http://127.0.0.1:8786", "tcp://host:0", "tcp://host:99999", "tcp://:8786"])
def test_a_bad_dask_address_is_a_usage_error_naming_the_option(pytester: pytest.Pytester, bad: str) -> None:
    pytester.makepyfile(test_x="def test_x(): pass")
    result = pytester.runpytest("-p", "peakchaos", f"--peakchaos-dask={bad}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert "--peakchaos-dask / ini peakchaos_dask" in err and "tcp://127.0.0.1:8786" in err and repr(bad) in err, err
