"""The sale-day load engine: partly-open shopper sessions, honest latency, hard bounds.

``run_load(base_url, "double11", duration="60s", seed=1, max_requests=..., max_sessions=None,
concurrency_cap=..., request_timeout_s=...)`` drives shoppers against a service and returns a
``LoadResult``. Works without pytest. See docs/load.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pytest_peakchaos.load.api import run_load
from pytest_peakchaos.load.plan import SessionPlan, Step, plan_session, plan_sessions
from pytest_peakchaos.load.result import (
    ERROR_KINDS,
    STATUS_CLASSES,
    AckOrder,
    ActionStats,
    LoadResult,
    LogSketch,
    SecondStats,
    SessionCounts,
    WindowStats,
)
from pytest_peakchaos.load.shapes import Constant, Double11, Ramp, Shape, Spike, Step as StepShape, arrival_times, shape_from_dict

if TYPE_CHECKING:
    from pytest_peakchaos.profiles import Profile, ProfileError, RequestBinding, load_profile

# Re-exported from pytest_peakchaos.profiles lazily: profiles imports load.shapes, so importing it
# here eagerly would make the import order matter.
_FROM_PROFILES = ("Profile", "ProfileError", "RequestBinding", "load_profile")


def __getattr__(name: str) -> Any:
    if name in _FROM_PROFILES:
        import pytest_peakchaos.profiles as profiles

        value = getattr(profiles, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'pytest_peakchaos.load' has no attribute {name!r}")

__all__ = [
    "run_load",
    "plan_sessions",
    "plan_session",
    "SessionPlan",
    "Step",
    "LoadResult",
    "ActionStats",
    "SecondStats",
    "SessionCounts",
    "WindowStats",
    "AckOrder",
    "LogSketch",
    "ERROR_KINDS",
    "STATUS_CLASSES",
    "Shape",
    "Constant",
    "Ramp",
    "StepShape",
    "Spike",
    "Double11",
    "arrival_times",
    "shape_from_dict",
    "Profile",
    "ProfileError",
    "RequestBinding",
    "load_profile",
]
