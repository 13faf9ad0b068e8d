"""Reports of chaos experiments: JSON (schema ``peakchaos/2``; ``peakchaos/1`` still read), a self-contained HTML page, and
the pytest terminal summary.

A *document* holds the runs of one session::

    from pytest_peakchaos.report import new_document, write_reports
    paths = write_reports(new_document([run.to_report()]), "reports/")
    # {"json": Path("reports/peakchaos.json"), "html": Path("reports/peakchaos.html")}

The shape of a run dict is :data:`pytest_peakchaos.report.schema.SCHEMA` (see docs/report.md).
Cheap to import: matplotlib loads only while the HTML plots are drawn.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .html import render_html, write_html
from .jsonreport import atomic_write_text, load_json, write_json
from .proof import attach_proof
from .schema import SCHEMA, SCHEMA_ID, ReportSchemaError, ensure_valid, upgrade, validate, validate_run
from .terminal import summary_lines

JSON_NAME = "peakchaos.json"
HTML_NAME = "peakchaos.html"

__all__ = [
    "HTML_NAME",
    "JSON_NAME",
    "SCHEMA",
    "SCHEMA_ID",
    "ReportSchemaError",
    "ensure_valid",
    "load_json",
    "new_document",
    "render_html",
    "summary_lines",
    "upgrade",
    "validate",
    "validate_run",
    "write_html",
    "write_json",
    "write_reports",
]


def new_document(runs: Iterable[Mapping[str, Any]], *, generated_at: datetime | None = None) -> dict[str, Any]:
    """A ``peakchaos/2`` document holding ``runs`` (run dicts, in order), stamped now (UTC)."""
    from .. import __version__

    when = (generated_at or datetime.now(timezone.utc)).astimezone(timezone.utc)
    return {
        "schema": SCHEMA_ID,
        "generated_at": when.isoformat(timespec="seconds").replace("+00:00", "Z"),
        "peakchaos_version": __version__,
        "runs": [dict(run) for run in runs],
    }


def write_reports(document: Mapping[str, Any], directory: str | os.PathLike[str]) -> dict[str, Path]:
    """Write ``peakchaos.json`` and ``peakchaos.html`` into ``directory`` (created if needed).

    The document is validated once, before anything is written: a bad document writes nothing
    and raises :class:`ReportSchemaError` naming every problem. Returns ``{"json": path,
    "html": path}``.
    """
    ensure_valid(document, "peakchaos report")
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    document = attach_proof(document, folder)  # the mutant matrix's verdict-proof.json, when it ran
    html_text = render_html(document)  # draw before writing anything: a plot error leaves no half report
    json_path = write_json(document, folder / JSON_NAME)
    html_path = folder / HTML_NAME
    atomic_write_text(html_path, html_text)
    return {"json": json_path, "html": html_path}
