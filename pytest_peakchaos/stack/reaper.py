"""Sweep resources left behind by runs whose owner process is gone.

A run killed with SIGKILL cannot tear its stack down. Its containers, network and volumes keep
their labels, so the next run (or ``peakchaos prune``) finds them: every resource labelled
``io.peakchaos.run`` whose owner is gone is removed. The owner is gone when the run's lease
container has ended (:mod:`.lease`; any host, any PID namespace) or, for a run without a lease,
when its ``io.peakchaos.owner`` process no longer runs on this host.
Runs started with ``--peakchaos-keep`` are left alone unless ``include_kept`` is set.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import labels

if TYPE_CHECKING:
    import docker


@dataclass
class SweepReport:
    runs: list[str] = field(default_factory=list)
    containers: list[str] = field(default_factory=list)
    networks: list[str] = field(default_factory=list)
    volumes: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    why: dict[str, str] = field(default_factory=dict)  # run id -> why it counts as dead
    created: dict[str, float] = field(default_factory=dict)  # run id -> oldest creation (epoch s)

    def __bool__(self) -> bool:
        return bool(self.containers or self.networks or self.volumes)

    def note(self, lab: dict[str, str], created: str, leases: dict[str, bool]) -> None:
        run = lab.get(labels.RUN, "?")
        if run not in self.why:
            owner = lab.get(labels.OWNER, "?")
            self.why[run] = f"owner {owner}: " + ("lease ended" if run in leases else "process gone")
        when = _epoch(created)
        if when is not None:
            self.created[run] = min(self.created.get(run, when), when)

    def summary(self) -> str:
        if not self:
            return "nothing to sweep"
        import time

        runs = []
        for run in sorted(self.runs):
            age = self.created.get(run)
            old = f", {_age(time.time() - age)} old" if age is not None else ""
            runs.append(f"{run} ({self.why.get(run, 'asked for')}{old})")
        return (
            f"swept {len(self.runs)} leftover run(s): {'; '.join(runs)}: "
            f"{len(self.containers)} container(s), {len(self.networks)} network(s), "
            f"{len(self.volumes)} volume(s)"
        )


def _epoch(text: str) -> float | None:
    """Docker's RFC 3339 timestamps (nanoseconds, ``Z``) as epoch seconds."""
    import re
    from datetime import datetime

    m = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)?", text or "")
    if not m:
        return None
    tz = m.group(3) or "Z"
    stamp = datetime.fromisoformat(m.group(1) + ("+00:00" if tz == "Z" else tz))
    return stamp.timestamp() + float(m.group(2) or 0)


def _age(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _labels_of(obj: Any) -> dict[str, str]:
    attrs = obj.attrs
    found = attrs.get("Labels") or attrs.get("Config", {}).get("Labels") or {}
    return dict(found)


def _is_orphan(
    obj_labels: dict[str, str], *, include_kept: bool, only_run: str | None, leases: dict[str, bool] | None = None
) -> bool:
    """Whether to remove a resource: its run is the one asked for, or its owner is gone.

    The owner is gone when the run's lease container no longer runs (see :mod:`.lease`: works
    across hosts and PID namespaces); a run without a lease falls back to the ``host:pid`` owner
    label (only decidable on the owner's own host: another host counts as alive). A resource
    without a readable owner label was not made by a peakchaos stack: left alone.
    """
    run = obj_labels.get(labels.RUN)
    if not run:
        return False
    if only_run is not None:
        return run == only_run
    if obj_labels.get(labels.KEEP) == "1":
        return include_kept
    if leases is not None and run in leases:
        return not leases[run]
    owner = labels.Owner.parse(obj_labels.get(labels.OWNER, ""))
    return owner is not None and not owner.is_alive()


def sweep(
    client: docker.DockerClient,
    *,
    include_kept: bool = False,
    only_run: str | None = None,
    among: set[str] | None = None,
) -> SweepReport:
    """Remove orphaned peakchaos resources (see module doc). Returns what was removed.

    ``only_run``: remove that run whatever its owner; ``among``: look only at these runs (tests).
    """
    import docker.errors

    from .lease import lease_states

    report = SweepReport()
    leases = lease_states(client)
    flt: dict[str, str | list[str] | bool] = {"label": labels.RUN}
    # ignore_removed: a container another run removes between the listing and its inspect is skipped
    for container in client.containers.list(all=True, filters=flt, ignore_removed=True):
        lab = _labels_of(container)
        if among is not None and lab.get(labels.RUN) not in among:
            continue
        if _is_orphan(lab, include_kept=include_kept, only_run=only_run, leases=leases):
            report.note(lab, container.attrs.get("Created", ""), leases)
            try:
                container.remove(force=True, v=True)
                report.containers.append(container.name or container.id or "?")
                report.runs.append(lab[labels.RUN])
            except docker.errors.NotFound:
                pass
            except docker.errors.APIError as exc:
                report.errors.append(f"container {container.name}: {exc}")
    for network in client.networks.list(filters=flt):
        lab = _labels_of(network)
        if among is not None and lab.get(labels.RUN) not in among:
            continue
        network.reload()
        lab = _labels_of(network)
        if _is_orphan(lab, include_kept=include_kept, only_run=only_run, leases=leases):
            report.note(lab, network.attrs.get("Created", ""), leases)
            try:
                network.remove()
                report.networks.append(network.name or "?")
                report.runs.append(lab[labels.RUN])
            except docker.errors.NotFound:
                pass
            except docker.errors.APIError as exc:
                report.errors.append(f"network {network.name}: {exc}")
    for volume in client.volumes.list(filters=flt):
        lab = _labels_of(volume)
        if among is not None and lab.get(labels.RUN) not in among:
            continue
        if _is_orphan(lab, include_kept=include_kept, only_run=only_run, leases=leases):
            report.note(lab, volume.attrs.get("CreatedAt", ""), leases)
            try:
                volume.remove(force=True)
                report.volumes.append(volume.name)
                report.runs.append(lab[labels.RUN])
            except docker.errors.NotFound:
                pass
            except docker.errors.APIError as exc:
                report.errors.append(f"volume {volume.name}: {exc}")
    report.runs = sorted(set(report.runs))
    return report
