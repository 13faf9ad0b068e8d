"""The native engine: the load engine's hot path in C, behind the same ``run_engine`` interface.

``EngineConfig(engine="native")`` (``run_load(engine="native")``, ``--peakchaos-engine native``)
runs a run's share in ``load/native/engine.c``, compiled on first use with the machine's C compiler
into a cache directory (``PEAKCHAOS_NATIVE_DIR``, default ``~/.cache/pytest-peakchaos/native``).
It is the same engine, not a different load: the same seeded arrivals (computed here), the same
seeded walk of every session (CPython's Mersenne Twister and the planner's tables, so
``plan_sessions`` shows what it sends), the same request bytes (checked against the Python
renderer before the run), the same patience rules, pool, deadlines, recording and generator-health
figures, returned as the same :class:`~pytest_peakchaos.load.result.LoadResult`.

Why: at real think times a sale-day rehearsal holds hundreds of thousands of live sessions, and
CPython spends ~20 µs of CPU per request on the model alone (benchmarks/README.md, round 5): one
core could not hold 5,000 arrivals/s. What the native engine does not do (https, access logs,
data sets, captures, forms and raw bodies, cookies a shop sets) is named by
:func:`unsupported`; ``engine="auto"`` then uses the Python engine, ``engine="native"`` refuses
before anything starts.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from pytest_peakchaos.load.result import (
    ActionStats,
    AckOrder,
    GeneratorHealth,
    GeneratorSecond,
    LoadResult,
    LogSketch,
    SecondStats,
    SessionCounts,
    hdr_from_fine,
)

if TYPE_CHECKING:
    from pytest_peakchaos.load.engine import EngineConfig

__all__ = ["ENGINES", "NativeEngineError", "unsupported", "usable", "binary", "run_native", "native_walks", "engine_pids"]

#: valid values of ``EngineConfig.engine`` / ``--peakchaos-engine``
ENGINES: tuple[str, ...] = ("python", "native", "auto")
SOURCE = Path(__file__).resolve().parent / "native" / "engine.c"
_VARS = ("sku", "page", "query", "cart_id", "key", "session", "run_id", "qty")
_TEMPLATE_VARS = {"sku", "page", "query", "cart_id", "idempotency_key", "session", "run_id", "qty"}
_DIST = {"exponential": 0, "constant": 1, "uniform": 2, "lognormal": 3}
_RUN_ID = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
_BUILD_LOCK = threading.Lock()
#: pids of the running native engine processes (see :func:`engine_pids`)
_LIVE: set[int] = set()


def engine_pids() -> list[int]:
    """Pids of this process's running native engine children: for diagnostics and for tests that
    starve one (SIGSTOP) or kill one."""
    return sorted(_LIVE)


class NativeEngineError(RuntimeError):
    """The native engine cannot run this configuration, cannot be built, or failed."""


# ------------------------------------------------------------------------------------------------
# what it can run


def _host_ipv4(host: str) -> str | None:
    if host == "localhost":
        return "127.0.0.1"
    try:
        socket.inet_pton(socket.AF_INET, host)
    except OSError:
        return None
    return host


def unsupported(cfg: EngineConfig, *, templates: bool = True) -> list[str]:
    """Why the native engine cannot run ``cfg`` (empty: it can). ``templates=False`` leaves out the
    request-template check (``config_text`` makes it anyway)."""
    from pytest_peakchaos.load.client import parse_base_url_full

    out: list[str] = []
    p = cfg.profile
    scheme, host, _, _ = parse_base_url_full(cfg.base_url)
    if scheme != "http":
        out.append(f"base_url is {scheme}:// (the native engine speaks plain http only)")
    if _host_ipv4(host) is None:
        out.append(f"base_url host {host!r} is not an IPv4 address or localhost")
    if cfg.access_log is not None:
        out.append("an access log was asked for")
    if getattr(p, "data", None):
        out.append(f"the profile uses data sets ({', '.join(sorted(p.data))})")
    if not _RUN_ID.fullmatch(cfg.run_id):
        out.append(f"run_id {cfg.run_id!r} has characters other than letters, digits, '_', '.' and '-'")
    acts = p.behaviour.actions
    if len(acts) > 64:
        out.append(f"the profile has {len(acts)} states (the native engine takes at most 64)")
    for a in acts:
        b = p.bindings.get(a)
        if b is None:
            out.append(f"state {a!r} has no binding")
            continue
        if not b.sends:
            continue
        if b.capture:
            out.append(f"binding {a!r} captures response values")
        if b.form is not None or b.body is not None:
            out.append(f"binding {a!r} sends a form or a raw body (the native engine sends JSON bodies only)")
        extra = {v.split(".", 1)[0] for v in b.variables()} - _TEMPLATE_VARS
        if extra:
            out.append(f"binding {a!r} uses variables the native engine does not fill ({', '.join(sorted(extra))})")
        if len(b.acknowledge) > 16 or len(b.draw) > 8:
            out.append(f"binding {a!r} has more than 16 acknowledge statuses or 8 draws")
    dists = [p.patience.wait, *(p.behaviour.think_for(a) for a in acts)]
    if any(d.kind not in _DIST for d in dists):
        out.append("a think-time or patience distribution the native engine does not sample")
    if not out and templates:
        try:
            from pytest_peakchaos.load.engine import Engine

            _templates(cfg, Engine(cfg))
        except NativeEngineError as exc:
            out.append(str(exc))
    return out


def usable(cfg: EngineConfig) -> bool:
    """``engine="auto"``: the native engine can run ``cfg`` and can be built here."""
    if unsupported(cfg):
        return False
    try:
        binary()
    except NativeEngineError:
        return False
    return True


# ------------------------------------------------------------------------------------------------
# request templates: the Python renderer's own bytes, with the variables as tokens


def _marker(var: str) -> str:
    return f"pcmk{var.replace('_', '')}kmcp"


_MARKERS = {v: _marker(v) for v in _VARS}
_MARK_RE = re.compile("|".join(re.escape(m) for m in _MARKERS.values()))
_BY_MARK = {m: v for v, m in _MARKERS.items()}


def _tokens(text: str, kind: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    pattern = re.compile('"(' + _MARK_RE.pattern + ')"') if kind == "J" else _MARK_RE
    for m in pattern.finditer(text):
        if m.start() > pos:
            out.append(("L", text[pos : m.start()]))
        mark = m.group(1) if kind == "J" else m.group(0)
        out.append((kind, _BY_MARK[mark]))
        pos = m.end()
    if pos < len(text):
        out.append(("L", text[pos:]))
    return out


def _templates(cfg: EngineConfig, eng: Any) -> dict[int, tuple[list[tuple[str, str]], list[tuple[str, str]] | None]]:
    """Per sending state of ``eng`` (the Python engine built for ``cfg``): (head tokens, body
    tokens or None), from its own renderer."""
    m = _MARKERS
    out: dict[int, tuple[list[tuple[str, str]], list[tuple[str, str]] | None]] = {}
    for i, b in enumerate(eng.bound):
        if b is None or not b.sends:
            continue
        values: dict[str, Any] = {"session": m["session"], "run_id": m["run_id"], "cart_id": m["cart_id"], "qty": m["qty"],
                                  "sku": m["sku"], "page": m["page"], "query": m["query"], "idempotency_key": m["key"],
                                  "cart": [], "cart_size": 0, "cart_items": []}
        raw = b.render(values, m["key"] if b.keyed else None, None, False).decode("latin-1")
        cut = raw.index("\r\n\r\n") + 4
        head, body = raw[:cut], raw[cut:]
        line_end = head.index("\r\n")
        htoks = _tokens(head[:line_end], "P") + _tokens(head[line_end:], "H")
        btoks: list[tuple[str, str]] | None = None
        if body:
            btoks = _tokens(body, "J")
            if any(k == "L" and _MARK_RE.search(v) for k, v in btoks):
                raise NativeEngineError(f"binding {b.action!r}: a variable inside a longer JSON string (the native engine fills whole values)")
            # Content-Length follows the body the native engine renders
            fixed: list[tuple[str, str]] = []
            for k, v in htoks:
                if k == "L" and "Content-Length: " in v:
                    before, rest = v.split("Content-Length: ", 1)
                    digits = re.match(r"\d+", rest)
                    assert digits is not None
                    fixed += [("L", before + "Content-Length: "), ("C", ""), ("L", rest[digits.end():])]
                else:
                    fixed.append((k, v))
            htoks = fixed
        if any(k == "L" and _MARK_RE.search(v) for k, v in htoks):
            raise NativeEngineError(f"binding {b.action!r}: a variable the native engine cannot place in the request head")
        out[i] = (htoks, btoks)
    _self_check(cfg, eng, out)
    return out


def _var_text(var: str, kind: str, vals: dict[str, Any]) -> str:
    from pytest_peakchaos.load.engine import _q_path

    v = vals[var]
    if kind == "J":
        return json.dumps(v)
    if kind == "P":
        return str(v) if type(v) is int else _q_path(v)
    return str(v)


def _render_tokens(htoks: list[tuple[str, str]], btoks: list[tuple[str, str]] | None, vals: dict[str, Any]) -> bytes:
    body = "".join(v if k == "L" else _var_text(v, k, vals) for k, v in btoks) if btoks else ""
    blen = len(body.encode("latin-1"))
    head = "".join(v if k == "L" else str(blen) if k == "C" else _var_text(v, k, vals) for k, v in htoks)
    return (head + body).encode("latin-1")


def _self_check(cfg: EngineConfig, eng: Any, toks: dict[int, Any]) -> None:
    """The token templates must give the Python renderer's exact bytes: checked on the first
    sessions' planned steps before the run (a mismatch: the native engine refuses this profile)."""
    plan = eng.plan
    terms = plan.catalog.search_terms
    for index in range(40):
        rng, _ = plan.start(cfg.seed, index)
        vals: dict[str, Any] = {"session": index, "run_id": cfg.run_id, "cart_id": f"pc-{cfg.run_id}-{index}", "qty": plan.qty,
                                "sku": "", "page": "", "query": "", "idempotency_key": "", "key": "", "cart": [], "cart_size": 0,
                                "cart_items": []}
        checkouts = 0
        for a, _, sku, page, term, _ in plan.walk(rng, None, index):
            if sku is not None:
                vals["sku"] = sku
            if page >= 0:
                vals["page"] = page
            if term >= 0:
                vals["query"] = terms[term]
            b = eng.bound[a]
            if b is None or not b.sends:
                continue
            key = None
            if b.keyed:
                key = f"pc-{cfg.run_id}-{index}-{checkouts}"
                checkouts += 1
                vals["idempotency_key"] = vals["key"] = key
            want = b.render(vals, key, None, False)
            htoks, btoks = toks[a]
            got = _render_tokens(htoks, btoks, vals)
            if got != want:
                raise NativeEngineError(
                    f"binding {b.action!r}: the native engine would send {got[:160]!r}, the Python engine {want[:160]!r}"
                )


