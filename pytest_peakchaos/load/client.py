"""A small, fast HTTP/1.1 client for load generation on asyncio (uvloop when available).

Why not aiohttp or pyreqwest: measured on this project's 2-core machines against nginx on
127.0.0.1 (50 connections, client pinned to one core; benchmarks/README.md): aiohttp+uvloop ~17k
req/s, pyreqwest+uvloop ~26k, this protocol-level client on uvloop ~128k. The load engine needs
head-room for the behaviour model and recording on top, so it speaks HTTP/1.1 itself: keep-alive
connection pool, Content-Length / chunked / close-delimited bodies, HTTP/1.0 servers, per-request
deadlines (a timer heap swept by the engine's ticker, not a timer per request), and an error
classification (``timeout``, ``reset``, ``refused``, ``other``) the engine records as is. There is
no transparent retry: a reset is reported, never hidden.

``http://`` and ``https://`` (TLS through the event loop's SSL transport; verification is the
caller's context) to literal hosts: load goes to 127.0.0.1 and the project's own containers.
"""

from __future__ import annotations

import asyncio
import heapq
import time
from collections import deque
from typing import Any, Callable

__all__ = ["Request", "Pool", "build_request", "parse_base_url", "parse_base_url_full"]

MAX_RESPONSE_BYTES = 64 * 1024 * 1024
_monotonic = time.monotonic

#: on_done(request, status (0 when none), body (b"" when none), error kind or None, completion time);
#: with a status, the error kind is ``"no_retry_after"`` for a 429/503 without Retry-After, else None
DoneCallback = Callable[["Request", int, bytes, "str | None", float], None]


class Request:
    """One HTTP request in flight. ``raw`` is the whole serialized request."""

    __slots__ = ("raw", "no_body", "deadline", "on_done", "done", "t_sent", "ctx", "conn", "want_head", "head")

    def __init__(self, raw: bytes, deadline: float, on_done: DoneCallback, ctx: object = None, no_body: bool = False) -> None:
        self.raw = raw
        self.no_body = no_body
        self.deadline = deadline
        self.on_done = on_done
        self.done = False
        self.t_sent = 0.0
        self.ctx = ctx
        self.conn: _Conn | None = None
        self.want_head = False  # keep the raw response in ``head`` (headers for cookies, captures)
        self.head: bytes | None = None

    def __lt__(self, other: Request) -> bool:  # heap tie-break
        return id(self) < id(other)


def parse_base_url(base_url: str) -> tuple[str, int, str]:
    """``http[s]://host:port[/prefix]`` -> (host, port, path prefix without trailing slash)."""
    return parse_base_url_full(base_url)[1:]


def parse_base_url_full(base_url: str) -> tuple[str, str, int, str]:
    """``http[s]://host:port[/prefix]`` -> (scheme, host, port, path prefix without trailing slash)."""
    from urllib.parse import urlsplit

    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"base_url: expected an http:// or https:// URL, got {base_url!r}")
    if not parts.hostname:
        raise ValueError(f"base_url: no host in {base_url!r}")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise ValueError(f"base_url: bad port in {base_url!r}") from None
    return parts.scheme, parts.hostname, port, parts.path.rstrip("/")


