"""Project files into containers: a fresh copy per run, so nothing a container does reaches the host.

A bind mount of a path inside the project folder, a file secret or a file config becomes a tar
archive put into the created (not yet started) container at its target path. Read-only mounts are
copied read-only (mode 0444 files, 0555 folders, owned by root), the others writable by any
container user (0666/0777, as a bind mount would let the app write); the user's own files are never
mounted, so even a process that changes its copy changes only the copy.
"""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from docker.models.containers import Container

    from .compose import FileMount


def archive(files: Iterable[FileMount]) -> bytes:
    """A tar of every mount at its target path (parents created on extraction)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for mount in files:
            _add(tar, mount.source, mount.target.lstrip("/"), mount.read_only)
    return buf.getvalue()


def _add(tar: tarfile.TarFile, source: Path, name: str, read_only: bool) -> None:
    info = tar.gettarinfo(str(source), arcname=name)
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    if source.is_symlink():
        source = source.resolve()
        info = tar.gettarinfo(str(source), arcname=name)
        info.uid = info.gid = 0
    if source.is_dir():
        info.mode = 0o555 if read_only else 0o777  # writable copies for any container user, like a bind mount
        tar.addfile(info)
        for child in sorted(os.listdir(source)):
            _add(tar, source / child, f"{name}/{child}", read_only)
        return
    if not source.is_file():
        return  # sockets, devices, fifos: never copied
    info.mode = (0o444 if read_only else 0o666) | (info.mode & 0o111)
    with source.open("rb") as handle:
        tar.addfile(info, handle)


def copy_into(container: Container, files: Iterable[FileMount]) -> None:
    """Put ``files`` into the created container before it starts."""
    data = archive(files)
    if not container.put_archive("/", data):
        from .base import StackError

        raise StackError(f"could not copy project files into {container.name}")
