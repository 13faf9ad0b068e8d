"""The object behind the ``peakchaos`` fixture: runs experiments on the session's stack and records them.

Thin over :class:`pytest_peakchaos.experiment.Experiment`: it supplies the stack, the session's
``--peakchaos-seed`` / ``--peakchaos-scale``, a live progress line, and keeps every result for the
terminal summary, the JSON/HTML report and JUnit properties.
"""

from __future__ import annotations

import random
import sys
import time
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from .experiment import ExperimentResult
    from .headroom import HeadroomResult
    from .session import PeakchaosSession
    from .stack.base import Stack

from .validate import RUN_KEYS as MARKER_KEYS
from .validate import check_marker, check_run_args


class Progress:
    """A one-line live status: rewritten in place on a terminal, a line every few seconds elsewhere."""

    def __init__(self, write: Callable[[str], None], *, tty: bool, every_s: float = 5.0) -> None:
        self._write = write
        self._tty = tty
        self._every = every_s
        self._last = 0.0
        self._width = 0

    def __call__(self, line: str) -> None:
        if self._tty:
            pad = max(0, self._width - len(line))
            self._write("\r" + line + " " * pad)
            self._width = len(line)
            return
        now = time.monotonic()
        if now - self._last >= self._every:
            self._last = now
            self._write(line + "\n")

    def done(self) -> None:
        if self._tty and self._width:
            self._write("\r" + " " * self._width + "\r")
            self._width = 0


