"""One call runs a chaos experiment: load + a fault schedule in step with it + the verdict.

    from pytest_peakchaos import latency
    from pytest_peakchaos.experiment import Experiment

    result = Experiment(stack).run(
        profile="double11", duration="40s",
        faults=[latency(ms=800, jitter=200, start="8s", length="20s")],
    )
    print(result.summary())
    result.assert_graceful()          # GracefulDegradationError: a table read in five seconds

What ``run`` does, in order:

1. validates everything up front (profile, duration, faults inside the duration, the policy);
2. reads legacy's call counter (default: ``GET <legacy>/stats``, straight to the container);
3. runs the load (``run_load``, blocking, in the calling thread) and, from the load's time zero
   (``on_start``), the fault schedule on the link (``Link.run_schedule``); a helper thread reads
   the counter at every phase boundary and reports progress once a second;
4. stops and reverts the schedule in ``finally`` (every exit path: errors, Ctrl-C);
5. waits (at most ``settle``) until every acknowledged order is in the ledger, then reconciles;
6. evaluates the checks (:mod:`pytest_peakchaos.checks`) and returns an :class:`ExperimentResult`.

No pytest import here: the plugin's ``peakchaos`` fixture and marker are thin wrappers over this.
"""

from __future__ import annotations

import dataclasses
import math
import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

# pytest_peakchaos.load must be imported before pytest_peakchaos.profiles (import cycle there).
import pytest_peakchaos.load  # noqa: F401
from pytest_peakchaos.checks import (
    Amplification,
    CheckResult,
    CounterReading,
    Evidence,
    Phase,
    Policy,
    Reconciliation,
    derive_phases,
    evaluate,
    format_table,
    not_measured_warning,
    resolve_policy,
)
from pytest_peakchaos.evidence import (
    LEDGER_POLL_S,
    BoundaryWatcher,
    EngineProbe,
    BoundaryReadings,
    Sources,
    legacy_stats_counter,
    phase_deltas,
    realised_phases,
    settle_and_reconcile,
    toxiproxy_bytes_counter,
)
from pytest_peakchaos.evidence.shedding import grace_boundaries, peak_boundaries, peak_windows, shedding_windows
from pytest_peakchaos.faults import Fault, FaultSchedule, FaultWindow
from pytest_peakchaos.units import format_duration, parse_duration

if TYPE_CHECKING:
    from pytest_peakchaos.link import Link
    from pytest_peakchaos.load.result import LoadResult, WindowStats
    from pytest_peakchaos.profiles.model import Profile
    from pytest_peakchaos.stack.base import Stack

__all__ = [
    "LEDGER_POLL_S",
    "DEFAULT_CONCURRENCY_CAP",
    "DEFAULT_MAX_REQUESTS",
    "Experiment",
    "ExperimentResult",
    "GracefulDegradationError",
    "LegacyCounter",
    "LedgerReader",
    "legacy_stats_counter",
    "toxiproxy_bytes_counter",
]

#: Hard bound on requests of one run (run_load stops sending beyond it).
DEFAULT_MAX_REQUESTS = 500_000
#: Most shopper sessions active at once; arrivals beyond it count as ``refused_by_cap``.
DEFAULT_CONCURRENCY_CAP = 2_000
#: Reads a counter of what reached legacy; ``None`` when it cannot.
LegacyCounter = Callable[[], "CounterReading | None"]
#: Reads the system of record: rows with an ``idempotency_key``.
LedgerReader = Callable[[], "list[dict[str, Any]]"]
ProgressFn = Callable[[str], None]


class GracefulDegradationError(AssertionError):
    """``ExperimentResult.assert_graceful()`` failed; the message is the verdict table."""

    def __init__(self, message: str, result: ExperimentResult) -> None:
        super().__init__(message)
        self.result = result


# --------------------------------------------------------------------------------------- result


def _r3(x: float | None) -> float | None:
    return None if x is None else round(float(x), 3)


