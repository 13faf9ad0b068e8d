"""Graceful-degradation checks: a policy with named, documented thresholds and one function per check.

Every check looks at the load a run measured (:class:`~pytest_peakchaos.load.LoadResult`), the
run's *phases* and, for some, what the stack said afterwards (ledger, legacy call counter):

=====================  ===========================================================================
``baseline``           before any fault, the system works: requests were answered, every action
                       succeeds, none is mostly 404/405, legacy-bound traffic crossed the link
``isolation``          actions that need no legacy keep their success rate (absolute) and their
                       p95 latency (relative to the baseline phase, with an absolute floor)
``fail_fast``          legacy-bound actions answer within a bound (p99), none hangs to the client
                       time-out
``honest_degradation`` failures are explicit (503 / 429 / 202 queued), not 500s, resets or time-outs
``ledger``             every acknowledged order is in the system of record exactly once
``recovery``           after the faults end, success is back to an absolute floor within a bound
``amplification``      calls reaching legacy per legacy-bound action stay under a factor
=====================  ===========================================================================

Phases come from the faults' recorded apply/revert times: ``baseline`` = before the first fault,
``fault`` = from the first fault's start to the last one's revert, ``recovery`` = after that; a run
without faults is one ``baseline`` phase. Every row has one of three outcomes: ``pass``, ``fail``
or ``not measured`` (with the reason: a phase missing or shorter than :attr:`Policy.min_phase_s`,
no counter, a fault that did not really happen, ...). With ``Policy(strict=True)`` (the default) a
``not measured`` row fails the run; with ``strict=False`` it passes with a visible warning.

Windows are whole seconds of the load's per-second series, by *intended* send time, lying fully
inside a phase. Nothing here imports pytest; see docs/checks.md for the numbers and their reasons.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pytest_peakchaos.load.result import LoadResult, LogSketch, WindowStats

__all__ = [
    "CHECK_ALIASES",
    "CHECK_NAMES",
    "NOT_MEASURED",
    "OUTCOMES",
    "CHECKS",
    "PHASE_NAMES",
    "Amplification",
    "Availability",
    "CheckResult",
    "CounterReading",
    "Evidence",
    "Phase",
    "Policy",
    "Reconciliation",
    "SheddingWindow",
    "amplification",
    "baseline",
    "derive_phases",
    "evaluate",
    "fail_fast",
    "format_table",
    "honest_degradation",
    "isolation",
    "ledger",
    "not_measured_warning",
    "recovery",
    "resolve_policy",
    "shedding",
]

#: Every check, in the order they are evaluated and shown.
CHECK_NAMES: tuple[str, ...] = (
    "baseline", "isolation", "fail_fast", "honest_degradation", "ledger", "recovery", "amplification", "shedding",
)
#: Old spellings (README before peakchaos 0.2) -> the check's name; accepted with a DeprecationWarning.
CHECK_ALIASES: dict[str, str] = {"nothing_lost": "ledger", "bounded_amplification": "amplification"}
#: The three outcomes of a row.
PASS, FAIL, NOT_MEASURED = "pass", "fail", "not measured"
OUTCOMES: tuple[str, ...] = (PASS, FAIL, NOT_MEASURED)
PHASE_NAMES: tuple[str, ...] = ("baseline", "fault", "recovery")
#: phase name of checks that look at the whole run
RUN = "run"


# --------------------------------------------------------------------------------------- policy


@dataclass(frozen=True)
class Policy:
    """Thresholds of the graceful-degradation checks. Every field has a default; override with
    :meth:`with_` (``policy.with_(isolation_p95_factor=4, ledger=False)``) or pass a dict of
    overrides as ``checks=`` to ``Experiment.run``.

    A check name given as a key with a bool enables (``True``) or disables (``False``) that check.
    """

    #: isolation: success rate each non-legacy action keeps in every phase. A success is a 2xx/3xx
    #: answer (202 included) that came within the shopper's patience (see ``patience_s``).
    isolation_min_success: float = 0.99
    #: isolation: p95 of a non-legacy action in the fault/recovery phase may be at most this
    #: multiple of its baseline p95 ...
    isolation_p95_factor: float = 3.0
    #: ... or this many ms, whichever is larger (a 2 ms baseline must not make 7 ms a failure).
    isolation_p95_floor_ms: float = 250.0
    #: fail_fast: p99 latency bound of every legacy-bound action, in every phase (ms).
    fail_fast_p99_ms: float = 2000.0
    #: fail_fast: a request that took at least this share of the client time-out "hung" to it.
    fail_fast_hang_fraction: float = 0.9
    #: fail_fast: how many legacy-bound requests may hang to the client time-out in a phase.
    fail_fast_max_hung: int = 0
    #: honest_degradation: error kinds (the load engine's ``ERROR_KINDS``) that are dishonest.
    #: ``status_4xx`` is not here: 409/429/400 are explicit answers.
    dishonest_kinds: tuple[str, ...] = ("status_5xx", "timeout", "reset", "refused", "other")
    #: honest_degradation: status codes that are explicit back-pressure, not breakage. 503 (with
    #: Retry-After) by default; widen it for an edge proxy that answers a fast 504 when the backend
    #: is slow (``honest_statuses=(503, 504)``). 429 is a 4xx and 202 "queued" a success, so both
    #: are honest anyway (429 still needs Retry-After, see ``retry_after_statuses``).
    honest_statuses: tuple[int, ...] = (503,)
    #: honest_degradation: these statuses are honest only with a ``Retry-After`` header: a shopper
    #: (or a client library) must be told when to come back. ``()``: do not require it.
    retry_after_statuses: tuple[int, ...] = (429, 503)
    #: honest_degradation: share of all requests that may fail dishonestly (0: none may).
    honest_max_share: float = 0.0
    #: isolation / recovery: an answer slower than this (s) counts as unavailable: the shopper
    #: refreshed or left (the load engine's impatience fires at exactly this point). ``None``: the
    #: profile's mean patience (double11: 2 s, normal: 10 s), capped at the client time-out.
    patience_s: float | None = None
    #: recovery: seconds after the last fault ends by which success must be back (and stay).
    recovery_within_s: float = 5.0
    #: recovery: the success rate (all actions) to get back to: an absolute floor, never lowered by
    #: a bad baseline (a baseline that bad fails the ``baseline`` check first).
    recovery_min_success: float = 0.99
    #: recovery: success is judged over sliding windows of this many seconds.
    recovery_window_s: float = 2.0
    #: amplification: calls reaching legacy per legacy-bound action, at most (retries, fan-out).
    amplification_max: float = 3.0
    #: amplification: the fault phase is also judged over windows of this many whole seconds
    #: (sliding by one), so a storm that a breaker cuts off now and then is not averaged away
    #: by the seconds it was open. 0: only the phase as a whole.
    amplification_window_s: float = 2.0
    #: shedding: while legacy calls cannot succeed in time (a latency of at least
    #: ``shedding_min_latency_ms``, or a downstream timeout / reset_peer / limit_data), calls
    #: reaching legacy per legacy-bound action, from ``shedding_grace_s`` after the fault starts,
    #: at most. A legacy-bound action makes at least one legacy call when nothing sheds, so 0.5
    #: says: at least half of them no longer reach a legacy that cannot answer (a circuit breaker,
    #: a bulkhead, a queue). Raise it for a cloud whose actions fan out into several calls each.
    shedding_max_calls: float = 0.5
    #: shedding: seconds after a fault starts before shedding is expected (a breaker needs a few
    #: failures to open; calls in flight when the fault starts still land).
    shedding_grace_s: float = 1.0
    #: shedding: a link latency (ms, both streams added) at or above which no legacy call is in
    #: time. The ``fail_fast`` p99 bound by default: a synchronous call through such a link cannot
    #: meet it. Lower latencies are not judged: a cloud may rightly keep calling a slow legacy.
    shedding_min_latency_ms: float = 2000.0
    #: a phase shorter than this (s) cannot serve as a baseline / recovery phase: checks needing
    #: it are not measured.
    min_phase_s: float = 3.0
    #: an action with fewer requests than this in a phase is judged only as part of its group.
    min_requests: int = 20
    #: baseline: an action whose baseline answers are at least this share 404/405 is bound wrongly
    #: (the profile calls routes the system does not have).
    baseline_max_not_found: float = 0.5
    #: strict (default): a check that is enabled but could not be measured fails the run with its
    #: reason. ``False``: such rows pass, with a warning in every report.
    strict: bool = True
    #: the load generator's own p99 delay (loop lag or send delay, ms) above which a second's
    #: latency is the generator's, not the system's: latency-dependent checks over such seconds are
    #: not measured (``LoadResult.generator``; only failures: the delay can only make the system
    #: look worse). 100 ms: on this project's shared 2-core machine, loaded by other jobs, a
    #: lightly loaded generator measured 50-135 ms over whole phases from scheduling alone, and
    #: 100 ms is well below the latency bounds above (250 ms, 2 s); on a dedicated core, 5 ms.
    generator_delay_p99_ms: float = 100.0
    #: the checks that run (names from :data:`CHECK_NAMES`).
    enabled: tuple[str, ...] = CHECK_NAMES

    def __post_init__(self) -> None:
        if not isinstance(self.strict, bool):
            raise ValueError(f"checks: strict must be True or False, got {self.strict!r}")
        for name in ("isolation_min_success", "recovery_min_success", "fail_fast_hang_fraction", "honest_max_share",
                     "baseline_max_not_found"):
            _fraction(name, getattr(self, name))
        for name in ("isolation_p95_factor", "amplification_max"):
            _positive(name, getattr(self, name), minimum=1.0)
        for name in ("isolation_p95_floor_ms", "fail_fast_p99_ms", "recovery_window_s", "generator_delay_p99_ms",
                     "shedding_min_latency_ms"):
            _positive(name, getattr(self, name))
        for name in ("recovery_within_s", "min_phase_s", "shedding_grace_s", "shedding_max_calls", "amplification_window_s"):
            _positive(name, getattr(self, name), minimum=0.0)
        if self.patience_s is not None:
            _positive("patience_s", self.patience_s)
        for name in ("fail_fast_max_hung", "min_requests"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"checks: {name} must be a whole number >= 0, got {value!r}")
        from pytest_peakchaos.load.result import ERROR_KINDS

        kinds = _str_tuple("dishonest_kinds", self.dishonest_kinds)
        bad = [k for k in kinds if k not in ERROR_KINDS]
        if bad:
            raise ValueError(f"checks: dishonest_kinds: unknown kind(s) {', '.join(map(repr, bad))}; valid values: {', '.join(ERROR_KINDS)}")
        object.__setattr__(self, "dishonest_kinds", kinds)
        for fname in ("honest_statuses", "retry_after_statuses"):
            codes = getattr(self, fname)
            if isinstance(codes, (str, bytes)) or not isinstance(codes, Iterable):
                raise ValueError(f"checks: {fname} must be a list of HTTP status codes, got {codes!r}")
            codes = tuple(codes)
            if any(isinstance(c, bool) or not isinstance(c, int) or not 100 <= c <= 599 for c in codes):
                raise ValueError(f"checks: {fname} must be HTTP status codes (100..599), got {list(codes)!r}")
            object.__setattr__(self, fname, codes)
        enabled = tuple(_canonical_check(n) if isinstance(n, str) else n for n in _str_tuple("enabled", self.enabled))
        bad = [n for n in enabled if n not in CHECK_NAMES]
        if bad:
            raise ValueError(f"checks: enabled: unknown check(s) {', '.join(map(repr, bad))}; valid values: {', '.join(CHECK_NAMES)}")
        object.__setattr__(self, "enabled", tuple(n for n in CHECK_NAMES if n in enabled))

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    def with_(self, **overrides: Any) -> Policy:
        """A copy with ``overrides``: threshold fields by name, or a check name mapped to a bool."""
        fields = self.field_names()
        changes: dict[str, Any] = {}
        enabled = list(self.enabled)
        for key, value in overrides.items():
            if key in CHECK_ALIASES:
                key = _canonical_check(key)
            if key in CHECK_NAMES:
                if not isinstance(value, bool):
                    raise ValueError(f"checks: {key} turns a check on or off and takes True or False, got {value!r}")
                if value and key not in enabled:
                    enabled.append(key)
                elif not value and key in enabled:
                    enabled.remove(key)
            elif key in fields:
                changes[key] = value
            else:
                raise ValueError(
                    f"checks: unknown key {key!r}; valid keys: thresholds {', '.join(f for f in fields if f != 'enabled')}, "
                    f"'enabled', or a check name to turn it on/off ({', '.join(CHECK_NAMES)})"
                )
        if "enabled" not in changes:
            changes["enabled"] = tuple(enabled)
        return dataclasses.replace(self, **changes)

    def is_enabled(self, name: str) -> bool:
        return name in self.enabled

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["dishonest_kinds"] = list(self.dishonest_kinds)
        out["honest_statuses"] = list(self.honest_statuses)
        out["retry_after_statuses"] = list(self.retry_after_statuses)
        out["enabled"] = list(self.enabled)
        return out


def _canonical_check(name: str) -> str:
    """A check name, with an old spelling mapped to the current one (with a DeprecationWarning)."""
    if name in CHECK_ALIASES:
        import warnings

        new = CHECK_ALIASES[name]
        warnings.warn(f"checks: {name!r} is now called {new!r}; the old name will be removed", DeprecationWarning, stacklevel=4)
        return new
    return name


def _fraction(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ValueError(f"checks: {name} must be a number from 0 to 1, got {value!r}")


def _positive(name: str, value: object, minimum: float | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"checks: {name} must be a finite number, got {value!r}")
    if minimum is None:
        if value <= 0:
            raise ValueError(f"checks: {name} must be > 0, got {value!r}")
    elif value < minimum:
        raise ValueError(f"checks: {name} must be >= {minimum:g}, got {value!r}")


def _str_tuple(name: str, value: object) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise ValueError(f"checks: {name} must be a list of names, got {value!r}")
    items = tuple(value)
    if not all(isinstance(v, str) for v in items):
        raise ValueError(f"checks: {name} must be a list of names, got {list(items)!r}")
    return items


def resolve_policy(checks: Policy | Mapping[str, Any] | None, base: Policy | None = None) -> Policy:
    """``checks=`` of ``Experiment.run``: a Policy (used as is), a dict of overrides, or None."""
    start = base if base is not None else Policy()
    if checks is None:
        return start
    if isinstance(checks, Policy):
        return checks
    if isinstance(checks, Mapping):
        bad = [k for k in checks if not isinstance(k, str)]
        if bad:
            raise ValueError(f"checks: keys must be names, got {bad!r}")
        return start.with_(**dict(checks))
    raise ValueError(f"checks: expected a Policy, a dict of overrides (e.g. {{'amplification_max': 4}}) or None, got {checks!r}")


# --------------------------------------------------------------------------------------- data


@dataclass(frozen=True)
class Phase:
    """A stretch of the run: ``start``..``end`` seconds after the load's time zero."""

    name: str
    start: float
    end: float

    @property
    def length(self) -> float:
        return self.end - self.start

    def seconds(self) -> tuple[int, int]:
        """The whole seconds ``[lo, hi)`` of the per-second series lying fully inside the phase."""
        lo = int(math.ceil(self.start - 1e-9))
        hi = int(math.floor(self.end + 1e-9))
        return lo, max(lo, hi)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "start": round(self.start, 3), "end": round(self.end, 3)}


