"""Shopper profiles: built-in ``normal`` and ``double11``, YAML loading and Python composition.

``load_profile("double11")``, ``load_profile("path/to/mine.yml")`` or pass a ``Profile``. A YAML
profile may start from another (``base: double11``) and override parts of it; ``bindings:`` is
either inline or the name of a bindings file (``reference_shop`` ships here). See docs/load.md.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pytest_peakchaos.profiles.model import (
    ACTION_CLASSES,
    ACTIONS,
    Capture,
    DataSet,
    SessionConfig,
    ENTRY,
    EXIT,
    STATES,
    TEMPLATE_VARS,
    Behaviour,
    Catalog,
    Dist,
    Patience,
    Profile,
    ProfileError,
    RequestBinding,
)

__all__ = [
    "ACTION_CLASSES",
    "ACTIONS",
    "Capture",
    "DataSet",
    "SessionConfig",
    "ENTRY",
    "EXIT",
    "STATES",
    "TEMPLATE_VARS",
    "Behaviour",
    "Catalog",
    "Dist",
    "Patience",
    "Profile",
    "ProfileError",
    "RequestBinding",
    "load_profile",
    "load_bindings",
    "builtin_profiles",
    "builtin_bindings",
    "profile_from_yaml_text",
]

_HERE = Path(__file__).resolve().parent
_TOP_KEYS = (
    "name",
    "kind",
    "base",
    "description",
    "arrival",
    "behaviour",
    "patience",
    "catalog",
    "bindings",
    "legacy_actions",
    "sources",
    "data",
    "session",
)
_MAX_DEPTH = 8


def _builtin_files(kind: str) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for path in sorted(_HERE.glob("*.yml")):
        data = _read_yaml(path)
        if data.get("kind", "profile") == kind:
            out[path.stem] = path
    return out


def builtin_profiles() -> tuple[str, ...]:
    """Names of the profiles that ship with the plugin."""
    return tuple(_builtin_files("profile"))


def builtin_bindings() -> tuple[str, ...]:
    """Names of the bindings files that ship with the plugin."""
    return tuple(_builtin_files("bindings"))


def _read_yaml(path: Path) -> dict[str, Any]:
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ProfileError(f"profile file {str(path)!r}: cannot read it: {exc.strerror or exc}") from None
    return _parse_yaml(text, str(path))


def _parse_yaml(text: str, origin: str) -> dict[str, Any]:
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ProfileError(f"{origin}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ProfileError(f"{origin}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def _locate(spec: str | os.PathLike[str], kind: str, relative_to: Path | None) -> Path:
    text = os.fspath(spec)
    builtins = _builtin_files(kind)
    if text in builtins:
        return builtins[text]
    candidates = [Path(text)]
    if relative_to is not None and not Path(text).is_absolute():
        candidates.insert(0, relative_to / text)
    for c in candidates:
        if c.is_file():
            return c
    names = ", ".join(builtins) or "(none)"
    raise ProfileError(
        f"{kind} {text!r}: not a built-in {kind} (valid values: {names}) and no such file; "
        "give a built-in name or a path to a .yml file"
    )


def _merge(base: dict[str, Any], child: dict[str, Any]) -> dict[str, Any]:
    """Child overrides base: sections merge key by key; a transition row, a think-time or patience
    distribution and a data set are replaced whole; an arrival of another shape replaces the base's;
    ``bindings`` are replaced whole (never merged)."""
    out = dict(base)
    for key, value in child.items():
        old = out.get(key)
        if key == "arrival" and isinstance(old, dict) and isinstance(value, dict):
            same = value.get("shape", old.get("shape")) == old.get("shape")
            out[key] = {**old, **value} if same else dict(value)
        elif key == "behaviour" and isinstance(old, dict) and isinstance(value, dict):
            merged = dict(old)
            for k, v in value.items():
                if k in ("transitions", "think") and isinstance(merged.get(k), dict) and isinstance(v, dict):
                    merged[k] = {**merged[k], **v}
                else:
                    merged[k] = v
            out[key] = merged
        elif key in ("patience", "catalog", "sources", "data", "session") and isinstance(old, dict) and isinstance(value, dict):
            out[key] = {**old, **value}
        else:  # bindings included: never merged with the base's (a partial set is an error naming what is missing)
            out[key] = value
    return out


def _resolve(data: dict[str, Any], origin: str, directory: Path | None, depth: int) -> dict[str, Any]:
    if depth > _MAX_DEPTH:
        raise ProfileError(f"{origin}: 'base' chain is deeper than {_MAX_DEPTH} (a cycle?)")
    for key in data:
        if key not in _TOP_KEYS:
            raise ProfileError(f"{origin}: unknown key {key!r}; valid keys: {', '.join(_TOP_KEYS)}")
    kind = data.get("kind", "profile")
    if kind != "profile":
        raise ProfileError(f"{origin}: kind is {kind!r}; a profile needs kind 'profile' (or no kind)")
    child_keys = set(data)
    data = dict(data)
    if isinstance(data.get("data"), dict):  # data files are relative to the file that names them
        resolved = {}
        for k, d in data["data"].items():
            if isinstance(d, dict) and isinstance(d.get("file"), str) and directory is not None and not Path(d["file"]).is_absolute():
                d = {**d, "file": str(directory / d["file"])}
            resolved[k] = d
        data["data"] = resolved
    data.pop("kind", None)
    base_spec = data.pop("base", None)
    # Bindings given by name replace the base's bindings whole (and bring their legacy actions).
    named: tuple[dict[str, Any], list[str]] | None = None
    if isinstance(data.get("bindings"), str):
        named = _bindings_data(data.pop("bindings"), directory, f"{origin}: bindings")
    if base_spec is not None:
        if not isinstance(base_spec, str):
            raise ProfileError(f"{origin}.base: expected a profile name or path, got {base_spec!r}")
        path = _locate(base_spec, "profile", directory)
        base = _resolve(_read_yaml(path), f"{origin} -> base {base_spec!r}", path.parent, depth + 1)
        data = _merge(base, data)
    if named is not None:
        data["bindings"] = named[0]
        if "legacy_actions" not in child_keys:
            data["legacy_actions"] = named[1]
    return data


def _bindings_data(spec: str, directory: Path | None, origin: str) -> tuple[dict[str, Any], list[str]]:
    path = _locate(spec, "bindings", directory)
    raw = _read_yaml(path)
    where = f"bindings {spec!r}"
    valid = ("kind", "name", "description", "actions", "legacy_actions")
    for key in raw:
        if key not in valid:
            raise ProfileError(f"{where}: unknown key {key!r}; valid keys: {', '.join(valid)}")
    if raw.get("kind") != "bindings":
        raise ProfileError(f"{origin}: {spec!r} is not a bindings file (it needs 'kind: bindings')")
    actions = raw.get("actions")
    if not isinstance(actions, dict):
        raise ProfileError(f"{where}.actions: expected a mapping of action -> request")
    legacy = raw.get("legacy_actions", [])
    if not isinstance(legacy, list):
        raise ProfileError(f"{where}.legacy_actions: expected a list of action names, got {legacy!r}")
    return dict(actions), list(legacy)


def load_bindings(spec: str | os.PathLike[str]) -> tuple[dict[str, RequestBinding], frozenset[str]]:
    """A bindings file (built-in name such as ``"reference_shop"`` or a path): bindings and legacy actions."""
    actions, legacy = _bindings_data(os.fspath(spec), None, "load_bindings")
    bindings = {a: RequestBinding.from_dict(b, f"bindings {os.fspath(spec)!r}.actions.{a}") for a, b in actions.items()}
    for a in legacy:
        if a not in bindings:
            raise ProfileError(f"bindings {os.fspath(spec)!r}: legacy_actions: unknown action {a!r}; valid values: {', '.join(bindings)}")
    return bindings, frozenset(legacy) | frozenset(a for a, b in bindings.items() if b.klass == "legacy")


def profile_from_yaml_text(text: str, *, origin: str = "<yaml>", directory: Path | None = None) -> Profile:
    """Parse and validate a profile given as YAML text."""
    data = _resolve(_parse_yaml(text, origin), origin, directory, 0)
    data.setdefault("name", "custom")
    return _warn(Profile.from_dict(data, where=f"profile {data['name']!r}"))


def load_profile(spec: Profile | str | os.PathLike[str]) -> Profile:
    """A ``Profile`` from a built-in name (``"normal"``, ``"double11"``), a YAML path, or a ``Profile``."""
    if isinstance(spec, Profile):
        return spec
    if not isinstance(spec, (str, os.PathLike)):
        raise ProfileError(f"profile: expected a built-in name, a YAML path or a Profile, got {spec!r}")
    path = _locate(spec, "profile", None)
    data = _resolve(_read_yaml(path), f"profile {os.fspath(spec)!r}", path.parent, 0)
    data.setdefault("name", path.stem)
    return _warn(Profile.from_dict(data, where=f"profile {data['name']!r}"))


def _warn(profile: Profile) -> Profile:
    import warnings

    for w in profile.warnings:
        warnings.warn(w, UserWarning, stacklevel=3)
    return profile