# ------------------------------------------------------------------------------------------------
# the binary


def _cache_dir() -> Path:
    env = os.environ.get("PEAKCHAOS_NATIVE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "pytest-peakchaos" / "native"


def binary() -> Path:
    """The compiled engine (built on first use; cached by the source's hash)."""
    src = SOURCE.read_bytes()
    digest = hashlib.sha256(src).hexdigest()[:16]
    target = _cache_dir() / f"peakchaos-engine-{digest}"
    if target.exists():
        return target
    with _BUILD_LOCK:
        if target.exists():
            return target
        cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
        if not cc:
            raise NativeEngineError("engine=native: no C compiler found (set CC, or install gcc); engine=python needs none")
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f"{target.name}.{os.getpid()}.tmp")
        argv = [cc, "-O2", "-std=gnu11", "-Wall", "-o", str(tmp), str(SOURCE), "-lm"]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
        if proc.returncode != 0:
            raise NativeEngineError(f"engine=native: building {SOURCE} with {cc} failed:\n{proc.stderr[-2000:]}")
        os.replace(tmp, target)
    return target


# ------------------------------------------------------------------------------------------------
# configuration


def _dist(d: Any) -> str:
    return f"{_DIST[d.kind]} {d.mean!r} {d.low!r} {d.high!r} {d.sigma!r}"


