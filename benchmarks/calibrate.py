#!/usr/bin/env python3
"""Calibration benchmark: throughput (lines/s) and peak memory of ``peakchaos calibrate`` on
synthetic access logs of growing size (default 0.25 GB and 1 GB), to show memory stays flat.

    python benchmarks/calibrate.py [--sizes 0.25,1.0] [--cpu 0] [--json out.json]

Each log is generated from a known Markov model (seeded; pytest_peakchaos.calibrate.synth) into a
temporary file, calibrated in a fresh child process pinned to one core (``--cpu``), and deleted
afterwards. Peers measured in the same child on the same file: reading the lines (``for line in
f``) and parsing them without sessionising, so the ratios say where the time goes even on a shared
machine. Peak memory is the child's maximum RSS (``ru_maxrss``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MODEL = {
    "entry": {"home": 0.5, "search": 0.3, "product": 0.2},
    "home": {"search": 0.4, "product": 0.3, "exit": 0.3},
    "search": {"product": 0.6, "search": 0.2, "exit": 0.2},
    "product": {"cart": 0.3, "search": 0.3, "product": 0.1, "exit": 0.3},
    "cart": {"checkout": 0.4, "product": 0.3, "exit": 0.3},
    "checkout": {"exit": 1.0},
}
THINK = {s: ("exponential", 8.0, 0.0, 120.0) for s in MODEL if s != "entry"}
THINK["product"] = ("lognormal", 10.0, 0.9, 300.0)

CHILD = r"""
import json, resource, sys, time
sys.path.insert(0, sys.argv[2])
path, mode = sys.argv[1], sys.argv[3]
t = time.perf_counter()
if mode == "read":
    n = 0
    with open(path, "rb") as fh:
        for _ in fh:
            n += 1
    out = {"lines": n}
elif mode == "parse":
    from pytest_peakchaos.calibrate.logs import LineErrors, read_hits
    n = sum(1 for _ in read_hits([path], LineErrors()))
    out = {"lines": n}
else:
    from pytest_peakchaos.calibrate import calibrate
    cal = calibrate(path, timeout=1800.0)
    out = {"lines": cal.lines, "sessions": cal.sessions, "states": len(cal.states), "summary": cal.summary()}
out["seconds"] = time.perf_counter() - t
out["max_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(out))
"""


def generate(path: Path, size_bytes: int) -> tuple[int, int, float]:
    from pytest_peakchaos.calibrate.synth import walk_lines, write_log

    t = time.perf_counter()
    with path.open("w") as fh:
        lines, nbytes = write_log(fh, walk_lines(MODEL, THINK, rate=60.0, duration=1e9, seed=11), max_bytes=size_bytes)
    return lines, nbytes, time.perf_counter() - t


def measure(path: Path, mode: str, cpu: int | None) -> dict[str, Any]:
    cmd = [sys.executable, "-c", CHILD, str(path), str(ROOT), mode]
    if cpu is not None and os.path.exists("/usr/bin/taskset"):
        cmd = ["taskset", "-c", str(cpu), *cmd]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=3600)
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="0.25,1.0", help="log sizes in GB (default 0.25,1.0)")
    ap.add_argument("--cpu", type=int, default=0, help="core to pin the measured child to (default 0; -1: no pinning)")
    ap.add_argument("--json", default=None, help="also write the results here")
    ap.add_argument("--dir", default=None, help="where the temporary logs go (default: the system temp dir)")
    args = ap.parse_args()
    cpu = None if args.cpu < 0 else args.cpu
    rows = []
    for gb in (float(x) for x in args.sizes.split(",")):
        with tempfile.TemporaryDirectory(dir=args.dir, prefix="peakchaos-calib-bench-") as tmp:
            path = Path(tmp) / "access.log"
            lines, nbytes, gen_s = generate(path, int(gb * 1e9))
            print(f"{gb:g} GB: {lines} lines ({nbytes / 1e9:.2f} GB) generated in {gen_s:.0f} s", flush=True)
            row: dict[str, Any] = {"gb": nbytes / 1e9, "lines": lines}
            for mode in ("read", "parse", "calibrate"):
                m = measure(path, mode, cpu)
                row[mode] = m
                print(f"  {mode:<9} {m['lines'] / m['seconds']:>10,.0f} lines/s  {m['seconds']:7.1f} s  max RSS {m['max_rss_mb']:6.1f} MB"
                      + (f"  ({m['summary']})" if "summary" in m else ""), flush=True)
            rows.append(row)
        # the temporary directory (and the log) is gone here
    print("\n| log | lines | read lines/s | parse lines/s | calibrate lines/s | calibrate / read | calibrate max RSS |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        rd, pa, ca = (r[m]["lines"] / r[m]["seconds"] for m in ("read", "parse", "calibrate"))
        print(f"| {r['gb']:.2f} GB | {r['lines']:,} | {rd:,.0f} | {pa:,.0f} | {ca:,.0f} | {ca / rd:.3f} | {r['calibrate']['max_rss_mb']:.0f} MB |")
    if len(rows) > 1:
        first, last = rows[0]["calibrate"]["max_rss_mb"], rows[-1]["calibrate"]["max_rss_mb"]
        print(f"\npeak memory {first:.0f} MB at {rows[0]['gb']:.2f} GB -> {last:.0f} MB at {rows[-1]['gb']:.2f} GB "
              f"({last / first:.2f}x for {rows[-1]['gb'] / rows[0]['gb']:.1f}x the log)")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
