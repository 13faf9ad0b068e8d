"""The partly-open load engine.

* Sessions arrive by a seeded non-homogeneous Poisson process following the profile's shape
  (open: arrivals never wait for the system). A concurrency cap on active sessions protects the
  generator; arrivals beyond it are counted as ``refused_by_cap``.
* Inside a session requests are closed-loop: the next request is *intended* at the previous
  response's completion plus a think time, and its latency is measured from that intended instant,
  including any wait for a connection (no coordinated omission).
* Impatience: when a response has not arrived within the shopper's patience, the shopper refreshes
  (the same request again; the slow one keeps running and is recorded when it ends) or abandons.
* Each live session is a small state record (``_SessionState``), not a coroutine: its arrival
  starts it, one timer wheel for all sessions ends its think times (load/scheduler.py), a response
  resumes it, a second wheel holds the shoppers' patience deadlines. The walk itself is the
  planner's seeded iterator, so a seed reproduces the request sequence as before.
* Bounds: arrivals stop at ``duration`` (or ``max_sessions``), no request is sent after
  ``duration`` or past ``max_requests``, in-flight requests get at most ``request_timeout_s`` to
  finish, and then every connection is closed. Every loop is bounded in time and count.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable
from urllib.parse import quote, quote_plus

from pytest_peakchaos.load.client import Pool, Request, parse_base_url_full
from pytest_peakchaos.load.cookies import CookieJar
from pytest_peakchaos.load.health import HealthSampler
from pytest_peakchaos.load.plan import CompiledPlan, arrival_rng, session_rng
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
from pytest_peakchaos.load.scheduler import Scheduler
from pytest_peakchaos.load.shapes import arrival_times

if TYPE_CHECKING:
    from pytest_peakchaos.profiles.model import Profile, RequestBinding

__all__ = ["EngineConfig", "run_engine", "new_event_loop"]

_TICK_S = 0.005
_HOUSEKEEPING_S = 0.25
_EARLY_S = 0.0005  # a think time may end this much early: half the loop's 1 ms timer resolution
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
    # Write an access log of what was sent (combined format + sid/msec/rt fields), see _AccessLog.
    access_log: str | None = None
    #: "python" (this module), "native" (load/native.py: the same engine in C) or "auto" (native
    #: when it can run the profile and a C compiler is there, else python)
    engine: str = "python"


# ------------------------------------------------------------------------------------------------
# request bindings compiled for the hot path

_QCACHE: dict[Any, str] = {}
_SET_COOKIE = re.compile(rb"\r\nset-cookie:[ \t]*([^\r\n]*)", re.IGNORECASE)


def _q_path(v: Any) -> str:
    """URL-quote a value for a path (cached: values repeat: skus, terms, ids)."""
    if type(v) is int:
        return str(v)
    if isinstance(v, list):
        return ",".join(_q_path(x) for x in v)
    if isinstance(v, dict):
        return quote(json.dumps(v, separators=(",", ":")), safe="")
    s = _QCACHE.get(v)
    if s is None:
        s = quote(str(v), safe="")
        if len(_QCACHE) > 20_000:
            _QCACHE.clear()
        _QCACHE[v] = s
    return s


def _q_form(v: Any) -> str:
    if isinstance(v, list):
        return quote_plus(",".join(map(str, v)))
    return quote_plus(str(v))


def _plain(v: Any) -> str:
    if isinstance(v, list):
        return ",".join(map(str, v))
    return str(v)


def _compile_json(tpl: Any) -> Callable[[dict[str, Any]], Any]:
    from pytest_peakchaos.profiles.template import Template

    if isinstance(tpl, str):
        t = Template(tpl)
        if t.static:
            lit = t.literal
            return lambda v: lit
        if t.single is not None:
            name, fld = t.single
            if fld is None:
                return lambda v: v.get(name, "")
        return t.typed
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


def _final_head(buf: bytes) -> tuple[int, int]:
    """(start, end) of the final (non-1xx) response head in ``buf``."""
    start = 0
    for _ in range(8):
        end = buf.find(b"\r\n\r\n", start)
        if end < 0:
            return start, len(buf)
        if buf[start + 9 : start + 10] != b"1":
            return start, end
        start = end + 4
    return start, len(buf)


def _header_value(buf: bytes, start: int, end: int, name: bytes) -> str | None:
    m = re.compile(rb"\r\n" + re.escape(name) + rb":[ \t]*([^\r\n]*)", re.IGNORECASE).search(buf, start, end)
    return None if m is None else m.group(1).strip().decode("latin-1")


class _Bound:
    """One state's binding, ready to serialize requests quickly."""

    __slots__ = ("action", "sends", "method", "path", "head_tail", "json_fn", "form", "body", "dyn_headers", "idem", "cart_op", "orders_cart",
                 "keyed", "ack", "order_id", "captures", "cap_lo", "cap_hi", "parse", "no_body", "want_head", "effects",
                 "cookies", "capture_refs", "ctype", "path_one")

    def __init__(self, action: str, b: RequestBinding, prefix: str, host_header: str, session: Any = None,
                 captured: frozenset[str] = frozenset()) -> None:
        from pytest_peakchaos.profiles.template import Template, fields

        self.action = action
        self.sends = b.sends
        self.method = b.method
        self.path = Template(prefix.replace("{", "{{").replace("}", "}}") + b.path)
        # the common path with one plain placeholder ("/products/{sku}"): (before, name, after)
        self.path_one: tuple[str, str, str] | None = None
        if self.path.fmt is not None and len(self.path.names) == 1:
            before, after = self.path.fmt.split("%s")
            self.path_one = (before.replace("%%", "%"), self.path.names[0], after.replace("%%", "%"))
        defaults: dict[str, tuple[str, str]] = {"user-agent": ("User-Agent", "peakchaos"), "accept": ("Accept", "*/*")}
        for k, v in (getattr(session, "headers", ()) or ()):
            defaults[k.lower()] = (k, v)
        for k, v in b.headers:
            defaults[k.lower()] = (k, v)
        static = [f"Host: {host_header}"]
        dyn: list[tuple[Any, Any]] = []
        for k, v in defaults.values():
            if "{" in k or "{" in v:
                dyn.append((Template(k), Template(v)))
            else:
                static.append(f"{k}: {v}")
        self.dyn_headers: tuple[tuple[Any, Any], ...] = tuple(dyn)
        self.head_tail = " HTTP/1.1\r\n" + "".join(f"{h}\r\n" for h in static)
        self.json_fn = _compile_json(b.json) if b.json is not None else None
        self.form = tuple((Template(k), Template(v)) for k, v in b.form) if b.form is not None else None
        self.body = Template(b.body) if b.body is not None else None
        self.ctype = b.content_type or ("text/plain; charset=utf-8" if b.body is not None else None)
        self.idem = b.idempotency_key
        self.keyed = bool(b.idempotency_key or b.acknowledge)
        self.ack = frozenset(b.acknowledge)
        self.order_id = b.order_id
        self.captures = tuple(
            (c.var, c.kind, re.compile(c.expr.encode("utf-8")) if c.kind == "regex" else c.expr) for c in b.capture
        )
        self.cap_lo, self.cap_hi = b.capture_status
        self.parse = bool(b.order_id or any(c.kind == "json" for c in b.capture))
        self.no_body = b.method == "HEAD"
        self.cookies = bool(getattr(session, "cookies", False))
        self.want_head = self.cookies or any(c.kind == "header" for c in b.capture)
        self.effects = bool(self.parse or self.ack or self.captures or self.want_head)
        # the session's view of its cart (ledger items): a failed add/remove makes its sku unsure;
        # an acknowledged ordering request records the planned cart it ordered
        self.cart_op = b.cart if b.cart in ("add", "remove") else None
        self.orders_cart = bool(self.ack) and b.cart == "clear"
        used = set()
        for t in (b.path, b.json, b.body, *(x for kv in b.headers for x in kv), *(x for kv in (b.form or ()) for x in kv)):
            used |= {n.split(".", 1)[0] for n in fields(t)}
        self.capture_refs = tuple(sorted(used & captured))

    def render(self, values: dict[str, Any], key: str | None, jar: CookieJar | None = None, https: bool = False) -> bytes:
        one = self.path_one
        if one is not None:
            v = values.get(one[1], "")
            path = one[0] + (str(v) if type(v) is int else _q_path(v)) + one[2]
        else:
            path = self.path.render(values, _q_path)
        cookie = jar.header(path, https) if jar is not None and jar.cookies else None
        parts = [self.method, " ", path, self.head_tail]
        for k, v in self.dyn_headers:
            parts.append(f"{k.render(values, _plain)}: {v.render(values, _plain)}\r\n")
        if key is not None and self.idem:
            parts.append(f"{self.idem}: {key}\r\n")
        if cookie:
            parts.append(f"Cookie: {cookie}\r\n")
        body = b""
        if self.json_fn is not None:
            body = json.dumps(self.json_fn(values), separators=(",", ":")).encode()
            parts.append(f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n")
        elif self.form is not None:
            body = "&".join(f"{k.render(values, _q_form)}={v.render(values, _q_form)}" for k, v in self.form).encode("latin-1")
            parts.append(f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {len(body)}\r\n")
        elif self.body is not None:
            body = self.body.render(values, _plain).encode("utf-8")
            parts.append(f"Content-Type: {self.ctype}\r\nContent-Length: {len(body)}\r\n")
        elif self.method in ("POST", "PUT", "PATCH"):
            parts.append("Content-Length: 0\r\n")
        parts.append("\r\n")
        return "".join(parts).encode("latin-1") + body


# ------------------------------------------------------------------------------------------------


class _AccessLog:
    """An access log of what the engine sent, one line per completed request, in the nginx/Apache
    combined format followed by ``sid=<session> msec=<completion epoch s> rt=<seconds>`` (nginx's
    ``$cookie_…``, ``$msec`` and ``$request_time``), so ``peakchaos calibrate`` can recover the
    sessions and think times. ``rt`` runs from the *intended* send, as the engine measures latency:
    the generator's own loop lag counts as latency, never as think time. Status ``000``: no
    response (timeout, reset, refused)."""

    def __init__(self, path: str) -> None:
        self.fh = open(path, "a", encoding="latin-1", buffering=1 << 16)  # noqa: SIM115 - closed in close()
        self.wall0 = time.time() - _monotonic()

    def write(self, req: Request, st: _SessionState, run_id: str, status: int, nbytes: int, intended: float, t_done: float) -> None:
        wall = self.wall0 + t_done
        raw = req.raw
        line = raw[: raw.find(b"\r\n")].decode("latin-1")
        stamp = time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(wall))
        rt = t_done - intended if t_done > intended else 0.0
        self.fh.write(
            f'127.0.0.1 - - [{stamp}] "{line}" {status:03d} {nbytes} "-" "peakchaos" '
            f"sid=pc-{run_id}-{st.index} msec={wall:.3f} rt={rt:.3f}\n"
        )

    def close(self) -> None:
        self.fh.close()


def _ordered_cart(st: _SessionState, abandoned: bool) -> tuple[tuple[str, ...] | None, tuple[str, ...]]:
    """What an acknowledged ordering request ordered, as the session saw its cart: the planned
    cart's skus (the planner leaves the cleared cart in ``vars["cart"]``) and those of them whose
    cart request failed. ``None``: unknown (an abandoned request; the session may have moved on)."""
    unsure, st.unsure = st.unsure, None
    if abandoned or (unsure is not None and "*" in unsure):
        return None, ()
    cart = st.vars.get("cart")
    if not isinstance(cart, list):
        return None, ()
    items = tuple(str(s) for s in cart)
    return items, tuple(sorted(str(s) for s in unsure if str(s) in items)) if unsure else ()


class _SessionState:
    """A live session: a small state record the engine drives from callbacks (the scheduler's
    timer, a response, the patience check) instead of a coroutine and task of its own.

    ``walk`` is the planner's iterator (its seeded path), ``intended`` the intended instant of the
    current or next request, ``step`` the planned step waiting for its think time to pass, ``req``
    the request the shopper is waiting for (None while thinking), ``attempt`` its retry count."""

    __slots__ = ("index", "vars", "jar", "walk", "intended", "patience", "use_patience", "imp_rng", "checkouts",
                 "step", "req", "a", "raw", "key", "attempt", "live", "unsure")

    def __init__(self, index: int, values: dict[str, Any], jar: CookieJar | None, walk: Any = None,
                 intended: float = 0.0, patience: float = 0.0, use_patience: bool = False) -> None:
        self.index = index
        self.vars = values
        self.jar = jar
        self.walk = walk
        self.intended = intended
        self.patience = patience
        self.use_patience = use_patience
        self.imp_rng: Any = None
        self.checkouts = 0
        self.step: tuple[int, float, Any, int, int, int] | None = None
        self.req: Request | None = None
        self.a = 0
        self.raw = b""
        self.key: str | None = None
        self.attempt = 0
        self.live = True
        #: skus whose cart request failed or was abandoned since the last acknowledged order
        #: (``None``: none); ``"*"``: the cart is unknown (ledger items, ``_cart_unsure``)
        self.unsure: set[Any] | None = None


class Engine:
    """One process's share of a run (``worker`` of ``workers``). Use ``run_engine``."""

    def __init__(self, cfg: EngineConfig) -> None:
        self.cfg = cfg
        p = cfg.profile
        self.plan = CompiledPlan(p)
        self.actions = self.plan.actions
        ACTIONS = self.actions
        scheme, host, port, prefix = parse_base_url_full(cfg.base_url)
        self.host, self.port = host, port
        self.https = scheme == "https"
        self.ssl = _ssl_context(p.session.tls_verify) if self.https else None
        host_header = host if port == (443 if self.https else 80) else f"{host}:{port}"
        captured = frozenset(c.var for b in p.bindings.values() for c in b.capture)
        self.bound: list[_Bound | None] = [
            _Bound(a, p.bindings[a], prefix, host_header, p.session, captured) if a in p.bindings else None for a in ACTIONS
        ]
        self.cookies = p.session.cookies
        # the planner writes data-set rows and the cart's variables only when a template uses them
        used: set[str] = set()
        for b in p.bindings.values():
            used |= {v.split(".", 1)[0] for v in b.variables()}
        for _, v in p.session.headers:
            from pytest_peakchaos.profiles.template import fields

            used |= {x.split(".", 1)[0] for x in fields(v)}
        #: an acknowledged request empties the planned cart: record what it ordered (ledger items)
        self.track_carts = any(b is not None and b.orders_cart for b in self.bound)
        self.needs_sink = self.track_carts or bool(used & ({"cart", "cart_size", "cart_items"} | set(self.plan.dataset_names)))
        self.warnings: dict[str, dict[str, dict[str, Any]]] = {}
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
        # the shoppers' patience deadlines, one per request in flight (those answered in time are skipped)
        self.patience_wheel: Scheduler[tuple[_SessionState, Request]] = None  # type: ignore[assignment]  # set in run()
        self.ready: deque[_SessionState] = deque()
        self.ready_armed = False
        self.sched: Scheduler[_SessionState] = None  # type: ignore[assignment]  # set in run()
        self.timeout = cfg.request_timeout_s
        self.max_retries = p.patience.max_retries
        self.p_retry = p.patience.retry_probability
        self.max_steps = p.behaviour.max_actions + 2
        self.qty = self.plan.catalog.qty
        self.terms = self.plan.catalog.search_terms
        self.stopping = False
        self.stop_reason = ""
        self.arrivals_done = False
        self.limit_hit = False
        self.t0 = 0.0
        self.end_sending = 0.0
        self.pool: Pool | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.health = HealthSampler(0.0)
        self.alog: _AccessLog | None = None

    # -- recording ----------------------------------------------------------------------------------
    def _on_done(self, req: Request, status: int, body: bytes, err: str | None, t_done: float) -> None:
        ctx: tuple[int, float, _SessionState, str | None] = req.ctx  # type: ignore[assignment]
        a, intended, st, key = ctx
        self.inflight -= 1
        if err == "cancelled":
            self.unfinished += 1
            if st.req is req:
                st.req = None
                st.intended = t_done
                self._resume(st)
            return
        if self.alog is not None:
            self.alog.write(req, st, self.cfg.run_id, status, len(body), intended, t_done)
        lat = (t_done - intended) * 1e6
        fi = int(_log(lat) * INV_LOG_FINE) + 1 if lat > 1.0 else 0
        self.count[a] += 1
        cls = status // 100 if status else 0
        lc = self.lat_class[a]  # (the latency of all classes is their sum, taken when the run ends)
        dc = lc.get(cls)
        if dc is None:
            dc = lc[cls] = {}
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
            if b is not None and b.effects:
                self._response_effects(b, st, status, body, key, req)
            if self.track_carts and (not ok or st.req is not req):
                self._cart_unsure(b, st, st.req is not req)
        else:
            kind = err if err in ("timeout", "reset", "refused") else "other"
            self.errors[a][kind] += 1
            if self.track_carts:
                self._cart_unsure(self.bound[a], st, st.req is not req)
        sec = int(intended - self.t0)
        per = self.open_sec[a]
        row = per.get(sec)
        if row is None:  # (a straggler for an already finalized second is merged into it by _finalize)
            row = per[sec] = [0, 0, 0, 0, 0.0, {}, None]
        row[0] += 1
        row[1] += ok
        row[2] += 1 - ok
        row[3] += queued
        if not ok:  # error kinds per second: the status code, or the transport failure
            ek = row[6]
            if ek is None:
                ek = row[6] = {}
            if status:  # a 429/503 without Retry-After is told apart (honest_degradation)
                ekind = str(status) if err is None else f"{status}_{err}"
            else:
                ekind = err if err in ("timeout", "reset", "refused") else "other"
            ek[ekind] = ek.get(ekind, 0) + 1
        if lat > row[4]:
            row[4] = lat
        bucket = (fi + COARSE_FACTOR - 1) // COARSE_FACTOR
        bk = row[5]
        bk[bucket] = bk.get(bucket, 0) + 1
        if st.req is req:  # an abandoned (impatient) request no longer has a shopper waiting
            st.req = None
            st.raw = b""  # kept only for a refresh while the shopper waits: not held through the think time
            st.intended = t_done
            self._resume(st)

    def _warn(self, kind: str, what: str, example: str) -> None:
        per = self.warnings.setdefault(kind, {})
        w = per.get(what)
        if w is None:
            per[what] = {"count": 1, "example": example}
        else:
            w["count"] += 1

    def _cart_unsure(self, b: _Bound | None, st: _SessionState, abandoned: bool) -> None:
        """A cart request failed (its sku may not be in the shop's cart) or was abandoned by an
        impatient shopper (the session may have moved on: the whole cart is unsure)."""
        if b is None or b.cart_op is None:
            return
        if st.unsure is None:
            st.unsure = set()
        st.unsure.add("*" if abandoned else st.vars.get("sku"))

    def _response_effects(self, b: _Bound, st: _SessionState, status: int, body: bytes, key: str | None, req: Request) -> None:
        buf: bytes | None = getattr(req, "head", None) if b.want_head else None
        hs = he = 0
        if buf is not None:
            hs, he = _final_head(buf)
            if b.cookies and st.jar is not None:
                m = _SET_COOKIE.search(buf, hs, he)
                if m is not None:
                    self._set_cookies(b, st, buf, hs, he, status)
        capturing = b.captures and b.cap_lo <= status <= b.cap_hi
        doc: Any = None
        if b.parse and body and (capturing or (b.ack and status in b.ack)):
            try:
                doc = json.loads(body)
            except ValueError:
                doc = None
        if b.ack and status in b.ack:
            oid = _dotted(doc, b.order_id) if (b.order_id and doc is not None) else None
            items: tuple[str, ...] | None = None
            unsure: tuple[str, ...] = ()
            if b.orders_cart:
                items, unsure = _ordered_cart(st, st.req is not req)
            self.orders.append(AckOrder(key or "", status, None if oid is None else str(oid), b.action, items, unsure))
        if capturing:
            values = st.vars
            for var, kind, expr in b.captures:
                value: Any = None
                if kind == "json":
                    value = _dotted(doc, expr) if doc is not None else None  # type: ignore[arg-type]
                elif kind == "header":
                    value = _header_value(buf, hs, he, expr.encode("latin-1")) if buf is not None else None  # type: ignore[union-attr]
                else:
                    m = expr.search(body)  # type: ignore[union-attr]
                    if m is not None:
                        value = (m.group(1) if m.re.groups else m.group(0)).decode("utf-8", "replace")
                if value is None:
                    self._warn("capture_miss", f"{b.action}.{var}", f"status {status}: {body[:300]!r}")
                else:
                    values[var] = value

    def _set_cookies(self, b: _Bound, st: _SessionState, buf: bytes, hs: int, he: int, status: int) -> None:
        from pytest_peakchaos.load.cookies import BadCookie

        jar = st.jar
        assert jar is not None
        path = b.path.render(st.vars, _q_path)
        for m in _SET_COOKIE.finditer(buf, hs, he):
            line = m.group(1).decode("latin-1")
            try:
                jar.set(line, path)
            except BadCookie as exc:
                self._warn("bad_cookie", b.action, f"status {status}: {exc}")

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
    # A session is a _SessionState driven by callbacks: its arrival starts it, the scheduler's timer
    # ends each think time, a response (via the ready queue) or the patience check resumes it. One
    # timer wheel and one loop timer serve every live session (load/scheduler.py).
    async def _sleep_until(self, when: float) -> None:
        for _ in range(4):
            delay = when - _monotonic()
            if delay <= 0.0:
                return
            # whole milliseconds, rounded up: uvloop rounds a delay to the nearest one, so a shorter
            # sleep returned at once (see load/scheduler.py)
            await asyncio.sleep(math.ceil(delay * 1000.0) * 0.001)

    def _start(self, index: int, t_arrival: float) -> None:
        plan = self.plan
        cfg = self.cfg
        rng, patience = plan.start(cfg.seed, index)
        values: dict[str, Any] = {"session": index, "run_id": cfg.run_id, "cart_id": f"pc-{cfg.run_id}-{index}",
                                  "qty": self.qty, "sku": "", "page": "", "query": "", "idempotency_key": "", "cart": [],
                                  "cart_size": 0, "cart_items": []}
        st = _SessionState(index, values, CookieJar() if self.cookies else None,
                           plan.walk(rng, values if self.needs_sink else None, index), t_arrival, patience,
                           patience < cfg.request_timeout_s)
        self._run(st, None)

    def _run(self, st: _SessionState, step: tuple[int, float, Any, int, int, int] | None) -> None:
        try:
            self._advance(st, step)
        except Exception as exc:  # noqa: BLE001 - one broken session must not stop the others
            self._warn("session_error", type(exc).__name__, f"session {st.index}: {exc}"[:300])
            self._end(st)

    def _end(self, st: _SessionState) -> None:
        if st.live:
            st.live = False
            st.walk = None
            st.step = None
            self.active -= 1

    def _advance(self, st: _SessionState, step: tuple[int, float, Any, int, int, int] | None) -> None:
        """Walk ``st`` on: through client-side steps, until a request is sent, a think time is
        scheduled, or the session ends. ``step``: the planned step whose think time just passed."""
        if not st.live:
            return
        bound = self.bound
        walk = st.walk
        for _ in range(self.max_steps):
            if step is None:
                step = next(walk, None)
                if step is None:
                    self.sessions.completed += 1
                    self._end(st)
                    return
                b = bound[step[0]]
                assert b is not None
                if step[1] > 0.0:
                    st.intended += step[1]
                    if st.intended >= self.end_sending:
                        self._end(st)
                        return
                    if b.sends and st.intended > _monotonic():
                        st.step = step
                        self.sched.push(st.intended, st)
                        return
            else:
                b = bound[step[0]]
                assert b is not None
            if self.stopping or st.intended >= self.end_sending:
                self._end(st)
                return
            a, _, sku, page, term, _ = step
            step = None
            values = st.vars
            if sku is not None:
                values["sku"] = sku
            if page >= 0:
                values["page"] = page
            if term >= 0:
                values["query"] = self.terms[term]
            if not b.sends:  # a client-side step: only its think time
                continue
            key = None
            if b.keyed:
                key = f"pc-{self.cfg.run_id}-{st.index}-{st.checkouts}"
                st.checkouts += 1
                values["idempotency_key"] = key
            if b.capture_refs:
                for var in b.capture_refs:
                    if var not in values:
                        self._warn("unset_variable", f"{self.actions[a]}.{var}", "used before any response captured it")
            st.raw = b.render(values, key, st.jar, self.https)
            st.a = a
            st.key = key
            st.attempt = 0
            self._submit(st, b)
            return
        self._end(st)  # pragma: no cover - the walk is bounded by max_actions

    def _submit(self, st: _SessionState, b: _Bound) -> None:
        if self.sent >= self.cfg.max_requests:
            self._stop("max_requests")
        if self.stopping or st.intended >= self.end_sending:
            self._end(st)
            return
        intended = st.intended
        self.sent += 1
        self.inflight += 1
        req = Request(st.raw, intended + self.timeout, self._on_done, (st.a, intended, st, st.key), b.no_body)
        if b.want_head:
            req.want_head = True
        st.req = req
        self.pool.submit(req)  # type: ignore[union-attr]
        if req.t_sent > 0.0:  # written at once on an idle connection: the delay is the generator's
            self.health.send_delay(int(intended - self.t0), (req.t_sent - intended) * 1e6)
        if st.use_patience:
            self.patience_wheel.push(intended + st.patience, (st, req))

    def _fire(self, st: _SessionState, now: float) -> None:
        """The scheduler: ``st``'s think time is over. Fired up to ``_EARLY_S`` before its intended
        instant, the request is intended *now* (a think time shorter by at most half a millisecond),
        so its latency still runs from no earlier than its real send."""
        if st.intended > now:
            st.intended = now
        step = st.step
        st.step = None
        self._run(st, step)

    def _resume(self, st: _SessionState) -> None:
        """A response ended the shopper's wait: walk on from the ready queue (after the protocol
        callback returns, so the connection is released first and a think-time-0 step reuses it)."""
        self.ready.append(st)
        if not self.ready_armed:
            self.ready_armed = True
            self.loop.call_soon(self._drain_ready)  # type: ignore[union-attr]

    def _drain_ready(self) -> None:
        self.ready_armed = False
        ready = self.ready
        for _ in range(len(ready)):
            self._run(ready.popleft(), None)

    def _patience_over(self, entry: tuple[_SessionState, Request], now: float) -> None:
        st, req = entry
        if st.req is not req or not st.live:  # answered in time (or the session is over)
            return
        st.req = None  # the shopper gave up waiting; the slow request runs on and is recorded
        try:
            self._impatient(st)
        except Exception as exc:  # noqa: BLE001
            self._warn("session_error", type(exc).__name__, f"session {st.index}: {exc}"[:300])
            self._end(st)

    def _impatient(self, st: _SessionState) -> None:
        a = st.a
        self.impatient[a] += 1
        if st.imp_rng is None:
            st.imp_rng = session_rng(self.cfg.seed, st.index, "impatience")
        if st.attempt < self.max_retries and st.imp_rng.random() < self.p_retry:
            self.retries += 1
            st.intended += st.patience
            st.attempt += 1
            b = self.bound[a]
            assert b is not None
            self._submit(st, b)
            return
        self.sessions.abandoned += 1
        self._end(st)

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
            self._start(gi, when)
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
        pool = Pool(loop, self.host, self.port, cfg.connections, ssl=self.ssl)
        self.pool = pool
        # Think times end up to half a slot early (the loop's timers count whole milliseconds; see
        # _fire): the mean lateness of a send is ~0 instead of half a millisecond, with no spinning.
        self.sched = Scheduler(loop, self._fire, early=_EARLY_S)
        self.patience_wheel = Scheduler(loop, self._patience_over)
        if cfg.access_log is not None:
            self.alog = _AccessLog(cfg.access_log)
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
                        self.sched.close()  # no think time ends any more; patience still runs out during the drain
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
            self.sched.close()
            self.patience_wheel.close()
            pool.close()
            pending = [t for t in (arrivals,) if not t.done()]
            if pending:
                await asyncio.wait(pending, timeout=1.0)
            await asyncio.sleep(0)  # let transports deliver connection_lost
            if self.alog is not None:
                self.alog.close()
        # sessions still thinking (dropped by the closed wheel) or waiting when the run stopped
        # are not active any more: they are counted as truncated in the result
        self.active = 0
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
            warnings=self.warnings,
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
            s.latency = hdr_from_fine(_summed(self.lat_class[a].values()))
            s.service = hdr_from_fine(self.svc[a])
            s.by_class = {names.get(k, "none"): hdr_from_fine(d) for k, d in sorted(self.lat_class[a].items())}
            res.actions[name] = s
            if self.done_sec[a]:
                res.series[name] = dict(sorted(self.done_sec[a].items()))
        res.session_series = dict(sorted(self.sess_sec.items()))
        if self.unfinished:
            res.stop_reason += f" (unfinished={self.unfinished})"
        return res


def _summed(dicts: Any) -> dict[int, int]:
    out: dict[int, int] = {}
    for d in dicts:
        for k, v in d.items():
            out[k] = out.get(k, 0) + v
    return out


def _ssl_context(verify: bool | str) -> Any:
    """A client TLS context: verified (default CAs or a CA bundle path) or, with ``False``, not
    verified at all (a test stack's self-signed certificate)."""
    import ssl

    ctx = ssl.create_default_context(cafile=verify if isinstance(verify, str) else None)
    if verify is False:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


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
    """Run one engine to completion on a fresh event loop in this thread.

    It also stops (like ``stop_flag``) once SIGINT/SIGTERM arrived (:mod:`pytest_peakchaos.interrupt`).
    """
    import gc

    from pytest_peakchaos import interrupt

    if cfg.engine != "python":
        from pytest_peakchaos.load import native

        if cfg.engine == "native" or native.usable(cfg):

            def stop_native() -> bool:
                return interrupt.requested() or (stop_flag is not None and stop_flag())

            _raise_nofile(cfg.connections + 256)
            return native.run_native(cfg, t0=t0, on_start=on_start, stop_flag=stop_native, on_live=on_live)
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

    def stop() -> bool:
        return interrupt.requested() or (stop_flag is not None and stop_flag())

    try:
        return loop.run_until_complete(engine.run(t0, on_start, stop, on_live))
    finally:
        with _GC_LOCK:
            _GC_HOLDERS[0] -= 1
            if _GC_HOLDERS[0] == 0 and _GC_HOLDERS[1]:
                gc.enable()
        _close_loop(loop, engine)


def _close_loop(loop: asyncio.AbstractEventLoop, engine: Engine) -> None:
    """Close ``loop`` promptly even when the run was cut (an exception raised inside the loop).

    Tasks still pending are cancelled and given a second to end, and the pool's connections are
    closed first: uvloop's ``close()`` otherwise blocks for a minute on live handles (EBUSY).
    """
    try:
        pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
        if engine.pool is not None:
            engine.pool.close()
        for task in pending:
            task.cancel()
        if pending:
            loop.run_until_complete(asyncio.wait(pending, timeout=1.0))
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

