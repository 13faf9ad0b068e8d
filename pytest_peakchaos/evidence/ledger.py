"""Polling the system of record until every acknowledged order is in it (or ``settle`` ran out).

The reader contract stays ``Callable[[], list[dict]]``: rows with an ``idempotency_key``, and
optionally ``items`` (a list of ``{"sku": ...}`` mappings or of skus) compared with the carts the
shoppers ordered. Rows without ``items`` leave that comparison ``not measured``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pytest_peakchaos.checks import Reconciliation, _order_of

#: How often the ledger is polled while waiting for the outbox to drain.
LEDGER_POLL_S = 0.5

#: Reads the system of record: rows with an ``idempotency_key``.
LedgerReader = Callable[[], "list[dict[str, Any]]"]


def settle_and_reconcile(
    reader: LedgerReader, acked: Sequence[str], *, prefix: str, settle_s: float, poll_s: float = LEDGER_POLL_S,
    ordered: Mapping[str, tuple[tuple[str, ...], tuple[str, ...]]] | None = None,
) -> tuple[Reconciliation | None, str]:
    """Poll ``reader`` until every key of ``acked`` is present or ``settle_s`` passed.

    Returns ``(reconciliation, "")``; ``(None, error)`` when the ledger never answered. A ledger
    that answered but did not settle gives a reconciliation with ``settled=False``, the missing
    orders and the last error seen while polling. ``ordered``: acknowledged key -> (the skus the
    shopper's cart held, those of them whose cart request failed), compared with rows' ``items``.
    A row under a re-minted key (``<key>.r2``) counts as present for ``key``.
    """
    acked_set = set(acked)
    t_start = time.monotonic()
    deadline = t_start + settle_s
    rows: list[dict[str, Any]] | None = None
    last_error = ""
    for _ in range(int(settle_s / poll_s) + 2):
        try:
            got = reader()
            if not isinstance(got, list):
                raise TypeError(f"the ledger reader returned {type(got).__name__}, expected a list of rows")
            rows = got
        except Exception as exc:  # noqa: BLE001 - legacy may still be coming back
            last_error = f"{type(exc).__name__}: {exc}"
        if rows is not None:
            present = {_order_of(str(r.get("idempotency_key")), acked_set) for r in rows if isinstance(r, dict)}
            if all(k in present for k in acked):
                break
        if time.monotonic() + poll_s > deadline:
            break
        time.sleep(poll_s)
    waited = time.monotonic() - t_start
    if rows is None:
        return None, f"no answer within {settle_s:g}s ({len(acked)} acknowledged orders unchecked); last error: {last_error or 'none'}"
    keys = [str(r.get("idempotency_key")) for r in rows if isinstance(r, dict) and r.get("idempotency_key") is not None]
    rec = Reconciliation.reconcile(acked, keys, also=lambda k: k.startswith(prefix), waited_s=waited, last_error=last_error,
                                   ordered=ordered, ledger_items=row_items(rows))
    return rec, ""


def row_items(rows: Sequence[Any]) -> dict[str, frozenset[str]] | None:
    """Ledger key -> the skus of its row's ``items``; ``None`` when no row has ``items`` (the
    ledger does not expose them). An item is a mapping with ``sku`` or a plain sku."""
    out: dict[str, frozenset[str]] = {}
    seen = False
    for r in rows:
        if not isinstance(r, dict) or r.get("idempotency_key") is None or "items" not in r:
            continue
        seen = True
        items = r["items"]
        if isinstance(items, str):  # a JSON column read as text
            import json

            try:
                items = json.loads(items)
            except ValueError:
                items = []
        skus = {str(i.get("sku")) if isinstance(i, dict) else str(i) for i in items} if isinstance(items, list) else set()
        key = str(r["idempotency_key"])
        out[key] = out.get(key, frozenset()) | frozenset(skus)
    return out if seen else None
