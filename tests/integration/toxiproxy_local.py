"""Helpers for integration tests: a real local toxiproxy-server, a tiny upstream HTTP server, a
black-hole server, raw HTTP probes and Docker availability.

All traffic stays on 127.0.0.1. Every helper is a context manager that closes what it opened
(the project runs pytest with ``filterwarnings=error``, so a leaked socket or process fails).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import pytest

from pytest_peakchaos.toxiproxy import ToxiproxyClient
from tests.conftest import require_docker, unavailable

if TYPE_CHECKING:
    from docker import DockerClient

LOOPBACK = "127.0.0.1"
REPO_ROOT = Path(__file__).resolve().parents[2]

__all__ = [
    "LOOPBACK",
    "LocalToxiproxy",
    "RawResponse",
    "Upstream",
    "blackhole_server",
    "find_toxiproxy_server",
    "free_port",
    "http_upstream",
    "local_toxiproxy",
    "raw_get",
    "require_docker",
    "require_image",
    "unavailable",
]


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


# --------------------------------------------------------------------------- toxiproxy-server


def find_toxiproxy_server() -> Path | None:
    """``$PEAKCHAOS_TOXIPROXY_SERVER``, then ``.state/bin/toxiproxy-server`` (scripts/setup.sh), then PATH."""
    candidates: list[Path] = []
    env = os.environ.get("PEAKCHAOS_TOXIPROXY_SERVER")
    if env:
        candidates.append(Path(env))
    candidates.append(REPO_ROOT / ".state" / "bin" / "toxiproxy-server")
    on_path = shutil.which("toxiproxy-server")
    if on_path:
        candidates.append(Path(on_path))
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return path
    return None


@dataclass
class LocalToxiproxy:
    """A running toxiproxy-server subprocess bound to 127.0.0.1."""

    process: subprocess.Popen[bytes]
    port: int
    log_path: Path
    client: ToxiproxyClient

    @property
    def api_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def _stop_process(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@contextlib.contextmanager
def local_toxiproxy(binary: Path | None = None, ready_timeout_s: float = 10.0) -> Iterator[LocalToxiproxy]:
    """Start toxiproxy-server on a free 127.0.0.1 port, wait until its API answers, stop it after.

    Skips (fails under ``CI``) when no binary is found.
    """
    binary = binary or find_toxiproxy_server()
    if binary is None:
        unavailable(
            "no toxiproxy-server binary: set PEAKCHAOS_TOXIPROXY_SERVER or run the project setup "
            "(it installs .state/bin/toxiproxy-server)"
        )
    with tempfile.TemporaryDirectory(prefix="peakchaos-toxiproxy-") as tmp:
        log_path = Path(tmp) / "toxiproxy.log"
        last_error: Exception | None = None
        for _attempt in range(3):  # the free port can be taken between probe and bind
            port = free_port()
            env = {**os.environ, "LOG_LEVEL": "warn"}
            with open(log_path, "wb") as log_file:
                process = subprocess.Popen(
                    [str(binary), "-host", LOOPBACK, "-port", str(port)],
                    stdin=subprocess.DEVNULL,
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    env=env,
                )
            try:
                client = ToxiproxyClient(f"http://{LOOPBACK}:{port}", timeout=5.0)
                try:
                    client.wait_ready(ready_timeout_s)
                except Exception as exc:
                    last_error = exc
                    continue
                yield LocalToxiproxy(process=process, port=port, log_path=log_path, client=client)
                return
            finally:
                _stop_process(process)
        raise RuntimeError(f"toxiproxy-server {binary} did not start: {last_error}")


# --------------------------------------------------------------------------- upstream HTTP server


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"  # one request per connection, closed by the server
    timeout = 10  # a request held by a toxic must not pin a handler thread for ever

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        parts = urlsplit(self.path)
        query = parse_qs(parts.query)
        if parts.path.startswith("/bytes/"):
            size = int(parts.path.rsplit("/", 1)[1])
            body = _pattern(size)
        else:
            body = b"ok\n"
        delay_ms = int(query.get("delay_ms", ["0"])[0])
        if delay_ms:
            time.sleep(delay_ms / 1000)
        server: Any = self.server
        server.hits += 1
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def _pattern(size: int) -> bytes:
    chunk = bytes(range(256))
    return (chunk * (size // 256 + 1))[:size]


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    hits = 0

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # resets and truncations are what these tests provoke


@dataclass
class Upstream:
    """The stdlib upstream server: ``GET /ok`` (3 bytes), ``GET /bytes/<n>`` (n bytes)."""

    server: _QuietServer
    port: int

    @property
    def address(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    @property
    def hits(self) -> int:
        return self.server.hits

    @staticmethod
    def expected_body(size: int) -> bytes:
        return _pattern(size)


@contextlib.contextmanager
def http_upstream() -> Iterator[Upstream]:
    server = _QuietServer((LOOPBACK, 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield Upstream(server=server, port=server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@contextlib.contextmanager
def blackhole_server() -> Iterator[str]:
    """A TCP server on 127.0.0.1 that accepts connections and never answers; yields its URL."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind((LOOPBACK, 0))
    listener.listen(16)
    listener.settimeout(0.05)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept_loop() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except (TimeoutError, OSError):
                continue
            accepted.append(conn)

    thread = threading.Thread(target=accept_loop, daemon=True)
    thread.start()
    try:
        yield f"http://{LOOPBACK}:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(5)
        for conn in accepted:
            conn.close()
        listener.close()