def build_request(method: str, target: str, host_header: str, *, body: bytes = b"", headers: tuple[tuple[str, str], ...] = (),
                  content_type: str | None = None) -> bytes:
    """Serialize a request (``target`` is the path and query)."""
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host_header}", "User-Agent: peakchaos", "Accept: */*"]
    for k, v in headers:
        lines.append(f"{k}: {v}")
    if body or method in ("POST", "PUT", "PATCH"):
        if content_type:
            lines.append(f"Content-Type: {content_type}")
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class _Conn(asyncio.Protocol):
    __slots__ = ("pool", "transport", "req", "buf", "closed", "reused")

    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.req: Request | None = None
        self.buf = b""
        self.closed = False
        self.reused = False

    # -- asyncio.Protocol ---------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's transports are not asyncio.Transport subclasses

    def send(self, req: Request) -> None:
        self.req = req
        req.conn = self
        self.buf = b""
        req.t_sent = _monotonic()
        assert self.transport is not None
        self.transport.write(req.raw)

    def data_received(self, data: bytes) -> None:
        req = self.req
        if req is None:  # unsolicited bytes: the connection is not usable any more
            self._close()
            return
        buf = self.buf + data if self.buf else data
        if len(buf) > MAX_RESPONSE_BYTES:
            self._fail("other")
            return
        done = _parse_response(buf, req.no_body, False)
        if done is None:
            self.buf = buf
            return
        if done[0] < 0:
            self._fail("other")
            return
        status, body, keep_alive = done
        if req.want_head:
            req.head = buf
        self.buf = b""
        self.req = None
        req.conn = None
        t = _monotonic()
        if not req.done:
            req.done = True
            req.on_done(req, status, body, _retry_after_flag(buf) if status == 503 or status == 429 else None, t)
        if keep_alive and not self.closed:
            self.reused = True
            self.pool._release(self)
        else:
            self._close()

    def eof_received(self) -> bool:
        req = self.req
        if req is not None and self.buf:
            done = _parse_response(self.buf, req.no_body, True)
            if done is not None and done[0] > 0:
                status, body, _ = done
                if req.want_head:
                    req.head = self.buf
                self.req = None
                req.conn = None
                if not req.done:
                    req.done = True
                    flag = _retry_after_flag(self.buf) if status == 503 or status == 429 else None
                    req.on_done(req, status, body, flag, _monotonic())
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        req = self.req
        self.req = None
        self.pool._forget(self)
        if req is not None and not req.done:
            req.done = True
            req.conn = None
            kind = "reset" if exc is None or isinstance(exc, (ConnectionError, OSError)) else "other"
            req.on_done(req, 0, b"", kind, _monotonic())

    # -- helpers ----------------------------------------------------------------------------------
    def _fail(self, kind: str) -> None:
        req = self.req
        self.req = None
        if req is not None and not req.done:
            req.done = True
            req.conn = None
            req.on_done(req, 0, b"", kind, _monotonic())
        self._close()

    def _close(self) -> None:
        if not self.closed:
            self.closed = True
            self.pool._forget(self)
            if self.transport is not None:
                self.transport.close()

    def abort(self) -> None:
        self.req = None
        if not self.closed:
            self.closed = True
            self.pool._forget(self)
        if self.transport is not None:
            self.transport.abort()


def _retry_after_flag(buf: bytes) -> str | None:
    """For a 429/503 only: ``"no_retry_after"`` when its head has no ``Retry-After`` header."""
    head = buf[: buf.find(b"\r\n\r\n")].lower()
    return None if b"\r\nretry-after:" in head else "no_retry_after"


def _line_after(lower: bytes, name: bytes) -> bytes | None:
    """The value of header ``name`` (given as ``b"\\r\\nname:"``) in a lower-cased head, if present."""
    i = lower.find(name)
    if i < 0:
        return None
    j = lower.find(b"\r\n", i + 2)
    return lower[i + len(name) : j if j >= 0 else len(lower)].strip()


def _parse_response(buf: bytes, no_body: bool, eof: bool) -> tuple[int, bytes, bool] | None:
    """Parse one response at the start of ``buf``: ``(status, body, keep_alive)``, ``None`` when
    incomplete, ``(-1, b"", False)`` when malformed. Interim 1xx responses are skipped."""
    offset = 0
    for _ in range(8):  # at most a few interim responses
        i = buf.find(b"\r\n\r\n", offset)
        if i < 0:
            return None
        head = buf[offset:i]
        if head[:5] != b"HTTP/" or len(head) < 12:
            return (-1, b"", False)
        try:
            status = int(head[9:12])
        except ValueError:
            return (-1, b"", False)
        if 100 <= status < 200:
            offset = i + 4
            continue
        lower = head.lower()
        c = lower.find(b"\r\nconnection:")
        if c >= 0:
            e = lower.find(b"\r\n", c + 2)
            conn: bytes | None = lower[c + 13 : e if e >= 0 else len(lower)]
        else:
            conn = None
        if head[5:8] == b"1.0":
            keep_alive = conn is not None and b"keep-alive" in conn
        else:
            keep_alive = conn is None or b"close" not in conn
        start = i + 4
        if no_body or status == 204 or status == 304:
            return status, b"", keep_alive
        c = lower.find(b"\r\ncontent-length:")
        if c >= 0:
            e = lower.find(b"\r\n", c + 2)
            try:
                length = int(lower[c + 17 : e if e >= 0 else len(lower)])
            except ValueError:
                return (-1, b"", False)
            if len(buf) - start < length:
                return None
            return status, buf[start : start + length], keep_alive
        te = _line_after(lower, b"\r\ntransfer-encoding:")
        if te is not None and b"chunked" in te:
            return _parse_chunked(buf, start, status, keep_alive)
        # close-delimited body
        if eof:
            return status, buf[start:], False
        return None
    return (-1, b"", False)


def _parse_chunked(buf: bytes, pos: int, status: int, keep_alive: bool) -> tuple[int, bytes, bool] | None:
    parts: list[bytes] = []
    n = len(buf)
    for _ in range(1_000_000):
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            return None
        size_text = buf[pos:eol].split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            return (-1, b"", False)
        pos = eol + 2
        if size == 0:
            # trailers end with an empty line
            end = buf.find(b"\r\n\r\n", pos - 2)
            if end < 0:
                return None
            return status, b"".join(parts), keep_alive
        if n < pos + size + 2:
            return None
        parts.append(buf[pos : pos + size])
        pos += size + 2
    return (-1, b"", False)


class Pool:
    """Keep-alive connections to one host:port, at most ``max_connections`` open at once; requests
    beyond that wait (FIFO) — the wait counts in their latency, which runs from the intended send."""

    def __init__(self, loop: asyncio.AbstractEventLoop, host: str, port: int, max_connections: int, ssl: Any = None) -> None:
        if max_connections < 1:
            raise ValueError("max_connections must be >= 1")
        self.ssl = ssl  # an ssl.SSLContext for https, else None
        self.loop = loop
        self.host = host
        self.port = port
        self.max_connections = max_connections
        self.idle: list[_Conn] = []
        self.conns: set[_Conn] = set()
        self.connecting = 0
        self.waiting: deque[Request] = deque()
        self.deadlines: list[tuple[float, Request]] = []
        self.tasks: set[asyncio.Task[None]] = set()
        self.closed = False
        self.opened_total = 0

    @property
    def in_use(self) -> int:
        return len(self.conns) - len(self.idle) + self.connecting

    def submit(self, req: Request) -> None:
        heapq.heappush(self.deadlines, (req.deadline, req))
        if self.closed:
            req.done = True
            req.on_done(req, 0, b"", "other", _monotonic())
            return
        idle = self.idle
        for _ in range(len(idle)):  # drains stale entries; bounded by the list's size
            conn = idle.pop()
            if not conn.closed:
                conn.send(req)
                return
        if len(self.conns) + self.connecting < self.max_connections:
            self._open(req)
        else:
            self.waiting.append(req)

    def _open(self, req: Request) -> None:
        self.connecting += 1
        task = self.loop.create_task(self._connect(req))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _connect(self, req: Request) -> None:
        kind: str | None = None
        conn: _Conn | None = None
        try:
            if self.ssl is None:
                _, proto = await self.loop.create_connection(lambda: _Conn(self), self.host, self.port)
            else:
                _, proto = await self.loop.create_connection(
                    lambda: _Conn(self), self.host, self.port, ssl=self.ssl, server_hostname=self.host
                )
            conn = proto
        except ConnectionRefusedError:
            kind = "refused"
        except (TimeoutError, asyncio.TimeoutError):
            kind = "timeout"
        except OSError:
            kind = "other"
        except Exception:  # noqa: BLE001 - any failure to connect is reported on the request
            kind = "other"
        finally:
            self.connecting -= 1
        if conn is None:
            if not req.done:
                req.done = True
                req.on_done(req, 0, b"", kind or "other", _monotonic())
            self._kick()
            return
        self.opened_total += 1
        if self.closed:
            conn.abort()
            if not req.done:
                req.done = True
                req.on_done(req, 0, b"", "other", _monotonic())
            return
        self.conns.add(conn)
        if req.done:  # expired while connecting: give the connection to the next waiter
            self._release(conn)
        else:
            conn.send(req)

    def _release(self, conn: _Conn) -> None:
        waiting = self.waiting
        for _ in range(len(waiting)):
            req = waiting.popleft()
            if not req.done:
                conn.send(req)
                return
        self.idle.append(conn)

    def _forget(self, conn: _Conn) -> None:
        self.conns.discard(conn)
        self._kick()

    def _kick(self) -> None:
        """A connection slot freed up: open one for the next live waiter."""
        if self.closed:
            return
        waiting = self.waiting
        for _ in range(len(waiting)):
            if len(self.conns) + self.connecting >= self.max_connections:
                break
            req = waiting.popleft()
            if not req.done:
                self._open(req)

    def expire(self, now: float) -> int:
        """Fail every request whose deadline passed (``timeout``). Called by the engine's ticker."""
        heap = self.deadlines
        n = 0
        for _ in range(len(heap)):
            if heap[0][0] > now:
                break
            _, req = heapq.heappop(heap)
            if req.done:
                continue
            req.done = True
            conn = req.conn
            if conn is not None:
                req.conn = None
                conn.abort()
            req.on_done(req, 0, b"", "timeout", now)
            n += 1
        if len(heap) > 4096 and len(heap) > 4 * (len(self.conns) + len(self.waiting) + 16):
            self.deadlines = [e for e in heap if not e[1].done]
            heapq.heapify(self.deadlines)
        return n

    def close(self) -> None:
        """Abort everything: pending requests end as ``other`` (the run is over), connections close."""
        self.closed = True
        now = _monotonic()
        for conn in list(self.conns):
            req = conn.req
            conn.abort()
            if req is not None and not req.done:
                req.done = True
                req.on_done(req, 0, b"", "other", now)
        self.conns.clear()
        self.idle.clear()
        for req in self.waiting:
            if not req.done:
                req.done = True
                req.on_done(req, 0, b"", "other", now)
        self.waiting.clear()
        self.deadlines.clear()
        for task in list(self.tasks):
            task.cancel()