def _toks_text(toks: list[tuple[str, str]]) -> str:
    parts = [str(len(toks))]
    for k, v in toks:
        if k == "L":
            parts.append("L" + v.encode("latin-1").hex())
        elif k == "C":
            parts.append("C")
        else:
            parts.append(k + v)
    return " ".join(parts)


def _picker(mode: str, n: int, cum: list[float] | None) -> str:
    if mode == "zipf":
        assert cum is not None
        return f"0 {n} " + " ".join(repr(c) for c in cum)
    return f"{1 if mode == 'uniform' else 2} {n}"


def arrivals(cfg: EngineConfig) -> tuple[list[tuple[int, float]], bool]:
    """This worker's share of the seeded arrivals ``[(global index, seconds from t0)]`` before
    ``duration``, and whether ``max_sessions`` cut the stream (as ``Engine._arrivals`` walks it)."""
    from pytest_peakchaos.load.plan import arrival_rng
    from pytest_peakchaos.load.shapes import arrival_times

    shape = cfg.profile.shape.over(cfg.shape_duration or cfg.duration)
    limit = cfg.max_sessions
    out: list[tuple[int, float]] = []
    produced = 0
    workers, me = cfg.workers, cfg.worker
    for gi, t_rel in enumerate(arrival_times(shape, arrival_rng(cfg.seed), scale=cfg.scale, limit=limit)):
        produced = gi + 1
        if t_rel >= cfg.duration:
            break
        if gi % workers == me:
            out.append((gi, t_rel))
    return out, limit is not None and produced >= limit


