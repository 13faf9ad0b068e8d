"""Harness health for real: a load worker or the Docker engine dying mid-run is a harness error
(never a verdict on the shop), faults are reverted, nothing hangs, and what is left is named."""

from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from pytest_peakchaos.stack.reaper import sweep

from ..conftest import unavailable
from .test_lifecycle import resources, tiny_compose

pytestmark = pytest.mark.docker

INI = textwrap.dedent(
    """
    [pytest]
    peakchaos_stack = stack.yml
    peakchaos_startup_timeout = 90s
    """
)
CONFTEST = textwrap.dedent(
    """
    import pathlib
    def pytest_peakchaos_stack_started(stack, config):
        with pathlib.Path("run_id.txt").open("a") as f:
            f.write(stack.run_id + "\\n")
    """
)
# Runs in the inner session: waits until the run's fault is on (the load runs), then `then()`.
WHEN_RUNNING = textwrap.dedent(
    """
    import json, pathlib, threading, time
    from pytest_peakchaos import latency

    BROKEN_AT = []  # when `then` broke the harness (this process's monotonic clock)

    def when_running(link, then):
        def wait():
            deadline = time.monotonic() + 90
            while not link.active and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(0.5)
            BROKEN_AT.append(time.monotonic())
            then()
        threading.Thread(target=wait, daemon=True).start()

    def run_and_record(peakchaos, link, record, **kwargs):
        t0 = time.monotonic()
        try:
            peakchaos.run(profile="normal", scale=0.2, settle="1s", **kwargs)
        finally:  # before the fixtures reset anything: did the run itself revert its fault?
            end = time.monotonic()
            pathlib.Path(record).write_text(json.dumps({
                "seconds": end - t0, "after_break": end - BROKEN_AT.pop() if BROKEN_AT else None,
                "toxics": list(link.proxy.toxics()), "active": len(link.active),
            }))
    """
)


class SocketForwarder:
    """A unix socket that relays every connection to the real engine's socket, until :meth:`close`
    cuts them and removes the socket: to the client, the engine is gone.

    Attach connections (the run's lease holds one) stay open until :meth:`close_all`: the real
    engine is not gone, and a lease that ended would let a neighbour session's sweep remove the
    stack mid-test (the owner model at work). ``peakchaos prune --run`` removes it either way."""

    def __init__(self, path: Path, target: str) -> None:
        self.path, self.target = path, target
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(str(path))
        self.server.listen(64)
        self.server.settimeout(0.1)
        self.closed = threading.Event()
        self.lock = threading.Lock()
        self.conns: list[socket.socket] = []
        self.kept: list[socket.socket] = []  # attach connections (and their upstreams)
        self.relayed = 0
        self.thread = threading.Thread(target=self._accept, name="engine-forwarder", daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while not self.closed.is_set():
            try:
                client, _ = self.server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                upstream.connect(self.target)
            except OSError:
                client.close()
                continue
            with self.lock:
                if self.closed.is_set():
                    client.close()
                    upstream.close()
                    return
                self.conns += [client, upstream]
                self.relayed += 1
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, request: bool) -> None:
        try:
            first = True
            while data := src.recv(65536):
                if request and first and b"/attach" in data.split(b"\r\n", 1)[0]:
                    with self.lock:
                        self.kept += [src, dst]
                first = False
                dst.sendall(data)
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    @staticmethod
    def _cut(conns: list[socket.socket]) -> None:
        for conn in conns:
            for step in (lambda c: c.shutdown(socket.SHUT_RDWR), lambda c: c.close()):
                try:
                    step(conn)
                except OSError:
                    pass

    def close(self) -> None:
        with self.lock:
            self.closed.set()
            self.server.close()
            self.path.unlink(missing_ok=True)
            self._cut([c for c in self.conns if c not in self.kept])
        self.thread.join(2.0)

    def close_all(self) -> None:
        self.close()
        with self.lock:
            self._cut(self.kept)


TESTS = textwrap.dedent(
    """
    import os, pathlib, signal, urllib.request
    from helpers import latency, run_and_record, when_running
    from pytest_peakchaos.load.api import worker_pids

    def test_a_load_worker_dies(peakchaos, peakchaos_stack):
        link = peakchaos_stack.link()
        def kill():
            pid = worker_pids()[1]
            pathlib.Path("victim.txt").write_text(str(pid))
            os.kill(pid, signal.SIGKILL)
        when_running(link, kill)
        run_and_record(peakchaos, link, "after-worker.json", duration="8s", workers=2,
                       faults=[latency(ms=100, start="0.5s", length="7s")])

    def test_the_same_stack_serves_the_next_test(peakchaos_stack, legacy_link):
        assert pathlib.Path("run_id.txt").read_text().split() == [peakchaos_stack.run_id]
        with urllib.request.urlopen(peakchaos_stack.url("front") + "/", timeout=10) as r:
            assert r.status == 200
        assert worker_pids() == {}

    def test_the_engine_goes_away_mid_run(peakchaos, peakchaos_stack):
        link = peakchaos_stack.link()
        when_running(link, lambda: pathlib.Path("close-now").write_text("1"))
        run_and_record(peakchaos, link, "after-engine.json", duration="8s",
                       faults=[latency(ms=100, start="0.5s", length="7s")])

    def test_after_the_engine_went_away(peakchaos_stack):
        raise AssertionError("must not run: the stack cannot be rebuilt without an engine")
    """
)