# --------------------------------------------------------------------------- raw HTTP probe


@dataclass
class RawResponse:
    """What a raw ``GET`` saw: status, body, timings (seconds since connect) and how it ended."""

    status: int | None
    body: bytes
    received: int  # bytes received in total, headers included
    first_byte_s: float | None
    elapsed_s: float  # until EOF / error
    error: str | None  # None (clean EOF), "reset", "timeout", "refused"

    @property
    def ok(self) -> bool:
        return self.error is None and self.status == 200


def raw_get(port: int, path: str = "/ok", timeout_s: float = 5.0) -> RawResponse:
    """``GET path`` over a plain socket to 127.0.0.1:port and read until EOF, reset or timeout."""
    start = time.monotonic()
    data = bytearray()
    first: float | None = None
    error: str | None = None
    deadline = start + timeout_s
    try:
        with socket.create_connection((LOOPBACK, port), timeout=timeout_s) as sock:
            sock.sendall(f"GET {path} HTTP/1.0\r\nHost: {LOOPBACK}\r\n\r\n".encode())
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    error = "timeout"
                    break
                sock.settimeout(remaining)
                chunk = sock.recv(65536)
                if not chunk:
                    break
                if first is None:
                    first = time.monotonic() - start
                data += chunk
    except ConnectionRefusedError:
        error = "refused"
    except ConnectionResetError:
        error = "reset"
    except TimeoutError:
        error = "timeout"
    elapsed = time.monotonic() - start
    status: int | None = None
    body = b""
    head, sep, rest = bytes(data).partition(b"\r\n\r\n")
    body = rest if sep else b""
    fields = head.split(b"\r\n", 1)[0].split()
    if len(fields) >= 2 and fields[0].startswith(b"HTTP/") and fields[1].isdigit():
        status = int(fields[1])
    return RawResponse(status, body, len(data), first, elapsed, error)


# --------------------------------------------------------------------------- docker


def require_image(client: DockerClient, image: str) -> None:
    """Skip (fail under ``CI``) unless ``image`` exists locally (no registry is reachable)."""
    import docker.errors

    try:
        client.images.get(image)
    except docker.errors.ImageNotFound:
        unavailable(f"image {image} is not built here; run the project setup (scripts build base images)")
