"""Shared fixtures of the project's own suite."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any, NoReturn

import pytest


def unavailable(message: str) -> NoReturn:
    """Skip the test, or fail it when ``CI`` is set (a skip there would hide a missing install step)."""
    if os.environ.get("CI"):
        pytest.fail(message + " (CI is set: failing instead of skipping)", pytrace=False)
    pytest.skip(message)


def require_docker() -> Any:
    """A connected docker SDK client (the caller closes it), or ``unavailable`` when no engine answers."""
    import docker
    import docker.errors

    client = None
    try:
        client = docker.from_env(timeout=120)
        client.ping()
    except (docker.errors.DockerException, OSError) as exc:
        if client is not None:
            client.close()
        unavailable(f"no Docker engine answers ({exc}); run `make setup` or set DOCKER_HOST")
    return client


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[Any]:
    client = require_docker()
    yield client
    client.close()


#: set to 1 to run the long forms (``@pytest.mark.slow``) without ``-m slow``
#: scenarios A and B (tests/acceptance/test_scenarios.py, and their shapes in
#: tests/integration/test_backends.py): the default checks, with the isolation p95 floor raised from
#: 250 ms to 500 ms for the shared 2-core CI machine. On an idle machine the resilient shop's
#: isolated p95 is single-digit ms in every phase; on a starved one the whole machine's scheduling
#: delay lands in it (CI measured a 91 ms baseline and 301 ms in the fault window at under 700
#: requests/s, browse included, which never calls legacy). 500 ms stays below the fault's 600 ms
#: minimum: a page that waits on legacy still fails it.
AB_CHECKS = {"isolation_p95_floor_ms": 500.0}

SLOW_ENV = "PEAKCHAOS_SLOW"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Long forms (``@pytest.mark.slow``) run only when asked for: ``-m slow``, ``PEAKCHAOS_SLOW=1``
    (or the older ``PEAKCHAOS_LONG_SEARCH=1``); ``make test`` / CI run the short forms."""
    markexpr = str(config.getoption("markexpr", "") or "")
    if os.environ.get(SLOW_ENV) or os.environ.get("PEAKCHAOS_LONG_SEARCH") or "slow" in markexpr:
        return
    skip = pytest.mark.skip(reason=f"long form: run with -m slow or {SLOW_ENV}=1")
    for item in items:
        if item.get_closest_marker("slow") is not None:
            item.add_marker(skip)