class Chaos:
    """``peakchaos.run(profile=..., duration=..., faults=[...])`` → an :class:`ExperimentResult`."""

    def __init__(
        self,
        stack: Stack | Callable[[], Stack],
        session: PeakchaosSession,
        *,
        test: str,
        progress: Progress | None = None,
        record: Callable[[str, object], None] | None = None,
        finished: Callable[[ExperimentResult], None] | None = None,
    ) -> None:
        # A callable starts the session's stack on first use: run()'s arguments are checked first,
        # so a bad one fails before any container starts.
        self._stack: Stack | None = None if callable(stack) else stack
        self._get_stack: Callable[[], Stack] | None = stack if callable(stack) else None
        self._session = session
        self._test = test
        self._progress = progress
        self._record = record
        self._finished = finished
        self.results: list[ExperimentResult] = []

    @property
    def stack(self) -> Stack:
        if self._stack is None:
            assert self._get_stack is not None
            self._stack = self._get_stack()
        return self._stack

    def on(self, stack: Stack) -> Chaos:
        """The same recorder bound to another stack (e.g. a naive variant started by the test)."""
        other = Chaos(stack, self._session, test=self._test, progress=self._progress, record=self._record, finished=self._finished)
        other.results = self.results  # numbering and JUnit prefixes continue across stacks
        return other

    def run(self, profile: Any = "double11", duration: Any = "60s", faults: Any = (), **kwargs: Any) -> ExperimentResult:
        from .experiment import Experiment

        check_run_args({"profile": profile, "duration": duration, "faults": faults, **kwargs})
        settings = self._session.settings
        seed = kwargs.pop("seed", None)
        if seed is None:
            seed = settings.seed if settings.seed is not None else random.SystemRandom().randrange(1, 2**31)
        scale = float(kwargs.pop("scale", 1.0)) * settings.scale
        link = kwargs.pop("link", None)
        if getattr(settings, "engine", "python") != "python" and "engine" not in kwargs:
            kwargs["engine"] = settings.engine
        if getattr(settings, "dask", None) and "cluster" not in kwargs:
            kwargs["cluster"] = settings.dask
        ledger = kwargs.pop("ledger", None)  # a callable, "module:function" or an x-peakchaos-style mapping
        if ledger is not None:
            from .stack.ledger import ledger_reader

            ledger = ledger_reader(self.stack, ledger)
        name = self._test if not self.results else f"{self._test}#{len(self.results) + 1}"
        from .stack.health import HarnessError, harness_problem

        if self._session.harness_error is not None:
            earlier = self._session.harness_error
            raise HarnessError(earlier, f"not run: the harness broke earlier in the session: {earlier}")
        experiment = Experiment(self.stack, link=link, name=name, on_progress=self._progress, ledger=ledger)
        from .xdist import locked

        try:
            with locked(self._session, experiment.spec_link.name if experiment.spec_link is not None else "-"):
                result = experiment.run(profile=profile, duration=duration, faults=faults, seed=seed, scale=scale, **kwargs)
        except Exception as exc:
            from .load.api import LoadWorkerDied

            if isinstance(exc, LoadWorkerDied):  # the load engine's own worker died: the stack is fine
                raise HarnessError(str(exc)) from exc
            problem = harness_problem(self.stack)
            if problem is None and isinstance(exc, HarnessError):  # seen during the run, gone since
                problem = exc.problem
            if problem is not None:  # the rig broke, not the shop: later tests get a rebuilt stack
                self._session.harness_error = problem
                raise HarnessError(problem) from exc
            raise
        finally:
            if self._progress is not None:
                self._progress.done()
        # The watch covered the load; this covers what came after it (counters, ledger settling)
        # and Toxiproxy's API, which the watch does not ask while the load runs.
        problem = harness_problem(self.stack)
        if problem is not None:
            self._session.harness_error = problem
            raise HarnessError(problem)
        self.results.append(result)
        self._session.results.append((name, result))
        if self._record is not None:
            prefix = "peakchaos" if len(self.results) == 1 else f"peakchaos{len(self.results)}"
            self._record(f"{prefix}_seed", result.seed)
            self._record(f"{prefix}_profile", result.profile)
            self._record(f"{prefix}_passed", result.passed)
            self._record(f"{prefix}_requests", result.load.requests_sent)
            self._record(f"{prefix}_legacy_calls_per_session", round(result.legacy_calls_per_session, 3))
            failed = [c.name + "/" + c.phase for c in result.checks if not c.passed and not c.skipped]
            self._record(f"{prefix}_failed_checks", ",".join(failed))
            unmeasured = [c.name + "/" + c.phase for c in result.checks if c.skipped]
            self._record(f"{prefix}_not_measured_checks", ",".join(unmeasured))
            self._record(f"{prefix}_verdict", result.verdict)
        if self._finished is not None:
            self._finished(result)
        return result

    def headroom(self, profile: Any = "double11", faults: Any = (), **kwargs: Any) -> HeadroomResult:
        """The highest graceful session arrival rate under ``faults``: ``headroom(rates=(2, 40), ...)``
        (see :func:`pytest_peakchaos.headroom.find_headroom`; ``--peakchaos-scale`` does not apply)."""
        from .experiment import Experiment
        from .headroom import find_headroom

        settings = self._session.settings
        seed = kwargs.pop("seed", None)
        if seed is None:
            seed = settings.seed if settings.seed is not None else random.SystemRandom().randrange(1, 2**31)
        link = kwargs.pop("link", None)
        mine = [n for n, _ in self._session.headroom if n == self._test or n.startswith(self._test + "#")]
        name = self._test if not mine else f"{self._test}#{len(mine) + 1}"
        experiment = Experiment(self.stack, link=link, name=name, on_progress=self._progress)
        from .xdist import locked

        try:
            with locked(self._session, experiment.spec_link.name if experiment.spec_link is not None else "-"):
                room = find_headroom(experiment, profile, faults, seed=seed, **kwargs)
        finally:
            if self._progress is not None:
                self._progress.done()
        self._session.headroom.append((name, room))
        if self._record is not None:
            prefix = "peakchaos_headroom" if not mine else f"peakchaos_headroom{len(mine) + 1}"
            self._record(f"{prefix}_graceful_up_to", room.graceful_up_to)
            self._record(f"{prefix}_not_at", room.not_at)
            self._record(f"{prefix}_summary", room.summary())
        return room


def marker_kwargs(args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    """Validate ``@pytest.mark.peakchaos(...)`` arguments (see :func:`pytest_peakchaos.validate.check_marker`)."""
    return check_marker(args, kwargs)


def stream_is_tty() -> bool:
    return bool(getattr(sys.__stdout__, "isatty", lambda: False)())
