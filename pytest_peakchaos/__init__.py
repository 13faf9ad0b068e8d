"""pytest-peakchaos: chaos tests for cloud services in front of legacy systems.

The public API is small and cheap to import; everything heavy loads on first use::

    from pytest_peakchaos import latency, capacity, down

The library works without pytest: see :mod:`pytest_peakchaos.stack` and :mod:`pytest_peakchaos.load`.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

# name -> module that defines it (imported lazily, on first attribute access)
_EXPORTS = {
    "latency": "faults",
    "bandwidth": "faults",
    "timeout": "faults",
    "reset_peer": "faults",
    "slow_close": "faults",
    "slicer": "faults",
    "limit_data": "faults",
    "toxic": "faults",
    "down": "faults",
    "cpu": "faults",
    "capacity": "faults",
    "pause": "faults",
    "FaultSchedule": "faults",
    "Fault": "faults",
    "TOXIC_TYPES": "faults",
    "Link": "link",
    "LinkEvent": "link",
    "RevertError": "link",
    "ScheduleError": "link",
    "ToxiproxyClient": "toxiproxy",
    "ToxiproxyError": "toxiproxy",
    "DockerCapacity": "throttle",
    "Experiment": "experiment",
    "ExperimentResult": "experiment",
    "GracefulDegradationError": "experiment",
    "Policy": "checks",
    "find_headroom": "headroom",
    "HeadroomResult": "headroom",
    "HeadroomError": "headroom",
    "StackError": "stack.base",
    "Stack": "stack.base",
    "DockerStack": "stack.docker",
    "load_compose": "stack.compose",
    "ComposeError": "stack.compose",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'pytest_peakchaos' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"pytest_peakchaos.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
