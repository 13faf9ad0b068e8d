"""A scriptable in-process HTTP target on 127.0.0.1 for the load-engine tests (and its own tests).

Paths choose the behaviour: ``/ok``, ``/slow/<ms>``, ``/status/<code>``, ``/hang`` (never answers),
``/reset`` (TCP RST), ``/close`` (``Connection: close``), ``/chunked``, ``/http10`` (close-delimited
HTTP/1.0), ``/order`` (201 with an order id, idempotent per key). A small session shop: ``GET /login``
(an HTML form with a CSRF token), ``POST /login`` (form; sets a session cookie), ``POST /carts``
(server-made cart id, needs the cookie), ``POST|DELETE /carts/<id>/items[/<sku>]``, ``POST
/carts/<id>/checkout``; ``/badcookie`` sends a malformed ``Set-Cookie``. ``paused`` holds every
response until cleared (a stall). Every request is logged as ``(method, path, idempotency key,
body)``, its headers in ``headers_log``. ``Target(tls=(cert, key))`` serves https.
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import threading
import time
import urllib.request
from collections import Counter
from typing import Any


class _Handler(asyncio.Protocol):
    def __init__(self, target: Target) -> None:
        self.target = target
        self.buf = b""
        self.transport: asyncio.Transport | None = None
        self.busy = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.target.open_connections += 1
        self.target.accepted += 1

    def connection_lost(self, exc: Exception | None) -> None:
        self.target.open_connections -= 1

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if not self.busy:
            self._next()

    def _next(self) -> None:
        i = self.buf.find(b"\r\n\r\n")
        if i < 0:
            return
        head = self.buf[:i].decode("latin-1")
        lines = head.split("\r\n")
        method, path, _ = lines[0].split(" ", 2)
        headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:] if ":" in line)}
        length = int(headers.get("content-length", "0"))
        if len(self.buf) < i + 4 + length:
            return
        body = self.buf[i + 4 : i + 4 + length]
        self.buf = self.buf[i + 4 + length :]
        self.busy = True
        asyncio.get_running_loop().create_task(self._respond(method, path, headers, body))

    async def _respond(self, method: str, path: str, headers: dict[str, str], body: bytes) -> None:
        t = self.target
        key = headers.get("idempotency-key")
        with t.lock:
            t.log.append((method, path, key, body))
            t.headers_log.append(headers)
        for _ in range(10_000):
            if not t.paused:
                break
            await asyncio.sleep(0.005)
        tr = self.transport
        assert tr is not None
        if tr.is_closing():
            return
        route = path.split("?", 1)[0]
        parts = route.strip("/").split("/")
        head = parts[0] if parts else ""
        status, payload, extra, close = 200, {"ok": True}, "", False
        if head == "slow":
            await asyncio.sleep(int(parts[1]) / 1000.0)
        elif head == "status":
            status, payload = int(parts[1]), {"error": "scripted"}
        elif head == "hang":
            await asyncio.sleep(3600)
        elif head == "reset":
            sock = tr.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            tr.abort()
            return
        elif head == "close":
            extra, close = "Connection: close\r\n", True
        elif head == "chunked":
            data = json.dumps({"ok": True, "chunked": True}).encode()
            mid = len(data) // 2
            tr.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
            tr.write(b"%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n" % (mid, data[:mid], len(data) - mid, data[mid:]))
            self._done()
            return
        elif head == "http10":
            tr.write(b'HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n{"ok": true}')
            tr.close()
            return
        elif head == "order":
            with t.lock:
                if key is None:
                    status, payload = 400, {"error": "no key"}
                else:
                    if key not in t.orders:
                        t.orders[key] = len(t.orders) + 1
                    status, payload = 201, {"status": "confirmed", "order_id": t.orders[key], "idempotency_key": key}
        elif head == "queued":
            status, payload = 202, {"status": "queued", "idempotency_key": key}
        elif head in ("login", "carts", "badcookie"):
            status, payload, extra, html = t.session_shop(method, parts, headers, body, key)
            if html is not None:
                data = html.encode()
                tr.write(f"HTTP/1.1 {status} X\r\nContent-Type: text/html\r\nContent-Length: {len(data)}\r\n{extra}\r\n".encode() + data)
                self._done()
                return
        data = json.dumps(payload).encode()
        reason = {200: "OK", 201: "Created", 202: "Accepted"}.get(status, "X")
        tr.write(
            f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\n{extra}\r\n".encode()
            + data
        )
        if close:
            tr.close()
            return
        self._done()

    def _done(self) -> None:
        self.busy = False
        if self.buf:
            self._next()


class Target:
    """Context manager: ``with Target() as t: t.url``."""

    def __init__(self, tls: tuple[str, str] | None = None) -> None:
        self.tls = tls
        self.lock = threading.Lock()
        self.log: list[tuple[str, str, str | None, bytes]] = []
        self.headers_log: list[dict[str, str]] = []
        self.csrf: dict[str, str] = {}  # pre-session cookie -> token
        self.sessions: dict[str, str] = {}  # session cookie -> user
        self.carts: dict[str, list[int]] = {}
        self.shop_orders: dict[str, list[int]] = {}
        self.orders: dict[str, int] = {}
        self.paused = False
        self.open_connections = 0
        self.accepted = 0
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="load-target", daemon=True)
        self._ready = threading.Event()
        self._server: asyncio.AbstractServer | None = None

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def session_shop(self, method: str, parts: list[str], headers: dict[str, str], body: bytes, key: str | None,
                     ) -> tuple[int, Any, str, str | None]:
        """(status, JSON payload, extra header lines, HTML body or None) of the session shop."""
        from urllib.parse import parse_qs

        cookies = dict(c.strip().split("=", 1) for c in headers.get("cookie", "").split(";") if "=" in c)
        with self.lock:
            if parts[0] == "badcookie":
                return 200, {"ok": True}, "Set-Cookie: =novalue; Path=/\r\nSet-Cookie: good=1; Max-Age=soon\r\n", None
            if parts[0] == "login" and method == "GET":
                pre = f"pre{len(self.csrf)}"
                token = f"tok{len(self.csrf) * 7919 % 10007}x"
                self.csrf[pre] = token
                html = f'<form method=post action=/login><input type="hidden" name="csrf" value="{token}"><input name=user></form>'
                return 200, None, f"Set-Cookie: pre={pre}; Path=/login; HttpOnly\r\n", html
            if parts[0] == "login":
                form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
                if self.csrf.get(cookies.get("pre", "")) != form.get("csrf") or not form.get("user"):
                    return 403, {"error": "csrf"}, "", None
                sid = f"s{len(self.sessions)}"
                self.sessions[sid] = form["user"]
                return 303, {"ok": True}, f"Set-Cookie: sid={sid}; Path=/; HttpOnly; SameSite=Lax\r\nLocation: /\r\n", None
            if cookies.get("sid") not in self.sessions:
                return 401, {"error": "login first"}, "", None
            if len(parts) == 1 and method == "POST":
                cid = f"srv-{len(self.carts) + 100}"
                self.carts[cid] = []
                return 201, {"cart": {"id": cid}}, f"Location: /carts/{cid}\r\n", None
            cart = self.carts.get(parts[1])
            if cart is None:
                return 404, {"error": "no cart"}, "", None
            if len(parts) >= 3 and parts[2] == "items" and method == "POST":
                sku = json.loads(body)["sku"]
                if sku not in cart:  # one line per product (a second add raises its quantity)
                    cart.append(sku)
                return 200, {"items": cart}, "", None
            if len(parts) == 4 and parts[2] == "items" and method == "DELETE":
                sku = int(parts[3])
                if sku not in cart:
                    return 404, {"error": "not in cart"}, "", None
                cart.remove(sku)
                return 200, {"items": cart}, "", None
            if len(parts) == 3 and parts[2] == "checkout":
                if not cart or key is None:
                    return 400, {"error": "empty cart or no key"}, "", None
                sent = json.loads(body)["items"] if body else None
                if sent != cart:
                    return 409, {"error": f"cart mismatch {sent} != {cart}"}, "", None
                if key not in self.shop_orders:
                    self.shop_orders[key] = list(cart)
                cart.clear()
                return 201, {"order": {"id": f"o-{key}"}}, "", None
            return 404, {"error": "no route"}, "", None

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def start() -> None:
            ctx = None
            if self.tls is not None:
                import ssl

                ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                ctx.load_cert_chain(*self.tls)
            self._server = await self._loop.create_server(lambda: _Handler(self), "127.0.0.1", 0, ssl=ctx)
            self.port = self._server.sockets[0].getsockname()[1]
            self._ready.set()

        self._loop.run_until_complete(start())
        self._loop.run_forever()
        # shut down: cancel pending handlers, close the server
        pending = [t for t in asyncio.all_tasks(self._loop) if not t.done()]
        for task in pending:
            task.cancel()
        if pending:
            self._loop.run_until_complete(asyncio.wait(pending, timeout=2))
        assert self._server is not None
        self._server.close()
        self._loop.run_until_complete(self._server.wait_closed())
        self._loop.run_until_complete(self._loop.shutdown_asyncgens())
        self._loop.close()

    def __enter__(self) -> Target:
        self._thread.start()
        assert self._ready.wait(10), "target did not start"
        return self

    def __exit__(self, *exc: Any) -> None:
        self.paused = False
        self._loop.call_soon_threadsafe(self._close_all_and_stop)
        self._thread.join(10)

    def _close_all_and_stop(self) -> None:
        assert self._server is not None
        self._server.close()
        self._loop.stop()

    def paths(self) -> Counter[str]:
        with self.lock:
            return Counter(p.split("?", 1)[0] for _, p, _, _ in self.log)

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """True once the target has no open connection (the client closed everything)."""
        deadline = time.monotonic() + timeout
        for _ in range(int(timeout / 0.01) + 1):
            if self.open_connections == 0:
                return True
            if time.monotonic() > deadline:
                break
            time.sleep(0.01)
        return self.open_connections == 0


def _get(url: str) -> tuple[int, dict[str, Any]]:
    with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 - loopback test target
        return resp.status, json.loads(resp.read())


def test_target_answers_ok_and_orders() -> None:
    with Target() as t:
        assert _get(t.url + "/ok") == (200, {"ok": True})
        req = urllib.request.Request(t.url + "/order", method="POST", data=b"", headers={"Idempotency-Key": "k1"})
        with urllib.request.urlopen(req, timeout=5) as resp:  # noqa: S310
            assert resp.status == 201
            assert json.loads(resp.read())["order_id"] == 1
        assert t.paths()["/order"] == 1
