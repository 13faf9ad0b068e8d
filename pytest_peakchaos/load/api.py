"""``run_load``: the blocking, pytest-free entry point of the load engine."""

from __future__ import annotations

import ipaddress
import math
import os
import threading
import time
import traceback
from typing import TYPE_CHECKING, Any, Callable

from pytest_peakchaos.load.result import LoadResult

if TYPE_CHECKING:
    from multiprocessing.connection import Connection
    from multiprocessing.synchronize import Event as MpEvent

    from pytest_peakchaos.load.engine import EngineConfig
    from pytest_peakchaos.profiles.model import Profile

__all__ = ["LoadWorkerDied", "run_load", "worker_pids"]

_WORKER_START_TIMEOUT_S = 60.0

#: pids of the running load worker processes, by worker index (see :func:`worker_pids`)
_LIVE_WORKERS: dict[int, int] = {}


def worker_pids() -> dict[int, int]:
    """``{worker index: pid}`` of this process's running load workers (``run_load(workers=N)``;
    empty otherwise): for diagnostics and for tests that kill one."""
    return dict(_LIVE_WORKERS)


class LoadWorkerDied(RuntimeError):
    """A load worker (a process of ``workers=N``, or a Dask worker's share) ended without its
    result: killed, OOM-killed, crashed, lost. The run has no verdict: a harness error, not one on
    the system under test. The message names the worker, how it ended and what it was doing."""


def _worker_died(worker: int, workers: int, pid: int | None, exitcode: int | None, doing: str, detail: str = "") -> LoadWorkerDied:
    import signal

    if exitcode is None:
        how = "(exit status unknown)"
    elif exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        how = f"killed by {name}" + (" (killed by someone, or by the kernel's OOM killer)" if name == "SIGKILL" else "")
    else:
        how = f"with exit code {exitcode}"
    return LoadWorkerDied(
        f"load worker {worker} of {workers} (pid {pid if pid is not None else '?'}) died {how} while {doing}; "
        "its share of the sessions has no result, so the run has no verdict" + (f":\n{detail}" if detail else "")
    )


def lost_shares_error(missing: list[dict[str, Any]]) -> LoadWorkerDied:
    """The error for a distributed run whose shares were lost (``LoadResult.missing_shares``)."""
    lost = "; ".join(f"load share {x.get('share')} of {x.get('of')} on Dask worker {x.get('worker')}: {x.get('error')}" for x in missing)
    return LoadWorkerDied(f"{lost}; those sessions have no result, so the run has no verdict")


def _check_host(base_url: str, allow_any_host: bool) -> None:
    from pytest_peakchaos.load.client import parse_base_url

    host, _, _ = parse_base_url(base_url)
    if allow_any_host or host == "localhost":
        return
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(
            f"base_url: load goes to loopback addresses only (127.0.0.0/8, ::1, localhost), got host {host!r}; "
            "publish the service on 127.0.0.1 or pass allow_any_host=True for your own test hosts"
        ) from None
    if not addr.is_loopback:
        raise ValueError(
            f"base_url: load goes to loopback addresses only (127.0.0.0/8, ::1, localhost), got {host!r}; "
            "pass allow_any_host=True for addresses of your own test hosts"
        )


