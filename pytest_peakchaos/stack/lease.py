"""The owner model: a run's resources belong to a *lease* that lives exactly as long as its owner.

Every stack starts, before anything else, one small container labelled with the run id and
``io.peakchaos.role=lease``. It runs ``python3`` reading its stdin until end of file, and the owner
process keeps that stdin attached through its connection to the engine (as ``docker run -i``
does). When the owner ends in any way, SIGKILL included, the kernel closes the connection, the
engine closes the container's stdin (``StdinOnce``), the reader sees EOF and the lease container
exits. So anyone who can talk to the engine can tell, without seeing the owner's process:

* lease running: the owner is alive (another session, an xdist worker, a CI job in another
  container on the same engine): never swept;
* lease exited (or gone while the run's other resources remain): the owner is gone: swept.

No Docker socket inside any container, no port, no clock: the engine's own connection state is
the heartbeat. See docs/owner-model.md.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Any

from . import labels

if TYPE_CHECKING:
    from .docker import DockerStack

__all__ = ["KEY", "LEASE_COMMAND", "acquire", "lease_states"]

#: key of the lease in ``DockerStack.containers`` (not a valid compose service name: no clash)
KEY = "peakchaos.lease"
LEASE_COMMAND = ["python3", "-c", "import sys\nwhile sys.stdin.buffer.read(65536): pass"]


def _image(stack: DockerStack) -> str | None:
    """An image with python3 the stack already uses: a build's base image arg, else a service's image."""
    for svc in stack.spec.services.values():
        if svc.build is not None:
            for key, value in svc.build.args.items():
                if "IMAGE" in key.upper() and value:
                    return value
    return next((stack.image_for(svc) for svc in stack.spec.services.values()), None)


def acquire(stack: DockerStack) -> Any:
    """Start ``stack``'s lease container and attach its stdin; returns the socket (keep it open).

    Call after the images are there. When no lease can run (no image with python3), the lease is
    removed again and None returned: the run falls back to the host:pid owner check (and says so).
    """
    import time

    image = _image(stack)
    if image is None:
        return None
    api = stack.client.api
    created = api.create_container(
        image,
        command=LEASE_COMMAND,
        name=f"peakchaos-{stack.run_id}-lease",
        labels=stack.labels(**{labels.ROLE: "lease"}),
        stdin_open=True,  # with detach=False (the default): StdinOnce, EOF when we detach
        network_disabled=True,
        host_config=api.create_host_config(
            security_opt=["no-new-privileges:true"], privileged=False, mem_limit=32 * 1024 * 1024,
        ),
    )
    import docker.errors

    container = stack.client.containers.get(created["Id"])
    sock = api.attach_socket(created["Id"], params={"stdin": 1, "stream": 1})
    try:
        api.start(created["Id"])
        time.sleep(0.3)
        container.reload()
        running = container.status == "running"
    except docker.errors.APIError:  # e.g. no python3 in the image
        running = False
    if not running:  # a lease that does not run would mark a live run as dead
        container.remove(force=True)
        _close(sock)
        stack._log(f"no owner lease ({image} cannot run python3): leftovers are found by host:pid only")
        return None
    stack.containers[KEY] = container
    # closed with the stack object (or at exit); the engine closes its end when the lease goes
    weakref.finalize(stack, _close, sock)
    return sock


def _close(sock: Any) -> None:
    # attach_socket gives a SocketIO over the connection's socket: close both
    for obj in (sock, getattr(sock, "_sock", None)):
        try:
            if obj is not None:
                obj.close()
        except OSError:
            pass


def lease_states(client: Any) -> dict[str, bool]:
    """``{run id: lease running}`` for every run that has a lease container."""
    found: dict[str, bool] = {}
    for container in client.containers.list(all=True, filters={"label": f"{labels.ROLE}=lease"}, ignore_removed=True):
        run = (container.labels or {}).get(labels.RUN)
        if run:
            found[run] = found.get(run, False) or container.status in ("running", "created", "restarting")
    return found
