"""The ``peakchaos/2`` report schema: a JSON Schema (draft 2020-12) and a small validator for it.

``peakchaos/2`` adds three-state check rows (``outcome``: ``pass`` / ``fail`` / ``not measured``,
with ``reason``) and per run ``strict``, ``not_measured`` and ``warning``. Documents of the older
``peakchaos/1`` are still read: :func:`upgrade` turns them into ``peakchaos/2`` (a row whose
measured text began with ``skipped:`` becomes ``not measured``).

:data:`SCHEMA` is the contract between the experiment layer (which produces run dicts) and the
reports (JSON, HTML, terminal). It is a plain JSON Schema document, so other tools can check a
``peakchaos.json`` with any JSON Schema validator; :func:`validate` interprets the subset of JSON
Schema used here (``type``, ``properties``, ``required``, ``additionalProperties``, ``items``,
``const``, ``minimum``, ``format: date-time``, local ``$ref``) without a dependency and returns
problems a person can read, e.g. ``runs[0].actions.browse.p95_ms: expected number or null, got
string '9ms'``.

Objects are open: keys the schema does not name are allowed (producers may add detail; readers
ignore what they don't know). A breaking change gets a new :data:`SCHEMA_ID`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from .headroom import HEADROOM_DEFS, HEADROOM_PROPERTY

SCHEMA_ID = "peakchaos/2"
#: older schemas this module can still read (see :func:`upgrade`)
READABLE_SCHEMAS = ("peakchaos/1", SCHEMA_ID)
OUTCOMES = ("pass", "fail", "not measured")

JSONDict = dict[str, Any]


def _num(description: str, *, nullable: bool = False, minimum: float | None = None) -> JSONDict:
    out: JSONDict = {"type": ["number", "null"] if nullable else "number", "description": description}
    if minimum is not None:
        out["minimum"] = minimum
    return out


def _int(description: str) -> JSONDict:
    return {"type": "integer", "minimum": 0, "description": description}


def _str(description: str) -> JSONDict:
    return {"type": "string", "description": description}


def _obj(properties: JSONDict, required: list[str] | None = None, description: str = "") -> JSONDict:
    out: JSONDict = {"type": "object"}
    if description:
        out["description"] = description
    out["properties"] = properties
    out["required"] = list(properties) if required is None else required
    return out


_LATENCY = {
    "p50_ms": _num("median latency, ms (null: no request in the window)", nullable=True, minimum=0),
    "p95_ms": _num("95th percentile latency, ms", nullable=True, minimum=0),
    "p99_ms": _num("99th percentile latency, ms", nullable=True, minimum=0),
}

_COUNTS = {
    "count": _int("requests sent"),
    "ok": _int("successful answers (2xx, including 202 queued)"),
    "errors": _int("failed requests: error status, reset, timeout"),
    "queued": _int("answers that were accepted for later (202 queued)"),
}

SCHEMA: JSONDict = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "pytest-peakchaos report",
    "description": "One document per pytest session (or library call): the runs of chaos experiments.",
    "type": "object",
    "properties": {
        "schema": {"const": SCHEMA_ID, "description": "schema id; a breaking change gets a new one"},
        "generated_at": {"type": "string", "format": "date-time", "description": "ISO-8601 UTC time the document was made"},
        "peakchaos_version": _str("version of pytest-peakchaos that wrote it"),
        "runs": {"type": "array", "items": {"$ref": "#/$defs/run"}, "description": "one entry per experiment"},
        "headroom": HEADROOM_PROPERTY,
    },
    "required": ["schema", "generated_at", "peakchaos_version", "runs"],
    "$defs": {
        **HEADROOM_DEFS,
        "run": _obj(
            {
                "test": _str("pytest node id of the test, or a name given outside pytest"),
                "seed": {"type": "integer", "description": "seed of load and fault schedule: same seed, same requests"},
                "profile": _str("shopper profile (normal, double11, ...)"),
                "scale": _num("multiplier of session arrival rates", minimum=0),
                "duration_s": _num("length of the load, seconds", minimum=0),
                "passed": {"type": "boolean", "description": "did every graceful-degradation check pass"},
                "stack": {"type": ["object", "string"],
                          "description": "the stack the run ran against: file, project, run_id, backend ('not recorded' in older reports)"},
                "verdict": {"enum": ["graceful", "not graceful", "not measured"],
                            "description": "not measured: nothing failed, but rows could not be measured (strict)"},
                "strict": {"type": "boolean", "description": "whether a not-measured row failed the run"},
                "not_measured": _int("rows that could not be measured"),
                "warning": {"type": ["string", "null"], "description": "lenient policy: rows that passed unmeasured"},
                "phases": {"type": "array", "items": {"$ref": "#/$defs/phase"}},
                "faults": {"type": "array", "items": {"$ref": "#/$defs/fault"}},
                "fault_events": {"type": "array", "items": {"$ref": "#/$defs/fault_event"}},
                "sessions": {"$ref": "#/$defs/sessions"},
                "requests": _int("requests sent in total"),
                "legacy_calls_per_session": _num("legacy-bound requests per started session", nullable=True, minimum=0),
                "legacy_actions": {"type": "array", "items": {"type": "string"}, "description": "actions that call legacy"},
                "actions": {
                    "type": "object",
                    "additionalProperties": {"$ref": "#/$defs/action"},
                    "description": "totals per action name",
                },
                "series": {
                    "type": "object",
                    "additionalProperties": {"type": "array", "items": {"$ref": "#/$defs/second"}},
                    "description": "per action: one entry per second of the run",
                },
                "checks": {"type": "array", "items": {"$ref": "#/$defs/check"}},
                "ledger": {
                    "anyOf": [{"$ref": "#/$defs/ledger"}, {"type": "null"}],
                    "description": "reconciliation of acknowledged orders with the system of record; null: no ledger",
                },
                "legacy": {
                    "anyOf": [{"$ref": "#/$defs/legacy"}, {"type": "null"}],
                    "description": "calls the legacy side saw; null: not measured",
                },
                "failure": {"type": ["string", "null"], "description": "assert_graceful() message when it failed, else null"},
            },
            description="one experiment: load + fault schedule + checks",
        ),
        "phase": _obj(
            {
                "name": _str("baseline, fault, recovery, ..."),
                "start": _num("seconds since the load started", minimum=0),
                "end": _num("seconds since the load started", minimum=0),
            }
        ),
        "fault": _obj(
            {
                "kind": _str("latency, bandwidth, timeout, reset_peer, ..., down, cpu, pause"),
                "describe": _str("readable one-line description"),
                "start": _num("seconds since the load started; null: from the start", nullable=True, minimum=0),
                "end": _num("seconds since the load started; null: to the end", nullable=True, minimum=0),
            },
            description="a scheduled fault; producers add the fault's own parameters as extra keys",
        ),
        "fault_event": _obj(
            {
                "t": _num("seconds since the load started"),
                "action": _str("apply, revert, ..."),
                "fault": _str("which fault"),
                "via": _str("how it was applied or reverted (may be empty)"),
            }
        ),
        "sessions": _obj(
            {
                "arrived": _int("sessions the arrival process produced"),
                "started": _int("sessions that ran"),
                "refused_by_cap": _int("sessions not started: concurrency cap reached"),
                "completed": _int("sessions that reached their exit"),
                "abandoned": _int("sessions given up (errors, impatience, end of run)"),
            }
        ),
        "action": _obj(
            {
                **_COUNTS,
                **_LATENCY,
                "max_ms": _num("slowest request, ms", nullable=True, minimum=0),
                "errors_by_kind": {"type": "object", "additionalProperties": {"type": "integer", "minimum": 0}},
                "status_classes": {"type": "object", "additionalProperties": {"type": "integer", "minimum": 0}},
            }
        ),
        "second": _obj(
            {"t": _num("start of the one-second window, seconds since the load started", minimum=0), **_COUNTS, **_LATENCY}
        ),
        "check": _obj(
            {
                "name": _str("baseline, isolation, fail_fast, honest_degradation, ledger, recovery, amplification, shedding, ..."),
                "phase": _str("phase the check looked at"),
                "outcome": {"enum": list(OUTCOMES), "description": "pass, fail or not measured"},
                "passed": {"type": "boolean", "description": "whether the row lets the run pass (not measured: only when not strict)"},
                "expected": _str("the bound, readable"),
                "measured": _str("what was measured, readable"),
                "reason": _str("why the row is not measured (empty otherwise)"),
                "detail": _str("more context (may be empty)"),
            }
        ),
        "ledger": _obj(
            {
                "acknowledged": _int("orders the shop acknowledged (201 or 202)"),
                "found": _int("of those, found in the system of record"),
                "missing": _int("acknowledged but not found"),
                "duplicated": _int("found more than once"),
                "items_compared": _int("found orders whose items were compared with the shopper's cart"),
                "items_short": _int("of those, orders whose row lacks items the shopper had in the cart"),
                "items_note": _str("why items were not compared (empty: they were)"),
            },
            required=["acknowledged", "found", "missing", "duplicated"],
        ),
        "legacy": _obj(
            {
                "calls_per_legacy_action": _num("legacy requests per legacy-bound shopper action (retries amplify)", nullable=True, minimum=0),
                "calls": _int("requests legacy received"),
            }
        ),
    },
}
# ``verdict`` came within peakchaos/2: documents written before it (and upgraded /1 ones) omit it
SCHEMA["$defs"]["run"]["required"].remove("verdict")
SCHEMA["$defs"]["run"]["required"].remove("stack")

_TYPE_NAMES = {
    "object": "object",
    "array": "array",
    "string": "string",
    "number": "number",
    "integer": "integer",
    "boolean": "boolean",
    "null": "null",
}


def _kind(value: Any) -> str:
    """JSON type name of a Python value (``bool`` is not a number)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, (list, tuple)):
        return "array"
    return type(value).__name__