def run_load(
    base_url: str,
    profile: Profile | str | os.PathLike[str],
    *,
    duration: float | str,
    seed: int,
    scale: float = 1.0,
    max_requests: int,
    max_sessions: int | None,
    concurrency_cap: int,
    request_timeout_s: float,
    workers: int = 1,
    on_start: Callable[[float], None] | None = None,
    stop_event: threading.Event | None = None,
    connections: int | None = None,
    run_id: str | None = None,
    use_uvloop: bool | None = None,
    allow_any_host: bool = False,
    on_live: Callable[[Callable[[], tuple[int, int, int]]], None] | None = None,
    cluster: str | None = None,
    engine: str | None = None,
) -> LoadResult:
    """Drive ``profile``'s shoppers against ``base_url`` and return what was measured. Blocking.

    * ``profile``: a built-in name (``"normal"``, ``"double11"``), a YAML path or a ``Profile``. Its
      arrival shape is stretched to ``duration`` and its rates multiplied by ``scale``.
    * ``seed`` fixes every session's path; ``run_id`` (random by default) goes into cart ids and
      idempotency keys so reruns against the same shop do not collide.
    * Bounds: no request is sent after ``duration`` or beyond ``max_requests``; at most
      ``max_sessions`` sessions arrive (``None``: as the shape says); in-flight requests get
      ``request_timeout_s`` (measured from their intended send) before they count as ``timeout``;
      the call returns within ``duration + request_timeout_s + ~1 s`` (plus worker start-up).
    * ``concurrency_cap``: most sessions active at once (per run; split across workers); arrivals
      beyond it are counted as ``sessions.refused_by_cap``. ``connections`` (default: one per
      active session) bounds open connections per worker.
    * ``on_start(t0)``: called with the ``time.monotonic()`` instant of the run's time zero, right
      before the first arrival is scheduled (another thread can align a fault schedule to it). It
      runs on the engine's thread: return quickly (start a thread for anything slow).
    * ``on_live(totals)``: called once at the start with a function returning ``(completed, ok,
      active sessions)`` so far, for progress displays (single-process runs only).
    * ``stop_event``: set it to end the run early (in-flight requests get up to 0.5 s).
    * ``workers > 1``: that many processes, each driving every ``workers``-th session of the same
      seeded arrival stream; their results are merged.
    * ``cluster``: the address of a Dask scheduler (``tcp://host:8786``): the run is split the same
      way over the cluster's workers, one share each (``workers`` is then ignored), from a common
      start instant; lost workers are named in ``missing_shares`` (``load/distributed.py``).
    * ``engine``: ``"python"`` (default; the environment variable ``PEAKCHAOS_ENGINE`` changes it), ``"native"`` (the same engine in C, ``load/native.py``:
      several times the sessions per core; refuses, before anything starts, a profile it cannot
      run) or ``"auto"`` (native when it can run the profile, else python).
    """
    from pytest_peakchaos.load.engine import EngineConfig, default_connections, new_run_id
    from pytest_peakchaos.profiles import load_profile
    from pytest_peakchaos.units import parse_duration

    seconds = parse_duration(duration, what="duration")
    if seconds <= 0:
        raise ValueError("duration: must be > 0")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed: expected an int, got {seed!r}")
    if not (scale >= 0) or math.isinf(scale):
        raise ValueError(f"scale: expected a finite number >= 0, got {scale!r}")
    if max_requests < 1 or concurrency_cap < 1 or workers < 1:
        raise ValueError("max_requests, concurrency_cap and workers must be >= 1")
    if max_sessions is not None and max_sessions < 0:
        raise ValueError("max_sessions: must be >= 0 or None")
    if not (request_timeout_s > 0) or math.isinf(request_timeout_s):
        raise ValueError(f"request_timeout_s: expected a finite number > 0, got {request_timeout_s!r}")
    _check_host(base_url, allow_any_host)
    from pytest_peakchaos.load.native import ENGINES

    where = "engine"
    if engine is None:
        engine = os.environ.get("PEAKCHAOS_ENGINE") or "python"
        where = "PEAKCHAOS_ENGINE"
    if engine not in ENGINES:
        raise ValueError(f"{where}: unknown engine {engine!r}; valid values: {', '.join(ENGINES)}")
    prof = load_profile(profile)
    cap = max(1, math.ceil(concurrency_cap / workers))
    cfg = EngineConfig(
        base_url=base_url,
        profile=prof,
        duration=seconds,
        seed=seed,
        scale=float(scale),
        max_requests=max(1, math.ceil(max_requests / workers)),
        max_sessions=max_sessions,
        concurrency_cap=cap,
        request_timeout_s=float(request_timeout_s),
        connections=connections if connections is not None else default_connections(cap),
        run_id=run_id or new_run_id(),
        workers=workers,
        use_uvloop=use_uvloop,
        engine=engine,
    )
    if engine == "native":  # what it cannot run is said now, before any worker or load starts
        from pytest_peakchaos.load.native import NativeEngineError, binary, unsupported

        why = unsupported(cfg)
        if why:
            raise NativeEngineError("engine=native cannot run this profile: " + "; ".join(why) + " (engine=python or auto can)")
        binary()
    from pytest_peakchaos import interrupt

    # SIGINT/SIGTERM stop the load (within ~0.75 s) instead of cutting the event loop; the
    # KeyboardInterrupt comes when it returned (see pytest_peakchaos.interrupt).
    interrupt.hold()
    try:
        if cluster is not None:
            from dataclasses import replace

            from pytest_peakchaos.load.distributed import run_on_dask

            whole = replace(cfg, max_requests=max_requests, concurrency_cap=concurrency_cap,
                            connections=connections if connections is not None else default_connections(concurrency_cap))
            result = run_on_dask(whole, cluster, on_start=on_start, stop_event=stop_event)
        elif workers == 1:
            result = _run_in_thread(cfg, on_start, stop_event, on_live)
        else:
            result = _run_workers(cfg, workers, on_start, stop_event)
    finally:
        interrupt.release()
    return result


def _run_in_thread(
    cfg: EngineConfig,
    on_start: Callable[[float], None] | None,
    stop_event: threading.Event | None,
    on_live: Callable[[Callable[[], tuple[int, int, int]]], None] | None = None,
) -> LoadResult:
    import asyncio

    from pytest_peakchaos.load.engine import run_engine

    stop_flag = stop_event.is_set if stop_event is not None else None
    try:
        asyncio.get_running_loop()
        in_loop = True
    except RuntimeError:
        in_loop = False
    if not in_loop:
        return run_engine(cfg, on_start=on_start, stop_flag=stop_flag, on_live=on_live)
    # Called from inside a running event loop: run on a helper thread and wait for it.
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["result"] = run_engine(cfg, on_start=on_start, stop_flag=stop_flag, on_live=on_live)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller
            box["error"] = exc

    thread = threading.Thread(target=target, name="peakchaos-load", daemon=True)
    thread.start()
    thread.join(cfg.duration + cfg.request_timeout_s + 30.0)
    if "error" in box:
        raise box["error"]
    if "result" not in box:
        raise RuntimeError("load engine thread did not finish within its hard time limit")
    result: LoadResult = box["result"]
    return result


