"""Run the reference shop's legacy and cloud apps as plain subprocesses on free loopback ports.

``SHOP_PYTHON`` picks the interpreter that runs the apps (default: the one running pytest), so
the same tests check another Python version, e.g. ``SHOP_PYTHON=python3.12``.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pytest
import tenacity

ROOT = Path(__file__).resolve().parents[2]
LEGACY_APP = ROOT / "fixtures" / "legacy" / "app.py"
CLOUD_APP = ROOT / "fixtures" / "cloud" / "app.py"
PYTHON = os.environ.get("SHOP_PYTHON", sys.executable)

# Configuration variables of either app: never inherited from the caller's environment.
CONFIG_VARS = {
    "HOST", "PORT", "DB_PATH", "WORKERS", "WORK_MS", "IO_MS", "PRODUCTS", "INITIAL_STOCK",
    "LEGACY_URL", "MODE", "LEGACY_TIMEOUT_MS", "RETRIES", "BREAKER_FAILS", "BREAKER_RESET_S",
    "OUTBOX_DRAIN_MS", "OUTBOX_MAX", "LEGACY_CONCURRENCY", "BULKHEAD_WAIT_MS",
    "STOCK_REFRESH_MS", "STOCK_REFRESH_BATCH", "STOCK_TTL_MS", "CARTS_MAX",
    "CLOUD_MUTANT",
}  # fmt: skip


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def app_env(**overrides: object) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in CONFIG_VARS}
    env["PYTHONUNBUFFERED"] = "1"
    env["HOST"] = "127.0.0.1"
    env.update({k: str(v) for k, v in overrides.items()})
    return env


@dataclass
class Reply:
    status: int
    body: Any
    headers: dict[str, str]
    seconds: float


def call(
    port: int,
    method: str,
    path: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
    timeout: float = 5.0,
) -> Reply:
    """One request on its own connection (closed before returning)."""
    data = None if body is None else json.dumps(body).encode()
    hdrs = {"Content-Type": "application/json"} if data is not None else {}
    hdrs.update(headers or {})
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    started = time.perf_counter()
    try:
        conn.request(method, path, body=data, headers=hdrs)
        resp = conn.getresponse()
        raw = resp.read()
        seconds = time.perf_counter() - started
        assert resp.getheader("Content-Type") == "application/json", resp.getheaders()
        return Reply(
            resp.status,
            json.loads(raw) if raw else None,
            {k.lower(): v for k, v in resp.getheaders()},
            seconds,
        )
    finally:
        conn.close()


class App:
    """One running app: a subprocess with its log in a file."""

    def __init__(self, name: str, script: Path, env: dict[str, str], log_path: Path) -> None:
        self.name = name
        self.port = int(env["PORT"])
        self.env = env
        self.log_path = log_path
        self._log: IO[bytes] = open(log_path, "ab")  # noqa: SIM115 - closed in close()
        self.proc = subprocess.Popen(
            [PYTHON, str(script)],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=str(log_path.parent),
        )
        self.stopped = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_healthy(self, seconds: float = 15.0) -> None:
        def probe() -> None:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.proc.returncode}:\n{self.log()}"
                )
            assert call(self.port, "GET", "/health", timeout=1.0).status == 200

        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_delay(seconds),
            wait=tenacity.wait_fixed(0.05),
            retry=tenacity.retry_if_exception_type((OSError, AssertionError)),
            reraise=True,
        )
        retrying(probe)

    def get(self, path: str, timeout: float = 5.0) -> Reply:
        return call(self.port, "GET", path, timeout=timeout)

    def post(
        self,
        path: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
        timeout: float = 5.0,
    ) -> Reply:
        return call(self.port, "POST", path, body, headers, timeout)

    def delete(self, path: str, timeout: float = 5.0) -> Reply:
        return call(self.port, "DELETE", path, timeout=timeout)

    def stats(self) -> Any:
        reply = self.get("/stats")
        assert reply.status == 200
        return reply.body

    def pause(self) -> None:
        """SIGSTOP: the process hangs; the kernel still accepts connections for it."""
        self.proc.send_signal(signal.SIGSTOP)
        self.stopped = True

    def resume(self) -> None:
        self.proc.send_signal(signal.SIGCONT)
        self.stopped = False

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)

    def terminate(self, timeout: float = 5.0) -> int:
        """SIGTERM (like docker stop) and wait; returns the exit code."""
        if self.stopped and self.proc.poll() is None:
            self.resume()
        if self.proc.poll() is None:
            self.proc.terminate()
        return self.proc.wait(timeout=timeout)

    def close(self) -> None:
        try:
            if self.proc.poll() is None:
                try:
                    self.terminate()
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(timeout=10)
        finally:
            self._log.close()


class Shop:
    """Starts apps for one test and always stops them."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.apps: list[App] = []

    def start(self, name: str, script: Path, env: dict[str, str], wait: bool = True) -> App:
        app = App(name, script, env, self.dir / f"{name}-{len(self.apps)}.log")
        self.apps.append(app)
        if wait:
            app.wait_healthy()
        return app

    def legacy(self, db: str = "legacy.db", port: int | None = None, **env: object) -> App:
        settings: dict[str, object] = {
            "PORT": port or free_port(),
            "DB_PATH": self.dir / db,
            "WORK_MS": 1,
            "IO_MS": 1,
            "PRODUCTS": 50,
            "INITIAL_STOCK": 1000,
        }
        settings.update(env)
        return self.start("legacy", LEGACY_APP, app_env(**settings))

    def cloud(self, legacy: App, **env: object) -> App:
        settings: dict[str, object] = {
            "PORT": free_port(),
            "LEGACY_URL": legacy.url,
            "PRODUCTS": 50,
            "BREAKER_RESET_S": 0.5,
            "OUTBOX_DRAIN_MS": 100,
        }
        settings.update(env)
        return self.start("cloud", CLOUD_APP, app_env(**settings))

    def close(self) -> None:
        for app in reversed(self.apps):
            app.close()


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[Shop]:
    launcher = Shop(tmp_path)
    try:
        yield launcher
    finally:
        launcher.close()
