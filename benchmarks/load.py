#!/usr/bin/env python3
"""Load-generator benchmark: peakchaos vs Locust FastHttpUser vs wrk, plus latency truth.

    python benchmarks/load.py [--duration 10] [--connections 50] [--json out.json]

1. Starts nginx (Debian's package: ``apt-get install nginx-light``) on 127.0.0.1 as a neutral
   target, pinned to one core; every client is pinned to another core (one core each, run one after
   the other): peakchaos bare GET, peakchaos with the full double11 model (Zipf products, cart
   churn, bindings, patience, recording), Locust FastHttpUser (headless) and wrk. Prints req/s per
   core and the ratio to Locust.
2. Latency truth: through Toxiproxy with a fixed 200 ms latency toxic, peakchaos's measured p50/p99
   vs the injected latency plus the baseline measured through the same proxy without the toxic.
3. Stall: nginx is paused (SIGSTOP) for 2 s under constant open-model load; the stall shows in
   peakchaos's percentiles (latency from the intended send time) — and, for contrast, wrk's.

All traffic goes to 127.0.0.1. Every process started here is stopped here.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import fakepeer  # noqa: E402  (benchmarks/, next to this script)

if os.environ.get(fakepeer.ENV):  # --fake-peer: at import time, so spawned workers (which re-import this module) get it too
    fakepeer.install()

TARGET_CPU = 1
CLIENT_CPU = 0
ENGINE = ["python"]  # --engine (set in main)
TOXIPROXY_CANDIDATES = (str(Path(__file__).resolve().parents[1] / ".state" / "bin" / "toxiproxy-server"), "toxiproxy-server")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pinned(cpu: int, argv: list[str]) -> list[str]:
    """argv run with its CPU affinity set to ``cpu`` (set before exec, so every thread inherits it)."""
    code = "import os,sys; os.sched_setaffinity(0, {%d}); os.execvp(sys.argv[1], sys.argv[1:])" % cpu
    return [sys.executable, "-c", code, *argv]


def wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    for _ in range(int(timeout / 0.05) + 1):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                break
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout:.0f}s")


# ------------------------------------------------------------------------------------------------
# nginx


NGINX_CONF = """
daemon off;
master_process off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
worker_rlimit_nofile 20000;
events {{ worker_connections 19000; }}
http {{
  access_log off;
  client_body_temp_path {dir}/body;
  proxy_temp_path {dir}/proxy;
  fastcgi_temp_path {dir}/fastcgi;
  uwsgi_temp_path {dir}/uwsgi;
  scgi_temp_path {dir}/scgi;
  keepalive_requests 100000000;
  keepalive_timeout 300s;
  server {{
    listen 127.0.0.1:{port} backlog=4096;
    location /c/ {{
      default_type application/json;
      add_header Set-Cookie "sessionid=0123456789abcdef; Path=/; HttpOnly; Max-Age=3600" always;
      return 200 '{{"ok":true,"order_id":1,"status":"confirmed"}}';
    }}
    location / {{
      default_type application/json;
      return 200 '{{"ok":true,"order_id":1,"status":"confirmed"}}';
    }}
  }}
}}
"""


class Nginx:
    def __init__(self, workdir: Path) -> None:
        binary = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
        if binary is None:
            raise SystemExit("nginx not found: install Debian's package (apt-get install nginx-light)")
        self.dir = workdir / "nginx"
        self.dir.mkdir()
        self.port = free_port()
        conf = self.dir / "nginx.conf"
        conf.write_text(NGINX_CONF.format(dir=self.dir, port=self.port))
        self.log = (self.dir / "out.log").open("wb")
        self.proc = subprocess.Popen(pinned(TARGET_CPU, [binary, "-c", str(conf), "-p", str(self.dir)]),
                                     stdout=self.log, stderr=subprocess.STDOUT)
        wait_port(self.port)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def pause(self) -> None:
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.proc.pid, signal.SIGCONT)

    def stop(self) -> None:
        self.resume()
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self.log.close()


# ------------------------------------------------------------------------------------------------
# peakchaos (runs in a pinned child process: this script with --child)


def _profile(kind: str, connections: int) -> Any:
    from pytest_peakchaos.load import Constant, StepShape
    from pytest_peakchaos.profiles import Behaviour, Dist, Patience, Profile, RequestBinding, load_profile

    if kind == "bare":
        # `connections` shoppers that never leave: a closed loop of bare GETs, like wrk -c N.
        return Profile(
            name="bare-get",
            shape=StepShape(1.0, ((0.0, connections * 20.0), (0.05, 0.0))),
            behaviour=Behaviour(
                transitions={"entry": {"home": 1.0}, "home": {"home": 1.0 - 1e-9, "exit": 1e-9}},
                think_default=Dist.constant(0.0),
                max_actions=10**9,
            ),
            patience=Patience(wait=Dist.constant(3600.0), retry_probability=0.0, max_retries=0),
            bindings={"home": RequestBinding("GET", "/")},
        )
    if kind == "double11":
        # the full model without think time: sessions arrive faster than the cap lets them in, so
        # `connections` shoppers are always active (ended sessions are replaced; refusals counted).
        return load_profile("double11").with_(think_scale=0.0, shape=Constant(1.0, 5000.0))
    if kind == "double11-think":
        # the full model with (compressed) think times and 4x the sessions: timers on the hot path.
        return load_profile("double11").with_(think_scale=0.0002, shape=Constant(1.0, 5000.0))
    if kind.startswith("d11-"):
        # the short-think double11 benchmark with one session-state feature in use (the cost of each)
        from pytest_peakchaos.profiles import SessionConfig

        base = _profile("double11-think", connections)
        b = dict(base.bindings)
        if kind == "d11-nocookies":  # the jar off: what the (default-on) jar costs when no cookie comes
            return base.with_(session=SessionConfig(cookies=False))
        if kind == "d11-cookies":  # every response sets a session cookie, every request sends it (url /c)
            return base
        if kind == "d11-captures":  # a regex capture on every product page, a JSON capture on every add
            b["view_product"] = RequestBinding.from_dict({**b["view_product"].to_dict(), "capture": {"oid": {"regex": '"order_id":(\\d+)'}}}, "bench")
            b["add_to_cart"] = RequestBinding.from_dict({**b["add_to_cart"].to_dict(), "capture": {"st": "status"}}, "bench")
            return base.with_(bindings=b)
        if kind == "d11-templates":  # form bodies, the cart's contents at checkout, browser headers
            add = b["add_to_cart"].to_dict()
            del add["json"]
            b["add_to_cart"] = RequestBinding.from_dict({**add, "form": {"sku": "{sku}", "qty": "{qty}"}}, "bench")
            b["checkout"] = RequestBinding.from_dict({**b["checkout"].to_dict(), "json": {"items": "{cart_items}"}}, "bench")
            headers = (("Accept-Encoding", "gzip, deflate"), ("Accept-Language", "zh-TW,en;q=0.8"), ("User-Agent", "Mozilla/5.0"))
            return base.with_(bindings=b, session=SessionConfig(headers=headers))
    if kind == "steady":
        # open-model load for latency measurements: 100 sessions/s of 10 GETs, 20 ms think time.
        return Profile(
            name="steady",
            shape=Constant(1.0, 100.0),
            behaviour=Behaviour(transitions={"entry": {"home": 1.0}, "home": {"home": 0.9, "exit": 0.1}},
                                think_default=Dist.constant(0.02)),
            patience=Patience(wait=Dist.constant(3600.0), retry_probability=0.0, max_retries=0),
            bindings={"home": RequestBinding("GET", "/")},
        )
    raise SystemExit(f"unknown profile kind {kind!r}")


def _rss_mib() -> float:
    """Resident memory of this process now (MiB)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def child_real(args: argparse.Namespace) -> None:
    """One ``--think real`` row: double11 at real think times, ``args.rate`` sessions/s."""
    import resource

    from pytest_peakchaos.load import Constant, run_load
    from pytest_peakchaos.profiles import load_profile

    prof = load_profile("double11").with_(think_scale=1.0, shape=Constant(1.0, args.rate))
    rss0 = _rss_mib()
    t_cpu = time.process_time()
    result = run_load(args.url, prof, duration=args.duration, seed=1, max_requests=10**9, max_sessions=None,
                      concurrency_cap=10**7, request_timeout_s=10, connections=args.connections, workers=args.workers,
                      engine=args.engine)
    cpu = time.process_time() - t_cpu
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if args.engine == "native" and args.workers == 1:  # the engine is a child process, the sessions are in it
        ch = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu += ch.ru_utime + ch.ru_stime
        peak += ch.ru_maxrss / 1024
    elif args.workers > 1:
        peak = max(peak, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024 * args.workers)
        cpu += resource.getrusage(resource.RUSAGE_CHILDREN).ru_utime + resource.getrusage(resource.RUSAGE_CHILDREN).ru_stime
    s = result.sessions
    live = s.started - s.completed - s.abandoned  # still shopping when the run ended
    total = result.total
    gen = result.generator
    rows = gen.timeline()
    # steady seconds: the last 20 % of the run (most sessions live), for the delay at full concurrency
    tail = [r for r in rows if r.second >= int(0.8 * args.duration) and r.second < int(args.duration)]
    out = {
        "rate": args.rate, "live": live, "started": s.started, "requests": total.count, "errors": total.error_count,
        "rps": total.count / result.elapsed_s, "rps_tail": sum(x.count for x in result.timeline()[int(0.8 * args.duration):int(args.duration)])
        / max(1, int(args.duration) - int(0.8 * args.duration)),
        "p50": total.p50_ms, "p95": total.p95_ms, "p99": total.p99_ms, "max": total.max_ms,
        "gen_delay_p99_max": gen.worst_ms(), "gen_delay_p99_tail": max((r.delay_p99_ms for r in tail), default=0.0),
        "gen_lag_p99_max": max((r.lag_p99_ms for r in rows), default=0.0),
        "saturated_5ms": len(gen.saturated_seconds(5.0)), "seconds": len(rows),
        "over_5ms": {r.second: round(r.delay_p99_ms, 1) for r in rows if r.delay_p99_ms > 5.0},
        "engine": args.engine,
        "gc": gen.totals(), "cpu_s": cpu, "cpu_share": gen.totals()["cpu_share"], "elapsed": result.elapsed_s,
        "rss_start": rss0, "rss_peak": peak, "kib_per_session": (peak - rss0) * 1024 / live if live else None,
        "cpu_us_per_request": cpu / total.count * 1e6 if total.count else None,
    }
    print("RESULT " + json.dumps(out), flush=True)


