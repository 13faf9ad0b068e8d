"""The experiment's helper thread: evidence readings at phase boundaries, a progress line a second."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

from pytest_peakchaos.checks import Phase

from .boundaries import BoundaryReadings

ProgressFn = Callable[[str], None]


class EngineProbe:
    """Live counters of the running load engine, for the progress line (``run_load(on_live=...)``).

    Multi-process runs hand out no live counters: the line then shows elapsed time and phase only.
    """

    def __init__(self) -> None:
        self.totals_fn: Callable[[], tuple[int, int, int]] | None = None

    def attach(self, totals: Callable[[], tuple[int, int, int]]) -> None:
        self.totals_fn = totals

    def totals(self) -> tuple[int, int, int] | None:
        """(completed, ok, active sessions) so far, or None."""
        if self.totals_fn is None:
            return None
        try:
            return self.totals_fn()
        except (TypeError, ValueError, RuntimeError):  # read from another thread mid-update
            return None


class BoundaryWatcher:
    """Helper thread: evidence readings at phase boundaries and a progress line every second."""

    TICK_S = 0.1

    def __init__(
        self,
        t0: float,
        duration_s: float,
        boundaries: Sequence[float],
        phases: Sequence[Phase],
        readings: BoundaryReadings,
        progress: ProgressFn | None,
        probe: EngineProbe,
        hard_s: float,
    ) -> None:
        self.t0 = t0
        self.duration_s = duration_s
        self.pending = sorted(b for b in boundaries if 0 < b < duration_s)
        self.phases = phases
        self.readings = readings
        self.progress = progress
        self.probe = probe
        self.hard_s = hard_s
        self.stop_event = threading.Event()
        self.progress_errors: list[str] = []
        self._thread = threading.Thread(target=self._run, name="peakchaos-experiment-watch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.stop_event.set()
        self._thread.join(5.0)

    def _phase_at(self, t: float) -> str:
        for p in self.phases:
            if p.start <= t < p.end:
                return p.name
        return "draining" if t >= self.duration_s else self.phases[0].name

    def _run(self) -> None:
        last_done = 0
        next_report = self.t0 + 1.0
        for _ in range(int(self.hard_s / self.TICK_S) + 10):
            if self.stop_event.wait(self.TICK_S):
                return
            now = time.monotonic()
            elapsed = now - self.t0
            while self.pending and elapsed >= self.pending[0]:
                self.readings.read(self.pending.pop(0))
            if self.progress is not None and now >= next_report:
                next_report += 1.0
                totals = self.probe.totals()
                if totals is None:
                    stats = "live numbers unavailable"
                else:
                    done, ok, active = totals
                    errs = done - ok
                    stats = f"{done - last_done:5d} req/s  errors {errs} ({100.0 * errs / done if done else 0.0:.1f}%)  sessions {active}"
                    last_done = done
                line = f"[{min(elapsed, self.duration_s):5.1f}s/{self.duration_s:g}s] {self._phase_at(elapsed):<9} {stats}"
                try:
                    self.progress(line)
                except Exception as exc:  # noqa: BLE001 - a broken printer must not break the run
                    self.progress_errors.append(f"{type(exc).__name__}: {exc}")
                    self.progress = None
            if elapsed > self.hard_s:
                return
