"""Stack lifecycle for real: nothing left after a session, SIGKILLed runs swept, reuse by another project."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from pytest_peakchaos.stack import labels
from pytest_peakchaos.stack.reaper import sweep

pytestmark = pytest.mark.docker

BASE = os.environ.get("PEAKCHAOS_BASE_IMAGE", "peakchaos/python-base:bookworm")

# A little two-service system of its own: "legacy" serves files, "cloud" forwards to it.
CLOUD_SCRIPT = textwrap.dedent(
    """
    import http.server, os, urllib.request
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path == "/health":
                body = b"ok"
            else:
                with urllib.request.urlopen(os.environ["BACKEND"] + "/", timeout=5) as r:
                    body = r.read()
            self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
            self.wfile.write(body)
        def log_message(self, *a): pass
    http.server.ThreadingHTTPServer(("", 8000), H).serve_forever()
    """
)
HEALTH = "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:{port}/', timeout=2)"


def tiny_compose(base: str = BASE) -> str:
    return textwrap.dedent(
        f"""
        name: tiny
        services:
          backend:
            image: {base}
            command: ["python3", "-m", "http.server", "9000", "--directory", "/etc"]
            expose: ["9000"]
            healthcheck:
              test: ["CMD", "python3", "-c", "{HEALTH.format(port=9000)}"]
              interval: 300ms
              retries: 50
          front:
            image: {base}
            command: ["python3", "-c", {json.dumps(CLOUD_SCRIPT)}]
            environment:
              BACKEND: http://backend:9000
            ports: ["8000"]
            depends_on:
              backend: {{condition: service_healthy}}
        x-peakchaos:
          links:
            - {{service: backend, port: 9000, client: front, env: BACKEND}}
        """
    )


def resources(client: Any, run_id: str) -> dict[str, list[str]]:
    flt = {"label": f"{labels.RUN}={run_id}"}
    return {
        "containers": sorted(c.name for c in client.containers.list(all=True, filters=flt)),
        "networks": sorted(n.name for n in client.networks.list(filters=flt)),
        "volumes": sorted(v.name for v in client.volumes.list(filters=flt)),
    }


def test_reuse_from_another_project_and_nothing_left_after_the_session(
    pytester: pytest.Pytester, docker_engine: Any
) -> None:
    """A separate little project uses the fixtures through -p peakchaos and its own ini settings."""
    pytester.path.joinpath("stack.yml").write_text(tiny_compose())
    pytester.makeini(
        textwrap.dedent(
            """
            [pytest]
            peakchaos_stack = stack.yml
            peakchaos_startup_timeout = 90s
            filterwarnings = error
            """
        )
    )
    pytester.makeconftest(
        textwrap.dedent(
            """
            import pathlib
            def pytest_peakchaos_stack_started(stack, config):
                with pathlib.Path("run_id.txt").open("a") as f:  # a rebuilt stack is started again
                    f.write(stack.run_id + "\\n")
            """
        )
    )
    pytester.makepyfile(
        textwrap.dedent(
            """
            import time, urllib.request
            from pytest_peakchaos import latency, down

            def get(url):
                t0 = time.perf_counter()
                with urllib.request.urlopen(url, timeout=10) as r:
                    r.read()
                return time.perf_counter() - t0

            def test_front_reaches_backend_through_toxiproxy(peakchaos_stack, legacy_link):
                front = peakchaos_stack.url("front")
                base = min(get(front + "/") for _ in range(3))
                with legacy_link.apply(latency(ms=200)):
                    slow = min(get(front + "/") for _ in range(3))
                assert slow - base > 0.17

            def test_link_reset_between_tests(peakchaos_stack, legacy_link, toxiproxy):
                assert legacy_link.proxy.toxics() == {} or legacy_link.proxy.toxics() == []
                assert "backend" in toxiproxy.proxies()

            def test_faults_left_on_by_a_failing_test(peakchaos_stack):
                peakchaos_stack.link().activate(latency(ms=700))
                peakchaos_stack.link().activate(down())
                assert False, "fails with two faults on the link"

            def test_no_fault_survives_into_the_next_test(peakchaos_stack):
                assert list(peakchaos_stack.link().proxy.toxics()) == []
                assert peakchaos_stack.toxiproxy.proxies()["backend"].enabled
                assert peakchaos_stack.link().active == []

            def test_legacy_dies_mid_experiment(peakchaos, peakchaos_stack):
                # legacy is the system under test's part: its death is a verdict, never a harness error
                import threading
                def ledger():  # legacy's system of record: readable while legacy lives
                    with urllib.request.urlopen(peakchaos_stack.url("backend", 9000) + "/", timeout=2) as r:
                        r.read()
                    return []
                assert ledger() == []
                backend = peakchaos_stack.container("backend")
                threading.Timer(1.2, backend.kill).start()  # in the fault
                result = peakchaos.run(profile="normal", duration="3s", scale=0.2, settle="0.5s", request_timeout="1s",
                                       faults=[latency(ms=50, start="1s", length="1.5s")], ledger=ledger)
                backend.reload()
                assert backend.status == "exited"
                assert result.verdict == "not graceful", result.summary()
                row = result.check("ledger")
                assert not row.passed and "the ledger could not be read" in row.measured, result.summary()

            def test_toxiproxy_dies_mid_experiment(peakchaos, peakchaos_stack):
                import threading
                threading.Timer(1.5, peakchaos_stack.container("toxiproxy").kill).start()
                peakchaos.run(profile="normal", duration="4s", scale=0.2, settle="1s",
                              faults=[latency(ms=100, start="0.5s", length="3s")])

            def test_after_the_harness_broke(peakchaos_stack, legacy_link):
                # a fresh stack: another run id, a Toxiproxy that runs, a link that works
                import pathlib; first = pathlib.Path("run_id.txt").read_text().split()[0]
                assert peakchaos_stack.run_id != first
                assert peakchaos_stack.container("toxiproxy").status == "running"
                with legacy_link.apply(latency(ms=200)):
                    assert get(peakchaos_stack.url("front") + "/") > 0.17
            """
        )
    )
    t0 = time.monotonic()
    result = pytester.runpytest_subprocess("-p", "peakchaos", "-rs")
    wall = time.monotonic() - t0
    result.assert_outcomes(passed=5, failed=2)
    # a dead Toxiproxy is a harness error naming the container and its exit code, not a verdict
    result.stdout.fnmatch_lines([
        "*HarnessError: harness error (no verdict on the shop*the Toxiproxy container peakchaos-pc-*-toxiproxy is exited (exit code 137*",
    ])
    assert "graceful" not in "\n".join(l for l in result.outlines if "toxiproxy_dies" in l)
    # the next test got a rebuilt stack (once), and said so
    result.stdout.fnmatch_lines(["*[[]peakchaos[]] harness error earlier in the session: rebuilding the stack*"])
    result.stdout.fnmatch_lines(["*[[]peakchaos[]] stack rebuilt: pc-* -> pc-*"])
    # [peakchaos] lines reach the terminal even without -v (they were never printed before)
    result.stdout.fnmatch_lines(["*[[]peakchaos[]] stack pc-* up in *s"])
    run_ids = pytester.path.joinpath("run_id.txt").read_text().split()
    assert len(run_ids) == 2 and all(r.startswith("pc-") for r in run_ids), run_ids
    for run_id in run_ids:
        assert resources(docker_engine, run_id) == {"containers": [], "networks": [], "volumes": []}
    # the watch stopped the load of the 4 s run within ~2 s of Toxiproxy's death (not at its end)
    print(f"session wall {wall:.1f}s")


def test_a_sigkilled_run_is_swept_by_the_next(tmp_path: Path, docker_engine: Any) -> None:
    compose = tmp_path / "stack.yml"
    compose.write_text(tiny_compose() + "\nvolumes:\n  scratch: {}\n")
    compose.write_text(compose.read_text().replace('    ports: ["8000"]', '    ports: ["8000"]\n    volumes: ["scratch:/scratch"]'))
    script = textwrap.dedent(
        f"""
        import sys, time
        from pytest_peakchaos.stack import labels
        from pytest_peakchaos.stack.docker import start_docker_stack
        # an owner this host cannot check (a CI job in another container on the same engine):
        # only the lease can tell that it died
        labels.current_owner = lambda: labels.Owner("another-host", 1, "1")
        stack = start_docker_stack({str(compose)!r}, startup_timeout_s=90, sweep=False)
        print(stack.run_id, flush=True)
        time.sleep(600)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        run_id = proc.stdout.readline().strip()
        assert run_id.startswith("pc-"), run_id
        before = resources(docker_engine, run_id)
        assert len(before["containers"]) == 4 and before["networks"] and before["volumes"], before
        assert sweep(docker_engine, among={run_id}).runs == [], "a live owner's run is never swept"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
    assert resources(docker_engine, run_id) == before, "SIGKILL leaves the resources behind"
    from pytest_peakchaos.stack.lease import lease_states

    for _ in range(100):  # the engine sees the owner's connection close within a moment
        if lease_states(docker_engine).get(run_id) is False:
            break
        time.sleep(0.1)
    report = sweep(docker_engine, among={run_id})  # only our own run: others' are theirs to sweep
    print("\n" + report.summary())
    assert report.runs == [run_id]
    assert "lease ended" in report.summary() and " old)" in report.summary()
    assert resources(docker_engine, run_id) == {"containers": [], "networks": [], "volumes": []}