def _worker_main(cfg: EngineConfig, conn: Connection, stop: MpEvent) -> None:
    """Entry point of a worker process (spawned)."""
    import signal

    from pytest_peakchaos.load.engine import run_engine

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the parent stops us
    try:
        conn.send(("ready", os.getpid()))
        if not conn.poll(_WORKER_START_TIMEOUT_S):
            conn.send(("error", "no start time from the parent"))
            return
        msg = conn.recv()
        if msg[0] != "start":
            return
        result = run_engine(cfg, t0=float(msg[1]), stop_flag=stop.is_set)
        conn.send(("result", result.to_dict()))
    except BaseException:  # noqa: BLE001 - reported to the parent
        try:
            conn.send(("error", traceback.format_exc()))
        except (OSError, ValueError):
            pass
    finally:
        conn.close()


def _run_workers(cfg: EngineConfig, workers: int, on_start: Callable[[float], None] | None, stop_event: threading.Event | None) -> LoadResult:
    import multiprocessing as mp
    from dataclasses import replace

    from pytest_peakchaos import interrupt

    ctx = mp.get_context("spawn")
    stop = ctx.Event()
    procs: list[Any] = []
    pipes: list[Connection] = []
    t0 = math.inf

    def died(k: int, doing: str, detail: str = "") -> LoadWorkerDied:
        stop.set()
        procs[k].join(2.0)  # reap it: its exit code says how it ended
        return _worker_died(k, workers, procs[k].pid, procs[k].exitcode, doing, detail)

    def share(k: int) -> str:
        now = time.monotonic() - t0
        return f"driving share {k} of {workers} (sessions {k}, {k + workers}, {k + 2 * workers}, ...) at {max(0.0, now):.1f}s of the {cfg.duration:g}s run"

    try:
        for k in range(workers):
            parent, child = ctx.Pipe()
            p = ctx.Process(target=_worker_main, args=(replace(cfg, worker=k), child, stop), name=f"peakchaos-load-{k}", daemon=True)
            p.start()
            child.close()
            procs.append(p)
            pipes.append(parent)
            _LIVE_WORKERS[k] = int(p.pid or 0)
        deadline = time.monotonic() + _WORKER_START_TIMEOUT_S
        for k, pipe in enumerate(pipes):
            if not pipe.poll(max(0.0, deadline - time.monotonic())):
                raise LoadWorkerDied(f"load worker {k} of {workers} (pid {procs[k].pid}) did not start within {_WORKER_START_TIMEOUT_S:.0f}s")
            try:
                msg = pipe.recv()
            except (EOFError, OSError):
                raise died(k, "starting (before it reported ready)") from None
            if msg[0] != "ready":
                raise LoadWorkerDied(f"load worker {k} of {workers} (pid {procs[k].pid}) failed to start:\n{msg[1]}")
        t0 = time.monotonic() + 0.05
        if on_start is not None:
            on_start(t0)
        for k, pipe in enumerate(pipes):
            try:
                pipe.send(("start", t0))
            except OSError:
                raise died(k, "waiting for the start time") from None
        results: list[LoadResult] = []
        hard = t0 + cfg.duration + cfg.request_timeout_s + 30.0
        pending = dict(enumerate(pipes))
        for _ in range(int((hard - time.monotonic()) / 0.05) + 100):
            if not pending:
                break
            if (stop_event is not None and stop_event.is_set()) or interrupt.requested():
                stop.set()
            for k, pipe in list(pending.items()):
                if pipe.poll(0.05 / max(1, len(pending))):
                    try:
                        msg = pipe.recv()
                    except (EOFError, OSError):  # its end closed without a result: the process died
                        raise died(k, share(k)) from None
                    del pending[k]
                    if msg[0] != "result":
                        raise died(k, share(k), f"it reported: {msg[1]}")
                    results.append(LoadResult.from_dict(msg[1]))
                elif procs[k].exitcode is not None:  # gone, and nothing more to read
                    raise died(k, share(k))
            if time.monotonic() > hard:
                break
        if pending:
            hung = ", ".join(f"{k} (pid {procs[k].pid})" for k in sorted(pending))
            raise LoadWorkerDied(
                f"load worker(s) {hung} of {workers} did not report within the hard time limit "
                f"({hard - t0:.0f}s after the start: the run's duration, its request time-out and 30 s); "
                "the run has no verdict"
            )
        merged = results[0]
        merged.merge(*results[1:])
        return merged
    finally:
        _LIVE_WORKERS.clear()
        stop.set()
        for p in procs:
            p.join(5.0)
            if p.is_alive():
                p.terminate()
                p.join(2.0)
        for pipe in pipes:
            pipe.close()
