"""``benchmarks/load.py --think real --fake-peer``: the engine alone, in one process and in spawned
workers. Not a timed test: it checks that the fake peer answers every request (a worker that kept
the real pool would connect to 127.0.0.1:9 and be refused) and that the row reports what it ran."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("workers", [1, 2])
def test_fake_peer_row(tmp_path: Path, workers: int) -> None:
    out = tmp_path / "row.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "load.py"), "--think", "real", "--fake-peer", "--rates", "200",
         "--duration", "2", "--rounds", "1", "--workers", str(workers), "--json", str(out)],
        capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "no peer (fakepeer.FakePool" in proc.stdout
    report = json.loads(out.read_text())
    assert report["fake_peer"] is True and report["workers"] == workers
    (row,) = report["rows"]
    assert row["tool"] == "peakchaos"  # no Locust or k6 against a fake pool
    assert row["started"] >= 200 and row["requests"] >= row["started"]
    assert row["errors"] == 0, row
