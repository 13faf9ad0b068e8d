"""The `peakchaos` command line for real: doctor's verdict, and --peakchaos-keep followed by prune."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from pytest_peakchaos.stack import labels

from .test_lifecycle import resources, tiny_compose

pytestmark = pytest.mark.docker
ROOT = Path(__file__).resolve().parents[2]


def peakchaos(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest_peakchaos.cli", *args],
        capture_output=True, text=True, timeout=120, cwd=ROOT, env={**os.environ, **(env or {})}, check=False,
    )


def test_doctor_passes_when_everything_is_here(docker_engine: Any) -> None:
    out = peakchaos("doctor")
    print(out.stdout)
    assert out.returncode == 0, out.stdout + out.stderr
    for name in ("docker engine", "toxiproxy image", "stack", "base of legacy"):
        assert any(line.startswith("  [ok  ] " + name) for line in out.stdout.splitlines()), name
    assert "everything the demo needs is here" in out.stdout


def test_doctor_fails_and_says_what_is_missing(tmp_path: Path) -> None:
    out = peakchaos("doctor", env={"DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock"})
    assert out.returncode == 1
    assert "[MISS] docker engine" in out.stdout and "make setup" in out.stdout
    out = peakchaos("doctor", "--toxiproxy-image", "peakchaos/no-such-toxiproxy:0")
    assert out.returncode == 1
    assert "[MISS] toxiproxy image" in out.stdout and "peakchaos/no-such-toxiproxy:0 not present" in out.stdout


def test_keep_leaves_the_stack_up_and_prune_removes_it(pytester: pytest.Pytester, docker_engine: Any) -> None:
    pytester.path.joinpath("stack.yml").write_text(tiny_compose())
    pytester.makeconftest(
        textwrap.dedent(
            """
            import pathlib
            def pytest_peakchaos_stack_started(stack, config):
                pathlib.Path("run_id.txt").write_text(stack.run_id)
            """
        )
    )
    pytester.makepyfile("def test_up(peakchaos_stack):\n    assert peakchaos_stack.url('front')\n")
    result = pytester.runpytest_subprocess("-p", "peakchaos", "--peakchaos-stack", "stack.yml", "--peakchaos-keep")
    result.assert_outcomes(passed=1)
    run_id = pytester.path.joinpath("run_id.txt").read_text().strip()
    try:
        result.stdout.fnmatch_lines([f"*peakchaos stack {run_id}*", "*front:8000 -> http://127.0.0.1:*",
                                     f"*remove with: peakchaos prune --run {run_id}*"])
        kept = resources(docker_engine, run_id)
        assert len(kept["containers"]) == 4 and kept["networks"], kept  # front, backend, toxiproxy, the run's lease
        for c in docker_engine.containers.list(filters={"label": f"{labels.RUN}={run_id}"}):
            assert c.labels[labels.KEEP] == "1"
        # an ordinary sweep spares kept runs even though their owner process is gone
        out = peakchaos("prune")
        assert out.returncode == 0
        assert len(resources(docker_engine, run_id)["containers"]) == 4  # kept: services, Toxiproxy and the (ended) lease all stay
    finally:
        out = peakchaos("prune", "--run", run_id)
    print(out.stdout)
    assert out.returncode == 0 and run_id in out.stdout
    assert resources(docker_engine, run_id) == {"containers": [], "networks": [], "volumes": []}