def config_text(cfg: EngineConfig, arr: list[tuple[int, float]]) -> str:
    from pytest_peakchaos.load.client import parse_base_url_full
    from pytest_peakchaos.load.engine import Engine, _q_path

    eng = Engine(cfg)
    toks = _templates(cfg, eng)
    plan = eng.plan
    p = cfg.profile
    _, host, port, _ = parse_base_url_full(cfg.base_url)
    lines = [
        f"seed {str(cfg.seed).encode().hex()}",
        f"run_id {cfg.run_id.encode().hex()}",
        f"addr {_host_ipv4(host)} {port}",
        f"duration {float(cfg.duration)!r}",
        f"timeout {float(cfg.request_timeout_s)!r}",
        f"max_requests {int(cfg.max_requests)}",
        f"cap {int(cfg.concurrency_cap)}",
        f"connections {int(cfg.connections)}",
        f"max_actions {int(plan.max_actions)}",
        f"think_scale {float(plan.think_scale)!r}",
        f"patience {_dist(p.patience.wait)}",
        f"p_retry {float(p.patience.retry_probability)!r}",
        f"max_retries {int(p.patience.max_retries)}",
        f"first_sku {int(plan.catalog.first_sku)}",
        f"qty {int(plan.qty)}",
        f"cookies {int(bool(p.session.cookies))}",
        f"actions {len(plan.actions)}",
    ]
    for i, name in enumerate(plan.actions):
        b = eng.bound[i]
        assert b is not None
        sends = int(bool(b.sends))
        cart_op = plan.cart_op[i]
        draws = plan.draws[i]
        head, body = toks.get(i, ([], None))
        lines.append(
            f"action {i} {name.encode().hex()} {sends} {cart_op} {int(b.keyed)} {int(b.no_body)} {int(b.orders_cart)} "
            f"{int(plan.draws_sku[i])} {int(b.cart_op is not None and eng.track_carts)} {len(draws)} {' '.join(map(str, draws))} "
            f"{len(b.ack)} {' '.join(map(str, sorted(b.ack)))} {_dist(plan.think[i])} {_toks_text(head)} "
            f"{int(body is not None)} {_toks_text(body or [])}"
        )
    for code, ((ft, fc), (et, ec)) in plan.rows.items():
        full = " ".join(f"{t} {c!r}" for t, c in zip(ft, fc))
        empty = " ".join(f"{t} {c!r}" for t, c in zip(et, ec))
        lines.append(f"row {code} {len(ft)} {full} {len(et)} {empty}")
    prod = plan.products
    lines.append("products " + _picker(prod.mode, prod.n, prod.zipf.cum if prod.zipf is not None else None))
    lines.append("pages " + _picker("zipf", plan.pages.n, plan.pages.cum))
    terms = plan.catalog.search_terms
    tq = " ".join(f"{_q_path(t).encode().hex()} {t.encode('latin-1', 'replace').hex()} {json.dumps(t).encode().hex()}" for t in terms)
    lines.append("terms " + _picker("zipf", plan.terms.n, plan.terms.cum) + " " + tq)
    lines.append(f"arrivals {len(arr)}")
    lines.extend(f"{gi} {t!r}" for gi, t in arr)
    lines.append("end")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------------