def _status_classes(status: Mapping[str, int], count: int) -> dict[str, int]:
    out: dict[str, int] = {}
    seen = 0
    for code, n in status.items():
        cls = f"{code[0]}xx" if code.isdigit() and len(code) == 3 else "none"
        out[cls] = out.get(cls, 0) + int(n)
        seen += int(n)
    if count > seen:
        out["none"] = out.get("none", 0) + count - seen
    return dict(sorted(out.items()))


@dataclass
class ExperimentResult:
    """What one experiment measured and concluded. ``passed`` iff every check passed."""

    name: str
    load: LoadResult
    seed: int
    profile: str
    scale: float
    duration_s: float
    phases: tuple[Phase, ...]
    faults: tuple[Fault, ...]
    fault_windows: tuple[FaultWindow, ...]
    fault_events: list[dict[str, Any]]
    ledger: Reconciliation | None
    amplification: Amplification | None
    checks: list[CheckResult]
    policy: Policy
    legacy_actions: frozenset[str]
    request_timeout_s: float
    wall_s: float = 0.0
    fault_errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: the stack it ran against: {"file", "project", "run_id", "backend"} (``peakchaos report`` shows it)
    stack: dict[str, str] = field(default_factory=dict)

    # -- verdict ------------------------------------------------------------------------------
    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def verdict(self) -> str:
        """``graceful``; ``not measured`` when nothing failed but some rows could not be measured
        (a strict policy does not pass them: e.g. a saturated load generator); else ``not graceful``."""
        if self.passed:
            return "graceful"
        return "not graceful" if any(c.outcome == "fail" for c in self.checks) else "not measured"

    @property
    def failures(self) -> list[CheckResult]:
        return [c for c in self.checks if not c.passed]

    def check(self, name: str, phase: str | None = None) -> CheckResult:
        """The row of check ``name`` (in ``phase``, or the first one)."""
        for c in self.checks:
            if c.name == name and (phase is None or c.phase == phase):
                return c
        raise KeyError(f"no check {name!r}" + (f" in phase {phase!r}" if phase else "") + f"; rows: {[(c.name, c.phase) for c in self.checks]}")

    @property
    def replay(self) -> str:
        return f"replay: seed={self.seed} profile={self.profile} scale={self.scale:g}"

    def table(self) -> str:
        return format_table(self.checks)

    def failure_message(self) -> str | None:
        """The ``assert_graceful()`` message, or ``None`` when every check passed."""
        if self.passed:
            return None
        bad = self.failures
        head = f"graceful degradation failed: {len(bad)} of {len(self.checks)} checks"
        if self.name:
            head += f" ({self.name})"
        faults = "; ".join(f.describe() for f in self.faults) or "no faults"
        nm = [c for c in bad if c.skipped]
        lines = [head, f"faults: {faults}"]
        if nm:
            lines.append(f"{len(nm)} of them not measured, which fails a strict policy (checks={{'strict': False}} makes them warnings)")
        lines += ["", self.table(), ""]
        for c in bad:
            if c.detail:
                detail = c.detail if len(c.detail) <= 400 else c.detail[:399] + "…"
                lines.append(f"  {c.name}/{c.phase}: {detail}")
        lines.append(self.replay)
        return "\n".join(lines)

    @property
    def warning(self) -> str | None:
        """With ``strict=False``: the rows that passed only because they were not measured."""
        return not_measured_warning(self.checks)

    def assert_graceful(self) -> None:
        """Raise :class:`GracefulDegradationError` (an ``AssertionError``) unless every check passed."""
        msg = self.failure_message()
        if msg is not None:
            raise GracefulDegradationError(msg, self)

    # -- numbers ------------------------------------------------------------------------------
    @property
    def legacy_calls_per_session(self) -> float:
        """Requests of legacy-bound actions per started session (the Double-11 lesson's number)."""
        started = self.load.sessions.started
        calls = sum(s.count for a, s in self.load.actions.items() if a in self.legacy_actions)
        return calls / started if started else 0.0

    def phase(self, name: str) -> Phase:
        for p in self.phases:
            if p.name == name:
                return p
        raise KeyError(f"no phase {name!r}; phases: {', '.join(p.name for p in self.phases)}")

    def phase_window(self, name: str, actions: Iterable[str] | None = None) -> WindowStats:
        """Load measured in the whole seconds of phase ``name`` (all actions, or ``actions``)."""
        lo, hi = self.phase(name).seconds()
        return self.load.window(lo, hi, None if actions is None else list(actions))

    @property
    def requests(self) -> int:
        return sum(s.count for s in self.load.actions.values())

    # -- export -------------------------------------------------------------------------------
    def to_dict(self, test: str | None = None) -> dict[str, Any]:
        """The ``peakchaos/2`` run dict (see pytest_peakchaos.report.schema)."""
        load = self.load
        actions: dict[str, Any] = {}
        for a, s in sorted(load.actions.items()):
            empty = s.count == 0
            actions[a] = {
                "count": s.count,
                "ok": s.ok,
                "errors": s.error_count,
                "queued": s.queued,
                "p50_ms": None if empty else _r3(s.p50_ms),
                "p95_ms": None if empty else _r3(s.p95_ms),
                "p99_ms": None if empty else _r3(s.p99_ms),
                "max_ms": None if empty else _r3(s.max_ms),
                "errors_by_kind": {k: int(v) for k, v in s.errors.items()},
                "status_classes": _status_classes(s.status, s.count),
            }
        series: dict[str, list[dict[str, Any]]] = {}
        for a in sorted(load.series):
            rows = []
            for st in load.timeline(a):
                none = st.count == 0
                rows.append({
                    "t": st.second,
                    "count": st.count,
                    "ok": st.ok,
                    "errors": st.errors,
                    "queued": st.queued,
                    "p50_ms": None if none else _r3(st.p50_ms),
                    "p95_ms": None if none else _r3(st.p95_ms),
                    "p99_ms": None if none else _r3(st.p99_ms),
                })
            series[a] = rows
        faults = []
        for w in self.fault_windows:
            d = w.fault.to_dict()
            d.update({"describe": w.fault.describe(), "start": round(w.start_s, 3), "end": round(w.end_s, 3)})
            faults.append(d)
        sessions = load.sessions
        return {
            "test": self.name if test is None else test,
            "stack": dict(self.stack),
            "seed": self.seed,
            "profile": self.profile,
            "scale": float(self.scale),
            "duration_s": float(self.duration_s),
            "passed": self.passed,
            "verdict": self.verdict,
            "strict": self.policy.strict,
            "not_measured": sum(1 for c in self.checks if c.skipped),
            "warning": self.warning,
            "phases": [p.to_dict() for p in self.phases],
            "faults": faults,
            "fault_events": [
                {"t": float(e["t"]), "action": str(e["action"]), "fault": str(e["fault"]), "via": str(e.get("via", ""))}
                for e in self.fault_events
            ],
            "sessions": {
                "arrived": sessions.arrived,
                "started": sessions.started,
                "refused_by_cap": sessions.refused_by_cap,
                "completed": sessions.completed,
                "abandoned": sessions.abandoned,
            },
            "requests": int(load.requests_sent),
            "legacy_calls_per_session": round(self.legacy_calls_per_session, 4),
            "legacy_actions": sorted(self.legacy_actions),
            "actions": actions,
            "series": series,
            "checks": [c.to_dict() for c in self.checks],
            "ledger": None if self.ledger is None else self.ledger.to_dict(),
            "legacy": None if self.amplification is None else self.amplification.to_dict(),
            "failure": self.failure_message(),
        }

    def summary(self) -> str:
        """A few lines for people: the run, its phases and faults, the verdict table."""
        load = self.load
        n = self.requests
        rps = n / load.elapsed_s if load.elapsed_s > 0 else 0.0
        errors = sum(s.error_count for s in load.actions.values())
        verdict = "PASSED" if self.passed else f"FAILED ({len(self.failures)} of {len(self.checks)} checks)"
        head = f"peakchaos {self.name or 'experiment'}: {verdict}"
        s = load.sessions
        lines = [
            head,
            f"  {self.profile} x{self.scale:g} for {format_duration(self.duration_s)} (wall {self.wall_s:.1f}s), seed {self.seed}: "
            f"{n} requests ({rps:.0f}/s), {errors} errors, sessions {s.started} started"
            + (f" / {s.refused_by_cap} refused by cap" if s.refused_by_cap else "")
            + f", legacy calls/session {self.legacy_calls_per_session:.2f}",
            "  phases: " + ", ".join(f"{p.name} {p.start:g}-{p.end:g}s" for p in self.phases),
            "  faults: " + ("; ".join(w.fault.describe() for w in self.fault_windows) or "none"),
        ]
        generator = load.generator.describe(self.policy.generator_delay_p99_ms)
        if generator:
            lines.append(f"  generator: {generator}")
        if self.amplification is not None and self.amplification.per_action is not None:
            amp = self.amplification
            lines.append(f"  legacy: {amp.total:.0f} {amp.unit} for {amp.actions} legacy-bound actions ({amp.per_action:.2f} per action)")
        if self.ledger is not None:
            r = self.ledger
            lines.append(f"  ledger: {r.acknowledged} acknowledged, {r.found} found, {r.missing} missing, {r.duplicated} duplicated")
        for e in self.fault_errors:
            lines.append(f"  fault schedule error: {e}")
        for note in self.notes:
            lines.append(f"  note: {note}")
        if self.warning:
            lines.append("  " + self.warning)
        lines.append("")
        lines.extend("  " + line for line in self.table().splitlines())
        lines.append("  " + self.replay)
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<ExperimentResult {self.name or ''} {self.profile} seed={self.seed} passed={self.passed} checks={len(self.checks)}>"