def child(args: argparse.Namespace) -> None:
    from pytest_peakchaos.load import run_load

    if args.kind == "real":
        child_real(args)
        return
    if args.kind == "steady":
        cap, conns = 5000, None  # open model: one connection per active shopper
    else:
        cap = args.connections * (4 if args.kind == "double11-think" or args.kind.startswith("d11-") else 1)
        conns = cap
    url = args.url + ("/c" if args.kind == "d11-cookies" else "")
    result = run_load(url, _profile(args.kind, args.connections), duration=args.duration, seed=1,
                      max_requests=10**9, max_sessions=None, concurrency_cap=cap, request_timeout_s=10,
                      connections=conns)
    total = result.total
    out = {
        "requests": total.count,
        "ok": total.ok,
        "errors": total.error_count,
        "rps": total.count / result.elapsed_s,
        "elapsed": result.elapsed_s,
        "p50": total.p50_ms,
        "p99": total.p99_ms,
        "max": total.max_ms,
        "sessions": result.sessions.to_dict(),
        "timeline": [[s.second, s.count, round(s.p50_ms, 2), round(s.p99_ms, 2), round(s.max_ms, 1)] for s in result.timeline()],
        "orders": len(result.orders),
    }
    print("RESULT " + json.dumps(out), flush=True)


