"""Sweep resources left behind by runs whose owner process is gone.

A run killed with SIGKILL cannot tear its stack down. Its containers, network and volumes keep
their labels, so the next run (or ``peakchaos prune``) finds them: every resource labelled
``io.peakchaos.run`` whose ``io.peakchaos.owner`` process no longer runs on this host is removed.
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

    def __bool__(self) -> bool:
        return bool(self.containers or self.networks or self.volumes)

    def summary(self) -> str:
        if not self:
            return "nothing to sweep"
        return (
            f"swept {len(self.runs)} run(s) ({', '.join(sorted(self.runs))}): "
            f"{len(self.containers)} container(s), {len(self.networks)} network(s), "
            f"{len(self.volumes)} volume(s)"
        )


def _labels_of(obj: Any) -> dict[str, str]:
    attrs = obj.attrs
    found = attrs.get("Labels") or attrs.get("Config", {}).get("Labels") or {}
    return dict(found)


def _is_orphan(obj_labels: dict[str, str], *, include_kept: bool, only_run: str | None) -> bool:
    """Whether to remove a resource: its run is the one asked for, or its owner process is gone.

    A resource without a readable owner label was not made by a peakchaos stack: left alone.
    """
    run = obj_labels.get(labels.RUN)
    if not run:
        return False
    if only_run is not None:
        return run == only_run
    if obj_labels.get(labels.KEEP) == "1":
        return include_kept
    owner = labels.Owner.parse(obj_labels.get(labels.OWNER, ""))
    return owner is not None and not owner.is_alive()


def sweep(
    client: docker.DockerClient,
    *,
    include_kept: bool = False,
    only_run: str | None = None,
) -> SweepReport:
    """Remove orphaned peakchaos resources (see module doc). Returns what was removed."""
    import docker.errors

    report = SweepReport()
    flt: dict[str, str | list[str] | bool] = {"label": labels.RUN}
    for container in client.containers.list(all=True, filters=flt):
        lab = _labels_of(container)
        if _is_orphan(lab, include_kept=include_kept, only_run=only_run):
            try:
                container.remove(force=True, v=True)
                report.containers.append(container.name or container.id or "?")
                report.runs.append(lab[labels.RUN])
            except docker.errors.NotFound:
                pass
            except docker.errors.APIError as exc:
                report.errors.append(f"container {container.name}: {exc}")
    for network in client.networks.list(filters=flt):
        network.reload()
        lab = _labels_of(network)
        if _is_orphan(lab, include_kept=include_kept, only_run=only_run):
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
        if _is_orphan(lab, include_kept=include_kept, only_run=only_run):
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