def derive_phases(windows: Iterable[tuple[float, float]], duration_s: float) -> tuple[Phase, ...]:
    """Phases of a run from its fault windows ``(start, end)``: baseline / fault / recovery.

    No faults: one ``baseline`` phase over the whole run. Phases of zero length are left out.
    """
    spans = [(float(s), float(e)) for s, e in windows]
    if not spans:
        return (Phase("baseline", 0.0, float(duration_s)),)
    first = min(s for s, _ in spans)
    last = max(e for _, e in spans)
    out = []
    if first > 0:
        out.append(Phase("baseline", 0.0, first))
    out.append(Phase("fault", first, last))
    if last < duration_s:
        out.append(Phase("recovery", last, float(duration_s)))
    return tuple(out)


@dataclass(frozen=True)
class CheckResult:
    """One row of the verdict: a check looked at a phase and found ``measured`` against ``expected``.

    Three outcomes (:attr:`outcome`): ``"pass"``, ``"fail"`` or ``"not measured"`` (``skipped``;
    ``detail`` says why). ``passed`` says whether the row lets the run pass: a ``not measured`` row
    has ``passed=False`` under a strict policy (the default) and ``passed=True`` otherwise
    (:func:`evaluate` sets it).
    """

    name: str
    phase: str
    passed: bool
    expected: str
    measured: str
    detail: str = ""
    skipped: bool = False
    #: not measured for lack of requests (too few in a phase or window): more load would measure it
    too_few: bool = False

    @classmethod
    def not_measured(cls, name: str, phase: str, expected: str, why: str, *, strict: bool = True) -> CheckResult:
        return cls(name, phase, not strict, expected, f"not measured: {why}", why, skipped=True)

    @classmethod
    def skip(cls, name: str, phase: str, expected: str, why: str, *, too_few: bool = False) -> CheckResult:
        """A ``not measured`` row (its ``passed`` is settled by :func:`evaluate` from the policy);
        ``too_few``: for lack of requests, so a busier run would measure it."""
        return cls(name, phase, True, expected, f"not measured: {why}", why, skipped=True, too_few=too_few)

    @property
    def outcome(self) -> str:
        """``"pass"``, ``"fail"`` or ``"not measured"``."""
        return NOT_MEASURED if self.skipped else (PASS if self.passed else FAIL)

    @property
    def reason(self) -> str:
        """Why the row is not measured (empty otherwise)."""
        return self.detail if self.skipped else ""

    @property
    def status(self) -> str:
        """The table's word: ``pass``, ``FAIL`` or ``NOT MEASURED`` (fails the run) / ``not measured``."""
        if self.skipped:
            return "not measured" if self.passed else "NOT MEASURED"
        return "pass" if self.passed else "FAIL"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "phase": self.phase,
            "outcome": self.outcome,
            "passed": self.passed,
            "expected": self.expected,
            "measured": self.measured,
            "reason": self.reason,
            "detail": self.detail,
        }


