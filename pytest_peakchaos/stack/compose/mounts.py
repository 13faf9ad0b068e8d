"""Mounts: named and anonymous volumes, project files (copied in, never bound), secrets, configs, tmpfs.

A path a compose file mounts must lie inside the project folder (the first compose file's folder)
and exist: the docker backend copies it into the container before it starts, so nothing the
container does reaches the user's files. Paths outside the project, the Docker socket and devices
are rejected.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from .specs import FileMount, VolumeMount
from .values import Problem, _boolean, _check_keys, _Ctx, _got, _join, _list, _mapping, _require, _string

_SOCKET = (
    "the Docker socket would give the container control of the engine (and so of the host); remove "
    "this mount: peakchaos never mounts it"
)
_MODES_IGNORED = ("z", "Z", "cached", "delegated", "consistent", "nocopy")


def _parse_volumes(
    ctx: _Ctx, key: str, raw: object, declared: Sequence[str], files: list[FileMount], tmpfs: list[str]
) -> list[VolumeMount]:
    """Named/anonymous volumes (returned), project files (to ``files``), long-form tmpfs (to ``tmpfs``)."""
    if raw is None:
        return []
    items = _list(ctx, key, raw, "a list of mounts such as 'data:/var/lib/app' or './conf:/etc/app:ro'")
    mounts: list[VolumeMount] = []
    for i, item in enumerate(items):
        ikey = _join(key, i)
        found = ctx.guard(_parse_volume, ctx, ikey, item, declared)
        if isinstance(found, FileMount):
            files.append(found)
        elif isinstance(found, VolumeMount):
            mounts.append(found)
        elif isinstance(found, str):  # tmpfs given in the long form
            tmpfs.append(found)
    return mounts


def _parse_volume(ctx: _Ctx, key: str, item: object, declared: Sequence[str]) -> VolumeMount | FileMount | str:
    if isinstance(item, str):
        parts = item.split(":")
        if len(parts) == 1:
            source, target, mode = "", parts[0], ""
        elif len(parts) in (2, 3):
            source, target, mode = parts[0], parts[1], parts[2] if len(parts) == 3 else ""
        else:
            ctx.fail(key, f"expected 'name:/path[:ro]', './file:/path[:ro]' or '/path' (anonymous), got {item!r}")
        read_only = False
        for option in filter(None, mode.split(",")):
            if option in ("ro", "rw"):
                read_only = option == "ro"
            elif option not in _MODES_IGNORED:
                ctx.fail(key, f"unsupported mount option {option!r} in {item!r}; valid options: ro, rw (z, Z, cached, delegated, nocopy are accepted and not needed)")
        kind = "bind" if _looks_like_path(source) else "volume"
        return _mount(ctx, key, kind, source, target, read_only, declared, item)
    if not isinstance(item, dict):
        ctx.fail(key, f"expected 'name:/path[:ro]' or a mapping with type, source, target, read_only; {_got(item)}")
    data = _mapping(ctx, key, item)
    _check_keys(ctx, key, data, ("type", "source", "target", "read_only", "bind", "volume", "tmpfs", "consistency"), "a mount")
    kind = _string(ctx, _join(key, "type"), _require(ctx, key, data, "type", "a mount", "write type: volume, bind or tmpfs"), "'volume', 'bind' or 'tmpfs'")
    if kind not in ("volume", "bind", "tmpfs"):
        ctx.fail(_join(key, "type"), f"unsupported mount type {kind!r}; valid types: volume, bind, tmpfs")
    target = _string(ctx, _join(key, "target"), _require(ctx, key, data, "target", "a mount", "target is the path in the container"), "an absolute path")
    if kind == "tmpfs":
        if not target.startswith("/"):
            ctx.fail(_join(key, "target"), f"a tmpfs mount must be an absolute path such as '/tmp', {_got(target)}")
        size = None
        if data.get("tmpfs") is not None:
            topts = _mapping(ctx, _join(key, "tmpfs"), data["tmpfs"])
            _check_keys(ctx, _join(key, "tmpfs"), topts, ("size", "mode"), "tmpfs options")
            size = topts.get("size")
        return f"{target}:size={size}" if size is not None else target
    source = ""
    if data.get("source") is not None:
        source = _string(ctx, _join(key, "source"), data["source"], "a volume name or a path")
    if data.get("volume") is not None:
        vopts = _mapping(ctx, _join(key, "volume"), data["volume"])
        _check_keys(ctx, _join(key, "volume"), vopts, ("nocopy",), "volume options")
    read_only = _boolean(ctx, _join(key, "read_only"), data["read_only"]) if data.get("read_only") is not None else False
    if kind == "bind" and not source:
        ctx.fail(_join(key, "source"), "a bind mount needs source: a path inside the project folder")
    if kind == "volume" and source and _looks_like_path(source):
        kind = "bind"
    return _mount(ctx, key, kind, source, target, read_only, declared, item)


def _mount(
    ctx: _Ctx, key: str, kind: str, source: str, target: str, read_only: bool, declared: Sequence[str], item: object
) -> VolumeMount | FileMount:
    if not target.startswith("/"):
        ctx.fail(key, f"the mount target must be an absolute path such as '/data', got {target!r}")
    if "docker.sock" in source or target.endswith("docker.sock"):
        ctx.fail(key, _SOCKET)
    if kind == "bind":
        return FileMount(_project_path(ctx, key, source), target, read_only, key)
    if not source:
        return VolumeMount(None, target, read_only)  # anonymous: a fresh volume per run
    if source not in declared:
        ctx.fail(key, f"volume {source!r} is not declared; add it under the top-level 'volumes' key (volumes: {{{source}: {{}}}})")
    return VolumeMount(source, target, read_only)


def _project_path(ctx: _Ctx, key: str, source: str) -> Path:
    """``source`` resolved against the project folder; it must exist there (and not be a device)."""
    if source.startswith("~"):
        ctx.fail(key, f"{source!r} is in your home folder, outside the project {ctx.base}; peakchaos copies only project files into containers: move the file into the project and mount it by a relative path")
    if source.startswith("/dev/") or source == "/dev":
        ctx.fail(key, f"device files ({source!r}) would let a container reach the host; remove the mount")
    path = (ctx.base / source).resolve()
    if path != ctx.base and ctx.base not in path.parents:
        ctx.fail(key, f"{source!r} is outside the project folder {ctx.base}; peakchaos copies only project files into containers (the host's files stay out of reach): move it into the project and mount it by a relative path")
    if not path.exists():
        ctx.fail(key, f"{source!r} does not exist ({path}); create it in the project (peakchaos never creates files on the host)")
    if not (path.is_file() or path.is_dir()):
        ctx.fail(key, f"{source!r} is neither a file nor a folder (sockets, devices and pipes are not copied)")
    return path


def _looks_like_path(source: str) -> bool:
    return source.startswith(("/", ".", "~", "\\")) or "/" in source or "\\" in source


def parse_top_files(ctx: _Ctx, section: str, raw: object, default_dir: str) -> dict[str, FileMount]:
    """Top-level ``secrets``/``configs``: ``name: {file: ./path}`` (others are rejected)."""
    out: dict[str, FileMount] = {}
    if raw is None:
        return out
    for name, value in _mapping(ctx, section, raw, f"a mapping of {section} names").items():
        nkey = _join(section, name)
        data = _mapping(ctx, nkey, value, "a mapping with file: ./path")
        if data.get("file") is None:
            other = next(iter(data), "file")
            ctx.problems.append(_problem(ctx, _join(nkey, other), f"only file {section} are supported (name: {{file: ./path/in/project}}); "
                                        f"{other!r} {section} come from outside the project: put the test value in a project file"))
            continue
        extra = [k for k in data if k not in ("file", "name", "labels")]
        if extra:
            ctx.problems.append(_problem(ctx, _join(nkey, extra[0]), f"unknown key {extra[0]!r}; valid keys: file"))
            continue
        fkey = _join(nkey, "file")
        path = ctx.guard(_project_path, ctx, fkey, _string(ctx, fkey, data["file"], "a path"))
        if path is not None:
            out[name] = FileMount(path, f"{default_dir}{name}", True, fkey)
    return out


def _problem(ctx: _Ctx, key: str, detail: str) -> Problem:
    return Problem(ctx.file, key, detail)


def _parse_file_refs(
    ctx: _Ctx, key: str, raw: object, known: Mapping[str, FileMount], default_dir: str, what: str
) -> list[FileMount]:
    """A service's ``secrets``/``configs``: names or ``{source, target}`` of declared top-level ones."""
    out: list[FileMount] = []
    for i, item in enumerate(_list(ctx, key, raw, f"a list of {what} names")):
        ikey = _join(key, i)
        if isinstance(item, dict):
            data = _mapping(ctx, ikey, item)
            _check_keys(ctx, ikey, data, ("source", "target", "uid", "gid", "mode"), what)
            name = _string(ctx, _join(ikey, "source"), _require(ctx, ikey, data, "source", what, "source names a top-level one"), "a name")
            target = _string(ctx, _join(ikey, "target"), data["target"], "a path") if data.get("target") is not None else None
        else:
            name, target = _string(ctx, ikey, item, f"a {what} name"), None
        if name not in known:
            ctx.fail(ikey, f"{what[:-1]} {name!r} is not declared; add it under the top-level '{what}' key ({what}: {{{name}: {{file: ./{name}.txt}}}})")
        mount = known[name]
        if target is not None:
            mount = FileMount(mount.source, target if target.startswith("/") else f"{default_dir}{target}", True, ikey)
        out.append(mount)
    return out


def _parse_tmpfs(ctx: _Ctx, key: str, raw: object) -> list[str]:
    if raw is None:
        return []
    items: list[tuple[str, object]]
    if isinstance(raw, str):
        items = [(key, raw)]
    else:
        items = [(_join(key, i), v) for i, v in enumerate(_list(ctx, key, raw, "a path or a list of paths"))]
    out: list[str] = []
    for ikey, item in items:
        path = _string(ctx, ikey, item, "an absolute path such as '/tmp'")
        if not path.startswith("/"):
            ctx.fail(ikey, f"a tmpfs mount must be an absolute path such as '/tmp' (options after ':'), {_got(path)}")
        out.append(path)
    return out


