"""pytest-xdist, for real: ``pytest -n 2`` over chaos tests on the reference shop, in both modes.

* per-worker: each worker starts, owns and removes its own stack (distinct run ids, nothing left);
* shared: the controller starts one stack, workers use it, experiments on its link never overlap
  in time (a cross-process lock), the controller removes it at the end; one report for the session.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import docker  # noqa: F401 - imported before pytester snapshots sys.modules (a re-import breaks requests' cookie jar)
import pytest

from pytest_peakchaos.stack import labels

from ..conftest import require_docker

pytestmark = pytest.mark.docker
ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "compose" / "shop.yml"

SUITE = '''
import json, os, time
import pytest
from pytest_peakchaos import latency

@pytest.mark.parametrize("i", range({n}))
def test_chaos(peakchaos, peakchaos_stack, legacy_link, i):  # legacy_link: the link's lock for the whole test
    t0 = time.time()
    r = peakchaos.run(profile="normal", duration="3s", scale=0.3, faults=[latency(ms=50, start="1s", length="1s")])
    t1 = time.time()
    with open({log!r}, "a") as fh:
        fh.write(json.dumps({{"worker": os.environ.get("PYTEST_XDIST_WORKER"), "run": peakchaos_stack.run_id,
                             "t0": t0, "t1": t1, "requests": r.load.requests_sent}}) + "\\n")
    assert r.load.requests_sent > 0
'''

#: one tiny headroom search in a worker: its entry must reach the controller's report
HEADROOM_TEST = '''

def test_room(peakchaos, legacy_link):
    room = peakchaos.headroom(profile="normal", rates=(0.5, 1.0), duration="2s", max_probes=1, budget="30s", cooldown="0s")
    assert room.probes
'''


def _run(pytester: pytest.Pytester, mode: str, n: int, *, headroom: bool = False) -> tuple[list[dict[str, object]], pytest.RunResult]:
    pytest.importorskip("xdist")
    log = pytester.path / "runs.jsonl"
    pytester.makepyfile(test_suite=SUITE.format(n=n, log=str(log)) + (HEADROOM_TEST if headroom else ""))
    result = pytester.runpytest_subprocess(
        "-p", "peakchaos", "-n", "2", "--peakchaos-stack", str(COMPOSE), f"--peakchaos-xdist={mode}",
        "--peakchaos-report", str(pytester.path / "reports"), "--peakchaos-startup-timeout=240s",
        timeout=600,
    )
    rows = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return rows, result


def _leftovers(run_ids: set[str]) -> list[str]:
    client = require_docker()
    try:
        found = []
        for rid in run_ids:
            found += [c.name for c in client.containers.list(all=True, filters={"label": f"{labels.RUN}={rid}"})]
            found += [n.name for n in client.networks.list(filters={"label": f"{labels.RUN}={rid}"})]
        return found
    finally:
        client.close()


def test_per_worker_mode_gives_each_worker_its_own_stack(pytester: pytest.Pytester) -> None:
    rows, result = _run(pytester, "per-worker", 2)
    assert result.ret == 0, result.stdout.str()[-3000:]
    workers = {r["worker"] for r in rows}
    runs = {r["run"] for r in rows}
    # one stack per worker that ran tests, never shared between workers
    assert len(runs) == len(workers) >= 1
    for w in workers:
        assert len({r["run"] for r in rows if r["worker"] == w}) == 1
    assert _leftovers({str(r) for r in runs}) == []
    doc = json.loads((pytester.path / "reports" / "peakchaos.json").read_text())
    assert len(doc["runs"]) == 2  # the controller wrote one report with both workers' runs


def test_shared_mode_serialises_experiments_on_one_stack(pytester: pytest.Pytester) -> None:
    rows, result = _run(pytester, "shared", 4, headroom=True)
    assert result.ret == 0, result.stdout.str()[-3000:]
    assert len(rows) == 4
    assert len({r["run"] for r in rows}) == 1, rows  # one stack, started by the controller
    assert len({r["worker"] for r in rows}) == 2, rows  # both workers ran experiments
    spans = sorted((float(r["t0"]), float(r["t1"])) for r in rows)
    for (a0, a1), (b0, b1) in zip(spans, spans[1:]):
        assert a1 <= b0, f"two experiments faulted the link at once: {spans}"
    assert _leftovers({str(rows[0]["run"])}) == []
    doc = json.loads((pytester.path / "reports" / "peakchaos.json").read_text())
    assert len(doc["runs"]) == 4
    # the worker's headroom search reached the controller: in the report and the terminal summary
    assert [h["test"] for h in doc.get("headroom", [])] == ["test_suite.py::test_room"], doc.get("headroom")
    assert len(doc["headroom"][0]["probes"]) == 1
    result.stdout.fnmatch_lines(["*peakchaos headroom*", "test_suite.py::test_room: *"])


def test_unknown_xdist_mode_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_x="def test_x(): pass")
    result = pytester.runpytest("-p", "peakchaos", "--peakchaos-xdist=sharded")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--peakchaos-xdist / ini peakchaos_xdist: invalid value 'sharded'; valid values: per-worker, shared*"])


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["per-worker", "shared"])
def test_acceptance_scenarios_under_two_workers(pytester: pytest.Pytester, mode: str) -> None:
    """The long form: scenarios A-D (tests/acceptance) with ``-n 2`` in each mode."""
    pytest.importorskip("xdist")
    result = pytester.runpytest_subprocess(
        "-p", "peakchaos", "-n", "2", f"--peakchaos-xdist={mode}", "--peakchaos-stack", str(COMPOSE),
        "--peakchaos-startup-timeout=240s", "--rootdir", str(ROOT), "-c", str(ROOT / "pyproject.toml"),
        str(ROOT / "tests" / "acceptance" / "test_scenarios.py"), timeout=1800,
    )
    assert result.ret == 0, result.stdout.str()[-4000:]
    result.stdout.fnmatch_lines(["*4 passed*"])
