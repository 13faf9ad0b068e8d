"""Evidence sources: what the checks look at besides the load the engine measured.

One small interface for every counter-like source: a :data:`Source` is a callable returning a
:class:`~pytest_peakchaos.checks.CounterReading` now, or ``None`` when it cannot (it may also
raise; :class:`BoundaryReadings` records why). :class:`Sources` names the slots an experiment
reads at every phase boundary:

* ``legacy``: calls that reached legacy (``GET /stats`` of the legacy service, else the link's
  bytes) -- the amplification check;
* ``link``: bytes cloud sent through the link's Toxiproxy proxy (``-proxy-metrics``) -- proof that
  faults on the link can affect the system (the baseline check);
* ``generator``: a slot for the load generator's own health (not filled yet).

Besides counters: :mod:`.ledger` polls the system of record until it settles (reader contract
``Callable[[], list[dict]]``), :mod:`.faults` turns the link's apply/revert events into the
phases that really happened, and :mod:`.watch` is the helper thread reading sources at the
boundaries while the load runs (and printing the progress line).
"""

from __future__ import annotations

from .boundaries import BoundaryReadings, Source, Sources, phase_deltas
from .counters import legacy_stats_counter, toxiproxy_bytes_counter
from .faults import RealisedPhases, realised_phases
from .ledger import LEDGER_POLL_S, LedgerReader, settle_and_reconcile
from .watch import BoundaryWatcher, EngineProbe

__all__ = [
    "LEDGER_POLL_S",
    "BoundaryReadings",
    "BoundaryWatcher",
    "EngineProbe",
    "LedgerReader",
    "RealisedPhases",
    "Source",
    "Sources",
    "legacy_stats_counter",
    "phase_deltas",
    "realised_phases",
    "settle_and_reconcile",
    "toxiproxy_bytes_counter",
]
