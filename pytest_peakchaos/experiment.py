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

import json
import math
import random
import threading
import time
import urllib.error
import urllib.request
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
    resolve_policy,
)
from pytest_peakchaos.faults import Fault, FaultSchedule, FaultWindow
from pytest_peakchaos.units import format_duration, parse_duration

if TYPE_CHECKING:
    from pytest_peakchaos.link import Link
    from pytest_peakchaos.load.result import LoadResult, WindowStats
    from pytest_peakchaos.profiles.model import Profile
    from pytest_peakchaos.stack.base import Stack

__all__ = [
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
#: How often the ledger is polled while waiting for the outbox to drain.
LEDGER_POLL_S = 0.5
_HTTP_TIMEOUT_S = 2.0

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


# --------------------------------------------------------------------------------------- counters


def _get_json(url: str, timeout: float = _HTTP_TIMEOUT_S) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - stack URLs are 127.0.0.1
        return json.loads(resp.read().decode())


def legacy_stats_counter(url: str) -> LegacyCounter:
    """Calls legacy received, from its ``GET /stats`` (``{"requests": {"stock": n, "orders_post": n, ...}}``).

    Counts ``stock`` + ``orders_post`` when present (``orders_get`` is the ledger, read by
    peakchaos itself), else every number under ``requests``. ``None`` when it does not answer so.
    """
    stats_url = url.rstrip("/") + "/stats"

    def read() -> CounterReading | None:
        try:
            body = _get_json(stats_url)
        except (OSError, ValueError, urllib.error.URLError):
            return None
        reqs = body.get("requests") if isinstance(body, dict) else None
        if not isinstance(reqs, dict):
            return None
        nums = {k: v for k, v in reqs.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        if "stock" in nums or "orders_post" in nums:
            value = float(nums.get("stock", 0) + nums.get("orders_post", 0))
        elif nums:
            value = float(sum(nums.values()))
        else:
            return None
        return CounterReading(value, "calls", f"GET {stats_url} requests.stock+orders_post")

    return read


def toxiproxy_bytes_counter(api_url: str, proxy: str) -> LegacyCounter:
    """Bytes cloud sent to legacy through Toxiproxy (``GET /metrics``, needs ``-proxy-metrics``).

    Bytes are not calls: the amplification check then compares bytes per legacy-bound action with
    the baseline phase's. ``None`` when the server exposes no proxy metrics.
    """
    metrics_url = api_url.rstrip("/") + "/metrics"

    def read() -> CounterReading | None:
        try:
            with urllib.request.urlopen(metrics_url, timeout=_HTTP_TIMEOUT_S) as resp:  # noqa: S310 - 127.0.0.1
                text = resp.read().decode(errors="replace")
        except (OSError, urllib.error.URLError):
            return None
        total = 0.0
        seen = False
        for line in text.splitlines():
            if not line.startswith("toxiproxy_proxy_received_bytes_total{"):
                continue
            labels, _, value = line.rpartition("}")
            if f'proxy="{proxy}"' in labels and 'direction="upstream"' in labels:
                try:
                    total += float(value.strip())
                    seen = True
                except ValueError:
                    continue
        if not seen:
            return None
        return CounterReading(total, "bytes", f"Toxiproxy {metrics_url} upstream bytes of proxy {proxy!r}")

    return read


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

    # -- verdict ------------------------------------------------------------------------------
    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

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
        lines = [head, f"faults: {faults}", "", self.table(), ""]
        for c in bad:
            if c.detail:
                detail = c.detail if len(c.detail) <= 400 else c.detail[:399] + "…"
                lines.append(f"  {c.name}/{c.phase}: {detail}")
        lines.append(self.replay)
        return "\n".join(lines)

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
        """The ``peakchaos/1`` run dict (see pytest_peakchaos.report.schema)."""
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
            "seed": self.seed,
            "profile": self.profile,
            "scale": float(self.scale),
            "duration_s": float(self.duration_s),
            "passed": self.passed,
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
        lines.append("")
        lines.extend("  " + line for line in self.table().splitlines())
        lines.append("  " + self.replay)
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<ExperimentResult {self.name or ''} {self.profile} seed={self.seed} passed={self.passed} checks={len(self.checks)}>"


# --------------------------------------------------------------------------------------- experiment


class _EngineProbe:
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


class _Watcher:
    """Helper thread: counter readings at phase boundaries and a progress line every second."""

    TICK_S = 0.1

    def __init__(
        self,
        t0: float,
        duration_s: float,
        boundaries: Sequence[float],
        phases: Sequence[Phase],
        counter: LegacyCounter | None,
        progress: ProgressFn | None,
        probe: _EngineProbe,
        hard_s: float,
    ) -> None:
        self.t0 = t0
        self.duration_s = duration_s
        self.pending = sorted(b for b in boundaries if 0 < b < duration_s)
        self.phases = phases
        self.counter = counter
        self.progress = progress
        self.probe = probe
        self.hard_s = hard_s
        self.readings: dict[float, CounterReading | None] = {}
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
                b = self.pending.pop(0)
                self.readings[b] = self.counter() if self.counter is not None else None
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


class Experiment:
    """Runs chaos experiments against a running stack: ``Experiment(stack).run(...)``.

    * ``link``: the link faults go on (default: the stack's only link);
    * ``base_url``: where the load goes (default: the link's client service, e.g. ``cloud``);
    * ``name``: shown in messages and the report (the plugin passes the test's node id);
    * ``seed`` / ``scale``: defaults for ``run`` (``seed=None``: a fresh random seed per run);
    * ``on_progress``: gets a one-line status about once a second, from a helper thread;
    * ``legacy_counter``: callable reading what reached legacy (default: legacy's ``/stats``,
      then Toxiproxy's byte metrics, else the amplification check is skipped);
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

    def _default_counter(self) -> tuple[LegacyCounter | None, str]:
        if self._counter is not None:
            return self._counter, ""
        if self.spec_link is None:
            return None, "no legacy link, so no legacy call counter"
        problems = []
        try:
            url = self.stack.url(self.spec_link.service, self.spec_link.port)
        except Exception as exc:  # noqa: BLE001 - a stack without that endpoint: try the next source
            problems.append(f"legacy endpoint: {exc}")
        else:
            counter = legacy_stats_counter(url)
            if counter() is not None:
                return counter, ""
            problems.append(f"{url}/stats gave no request counters")
        try:
            api = self.stack.toxiproxy.api_url
        except Exception as exc:  # noqa: BLE001
            problems.append(f"Toxiproxy: {exc}")
        else:
            tcounter = toxiproxy_bytes_counter(api, self.spec_link.name)
            if tcounter() is not None:
                return tcounter, ""
            problems.append("Toxiproxy exposes no proxy byte metrics (start it with -proxy-metrics)")
        return None, "no legacy call counter: " + "; ".join(problems) + "; pass legacy_counter=..."

    def _ledger_reader(self) -> tuple[LedgerReader | None, str]:
        if self._ledger is not None:
            return self._ledger, ""
        spec = getattr(self.stack, "spec", None)
        if spec is None or getattr(spec, "ledger", None) is None:
            return None, "the stack has no ledger hook (x-peakchaos.ledger)"
        return self.stack.ledger, ""

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
    ) -> ExperimentResult:
        """Run ``profile``'s shoppers for ``duration`` with ``faults`` on the link; return the verdict.

        ``legacy_actions`` overrides the profile's list of legacy-bound actions (e.g. when the
        system under test calls legacy for more actions than the profile's bindings say).
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
        boundaries = sorted({p.start for p in phases} | {p.end for p in phases})

        counter, counter_note = self._default_counter()
        reader, ledger_note = self._ledger_reader()

        # ---- run
        wall0 = time.monotonic()
        before = counter() if counter is not None else None
        probe = _EngineProbe()
        stop_faults = threading.Event()
        state: dict[str, Any] = {}
        events_from = len(link.events) if link is not None else 0

        def on_start(t0: float) -> None:
            state["t0"] = t0
            if link is not None and fault_list:
                state["runner"] = link.run_schedule(schedule, t0, stop_faults)
            watcher = _Watcher(t0, duration_s, boundaries, phases, counter, self.on_progress, probe, duration_s + timeout_s + 60.0)
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
                on_live=probe.attach,
            )
        finally:
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

        # ---- after the load: ledger, counters
        rec, ledger_note = self._settle_and_reconcile(reader, ledger_note, load, settle_s)
        after = counter() if counter is not None else None
        amp, amp_note = _amplification(before, after, watcher.readings if watcher else {}, phases, load, legacy, counter_note)
        if watcher is not None and watcher.progress_errors:
            notes.append("progress callback failed: " + watcher.progress_errors[0])
        if any(r in load.stop_reason for r in ("max_requests", "hard_limit", "stop_event")):
            notes.append(f"load stopped early: {load.stop_reason}")
        if load.sessions.refused_by_cap:
            notes.append(f"{load.sessions.refused_by_cap} sessions refused by the concurrency cap ({concurrency_cap})")

        events = link.events[events_from:] if link is not None else []
        ev = Evidence(
            load=load,
            phases=phases,
            legacy_actions=legacy,
            request_timeout_s=timeout_s,
            has_faults=bool(fault_list),
            patience_s=_mean_patience(prof),
            ledger=rec,
            ledger_note=ledger_note,
            amplification=amp,
            amplification_note=amp_note,
            action_classes=prof.action_classes(),
            action_thresholds=prof.action_thresholds(),
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
            phases=phases,
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
        )

    def _settle_and_reconcile(
        self, reader: LedgerReader | None, note: str, load: LoadResult, settle_s: float
    ) -> tuple[Reconciliation | None, str]:
        if reader is None:
            return None, note
        acked = list(dict.fromkeys(o.idempotency_key for o in load.orders if o.idempotency_key))
        prefix = f"pc-{load.run_id}-"
        t_start = time.monotonic()
        deadline = t_start + settle_s
        rows: list[dict[str, Any]] | None = None
        last_error = ""
        for _ in range(int(settle_s / LEDGER_POLL_S) + 2):
            try:
                rows = reader()
                last_error = ""
            except Exception as exc:  # noqa: BLE001 - legacy may still be coming back
                last_error = f"{type(exc).__name__}: {exc}"
            if rows is not None:
                present = {str(r.get("idempotency_key")) for r in rows if isinstance(r, dict)}
                if all(k in present for k in acked):
                    break
            if time.monotonic() + LEDGER_POLL_S > deadline:
                break
            time.sleep(LEDGER_POLL_S)
        if rows is None:
            return None, f"the ledger could not be read within {settle_s:g}s: {last_error}"
        keys = [str(r.get("idempotency_key")) for r in rows if isinstance(r, dict) and r.get("idempotency_key") is not None]
        rec = Reconciliation.reconcile(acked, keys, also=lambda k: k.startswith(prefix), waited_s=time.monotonic() - t_start)
        return rec, ""


def _amplification(
    before: CounterReading | None,
    after: CounterReading | None,
    readings: Mapping[float, CounterReading | None],
    phases: Sequence[Phase],
    load: LoadResult,
    legacy: frozenset[str],
    note: str,
) -> tuple[Amplification | None, str]:
    if before is None or after is None:
        return None, note or "the legacy call counter did not answer before and after the run"
    marks: dict[float, CounterReading | None] = dict(readings)
    marks[phases[0].start] = before
    last = phases[-1]
    per_phase: dict[str, tuple[float, int]] = {}
    for p in phases:
        a = marks.get(p.start)
        # the last phase runs until the outbox settled (drained orders are calls it caused)
        b = after if p is last else marks.get(p.end)
        if a is None or b is None:
            continue
        lo, hi = p.seconds()
        if p is last:
            hi = max(hi, int(math.ceil(load.duration_s)) + 1)
        n = load.window(lo, hi, [x for x in load.actions if x in legacy]).count
        per_phase[p.name] = (max(0.0, b.value - a.value), n)
    actions = sum(s.count for x, s in load.actions.items() if x in legacy)
    return Amplification(after.unit, after.source, max(0.0, after.value - before.value), actions, per_phase), ""


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
