"""One test session's peakchaos state: settings, the parsed stack spec, the (lazily started) stack.

Plain Python (no pytest): the plugin keeps one instance in ``config.stash`` and turns its errors
into pytest outcomes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from .stack.base import StackError

if TYPE_CHECKING:
    from .stack.base import Stack
    from .stack.compose import StackSpec


class EngineUnavailable(StackError):
    """No container engine answers (the plugin fails under CI and skips elsewhere)."""


@dataclass
class Settings:
    stack: Path | None = None
    keep: bool = False
    toxiproxy_image: str = "ghcr.io/shopify/toxiproxy:2.12.0"
    startup_timeout: float = 180.0
    seed: int | None = None
    scale: float = 1.0
    report: Path | None = None
    dask: str | None = None
    xdist: str = "per-worker"
    engine: str = "python"

    @classmethod
    def from_mapping(cls, values: dict[str, Any]) -> Settings:
        return cls(**{k.replace("-", "_"): v for k, v in values.items()})


@dataclass
class PeakchaosSession:
    settings: Settings
    spec: StackSpec | None = None
    log: Callable[[str], None] = field(default=lambda msg: None)
    stack: Stack | None = None
    kept: Stack | None = None
    start_error: StackError | None = None
    messages: list[str] = field(default_factory=list)
    results: list[Any] = field(default_factory=list)  # (test name, ExperimentResult)
    headroom: list[Any] = field(default_factory=list)  # (test name, HeadroomResult)
    report_files: dict[str, Path] | None = None
    starting: Stack | None = None
    harness_error: str | None = None  # set when the harness broke: the next test rebuilds the stack
    #: why the stack could not be rebuilt after a harness error (later tests skip with it)
    rebuild_error: str | None = None
    rebuilds: int = 0
    stopped: list[str] = field(default_factory=list)  # run ids torn down (or kept) by close()

    def leftovers(self) -> list[str]:
        """What a forced exit leaves behind and how to remove it (lines for the terminal)."""
        stack = self.stack or self.starting
        if stack is None:
            return ["[peakchaos] no stack was started: nothing is left"]
        names = [getattr(c, "name", "?") for c in getattr(stack, "containers", {}).values()]
        lines = [f"[peakchaos] left running: stack {stack.run_id}: " + (", ".join(names) or "no container yet")]
        for link in stack.links.values():
            if link.active:
                lines.append(f"[peakchaos]   link {link.name}: {len(link.active)} fault(s) still applied")
        lines.append(f"[peakchaos] remove it with: peakchaos prune --run {stack.run_id} (the next session sweeps it too)")
        return lines
    #: result documents sent by xdist workers (on the controller)
    remote_results: list[dict[str, Any]] = field(default_factory=list)
    #: headroom entries (``HeadroomResult.to_dict``) sent by xdist workers (on the controller)
    remote_headroom: list[dict[str, Any]] = field(default_factory=list)
    #: this worker uses the xdist controller's stack (shared mode): it never starts or removes one
    shared: bool = False
    #: where the cross-process link locks live (xdist shared mode, on a worker); None elsewhere
    lock_dir: Path | None = None

    def load_spec(self) -> None:
        """Parse and validate the compose file now (bad input must fail before anything starts)."""
        if self.settings.stack is not None:
            from .stack import load_stack_file

            self.spec = load_stack_file(self.settings.stack)

    def _log(self, msg: str) -> None:
        self.messages.append(msg)
        self.log(msg)

    def get_stack(self) -> Stack:
        """The running stack, started on first use; the same error again if starting failed."""
        if self.stack is not None:
            return self.stack
        if self.start_error is not None:
            raise self.start_error
        if self.spec is None:
            raise StackError(
                "no stack configured: pass --peakchaos-stack path/to/compose.yml or set "
                "peakchaos_stack in the ini file (pytest.ini / pyproject [tool.pytest.ini_options])"
            )
        backend = getattr(self.spec, "backend", "docker")
        if backend != "docker":
            from .stack import make_stack

            other = make_stack(self.spec, log=self._log)
            try:
                other.start()
            except StackError as exc:
                self.start_error = exc
                raise
            self.stack = other
            return other
        from .stack.docker import DockerStack, docker_client

        try:
            client = docker_client()
        except StackError as exc:
            self.start_error = EngineUnavailable(str(exc))
            raise self.start_error from exc
        stack = DockerStack(
            self.spec,
            toxiproxy_image=self.settings.toxiproxy_image,
            keep=self.settings.keep,
            startup_timeout_s=self.settings.startup_timeout,
            client=client,
            log=self._log,
        )
        self.starting = stack
        try:
            stack.start()
        except StackError as exc:
            self.start_error = exc
            raise
        except Exception as exc:  # docker API errors etc.: one clear message
            self.start_error = StackError(f"starting the stack from {self.spec.path} failed: {exc}")
            raise self.start_error from exc
        finally:
            self.starting = None
        self.stack = stack
        return stack

    #: most rebuilds per session: a harness that keeps breaking ends in skips, not in a loop
    MAX_REBUILDS = 3

    def rebuild(self) -> Stack:
        """After a harness error: tear the session's stack down and start a fresh one.

        Once per harness error, at most :attr:`MAX_REBUILDS` times a session; :class:`StackError`
        (naming the harness error) when it cannot be done, and for every later call."""
        if self.rebuild_error is not None:
            raise StackError(self.rebuild_error)
        error, stack = self.harness_error, self.stack
        if error is None and stack is not None:
            return stack
        if stack is None or self.shared:
            self.rebuild_error = f"{error} (the stack is not this session's to rebuild)"
            raise StackError(self.rebuild_error)
        if self.rebuilds >= self.MAX_REBUILDS:
            self.rebuild_error = f"{error} (the harness broke {self.rebuilds + 1} times: no more rebuilds)"
            raise StackError(self.rebuild_error)
        old = stack.run_id
        self._log(f"harness error earlier in the session: rebuilding the stack (tearing down {old}, starting a fresh one)")
        self.rebuilds += 1
        try:
            stack.rebuild()
        except Exception as exc:  # noqa: BLE001 - any failure: later tests skip naming both
            self.rebuild_error = f"{error}; rebuilding the stack failed too: {exc}"
            raise StackError(self.rebuild_error) from exc
        self.stopped.append(old)
        self.harness_error = None
        self._log(f"stack rebuilt: {old} -> {stack.run_id}")
        return stack

    def close(self) -> None:
        if self.stack is not None:
            stack, self.stack = self.stack, None
            self.stopped.append(stack.run_id)
            stack.stop()
            if self.settings.keep:
                self.kept = stack