#: separators after which a ledger key that extends an acknowledged one (``<key>.r2``, ``<key>:retry``)
#: is the same order placed again under a re-minted key (not ``-`` or ``_``: they occur inside keys)
_REKEY_SEPARATORS = ".:#/"


def _order_of(key: str, acked: set[str]) -> str:
    """The acknowledged order a ledger key belongs to: itself, or the acknowledged key it extends
    after a separator (a redelivery under a fresh key is the same order twice); else the key."""
    if key in acked:
        return key
    for i in range(len(key) - 1, 0, -1):
        if key[i] in _REKEY_SEPARATORS and key[:i] in acked:
            return key[:i]
    return key


@dataclass(frozen=True)
class Reconciliation:
    """Acknowledged orders against the system of record, after the outbox had time to drain."""

    acknowledged: int
    found: int
    missing: int
    duplicated: int
    missing_keys: tuple[str, ...] = ()
    duplicated_keys: tuple[str, ...] = ()
    waited_s: float = 0.0
    settled: bool = True
    #: the last error reading the ledger while waiting for it to settle (empty: none)
    last_error: str = ""
    #: found orders whose items were compared with the shopper's cart (see :meth:`reconcile`)
    items_compared: int = 0
    #: ... of which the ledger's row lacks items the shopper had in the cart
    items_short: int = 0
    #: e.g. ``("pc-x-3-0: 17, 42",)``: key and the skus its row lacks
    items_short_keys: tuple[str, ...] = ()
    #: why items were not compared (empty: they were, for ``items_compared`` orders)
    items_note: str = "no items recorded"

    def to_dict(self) -> dict[str, Any]:
        return {
            "acknowledged": self.acknowledged, "found": self.found, "missing": self.missing, "duplicated": self.duplicated,
            "settled": self.settled, "waited_s": round(self.waited_s, 3), "last_error": self.last_error,
            "items_compared": self.items_compared, "items_short": self.items_short, "items_note": self.items_note,
        }

    @classmethod
    def reconcile(
        cls, acknowledged: Iterable[str], ledger_keys: Iterable[str], *, also: Callable[[str], bool] | None = None,
        waited_s: float = 0.0, last_error: str = "",
        ordered: Mapping[str, tuple[tuple[str, ...], tuple[str, ...]]] | None = None,
        ledger_items: Mapping[str, frozenset[str]] | None = None,
    ) -> Reconciliation:
        """Compare acknowledged idempotency keys with the keys of the ledger's rows.

        Duplicates are counted over acknowledged keys and over every key ``also(key)`` accepts
        (the run's own keys that were never acknowledged must not be in the ledger twice either).
        A ledger key that extends an acknowledged one after a separator (``<key>.r2``: a redelivery
        under a re-minted key) counts as that order again.

        Items: ``ordered`` maps an acknowledged key to ``(skus, unsure)``, the skus the shopper's
        cart held when it ordered and those of them whose cart request failed; ``ledger_items``
        maps a ledger key to the skus of its row (``None``: the ledger's rows have no items). A
        found order whose row(s) lack a sure sku is *short*: the shop lost part of the cart.
        Quantities are not compared (the planner's cart holds a sku once; the shop adds up).
        """
        acked = list(dict.fromkeys(k for k in acknowledged if k))
        acked_set = set(acked)
        counts: dict[str, int] = {}
        for key in ledger_keys:
            counts[_order_of(key, acked_set)] = counts.get(_order_of(key, acked_set), 0) + 1
        missing = [k for k in acked if counts.get(k, 0) == 0]
        dup = sorted(k for k, n in counts.items() if n > 1 and (k in acked_set or (also is not None and also(k))))
        compared, short, note = _compare_items(acked_set, counts, ordered, ledger_items)
        return cls(
            acknowledged=len(acked),
            found=len(acked) - len(missing),
            missing=len(missing),
            duplicated=len(dup),
            missing_keys=tuple(missing[:20]),
            duplicated_keys=tuple(dup[:20]),
            waited_s=waited_s,
            settled=not missing,
            last_error=last_error,
            items_compared=compared,
            items_short=len(short),
            items_short_keys=tuple(short[:20]),
            items_note=note,
        )


def _compare_items(
    acked: set[str], counts: Mapping[str, int],
    ordered: Mapping[str, tuple[tuple[str, ...], tuple[str, ...]]] | None, ledger_items: Mapping[str, frozenset[str]] | None,
) -> tuple[int, list[str], str]:
    """(orders compared, ``"<key>: <lost skus>"`` per short order, why not compared)."""
    if not ordered:
        return 0, [], "the load recorded no cart for its orders"
    if ledger_items is None:
        return 0, [], "the ledger's rows have no items"
    got: dict[str, set[str]] = {}
    for key, row_skus in ledger_items.items():
        got.setdefault(_order_of(key, acked), set()).update(row_skus)
    compared = 0
    short: list[str] = []
    for key, (skus, unsure) in ordered.items():
        if counts.get(key, 0) == 0 or not skus:
            continue
        compared += 1
        lost = [s for s in skus if s not in got.get(key, set()) and s not in unsure]
        if lost:
            short.append(f"{key}: {', '.join(lost[:6])}" + (" ..." if len(lost) > 6 else ""))
    return compared, short, "" if compared else "no found order had a known cart"


@dataclass(frozen=True)
class CounterReading:
    """One reading of a legacy call counter: ``value`` in ``unit`` (``"calls"`` or ``"bytes"``)."""

    value: float
    unit: str = "calls"
    source: str = ""


