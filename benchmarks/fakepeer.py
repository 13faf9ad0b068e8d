"""An in-process stand-in for the engine's connection pool, for measuring the engine alone.

``install()`` replaces :class:`pytest_peakchaos.load.client.Pool` in the engine module with
:class:`FakePool`, which answers every request on the next loop iteration with a small JSON
document: no sockets, no kernel, no peer. What remains is what the engine itself costs (session
starts, the walk, rendering, think-time scheduling, patience, recording, health sampling).

Used by ``session_cost.py`` and by ``load.py --think real --fake-peer``. Spawned worker processes
re-import the benchmark's main module, so a benchmark that calls ``install()`` at import time when
``ENV`` is set gets the fake pool in every worker too.
"""

from __future__ import annotations

import collections
import time
from typing import Any

ENV = "PEAKCHAOS_BENCH_FAKE_PEER"
URL = "http://127.0.0.1:9"  # never connected to: the fake pool has no sockets

BODY = b'{"ok":true,"order_id":1,"status":"confirmed"}'
HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 46\r\n\r\n" + BODY


class FakePool:
    """The part of the Pool interface the engine uses."""

    def __init__(self, loop: Any, host: str, port: int, max_connections: int, ssl: Any = None) -> None:
        self.loop = loop
        self.waiting: collections.deque[Any] = collections.deque()
        self.closed = False

    def submit(self, req: Any) -> None:
        if self.closed:
            req.done = True
            req.on_done(req, 0, b"", "other", time.monotonic())
            return
        req.t_sent = time.monotonic()
        self.loop.call_soon(self._answer, req)

    def _answer(self, req: Any) -> None:
        if not req.done:
            req.done = True
            if req.want_head:
                req.head = HEAD
            req.on_done(req, 200, BODY, None, time.monotonic())

    def expire(self, now: float) -> int:
        return 0

    def close(self) -> None:
        self.closed = True


def install() -> None:
    import pytest_peakchaos.load.engine as engine

    setattr(engine, "Pool", FakePool)  # the engine looks Pool up in its module globals at run time