# --------------------------------------------------------------------------------------- experiment


class Experiment:
    """Runs chaos experiments against a running stack: ``Experiment(stack).run(...)``.

    * ``link``: the link faults go on (default: the stack's only link);
    * ``base_url``: where the load goes (default: the link's client service, e.g. ``cloud``);
    * ``name``: shown in messages and the report (the plugin passes the test's node id);
    * ``seed`` / ``scale``: defaults for ``run`` (``seed=None``: a fresh random seed per run);
    * ``on_progress``: gets a one-line status about once a second, from a helper thread;
    * ``legacy_counter``: callable reading what reached legacy (default: legacy's ``/stats``,
      then Toxiproxy's byte metrics, else the amplification check is not measured);
    * ``ledger``: callable returning the system of record's rows (default: ``stack.ledger()``);
    * ``policy``: the default thresholds (``run(checks=...)`` overrides per run).
    """

    def __init__(
        self,
        stack: Stack,
        *,
        link: str | None = None,
        base_url: str | None = None,
        name: str = "",
        seed: int | None = None,
        scale: float = 1.0,
        on_progress: ProgressFn | None = None,
        legacy_counter: LegacyCounter | None = None,
        ledger: LedgerReader | None = None,
        policy: Policy | None = None,
    ) -> None:
        self.stack = stack
        self.link_name = link
        self.name = name
        self.seed = _check_seed(seed)
        self.scale = _check_scale(scale)
        self.on_progress = on_progress
        self.policy = policy if policy is not None else Policy()
        self._link: Link | None = None
        spec_link = None
        links = list(getattr(stack.spec, "links", []) or [])
        if link is not None:
            spec_link = next((s for s in links if s.name == link), None)
            if spec_link is None:
                names = ", ".join(s.name for s in links) or "(none)"
                raise ValueError(f"link: the stack has no link {link!r}; links: {names}")
        elif len(links) == 1:
            spec_link = links[0]
        elif len(links) > 1 and base_url is None:
            raise ValueError(f"link: the stack has several links; name one of: {', '.join(s.name for s in links)}")
        self.spec_link = spec_link
        if base_url is None:
            if spec_link is None:
                raise ValueError("base_url: the stack declares no legacy link, so give the URL of the service to load")
            base_url = stack.url(spec_link.client)
        self.base_url = base_url
        self._counter = legacy_counter
        self._ledger = ledger

    # -- collaborators --------------------------------------------------------------------------
    @property
    def link(self) -> Link | None:
        if self._link is None and self.spec_link is not None:
            self._link = self.stack.link(self.spec_link.name)
        return self._link

    def _sources(self) -> Sources:
        """The evidence slots: legacy's call counter (``/stats``, else the link's bytes) and the
        link's byte counter (Toxiproxy ``-proxy-metrics``)."""
        if self.spec_link is None:
            return Sources(self._counter, None, None, "" if self._counter else "no legacy link, so no legacy call counter",
                           "no legacy link")
        problems = []
        link: LegacyCounter | None = None
        link_note = ""
        try:
            api = self.stack.toxiproxy.api_url
        except Exception as exc:  # noqa: BLE001
            link_note = f"Toxiproxy: {exc}"
        else:
            tcounter = toxiproxy_bytes_counter(
                api, self.spec_link.name, metrics_on=bool(getattr(self.stack, "proxy_metrics", False))
            )
            if tcounter() is not None:
                link = tcounter
            else:
                link_note = "Toxiproxy exposes no proxy byte metrics (start it with -proxy-metrics)"
        if self._counter is not None:
            return Sources(self._counter, link, None, "", link_note)
        try:
            url = self.stack.url(self.spec_link.service, self.spec_link.port)
        except Exception as exc:  # noqa: BLE001 - a stack without that endpoint: try the next source
            problems.append(f"legacy endpoint: {exc}")
        else:
            counter = legacy_stats_counter(url)
            if counter() is not None:
                return Sources(counter, link, None, "", link_note)
            problems.append(f"{url}/stats gave no request counters")
        if link is not None:
            return Sources(link, link, None, "", link_note)
        problems.append(link_note)
        return Sources(None, None, None, "no legacy call counter: " + "; ".join(problems) + "; pass legacy_counter=...", link_note)

    def _flush_link_counter(self, sources: Sources, readings: BoundaryReadings) -> str:
        """Toxiproxy adds a connection's bytes to its counter when the connection closes, so a
        cloud with a keep-alive pool shows 0 bytes however much it sent. When the link counter
        has not grown, the proxy is disabled and enabled once (after the run and the ledger:
        nothing is measured any more), which closes its connections and books their bytes."""
        if sources.link is None or self.spec_link is None:
            return ""
        first = readings.get("link", 0.0)
        try:
            now = sources.link()
        except Exception:  # noqa: BLE001 - the end-of-run reading reports it
            return ""
        if first is None or now is None or now.value > first.value:
            return ""
        link = self.link
        if link is None:
            return ""
        try:
            link.proxy.set_enabled(False, timeout_s=link.revert_timeout_s)
            link.proxy.set_enabled(True, timeout_s=link.revert_timeout_s)
        except Exception as exc:  # noqa: BLE001
            return f"could not close the link's connections to count their bytes: {type(exc).__name__}: {exc}"
        return "the link counter had not grown: closed the proxy's connections after the run to count their bytes"

    def _ledger_reader(self) -> tuple[LedgerReader | None, str]:
        if self._ledger is not None:
            return self._ledger, ""
        spec = getattr(self.stack, "spec", None)
        if spec is None or getattr(spec, "ledger", None) is None:
            return None, "the stack has no ledger hook (x-peakchaos.ledger)"
        reader: LedgerReader = self.stack.ledger
        return reader, ""

    # -- run ------------------------------------------------------------------------------------
    def run(
        self,
        profile: str | Profile = "double11",
        duration: float | str = "60s",
        faults: Iterable[Fault] = (),
        *,
        seed: int | None = None,
        scale: float | None = None,
        checks: Policy | Mapping[str, Any] | None = None,
        max_requests: int = DEFAULT_MAX_REQUESTS,
        concurrency_cap: int = DEFAULT_CONCURRENCY_CAP,
        request_timeout: float | str = "5s",
        settle: float | str = "10s",
        legacy_actions: Iterable[str] | None = None,
        workers: int = 1,
        cluster: str | None = None,
        engine: str | None = None,
    ) -> ExperimentResult:
        """Run ``profile``'s shoppers for ``duration`` with ``faults`` on the link; return the verdict.

        ``legacy_actions`` overrides the profile's list of legacy-bound actions (e.g. when the
        system under test calls legacy for more actions than the profile's bindings say).
        ``cluster``: a Dask scheduler's address; the load is split over its workers
        (``load/distributed.py``) while the fault schedule stays here, aligned to the same start.
        ``engine``: the load engine (``python``, ``native`` or ``auto``; see ``run_load``).
        """
        from pytest_peakchaos.load import run_load
        from pytest_peakchaos.profiles import load_profile

        # ---- validate up front
        prof = load_profile(profile)
        duration_s = parse_duration(duration, what="duration")
        if not (duration_s > 0) or math.isinf(duration_s):
            raise ValueError(f"duration: must be a positive finite duration, got {duration!r}")
        fault_list = list(faults) if not isinstance(faults, Fault) else [faults]
        try:
            schedule = FaultSchedule(fault_list, duration_s)
        except ValueError as exc:
            raise ValueError(f"faults: {exc}") from None
        policy = resolve_policy(checks, self.policy)
        timeout_s = parse_duration(request_timeout, what="request_timeout")
        if not timeout_s > 0:
            raise ValueError(f"request_timeout: must be > 0, got {request_timeout!r}")
        settle_s = parse_duration(settle, what="settle")
        if isinstance(max_requests, bool) or not isinstance(max_requests, int) or max_requests < 1:
            raise ValueError(f"max_requests: expected a whole number >= 1, got {max_requests!r}")
        if isinstance(concurrency_cap, bool) or not isinstance(concurrency_cap, int) or concurrency_cap < 1:
            raise ValueError(f"concurrency_cap: expected a whole number >= 1, got {concurrency_cap!r}")
        run_seed = _check_seed(seed) if seed is not None else self.seed
        if run_seed is None:
            run_seed = random.SystemRandom().randrange(1, 2**31)
        run_scale = self.scale if scale is None else _check_scale(scale)
        if legacy_actions is None:
            legacy = frozenset(prof.legacy_actions)
        else:
            states = prof.behaviour.actions
            legacy = frozenset(legacy_actions)
            bad = sorted(a for a in legacy if a not in states)
            if bad:
                raise ValueError(f"legacy_actions: unknown action(s) {', '.join(bad)}; valid values: {', '.join(states)}")
        link = self.link if fault_list else None
        if fault_list and link is None:
            raise ValueError("faults: the stack declares no legacy link to put them on")
        if link is not None:
            for f in fault_list:
                link.check(f)
        windows = tuple(schedule.windows())
        phases = derive_phases([(w.start_s, w.end_s) for w in windows], duration_s)
        boundaries = sorted({p.start for p in phases} | {p.end for p in phases} | set(grace_boundaries(windows, policy))
                            | set(peak_boundaries(phases, policy)))

        sources = self._sources()
        reader, ledger_note = self._ledger_reader()
        order_actions = frozenset(a for a, b in prof.bindings.items() if b.acknowledges)

        # ---- run
        wall0 = time.monotonic()
        readings = BoundaryReadings(sources.named())
        readings.read(0.0)  # before the load: the first phase starts here
        probe = EngineProbe()
        stop_faults = threading.Event()
        state: dict[str, Any] = {}
        events_from = len(link.events) if link is not None else 0

        # The harness (engine, Toxiproxy) is watched while the load runs: a problem stops the load
        # and the run ends as a HarnessError below, never as a verdict.
        from pytest_peakchaos.stack.health import HarnessWatch

        stop_load = threading.Event()
        harness = HarnessWatch(self.stack, lambda problem: stop_load.set())

        def on_start(t0: float) -> None:
            state["t0"] = t0
            harness.start()
            if link is not None and fault_list:
                state["runner"] = link.run_schedule(schedule, t0, stop_faults)
            watcher = BoundaryWatcher(t0, duration_s, boundaries, phases, readings, self.on_progress, probe, duration_s + timeout_s + 60.0)
            state["watcher"] = watcher
            watcher.start()

        fault_errors: list[str] = []
        notes: list[str] = []
        try:
            load = run_load(
                self.base_url,
                prof,
                duration=duration_s,
                seed=run_seed,
                scale=run_scale,
                max_requests=max_requests,
                max_sessions=None,
                concurrency_cap=concurrency_cap,
                request_timeout_s=timeout_s,
                workers=workers,
                on_start=on_start,
                stop_event=stop_load,
                on_live=probe.attach,
                cluster=cluster,
                engine=engine,
            )
        finally:
            harness.stop()
            stop_faults.set()
            runner = state.get("runner")
            if runner is not None:
                try:
                    runner.join(60.0)
                except Exception as exc:  # ScheduleError / TimeoutError: reported, and reverted below
                    fault_errors.append(str(exc))
                if link is not None and link.active:
                    try:
                        link.reset()
                    except Exception as exc:  # noqa: BLE001
                        fault_errors.append(f"reset after the run: {exc}")
            watcher = state.get("watcher")
            if watcher is not None:
                watcher.stop()
        if harness.problem is not None:
            from pytest_peakchaos.stack.health import HarnessError

            raise HarnessError(harness.problem)
        if load.missing_shares:  # a lost load worker: half a load is no verdict on the shop
            from pytest_peakchaos.load.api import lost_shares_error

            raise lost_shares_error(load.missing_shares)

        # ---- after the load: ledger, counters, the phases that really happened
        acked = list(dict.fromkeys(o.idempotency_key for o in load.orders if o.idempotency_key))
        rec: Reconciliation | None = None
        ledger_error = ""
        if reader is not None:
            ordered = {o.idempotency_key: (o.items, o.unsure) for o in load.orders if o.idempotency_key and o.items is not None}
            rec, ledger_error = settle_and_reconcile(reader, acked, prefix=f"pc-{load.run_id}-", settle_s=settle_s, ordered=ordered)
        end_t = math.inf  # key of the reading after the outbox settled
        flush_note = self._flush_link_counter(sources, readings)
        if flush_note:
            notes.append(flush_note)
        readings.read(end_t)
        events = link.events[events_from:] if link is not None else []
        real = realised_phases(windows, events, duration_s) if fault_list else None
        real_phases = real.phases if real is not None else phases
        amp, amp_note = _amplification(readings, phases, load, legacy, sources.legacy_note, end_t)
        shed = shedding_windows(windows, policy, readings, load, legacy)
        if amp is not None:
            amp = dataclasses.replace(amp, windows=peak_windows(phases, policy, readings, load, legacy))
        link_bytes: dict[str, float | None] | None = None
        if "link" in readings.sources:
            deltas, unread = phase_deltas(readings, "link", phases, end_t=end_t)
            link_bytes = {p.name: deltas.get(p.name) for p in phases}
            for why in unread.values():
                notes.append(why)
        if watcher is not None and watcher.progress_errors:
            notes.append("progress callback failed: " + watcher.progress_errors[0])
        if any(r in load.stop_reason for r in ("max_requests", "hard_limit", "stop_event")):
            notes.append(f"load stopped early: {load.stop_reason}")
        if load.sessions.refused_by_cap:
            notes.append(f"{load.sessions.refused_by_cap} sessions refused by the concurrency cap ({concurrency_cap})")
        if amp is not None:
            notes.extend(f"{p}: {why}" for p, why in amp.unread.items())

        ev = Evidence(
            load=load,
            phases=real_phases,
            legacy_actions=legacy,
            request_timeout_s=timeout_s,
            has_faults=bool(fault_list),
            patience_s=_mean_patience(prof),
            ledger=rec,
            ledger_note=ledger_note,
            amplification=amp,
            amplification_note=amp_note,
            ledger_error=ledger_error,
            order_actions=order_actions,
            phase_problems=real.problems if real is not None else {},
            link_bytes=link_bytes,
            link_note=sources.link_note,
            action_classes=prof.action_classes(),
            action_thresholds=prof.action_thresholds(),
            shedding=shed,
        )
        results = evaluate(ev, policy)
        if fault_errors:
            results.insert(0, CheckResult(
                "faults_applied", "fault", False, "every fault applied and reverted",
                f"{len(fault_errors)} schedule error(s)", "; ".join(fault_errors),
            ))
        return ExperimentResult(
            name=self.name,
            load=load,
            seed=run_seed,
            profile=prof.name,
            scale=run_scale,
            duration_s=duration_s,
            phases=real_phases,
            faults=tuple(fault_list),
            fault_windows=windows,
            fault_events=[{"t": e.t, "action": e.action, "fault": e.fault, "via": e.via, "detail": e.detail} for e in events],
            ledger=rec,
            amplification=amp,
            checks=results,
            policy=policy,
            legacy_actions=legacy,
            request_timeout_s=timeout_s,
            wall_s=time.monotonic() - wall0,
            fault_errors=fault_errors,
            notes=notes,
            stack=_stack_info(self.stack),
        )