@dataclass(frozen=True)
class Amplification:
    """What reached legacy: counter deltas per phase (``phase -> (delta, legacy-bound actions)``).

    ``unit == "calls"``: deltas are calls, compared with :attr:`Policy.amplification_max` directly.
    ``unit == "bytes"`` (Toxiproxy byte counters): bytes per action relative to the baseline's.
    """

    unit: str
    source: str
    total: float
    actions: int
    per_phase: dict[str, tuple[float, int]] = field(default_factory=dict)
    #: phases whose delta is unknown: a reading at one of their boundaries failed (phase -> why)
    unread: dict[str, str] = field(default_factory=dict)
    #: ``(start, end, delta, legacy-bound actions)`` of short windows inside the fault phase
    #: (``Policy.amplification_window_s``), for the peak
    windows: tuple[tuple[float, float, float, int], ...] = ()

    @property
    def per_action(self) -> float | None:
        return self.total / self.actions if self.actions else None

    def to_dict(self) -> dict[str, Any] | None:
        if self.unit != "calls":
            return None
        per = self.per_action
        return {"calls_per_legacy_action": None if per is None else round(per, 4), "calls": int(round(self.total))}


@dataclass(frozen=True)
class SheddingWindow:
    """What reached legacy during one fault window in which legacy calls could not succeed in
    time, from the grace period's end (``start``) to the window's end (evidence/shedding.py)."""

    fault: str
    #: why calls could not succeed in time under this fault
    why: str
    start: float
    end: float
    #: counter growth over ``start``..``end`` (``None``: not read, ``note`` says why)
    calls: float | None
    #: legacy-bound actions the load sent in the whole seconds of ``start``..``end``
    actions: int
    note: str = ""
    unit: str = "calls"


@dataclass(frozen=True)
class Evidence:
    """Everything the checks look at."""

    load: LoadResult
    phases: tuple[Phase, ...]
    legacy_actions: frozenset[str]
    request_timeout_s: float
    has_faults: bool = True
    #: the profile's (mean) shopper patience, s; ``Policy.patience_s`` overrides it
    patience_s: float | None = None
    ledger: Reconciliation | None = None
    ledger_note: str = "the stack has no ledger hook"
    amplification: Amplification | None = None
    amplification_note: str = "no legacy call counter"
    #: a configured ledger that could not be read (the last error): the ledger check fails
    ledger_error: str = ""
    #: actions that place orders (their binding acknowledges), e.g. ``checkout``
    order_actions: frozenset[str] = frozenset({"checkout"})
    #: phases in which a fault did not really happen as planned (phase -> why): rows of those
    #: phases that would pass are ``not measured`` instead
    phase_problems: Mapping[str, str] = field(default_factory=dict)
    #: bytes cloud sent through the link's proxy per phase (``None``: the read at a boundary failed);
    #: ``None`` as a whole: the link has no byte counter (``link_note`` says why)
    link_bytes: Mapping[str, float | None] | None = None
    link_note: str = "no byte counter on the link"
    #: declared action classes (``Profile.action_classes()``): "cached" actions are judged by their
    #: own bounds (``cached_bounds``), "client" ones send nothing; empty: every non-legacy action is isolated
    action_classes: Mapping[str, str] = field(default_factory=dict)
    #: per-action bounds (``Profile.action_thresholds()``): success, p95_ms, p99_ms
    action_thresholds: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    #: fault windows in which legacy calls could not succeed in time (``shedding`` judges them)
    shedding: tuple[SheddingWindow, ...] = ()
    #: run-relative seconds the latency checks leave out (the load generator was saturated in them:
    #: their latency is the generator's, not the system's); set by :func:`evaluate` when it re-judges
    skip_seconds: frozenset[int] = frozenset()

    def phase(self, name: str) -> Phase | None:
        return next((p for p in self.phases if p.name == name), None)

    def isolated_actions(self) -> list[str]:
        """Actions of the run that need no legacy, most requested first."""
        names = [a for a in self.load.actions if a not in self.legacy_actions
                 and self.action_classes.get(a, "isolated") not in ("cached", "client")]
        return sorted(names, key=lambda a: (-self.load.actions[a].count, a))

    def cached_actions(self) -> list[str]:
        """Actions declared ``class: cached`` (served from a cache, may degrade within bounds)."""
        names = [a for a in self.load.actions if self.action_classes.get(a) == "cached" and a not in self.legacy_actions]
        return sorted(names, key=lambda a: (-self.load.actions[a].count, a))

    def bound_actions(self) -> list[str]:
        names = [a for a in self.load.actions if a in self.legacy_actions]
        return sorted(names, key=lambda a: (-self.load.actions[a].count, a))

    def window(self, phase: Phase, actions: Iterable[str]) -> WindowStats:
        return self.span(*phase.seconds(), actions)

    def span(self, start: float, end: float, actions: Iterable[str] | None = None) -> WindowStats:
        """The run-relative seconds ``[start, end)`` of ``actions`` (all: None), ``skip_seconds`` left out."""
        return self.load.window(start, end, None if actions is None else list(actions), skip=self.skip_seconds)

    def patience_cutoff_s(self, policy: Policy) -> float:
        """Answers slower than this are unavailable to the shopper (capped at the client time-out)."""
        patience = policy.patience_s if policy.patience_s is not None else self.patience_s
        if patience is None or patience <= 0:
            return self.request_timeout_s
        return min(patience, self.request_timeout_s)


@dataclass(frozen=True)
class Availability:
    """Success of a window as shoppers saw it: a 2xx/3xx within their patience."""

    count: int
    unavailable: int
    slow: int
    errors: int

    @property
    def rate(self) -> float:
        return 1.0 - self.unavailable / self.count if self.count else 1.0

    @classmethod
    def of(cls, w: WindowStats, cutoff_s: float) -> Availability:
        slow = _count_at_least(w.sketch, cutoff_s * 1000.0)
        # errors and slow answers overlap (a time-out is both) and the window cannot tell by how
        # much: the larger of the two is a lower bound of what shoppers did not get in time.
        return cls(w.count, min(w.count, max(w.errors, slow)), slow, w.errors)


# --------------------------------------------------------------------------------------- helpers


def _pct(x: float) -> str:
    return f"{100.0 * x:.1f}%"


def _ms(x: float) -> str:
    return f"{x:.0f} ms" if x >= 10 else f"{x:.1f} ms"


def _usable_baseline(ev: Evidence, policy: Policy) -> tuple[Phase | None, str]:
    base = ev.phase("baseline")
    if not ev.has_faults:
        return None, "no faults, so no baseline to compare with"
    if base is None:
        return None, "no baseline phase (the first fault starts at 0s)"
    if base.length < policy.min_phase_s:
        return None, f"no baseline phase: only {base.length:g}s before the first fault (need >= {policy.min_phase_s:g}s)"
    return base, ""


def _count_at_least(sketch: LogSketch, threshold_ms: float) -> int:
    from pytest_peakchaos.load.result import sketch_value

    limit_us = threshold_ms * 1000.0
    return sum(c for k, c in zip(sketch.keys, sketch.counts) if sketch_value(k) >= limit_us * 0.98)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


# --------------------------------------------------------------------------------------- checks


def _kinds_text(kinds: Mapping[str, int], limit: int = 3) -> str:
    top = sorted(((k, n) for k, n in kinds.items() if n), key=lambda kv: -kv[1])[:limit]
    return ", ".join(f"{n} {k}" for k, n in top)


