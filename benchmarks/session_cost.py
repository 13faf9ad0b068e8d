#!/usr/bin/env python3
"""CPU and memory of the engine's *session machinery* alone (no network, no kernel), against
another checkout's engine in the same run.

    python benchmarks/session_cost.py [--baseline-tree ../main] [--repeats 3] [--cpu 0]

The engine runs the built-in ``double11`` model unchanged except for its connection pool, which is
replaced by ``fakepeer.FakePool``, an in-process fake that answers every request on the next loop
iteration with a small JSON document. So what is measured is what the engine itself costs: session
start (RNG, state), the walk, rendering, think-time scheduling, patience, recording. Two phases,
each in a fresh child process pinned to ``--cpu``, alternating this tree and the baseline's:

* ``requests``: think times scaled by 1/1000 (7 ms pages), 2,000 sessions/s for 5 s: CPU µs per
  request (session starts included, ~1 per 20 requests);
* ``sessions``: real think times, 20,000 sessions/s for 4 s (80,000 live sessions, each waiting in
  its first think time): CPU µs per session start (with its first request) and **resident memory
  per live session** ((peak RSS − RSS before) / live sessions).

CPU time is noisy on a shared machine (a busy sibling core slows this one): compare the ratios
of rows measured minutes apart, repeat, and read the spread.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, os, resource, sys, time
sys.path.insert(0, sys.argv[1])
phase = sys.argv[2]
from pytest_peakchaos.load import Constant, run_load
from pytest_peakchaos.profiles import load_profile

sys.path.append(sys.argv[3])
import fakepeer  # this tree's benchmarks/: the same fake for both trees
fakepeer.install()
if phase == "requests":
    prof = load_profile("double11").with_(think_scale=0.001, shape=Constant(1.0, 2000.0))
    duration = 5.0
else:
    prof = load_profile("double11").with_(think_scale=1.0, shape=Constant(1.0, 20000.0))
    duration = 4.0


def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1024


rss0 = rss()
t = time.process_time()
res = run_load("http://127.0.0.1:9", prof, duration=duration, seed=1, max_requests=10**9, max_sessions=None,
               concurrency_cap=10**7, request_timeout_s=10, connections=1000)
cpu = time.process_time() - t
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
s = res.sessions
live = s.started - s.completed - s.abandoned
print(json.dumps({"cpu_s": cpu, "requests": res.total.count, "started": s.started, "live": live,
                  "us_per_request": cpu / max(1, res.total.count) * 1e6, "us_per_session": cpu / max(1, s.started) * 1e6,
                  "kib_per_live": (peak - rss0) / live if live else None, "generator_worst_ms": res.generator.worst_ms()}))
"""


def run(tree: Path, phase: str, cpu: int) -> dict[str, Any]:
    argv = [sys.executable, "-c", CHILD, str(tree), phase, str(Path(__file__).resolve().parent)]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=300,
                          preexec_fn=lambda: os.sched_setaffinity(0, {cpu}))
    if proc.returncode != 0:
        raise SystemExit(f"{tree}: {phase} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--baseline-tree", type=Path, help="another checkout (e.g. ../main) measured in the same run")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--cpu", type=int, default=0)
    ap.add_argument("--json", help="write the rows here")
    args = ap.parse_args()
    trees = [("this tree", ROOT)] + ([("baseline", args.baseline_tree.resolve())] if args.baseline_tree else [])
    rows = []
    for rep in range(args.repeats):
        for phase in ("requests", "sessions"):
            for name, tree in trees:
                with open("/proc/loadavg") as f:
                    load = f.read().split()[0]
                r = run(tree, phase, args.cpu)
                r.update(tree=name, phase=phase, repeat=rep + 1, load=float(load))
                rows.append(r)
                if phase == "requests":
                    print(f"{rep + 1} requests  {name:<10} {r['us_per_request']:6.1f} µs CPU/request "
                          f"({r['requests']:,} requests, {r['started']:,} sessions)  load {load}", flush=True)
                else:
                    print(f"{rep + 1} sessions  {name:<10} {r['us_per_session']:6.1f} µs CPU/session start, "
                          f"{r['kib_per_live']:.2f} KiB/live session ({r['live']:,} live)  load {load}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
