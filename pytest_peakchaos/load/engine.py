"""The partly-open load engine.

* Sessions arrive by a seeded non-homogeneous Poisson process following the profile's shape
  (open: arrivals never wait for the system). A concurrency cap on active sessions protects the
  generator; arrivals beyond it are counted as ``refused_by_cap``.
* Inside a session requests are closed-loop: the next request is *intended* at the previous
  response's completion plus a think time, and its latency is measured from that intended instant,
  including any wait for a connection (no coordinated omission).
* Impatience: when a response has not arrived within the shopper's patience, the shopper refreshes
  (the same request again; the slow one keeps running and is recorded when it ends) or abandons.
* Bounds: arrivals stop at ``duration`` (or ``max_sessions``), no request is sent after
  ``duration`` or past ``max_requests``, in-flight requests get at most ``request_timeout_s`` to
  finish, and then every connection is closed. Every loop is bounded in time and count.
"""

from __future__ import annotations

import asyncio
import heapq
import json
import math
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable
from urllib.parse import quote

from pytest_peakchaos.load.client import Pool, Request, parse_base_url
from pytest_peakchaos.load.health import HealthSampler
from pytest_peakchaos.load.plan import CHECKOUT, CompiledPlan, arrival_rng, session_rng
from pytest_peakchaos.load.result import (
    ERROR_KINDS,
    COARSE_FACTOR,
    INV_LOG_FINE,
    ActionStats,
    AckOrder,
    LoadResult,
    LogSketch,
    SecondStats,
    SessionCounts,
    hdr_from_fine,
)
from pytest_peakchaos.load.shapes import arrival_times

if TYPE_CHECKING:
    from pytest_peakchaos.profiles.model import Profile, RequestBinding

__all__ = ["EngineConfig", "run_engine", "new_event_loop"]

_TICK_S = 0.005
_HOUSEKEEPING_S = 0.25
_IMPATIENT = -1.0
_monotonic = time.monotonic
_log = math.log


def new_event_loop(use_uvloop: bool | None = None) -> asyncio.AbstractEventLoop:
    """uvloop's loop when it is installed (``use_uvloop=None``/``True``), asyncio's otherwise."""
    if use_uvloop is not False:
        try:
            import uvloop
        except ImportError:
            if use_uvloop:
                raise
        else:
            return uvloop.new_event_loop()
    return asyncio.new_event_loop()


@dataclass
class EngineConfig:
    base_url: str
    profile: Profile
    duration: float
    seed: int
    scale: float
    max_requests: int
    max_sessions: int | None
    concurrency_cap: int
    request_timeout_s: float
    connections: int
    run_id: str
    worker: int = 0
    workers: int = 1
    use_uvloop: bool | None = None
    shape_duration: float | None = None  # stretch the shape to this (default: duration)
    extra: dict[str, Any] = field(default_factory=dict)


# ------------------------------------------------------------------------------------------------
# request bindings compiled for the hot path


def _compile_json(tpl: Any) -> Callable[[dict[str, Any]], Any]:
    import string

    if isinstance(tpl, str):
        parsed = list(string.Formatter().parse(tpl))
        if len(parsed) == 1 and parsed[0][0] == "" and parsed[0][1]:
            name = parsed[0][1]
            return lambda v: v[name]
        if any(p[1] for p in parsed):
            return lambda v: tpl.format_map(v)
        return lambda v: tpl
    if isinstance(tpl, dict):
        items = [(k, _compile_json(x)) for k, x in tpl.items()]
        return lambda v: {k: f(v) for k, f in items}
    if isinstance(tpl, list):
        fs = [_compile_json(x) for x in tpl]
        return lambda v: [f(v) for f in fs]
    return lambda v: tpl


def _dotted(doc: Any, path: str) -> Any:
    cur = doc
    for part in path.split("."):
        if isinstance(cur, dict) and part in cur:
            cur = cur[part]
        elif isinstance(cur, list) and part.isdigit() and int(part) < len(cur):
            cur = cur[int(part)]
        else:
            return None
    return cur


