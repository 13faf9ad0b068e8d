"""Run ids and the labels put on every container, network and volume a stack creates.

Every resource carries ``io.peakchaos.run`` (the run id) and ``io.peakchaos.owner``
(``host:pid:start-ticks`` of the process that created it). A later run sweeps resources whose
owner process is gone (killed with SIGKILL, say): see :mod:`pytest_peakchaos.stack.reaper`.
"""

from __future__ import annotations

import os
import secrets
import socket
from dataclasses import dataclass

RUN = "io.peakchaos.run"
OWNER = "io.peakchaos.owner"
PROJECT = "io.peakchaos.project"
SERVICE = "io.peakchaos.service"
KEEP = "io.peakchaos.keep"
ROLE = "io.peakchaos.role"

__all__ = ["RUN", "OWNER", "PROJECT", "SERVICE", "KEEP", "ROLE", "new_run_id", "Owner", "current_owner"]


def new_run_id() -> str:
    """A short, unique, docker-name-safe id for one run: ``pc-`` and 10 hex digits."""
    return "pc-" + secrets.token_hex(5)


def _start_ticks(pid: int) -> str:
    """The process's start time in clock ticks since boot (field 22 of /proc/PID/stat), or ''."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            stat = fh.read()
    except OSError:
        return ""
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    rest = stat.rsplit(")", 1)[-1].split()
    return rest[19] if len(rest) > 19 else ""


@dataclass(frozen=True)
class Owner:
    host: str
    pid: int
    start: str

    def label(self) -> str:
        return f"{self.host}:{self.pid}:{self.start}"

    @classmethod
    def parse(cls, value: str) -> Owner | None:
        parts = value.rsplit(":", 2)
        if len(parts) != 3 or not parts[1].isdigit():
            return None
        return cls(parts[0], int(parts[1]), parts[2])

    def is_alive(self) -> bool:
        """True when this owner is a process that still runs on this host.

        A different host cannot be checked and counts as alive (never sweep what may be in use).
        A pid that now belongs to another process (different start time) counts as gone.
        """
        if self.host != socket.gethostname():
            return True
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return not self.start or _start_ticks(self.pid) == self.start


def current_owner() -> Owner:
    pid = os.getpid()
    return Owner(socket.gethostname(), pid, _start_ticks(pid))
