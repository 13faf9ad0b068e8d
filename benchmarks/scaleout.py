#!/usr/bin/env python3
"""Scale-out benchmark: the same double11 model (no think time) on 1 process, 2 local worker
processes (``run_load(workers=2)``) and a 2-worker Dask ``LocalCluster`` (``run_load(cluster=...)``),
in requests/s against the same nginx on 127.0.0.1, so the overhead of going through Dask is measured.

    python benchmarks/scaleout.py [--duration 8] [--connections 100] [--json out.json]

nginx (Debian's ``nginx-light``) serves a fixed answer; see benchmarks/load.py. On a 2-core machine
nginx shares the cores with the clients, so the 2-process rows measure the split's overhead and the
merge, not linear scaling: read the ratios, not the absolute numbers. All traffic goes to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from load import Nginx, _profile  # noqa: E402  (benchmarks/load.py)


def _run(url: str, duration: float, connections: int, **kwargs: Any) -> dict[str, Any]:
    from pytest_peakchaos.load import run_load

    t = time.monotonic()
    result = run_load(url, _profile("double11", connections), duration=duration, seed=1, max_requests=10**9,
                      max_sessions=None, concurrency_cap=connections, request_timeout_s=10,
                      connections=connections, **kwargs)
    total = result.total
    return {"requests": total.count, "rps": total.count / result.elapsed_s, "p99_ms": total.p99_ms,
            "wall_s": time.monotonic() - t, "missing_shares": len(result.missing_shares)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=8.0)
    ap.add_argument("--connections", type=int, default=100)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    from distributed import LocalCluster

    rows: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="peakchaos-bench-") as tmp:
        nginx = Nginx(Path(tmp))
        try:
            rows["1 process"] = _run(nginx.url, args.duration, args.connections)
            rows["2 local processes"] = _run(nginx.url, args.duration, args.connections, workers=2)
            with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                              dashboard_address=None, silence_logs=40) as cluster:
                rows["2-worker LocalCluster"] = _run(nginx.url, args.duration, args.connections,
                                                     cluster=cluster.scheduler_address)
        finally:
            nginx.stop()
    base = rows["1 process"]["rps"]
    print(f"{'double11, no think time':<24}{'req/s':>10}{'vs 1 process':>14}{'p99 ms':>9}{'wall s':>8}")
    for name, r in rows.items():
        print(f"{name:<24}{r['rps']:>10.0f}{r['rps'] / base:>13.2f}x{r['p99_ms']:>9.1f}{r['wall_s']:>8.1f}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