def _stack_info(stack: Any) -> dict[str, str]:
    spec = getattr(stack, "spec", None)
    info = {
        "file": str(getattr(spec, "path", "") or ""),
        "project": str(getattr(spec, "project", "") or ""),
        "run_id": str(getattr(stack, "run_id", "") or ""),
        "backend": str(getattr(spec, "backend", "docker")),
    }
    return {k: v for k, v in info.items() if v}


def _amplification(
    readings: BoundaryReadings,
    phases: Sequence[Phase],
    load: LoadResult,
    legacy: frozenset[str],
    note: str,
    end_t: float,
) -> tuple[Amplification | None, str]:
    """Legacy counter deltas per (planned) phase; the last phase runs until the outbox settled
    (drained orders are calls it caused). Readings that failed at a boundary are named."""
    if "legacy" not in readings.sources:
        return None, note or "no legacy call counter"
    before, after = readings.get("legacy", 0.0), readings.get("legacy", end_t)
    if before is None or after is None:
        t = "before" if before is None else "after"
        return None, f"the legacy call counter could not be read {t} the run: {readings.error('legacy', 0.0 if before is None else end_t)}"
    deltas, unread = phase_deltas(readings, "legacy", phases, end_t=end_t)
    per_phase: dict[str, tuple[float, int]] = {}
    bound = [x for x in load.actions if x in legacy]
    for i, p in enumerate(phases):
        if p.name not in deltas:
            continue
        lo, hi = p.seconds()
        if i == len(phases) - 1:
            hi = max(hi, int(math.ceil(load.duration_s)) + 1)
        per_phase[p.name] = (deltas[p.name], load.window(lo, hi, bound).count)
    actions = sum(s.count for x, s in load.actions.items() if x in legacy)
    return Amplification(after.unit, after.source, max(0.0, after.value - before.value), actions, per_phase, unread), ""


def _mean_patience(prof: Profile) -> float | None:
    try:
        value = float(prof.patience.wait.expected())
    except (AttributeError, TypeError, ValueError):
        return None
    return value if value > 0 and math.isfinite(value) else None


def _check_seed(seed: int | None) -> int | None:
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed: expected a whole number, got {seed!r}")
    return seed


def _check_scale(scale: float) -> float:
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not math.isfinite(scale) or scale < 0:
        raise ValueError(f"scale: expected a finite number >= 0, got {scale!r}")
    return float(scale)