def run_peakchaos(url: str, kind: str, duration: float, connections: int, during: Any = None, rate: float = 0.0,
                  workers: int = 1, tree: Path | None = None, fake_peer: bool = False) -> dict[str, Any]:
    """One child run (pinned unless ``workers > 1``); ``tree``: run another checkout's code (its benchmarks/load.py);
    ``fake_peer``: the engine alone, against :class:`fakepeer.FakePool`."""
    script = (tree / "benchmarks" / "load.py") if tree is not None else Path(__file__).resolve()
    argv = [sys.executable, str(script), "--child", kind, "--url", url,
            "--duration", str(duration), "--connections", str(connections)]
    if tree is None:  # another checkout's script may not know the newer flags
        argv += ["--rate", str(rate), "--workers", str(workers), "--engine", ENGINE[0]]
    cmd = argv if workers > 1 else pinned(CLIENT_CPU, argv)
    env = {**os.environ, fakepeer.ENV: "1"} if fake_peer else None
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        if during is not None:
            during()
        out, err = proc.communicate(timeout=duration + 120)
    finally:
        if proc.poll() is None:  # interrupted: the child goes too
            proc.kill()
            proc.wait(10)
    for line in out.splitlines():
        if line.startswith("RESULT "):
            data: dict[str, Any] = json.loads(line[7:])
            return data
    raise RuntimeError(f"peakchaos child failed ({proc.returncode}):\n{err[-3000:]}")


# ------------------------------------------------------------------------------------------------
# Locust and wrk

LOCUSTFILE = """
from locust import FastHttpUser, constant, task


class Shopper(FastHttpUser):
    wait_time = constant(0)

    @task
    def get(self):
        self.client.get("/")
"""