class _Bound:
    """One action's binding, ready to serialize requests quickly."""

    __slots__ = ("action", "method", "path", "head_tail", "json_fn", "dyn_headers", "idem", "ack", "order_id", "capture", "parse", "no_body")

    def __init__(self, action: str, b: RequestBinding, prefix: str, host_header: str) -> None:
        self.action = action
        self.method = b.method
        self.path = prefix + b.path
        static = [f"Host: {host_header}", "User-Agent: peakchaos", "Accept: */*"]
        dyn: list[tuple[str, str]] = []
        for k, v in b.headers:
            if "{" in k or "{" in v:
                dyn.append((k, v))
            else:
                static.append(f"{k}: {v}")
        self.dyn_headers: tuple[tuple[str, str], ...] = tuple(dyn)
        self.head_tail = " HTTP/1.1\r\n" + "".join(f"{h}\r\n" for h in static)
        self.json_fn = _compile_json(b.json) if b.json is not None else None
        self.idem = b.idempotency_key
        self.ack = frozenset(b.acknowledge)
        self.order_id = b.order_id
        self.capture = b.capture
        self.parse = bool(b.order_id or b.capture)
        self.no_body = b.method == "HEAD"

    def render(self, pvars: dict[str, Any], jvars: dict[str, Any], key: str | None) -> bytes:
        path = self.path.format_map(pvars) if "{" in self.path else self.path
        parts = [self.method, " ", path, self.head_tail]
        for k, v in self.dyn_headers:
            parts.append(f"{k.format_map(pvars)}: {v.format_map(jvars)}\r\n")
        if key is not None and self.idem:
            parts.append(f"{self.idem}: {key}\r\n")
        body = b""
        if self.json_fn is not None:
            body = json.dumps(self.json_fn(jvars), separators=(",", ":")).encode()
            parts.append(f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n")
        elif self.method in ("POST", "PUT", "PATCH"):
            parts.append("Content-Length: 0\r\n")
        parts.append("\r\n")
        return "".join(parts).encode("latin-1") + body


# ------------------------------------------------------------------------------------------------


class _SessionState:
    __slots__ = ("index", "pvars", "jvars")

    def __init__(self, index: int, pvars: dict[str, Any], jvars: dict[str, Any]) -> None:
        self.index = index
        self.pvars = pvars
        self.jvars = jvars


class Engine:
    """One process's share of a run (``worker`` of ``workers``). Use ``run_engine``."""

    def __init__(self, cfg: EngineConfig) -> None:
        from pytest_peakchaos.profiles.model import ACTIONS

        self.cfg = cfg
        p = cfg.profile
        self.plan = CompiledPlan(p)
        self.actions = ACTIONS
        host, port, prefix = parse_base_url(cfg.base_url)
        self.host, self.port = host, port
        host_header = host if port == 80 else f"{host}:{port}"
        self.bound: list[_Bound | None] = [
            _Bound(a, p.bindings[a], prefix, host_header) if a in p.bindings else None for a in ACTIONS
        ]
        self.quoted_terms = [quote(t, safe="") for t in p.catalog.search_terms]
        self.patience = p.patience
        shape = p.shape.over(cfg.shape_duration or cfg.duration)
        self.shape = shape
        n = len(ACTIONS)
        # -- recording (per action index) --
        self.count = [0] * n
        self.ok = [0] * n
        self.queued = [0] * n
        self.impatient = [0] * n
        self.errors: list[dict[str, int]] = [{k: 0 for k in ERROR_KINDS} for _ in range(n)]
        self.status: list[dict[int, int]] = [{} for _ in range(n)]
        # latency in fine log buckets (0.1 %), folded into HdrHistograms at the end
        self.lat: list[dict[int, int]] = [{} for _ in range(n)]
        self.svc: list[dict[int, int]] = [{} for _ in range(n)]
        self.lat_class: list[dict[int, dict[int, int]]] = [{} for _ in range(n)]
        # per second: open seconds as [count, ok, errors, queued, max_us, {bucket: n}]
        self.open_sec: list[dict[int, list[Any]]] = [{} for _ in range(n)]
        self.done_sec: list[dict[int, SecondStats]] = [{} for _ in range(n)]
        self.sess_sec: dict[int, list[int]] = {}
        self.sessions = SessionCounts()
        self.retries = 0
        self.orders: list[AckOrder] = []
        self.sent = 0
        self.inflight = 0
        self.unfinished = 0
        self.active = 0
        self.tasks: set[asyncio.Task[None]] = set()
        self.patience_heap: list[tuple[float, int, asyncio.Future[float]]] = []
        self.patience_seq = 0
        self.stopping = False
        self.stop_reason = ""
        self.arrivals_done = False
        self.limit_hit = False
        self.t0 = 0.0
        self.end_sending = 0.0
        self.pool: Pool | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.health = HealthSampler(0.0)

    # -- recording ----------------------------------------------------------------------------------
    def _on_done(self, req: Request, status: int, body: bytes, err: str | None, t_done: float) -> None:
        ctx: tuple[int, float, _SessionState, str | None, asyncio.Future[float]] = req.ctx  # type: ignore[assignment]
        a, intended, st, key, waiter = ctx
        self.inflight -= 1
        if err == "cancelled":
            self.unfinished += 1
            if not waiter.done():
                waiter.set_result(t_done)
            return
        lat = (t_done - intended) * 1e6
        fi = int(_log(lat) * INV_LOG_FINE) + 1 if lat > 1.0 else 0
        self.count[a] += 1
        d = self.lat[a]
        d[fi] = d.get(fi, 0) + 1
        cls = status // 100 if status else 0
        dc = self.lat_class[a].get(cls)
        if dc is None:
            dc = self.lat_class[a][cls] = {}
        dc[fi] = dc.get(fi, 0) + 1
        if req.t_sent > 0.0:
            sv = (t_done - req.t_sent) * 1e6
            si = int(_log(sv) * INV_LOG_FINE) + 1 if sv > 1.0 else 0
            ds = self.svc[a]
            ds[si] = ds.get(si, 0) + 1
        ok = 0
        queued = 0
        if status:
            sc = self.status[a]
            sc[status] = sc.get(status, 0) + 1
            if status < 400:
                ok = 1
                self.ok[a] += 1
                if status == 202:
                    queued = 1
                    self.queued[a] += 1
            elif status >= 500:
                self.errors[a]["status_5xx"] += 1
            else:
                self.errors[a]["status_4xx"] += 1
            b = self.bound[a]
            if b is not None and (b.parse or b.ack):
                self._response_effects(b, st, status, body, key)
        else:
            kind = err if err in ("timeout", "reset", "refused") else "other"
            self.errors[a][kind] += 1
        sec = int(intended - self.t0)
        per = self.open_sec[a]
        row = per.get(sec)
        late = False
        if row is None:
            row = [0, 0, 0, 0, 0.0, {}, None]
            if sec in self.done_sec[a]:  # a straggler for an already finalized second
                late = True
            else:
                per[sec] = row
        row[0] += 1
        row[1] += ok
        row[2] += 1 - ok
        row[3] += queued
        if not ok:  # error kinds per second: the status code, or the transport failure
            ek = row[6]
            if ek is None:
                ek = row[6] = {}
            ekind = str(status) if status else (err if err in ("timeout", "reset", "refused") else "other")
            ek[ekind] = ek.get(ekind, 0) + 1
        if lat > row[4]:
            row[4] = lat
        bucket = (fi + COARSE_FACTOR - 1) // COARSE_FACTOR
        bk = row[5]
        bk[bucket] = bk.get(bucket, 0) + 1
        if late:
            self._late(a, sec, row)
        if not waiter.done():  # an abandoned (impatient) request no longer has a shopper waiting
            waiter.set_result(t_done)

    def _late(self, a: int, sec: int, row: list[Any]) -> None:
        self.done_sec[a][sec].merge(SecondStats(sec, row[0], row[1], row[2], row[3], LogSketch.from_dict_counts(row[5], row[4]), row[6] or {}))

    def _response_effects(self, b: _Bound, st: _SessionState, status: int, body: bytes, key: str | None) -> None:
        doc: Any = None
        if b.parse and 200 <= status < 300 and body:
            try:
                doc = json.loads(body)
            except ValueError:
                doc = None
        if b.ack and status in b.ack:
            oid = _dotted(doc, b.order_id) if (b.order_id and doc is not None) else None
            self.orders.append(AckOrder(key or "", status, None if oid is None else str(oid), b.action))
        if b.capture and doc is not None:
            for var, path in b.capture:
                value = _dotted(doc, path)
                if value is not None:
                    st.jvars[var] = value
                    st.pvars[var] = quote(str(value), safe="")

    def _finalize(self, upto_sec: int | None) -> None:
        for a, per in enumerate(self.open_sec):
            if not per:
                continue
            done = self.done_sec[a]
            for sec in [s for s in per if upto_sec is None or s <= upto_sec]:
                row = per.pop(sec)
                if not row[0]:
                    continue
                st = SecondStats(sec, row[0], row[1], row[2], row[3], LogSketch.from_dict_counts(row[5], row[4]), row[6] or {})
                if sec in done:
                    done[sec].merge(st)
                else:
                    done[sec] = st

    # -- sessions -----------------------------------------------------------------------------------
    async def _sleep_until(self, when: float) -> None:
        for _ in range(4):
            delay = when - _monotonic()
            if delay <= 0.0:
                return
            await asyncio.sleep(delay)

    async def _session(self, index: int, t_arrival: float) -> None:
        cfg = self.cfg
        plan = self.plan
        bound = self.bound
        pool = self.pool
        loop = self.loop
        assert pool is not None and loop is not None
        rng, patience = plan.start(cfg.seed, index)
        cart_id = f"pc-{cfg.run_id}-{index}"
        pvars: dict[str, Any] = {"session": index, "run_id": cfg.run_id, "cart_id": cart_id, "qty": plan.catalog.qty,
                                 "sku": "", "page": "", "query": "", "idempotency_key": ""}
        jvars = dict(pvars)
        st = _SessionState(index, pvars, jvars)
        terms = plan.catalog.search_terms
        qterms = self.quoted_terms
        timeout = cfg.request_timeout_s
        use_patience = patience < timeout
        max_retries = self.patience.max_retries
        p_retry = self.patience.retry_probability
        imp_rng = None
        intended = t_arrival
        checkouts = 0
        heap = self.patience_heap
        health = self.health
        t0 = self.t0
        try:
            for a, think, sku, page, term, _ in plan.walk(rng):
                if think > 0.0:
                    intended += think
                    if intended >= self.end_sending:
                        return
                    await self._sleep_until(intended)
                if self.stopping or intended >= self.end_sending:
                    return
                if sku >= 0:
                    pvars["sku"] = jvars["sku"] = sku
                if page >= 0:
                    pvars["page"] = jvars["page"] = page
                if term >= 0:
                    pvars["query"] = qterms[term]
                    jvars["query"] = terms[term]
                key = None
                if a == CHECKOUT:
                    key = f"pc-{cfg.run_id}-{index}-{checkouts}"
                    checkouts += 1
                    pvars["idempotency_key"] = jvars["idempotency_key"] = key
                b = bound[a]
                assert b is not None
                raw = b.render(pvars, jvars, key)
                for attempt in range(max_retries + 1):
                    if self.sent >= cfg.max_requests:
                        self._stop("max_requests")
                    if self.stopping or intended >= self.end_sending:
                        return
                    waiter: asyncio.Future[float] = loop.create_future()
                    self.sent += 1
                    self.inflight += 1
                    req = Request(raw, intended + timeout, self._on_done, (a, intended, st, key, waiter), b.no_body)
                    pool.submit(req)
                    if req.t_sent > 0.0:  # written at once on an idle connection: the delay is the generator's
                        health.send_delay(int(intended - t0), (req.t_sent - intended) * 1e6)
                    if use_patience:
                        self.patience_seq += 1
                        heapq.heappush(heap, (intended + patience, self.patience_seq, waiter))
                    t_done = await waiter
                    if t_done != _IMPATIENT:
                        intended = t_done
                        break
                    # the shopper gave up waiting
                    self.impatient[a] += 1
                    if imp_rng is None:
                        imp_rng = session_rng(cfg.seed, index, "impatience")
                    if attempt < max_retries and imp_rng.random() < p_retry:
                        self.retries += 1
                        intended += patience
                        continue
                    self.sessions.abandoned += 1
                    return
            self.sessions.completed += 1
        finally:
            self.active -= 1

    def _expire_patience(self, now: float) -> None:
        heap = self.patience_heap
        for _ in range(len(heap)):
            if heap[0][0] > now:
                break
            _, _, waiter = heapq.heappop(heap)
            if not waiter.done():
                waiter.set_result(_IMPATIENT)

    # -- control --------------------------------------------------------------------------------------
    def _stop(self, reason: str) -> None:
        if not self.stopping:
            self.stopping = True
            self.stop_reason = reason

    async def _arrivals(self) -> None:
        cfg = self.cfg
        loop = self.loop
        assert loop is not None
        t0 = self.t0
        cap = cfg.concurrency_cap
        workers, me = cfg.workers, cfg.worker
        limit = cfg.max_sessions
        gen = arrival_times(self.shape, arrival_rng(cfg.seed), scale=cfg.scale, limit=limit)
        sess = self.sessions
        per_sec = self.sess_sec
        produced = 0
        for gi, t_rel in enumerate(gen):
            produced = gi + 1
            if self.stopping or t_rel >= cfg.duration:
                break
            if gi % workers != me:
                continue
            when = t0 + t_rel
            if when - _monotonic() > 0.0005:
                await self._sleep_until(when)
            if self.stopping:
                break
            sess.arrived += 1
            row = per_sec.get(int(t_rel))
            if row is None:
                row = per_sec[int(t_rel)] = [0, 0]
            row[0] += 1
            if self.active >= cap:
                sess.refused_by_cap += 1
                row[1] += 1
                continue
            sess.started += 1
            self.active += 1
            task = loop.create_task(self._session(gi, when))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        self.limit_hit = limit is not None and produced >= limit
        self.arrivals_done = True

    def live_totals(self) -> tuple[int, int, int]:
        """(requests completed, requests ok, sessions active) so far: cheap, for progress displays."""
        return sum(self.count), sum(self.ok), self.active

    async def run(
        self,
        t0: float | None,
        on_start: Callable[[float], None] | None,
        stop_flag: Callable[[], bool] | None,
        on_live: Callable[[Callable[[], tuple[int, int, int]]], None] | None = None,
    ) -> LoadResult:
        cfg = self.cfg
        loop = asyncio.get_running_loop()
        self.loop = loop
        pool = Pool(loop, self.host, self.port, cfg.connections)
        self.pool = pool
        self.t0 = t0 if t0 is not None else _monotonic() + 0.02
        self.end_sending = self.t0 + cfg.duration
        hard_end = self.end_sending + cfg.request_timeout_s + 1.0
        health = self.health
        health.t0 = self.t0
        health.install()
        if on_live is not None:
            on_live(self.live_totals)
        if on_start is not None:
            on_start(self.t0)
        arrivals = loop.create_task(self._arrivals())
        next_house = 0.0
        max_ticks = int((cfg.duration + cfg.request_timeout_s + 2.0 + max(0.0, self.t0 - _monotonic())) / _TICK_S) + 10_000
        drain_deadline = None
        try:
            for _ in range(max_ticks):
                expected = _monotonic() + _TICK_S
                await asyncio.sleep(_TICK_S)
                now = _monotonic()
                waiting = pool.waiting
                health.loop_lag(expected, now, len(waiting), _TICK_S)
                if waiting and not waiting[0].done:  # the pool is at its connection limit: the oldest waiter's wait is the generator's
                    health.send_delay(int(now - self.t0), (now - waiting[0].deadline + cfg.request_timeout_s) * 1e6)
                pool.expire(now)
                self._expire_patience(now)
                if not self.stopping:
                    if now >= self.end_sending:
                        self._stop("duration")
                    elif self.sent >= cfg.max_requests:
                        self._stop("max_requests")
                    elif self.arrivals_done and self.active == 0:
                        self._stop("max_sessions" if self.limit_hit else "sessions_done")
                    elif now >= next_house and stop_flag is not None and stop_flag():
                        self._stop("stop_event")
                if now >= next_house:
                    next_house = now + _HOUSEKEEPING_S
                    self._finalize(int(now - self.t0 - cfg.request_timeout_s) - 2)
                if self.stopping:
                    if drain_deadline is None:
                        arrivals.cancel()
                        for task in list(self.tasks):
                            task.cancel()
                        drain_deadline = min(hard_end, now + cfg.request_timeout_s + 0.05)
                        if self.stop_reason == "stop_event":
                            drain_deadline = min(drain_deadline, now + 0.5)
                    if self.inflight <= 0 or now >= drain_deadline:
                        break
                if now >= hard_end:
                    self._stop("hard_limit")
                    break
        finally:
            health.uninstall()
            arrivals.cancel()
            for task in list(self.tasks):
                task.cancel()
            pool.close()
            pending = [t for t in (arrivals, *self.tasks) if not t.done()]
            if pending:
                await asyncio.wait(pending, timeout=1.0)
            await asyncio.sleep(0)  # let transports deliver connection_lost
        elapsed = min(_monotonic(), hard_end) - self.t0
        self._finalize(None)
        res = self._result(elapsed)
        res.generator = health.finish(min(_monotonic(), hard_end))
        return res

    def _result(self, elapsed: float) -> LoadResult:
        cfg = self.cfg
        res = LoadResult(
            seed=cfg.seed,
            profile=cfg.profile.name,
            run_id=cfg.run_id,
            t0=self.t0,
            duration_s=cfg.duration,
            elapsed_s=elapsed,
            stop_reason=self.stop_reason,
            workers=1,
            requests_sent=self.sent,
            sessions=self.sessions,
            retries_impatience=self.retries,
            orders=self.orders,
            legacy_actions=cfg.profile.legacy_actions,
            scale=cfg.scale,
        )
        s_ = self.sessions
        s_.truncated = max(0, s_.started - s_.completed - s_.abandoned)
        names = {0: "none", 1: "1xx", 2: "2xx", 3: "3xx", 4: "4xx", 5: "5xx"}
        for a, name in enumerate(self.actions):
            if not self.count[a] and not self.impatient[a]:
                continue
            s = ActionStats(name, count=self.count[a], ok=self.ok[a], queued=self.queued[a], impatient=self.impatient[a])
            s.errors = dict(self.errors[a])
            s.status = {str(k): v for k, v in sorted(self.status[a].items())}
            s.latency = hdr_from_fine(self.lat[a])
            s.service = hdr_from_fine(self.svc[a])
            s.by_class = {names.get(k, "none"): hdr_from_fine(d) for k, d in sorted(self.lat_class[a].items())}
            res.actions[name] = s
            if self.done_sec[a]:
                res.series[name] = dict(sorted(self.done_sec[a].items()))
        res.session_series = dict(sorted(self.sess_sec.items()))
        if self.unfinished:
            res.stop_reason += f" (unfinished={self.unfinished})"
        return res


def _raise_nofile(wanted: int) -> None:
    try:
        import resource
    except ImportError:  # pragma: no cover - not POSIX
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        new = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
        except (ValueError, OSError):
            pass


_GC_LOCK = threading.Lock()
_GC_HOLDERS = [0, 0]  # [engines running, collector was enabled before the first]


def run_engine(
    cfg: EngineConfig,
    *,
    t0: float | None = None,
    on_start: Callable[[float], None] | None = None,
    stop_flag: Callable[[], bool] | None = None,
    on_live: Callable[[Callable[[], tuple[int, int, int]]], None] | None = None,
) -> LoadResult:
    """Run one engine to completion on a fresh event loop in this thread."""
    import gc

    _raise_nofile(cfg.connections + 256)
    engine = Engine(cfg)
    loop = new_event_loop(cfg.use_uvloop)
    # No automatic collections during the run. With tens of thousands of live sessions, CPython's
    # collector paused the loop for 50-300 ms at a time (measured with gc.callbacks at 1,000
    # sessions/s of real think time: p99 179 ms with it, 13 ms without; benchmarks/README.md), and
    # the engine's hot path makes no reference cycles (that run freed ~100 objects by collection in
    # 30 s). Any collection that still happens (another thread's gc.collect()) is measured as a
    # generator pause. The previous state comes back afterwards.
    with _GC_LOCK:  # engines on several threads: the first one in turns it off, the last one out on
        if _GC_HOLDERS[0] == 0:
            _GC_HOLDERS[1] = int(gc.isenabled())
            gc.disable()
        _GC_HOLDERS[0] += 1
    try:
        return loop.run_until_complete(engine.run(t0, on_start, stop_flag, on_live))
    finally:
        with _GC_LOCK:
            _GC_HOLDERS[0] -= 1
            if _GC_HOLDERS[0] == 0 and _GC_HOLDERS[1]:
                gc.enable()
        try:
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()


def new_run_id() -> str:
    return secrets.token_hex(4)


def default_connections(concurrency_cap: int) -> int:
    """One connection per active session (as real shoppers have), within the process's fd limit."""
    limit = 4096
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        top = hard if hard != resource.RLIM_INFINITY else 65536
        limit = max(64, min(top, 65536) - 256)
    except ImportError:  # pragma: no cover
        pass
    return max(1, min(concurrency_cap, limit))

