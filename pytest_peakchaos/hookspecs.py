"""Hooks peakchaos offers to conftest files and other plugins (registered in ``pytest_addhooks``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from .stack.base import Stack


@pytest.hookspec(historic=False)
def pytest_peakchaos_stack_started(stack: Stack, config: pytest.Config) -> None:
    """Called once the stack is up and healthy, before the first test uses it (seed data here)."""


@pytest.hookspec
def pytest_peakchaos_stack_stopping(stack: Stack, config: pytest.Config) -> None:
    """Called before the stack is torn down (collect extra diagnostics here)."""


@pytest.hookspec
def pytest_peakchaos_experiment_finished(result: Any, config: pytest.Config) -> None:
    """Called with the result of every chaos experiment (``peakchaos.run``) when it ends."""
