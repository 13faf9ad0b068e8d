"""Property-based chaos tests (DESIGN part 7): hypothesis settings for slow, live examples, a naive
shop stack, and the opt-in gate of the long search.

Settings profiles (use one as a decorator: ``@settings.get_profile("peakchaos-chaos")``):

* ``peakchaos-chaos`` -- every live property: few examples, no deadline, no ``explain`` phase
  (it re-runs the shrunk example dozens of times: minutes of live bursts), the failing examples
  kept in ``.hypothesis/peakchaos`` so the next run starts from them; with ``CI`` set:
  ``derandomize=True`` (the same examples on every CI run; hypothesis then uses no database);
* ``peakchaos-chaos-long`` -- the long search (``@pytest.mark.slow``): more examples and more
  fault kinds. Skipped unless selected with ``-m slow`` or ``PEAKCHAOS_LONG_SEARCH=1``.

``PEAKCHAOS_CHAOS_EXAMPLES=N`` overrides the example budget of ``peakchaos-chaos``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis.database import DirectoryBasedExampleDatabase

from pytest_peakchaos.stack.base import Stack

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "compose" / "shop.yml"
#: where failing examples are kept between runs (``.hypothesis/`` is git-ignored)
DATABASE_DIR = ROOT / ".hypothesis" / "peakchaos"

ON_CI = bool(os.environ.get("CI"))
LONG_SEARCH_ENV = "PEAKCHAOS_LONG_SEARCH"

#: No Phase.explain: after shrinking it replays variations of the failing example (~100 calls),
#: which against a live stack is minutes of bursts for a nicer message.
LIVE_PHASES = (Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink)

_live: dict[str, Any] = {
    "deadline": None,  # a burst takes seconds; hypothesis' 200 ms deadline is for unit tests
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    "phases": LIVE_PHASES,
    "report_multiple_bugs": False,  # one shrunk failure, not one per kind of exception
    "print_blob": True,  # the failure says how to replay it exactly (@reproduce_failure)
    "stateful_step_count": 15,
}
if ON_CI:
    _live["derandomize"] = True  # implies database=None
else:
    _live["database"] = DirectoryBasedExampleDatabase(str(DATABASE_DIR))

settings.register_profile(
    "peakchaos-chaos", max_examples=int(os.environ.get("PEAKCHAOS_CHAOS_EXAMPLES", "5")), **_live
)
settings.register_profile("peakchaos-chaos-long", max_examples=40, **_live)


@pytest.fixture(scope="module")
def naive_stack(docker_engine: Any) -> Iterator[Stack]:
    """A second reference shop with ``CLOUD_MODE=naive`` (no timeout, no breaker, no outbox),
    started for the module and always stopped."""
    from pytest_peakchaos.stack.compose import load_compose
    from pytest_peakchaos.stack.docker import DockerStack

    spec = load_compose(COMPOSE, environ={**os.environ, "CLOUD_MODE": "naive"})
    stack = DockerStack(spec, startup_timeout_s=240.0)
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()
