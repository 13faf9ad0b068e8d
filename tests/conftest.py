"""Shared fixtures of the project's own suite."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest


def require_docker() -> Any:
    """A docker SDK client, or: fail when CI is set (a skip would hide a missing install step), skip otherwise."""
    import docker
    import docker.errors

    try:
        client = docker.from_env(timeout=120)
        client.ping()
    except (docker.errors.DockerException, OSError) as exc:
        msg = f"no Docker engine answers ({exc}); run `make setup`"
        if os.environ.get("CI"):
            pytest.fail(msg + " (CI is set: failing instead of skipping)", pytrace=False)
        pytest.skip(msg)
    return client


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[Any]:
    client = require_docker()
    yield client
    client.close()