@pytest.mark.slow  # the short form is in test_a_sigkilled_run_is_swept_by_the_next (a live owner's run is spared)
def test_sweep_spares_runs_whose_owner_is_alive(tmp_path: Path, docker_engine: Any) -> None:
    from pytest_peakchaos.stack.compose import load_compose
    from pytest_peakchaos.stack.docker import DockerStack

    compose = tmp_path / "stack.yml"
    compose.write_text(tiny_compose())
    with DockerStack(load_compose(compose), startup_timeout_s=90) as stack:
        assert sweep(docker_engine, among={stack.run_id}).runs == []
        assert len(resources(docker_engine, stack.run_id)["containers"]) == 4  # 3 + the lease
    assert resources(docker_engine, stack.run_id)["containers"] == []


def test_a_link_to_a_port_nobody_listens_on_is_refused_at_start(tmp_path: Path, docker_engine: Any) -> None:
    from pytest_peakchaos.stack.base import StackError
    from pytest_peakchaos.stack.compose import load_compose
    from pytest_peakchaos.stack.docker import DockerStack

    compose = tmp_path / "stack.yml"
    text = tiny_compose().replace("{service: backend, port: 9000,", "{service: backend, port: 9001,")
    compose.write_text(text.replace("BACKEND: http://backend:9000", "BACKEND: http://backend:9001"))
    stack = DockerStack(load_compose(compose), startup_timeout_s=90)
    with pytest.raises(StackError, match=r"nothing answers on backend:9001 through Toxiproxy; backend listens on 9000"):
        stack.start()
    assert resources(docker_engine, stack.run_id) == {"containers": [], "networks": [], "volumes": []}


def test_a_missing_image_is_a_clear_error_and_leaves_nothing(tmp_path: Path, docker_engine: Any) -> None:
    from pytest_peakchaos.stack.base import StackError
    from pytest_peakchaos.stack.compose import load_compose
    from pytest_peakchaos.stack.docker import DockerStack

    compose = tmp_path / "stack.yml"
    compose.write_text(tiny_compose(base="peakchaos/does-not-exist:never"))
    stack = DockerStack(load_compose(compose), startup_timeout_s=30)
    t0 = time.monotonic()
    with pytest.raises(StackError, match="does-not-exist:never.*not present locally and could not be pulled"):
        stack.start()
    assert time.monotonic() - t0 < 60
    assert resources(docker_engine, stack.run_id) == {"containers": [], "networks": [], "volumes": []}
