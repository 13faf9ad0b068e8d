"""``peakchaos.json``: the machine-readable report (schema :data:`~.schema.SCHEMA_ID`).

:func:`write_json` validates first (a report that does not follow the schema is a bug in its
producer, and says where), then writes atomically (a temporary file in the same folder, fsync,
rename: readers never see half a report), pretty-printed, UTF-8, with a stable key order: the
schema's own order for the objects it describes (``schema`` first, then ``generated_at``, ...),
sorted keys for maps (actions, series, errors by kind) and for keys the schema does not name.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .schema import SCHEMA, ReportSchemaError, ensure_valid, upgrade


def _resolve(schema: Mapping[str, Any]) -> Mapping[str, Any]:
    ref = schema.get("$ref")
    if isinstance(ref, str):
        resolved: Mapping[str, Any] = SCHEMA["$defs"][ref.rsplit("/", 1)[-1]]
        return resolved
    if "anyOf" in schema:
        for option in schema["anyOf"]:
            option = _resolve(option)
            if option.get("type") == "object":
                return option
    return schema


def _canonical(value: Any, schema: Mapping[str, Any] | None) -> Any:
    """``value`` with dict keys in a stable order, guided by ``schema`` where it has one."""
    schema = _resolve(schema) if schema is not None else None
    if isinstance(value, Mapping):
        props: Mapping[str, Any] = schema.get("properties", {}) if schema else {}
        extra = schema.get("additionalProperties") if schema else None
        item_schema = extra if isinstance(extra, Mapping) else None
        known = [k for k in props if k in value]
        rest = sorted((k for k in value if k not in props), key=str)
        return {k: _canonical(value[k], props[k] if k in props else item_schema) for k in known + rest}
    if isinstance(value, (list, tuple)):
        items = schema.get("items") if schema else None
        return [_canonical(v, items) for v in value]
    if isinstance(value, float) and value.is_integer() and math.isfinite(value) and schema is not None and schema.get("type") == "integer":
        return int(value)
    return value


def dumps(document: Mapping[str, Any]) -> str:
    """The document as pretty JSON text with a stable key order (no validation)."""
    return json.dumps(_canonical(document, SCHEMA), indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` (UTF-8) so a reader sees the old file or the whole new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def write_json(document: Mapping[str, Any], path: str | os.PathLike[str]) -> Path:
    """Validate ``document`` and write it to ``path``; returns the path.

    Raises :class:`~.schema.ReportSchemaError` (listing every problem) when the document does
    not follow the schema; nothing is written then.
    """
    ensure_valid(document, "peakchaos report")
    target = Path(path)
    atomic_write_text(target, dumps(document))
    return target


def load_json(path: str | os.PathLike[str], *, validate: bool = True) -> dict[str, Any]:
    """Read a ``peakchaos.json``; validates it unless ``validate=False``. A ``peakchaos/1``
    document is returned upgraded to ``peakchaos/2`` (see :func:`~.schema.upgrade`).

    Raises :class:`~.schema.ReportSchemaError` for a document of another schema or with
    problems, ``ValueError`` for text that is not JSON.
    """
    source = Path(path)
    try:
        document = json.loads(source.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{source}: not JSON ({exc})") from None
    if not isinstance(document, dict):
        raise ReportSchemaError([f"document: expected object, got {type(document).__name__}"], str(source))
    document = upgrade(document)
    if validate:
        ensure_valid(document, str(source))
    return document
