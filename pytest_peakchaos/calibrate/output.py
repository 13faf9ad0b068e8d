"""Writing a calibration: everything is rendered first, then each file is written atomically
(temporary file + rename), so a failure leaves no half-written profile or report."""

from __future__ import annotations

import os
from pathlib import Path

from .core import Calibration

__all__ = ["write_outputs"]


def write_outputs(
    cal: Calibration,
    *,
    profile: str | os.PathLike[str] | None = None,
    report: str | os.PathLike[str] | None = None,
) -> dict[str, Path]:
    """Write the profile YAML (plus one ``<stem>.mixN.yml`` per behaviour mix) and/or the HTML
    calibration report. Returns what was written by kind."""
    from ..report.jsonreport import atomic_write_text
    from .emit import mix_documents, profile_yaml

    texts: list[tuple[str, Path, str]] = []
    if profile is not None:
        p = Path(profile)
        texts.append(("profile", p, profile_yaml(cal)))
        for i, (_, text) in enumerate(mix_documents(cal), 1):
            texts.append((f"mix{i}", p.with_name(f"{p.stem}.mix{i}{p.suffix or '.yml'}"), text))
    if report is not None:
        from .html import render_calibration_html

        texts.append(("report", Path(report), render_calibration_html(cal)))
    out: dict[str, Path] = {}
    for kind, path, text in texts:
        atomic_write_text(path, text)
        out[kind] = path
    return out
