"""Capacity faults on the legacy service: CPU quota throttling and pause/unpause.

:class:`CapacityTarget` is what a link needs to run ``cpu()`` and ``pause()`` faults;
:class:`DockerCapacity` implements it for a container of the docker SDK (the ``docker`` package is
only needed by whoever created the container; this module does not import it).
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from docker.models.containers import Container

__all__ = ["CPU_PERIOD_US", "CapacityTarget", "CpuLimits", "DockerCapacity"]

#: CFS period used when throttling (Docker's default: 100 ms).
CPU_PERIOD_US = 100_000
_MIN_QUOTA_US = 1_000  # Docker refuses quotas under 1 ms


@runtime_checkable
class CapacityTarget(Protocol):
    """Something whose CPU can be throttled and which can be frozen: the legacy service."""

    def throttle(self, cpus: float) -> None:
        """Limit to ``cpus`` CPUs (e.g. ``0.1``)."""

    def restore(self) -> None:
        """Undo :meth:`throttle`: back to the limits in force before the first throttle."""

    def pause(self) -> None:
        """Freeze every process of the service."""

    def unpause(self) -> None:
        """Thaw it (a no-op when it is not paused)."""


@dataclass(frozen=True)
class CpuLimits:
    """CPU limits of a container as Docker reports them (0 / -1 mean "not set")."""

    cpu_period: int
    cpu_quota: int
    nano_cpus: int

    @property
    def unlimited(self) -> bool:
        return self.nano_cpus <= 0 and self.cpu_quota <= 0

    @property
    def cpus(self) -> float | None:
        """Effective CPU limit, or ``None`` when unlimited."""
        if self.nano_cpus > 0:
            return self.nano_cpus / 1e9
        if self.cpu_quota > 0:
            return self.cpu_quota / (self.cpu_period or CPU_PERIOD_US)
        return None


class DockerCapacity:
    """:class:`CapacityTarget` for a docker SDK ``Container``.

    ``throttle(cpus)`` runs the equivalent of ``docker update --cpu-period 100000 --cpu-quota
    cpus*100000``; containers created with ``--cpus`` (``NanoCpus``, e.g. compose ``cpus:``) are
    throttled through ``NanoCpus`` instead, since the engine refuses to mix the two.
    ``restore()`` returns to the limits read before the first throttle, including "no limit"
    (quota ``-1``: an update with 0 would mean "leave unchanged" to the engine).
    """

    def __init__(self, container: Container) -> None:
        self._container = container
        self._original: CpuLimits | None = None
        self._lock = threading.RLock()

    @property
    def container(self) -> Container:
        return self._container

    def __repr__(self) -> str:
        return f"DockerCapacity({self._container.name!r})"

    def limits(self) -> CpuLimits:
        """Current CPU limits, read from the engine."""
        self._container.reload()
        host = self._container.attrs.get("HostConfig") or {}
        return CpuLimits(
            cpu_period=int(host.get("CpuPeriod") or 0),
            cpu_quota=int(host.get("CpuQuota") or 0),
            nano_cpus=int(host.get("NanoCpus") or 0),
        )

    @property
    def original(self) -> CpuLimits | None:
        """Limits recorded before the first throttle (``None`` when not throttled)."""
        return self._original

    def _update_nano_cpus(self, nano_cpus: int) -> None:
        # Neither Container.update nor APIClient.update_container accepts NanoCpus.
        client = self._container.client
        if client is None:  # pragma: no cover - containers from the SDK always have one
            raise RuntimeError(f"container {self._container.name!r} has no docker client")
        api: Any = client.api
        response = api._post_json(api._url("/containers/{0}/update", self._container.id), data={"NanoCpus": nano_cpus})
        api._result(response, True)

    def throttle(self, cpus: float) -> None:
        if isinstance(cpus, bool) or not isinstance(cpus, (int, float)) or not math.isfinite(cpus) or cpus <= 0:
            raise ValueError(f"cpus must be a positive number of CPUs (e.g. 0.1), got {cpus!r}")
        quota = int(round(cpus * CPU_PERIOD_US))
        if quota < _MIN_QUOTA_US:
            raise ValueError(f"cpus must be at least 0.01 (Docker's smallest quota is 1ms per 100ms), got {cpus!r}")
        with self._lock:
            if self._original is None:
                self._original = self.limits()
            if self._original.nano_cpus > 0:
                self._update_nano_cpus(int(round(cpus * 1e9)))
            else:
                self._container.update(cpu_period=CPU_PERIOD_US, cpu_quota=quota)

    def restore(self) -> None:
        with self._lock:
            original = self._original
            if original is None:
                return
            if original.nano_cpus > 0:
                self._update_nano_cpus(original.nano_cpus)
            else:
                self._container.update(
                    cpu_period=original.cpu_period or CPU_PERIOD_US,
                    cpu_quota=original.cpu_quota if original.cpu_quota > 0 else -1,
                )
            self._original = None

    def _status(self) -> str:
        self._container.reload()
        return str(self._container.status)

    def pause(self) -> None:
        with self._lock:
            if self._status() != "paused":
                self._container.pause()

    def unpause(self) -> None:
        with self._lock:
            if self._status() == "paused":
                self._container.unpause()
