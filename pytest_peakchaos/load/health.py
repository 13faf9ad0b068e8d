"""The load generator's own health, per second: is it fast enough to measure the system?

A load generator that falls behind (a starved core, a collector pause, too few connections) adds
its own delay to every latency it reports, and that delay would blame the system under test. So the
engine measures itself, continuously, on its own thread:

* **loop lag**: the engine's ticker asks to wake every few milliseconds; how late it wakes is the
  event loop's lag (a blocked or starved loop delays every timer and every response callback);
* **send delay**: for every request written at once on an idle connection, the time from its
  *intended* send instant to the write (a late think-time timer, a busy loop); and, while the pool
  is at its connection limit, the wait of the oldest request queued for a connection (sampled at
  every tick). Opening a new connection is not counted: how fast the system accepts is its own;
* **connection waits**: the most requests queued for a free connection at once;
* **collector pauses**: every garbage-collector run (``gc.callbacks``), its duration and generation;
* **CPU share**: the engine thread's CPU time per wall-clock second (low while the delay is high:
  something else has the core).

Per-second rows go into ``LoadResult.generator`` (:class:`GeneratorHealth`). A second whose
generator delay (the larger of the loop lag p99 and the send delay p99) exceeds a bound is
*saturated*: latency measured in it says more about the generator than about the system.
"""

from __future__ import annotations

import gc
import time
from typing import Any

from pytest_peakchaos.load.result import GeneratorHealth, GeneratorSecond, LogSketch, sketch_index

__all__ = ["HealthSampler"]

_monotonic = time.monotonic
_thread_time = time.thread_time


def _add(buckets: dict[int, dict[int, int]], maxima: dict[int, float], sec: int, us: float) -> None:
    b = sketch_index(us) if us > 1.0 else 0
    d = buckets.get(sec)
    if d is None:
        d = buckets[sec] = {}
        maxima[sec] = 0.0
    d[b] = d.get(b, 0) + 1
    if us > maxima[sec]:
        maxima[sec] = us


class HealthSampler:
    """Collects the per-second health on the engine's thread. Not thread-safe by design: only the
    collector callback may run elsewhere, and it only appends to a list."""

    __slots__ = ("t0", "rows", "lag", "lag_max", "send", "send_max", "gc_events", "_gc_start",
                 "_cpu_sec", "_cpu_t", "_cpu_wall", "queue_max", "_installed")

    def __init__(self, t0: float) -> None:
        self.t0 = t0
        self.rows: dict[int, GeneratorSecond] = {}
        # open accumulators per second: {second: {bucket: count}} and max in µs
        self.lag: dict[int, dict[int, int]] = {}
        self.lag_max: dict[int, float] = {}
        self.send: dict[int, dict[int, int]] = {}
        self.send_max: dict[int, float] = {}
        self.queue_max: dict[int, int] = {}
        self.gc_events: list[tuple[float, float]] = []  # (monotonic start, duration s)
        self._gc_start = 0.0
        self._cpu_sec = -1
        self._cpu_t = 0.0
        self._cpu_wall = 0.0
        self._installed = False

    # -- collector pauses ----------------------------------------------------------------------------
    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._gc_start = time.perf_counter()
        elif self._gc_start:
            self.gc_events.append((_monotonic(), time.perf_counter() - self._gc_start))
            self._gc_start = 0.0

    def install(self) -> None:
        if not self._installed:
            gc.callbacks.append(self._on_gc)
            self._installed = True
        self._cpu_sec = int(_monotonic() - self.t0)
        self._cpu_t = _thread_time()
        self._cpu_wall = _monotonic()

    def uninstall(self) -> None:
        if self._installed:
            try:
                gc.callbacks.remove(self._on_gc)
            except ValueError:
                pass
            self._installed = False

    # -- samples (hot path) ----------------------------------------------------------------------------
    def loop_lag(self, expected: float, now: float, queued: int, interval: float = 0.005) -> None:
        """The ticker (every ``interval`` s) woke at ``now`` instead of ``expected``; ``queued``
        requests wait for a connection.

        A blocked loop wakes once, not once per tick it missed, so the ticks it missed are recorded
        too, each with the lag it would have seen (HdrHistogram's expected-interval correction):
        a 400 ms block weighs as 80 late ticks, in the seconds they were due, not as one sample."""
        t0 = self.t0
        lag = now - expected
        sec = int(expected - t0)
        _add(self.lag, self.lag_max, sec, lag * 1e6)
        if lag > interval:
            missed = min(int(lag / interval), 2000)  # 10 s of ticks at most; seconds beyond: one each
            for k in range(1, missed + 1):
                due = expected + k * interval
                _add(self.lag, self.lag_max, int(due - t0), (now - due) * 1e6)
            last = int(now - t0)
            for s in range(int(expected + missed * interval - t0) + 1, min(last, sec + 3600) + 1):
                _add(self.lag, self.lag_max, s, (now - (t0 + s)) * 1e6)
        if queued > self.queue_max.get(sec, 0):
            self.queue_max[sec] = queued
        now_sec = int(now - self.t0)
        if now_sec != self._cpu_sec:
            self._cpu_roll(now, now_sec)

    def send_delay(self, sec: int, delay_us: float) -> None:
        """A request intended in second ``sec`` was written ``delay_us`` after its intended instant."""
        _add(self.send, self.send_max, sec, delay_us)

    def _cpu_roll(self, now: float, now_sec: int) -> None:
        cpu = _thread_time()
        if self._cpu_sec >= 0:
            row = self._row(self._cpu_sec)
            row.cpu_s += cpu - self._cpu_t
            row.wall_s += now - self._cpu_wall
        self._cpu_sec, self._cpu_t, self._cpu_wall = now_sec, cpu, now

    def _row(self, sec: int) -> GeneratorSecond:
        row = self.rows.get(sec)
        if row is None:
            row = self.rows[sec] = GeneratorSecond(sec)
        return row

    # -- results -------------------------------------------------------------------------------------
    def finish(self, now: float) -> GeneratorHealth:
        self.uninstall()
        self._cpu_roll(now, int(now - self.t0))
        for sec, d in self.lag.items():
            self._row(sec).lag = LogSketch.from_dict_counts(d, self.lag_max[sec])
        for sec, d in self.send.items():
            self._row(sec).send = LogSketch.from_dict_counts(d, self.send_max[sec])
        for sec, q in self.queue_max.items():
            self._row(sec).conn_queue_max = q
        for t, dur in self.gc_events:
            row = self._row(int(t - dur - self.t0))
            ms = dur * 1000.0
            row.gc_count += 1
            row.gc_pause_ms += ms
            row.gc_max_ms = max(row.gc_max_ms, ms)
        return GeneratorHealth(dict(sorted(self.rows.items())))
