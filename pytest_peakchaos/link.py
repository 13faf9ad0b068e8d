"""A cloud→legacy link: one Toxiproxy proxy plus (optionally) the legacy container's capacity.

``Link`` applies :mod:`pytest_peakchaos.faults` values and guarantees they are reverted:

* ``with link.apply(fault):`` / ``with link.inject(f1, f2):`` -- applied on enter, reverted on
  every exit path (exceptions, ``KeyboardInterrupt`` -- an interrupt that lands during the revert
  is held back until the revert is done);
* ``link.run_schedule(schedule, t0, stop_event)`` -- a background thread applies each fault at
  ``t0 + start`` and reverts it at ``t0 + start + length`` (or the end of the run), and reverts
  whatever is still applied when told to stop;
* ``link.reset()`` -- removes every toxic of this proxy, enables it, restores CPU and unpauses.

Reverting a toxic is ``DELETE /proxies/{p}/toxics/{t}`` with a short timeout (``revert_timeout_s``,
3 s). That call can hang for 25 s+ under heavy traffic (Toxiproxy #412, #558); on a timeout or
error the link recreates the proxy (same name/listen/upstream; drops live connections and its
toxics, then re-adds the toxics of faults still active), and if that fails too it calls
``POST /reset`` (server-wide). The event log says which path was taken (``LinkEvent.via``:
``"delete"``, ``"recreate"`` or ``"reset"``).

No ``docker``/``requests``/``toxiproxy`` import happens at module level.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from pytest_peakchaos.faults import CpuFault, DownFault, Fault, FaultSchedule, PauseFault, ToxicFault

if TYPE_CHECKING:
    from pytest_peakchaos.throttle import CapacityTarget
    from pytest_peakchaos.toxiproxy import ProxyHandle, ToxiproxyClient

__all__ = ["AppliedFault", "Link", "LinkEvent", "RevertError", "ScheduleError", "ScheduleRunner"]

log = logging.getLogger(__name__)

DEFAULT_REVERT_TIMEOUT_S = 3.0


class RevertError(RuntimeError):
    """A fault could not be reverted by any path (DELETE, proxy recreate, server reset)."""


class ScheduleError(RuntimeError):
    """A scheduled fault failed to apply or revert; ``errors`` holds every failure."""

    def __init__(self, message: str, errors: Sequence[BaseException]) -> None:
        super().__init__(message)
        self.errors = list(errors)


class LinkEvent(NamedTuple):
    """One line of a link's event log: ``(t, action, fault, via, detail)``.

    ``t``: seconds since the link's ``t0`` (the run start when a schedule runs);
    ``action``: ``"apply"``, ``"revert"``, ``"reset"`` or ``"error"``;
    ``fault``: ``fault.describe()``;
    ``via``: how -- for toxic reverts ``"delete"``, ``"recreate"`` or ``"reset"``; ``"enable"``,
    ``"restore"``, ``"unpause"`` ... for the others;
    ``detail``: why a fallback was needed, or the error text.
    """

    t: float
    action: str
    fault: str
    via: str = ""
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return self._asdict()


class AppliedFault:
    """A fault currently (or formerly) applied on a link; :meth:`revert` is idempotent."""

    def __init__(self, link: Link, fault: Fault) -> None:
        self.link = link
        self.fault = fault
        self.toxic_names: list[str] = []
        self.reverted = False
        #: how it was reverted (``LinkEvent.via``), once it was
        self.via: str | None = None
        self._released = False

    def revert(self) -> str:
        """Revert now (no-op if already reverted); returns the path taken."""
        return self.link._revert(self)

    def __repr__(self) -> str:
        state = f"reverted via {self.via}" if self.reverted else "active"
        return f"<AppliedFault {self.fault.describe()!r} on {self.link.name!r}: {state}>"


class Link:
    """Faults for one proxied link.

    ``url`` is the host-reachable ``http://127.0.0.1:<port>`` of the proxy's listen address.
    ``capacity`` is the legacy container (``None`` for backends without containers: then cpu and
    pause faults are refused with a ``ValueError``).
    """

    def __init__(
        self,
        name: str,
        proxy: ProxyHandle,
        client: ToxiproxyClient,
        capacity: CapacityTarget | None = None,
        url: str = "",
        *,
        revert_timeout_s: float = DEFAULT_REVERT_TIMEOUT_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not revert_timeout_s > 0:
            raise ValueError(f"revert_timeout_s must be > 0, got {revert_timeout_s!r}")
        self.name = name
        self.proxy = proxy
        self.client = client
        self.capacity = capacity
        self.url = url or f"http://{proxy.listen}"
        self.revert_timeout_s = float(revert_timeout_s)
        self._clock = clock
        #: time origin of the event log (``run_schedule`` sets it to the run's t0)
        self.t0 = clock()
        self._lock = threading.RLock()
        self._events: list[LinkEvent] = []
        self._active: list[AppliedFault] = []
        self._cpu_tokens: list[AppliedFault] = []
        self._down_depth = 0
        self._pause_depth = 0
        self._seq = itertools.count(1)
        self._runners: list[ScheduleRunner] = []

    def __repr__(self) -> str:
        return f"Link({self.name!r}, url={self.url!r}, proxy={self.proxy.name!r}, active={len(self._active)})"

    # ------------------------------------------------------------------ event log

    @property
    def events(self) -> list[LinkEvent]:
        """A copy of the event log."""
        with self._lock:
            return list(self._events)

    def clear_events(self) -> None:
        with self._lock:
            self._events.clear()

    def _record(self, action: str, fault: str, via: str = "", detail: str = "") -> None:
        event = LinkEvent(round(self._clock() - self.t0, 4), action, fault, via, detail)
        with self._lock:
            self._events.append(event)
        log.debug("link %s: %s", self.name, event)

    @property
    def active(self) -> list[AppliedFault]:
        """Faults applied and not yet reverted."""
        with self._lock:
            return list(self._active)

    # ------------------------------------------------------------------ checks

    def check(self, fault: Fault) -> None:
        """Raise ``ValueError`` if this link cannot apply ``fault``."""
        if not isinstance(fault, Fault):
            raise ValueError(f"link {self.name!r}: expected a fault (latency(), down(), cpu(), ...), got {fault!r}")
        if fault.needs_capacity and self.capacity is None:
            raise ValueError(
                f"link {self.name!r} has no capacity target, so {fault.describe()!r} cannot be applied: "
                "cpu()/capacity()/pause() faults act on the legacy container and need the docker "
                "backend; with the local or external backend use Toxiproxy faults (latency, down, ...)"
            )

    # ------------------------------------------------------------------ apply / revert

    def activate(self, fault: Fault) -> AppliedFault:
        """Apply ``fault`` now and return its handle; the caller must ``revert()`` it.

        Prefer :meth:`apply`, which reverts for you. ``start``/``length`` are ignored here.
        """
        self.check(fault)
        with self._lock:
            token = AppliedFault(self, fault)
            try:
                self._do_apply(token)
            except BaseException as exc:
                self._record("error", fault.describe(), "apply", f"{type(exc).__name__}: {exc}")
                self._undo_partial_apply(token)
                raise
            self._active.append(token)
            self._record("apply", fault.describe(), ", ".join(token.toxic_names) or fault.kind)
            return token

    def _do_apply(self, token: AppliedFault) -> None:
        fault = token.fault
        if isinstance(fault, ToxicFault):
            for stream in fault.streams:
                name = f"peakchaos{next(self._seq)}_{fault.toxic_type}_{stream}"
                token.toxic_names.append(name)  # before the call: undo must cover a half-done POST
                self.proxy.add_toxic(fault.toxic_type, stream, fault.attributes, fault.toxicity, name=name)
        elif isinstance(fault, DownFault):
            if self._down_depth == 0:
                self.proxy.set_enabled(False)
            self._down_depth += 1
        elif isinstance(fault, CpuFault):
            assert self.capacity is not None
            self.capacity.throttle(fault.cpus)
            self._cpu_tokens.append(token)
        elif isinstance(fault, PauseFault):
            assert self.capacity is not None
            if self._pause_depth == 0:
                self.capacity.pause()
            self._pause_depth += 1
        else:  # pragma: no cover - check() accepts only these kinds
            raise ValueError(f"link {self.name!r}: unsupported fault {fault!r}")

    def _undo_partial_apply(self, token: AppliedFault) -> None:
        """Best-effort cleanup after an apply failed (or was interrupted) half-way."""
        fault = token.fault
        try:
            if isinstance(fault, ToxicFault) and token.toxic_names:
                self._remove_toxics(token.toxic_names, fault.describe())
            elif isinstance(fault, DownFault) and self._down_depth == 0:
                self.proxy.set_enabled(True, timeout_s=self.revert_timeout_s)
            elif isinstance(fault, CpuFault) and self.capacity is not None:
                if token in self._cpu_tokens:
                    self._cpu_tokens.remove(token)
                previous = self._cpu_tokens[-1].fault if self._cpu_tokens else None
                if isinstance(previous, CpuFault):
                    self.capacity.throttle(previous.cpus)
                else:
                    self.capacity.restore()
            elif isinstance(fault, PauseFault) and self.capacity is not None and self._pause_depth == 0:
                self.capacity.unpause()
        except Exception as exc:  # the original error is what the caller needs to see
            log.warning("link %s: cleanup after failed apply of %s failed: %s", self.name, fault.describe(), exc)
            self._record("error", fault.describe(), "undo", f"{type(exc).__name__}: {exc}")

    def _revert(self, token: AppliedFault) -> str:
        """Revert ``token``; a ``KeyboardInterrupt`` arriving meanwhile is re-raised afterwards."""
        interrupted: KeyboardInterrupt | None = None
        via = ""
        for _ in range(3):
            try:
                via = self._revert_once(token)
                break
            except KeyboardInterrupt as exc:
                interrupted = exc
        if interrupted is not None:
            raise interrupted
        return via

    def _revert_once(self, token: AppliedFault) -> str:
        with self._lock:
            if token.reverted:
                return token.via or ""
            fault = token.fault
            desc = fault.describe()
            if not token._released:
                token._released = True
                if token in self._active:
                    self._active.remove(token)
                if isinstance(fault, DownFault):
                    self._down_depth = max(0, self._down_depth - 1)
                elif isinstance(fault, PauseFault):
                    self._pause_depth = max(0, self._pause_depth - 1)
                elif isinstance(fault, CpuFault) and token in self._cpu_tokens:
                    self._cpu_tokens.remove(token)
            detail = ""
            try:
                if isinstance(fault, ToxicFault):
                    via, detail = self._remove_toxics(token.toxic_names, desc)
                elif isinstance(fault, DownFault):
                    if self._down_depth == 0:
                        self.proxy.set_enabled(True, timeout_s=self.revert_timeout_s)
                        via = "enable"
                    else:
                        via = "still down (nested down fault)"
                elif isinstance(fault, CpuFault):
                    assert self.capacity is not None
                    if self._cpu_tokens:
                        later = self._cpu_tokens[-1].fault
                        assert isinstance(later, CpuFault)
                        self.capacity.throttle(later.cpus)
                        via = f"throttle back to {later.cpus:g} CPU"
                    else:
                        self.capacity.restore()
                        via = "restore"
                elif isinstance(fault, PauseFault):
                    assert self.capacity is not None
                    if self._pause_depth == 0:
                        self.capacity.unpause()
                        via = "unpause"
                    else:
                        via = "still paused (nested pause fault)"
            except Exception as exc:
                self._record("error", desc, "revert", f"{type(exc).__name__}: {exc}")
                if isinstance(exc, RevertError):
                    raise
                raise RevertError(f"link {self.name!r}: could not revert {desc}: {exc}") from exc
            token.reverted = True
            token.via = via
            self._record("revert", desc, via, detail)
            return via

    # ------------------------------------------------------------------ toxic removal with fallbacks

    def _remove_toxics(self, names: Sequence[str] | None, desc: str) -> tuple[str, str]:
        """Remove toxics ``names`` of this proxy; returns ``(via, detail)``.

        ``names=None`` skips straight to recreating the proxy (its toxics could not be listed).
        """
        from pytest_peakchaos.toxiproxy import ToxiproxyError

        problems: list[str] = []
        if names is not None:
            try:
                for name in names:
                    self.proxy.remove_toxic(name, timeout_s=self.revert_timeout_s)
                return "delete", ""
            except ToxiproxyError as exc:
                problems.append(f"DELETE: {exc}")
                log.warning(
                    "link %s: removing %s failed (%s); recreating proxy %s (Toxiproxy #412/#558)",
                    self.name, desc, exc, self.proxy.name,
                )
        try:
            self.proxy.recreate(timeout_s=self.revert_timeout_s)
            self._restore_after_wipe(set(names or ()))
            return "recreate", "; ".join(problems)
        except ToxiproxyError as exc:
            problems.append(f"recreate: {exc}")
            log.warning("link %s: recreating proxy %s failed (%s); POST /reset", self.name, self.proxy.name, exc)
        try:
            self.client.reset(timeout=self.revert_timeout_s)
            self.proxy.enabled = True
            self._restore_after_wipe(set(names or ()))
            log.warning("link %s: reverted %s by a server-wide POST /reset", self.name, desc)
            return "reset", "; ".join(problems)
        except ToxiproxyError as exc:
            problems.append(f"reset: {exc}")
        raise RevertError(f"link {self.name!r}: could not revert {desc}: " + "; ".join(problems))

    def _restore_after_wipe(self, exclude: set[str]) -> None:
        """After the proxy lost all its toxics (recreate/reset), re-apply what must stay applied."""
        for token in self._active:
            fault = token.fault
            if not isinstance(fault, ToxicFault):
                continue
            for stream, name in zip(fault.streams, token.toxic_names):
                if name in exclude:
                    continue
                try:
                    self.proxy.add_toxic(
                        fault.toxic_type, stream, fault.attributes, fault.toxicity, name=name,
                        timeout_s=self.revert_timeout_s,
                    )
                except Exception as exc:
                    self._record("error", fault.describe(), "re-apply", f"{type(exc).__name__}: {exc}")
        want_enabled = self._down_depth == 0
        if self.proxy.enabled != want_enabled:
            try:
                self.proxy.set_enabled(want_enabled, timeout_s=self.revert_timeout_s)
            except Exception as exc:
                self._record("error", "down", "re-apply", f"{type(exc).__name__}: {exc}")

    # ------------------------------------------------------------------ context managers

    @contextlib.contextmanager
    def apply(self, fault: Fault) -> Iterator[AppliedFault]:
        """``with link.apply(latency(800)):`` -- applied on enter, reverted on every exit path."""
        token = self.activate(fault)
        try:
            yield token
        finally:
            token.revert()

    @contextlib.contextmanager
    def inject(self, *faults: Fault) -> Iterator[list[AppliedFault]]:
        """Apply several faults at once; reverted in reverse order on exit."""
        for fault in faults:
            self.check(fault)
        with contextlib.ExitStack() as stack:
            yield [stack.enter_context(self.apply(fault)) for fault in faults]

    # ------------------------------------------------------------------ schedules

    def run_schedule(
        self,
        schedule: FaultSchedule,
        t0_monotonic: float | None = None,
        stop_event: threading.Event | None = None,
    ) -> ScheduleRunner:
        """Run ``schedule`` in a background thread, timed from ``t0_monotonic`` (default: now).

        Returns the runner (``.stop()``, ``.join()``); :meth:`stop` / :meth:`join` on the link act
        on all its runners. The event log's times are relative to ``t0_monotonic``.
        """
        if not isinstance(schedule, FaultSchedule):
            raise ValueError(f"link {self.name!r}: expected a FaultSchedule, got {schedule!r}")
        for fault in schedule.faults:
            self.check(fault)
        t0 = self._clock() if t0_monotonic is None else t0_monotonic
        with self._lock:
            self.t0 = t0
            runner = ScheduleRunner(self, schedule, t0, stop_event or threading.Event())
            self._runners.append(runner)
        runner.start()
        return runner

    def stop(self) -> None:
        """Tell every running schedule to stop (they revert what they applied)."""
        with self._lock:
            runners = list(self._runners)
        for runner in runners:
            runner.stop()

    def join(self, timeout: float | None = None) -> None:
        """Wait for every schedule; raises :class:`ScheduleError` if one had failures."""
        with self._lock:
            runners = list(self._runners)
        try:
            for runner in runners:
                runner.join(timeout)
        finally:
            with self._lock:
                self._runners = [r for r in self._runners if r.running]

    # ------------------------------------------------------------------ reset / close

    def reset(self) -> str:
        """Remove all toxics of this proxy, enable it, restore CPU and unpause; returns the path.

        Faults applied before are marked reverted (their ``revert()`` becomes a no-op).
        """
        from pytest_peakchaos.toxiproxy import ToxiproxyError

        with self._lock:
            for token in self._active:
                token._released = True
                token.reverted = True
                token.via = "reset"
            self._active.clear()
            self._cpu_tokens.clear()
            self._down_depth = 0
            self._pause_depth = 0
            problems: list[str] = []
            names: list[str] | None
            try:
                names = [t.name for t in self.proxy.toxics(timeout_s=self.revert_timeout_s)]
            except ToxiproxyError as exc:
                names = None
                problems.append(f"list toxics: {exc}")
            via, detail = "delete", ""
            try:
                via, detail = self._remove_toxics(names, "all toxics")
            except RevertError as exc:
                problems.append(str(exc))
            try:
                self.proxy.set_enabled(True, timeout_s=self.revert_timeout_s)
            except ToxiproxyError as exc:
                problems.append(f"enable: {exc}")
            if self.capacity is not None:
                for action in (self.capacity.restore, self.capacity.unpause):
                    try:
                        action()
                    except Exception as exc:
                        problems.append(f"{action.__name__}: {exc}")
            if problems:
                self._record("error", "all faults", "reset", "; ".join(problems))
                raise RevertError(f"link {self.name!r}: reset incomplete: " + "; ".join(problems))
            self._record("reset", "all faults", via, detail)
            return via

    def close(self, timeout: float | None = 30.0) -> None:
        """Stop schedules, wait for them, and revert whatever is still applied."""
        self.stop()
        errors: list[BaseException] = []
        try:
            self.join(timeout)
        except (ScheduleError, TimeoutError) as exc:
            errors.append(exc)
        for token in reversed(self.active):
            try:
                token.revert()
            except RevertError as exc:
                errors.append(exc)
        if errors:
            raise errors[0]

    def __enter__(self) -> Link:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def to_dict(self) -> dict[str, Any]:
        """Link state and event log, JSON-able, for reports."""
        return {
            "name": self.name,
            "url": self.url,
            "proxy": self.proxy.to_dict(),
            "capacity": self.capacity is not None,
            "events": [e.to_dict() for e in self.events],
        }


class ScheduleRunner:
    """Background thread running one :class:`FaultSchedule` on a :class:`Link`."""

    def __init__(self, link: Link, schedule: FaultSchedule, t0: float, stop_event: threading.Event) -> None:
        self.link = link
        self.schedule = schedule
        self.t0 = t0
        self._stop = stop_event
        self.errors: list[BaseException] = []
        self._reported = False
        self._thread = threading.Thread(target=self._run, name=f"peakchaos-faults-{link.name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def join(self, timeout: float | None = None) -> None:
        """Wait for the thread; ``TimeoutError`` if still running.

        The first ``join`` after the thread ended raises :class:`ScheduleError` if a fault failed
        to apply or revert (later joins do not raise it again).
        """
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise TimeoutError(f"fault schedule on link {self.link.name!r} still running after {timeout}s")
        if self.errors and not self._reported:
            self._reported = True
            lines = "; ".join(f"{type(e).__name__}: {e}" for e in self.errors)
            raise ScheduleError(
                f"fault schedule on link {self.link.name!r} had {len(self.errors)} failure(s): {lines}", self.errors
            )

    def _run(self) -> None:
        plan: list[tuple[float, int, int]] = []
        windows = {w.index: w for w in self.schedule.windows()}
        for w in windows.values():
            plan.append((w.start_s, 1, w.index))  # apply
            plan.append((w.end_s, 0, w.index))  # revert (sorts first at equal times)
        plan.sort()
        applied: dict[int, AppliedFault] = {}
        clock = self.link._clock
        try:
            for at, op, index in plan:
                delay = self.t0 + at - clock()
                if delay > 0:
                    self._stop.wait(delay)
                if self._stop.is_set():
                    break
                if op == 1:
                    try:
                        applied[index] = self.link.activate(windows[index].fault)
                    except Exception as exc:
                        self.errors.append(exc)
                else:
                    token = applied.pop(index, None)
                    if token is not None:
                        try:
                            token.revert()
                        except Exception as exc:
                            self.errors.append(exc)
        except BaseException as exc:  # never let the thread die with faults applied
            self.errors.append(exc)
        finally:
            for token in reversed(list(applied.values())):
                try:
                    token.revert()
                except BaseException as exc:
                    self.errors.append(exc)
