"""SIGINT and SIGTERM sent to a real pytest process in the middle of an experiment (real stack).

Each case runs a little project (the tiny two-service stack of test_lifecycle) whose test runs a
90 s experiment (light load) with a latency fault from 0.5 s. Once the fault is on the link, the signal goes in;
the process must stop the load, revert the fault, tear the stack down and exit with pytest's
interrupted code (2), and its next test must not run. All cases run at once (one stack each) to keep
the wall time near that of one.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from pytest_peakchaos.stack.reaper import sweep

from .test_lifecycle import resources, tiny_compose

pytestmark = pytest.mark.docker

CONFTEST = textwrap.dedent(
    """
    import json, os, pathlib, time
    import pytest_peakchaos.load.engine as engine

    _new_loop = engine.new_event_loop

    def new_event_loop(use_uvloop=None):
        loop = _new_loop(False if os.environ.get("PC_NO_UVLOOP") else use_uvloop)
        pathlib.Path("loop.txt").write_text(type(loop).__module__)
        return loop

    engine.new_event_loop = new_event_loop

    def pytest_peakchaos_stack_started(stack, config):
        info = {"run": stack.run_id, "api": stack.toxiproxy.api_url}
        pathlib.Path("started.json").write_text(json.dumps(info))

    def pytest_peakchaos_stack_stopping(stack, config):
        proxy = stack.toxiproxy.proxy("backend")
        toxics = [t.name for t in proxy.toxics()]
        enabled = stack.toxiproxy.proxies()["backend"].enabled
        info = {"t": time.time(), "toxics": toxics, "enabled": enabled}
        pathlib.Path("stopping.json").write_text(json.dumps(info))
    """
)

TESTS = textwrap.dedent(
    """
    import pathlib
    from pytest_peakchaos import latency

    def test_experiment(peakchaos):
        peakchaos.run(profile="normal", duration="90s", seed=1, settle="1s", scale=0.2,
                      faults=[latency(ms=300, start="0.5s", length="89s")])

    def test_next():
        pathlib.Path("next-ran.txt").write_text("yes")
    """
)


@dataclass
class Case:
    name: str
    sig: signal.Signals
    uvloop: bool
    twice: bool = False
    path: Path = Path()
    proc: Any = None
    info: dict[str, Any] = field(default_factory=dict)
    sent: float = 0.0
    sent_wall: float = 0.0
    exited: float = 0.0
    out: str = ""


def cases(*names: str) -> list[Case]:
    every = {
        "sigint-uvloop": (signal.SIGINT, True, False),
        "sigterm-uvloop": (signal.SIGTERM, True, False),
        "sigint-asyncio": (signal.SIGINT, False, False),
        "sigterm-asyncio": (signal.SIGTERM, False, False),
        "sigint-twice": (signal.SIGINT, True, True),
        "sigterm-twice": (signal.SIGTERM, False, True),
    }
    return [Case(n, every[n][0], every[n][1], twice=every[n][2]) for n in names]


def _toxics(api: str) -> list[Any]:
    with urllib.request.urlopen(f"{api}/proxies/backend/toxics", timeout=2) as resp:
        found: list[Any] = json.loads(resp.read().decode())
        return found


def _start(case: Case, root: Path) -> None:
    case.path = root / case.name
    case.path.mkdir()
    (case.path / "stack.yml").write_text(tiny_compose())
    (case.path / "conftest.py").write_text(CONFTEST)
    (case.path / "test_sig.py").write_text(TESTS)
    (case.path / "pytest.ini").write_text("[pytest]\npeakchaos_stack = stack.yml\npeakchaos_startup_timeout = 90s\n")
    env = dict(os.environ)
    env.pop("PYTEST_ADDOPTS", None)
    if not case.uvloop:
        env["PC_NO_UVLOOP"] = "1"
    case.proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "peakchaos", "-p", "no:cacheprovider", "test_sig.py"],
        cwd=case.path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


def _wait_fault_on(case: Case, deadline: float) -> None:
    started = case.path / "started.json"
    while time.monotonic() < deadline and case.proc.poll() is None:
        if started.exists():
            try:
                case.info = json.loads(started.read_text())
                if _toxics(case.info["api"]):
                    time.sleep(0.5)  # the load in full swing
                    return
            except (OSError, ValueError):
                pass
        time.sleep(0.1)
    out = case.proc.stdout.read() if case.proc.poll() is not None else ""
    raise AssertionError(f"{case.name}: the fault never came on the link; output:\n{out}")


def test_signals_stop_load_revert_faults_tear_down_and_exit_2(tmp_path: Path, docker_engine: Any) -> None:
    """Short form: both signals, both event loops, and a forced second signal."""
    check_cases(cases("sigint-uvloop", "sigterm-asyncio", "sigterm-twice"), tmp_path, docker_engine)


@pytest.mark.slow
def test_every_signal_on_every_loop(tmp_path: Path, docker_engine: Any) -> None:
    check_cases(
        cases("sigint-uvloop", "sigterm-uvloop", "sigint-asyncio", "sigterm-asyncio", "sigint-twice"),
        tmp_path, docker_engine,
    )


def check_cases(CASES: list[Case], tmp_path: Path, docker_engine: Any) -> None:
    for case in CASES:
        _start(case, tmp_path)
    try:
        deadline = time.monotonic() + 150
        for case in CASES:  # one at a time, so that each teardown has the machine to itself
            _wait_fault_on(case, deadline)
            case.sent, case.sent_wall = time.monotonic(), time.time()
            case.proc.send_signal(case.sig)
            if case.twice:
                time.sleep(0.3)
                case.proc.send_signal(case.sig)
            for _ in range(600):
                if case.proc.poll() is not None:
                    break
                time.sleep(0.05)
            case.exited = time.monotonic()
            case.out, _ = case.proc.communicate(timeout=60)
    finally:
        for case in CASES:
            if case.proc is not None and case.proc.poll() is None:
                case.proc.kill()
                case.proc.communicate()
    problems = []
    for case in CASES:
        run_id = case.info.get("run", "?")
        left = resources(docker_engine, run_id)
        took = case.exited - case.sent
        loop = (case.path / "loop.txt").read_text() if (case.path / "loop.txt").exists() else "?"
        print(f"{case.name}: exit {case.proc.returncode} after {took:.1f}s, loop {loop}")
        if case.twice:
            # forced: out at once, saying what is left and how to remove it; then we remove it
            ok = (case.proc.returncode == 2 and took < 5 and f"second {case.sig.name}" in case.out
                  and f"peakchaos prune --run {run_id}" in case.out)
            sweep(docker_engine, only_run=run_id)
            if not ok:
                problems.append(f"{case.name}: rc={case.proc.returncode} took {took:.1f}s\n{case.out}")
            continue
        stopping = json.loads((case.path / "stopping.json").read_text()) if (case.path / "stopping.json").exists() else {}
        to_teardown = stopping.get("t", float("inf")) - case.sent_wall
        checks = {
            "exit code 2": case.proc.returncode == 2,
            "faults off, teardown begun within 5 s": to_teardown < 5.0,  # ~1.5 s on an idle machine
            "exit within 30 s": took < 30,
            "no toxic left at teardown": stopping.get("toxics") == [] and stopping.get("enabled") is True,
            "nothing labelled left": left == {"containers": [], "networks": [], "volumes": []},
            "next test did not run": not (case.path / "next-ran.txt").exists(),
            "says so": f"interrupted by {case.sig.name}" in case.out,
            "no EBUSY": "Device or resource busy" not in case.out,
            "loop as asked": ("uvloop" in loop) == case.uvloop,
        }
        print(f"  teardown began {to_teardown:.2f}s after the signal")
        bad = [k for k, v in checks.items() if not v]
        if bad:
            problems.append(f"{case.name}: {', '.join(bad)} (teardown +{to_teardown:.1f}s, exit +{took:.1f}s)\n{case.out}")
    assert not problems, "\n\n".join(problems)