def _run_ids(path: Path) -> list[str]:
    file = path / "run_id.txt"
    return file.read_text().split() if file.exists() else []


def _real_engine_socket() -> str:
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if not host.startswith("unix://"):
        unavailable(f"the engine forwarder relays a unix socket; DOCKER_HOST is {host}")
    return host.removeprefix("unix://")


def test_a_dead_load_worker_or_engine_is_a_harness_error(
    pytester: pytest.Pytester, docker_engine: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One session on the tiny stack, whose engine is a forwarder this test can close:

    1. ``workers=2``, worker 1 gets SIGKILL mid-run: a HarnessError naming it, its pid, the signal
       and its share; the fault is reverted at once; the same stack serves the next test;
    2. the engine goes away mid-run (the forwarder closes): a HarnessError naming the engine, the
       last error, what is left and how to prune it; nothing hangs; the next test skips saying
       why (the rebuild fails too: the engine is still gone); ``peakchaos prune --run`` cleans up.
    """
    real = _real_engine_socket()
    sock_dir = Path(tempfile.mkdtemp(prefix="pc-engine-"))  # short: unix socket paths are <= 107 bytes
    forwarder = SocketForwarder(sock_dir / "docker.sock", real)
    engine = f"unix://{forwarder.path}"
    monkeypatch.setenv("DOCKER_HOST", engine)
    pytester.path.joinpath("stack.yml").write_text(tiny_compose())
    pytester.makeini(INI)
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(helpers=WHEN_RUNNING)
    pytester.makepyfile(TESTS)
    close_now = pytester.path / "close-now"

    def closer() -> None:
        deadline = time.monotonic() + 200
        while not close_now.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        forwarder.close()

    threading.Thread(target=closer, daemon=True).start()
    try:
        t0 = time.monotonic()
        result = pytester.runpytest_subprocess("-p", "peakchaos", "-rs", timeout=240)
        wall = time.monotonic() - t0
    finally:
        forwarder.close()
        monkeypatch.delenv("DOCKER_HOST")
        kept = len(forwarder.kept)
        run_ids = _run_ids(pytester.path)
        for run_id in run_ids:  # the advice printed (`peakchaos prune --run ID`), through the real socket
            sweep(docker_engine, include_kept=True, only_run=run_id)
        forwarder.close_all()
        shutil.rmtree(sock_dir, ignore_errors=True)
    assert forwarder.relayed > 0 and kept == 2  # the session used the forwarder; the lease's attach was kept
    result.assert_outcomes(passed=1, failed=2, skipped=1)
    [run_id] = run_ids

    # 1. the load worker
    victim = int(pytester.path.joinpath("victim.txt").read_text())
    result.stdout.fnmatch_lines([
        f"*HarnessError: harness error (no verdict on the shop): load worker 1 of 2 (pid {victim}) died killed by SIGKILL"
        "*while driving share 1 of 2 (sessions 1, 3, 5, ...) at *s of the 8s run*",
    ])
    assert "graceful" not in "\n".join(line for line in result.outlines if "worker_dies" in line)
    after = json.loads(pytester.path.joinpath("after-worker.json").read_text())
    assert after["toxics"] == [] and after["active"] == 0, after  # the fault went with the run
    assert after["after_break"] < 4.0, after  # ended at the death (~0.1 s after), not at the run's end (8 s)
    with pytest.raises(ProcessLookupError):
        os.kill(victim, 0)

    # 2. the engine
    result.stdout.fnmatch_lines([
        f"*HarnessError: harness error (no verdict on the shop): the Docker engine at DOCKER_HOST={engine} does not answer "
        f"(last error: *); left behind (cannot be removed while the engine is unreachable): stack {run_id}: "
        f"* container(s) (peakchaos-{run_id}-*); network(s) peakchaos-{run_id}*. Once the engine answers again, "
        f"remove them with: peakchaos prune --run {run_id}*",
    ])
    assert "graceful" not in "\n".join(line for line in result.outlines if "goes_away" in line)
    # the next test: the rebuild is tried, fails (no engine), and the skip names the harness error
    result.stdout.fnmatch_lines([
        "SKIPPED*the harness broke earlier in the session*the Docker engine at*rebuilding the stack failed too*",
    ])
    # teardown at session end says what it could not remove, and how to
    result.stdout.fnmatch_lines([f"*[[]peakchaos[]] teardown of {run_id} impossible: the Docker engine at*prune --run {run_id}*"])
    after = json.loads(pytester.path.joinpath("after-engine.json").read_text())
    assert after["toxics"] == [] and after["active"] == 0, after  # Toxiproxy still answers: fault reverted
    assert after["after_break"] < 5.0, after  # the watch ended the run (~1.5 s after), not its 8 s + settle
    assert wall < 150, wall  # nothing hung
    assert resources(docker_engine, run_id) == {"containers": [], "networks": [], "volumes": []}
