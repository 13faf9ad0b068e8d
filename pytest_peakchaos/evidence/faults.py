"""Phases from what the link recorded, not from the plan.

The link logs ``apply`` / ``revert`` / ``error`` events with times relative to the load's time
zero. Each planned window is matched to its fault's events (by ``fault.describe()``, in order):

* the fault phase runs from the first planned start (applying began then) to the last recorded
  revert; recovery starts at that revert, so recovery is judged after the *actual* revert;
* a fault that failed to apply, was lost mid-window (a re-apply after a proxy recreate failed),
  or whose revert failed or was never recorded makes the affected phases ``not measured``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pytest_peakchaos.checks import Phase, derive_phases
from pytest_peakchaos.faults import FaultWindow


@dataclass(frozen=True)
class RealisedPhases:
    phases: tuple[Phase, ...]
    #: phase name -> why its faults did not happen as planned
    problems: dict[str, str] = field(default_factory=dict)
    #: per window: (planned start, recorded apply or None, recorded revert or None)
    timeline: tuple[tuple[float, float | None, float | None], ...] = ()


def _field(e: Any, name: str) -> Any:
    return e.get(name) if isinstance(e, Mapping) else getattr(e, name, None)


def realised_phases(windows: Sequence[FaultWindow], events: Iterable[Any], duration_s: float) -> RealisedPhases:
    """Phases and their problems from ``windows`` (the plan) and the link's ``events``."""
    evs = sorted(
        ((float(_field(e, "t")), str(_field(e, "action")), str(_field(e, "fault")), str(_field(e, "via") or ""), str(_field(e, "detail") or ""))
         for e in events),
        key=lambda x: x[0],
    )
    if not windows:
        return RealisedPhases(derive_phases([], duration_s))
    used: set[int] = set()
    spans: list[tuple[float, float]] = []
    timeline: list[tuple[float, float | None, float | None]] = []
    fault_problems: list[str] = []
    recovery_problems: list[str] = []
    for w in sorted(windows, key=lambda w: (w.start_s, w.index)):
        desc = w.fault.describe()

        def take(action: str, after: float, via: str | None = None) -> tuple[int, tuple[float, str, str, str, str]] | None:
            for i, e in enumerate(evs):
                if i in used or e[1] != action or e[2] != desc or e[0] < after - 1e-6:
                    continue
                if via is not None and e[3] != via:
                    continue
                used.add(i)
                return i, e
            return None

        applied = take("apply", w.start_s - 0.5)
        if applied is None:
            failed = take("error", w.start_s - 0.5, "apply")
            why = failed[1][4] if failed else "no apply was recorded"
            fault_problems.append(f"{desc} did not apply ({why})")
            recovery_problems.append(f"{desc} never applied, so there was nothing to recover from")
            spans.append((w.start_s, w.end_s))
            timeline.append((w.start_s, None, None))
            continue
        t_apply = applied[1][0]
        reverted = take("revert", t_apply)
        end = reverted[1][0] if reverted else None
        # the link names a failed re-enable after a proxy recreate just "down"
        names = {desc, "down"} if w.fault.kind == "down" else {desc}
        lost = [e for i, e in enumerate(evs) if i not in used and e[1] == "error" and e[3] == "re-apply" and e[2] in names
                and e[0] >= t_apply and (end is None or e[0] <= end)]
        if lost:
            fault_problems.append(f"{desc} was lost at {lost[0][0]:.1f}s (re-apply failed: {lost[0][4]})")
        if reverted is None:
            failed = take("error", t_apply, "revert")
            why = f"its revert failed: {failed[1][4]}" if failed else "no revert was recorded"
            recovery_problems.append(f"{desc}: {why}")
            end = float(duration_s)
        assert end is not None
        spans.append((w.start_s, max(end, w.start_s)))
        timeline.append((w.start_s, t_apply, None if reverted is None else end))
    phases = derive_phases(spans, duration_s)
    problems: dict[str, str] = {}
    if fault_problems:
        problems["fault"] = "the faults did not really happen: " + "; ".join(fault_problems)
    if recovery_problems:
        problems["recovery"] = "; ".join(recovery_problems)
    return RealisedPhases(phases, problems, tuple(timeline))
