"""One timer for many sessions: the engine's think-time scheduler.

A live shopper spends nearly all its time thinking, so at sale-day concurrency (hundreds of
thousands of live sessions) what each waiting session costs decides what one core can hold. Instead
of a coroutine, a task, a future and an event-loop timer per session and think time, the engine
keeps each session as a small state record and puts it here: one heap of ``(due, seq, item)`` and
one event-loop timer, armed for the earliest entry. When it fires, every entry that is due is handed
to ``fire(item, now)`` in due order (equal due times in the order they were pushed), never before
its due instant. The timer is re-armed only when a new entry is earlier than the armed one (rare:
think times are long, the armed instant near).

Bounded: one service pass fires at most the entries present when it began; once empty (or closed)
it arms nothing, so it stops by itself.
"""

from __future__ import annotations

import asyncio
import heapq
import math
import time
from typing import Any, Callable, Generic, TypeVar

__all__ = ["Scheduler"]

T = TypeVar("T")
_heappush = heapq.heappush
_heappop = heapq.heappop


class Scheduler(Generic[T]):
    __slots__ = ("heap", "seq", "loop", "fire", "clock", "wake_at", "handle", "closed", "fired")

    def __init__(self, loop: asyncio.AbstractEventLoop, fire: Callable[[T, float], None],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.heap: list[tuple[float, int, T]] = []
        self.seq = 0
        self.loop = loop
        self.fire = fire
        self.clock = clock
        self.wake_at = math.inf
        self.handle: Any = None  # the armed loop timer (asyncio.TimerHandle, or uvloop's)
        self.closed = False
        self.fired = 0

    def __len__(self) -> int:
        return len(self.heap)

    def push(self, when: float, item: T) -> None:
        """Hand ``item`` to ``fire`` at ``when`` (the clock's time base), not before."""
        if self.closed:
            return
        self.seq += 1
        _heappush(self.heap, (when, self.seq, item))
        if when < self.wake_at:
            self._arm(when)

    def _arm(self, when: float) -> None:
        if self.handle is not None:
            self.handle.cancel()
        self.wake_at = when
        delay = when - self.clock()
        self.handle = self.loop.call_later(delay if delay > 0.0 else 0.0, self._service)

    def service(self, now: float) -> int:
        """Fire every entry due at ``now`` (at most those present on entry); returns how many."""
        heap = self.heap
        fire = self.fire
        n = 0
        for _ in range(len(heap)):
            if self.closed or heap[0][0] > now:
                break
            item = _heappop(heap)[2]
            n += 1
            fire(item, now)
        self.fired += n
        return n

    def _service(self) -> None:
        self.handle = None
        self.wake_at = math.inf
        if self.closed:
            return
        try:
            self.service(self.clock())
        finally:
            if self.heap and not self.closed:
                self._arm(self.heap[0][0])

    def close(self) -> None:
        """Fire nothing more: drop every entry and the armed timer."""
        self.closed = True
        if self.handle is not None:
            self.handle.cancel()
            self.handle = None
        self.wake_at = math.inf
        self.heap.clear()
