"""Counter readings at phase boundaries, and per-phase deltas that say which readings failed."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from pytest_peakchaos.checks import CounterReading, Phase

#: reads a counter now; ``None`` (or an exception) when it cannot
Source = Callable[[], "CounterReading | None"]


@dataclass(frozen=True)
class Sources:
    """The evidence slots an experiment reads at each phase boundary (``None``: not available;
    the matching ``*_note`` says why)."""

    legacy: Source | None = None
    link: Source | None = None
    generator: Source | None = None
    legacy_note: str = ""
    link_note: str = ""

    def named(self) -> dict[str, Source]:
        out = {"legacy": self.legacy, "link": self.link, "generator": self.generator}
        return {k: v for k, v in out.items() if v is not None}


@dataclass
class BoundaryReadings:
    """Readings of every source at boundaries (seconds since the load's time zero).

    ``values[name][t]`` is the reading, or ``None`` when it failed; ``errors[name][t]`` says why.
    """

    sources: Mapping[str, Source]
    values: dict[str, dict[float, CounterReading | None]] = field(default_factory=dict)
    errors: dict[str, dict[float, str]] = field(default_factory=dict)

    def read(self, t: float) -> None:
        for name, source in self.sources.items():
            try:
                value = source()
                why = "" if value is not None else "no answer"
            except Exception as exc:  # noqa: BLE001 - a failing counter is evidence missing, said so
                value, why = None, f"{type(exc).__name__}: {exc}"
            self.values.setdefault(name, {})[t] = value
            if why:
                self.errors.setdefault(name, {})[t] = why

    def get(self, name: str, t: float) -> CounterReading | None:
        return self.values.get(name, {}).get(t)

    def error(self, name: str, t: float) -> str:
        return self.errors.get(name, {}).get(t, "not read")


def phase_deltas(
    readings: BoundaryReadings, name: str, phases: Sequence[Phase], *, end_t: float | None = None,
) -> tuple[dict[str, float], dict[str, str]]:
    """Per phase name: the counter's growth over the phase; and for phases where a boundary read
    failed, why (``"the legacy counter could not be read at 8s: no answer"``). ``end_t``: the key of
    the reading taken after the run (the last phase ends there)."""
    deltas: dict[str, float] = {}
    unread: dict[str, str] = {}
    for i, p in enumerate(phases):
        a_t = p.start
        b_t = end_t if (end_t is not None and i == len(phases) - 1) else p.end
        a, b = readings.get(name, a_t), readings.get(name, b_t)
        if a is None or b is None:
            t = a_t if a is None else b_t
            unread[p.name] = f"the {name} counter could not be read at {t:g}s: {readings.error(name, t)}"
            continue
        deltas[p.name] = max(0.0, b.value - a.value)
    return deltas, unread