def baseline(ev: Evidence, policy: Policy) -> list[CheckResult]:
    """Before any fault the system works: the run sent requests; every action with at least
    ``min_requests`` baseline requests succeeds at >= ``isolation_min_success``; no action is mostly
    404/405 (a wrong binding); and when legacy-bound actions succeeded, bytes crossed the link's
    proxy. A broken baseline fails this one row and nothing else is judged (:func:`evaluate`)."""
    name = "baseline"
    expected = f"requests answered; every action >= {_pct(policy.isolation_min_success)} success; legacy reached via the link"
    total = sum(s.count for s in ev.load.actions.values())
    if total == 0:
        why = f"0 requests in the run (load stopped: {ev.load.stop_reason or 'unknown'}): nothing reached the system, nothing was judged"
        return [CheckResult(name, RUN, False, expected, why, why)]
    if ev.has_faults:
        base, why = _usable_baseline(ev, policy)
        if base is None:
            return [CheckResult.skip(name, "baseline", expected, why + "; the system was never seen working before a fault")]
    else:
        base = ev.phases[0]
    broken: list[str] = []
    lines: list[str] = []
    judged = 0
    for a in sorted(ev.load.actions, key=lambda x: (-ev.load.actions[x].count, x)):
        w = ev.window(base, [a])
        if w.count == 0:
            continue
        not_found = w.kinds.get("404", 0) + w.kinds.get("405", 0)
        lines.append(f"{a}: {w.ok} of {w.count} succeeded" + (f" ({_kinds_text(w.kinds)})" if w.errors else ""))
        if w.count >= policy.min_requests and not_found >= policy.baseline_max_not_found * w.count:
            broken.append(f"{a}: {not_found} of {w.count} answered 404/405 in the baseline: the profile's binding does not match the system")
            continue
        if w.count < policy.min_requests:
            continue
        judged += 1
        if w.success_rate < policy.isolation_min_success:
            kinds = _kinds_text(w.kinds)
            broken.append(f"{a}: {w.ok} of {w.count} succeeded in the baseline" + (f" ({kinds})" if kinds else ""))
    if broken:
        measured = "; ".join(broken[:3]) + (f"; +{len(broken) - 3} more" if len(broken) > 3 else "")
        measured += ": the system is broken before any fault; nothing else was judged"
        return [CheckResult(name, base.name, False, expected, measured, "; ".join(lines))]
    if judged == 0:
        return [CheckResult.skip(name, base.name, expected, f"no action had {policy.min_requests} requests in the baseline ({base.length:g}s)", too_few=True)]
    bound_ok = sum(ev.window(base, [a]).ok for a in ev.bound_actions())
    link = ""
    if ev.link_bytes is None:
        link = f"; link traffic not verified: {ev.link_note}"
    elif bound_ok:
        crossed = ev.link_bytes.get(base.name)
        if crossed is None:
            link = f"; link traffic not verified: {ev.link_note or 'the byte counter could not be read at a baseline boundary'}"
        elif crossed <= 0:
            later = sum(v for v in ev.link_bytes.values() if v)
            if later <= 0:
                measured = (
                    f"{bound_ok} legacy-bound requests succeeded but 0 bytes crossed the proxy in the baseline (or later): the "
                    "cloud does not reach legacy through the proxy: faults on this link cannot affect it"
                )
                return [CheckResult(name, base.name, False, expected, measured, "; ".join(lines) + f"; {ev.link_note}")]
            link = f"; 0 bytes booked in the baseline, {int(later):,} in the run (Toxiproxy books a connection's bytes when it closes)"
        else:
            link = f"; {int(crossed):,} bytes to legacy through the proxy"
    measured = f"{judged} actions healthy ({sum(ev.window(base, [a]).count for a in ev.load.actions):,} requests){link}"
    return [CheckResult(name, base.name, True, expected, measured, "; ".join(lines))]


def isolation(ev: Evidence, policy: Policy) -> list[CheckResult]:
    """Actions that need no legacy keep success >= ``isolation_min_success`` in every phase, and
    their p95 within ``max(isolation_p95_factor x baseline p95, isolation_p95_floor_ms)`` in the
    fault and recovery phases."""
    name = "isolation"
    k = policy.isolation_p95_factor
    floor = policy.isolation_p95_floor_ms
    cutoff = ev.patience_cutoff_s(policy)
    exp_abs = f"success >= {_pct(policy.isolation_min_success)} within {cutoff:g}s"
    exp_rel = f"{exp_abs}, p95 <= max({k:g}x baseline, {floor:g} ms)"
    actions = ev.isolated_actions()
    base, why_no_base = _usable_baseline(ev, policy)
    out: list[CheckResult] = []
    for phase in ev.phases:
        relative = phase.name != "baseline" and base is not None
        expected = exp_rel if relative else exp_abs
        if not actions:
            out.append(CheckResult.skip(name, phase.name, expected, "the run has no action that needs no legacy"))
            continue
        groupw = ev.window(phase, actions)
        if groupw.count == 0:
            out.append(CheckResult.skip(name, phase.name, expected, "no request of an isolated action in this phase", too_few=True))
            continue
        base_group = ev.window(base, actions) if base is not None else None
        succ_fail: list[tuple[str, float, str]] = []  # (action, rate, " (baseline x%)")
        p95_fail: list[tuple[str, float, float, float]] = []  # (action, p95, baseline p95, bound)
        lines: list[str] = []
        judged: list[tuple[str, WindowStats, WindowStats | None]] = []
        small: list[str] = []
        for a in actions:
            w = ev.window(phase, [a])
            if w.count == 0:
                continue
            bw = ev.window(base, [a]) if base is not None else None
            if w.count < policy.min_requests:
                small.append(a)
                continue
            judged.append((a, w, bw))
        if small:
            sw = ev.window(phase, small)
            if sw.count >= policy.min_requests:
                bw = ev.window(base, small) if base is not None else None
                judged.append(("+".join(small), sw, bw))
        if not judged:
            out.append(CheckResult.skip(name, phase.name, expected, f"fewer than {policy.min_requests} requests of isolated actions", too_few=True))
            continue
        # most requested first: the pages shoppers feel most
        judged.sort(key=lambda j: -j[1].count)
        for a, w, bw in judged:
            av = Availability.of(w, cutoff)
            base_succ = f" (baseline {_pct(Availability.of(bw, cutoff).rate)})" if bw is not None and bw.count else ""
            line = (
                f"{a}: success {_pct(av.rate)}{base_succ} [{av.errors} errors, {av.slow} slower than {cutoff:g}s, n={av.count}]"
                f", p95 {_ms(w.percentile_ms(95))}"
            )
            if av.rate < ev.action_thresholds.get(a, {}).get("success", policy.isolation_min_success):
                succ_fail.append((a, av.rate, base_succ))
            if relative:
                ref = bw if bw is not None and bw.count >= policy.min_requests else base_group
                if ref is not None and ref.count:
                    ref_p95 = ref.percentile_ms(95)
                    bound = max(k * ref_p95, floor)
                    p95 = w.percentile_ms(95)
                    line += f" (baseline {_ms(ref_p95)}, bound {_ms(bound)})"
                    if p95 > bound:
                        p95_fail.append((a, p95, ref_p95, bound))
            lines.append(line)
        note = ""
        if phase.name != "baseline" and base is None:
            note = f"; p95 not compared: {why_no_base}"
        detail = "; ".join(lines) + note
        if succ_fail or p95_fail:
            parts = []
            if succ_fail:
                a, rate, bs = succ_fail[0]
                text = f"{a} success {_pct(rate)}{bs}"
                if len(succ_fail) > 1:
                    text += "; " + ", ".join(f"{x} {_pct(r)}" for x, r, _ in succ_fail[1:])
                parts.append(text)
                if p95_fail:
                    slowest = max(p95_fail, key=lambda f: f[1])
                    parts.append(f"p95 up to {_ms(slowest[1])} (bound {_ms(slowest[3])})")
            else:
                a, p95, ref_p95, bound = p95_fail[0]
                text = f"{a} p95 {_ms(p95)} (baseline {_ms(ref_p95)}, bound {_ms(bound)})"
                if len(p95_fail) > 1:
                    text += "; " + ", ".join(f"{x} {_ms(p)}" for x, p, _, _ in p95_fail[1:])
                parts.append(text)
            out.append(CheckResult(name, phase.name, False, expected, "; ".join(parts), detail))
        else:
            a, w, _ = min(judged, key=lambda j: Availability.of(j[1], cutoff).rate)
            measured = f"lowest: {a} success {_pct(Availability.of(w, cutoff).rate)}; isolated p95 {_ms(groupw.percentile_ms(95))}"
            if relative and base_group is not None and base_group.count:
                measured += f" (baseline {_ms(base_group.percentile_ms(95))})"
            out.append(CheckResult(name, phase.name, True, expected, measured, detail))
    return out + cached_bounds(ev, policy)


#: bounds of a ``class: cached`` action that states none: it may degrade, but must keep answering
CACHED_DEFAULT_SUCCESS = 0.95


