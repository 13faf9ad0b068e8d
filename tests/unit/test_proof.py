"""The verdict proof: rows of the mutant matrix, written to JSON and rendered into the HTML report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_peakchaos.report.proof import PROOF_NAME, attach_proof, load_proof, proof_section, render_proof, write_proof

ROWS = [
    ("no_timeout", "fail_fast", True, "fault: add_to_cart p99 3444 ms"),
    ("cart_loss", "isolation", False, "not caught: <script>alert(1)</script>"),
]


def test_render_marks_caught_and_missed_and_escapes() -> None:
    html = render_proof(ROWS, generated_at="2026-12-01T21:00:00Z")
    assert html.startswith('<section class="card" id="verdict-proof">')
    assert "1 of 2 caught" in html
    assert html.count("✔ caught") == 1 and html.count("✘ NOT caught") == 1
    assert '<tr class="fail"><td><code>cart_loss</code>' in html
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "recorded 2026-12-01T21:00:00Z" in html
    assert render_proof([]) == ""


def test_write_load_attach_round_trip(tmp_path: Path) -> None:
    path = write_proof(ROWS, tmp_path / "reports")
    assert path.name == PROOF_NAME
    doc = json.loads(path.read_text())
    assert doc["schema"] == "peakchaos-proof/1"
    assert doc["rows"][0] == {"mutant": "no_timeout", "check": "fail_fast", "caught": True, "detail": ROWS[0][3]}
    loaded = load_proof(tmp_path / "reports")
    assert loaded is not None and [tuple(r) for r in loaded["rows"]] == ROWS
    document = attach_proof({"runs": []}, tmp_path / "reports")
    assert "no_timeout" in proof_section(document)
    assert attach_proof({"runs": []}, tmp_path) == {"runs": []}  # no proof file: unchanged
    assert proof_section({"runs": []}) == ""


def test_bad_rows_and_files_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"row 0 must be \(str, str, bool, str\)"):
        render_proof([("m", "c", "yes", "d")])  # type: ignore[list-item]
    (tmp_path / PROOF_NAME).write_text("{not json")
    with pytest.raises(ValueError, match=PROOF_NAME):
        load_proof(tmp_path)
    broken = attach_proof({"runs": []}, tmp_path)  # the report is still written, with a note
    assert "Verdict proof not shown" in proof_section(broken) and PROOF_NAME in proof_section(broken)
    (tmp_path / PROOF_NAME).write_text('{"schema": "other"}')
    with pytest.raises(ValueError, match="peakchaos-proof/1"):
        load_proof(tmp_path)


def test_write_reports_puts_the_proof_into_the_html_and_json(tmp_path: Path) -> None:
    from pytest_peakchaos.report import new_document, write_reports

    write_proof(ROWS, tmp_path)
    paths = write_reports(new_document([]), tmp_path)
    page = paths["html"].read_text()
    assert 'id="verdict-proof"' in page and "<code>no_timeout</code>" in page
    assert page.index('id="verdict-proof"') < page.index("<footer>")
    assert json.loads(paths["json"].read_text())["verdict_proof"]["rows"][1][0] == "cart_loss"
    assert 'id="verdict-proof"' not in write_reports(new_document([]), tmp_path / "other")["html"].read_text()