def run_locust(url: str, duration: float, users: int, workdir: Path) -> dict[str, Any] | None:
    locust = shutil.which("locust") or str(Path(sys.executable).with_name("locust"))
    if not Path(locust).exists():
        return None
    lf = workdir / "locustfile.py"
    lf.write_text(LOCUSTFILE)
    prefix = workdir / "locust"
    argv = [locust, "-f", str(lf), "--headless", "-u", str(users), "-r", str(users), "-t", f"{int(duration)}s",
            "-H", url, "--only-summary", "--csv", str(prefix), "--loglevel", "WARNING"]
    proc = subprocess.run(pinned(CLIENT_CPU, argv), capture_output=True, text=True, timeout=duration + 60, check=False)
    stats = prefix.with_name("locust_stats.csv")
    if not stats.exists():
        raise RuntimeError(f"locust failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    with stats.open() as f:
        rows = {r["Name"]: r for r in csv.DictReader(f)}
    agg = rows["Aggregated"]
    return {"rps": float(agg["Requests/s"]), "requests": int(agg["Request Count"]), "errors": int(agg["Failure Count"]),
            "p50": float(agg["50%"]), "p99": float(agg["99%"])}


def run_wrk(url: str, duration: float, connections: int, during: Any = None) -> dict[str, Any] | None:
    wrk = shutil.which("wrk")
    if wrk is None:
        return None
    # --timeout 10s: wrk's default 2 s timeout would drop stalled requests from its latency stats
    argv = [wrk, "-t1", f"-c{connections}", f"-d{int(duration)}s", "--timeout", "10s", "--latency", url + "/"]
    proc = subprocess.Popen(pinned(CLIENT_CPU, argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if during is not None:
        during()
    out, err = proc.communicate(timeout=duration + 30)
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not m:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {out}\n{err}")

    def pct(name: str) -> float | None:
        mm = re.search(rf"^\s+{name}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if not mm:
            return None
        return float(mm[1]) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[mm[2]]

    mx = re.search(r"Latency\s+[\d.]+\w+\s+[\d.]+\w+\s+([\d.]+)(us|ms|s)", out)
    n = re.search(r"(\d+) requests in", out)
    return {"rps": float(m[1]), "p50": pct("50"), "p99": pct("99"), "requests": int(n[1]) if n else 0,
            "max": float(mx[1]) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[mx[2]] if mx else None}


# ------------------------------------------------------------------------------------------------
# Toxiproxy


class Toxiproxy:
    def __init__(self, workdir: Path, binary: str | None) -> None:
        candidates = [binary] if binary else [os.environ.get("PEAKCHAOS_TOXIPROXY_SERVER"), *TOXIPROXY_CANDIDATES]
        path = None
        for c in candidates:
            if c and (shutil.which(c) or Path(c).is_file()):
                path = shutil.which(c) or c
                break
        if path is None:
            raise FileNotFoundError("toxiproxy server not found (give --toxiproxy PATH)")
        self.api_port = free_port()
        self.log = (workdir / "toxiproxy.log").open("wb")
        self.proc = subprocess.Popen(pinned(TARGET_CPU, [path, "-host", "127.0.0.1", "-port", str(self.api_port)]),
                                     stdout=self.log, stderr=subprocess.STDOUT)
        wait_port(self.api_port)

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"http://127.0.0.1:{self.api_port}{path}", data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 - loopback
            text = resp.read()
        return json.loads(text) if text else None

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self.log.close()


# ------------------------------------------------------------------------------------------------


def fmt(v: float | None, unit: str = "") -> str:
    return "n/a" if v is None else f"{v:,.1f}{unit}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=10.0, help="seconds per throughput run (default 10)")
    ap.add_argument("--connections", type=int, default=50, help="connections / concurrent shoppers (default 50)")
    ap.add_argument("--rounds", type=int, default=2,
                    help="throughput rounds; each tool's best round is reported (default 2: the machine may be shared)")
    ap.add_argument("--toxiproxy", help="path of toxiproxy-server (default: .state/bin/toxiproxy-server from scripts/setup.sh, then PATH)")
    ap.add_argument("--skip", action="append", default=[], choices=["locust", "wrk", "truth", "stall", "k6"])
    ap.add_argument("--json", help="also write the results as JSON to this file")
    ap.add_argument("--think", choices=["none", "real"], default="none",
                    help="real: the sale-day concurrency benchmark (double11 at real think times, many live sessions) "
                         "instead of the short-think throughput benchmark")
    ap.add_argument("--real-connections", type=int, default=1000, help="--think real: peakchaos connections (default 1000)")
    ap.add_argument("--rates", default="200,1000,2000,3000,5000", help="--think real: session arrivals/s per row")
    ap.add_argument("--workers", type=int, default=1, help="--think real: engine worker processes (unpinned when > 1)")
    ap.add_argument("--fake-peer", action="store_true",
                    help="--think real: no nginx and no sockets: the engine alone against fakepeer.FakePool (no peers run)")
    ap.add_argument("--max-peer-users", type=int, default=15_000,
                    help="--think real: largest concurrency Locust is run at (a connection and file descriptor per user)")
    ap.add_argument("--max-k6-vus", type=int, default=4_000, help="--think real: largest concurrency k6 is run at (memory per VU)")
    ap.add_argument("--features", action="store_true",
                    help="also run the short-think double11 model with each session-state feature in use "
                         "(cookies off, cookies set on every response, captures, templates/forms/headers)")
    ap.add_argument("--baseline-tree", type=Path,
                    help="another checkout (e.g. the main branch) whose short-think double11 run is measured "
                         "in the same rounds, for a regression ratio")
    ap.add_argument("--engine", choices=["python", "native"], default="python",
                    help="--think real: the peakchaos engine (native: load/native.py, the same engine in C)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--url", help=argparse.SUPPRESS)
    ap.add_argument("--kind", help=argparse.SUPPRESS)
    ap.add_argument("--rate", type=float, default=0.0, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    # SIGTERM/SIGHUP unwind like Ctrl-C, so nginx, Toxiproxy and the clients are stopped on every exit path
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda signum, frame: sys.exit(128 + signum))
    ENGINE[0] = args.engine
    if args.child:
        args.kind = args.child
        child(args)
        return 0
    if len(os.sched_getaffinity(0)) < 2 and (os.cpu_count() or 1) < 2:
        print("warning: fewer than 2 cores; target and client share a core")
    if args.think == "real":
        return main_real(args)
    report: dict[str, Any] = {"duration_s": args.duration, "connections": args.connections, "cpu_client": CLIENT_CPU,
                              "cpu_target": TARGET_CPU}
    with tempfile.TemporaryDirectory(prefix="peakchaos-bench-") as tmp:
        workdir = Path(tmp)
        nginx = Nginx(workdir)
        try:
            print(f"nginx on {nginx.url} (core {TARGET_CPU}); each client on core {CLIENT_CPU}, "
                  f"{args.connections} connections, {args.duration:g}s per run\n")
            tools: list[tuple[str, Any]] = [
                ("peakchaos: bare GET", lambda: run_peakchaos(nginx.url, "bare", args.duration, args.connections)),
                ("peakchaos: double11 full model", lambda: run_peakchaos(nginx.url, "double11", args.duration, args.connections)),
                ("peakchaos: double11 + think times", lambda: run_peakchaos(nginx.url, "double11-think", args.duration, args.connections)),
            ]
            if args.baseline_tree is not None:
                tree = args.baseline_tree.resolve()
                tools.append((f"baseline {tree.name}: double11 + think times",
                              lambda: run_peakchaos(nginx.url, "double11-think", args.duration, args.connections, tree=tree)))
            if args.features:
                for kind, label in (("d11-nocookies", "cookie jar off"), ("d11-cookies", "a cookie on every response"),
                                    ("d11-captures", "regex + JSON captures"), ("d11-templates", "form, cart var, headers")):
                    tools.append((f"peakchaos: d11 think + {label}",
                                  lambda kind=kind: run_peakchaos(nginx.url, kind, args.duration, args.connections)))
            if "locust" not in args.skip:
                tools.append(("Locust FastHttpUser (headless)", lambda: run_locust(nginx.url, args.duration, args.connections, workdir)))
            if "wrk" not in args.skip:
                tools.append(("wrk -t1", lambda: run_wrk(nginx.url, args.duration, args.connections)))
            best: dict[str, dict[str, Any] | None] = {name: None for name, _ in tools}
            all_rounds: dict[str, list[float]] = {name: [] for name, _ in tools}
            for rnd in range(max(1, args.rounds)):
                for name, fn in tools:  # interleaved, so a busy moment does not hit one tool only
                    r = fn()
                    if r is None:
                        continue
                    all_rounds[name].append(r["rps"])
                    if best[name] is None or r["rps"] > best[name]["rps"]:  # type: ignore[index]
                        best[name] = r
                print(f"round {rnd + 1}: " + ", ".join(f"{n.split(' (')[0]} {v[-1]:,.0f}" for n, v in all_rounds.items() if v))
            rows = list(best.items())
            report["rounds"] = all_rounds
            print()
            locust = next((r for name, r in rows if name.startswith("Locust") and r), None)
            print(f"{'tool (one core each)':<36}{'req/s per core':>16}{'vs Locust':>11}{'p50 ms':>9}{'p99 ms':>9}")
            for name, r in rows:
                if r is None:
                    print(f"{name:<36}{'not installed':>16}")
                    continue
                ratio = f"{r['rps'] / locust['rps']:.1f}x" if locust else "n/a"
                print(f"{name:<36}{r['rps']:>16,.0f}{ratio:>11}{fmt(r.get('p50')):>9}{fmt(r.get('p99')):>9}")
            report["throughput"] = {name: r for name, r in rows}
            goal = next(r for name, r in rows if name.startswith("peakchaos: double11 full"))
            assert goal is not None
            if locust:
                verdict = "met" if goal["rps"] >= 4 * locust["rps"] else "NOT met"
                print(f"\ngoal >= 4x Locust per core with the full double11 model: {goal['rps'] / locust['rps']:.1f}x ({verdict})")
            print(f"goal >= 20k req/s per core with the full double11 model: {goal['rps']:,.0f} "
                  f"({'met' if goal['rps'] >= 20_000 else 'NOT met'})")

            if "truth" not in args.skip:
                report["latency_truth"] = latency_truth(nginx, workdir, args.toxiproxy)
            if "stall" not in args.skip:
                report["stall"] = stall(nginx, "wrk" not in args.skip)
        finally:
            nginx.stop()
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


# ------------------------------------------------------------------------------------------------
# --think real: sale-day concurrency

LOCUSTFILE_THINK = """
import random
from locust import FastHttpUser, task


class Shopper(FastHttpUser):
    # think times like double11's pages (negative-exponential, 7 s mean, truncated at 70 s)
    def wait_time(self):
        return min(random.expovariate(1 / 7.0), 70.0)

    @task
    def get(self):
        self.client.get("/")
"""

K6_SCRIPT = """
import http from 'k6/http';
import { sleep } from 'k6';
export const options = {
  discardResponseBodies: true,
  summaryTrendStats: ['med', 'p(95)', 'p(99)', 'max'],
  scenarios: { shoppers: { executor: 'ramping-vus', startVUs: 0, gracefulRampDown: '0s', gracefulStop: '0s',
                           stages: [{ duration: '%(duration)ds', target: %(vus)d }] } },
};
export default function () {
  http.get('%(url)s/');
  sleep(Math.min(-Math.log(1 - Math.random()) * 7.0, 70.0));
}
"""


def _peak_rss_of(proc: subprocess.Popen[Any], stop: threading.Event, box: dict[str, float]) -> None:
    """Sample the resident memory of ``proc`` and its children (MiB) until ``stop``."""
    for _ in range(100_000):
        if stop.is_set():
            return
        total = 0.0
        pids = [proc.pid]
        try:
            with open(f"/proc/{proc.pid}/task/{proc.pid}/children") as f:
                pids += [int(x) for x in f.read().split()]
        except OSError:
            pass
        for pid in pids:
            try:
                with open(f"/proc/{pid}/statm") as f:
                    total += int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
            except OSError:
                pass
        box["peak"] = max(box.get("peak", 0.0), total)
        time.sleep(0.25)


def _run_measured(argv: list[str], timeout: float, **kw: Any) -> tuple[subprocess.CompletedProcess[str], float]:
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)
    stop = threading.Event()
    box: dict[str, float] = {}
    t = threading.Thread(target=_peak_rss_of, args=(proc, stop, box), daemon=True)
    t.start()
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        stop.set()
    t.join(2)
    return subprocess.CompletedProcess(argv, proc.returncode, out, err), box.get("peak", 0.0)


def run_locust_think(url: str, duration: float, users: int, rate: float, workdir: Path) -> dict[str, Any] | None:
    locust = shutil.which("locust") or str(Path(sys.executable).with_name("locust"))
    if not Path(locust).exists():
        return None
    lf = workdir / "locustfile_think.py"
    lf.write_text(LOCUSTFILE_THINK)
    prefix = workdir / "locust_think"
    argv = [locust, "-f", str(lf), "--headless", "-u", str(users), "-r", f"{rate:g}", "-t", f"{int(duration)}s",
            "-H", url, "--only-summary", "--csv", str(prefix), "--loglevel", "WARNING"]
    proc, peak = _run_measured(pinned(CLIENT_CPU, argv), duration + 120)
    stats = prefix.with_name("locust_think_stats.csv")
    if not stats.exists():
        return {"error": f"locust failed ({proc.returncode}): {proc.stderr[-300:]}"}
    with stats.open() as f:
        rows = {r["Name"]: r for r in csv.DictReader(f)}
    agg = rows["Aggregated"]
    return {"users": users, "rps": float(agg["Requests/s"]), "requests": int(agg["Request Count"]),
            "errors": int(agg["Failure Count"]), "p50": float(agg["50%"]), "p95": float(agg["95%"]),
            "p99": float(agg["99%"]), "rss_peak": peak, "kib_per_session": peak * 1024 / users if users else None}


def find_k6() -> str | None:
    found = shutil.which("k6")
    if found:
        return found
    home = Path(os.environ.get("GOPATH") or Path.home() / "go") / "bin" / "k6"
    return str(home) if home.exists() else None


def run_k6(url: str, duration: float, vus: int, workdir: Path) -> dict[str, Any] | None:
    k6 = find_k6()
    if k6 is None:
        return None
    script = workdir / "k6_think.js"
    script.write_text(K6_SCRIPT % {"duration": int(duration), "vus": vus, "url": url})
    summary = workdir / "k6_summary.json"
    argv = [k6, "run", "--quiet", "--no-usage-report", "--summary-export", str(summary), str(script)]
    env = {**os.environ, "GOMAXPROCS": "1", "K6_NO_COLOR": "1"}
    proc, peak = _run_measured(pinned(CLIENT_CPU, argv), duration + 120, env=env)
    if not summary.exists():
        return {"error": f"k6 failed ({proc.returncode}): {proc.stderr[-300:]}"}
    data = json.loads(summary.read_text())
    m = data["metrics"]
    dur = m.get("http_req_duration", {})
    reqs = m.get("http_reqs", {})
    return {"users": vus, "rps": int(reqs.get("count", 0)) / duration, "requests": int(reqs.get("count", 0)),
            "p50": float(dur.get("med", 0.0)), "p95": float(dur.get("p(95)", 0.0)), "p99": dur.get("p(99)"),
            "rss_peak": peak, "kib_per_session": peak * 1024 / vus if vus else None}


def cpu_times(cpu: int) -> list[int]:
    """/proc/stat's counters of one core (user nice system idle iowait irq softirq steal ...)."""
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith(f"cpu{cpu} "):
                return [int(x) for x in line.split()[1:]]
    return []


def steal_share(before: list[int], after: list[int]) -> float | None:
    """Share of the core's time the hypervisor gave to someone else (steal) between two readings."""
    if len(before) < 8 or len(after) < 8:
        return None
    d = [a - b for a, b in zip(after, before)]
    total = sum(d[:8])
    return d[7] / total if total else None


def main_real(args: argparse.Namespace) -> int:
    rates = [float(x) for x in args.rates.split(",") if x.strip()]
    duration = args.duration
    conns = args.real_connections
    report: dict[str, Any] = {"think": "real", "duration_s": duration, "connections": conns, "workers": args.workers,
                              "fake_peer": args.fake_peer, "rows": []}
    with tempfile.TemporaryDirectory(prefix="peakchaos-bench-") as tmp:
        workdir = Path(tmp)
        nginx = None if args.fake_peer else Nginx(workdir)
        url = fakepeer.URL if nginx is None else nginx.url
        try:
            target = "no peer (fakepeer.FakePool: the engine alone)" if nginx is None else f"nginx on core {TARGET_CPU}"
            print(f"--think real: double11 at real think times (7 s mean pages), constant arrivals, {duration:g}s per row, "
                  f"{conns} connections, {target}, clients on core {CLIENT_CPU}"
                  + (f" (peakchaos: {args.workers} workers, unpinned)" if args.workers > 1 else "")
                  + f", peakchaos engine: {args.engine}\n")
            for rate in rates:
                for rnd in range(max(1, args.rounds)):
                    st0, sn0 = cpu_times(CLIENT_CPU), cpu_times(TARGET_CPU)
                    r = run_peakchaos(url, "real", duration, conns, rate=rate, workers=args.workers, fake_peer=args.fake_peer)
                    r["round"] = rnd + 1
                    r["steal_client_core"] = steal_share(st0, cpu_times(CLIENT_CPU))
                    r["steal_target_core"] = steal_share(sn0, cpu_times(TARGET_CPU))
                    report["rows"].append({"tool": "peakchaos", **r})
                    g = r["gc"]
                    print(f"peakchaos {rate:>6,.0f}/s round {rnd + 1}: live {r['live']:>8,} req/s {r['rps']:>8,.0f} "
                          f"(last 20 %: {r['rps_tail']:>7,.0f}) p50 {r['p50']:.1f} p95 {r['p95']:.1f} p99 {r['p99']:.1f} ms | "
                          f"generator p99 delay: worst second {r['gen_delay_p99_max']:.1f} ms, last 20 % {r['gen_delay_p99_tail']:.1f} ms, "
                          f"{r['saturated_5ms']}/{r['seconds']} s over 5 ms; gc {g['gc_count']} ({g['gc_pause_ms']:.0f} ms); "
                          f"cpu share {r['cpu_share']:.2f}, {(r['cpu_us_per_request'] or 0):.0f} µs CPU/request | RSS {r['rss_peak']:.0f} MiB, "
                          f"{(r['kib_per_session'] or 0):.1f} KiB/live session"
                          + (f" | {r['errors']:,} errors" if r.get("errors") else "")
                          + (f" | seconds over 5 ms: {r['over_5ms']}" if r.get("over_5ms") else "")
                          + (f" | steal on the client core {r['steal_client_core']:.0%}, on nginx's {r['steal_target_core']:.0%}"
                             if r.get("steal_client_core") is not None and r.get("steal_target_core") is not None else ""),
                          flush=True)
                if nginx is None:  # peers against a fake pool would measure nothing comparable
                    continue
                live = max(x["live"] for x in report["rows"] if x["tool"] == "peakchaos" and x["rate"] == rate)
                if "locust" not in args.skip:
                    if live <= args.max_peer_users:
                        lo = run_locust_think(url, duration, live, rate, workdir)
                        if lo is not None:
                            report["rows"].append({"tool": "locust", "rate": rate, **lo})
                            print(f"locust    {rate:>6,.0f}/s: {lo}", flush=True)
                    else:
                        print(f"locust    {rate:>6,.0f}/s: not run: {live:,} users > --max-peer-users {args.max_peer_users:,} "
                              "(one connection and file descriptor per user)", flush=True)
                if "k6" not in args.skip:
                    if find_k6() is None:
                        print("k6: not found (go install go.k6.io/k6@v0.54.0)")
                    elif live <= args.max_k6_vus:
                        k = run_k6(url, duration, live, workdir)
                        if k is not None:
                            report["rows"].append({"tool": "k6", "rate": rate, **k})
                            print(f"k6        {rate:>6,.0f}/s: {k}", flush=True)
                    else:
                        print(f"k6        {rate:>6,.0f}/s: not run: {live:,} VUs > --max-k6-vus {args.max_k6_vus:,}", flush=True)
        finally:
            if nginx is not None:
                nginx.stop()
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


def latency_truth(nginx: Nginx, workdir: Path, binary: str | None) -> dict[str, Any]:
    print("\n== latency truth: peakchaos through Toxiproxy, latency toxic 200 ms (downstream, no jitter) ==")
    try:
        tp = Toxiproxy(workdir, binary)
    except FileNotFoundError as exc:
        print(f"skipped: {exc}")
        return {"skipped": str(exc)}
    try:
        port = free_port()
        tp.call("POST", "/proxies", {"name": "bench", "listen": f"127.0.0.1:{port}", "upstream": f"127.0.0.1:{nginx.port}",
                                     "enabled": True})
        url = f"http://127.0.0.1:{port}"
        base = run_peakchaos(url, "steady", 5.0, 0)
        tp.call("POST", "/proxies/bench/toxics", {"name": "lat", "type": "latency", "stream": "downstream",
                                                   "toxicity": 1.0, "attributes": {"latency": 200, "jitter": 0}})
        hot = run_peakchaos(url, "steady", 5.0, 0)
        expected = 200.0 + base["p50"]
        err = (hot["p50"] - expected) / expected * 100
        print(f"baseline through the proxy: p50 {base['p50']:.2f} ms, p99 {base['p99']:.2f} ms ({base['requests']} requests)")
        print(f"with the 200 ms toxic:      p50 {hot['p50']:.2f} ms, p99 {hot['p99']:.2f} ms, max {hot['max']:.1f} ms "
              f"({hot['requests']} requests, {hot['errors']} errors)")
        print(f"expected p50 = injected 200 + baseline {base['p50']:.2f} = {expected:.2f} ms; "
              f"measured {hot['p50']:.2f} ms: error {err:+.2f} % ({'within' if abs(err) <= 2 else 'OUTSIDE'} 2 %)")
        return {"baseline": base, "toxic": hot, "expected_p50": expected, "error_pct": err}
    finally:
        tp.stop()


def stall(nginx: Nginx, with_wrk: bool) -> dict[str, Any]:
    print("\n== stall: nginx paused (SIGSTOP) for 2 s at t=2 s of a 6 s run ==")

    def pause_later(delay: float) -> None:
        def go() -> None:
            time.sleep(delay)
            nginx.pause()
            time.sleep(2.0)
            nginx.resume()

        threading.Thread(target=go, daemon=True).start()

    # the child needs ~0.5 s to start; its run begins then, so pause 2.5 s after launching it
    pc = run_peakchaos(nginx.url, "steady", 6.0, 0, during=lambda: pause_later(2.5))
    print(f"peakchaos (open model, 1000 req/s intended): p50 {pc['p50']:.1f} ms, p99 {pc['p99']:.1f} ms, "
          f"max {pc['max']:.1f} ms over {pc['requests']} requests")
    print("  per second (t, requests, p50 ms, p99 ms, max ms):")
    for row in pc["timeline"]:
        print(f"    {row[0]:>2}s {row[1]:>6} {row[2]:>9.1f} {row[3]:>9.1f} {row[4]:>9.1f}")
    out: dict[str, Any] = {"peakchaos": pc}
    if with_wrk:
        w = run_wrk(nginx.url, 6.0, 10, during=lambda: pause_later(2.0))
        if w:
            print(f"wrk -c10 (closed loop, --timeout 10s) under the same stall, for comparison: {w['requests']:,} requests, "
                  f"p50 {fmt(w['p50'])} ms, p99 {fmt(w['p99'])} ms, max {fmt(w['max'])} ms")
            out["wrk"] = w
    return out


if __name__ == "__main__":
    raise SystemExit(main())