def cached_bounds(ev: Evidence, policy: Policy) -> list[CheckResult]:
    """Cached actions (declared ``class: cached``) may degrade, within their stated ``thresholds``
    (success, default 95 %; p95_ms / p99_ms when given), in every phase. Rows are named
    ``isolation`` (they are part of it), phase ``<phase> (cached)``."""
    out: list[CheckResult] = []
    cutoff = ev.patience_cutoff_s(policy)
    for a in ev.cached_actions():
        th = ev.action_thresholds.get(a, {})
        succ = th.get("success", CACHED_DEFAULT_SUCCESS)
        expected = f"{a}: success >= {_pct(succ)} within {cutoff:g}s" + "".join(
            f", {k[:3]} <= {_ms(th[k])}" for k in ("p95_ms", "p99_ms") if k in th)
        for phase in ev.phases:
            w = ev.window(phase, [a])
            if w.count < policy.min_requests:
                out.append(CheckResult.skip("isolation", f"{phase.name} (cached)", expected, f"fewer than {policy.min_requests} requests", too_few=True))
                continue
            av = Availability.of(w, cutoff)
            bad = [f"success {_pct(av.rate)}"] if av.rate < succ else []
            for k, q in (("p95_ms", 95), ("p99_ms", 99)):
                if k in th and w.percentile_ms(q) > th[k]:
                    bad.append(f"p{q} {_ms(w.percentile_ms(q))}")
            measured = f"{a}: success {_pct(av.rate)}, p95 {_ms(w.percentile_ms(95))} (n={av.count})"
            out.append(CheckResult("isolation", f"{phase.name} (cached)", not bad, expected,
                                   f"{a}: " + "; ".join(bad) if bad else measured, measured))
    return out


def fail_fast(ev: Evidence, policy: Policy) -> list[CheckResult]:
    """Legacy-bound actions answer with p99 <= ``fail_fast_p99_ms`` in every phase, and at most
    ``fail_fast_max_hung`` of them take ``fail_fast_hang_fraction`` of the client time-out or more."""
    name = "fail_fast"
    hang_ms = policy.fail_fast_hang_fraction * ev.request_timeout_s * 1000.0
    hung_allowed = "none" if policy.fail_fast_max_hung == 0 else f"<= {policy.fail_fast_max_hung}"
    expected = f"p99 <= {policy.fail_fast_p99_ms:g} ms, {hung_allowed} hung to the {ev.request_timeout_s:g}s time-out"
    actions = ev.bound_actions()
    out: list[CheckResult] = []
    for phase in ev.phases:
        if not actions:
            out.append(CheckResult.skip(name, phase.name, expected, "the run has no legacy-bound action"))
            continue
        groups: list[tuple[str, WindowStats]] = []
        small: list[str] = []
        for a in actions:
            w = ev.window(phase, [a])
            if w.count >= policy.min_requests:
                groups.append((a, w))
            elif w.count:
                small.append(a)
        if small:
            sw = ev.window(phase, small)
            if sw.count >= policy.min_requests or not groups:
                groups.append(("+".join(small), sw))
        groups = [(a, w) for a, w in groups if w.count]
        if not groups:
            out.append(CheckResult.skip(name, phase.name, expected, "no legacy-bound request in this phase", too_few=True))
            continue
        rows = []
        failing: list[str] = []
        for a, w in groups:
            p99 = w.percentile_ms(99)
            hung = _count_at_least(w.sketch, hang_ms)
            rows.append((a, w, p99, hung))
            bad = []
            if p99 > policy.fail_fast_p99_ms:
                bad.append(f"p99 {_ms(p99)}")
            if hung > policy.fail_fast_max_hung:
                bad.append(f"{hung} of {w.count} hung to the {ev.request_timeout_s:g}s time-out")
            if bad:
                failing.append(f"{a} " + ", ".join(bad))
        detail = "; ".join(f"{a}: p99 {_ms(p99)}, max {_ms(w.max_ms)}, {hung} hung, n={w.count}" for a, w, p99, hung in rows)
        if failing:
            measured = "; ".join(failing[:2]) + (f"; +{len(failing) - 2} more" if len(failing) > 2 else "")
            out.append(CheckResult(name, phase.name, False, expected, measured, detail))
        else:
            a, w, p99, hung = max(rows, key=lambda r: r[2])
            out.append(CheckResult(name, phase.name, True, expected, f"slowest: {a} p99 {_ms(p99)}, 0 hung", detail))
    return out


#: suffix the load engine adds to the error kind of a 429/503 answered without ``Retry-After``
NO_RETRY_AFTER = "_no_retry_after"


def _dishonest(kind: str, policy: Policy) -> bool:
    """Whether an error kind of the per-second series (a status code or a transport failure) is dishonest."""
    if kind.endswith(NO_RETRY_AFTER) and kind[:3].isdigit():
        code = int(kind[:3])
        if code in policy.retry_after_statuses:
            return True
        kind = kind[:3]
    if kind.isdigit():
        code = int(kind)
        if code in policy.honest_statuses:
            return False
        if 500 <= code <= 599:
            return "status_5xx" in policy.dishonest_kinds
        return "status_4xx" in policy.dishonest_kinds
    return kind in policy.dishonest_kinds


def honest_degradation(ev: Evidence, policy: Policy) -> list[CheckResult]:
    """Failures are explicit in every phase: no error of a ``dishonest_kinds`` kind (5xx other than
    ``honest_statuses``, time-outs, resets, refused connections), no ``retry_after_statuses`` answer
    without a ``Retry-After`` header, beyond ``honest_max_share``.

    Judged per phase from the per-second error kinds the load engine records (it notes a missing
    ``Retry-After`` on 429/503 answers only, so the per-request cost stays nil for the rest)."""
    name = "honest_degradation"
    honest5 = [c for c in policy.honest_statuses if 500 <= c <= 599]
    kinds = ", ".join(k.replace("status_5xx", "5xx" + (f" (except {'/'.join(map(str, honest5))})" if honest5 else "")) for k in policy.dishonest_kinds)
    if policy.retry_after_statuses:
        kinds += f", {'/'.join(map(str, policy.retry_after_statuses))} without Retry-After"
    share = "none" if policy.honest_max_share == 0 else f"<= {_pct(policy.honest_max_share)}"
    expected = f"{share} of: {kinds}"
    out: list[CheckResult] = []
    for phase in ev.phases:
        w = ev.span(phase.start, phase.end)
        if w.count == 0:
            out.append(CheckResult.skip(name, phase.name, expected, "no request in this phase", too_few=True))
            continue
        by_kind = {k.replace(NO_RETRY_AFTER, " without Retry-After"): n for k, n in w.kinds.items() if n and _dishonest(k, policy)}
        dishonest = sum(by_kind.values())
        honest_5xx = sum(n for k, n in w.kinds.items() if k[:3].isdigit() and int(k[:3]) in honest5 and not _dishonest(k, policy))
        explicit = f"explicit: {w.queued} queued (202), {honest_5xx} {'/'.join(map(str, honest5)) or '503'}"
        n429 = sum(n for k, n in w.kinds.items() if k.startswith("429") and not _dishonest(k, policy))
        if n429:
            explicit += f", {n429} 429"
        kinds_text = ", ".join(f"{n} {k}" for k, n in sorted(by_kind.items(), key=lambda kv: -kv[1]))
        detail = explicit + (f"; Retry-After required on {'/'.join(map(str, policy.retry_after_statuses))}" if policy.retry_after_statuses else "")
        if dishonest > policy.honest_max_share * w.count:
            measured = f"{dishonest} of {w.count} requests ({_pct(dishonest / w.count)}): {kinds_text}"
            out.append(CheckResult(name, phase.name, False, expected, measured, detail))
        else:
            out.append(CheckResult(name, phase.name, True, expected, f"{dishonest} dishonest of {w.count} requests; {explicit}", detail))
    return out


