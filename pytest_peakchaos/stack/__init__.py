"""Stack: compose parsing, containers, Toxiproxy wiring and teardown.

Backends: ``docker`` (a compose file; the default), ``local`` (a stack file with ``kind: local``:
services as subprocesses, a toxiproxy-server binary) and ``external`` (a stack file with
``kind: external``: endpoints that already run). ``load_stack_file`` tells them apart.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from .base import Stack

__all__ = ["load_stack_file", "make_stack"]


def load_stack_file(path: str | Path) -> Any:
    """The validated spec of a stack file: ``kind: external`` / ``kind: local`` files, else compose."""
    from .external import is_external_file, load_external
    from .local import is_local_file, load_local

    if is_external_file(path):
        return load_external(path)
    if is_local_file(path):
        return load_local(path)
    from .compose import load_compose

    return load_compose(path)


def make_stack(spec: Any, *, log: Callable[[str], None] | None = None) -> Stack:
    """A (not yet started) stack for a ``local`` or ``external`` spec."""
    backend = getattr(spec, "backend", "docker")
    if backend == "external":
        from .external import ExternalStack

        return ExternalStack(spec, log=log)
    if backend == "local":
        from .local import LocalStack

        return LocalStack(spec, log=log)
    raise ValueError(f"make_stack: no backend {backend!r} here; valid: external, local (docker stacks: DockerStack)")