def _is_type(value: Any, name: str) -> bool:
    kind = _kind(value)
    if name == "number":
        return kind in ("integer", "number")
    if name == "integer":
        return kind == "integer" or (kind == "number" and math.isfinite(value) and float(value).is_integer())
    return kind == name


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _resolve(schema: Mapping[str, Any], root: Mapping[str, Any]) -> Mapping[str, Any]:
    ref = schema.get("$ref")
    if ref is None:
        return schema
    prefix = "#/$defs/"
    if not isinstance(ref, str) or not ref.startswith(prefix):
        raise ValueError(f"unsupported $ref {ref!r}")
    resolved: Mapping[str, Any] = root["$defs"][ref[len(prefix):]]
    return resolved


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    name = key if key.isidentifier() else repr(key)
    return f"{path}.{name}" if path else name


def _check(value: Any, schema: Mapping[str, Any], root: Mapping[str, Any], path: str, out: list[str]) -> None:
    schema = _resolve(schema, root)
    where = path or "document"
    if "anyOf" in schema:
        options = schema["anyOf"]
        trials: list[list[str]] = []
        for option in options:
            problems: list[str] = []
            _check(value, option, root, path, problems)
            if not problems:
                return
            trials.append(problems)
        # report against the option of the right type when there is one, else name the choices
        for option, problems in zip(options, trials):
            types = _resolve(option, root).get("type")
            if isinstance(types, str) and _is_type(value, types):
                out.extend(problems)
                return
        choices = " or ".join(_describe_type(_resolve(o, root)) for o in options)
        out.append(f"{where}: expected {choices}, got {_kind(value)} {_show(value)}")
        return
    if "enum" in schema and value not in schema["enum"]:
        out.append(f"{where}: expected one of {', '.join(map(repr, schema['enum']))}, got {_show(value)}")
        return
    if "const" in schema and value != schema["const"]:
        out.append(f"{where}: expected {schema['const']!r}, got {_show(value)}")
        return
    types = schema.get("type")
    if types is not None:
        names = [types] if isinstance(types, str) else list(types)
        if not any(_is_type(value, n) for n in names):
            out.append(f"{where}: expected {' or '.join(names)}, got {_kind(value)} {_show(value)}")
            return
    if isinstance(value, float) and not math.isfinite(value):
        out.append(f"{where}: {value!r} is not a JSON number (use null for 'no value')")
        return
    minimum = schema.get("minimum")
    if minimum is not None and _kind(value) in ("integer", "number") and value < minimum:
        out.append(f"{where}: must be >= {minimum}, got {_show(value)}")
    if schema.get("format") == "date-time" and isinstance(value, str):
        try:
            datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            out.append(f"{where}: expected an ISO-8601 date-time, got {_show(value)}")
    if isinstance(value, Mapping):
        for key in schema.get("required", ()):
            if key not in value:
                out.append(f"{where}: missing required key {key!r}")
        props: Mapping[str, Any] = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        for key, item in value.items():
            if not isinstance(key, str):
                out.append(f"{where}: key {_show(key)} is not a string")
                continue
            if key in props:
                _check(item, props[key], root, _join(path, key), out)
            elif isinstance(extra, Mapping):
                _check(item, extra, root, _join(path, key), out)
            elif extra is False:
                out.append(f"{where}: unexpected key {key!r}")
    elif isinstance(value, (list, tuple)) and "items" in schema:
        for i, item in enumerate(value):
            _check(item, schema["items"], root, _join(path, i), out)