def ledger(ev: Evidence, policy: Policy) -> list[CheckResult]:
    """Every acknowledged order is in the system of record exactly once (nothing lost, nothing
    twice); orders were attempted and some acknowledged; the ledger could be read and settled."""
    name = "ledger"
    phase = "recovery" if ev.phase("recovery") is not None else RUN
    expected = "every acknowledged order exactly once: 0 missing, 0 duplicated, none lacking items of the cart"
    attempted = sum(s.count for a, s in ev.load.actions.items() if a in ev.order_actions)
    if ev.ledger_error:
        return [CheckResult(name, phase, False, expected, f"the ledger could not be read: {ev.ledger_error}", ev.ledger_error)]
    rec = ev.ledger
    if rec is None:
        return [CheckResult.skip(name, phase, expected, ev.ledger_note)]
    waited = f" (waited {rec.waited_s:.1f}s for the outbox)" if rec.waited_s >= 0.05 else ""
    detail = ""
    if rec.missing_keys:
        detail += "missing e.g. " + ", ".join(rec.missing_keys[:5])
    if rec.duplicated_keys:
        detail += ("; " if detail else "") + "duplicated e.g. " + ", ".join(rec.duplicated_keys[:5])
    if rec.last_error:
        detail += ("; " if detail else "") + f"last ledger error: {rec.last_error}"
    if rec.acknowledged == 0 and rec.duplicated == 0:
        if attempted:
            measured = f"{attempted} order attempts ({'/'.join(sorted(ev.order_actions))}), none acknowledged: no order could be checked"
            return [CheckResult(name, phase, False, expected, measured, detail)]
        return [CheckResult.skip(name, phase, expected, "no order was attempted", too_few=True)]
    measured = f"{rec.acknowledged} acknowledged: {rec.found} found, {rec.missing} missing, {rec.duplicated} duplicated{waited}"
    if rec.missing and not rec.settled:
        measured += f"; not settled after {rec.waited_s:.1f}s" + (f" (last error: {_cut(rec.last_error, 80)})" if rec.last_error else "")
    if rec.items_note:
        measured += f"; items not measured: {rec.items_note}"
    elif rec.items_short:
        measured += f"; {rec.items_short} of {rec.items_compared} orders lack items the shopper had in the cart"
        detail += ("; " if detail else "") + "short e.g. " + "; ".join(rec.items_short_keys[:5])
    else:
        measured += f"; items of {rec.items_compared} orders as in the cart"
    passed = rec.missing == 0 and rec.duplicated == 0 and rec.items_short == 0
    return [CheckResult(name, phase, passed, expected, measured, detail)]


