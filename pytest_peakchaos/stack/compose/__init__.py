"""Read docker-compose files (plus their ``x-peakchaos`` block) into frozen specs.

peakchaos reads the compose files people already have: every key of the Compose Specification is
supported, accepted-and-ignored (noted once in the run header) or rejected with its reason, by the
written policy in :mod:`.policy` (the table in ``docs/compose.md``). Every problem of a file comes
in one :class:`ComposeError`. The package is pure — it reads files, never Docker or the network —
so every backend shares one parser. Modules by concern: ``yamlfile`` (YAML like compose's Go parser,
override-file merging), ``interpolate`` (``${VAR}``, ``.env``, ``env_file``), ``policy``,
``services``, ``mounts`` (volumes, project files, secrets), ``link`` (``x-peakchaos``),
``loader`` (``load_compose``), ``specs`` (the result types).
"""

from __future__ import annotations

from .loader import load_compose
from .specs import (
    DEFAULT_LISTEN_PORT,
    BuildSpec,
    DependsOn,
    FileMount,
    HealthcheckSpec,
    LedgerSpec,
    LinkSpec,
    PortSpec,
    ServiceSpec,
    StackSpec,
    VolumeMount,
)
from .values import ComposeError, Problem

__all__ = [
    "ComposeError",
    "Problem",
    "BuildSpec",
    "HealthcheckSpec",
    "PortSpec",
    "VolumeMount",
    "FileMount",
    "DependsOn",
    "ServiceSpec",
    "LinkSpec",
    "LedgerSpec",
    "StackSpec",
    "load_compose",
    "DEFAULT_LISTEN_PORT",
]
