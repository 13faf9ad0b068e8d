"""Ledger sources: where the system of record's orders are read after a run, for any stack.

``x-peakchaos.ledger`` (or ``ledger=`` on the fixture, the marker or ``Experiment``) is one of:

* HTTP JSON: ``{service, port, path}``: ``GET`` straight to the container's published port (not
  through Toxiproxy); a JSON list of orders or ``{"orders": [...]}``;
* SQL: ``{service, sql, database, user}``: the query runs with ``psql`` inside the database
  container (the private side, never the proxy); each row becomes a dict;
* Python: ``{python: "module:function"}``: called with the stack, returns the orders.

``key`` names the field that identifies an order (default ``idempotency_key``); rows also get it
as ``idempotency_key`` so the reconciliation check reads every source the same way.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Union

if TYPE_CHECKING:
    from .base import Stack
    from .compose import LedgerSpec

Orders = list[dict[str, Any]]
LedgerArg = Union[Callable[[], Orders], str, Mapping[str, Any], "LedgerSpec"]

__all__ = ["read_ledger", "ledger_reader", "Orders"]


def _normalise(rows: object, key: str, where: str) -> Orders:
    from .base import StackError

    if isinstance(rows, dict):
        rows = rows.get("orders", rows)
    if not isinstance(rows, list):
        raise StackError(f"ledger {where} gave {type(rows).__name__}, expected a list of orders")
    out: Orders = []
    for row in rows:
        if not isinstance(row, dict):
            raise StackError(f"ledger {where} gave a row {row!r}, expected a mapping per order")
        if key != "idempotency_key" and key in row and "idempotency_key" not in row:
            row = {**row, "idempotency_key": row[key]}
        out.append(row)
    return out


def read_ledger(stack: Stack, spec: LedgerSpec, timeout_s: float = 10.0) -> Orders:
    """The orders in the system of record described by ``spec``."""
    from .base import StackError

    if spec.kind == "python":
        assert spec.callable is not None
        return _normalise(_import(spec.callable)(stack), spec.key, spec.callable)
    if spec.kind == "sql":
        assert spec.service is not None and spec.query is not None
        query = f"SELECT coalesce(json_agg(t), '[]'::json) FROM ({spec.query.rstrip().rstrip(';')}) AS t"
        argv = ["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"]
        if spec.user:
            argv += ["-U", spec.user]
        if spec.database:
            argv += ["-d", spec.database]
        argv += ["-c", query]
        out = stack.exec(spec.service, argv, user="postgres", timeout_s=timeout_s)
        try:
            rows = json.loads(out.strip() or "[]")
        except json.JSONDecodeError as exc:
            raise StackError(f"ledger SQL on {spec.service} gave no JSON ({exc}): {out[:300]!r}") from exc
        return _normalise(rows, spec.key, f"SQL on {spec.service}")
    import urllib.request

    assert spec.service is not None and spec.path is not None
    url = stack.url(spec.service, spec.port) + spec.path
    with urllib.request.urlopen(url, timeout=timeout_s) as resp:  # noqa: S310 - loopback only
        body = json.loads(resp.read().decode())
    return _normalise(body, spec.key, url)


def _import(ref: str) -> Callable[..., Any]:
    module, _, name = ref.partition(":")
    obj: Any = importlib.import_module(module)
    for part in name.split("."):
        obj = getattr(obj, part)
    if not callable(obj):
        raise TypeError(f"ledger: {ref} is not callable")
    return obj  # type: ignore[no-any-return]


def ledger_reader(stack: Stack, ledger: LedgerArg) -> Callable[[], Orders]:
    """The small adapter for ``ledger=``: a callable, ``"module:function"``, or an x-peakchaos-style mapping."""
    from .compose import LedgerSpec

    if isinstance(ledger, LedgerSpec):
        spec = ledger
        return lambda: read_ledger(stack, spec)
    if isinstance(ledger, str):
        fn = _import(ledger)
        return lambda: _normalise(fn(stack), "idempotency_key", ledger)
    if isinstance(ledger, Mapping):
        from pathlib import Path

        from .compose.link import _parse_ledger
        from .compose.values import _Ctx

        ctx = _Ctx("ledger=", Path.cwd(), {})
        parsed = _parse_ledger(ctx, "ledger", dict(ledger), stack.spec.services)
        return lambda: read_ledger(stack, parsed)
    if callable(ledger):
        return ledger
    raise TypeError(f"ledger: expected a callable, 'module:function' or a mapping, got {type(ledger).__name__}")