def _cut(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def recovery(ev: Evidence, policy: Policy) -> list[CheckResult]:
    """After the last fault was actually reverted, success (all actions, ``recovery_window_s``
    windows) is back to ``recovery_min_success`` -- an absolute floor, never lowered by a bad
    baseline -- within ``recovery_within_s`` and stays there. A run without faults has no row."""
    name = "recovery"
    expected = f"success back to >= {_pct(policy.recovery_min_success)} within {policy.recovery_within_s:g}s"
    rec = ev.phase("recovery")
    if not ev.has_faults:
        return []
    if rec is None or rec.length < policy.min_phase_s:
        have = 0.0 if rec is None else rec.length
        return [CheckResult.skip(name, "recovery", expected, f"no recovery phase: only {have:g}s after the last fault was reverted (need >= {policy.min_phase_s:g}s)")]
    actions = list(ev.load.actions)
    cutoff = ev.patience_cutoff_s(policy)
    target = policy.recovery_min_success
    base = ev.phase("baseline")
    base_text = ""
    if base is not None:
        bw = ev.window(base, actions)
        if bw.count:
            base_text = f" (baseline {_pct(Availability.of(bw, cutoff).rate)})"
    exp = f"success >= {_pct(target)} within {policy.recovery_within_s:g}s of the last revert at {rec.start:.1f}s{base_text}"
    lo, hi = rec.seconds()
    win = max(1, int(round(policy.recovery_window_s)))
    starts = list(range(lo, max(lo, hi - win) + 1))
    rates: list[tuple[int, float | None]] = []
    for s in starts:
        w = ev.span(s, min(hi, s + win), actions)
        rates.append((s, Availability.of(w, cutoff).rate if w.count >= 5 else None))
    if all(r is None for _, r in rates):
        return [CheckResult.skip(name, "recovery", exp, f"fewer than 5 requests in every {win}s window of the recovery phase", too_few=True)]
    recovered_at: int | None = None
    for i in range(len(rates)):
        if all(r is None or r >= target for _, r in rates[i:]) and any(r is not None for _, r in rates[i:]):
            recovered_at = rates[i][0]
            break
    rw = ev.window(rec, actions)
    trail = ", ".join(f"{s}s {_pct(r)}" for s, r in rates[:12] if r is not None)
    detail = (
        f"success = 2xx/3xx within {cutoff:g}s; recovery phase {_pct(Availability.of(rw, cutoff).rate)} (n={rw.count}); "
        f"{win}s windows from {lo}s: {trail}"
    )
    if recovered_at is None:
        last = next((r for _, r in reversed(rates) if r is not None), None)
        measured = "not back by the end of the run" + (f": {_pct(last)} in the last {win}s" if last is not None else "")
        return [CheckResult(name, "recovery", False, exp, measured, detail)]
    after = max(0.0, recovered_at - rec.start)
    passed = after <= policy.recovery_within_s + 1e-9
    measured = f"back to >= {_pct(target)} {after:.0f}s after the last revert"
    return [CheckResult(name, "recovery", passed, exp, measured, detail)]


def amplification(ev: Evidence, policy: Policy) -> list[CheckResult]:
    """Calls reaching legacy per legacy-bound action <= ``amplification_max`` in every phase."""
    name = "amplification"
    amp = ev.amplification
    expected = f"<= {policy.amplification_max:g} legacy calls per legacy-bound action"
    if amp is None:
        return [CheckResult.skip(name, RUN, expected, ev.amplification_note)]
    out: list[CheckResult] = []
    if amp.unit != "calls":
        expected = f"<= {policy.amplification_max:g}x the baseline's {amp.unit} per legacy-bound action"
        base = amp.per_phase.get("baseline")
        if base is None or base[1] < policy.min_requests or base[0] <= 0:
            return [CheckResult.skip(name, RUN, expected, f"{amp.unit} counter ({amp.source}) needs a baseline phase to compare with")]
        ref = base[0] / base[1]
        for phase in ev.phases:
            if phase.name in amp.unread and phase.name != "baseline":
                out.append(CheckResult.skip(name, phase.name, expected, amp.unread[phase.name]))
                continue
            if phase.name == "baseline" or phase.name not in amp.per_phase:
                continue
            delta, n = amp.per_phase[phase.name]
            if n < policy.min_requests:
                out.append(CheckResult.skip(name, phase.name, expected, f"only {n} legacy-bound actions", too_few=True))
                continue
            factor = (delta / n) / ref
            measured = f"{factor:.2f}x baseline ({delta / n:.0f} {amp.unit}/action vs {ref:.0f})"
            out.append(CheckResult(name, phase.name, factor <= policy.amplification_max, expected, measured, f"source: {amp.source}"))
        return out or [CheckResult.skip(name, RUN, expected, "no phase besides the baseline")]
    base_text = ""
    if ev.has_faults and "baseline" in amp.per_phase:
        bd, bn = amp.per_phase["baseline"]
        base_text = f"baseline (not judged): {int(round(bd))} calls / {bn} actions; "
    for phase in ev.phases:
        # With faults, the baseline is not judged: it is what faults are compared with, and at
        # its (usually low) load background calls such as a cache refresher dominate the ratio.
        if phase.name in amp.unread and not (ev.has_faults and phase.name == "baseline"):
            out.append(CheckResult.skip(name, phase.name, expected, amp.unread[phase.name]))
            continue
        if phase.name not in amp.per_phase or (ev.has_faults and phase.name == "baseline"):
            continue
        delta, n = amp.per_phase[phase.name]
        if n < policy.min_requests:
            out.append(CheckResult.skip(name, phase.name, expected, f"only {n} legacy-bound actions in this phase"))
            continue
        per = delta / n
        measured = f"{per:.2f} calls per action ({int(round(delta))} calls / {n} actions)"
        passed = per <= policy.amplification_max
        peak = _peak(amp, policy) if phase.name == "fault" else None
        if peak is not None:
            t0, t1, pd, pn = peak
            measured += f"; peak {pd / pn:.2f} in {t0:g}s-{t1:g}s ({int(round(pd))} calls / {pn} actions)"
            passed = passed and pd / pn <= policy.amplification_max
        out.append(CheckResult(name, phase.name, passed, expected, measured, f"{base_text}counted at legacy: {amp.source}"))
    return out or [CheckResult.skip(name, RUN, expected, "no counter readings per phase")]


def shedding(ev: Evidence, policy: Policy) -> list[CheckResult]:
    """While legacy calls cannot succeed in time (:attr:`Evidence.shedding`: a latency of at least
    ``shedding_min_latency_ms``, or a downstream timeout / reset_peer / limit_data), calls reaching
    legacy per legacy-bound action, from ``shedding_grace_s`` after the fault starts to its end,
    are at most ``shedding_max_calls``. No row when no such fault ran (nothing to judge)."""
    name = "shedding"
    if not ev.shedding:
        return []
    expected = f"<= {policy.shedding_max_calls:g} legacy calls per legacy-bound action, from {policy.shedding_grace_s:g}s into the fault"
    amp = ev.amplification
    if amp is None:
        return [CheckResult.skip(name, "fault", expected, ev.amplification_note)]
    if amp.unit != "calls":
        return [CheckResult.skip(name, "fault", expected, f"needs a count of calls at legacy; the counter ({amp.source}) counts {amp.unit}")]
    base_text = ""
    if "baseline" in amp.per_phase:
        bd, bn = amp.per_phase["baseline"]
        base_text = f"; baseline (not judged): {int(round(bd))} calls / {bn} actions"
    out: list[CheckResult] = []
    for w in ev.shedding:
        where = f"{w.fault}, {w.start:g}s-{w.end:g}s"
        if w.calls is None:
            out.append(CheckResult.skip(name, "fault", expected, f"{where}: {w.note}"))
            continue
        if w.actions < policy.min_requests:
            out.append(CheckResult.skip(name, "fault", expected, f"{where}: only {w.actions} legacy-bound actions after the grace", too_few=True))
            continue
        per = w.calls / w.actions
        measured = f"{per:.2f} calls per action ({int(round(w.calls))} calls / {w.actions} actions, {w.start:g}s-{w.end:g}s)"
        passed = per <= policy.shedding_max_calls
        if not passed:
            measured += ": legacy kept getting calls it could not answer in time"
        detail = f"{w.fault}: {w.why}{base_text}; counted at legacy: {amp.source}"
        out.append(CheckResult(name, "fault", passed, expected, measured, detail))
    return out


def _peak(amp: Amplification, policy: Policy) -> tuple[float, float, float, int] | None:
    """The fault-phase window with the most calls per legacy-bound action, among those with at
    least ``min_requests`` actions (None: no such window)."""
    judged = [w for w in amp.windows if w[3] >= policy.min_requests]
    return max(judged, key=lambda w: w[2] / w[3]) if judged else None


CHECKS: dict[str, Callable[[Evidence, Policy], list[CheckResult]]] = {
    "baseline": baseline,
    "isolation": isolation,
    "fail_fast": fail_fast,
    "honest_degradation": honest_degradation,
    "ledger": ledger,
    "recovery": recovery,
    "amplification": amplification,
    "shedding": shedding,
}


def _settle(row: CheckResult, ev: Evidence, policy: Policy) -> CheckResult:
    """A row's final form: a pass in a phase whose fault did not really happen is ``not measured``;
    a ``not measured`` row passes only under a lenient policy."""
    problem = ev.phase_problems.get(row.phase)
    if problem and row.passed and not row.skipped:
        row = CheckResult.skip(row.name, row.phase, row.expected, problem)
    if row.skipped:
        row = dataclasses.replace(row, passed=not policy.strict)
    return row


#: checks whose verdict depends on measured latency (time-outs and "within patience" included)
LATENCY_CHECKS: tuple[str, ...] = ("isolation", "fail_fast", "honest_degradation", "recovery")


def evaluate(ev: Evidence, policy: Policy) -> list[CheckResult]:
    """Run every enabled check, in :data:`CHECK_NAMES` order; a failed ``baseline`` stops there
    (nothing is judged against a system that was broken before any fault)."""
    out: list[CheckResult] = []
    for name in CHECK_NAMES:
        if policy.is_enabled(name):
            rows = CHECKS[name](ev, policy)
            if name in LATENCY_CHECKS:
                rows = [_unless_generator_saturated(ev, policy, r) for r in rows]
            out.extend(rows)
            if name == "baseline" and any(r.outcome == FAIL for r in rows):
                break
    return [_settle(r, ev, policy) for r in out]


def not_measured_warning(rows: Sequence[CheckResult]) -> str | None:
    """The warning a lenient policy prints for rows that were not measured (None: there are none)."""
    nm = [r for r in rows if r.skipped and r.passed]
    if not nm:
        return None
    return f"warning: {len(nm)} check row(s) not measured and passed only because strict=False: " + "; ".join(
        f"{r.name}/{r.phase} ({r.reason})" for r in nm[:4]
    ) + ("; ..." if len(nm) > 4 else "")


def _unless_generator_saturated(ev: Evidence, policy: Policy, row: CheckResult) -> CheckResult:
    """``row``, judged again without the seconds in which the load generator was saturated when it
    failed with such seconds among those it judged (its phase, and the baseline it compares with).

    Only failures: the generator's delay adds to latency, time-outs and impatience, so it can make
    a system look worse, never better; a check that passed despite it passed. The failed row is
    judged again on the seconds the generator kept up in (its own p99 delay within the policy's
    bound) and passes or fails on them, saying which seconds were left out and why. When fewer than
    half of a phase's seconds (or fewer than ``min_phase_s``) are left, it is *not measured*."""
    gen = getattr(ev.load, "generator", None)
    if row.skipped or row.passed or not gen:
        return row
    from pytest_peakchaos.load.result import seconds_phrase

    bound = policy.generator_delay_p99_ms
    compared = ("baseline",) if row.name in ("isolation", "recovery") else ()  # relative to the baseline
    phases = list(ev.phases) if row.phase == RUN else [p for p in ev.phases if p.name == row.phase or p.name in compared]
    bad: set[int] = set()
    for phase in phases:
        lo, hi = phase.seconds()
        sat = gen.saturated_in(lo, hi, bound)
        if sat and hi - lo - len(sat) < max(policy.min_phase_s, (hi - lo) / 2.0):
            why = gen.saturated_window(lo, hi, bound) or gen.describe(bound, sat)
            return CheckResult.skip(row.name, row.phase, row.expected, why if phase.name == row.phase else f"{why} (in the {phase.name} it is compared with)")
        bad.update(sat)
    if not bad:
        return row
    rows = CHECKS[row.name](dataclasses.replace(ev, skip_seconds=ev.skip_seconds | bad), policy)
    again = next((r for r in rows if r.phase == row.phase), None)
    left_out = (f"{seconds_phrase(bad)} left out: the load generator was saturated there (its own p99 delay "
                f"up to {gen.worst_ms(bad):.0f} ms, bound {bound:g} ms)")
    if again is None or again.skipped:
        return CheckResult.skip(row.name, row.phase, row.expected, "; ".join(x for x in ((again.reason if again else ""), left_out) if x))
    return dataclasses.replace(again, measured=f"without {seconds_phrase(bad)} (generator saturated): {again.measured}",
                               detail="; ".join(x for x in (again.detail, left_out) if x))


# --------------------------------------------------------------------------------------- table


def format_table(rows: Sequence[CheckResult], *, failed_first: bool = True, max_cell: int = 100) -> str:
    """An aligned text table: check | phase | expected | measured | ok (failed rows first)."""
    ordered = list(rows)
    if failed_first:
        ordered = [r for r in ordered if not r.passed] + [r for r in ordered if r.passed]

    def cell(text: str) -> str:
        text = " ".join(text.split())
        return text if len(text) <= max_cell else text[: max_cell - 1] + "…"

    table = [("check", "phase", "expected", "measured", "result")]
    table += [(r.name, r.phase, cell(r.expected), cell(r.measured), r.status) for r in ordered]
    widths = [max(len(row[i]) for row in table) for i in range(4)]
    lines = []
    for i, row in enumerate(table):
        lines.append("  ".join(row[j].ljust(widths[j]) for j in range(4)) + "  " + row[4])
        if i == 0:
            lines.append("  ".join("-" * w for w in widths) + "  ------")
    return "\n".join(line.rstrip() for line in lines)
