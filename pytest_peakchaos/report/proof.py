"""The "verdict proof": which check caught which deliberately broken shop (a *mutant*).

The mutant matrix (tests/acceptance/test_mutants.py) runs the reference shop with one defect
switched on at a time (``CLOUD_MUTANT``, docs/reference-shop.md) and records a row per mutant:
``(mutant, expected check, caught, detail)``. With ``--peakchaos-report DIR`` it writes them to
``DIR/verdict-proof.json``; the HTML report shows them as a small table (:func:`render_proof`).

Standard library only; nothing here imports pytest.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from html import escape
from pathlib import Path
from typing import Any

from .jsonreport import atomic_write_text

__all__ = ["PROOF_NAME", "PROOF_SCHEMA", "ProofRow", "attach_proof", "load_proof", "proof_section", "render_proof", "write_proof"]

PROOF_NAME = "verdict-proof.json"
PROOF_SCHEMA = "peakchaos-proof/1"
#: (mutant, the check expected to catch it, whether it did, what it measured)
ProofRow = tuple[str, str, bool, str]


def _rows(raw: Iterable[Any]) -> list[ProofRow]:
    out: list[ProofRow] = []
    for i, row in enumerate(raw):
        if isinstance(row, Mapping):
            row = (row.get("mutant"), row.get("check"), row.get("caught"), row.get("detail", ""))
        if not isinstance(row, Sequence) or isinstance(row, str) or len(row) != 4:
            raise ValueError(f"verdict proof: row {i} must be (mutant, check, caught, detail), got {row!r}")
        mutant, check, caught, detail = row
        if not isinstance(mutant, str) or not isinstance(check, str) or not isinstance(caught, bool) or not isinstance(detail, str):
            raise ValueError(f"verdict proof: row {i} must be (str, str, bool, str), got {row!r}")
        out.append((mutant, check, caught, detail))
    return out


def render_proof(rows: Iterable[ProofRow | Mapping[str, Any]], *, generated_at: str | None = None) -> str:
    """An HTML fragment (a ``<section>``): one table row per mutant; every text escaped."""
    items = _rows(rows)
    if not items:
        return ""
    caught = sum(1 for r in items if r[2])
    body = []
    for mutant, check, ok, detail in items:
        mark = '<span class="ok">✔ caught</span>' if ok else '<span class="bad">✘ NOT caught</span>'
        body.append(
            f'<tr class="{"pass" if ok else "fail"}"><td><code>{escape(mutant)}</code></td><td><b>{escape(check)}</b></td>'
            f'<td>{mark}</td><td class="small">{escape(detail)}</td></tr>'
        )
    when = f" · recorded {escape(generated_at)}" if generated_at else ""
    return (
        '<section class="card" id="verdict-proof"><h3 style="margin-top:0">Verdict proof</h3>'
        f'<p class="small">The reference shop with one defect switched on at a time (<code>CLOUD_MUTANT</code>):'
        f" {caught} of {len(items)} caught by the check named for them{when}.</p>"
        "<table><thead><tr><th>mutant</th><th>check that should catch it</th><th>result</th><th>measured</th></tr></thead>"
        f"<tbody>{''.join(body)}</tbody></table></section>"
    )


def write_proof(rows: Iterable[ProofRow], directory: str | os.PathLike[str]) -> Path:
    """Write ``directory/verdict-proof.json`` (created if needed); returns its path."""
    items = _rows(rows)
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    doc = {
        "schema": PROOF_SCHEMA,
        "generated_at": datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "rows": [{"mutant": m, "check": c, "caught": k, "detail": d} for m, c, k, d in items],
    }
    path = folder / PROOF_NAME
    atomic_write_text(path, json.dumps(doc, indent=2) + "\n")
    return path


def load_proof(directory: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The proof document in ``directory`` (``{"generated_at", "rows"}``), or None when there is none."""
    path = Path(directory) / PROOF_NAME
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ValueError(f"verdict proof: {path} is not readable JSON: {exc}") from None
    if not isinstance(doc, dict) or doc.get("schema") != PROOF_SCHEMA:
        raise ValueError(f"verdict proof: {path} is not a {PROOF_SCHEMA} document")
    return {"generated_at": str(doc.get("generated_at", "")), "rows": [list(r) for r in _rows(doc.get("rows", []))]}


def attach_proof(document: Mapping[str, Any], directory: str | os.PathLike[str]) -> dict[str, Any]:
    """``document`` with the proof of ``directory`` under ``verdict_proof`` (when there is one)."""
    out = dict(document)
    try:
        proof = load_proof(directory)
    except ValueError as exc:  # a broken proof file must not cost the user the whole report
        proof = {"generated_at": "", "rows": [], "error": str(exc)}
    if proof is not None:
        out["verdict_proof"] = proof
    return out


def proof_section(document: Mapping[str, Any]) -> str:
    """The fragment for a report document's ``verdict_proof`` (empty when it has none)."""
    proof = document.get("verdict_proof")
    if not isinstance(proof, Mapping):
        return ""
    if proof.get("error"):
        return f'<section class="card" id="verdict-proof"><p class="note">Verdict proof not shown: {escape(str(proof["error"]))}</p></section>'
    return render_proof(proof.get("rows", []), generated_at=str(proof.get("generated_at") or "") or None)