def _describe_type(schema: Mapping[str, Any]) -> str:
    types = schema.get("type", "object")
    return types if isinstance(types, str) else " or ".join(types)


def validate(document: Any, schema: Mapping[str, Any] = SCHEMA, *, limit: int = 50) -> list[str]:
    """Problems of ``document`` against ``schema`` (default: :data:`SCHEMA`); ``[]`` means valid.

    Each problem names where it is (``runs[1].checks[0].passed``) and what is wrong. At most
    ``limit`` problems are returned (the last one then says how many more there were).
    """
    out: list[str] = []
    if isinstance(document, Mapping) and "schema" in document and document["schema"] != SCHEMA_ID:
        if document["schema"] in READABLE_SCHEMAS:
            document = upgrade(document)
        else:
            return [f"schema: this reader understands {', '.join(map(repr, READABLE_SCHEMAS))}, the document is {_show(document['schema'])}"]
    _check(document, schema, schema, "", out)
    if len(out) > limit:
        more = len(out) - limit + 1
        out = out[: limit - 1] + [f"... and {more} more problems"]
    return out


def upgrade(document: Mapping[str, Any]) -> dict[str, Any]:
    """A ``peakchaos/1`` document as ``peakchaos/2`` (a copy; a ``peakchaos/2`` one is returned as is).

    ``peakchaos/1`` had no skip state: a row whose measured text starts with ``skipped:`` was a
    skip shown as a pass; it becomes ``not measured`` (with ``passed`` kept: those runs were lenient).
    """
    if document.get("schema") != "peakchaos/1":
        return dict(document)
    out = dict(document)
    out["schema"] = SCHEMA_ID
    runs = []
    for run in document.get("runs") or []:
        if not isinstance(run, Mapping):
            runs.append(run)
            continue
        r = dict(run)
        checks = []
        for c in r.get("checks") or []:
            if not isinstance(c, Mapping):
                checks.append(c)
                continue
            c2 = dict(c)
            measured = str(c2.get("measured", ""))
            skipped = measured.startswith("skipped:")
            c2.setdefault("outcome", "not measured" if skipped else ("pass" if c2.get("passed") else "fail"))
            c2.setdefault("reason", measured[len("skipped:"):].strip() if skipped else "")
            checks.append(c2)
        r["checks"] = checks
        nm = sum(1 for c in checks if isinstance(c, Mapping) and c.get("outcome") == "not measured")
        r.setdefault("strict", False)
        r.setdefault("not_measured", nm)
        r.setdefault("warning", f"{nm} check row(s) skipped in a peakchaos/1 report, counted as passed" if nm else None)
        runs.append(r)
    out["runs"] = runs
    return out


def validate_run(run: Any) -> list[str]:
    """Problems of one run dict (as the experiment layer produces it); ``[]`` means valid."""
    return validate(run, {**SCHEMA["$defs"]["run"], "$defs": SCHEMA["$defs"]})


class ReportSchemaError(ValueError):
    """A document does not follow the ``peakchaos/2`` schema; ``problems`` lists why."""

    def __init__(self, problems: list[str], where: str = "report") -> None:
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{where} does not follow schema {SCHEMA_ID} ({len(self.problems)} problems):\n{lines}")


def ensure_valid(document: Any, where: str = "report") -> None:
    """Raise :class:`ReportSchemaError` when ``document`` has problems."""
    problems = validate(document)
    if problems:
        raise ReportSchemaError(problems, where)
