"""Which fault windows starve legacy calls, and what reached legacy in them after a grace period.

The ``shedding`` check (checks.py) asks: while legacy calls cannot succeed in time, does the
cloud stop sending them (a circuit breaker, load shedding), or does legacy keep getting the full
load? It is judged only in windows where the recorded fault makes every call that *reaches*
legacy fail or come too late (:func:`starving_reason`):

* ``latency`` (any stream) of at least ``Policy.shedding_min_latency_ms`` -- by default the
  ``fail_fast`` p99 bound: a synchronous call through such a link cannot meet that bound, so a
  cloud that keeps waiting for legacy fails; one that gives up (a time-out) and keeps calling
  loads legacy for nothing;
* ``timeout``, ``reset_peer`` and ``limit_data`` of at most :data:`CUT_BYTES` bytes on the
  downstream stream (legacy does the work; the answer never arrives, is reset, or is cut off before
  even a status line could pass).

Not judged (no row): latencies below the bound (a resilient cloud may rightly keep calling a
legacy that is slow but in time), ``down`` and upstream-only toxics (nothing reaches legacy
whatever the cloud does: the link sheds the load, not the cloud), partial toxicity, bandwidth,
slicer, slow_close, cpu, capacity and pause.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

from pytest_peakchaos.checks import Phase, Policy, SheddingWindow
from pytest_peakchaos.faults import FaultWindow, ToxicFault

if TYPE_CHECKING:
    from pytest_peakchaos.evidence.boundaries import BoundaryReadings
    from pytest_peakchaos.load.result import LoadResult

__all__ = ["starving_reason", "grace_boundaries", "shedding_windows", "peak_boundaries", "peak_windows"]

#: a ``limit_data`` of at most this many bytes lets no answer through whole (``HTTP/1.1 200 OK\r\n``
#: alone is 17); a larger budget lets the first answers of each connection pass
CUT_BYTES = 16

#: downstream toxics under which a call reaches legacy but its answer is lost
_ANSWER_LOST = {"timeout": "answers never arrive", "reset_peer": "answers are reset", "limit_data": "answers are cut off"}


def starving_reason(fault: object, policy: Policy) -> str:
    """Why legacy calls cannot succeed in time under ``fault`` while still reaching legacy, or ``""``."""
    if not isinstance(fault, ToxicFault) or fault.toxicity < 1.0:
        return ""
    attrs = fault.attributes
    if fault.toxic_type == "latency":
        ms = attrs.get("latency", 0)
        streams = 2 if fault.direction == "both" else 1
        if ms * streams >= policy.shedding_min_latency_ms:
            return f"latency {ms * streams} ms >= {policy.shedding_min_latency_ms:g} ms: no call through the link is in time"
        return ""
    if fault.toxic_type == "limit_data" and attrs.get("bytes", 0) > CUT_BYTES:
        return ""
    if fault.toxic_type in _ANSWER_LOST and fault.direction in ("downstream", "both"):
        return f"{fault.toxic_type} downstream: calls reach legacy but their {_ANSWER_LOST[fault.toxic_type]}"
    return ""


def _starving(windows: Sequence[FaultWindow], policy: Policy) -> list[tuple[FaultWindow, str]]:
    return [(w, why) for w in windows if (why := starving_reason(w.fault, policy))]


def grace_boundaries(windows: Sequence[FaultWindow], policy: Policy) -> list[float]:
    """Extra counter-reading times: ``shedding_grace_s`` into each starving window (and its end)."""
    out: list[float] = []
    for w, _ in _starving(windows, policy):
        t = w.start_s + policy.shedding_grace_s
        if t < w.end_s:
            out += [t, w.end_s]
    return out


def shedding_windows(
    windows: Sequence[FaultWindow], policy: Policy, readings: BoundaryReadings, load: LoadResult, legacy: frozenset[str],
) -> tuple[SheddingWindow, ...]:
    """Per starving window: legacy calls (counter delta) and legacy-bound actions from
    ``shedding_grace_s`` after its start to its end. A window too short for the grace gets
    ``actions == 0`` and a reason."""
    bound = [a for a in load.actions if a in legacy]
    out: list[SheddingWindow] = []
    for w, why in _starving(windows, policy):
        lo = w.start_s + policy.shedding_grace_s
        desc = w.fault.describe()
        if lo >= w.end_s:
            out.append(SheddingWindow(desc, why, lo, w.end_s, None, 0, f"the window is not longer than the {policy.shedding_grace_s:g}s grace"))
            continue
        a, b = readings.get("legacy", lo), readings.get("legacy", w.end_s)
        if a is None or b is None:
            t = lo if a is None else w.end_s
            out.append(SheddingWindow(desc, why, lo, w.end_s, None, 0, f"the legacy counter could not be read at {t:g}s: {readings.error('legacy', t)}"))
            continue
        actions = load.window(int(math.ceil(lo - 1e-9)), int(math.floor(w.end_s + 1e-9)), bound).count
        out.append(SheddingWindow(desc, why, lo, w.end_s, max(0.0, b.value - a.value), actions, "", b.unit))
    return tuple(out)


def peak_boundaries(phases: Sequence[Phase], policy: Policy) -> list[float]:
    """Extra counter-reading times for ``amplification``'s peak: every whole second inside the
    fault phase (``amplification_window_s`` 0: none)."""
    fault = next((p for p in phases if p.name == "fault"), None)
    if fault is None or policy.amplification_window_s <= 0:
        return []
    lo, hi = fault.seconds()
    return [float(t) for t in range(lo, hi + 1)]


def peak_windows(
    phases: Sequence[Phase], policy: Policy, readings: BoundaryReadings, load: LoadResult, legacy: frozenset[str],
) -> tuple[tuple[float, float, float, int], ...]:
    """``(start, end, calls, legacy-bound actions)`` of every ``amplification_window_s`` window of
    whole seconds inside the fault phase, sliding by a second; windows whose readings failed are
    left out."""
    width = int(round(policy.amplification_window_s))
    fault = next((p for p in phases if p.name == "fault"), None)
    if fault is None or width <= 0:
        return ()
    lo, hi = fault.seconds()
    bound = [a for a in load.actions if a in legacy]
    out: list[tuple[float, float, float, int]] = []
    for t in range(lo, hi - width + 1):
        a, b = readings.get("legacy", float(t)), readings.get("legacy", float(t + width))
        if a is None or b is None:
            continue
        out.append((float(t), float(t + width), max(0.0, b.value - a.value), load.window(t, t + width, bound).count))
    return tuple(out)