# running


def _pairs(text: str) -> dict[int, int]:
    out: dict[int, int] = {}
    for item in text.split():
        k, _, v = item.partition(":")
        out[int(k)] = int(v)
    return out


_TRANSPORT = {-1: "timeout", -2: "reset", -3: "refused", -4: "other"}


def _kind(code: int) -> str:
    if code < 0:
        return _TRANSPORT.get(code, "other")
    status, flag = divmod(code, 2)
    return f"{status}_no_retry_after" if flag else str(status)


def _parse_results(cfg: EngineConfig, path: Path, t0: float, limit_hit: bool) -> LoadResult:
    from pytest_peakchaos.load.engine import Engine, _dotted

    eng = Engine(cfg)
    actions = eng.plan.actions
    names = {0: "none", 1: "1xx", 2: "2xx", 3: "3xx", 4: "4xx", 5: "5xx"}
    res = LoadResult(seed=cfg.seed, profile=cfg.profile.name, run_id=cfg.run_id, t0=t0, duration_s=cfg.duration, workers=1,
                     legacy_actions=cfg.profile.legacy_actions, scale=cfg.scale)
    stats: dict[int, ActionStats] = {}
    lat: dict[int, dict[int, dict[int, int]]] = {}
    series: dict[int, dict[int, SecondStats]] = {}
    health: dict[int, GeneratorSecond] = {}
    orders_path: str | None = None
    sessions = SessionCounts()
    for line in path.read_text().splitlines():
        tag, _, rest = line.partition(" ")
        if tag == "elapsed":
            res.elapsed_s = float(rest)
        elif tag == "sent":
            res.requests_sent = int(rest)
        elif tag == "stop":
            res.stop_reason = "max_sessions" if rest == "sessions_done" and limit_hit else rest
        elif tag == "retries":
            res.retries_impatience = int(rest)
        elif tag == "sessions":
            sessions.arrived, sessions.started, sessions.refused_by_cap, sessions.completed, sessions.abandoned = map(int, rest.split())
        elif tag == "A":
            f = rest.split()
            a = int(f[0])
            s = ActionStats(actions[a], count=int(f[1]), ok=int(f[2]), queued=int(f[3]), impatient=int(f[4]))
            s.errors = dict(zip(("status_5xx", "status_4xx", "timeout", "reset", "refused", "other"), map(int, f[5:11])))
            stats[a] = s
        elif tag == "ST":
            a_text, _, pairs = rest.partition(" ")
            stats[int(a_text)].status = {str(k): v for k, v in sorted(_pairs(pairs).items())}
        elif tag == "LC":
            a_text, cls, pairs = (rest.split(" ", 2) + [""])[:3]
            lat.setdefault(int(a_text), {})[int(cls)] = _pairs(pairs)
        elif tag == "SV":
            a_text, _, pairs = rest.partition(" ")
            stats[int(a_text)].service = hdr_from_fine(_pairs(pairs))
        elif tag == "SEC":
            left, _, kinds = rest.partition(" |")
            f = left.split(" ", 7)
            a, sec = int(f[0]), int(f[1])
            buckets = _pairs(f[7]) if len(f) > 7 else {}
            kd: dict[str, int] = {}
            for k, v in _pairs(kinds).items():
                kd[_kind(k)] = kd.get(_kind(k), 0) + v
            series.setdefault(a, {})[sec] = SecondStats(sec, int(f[2]), int(f[3]), int(f[4]), int(f[5]),
                                                        LogSketch.from_dict_counts(buckets, float(f[6])), kd)
        elif tag == "SS":
            sec, arrived, refused = map(int, rest.split())
            res.session_series[sec] = [arrived, refused]
        elif tag == "H":
            head, _, tail = rest.partition(" L")
            lag_text, _, send_text = tail.partition(" S")
            f = head.split()
            row = GeneratorSecond(int(f[0]))
            row.lag = LogSketch.from_dict_counts(_pairs(lag_text), float(f[1]))
            row.send = LogSketch.from_dict_counts(_pairs(send_text), float(f[2]))
            row.conn_queue_max = int(f[3])
            row.cpu_s, row.wall_s = float(f[4]), float(f[5])
            health[row.second] = row
        elif tag == "orders":
            orders_path = rest
        elif tag == "cookies":
            n_text, _, example = rest.partition(" ")
            if int(n_text):
                # the native engine keeps no cookie jar: say so where the report shows warnings
                res.warnings.setdefault("native_no_cookies", {})["Set-Cookie"] = {
                    "count": int(n_text), "example": bytes.fromhex(example).decode("latin-1")[:300]}
    for a, s in sorted(stats.items()):
        by = lat.get(a, {})
        total: dict[int, int] = {}
        for d in by.values():
            for k, v in d.items():
                total[k] = total.get(k, 0) + v
        s.latency = hdr_from_fine(total)
        s.by_class = {names.get(k, "none"): hdr_from_fine(d) for k, d in sorted(by.items())}
        res.actions[actions[a]] = s
        if a in series:
            res.series[actions[a]] = dict(sorted(series[a].items()))
    res.session_series = dict(sorted(res.session_series.items()))
    sessions.truncated = max(0, sessions.started - sessions.completed - sessions.abandoned)
    res.sessions = sessions
    res.generator = GeneratorHealth(dict(sorted(health.items())))
    if orders_path:
        for line in Path(orders_path).read_text().splitlines():
            f = line.split()
            gi, keyn, has_key, status, a = (int(x) for x in f[1:6])
            b = eng.bound[a]
            assert b is not None
            n = int(f[6])
            pos = 7
            items: tuple[str, ...] | None = None
            unsure: tuple[str, ...] = ()
            if n >= 0:
                items = tuple(str(x) for x in f[pos : pos + n])
                pos += n
                nu = int(f[pos])
                raw_unsure = {str(x) for x in f[pos + 1 : pos + 1 + nu]}
                pos += 1 + nu
                unsure = tuple(sorted(x for x in raw_unsure if x in items))
            else:
                pos += 1
            body = bytes.fromhex(f[pos]) if f[pos] != "-" else b""
            oid = None
            if b.order_id and body:
                try:
                    oid = _dotted(json.loads(body), b.order_id)
                except ValueError:
                    oid = None
            key = f"pc-{cfg.run_id}-{gi}-{keyn}" if has_key else ""
            res.orders.append(AckOrder(key, status, None if oid is None else str(oid), actions[a], items, unsure))
    return res


