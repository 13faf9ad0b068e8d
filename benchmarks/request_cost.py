#!/usr/bin/env python3
"""Per-request CPU cost of building a request and applying its response (no network).

    taskset -c 0 python benchmarks/request_cost.py [--n 200000] [--baseline-tree ../main]

Times the engine's request rendering (``_Bound.render``) and response effects (cookies, captures,
orders) for the double11 model's bindings with each session-state feature off and on, in
microseconds per request (best of 15 interleaved repeats). ``--baseline-tree`` also times the same bare
rendering with another checkout's code in a subprocess, so "no cost when unused" is a ratio
measured in the same run. Noisy on a shared machine: pin it and repeat.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
REPEATS = 15

RESPONSE = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 46\r\n\r\n"
            b'{"ok":true,"order_id":1,"status":"confirmed"}')
RESPONSE_COOKIE = RESPONSE.replace(b"\r\n\r\n", b"\r\nSet-Cookie: sessionid=0123456789abcdef; Path=/; HttpOnly; Max-Age=3600\r\n\r\n")

BASELINE_SNIPPET = r"""
import sys, time
sys.path.insert(0, sys.argv[1])
from pytest_peakchaos.load.engine import _Bound
from pytest_peakchaos.profiles import load_profile
p = load_profile("double11")
n = int(sys.argv[2])
names = ["view_product", "add_to_cart", "search", "checkout"]
import inspect
old = "jvars" in inspect.signature(_Bound.render).parameters
if old:
    bs = [_Bound(a, p.bindings[a], "", "127.0.0.1:8000") for a in names]
else:
    from pytest_peakchaos.profiles import SessionConfig
    bs = [_Bound(a, p.bindings[a], "", "127.0.0.1:8000", SessionConfig(cookies=False), frozenset()) for a in names]
pv = {"session": 1, "run_id": "r", "cart_id": "pc-r-1", "qty": 1, "sku": 17, "page": 2, "query": "rice%20cooker", "idempotency_key": "k"}
jv = dict(pv, query="rice cooker")
best = 1e9
for _ in range(15):
    t = time.perf_counter()
    if old:
        for i in range(n):
            bs[i & 3].render(pv, jv, "k" if (i & 3) == 3 else None)
    else:
        for i in range(n):
            bs[i & 3].render(jv, "k" if (i & 3) == 3 else None, None, False)
    best = min(best, (time.perf_counter() - t) / n)
print(best * 1e6)
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=200_000)
    ap.add_argument("--baseline-tree", type=Path)
    ap.add_argument("--json")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    from pytest_peakchaos.load.client import Request
    from pytest_peakchaos.load.cookies import CookieJar
    from pytest_peakchaos.load.engine import Engine, EngineConfig, _SessionState
    from pytest_peakchaos.profiles import RequestBinding, SessionConfig, load_profile

    base = load_profile("double11")
    b = dict(base.bindings)
    cap = dict(b)
    cap["view_product"] = RequestBinding.from_dict({**b["view_product"].to_dict(), "capture": {"oid": {"regex": '"order_id":(\\d+)'}}}, "x")
    cap["add_to_cart"] = RequestBinding.from_dict({**b["add_to_cart"].to_dict(), "capture": {"st": "status"}}, "x")
    tpl = dict(b)
    add = b["add_to_cart"].to_dict()
    del add["json"]
    tpl["add_to_cart"] = RequestBinding.from_dict({**add, "form": {"sku": "{sku}", "qty": "{qty}"}}, "x")
    tpl["checkout"] = RequestBinding.from_dict({**b["checkout"].to_dict(), "json": {"items": "{cart_items}"}}, "x")
    headers = (("Accept-Encoding", "gzip, deflate"), ("Accept-Language", "zh-TW,en;q=0.8"), ("User-Agent", "Mozilla/5.0"))
    variants: list[tuple[str, Any, bytes]] = [
        ("bare: cookie jar off", base.with_(session=SessionConfig(cookies=False)), RESPONSE),
        ("default: jar on, no cookie sent by the server", base, RESPONSE),
        ("jar on, a Set-Cookie on every response", base, RESPONSE_COOKIE),
        ("regex + JSON captures", base.with_(bindings=cap), RESPONSE),
        ("form body, cart var, browser headers", base.with_(bindings=tpl, session=SessionConfig(headers=headers)), RESPONSE),
    ]
    names = ["view_product", "add_to_cart", "search", "checkout"]
    out: dict[str, Any] = {}
    setups = []
    for label, prof, response in variants:
        eng = Engine(EngineConfig(base_url="http://127.0.0.1:8000", profile=prof, duration=1, seed=1, scale=1, max_requests=1,
                                  max_sessions=None, concurrency_cap=1, request_timeout_s=1, connections=1, run_id="r"))
        bs = [eng.bound[eng.actions.index(a)] for a in names]
        values = {"session": 1, "run_id": "r", "cart_id": "pc-r-1", "qty": 1, "sku": 17, "page": 2, "query": "rice cooker",
                  "idempotency_key": "k", "cart": [17, 3], "cart_size": 2, "cart_items": [{"sku": 17, "qty": 1}, {"sku": 3, "qty": 1}]}
        st = _SessionState(1, values, CookieJar() if prof.session.cookies else None)
        req = Request(b"", 0.0, lambda *a: None)
        req.head = response
        setups.append((label, eng, bs, values, st, response.split(b"\r\n\r\n", 1)[1], req))
        out[label] = {"render_us": 1e9, "effects_us": 1e9}
    n = args.n
    for _ in range(REPEATS):  # interleaved: a busy moment hits every variant alike
        for label, eng, bs, values, st, body, req in setups:
            t = time.perf_counter()
            for i in range(n):
                bs[i & 3].render(values, "k" if (i & 3) == 3 else None, st.jar, False)  # type: ignore[union-attr]
            r_us = (time.perf_counter() - t) / n * 1e6
            t = time.perf_counter()
            for i in range(n):
                bb = bs[i & 3]
                if bb.effects:  # type: ignore[union-attr]
                    eng._response_effects(bb, st, 200, body, "k", req)  # type: ignore[arg-type]
            e_us = (time.perf_counter() - t) / n * 1e6
            eng.orders.clear()
            o = out[label]
            o["render_us"] = min(o["render_us"], r_us)
            o["effects_us"] = min(o["effects_us"], e_us)
    print(f"{'variant (4 double11 bindings in turn)':<48}{'render us':>10}{'effects us':>11}{'total us':>10}")
    for label, o in out.items():
        print(f"{label:<48}{o['render_us']:>10.2f}{o['effects_us']:>11.2f}{o['render_us'] + o['effects_us']:>10.2f}")
    if args.baseline_tree is not None:  # bare rendering, this tree vs the other, alternating subprocesses
        best: dict[str, float] = {"this": 1e9, "baseline": 1e9}
        for _ in range(4):
            for who, tree in (("this", ROOT), ("baseline", args.baseline_tree.resolve())):
                r = subprocess.run([sys.executable, "-c", BASELINE_SNIPPET, str(tree), str(args.n)],
                                   capture_output=True, text=True, timeout=600, check=True)
                best[who] = min(best[who], float(r.stdout.strip().splitlines()[-1]))
        out["bare render, this tree vs baseline"] = best
        print(f"bare render (jar off, 4 bindings): this tree {best['this']:.2f} us, {args.baseline_tree.name} "
              f"{best['baseline']:.2f} us: {best['this'] / best['baseline']:.2f}x")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
