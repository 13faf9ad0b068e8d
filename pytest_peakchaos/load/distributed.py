"""One load run split across a Dask cluster's workers (``run_load(..., cluster=ADDRESS)``).

Needs the ``distributed`` package (``pip install pytest-peakchaos[dask]``). How a run is split:

* Every worker gets the same seeded arrival stream and drives every ``n``-th session of it (worker
  ``k`` of ``n``), the engine's own multi-process split. The union of the workers' sessions is not
  only the same Poisson process as a one-process run (independent thinning of a Poisson process by
  index gives ``n`` streams whose rates sum to the profile's): it is *the same sessions*, so a
  distributed run and a local run with the same seed drive the same shoppers.
* A common start instant is sent with the tasks as wall-clock time (``time.time()``); each worker
  maps it onto its own monotonic clock. Worker clocks must agree to well under a second (NTP).
  The driver calls ``on_start`` with the same instant on its monotonic clock, so the fault schedule
  (which stays on the driver) is aligned to the same time zero.
* Results come back as ``LoadResult.to_dict()`` and are merged (histograms, per-second series,
  orders, counters) into one result of the same schema as a local run.
* A worker that is lost mid-run (its process died, or the scheduler lost it) is reported in
  ``LoadResult.missing_shares`` and ``stop_reason``: its share of the sessions is missing and named,
  never silently dropped. An experiment turns missing shares into a ``LoadWorkerDied`` harness
  error (half a load is no verdict on the system under test).
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Callable

from pytest_peakchaos.load.result import LoadResult

if TYPE_CHECKING:
    from pytest_peakchaos.load.engine import EngineConfig

__all__ = ["DaskUnavailable", "run_on_dask"]

#: how long before the common start instant the tasks are sent (covers shipping and worker start-up)
START_LEAD_S = 2.0
#: how often the driver looks for lost workers and the workers look for a stop request
POLL_S = 0.25
#: how long to wait for the scheduler to answer
CONNECT_TIMEOUT_S = 10.0


class DaskUnavailable(RuntimeError):
    """``distributed`` is not installed, or no scheduler answers at the address."""


_SCHEMES = ("tcp", "tls", "ws", "wss", "ucx")


def check_address(address: object, what: str = "cluster") -> str:
    """``address`` as a Dask scheduler address (``tcp://host:port``), or ``ValueError`` saying why."""
    import re

    text = str(address).strip()
    m = re.fullmatch(r"(?:(?P<scheme>[a-z]+)://)?(?P<host>\[[0-9a-fA-F:]+\]|[A-Za-z0-9_.-]+):(?P<port>[0-9]{1,5})", text)
    if m is None or (m.group("scheme") and m.group("scheme") not in _SCHEMES) or not 0 < int(m.group("port")) < 65536:
        raise ValueError(
            f"{what}: {address!r} is not a Dask scheduler address; expected SCHEME://HOST:PORT with SCHEME one of "
            f"{', '.join(_SCHEMES)} (e.g. tcp://127.0.0.1:8786)"
        )
    return text if m.group("scheme") else f"tcp://{text}"


def _client(address: str, timeout_s: float) -> Any:
    try:
        import distributed
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise DaskUnavailable(
            "cluster: distributed load needs the `distributed` package: pip install 'pytest-peakchaos[dask]'"
        ) from exc
    try:
        return getattr(distributed, "Client")(address, timeout=timeout_s, set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise DaskUnavailable(
            f"cluster: no Dask scheduler answers at {address!r} within {timeout_s:g}s ({exc}); "
            "give the scheduler's address, e.g. tcp://127.0.0.1:8786 (--peakchaos-dask / peakchaos_dask)"
        ) from exc


def _share_task(cfg: EngineConfig, t0_wall: float, stop_name: str) -> dict[str, Any]:
    """Runs on a Dask worker: the unchanged engine for one share, from the common start instant."""
    import distributed

    from pytest_peakchaos.load.engine import run_engine

    stop_event: Any = getattr(distributed, "Event")(stop_name)
    stopped = threading.Event()
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            try:
                if stop_event.is_set():
                    stopped.set()
                    return
            except Exception:  # noqa: BLE001 - scheduler gone: keep running to our own bounds
                return
            done.wait(POLL_S)

    watcher = threading.Thread(target=watch, name="peakchaos-dask-stop", daemon=True)
    watcher.start()
    t0 = time.monotonic() + (t0_wall - time.time())
    try:
        return run_engine(cfg, t0=t0, stop_flag=stopped.is_set).to_dict()
    finally:
        done.set()


def run_on_dask(
    cfg: EngineConfig,
    address: str,
    *,
    on_start: Callable[[float], None] | None = None,
    stop_event: threading.Event | None = None,
    connect_timeout_s: float | None = None,
    shares: int | None = None,
) -> LoadResult:
    """Run ``cfg`` split over the workers of the Dask scheduler at ``address``; merged result.

    ``shares``: how many shares (default: one per worker, each pinned to its worker). ``cfg``'s
    ``max_requests`` and ``concurrency_cap`` are for the whole run and are divided among the shares.
    """
    address = check_address(address)
    client = _client(address, CONNECT_TIMEOUT_S if connect_timeout_s is None else connect_timeout_s)
    try:
        workers = sorted(client.scheduler_info().get("workers", {}))
        if not workers:
            raise DaskUnavailable(f"cluster: the Dask scheduler at {address!r} has no workers")
        n = shares or len(workers)
        if n < 1:
            raise ValueError(f"shares: expected >= 1, got {shares!r}")
        stop_name = f"peakchaos-stop-{cfg.run_id}"
        import distributed

        dask_stop: Any = getattr(distributed, "Event")(stop_name, client=client)
        t0_wall = time.time() + START_LEAD_S
        t0_mono = time.monotonic() + START_LEAD_S
        futures: dict[int, tuple[str, Any]] = {}
        for k in range(n):
            share = replace(
                cfg,
                worker=k,
                workers=n,
                max_requests=max(1, math.ceil(cfg.max_requests / n)),
                concurrency_cap=max(1, math.ceil(cfg.concurrency_cap / n)),
                connections=max(1, math.ceil(cfg.connections / n)),
            )
            where = workers[k % len(workers)]
            fut = client.submit(
                _share_task, share, t0_wall, stop_name, workers=[where], allow_other_workers=False,
                pure=False, key=f"peakchaos-load-{cfg.run_id}-{k}",
            )
            futures[k] = (where, fut)
        if on_start is not None:
            on_start(t0_mono)
        results: list[LoadResult] = []
        lost: list[dict[str, Any]] = []
        hard = t0_mono + cfg.duration + cfg.request_timeout_s + 30.0
        pending = dict(futures)
        while pending:
            if stop_event is not None and stop_event.is_set():
                dask_stop.set()
            try:
                alive = set(client.scheduler_info().get("workers", {}))
            except Exception:  # noqa: BLE001 - scheduler gone: every pending share is lost
                alive = set()
            for k, (where, fut) in list(pending.items()):
                if fut.done():
                    del pending[k]
                    try:
                        results.append(LoadResult.from_dict(fut.result()))
                    except Exception as exc:  # noqa: BLE001 - a failed share is reported, not dropped
                        lost.append({"share": k, "of": n, "worker": where, "error": f"{type(exc).__name__}: {exc}"})
                elif where not in alive:
                    del pending[k]
                    fut.cancel()
                    lost.append({"share": k, "of": n, "worker": where, "error": "the worker was lost mid-run"})
            if pending and time.monotonic() > hard:
                for k, (where, fut) in pending.items():
                    fut.cancel()
                    lost.append({"share": k, "of": n, "worker": where, "error": "no result within the hard time limit"})
                pending.clear()
            if pending:
                time.sleep(POLL_S)
        if not results:
            from pytest_peakchaos.load.api import LoadWorkerDied

            raise LoadWorkerDied(
                "cluster: every share of the run was lost: "
                + "; ".join(f"share {x['share']} on {x['worker']}: {x['error']}" for x in lost)
            )
        merged = results[0]
        merged.merge(*results[1:])
        merged.t0 = t0_mono
        merged.workers = n
        if lost:
            merged.missing_shares = sorted(lost, key=lambda x: int(x["share"]))
            note = f"{len(lost)} of {n} shares lost ({', '.join(str(x['worker']) for x in lost)})"
            merged.stop_reason = ",".join(x for x in (merged.stop_reason, note) if x)
        return merged
    finally:
        client.close()