def run_native(
    cfg: EngineConfig,
    *,
    t0: float | None = None,
    on_start: Callable[[float], None] | None = None,
    stop_flag: Callable[[], bool] | None = None,
    on_live: Callable[[Callable[[], tuple[int, int, int]]], None] | None = None,
) -> LoadResult:
    """Run ``cfg`` in the native engine (a child process) and return its result. Blocking."""
    why = unsupported(cfg, templates=False)  # config_text below checks the templates
    if why:
        raise NativeEngineError("engine=native cannot run this profile: " + "; ".join(why) + " (engine=python or auto can)")
    exe = binary()
    arr, limit_hit = arrivals(cfg)
    live = [0, 0, 0]
    with tempfile.TemporaryDirectory(prefix="peakchaos-native-") as tmp:
        conf = Path(tmp) / "config.txt"
        out = Path(tmp) / "results.txt"
        conf.write_text(config_text(cfg, arr))
        del arr
        proc = subprocess.Popen([str(exe), str(conf), str(out)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, bufsize=1)
        _LIVE.add(proc.pid)
        try:
            assert proc.stdin is not None and proc.stdout is not None
            first = proc.stdout.readline().strip()
            if first != "ready":
                proc.wait(timeout=10)
                raise NativeEngineError(f"the native engine did not start: {(proc.stderr.read() if proc.stderr else '')[-2000:]}")
            start = t0 if t0 is not None else time.monotonic() + 0.02
            if on_live is not None:
                on_live(lambda: (live[0], live[1], live[2]))
            if on_start is not None:
                on_start(start)
            proc.stdin.write(f"t0 {start!r}\n")
            proc.stdin.flush()
            hard = start + cfg.duration + cfg.request_timeout_s + 30.0
            stopped = False
            done = False
            for _ in range(int((hard - time.monotonic()) * 8) + 10_000):
                line = proc.stdout.readline()
                if not line:
                    break
                if line.startswith("live "):
                    live[0], live[1], live[2] = (int(x) for x in line.split()[1:4])
                elif line.strip() == "done":
                    done = True
                    break
                if not stopped and stop_flag is not None and stop_flag():
                    stopped = True
                    proc.stdin.write("stop\n")
                    proc.stdin.flush()
                if time.monotonic() > hard:
                    break
            rc = proc.wait(timeout=30)
            if not done or rc != 0:
                err = proc.stderr.read() if proc.stderr else ""
                raise NativeEngineError(f"the native engine ended with exit code {rc} without its result: {err[-2000:]}")
            res = _parse_results(cfg, out, start, limit_hit)
            tot = res.total
            live[0], live[1], live[2] = tot.count, tot.ok, 0  # a finished run holds no active session
            return res
        finally:
            _LIVE.discard(proc.pid)
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
            for f in (proc.stdin, proc.stdout, proc.stderr):
                if f is not None:
                    f.close()


def native_walks(cfg: EngineConfig, n: int) -> list[list[tuple[int, float, int, int, int]]]:
    """The first ``n`` sessions' walks as the native engine draws them (for tests): per session,
    ``[(state, think_s, sku, page, term)]`` with -1 for "not drawn"; the first item is
    ``(-1, patience_s, -1, -1, -1)``."""
    exe = binary()
    with tempfile.TemporaryDirectory(prefix="peakchaos-native-") as tmp:
        conf = Path(tmp) / "config.txt"
        conf.write_text(config_text(cfg, [(i, 0.0) for i in range(n)]))
        proc = subprocess.run([str(exe), "--walks", str(conf)], capture_output=True, text=True, timeout=120, check=False)
        if proc.returncode != 0:
            raise NativeEngineError(f"the native engine's --walks failed: {proc.stderr[-2000:]}")
    out: list[list[tuple[int, float, int, int, int]]] = []
    for line in proc.stdout.splitlines():
        steps = []
        for item in line.split(";"):
            if item.strip():
                f = item.split()
                steps.append((int(f[0]), float(f[1]), int(f[2]), int(f[3]), int(f[4])))
        out.append(steps)
    return out
