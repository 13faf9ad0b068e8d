"""Reports: schema validation, JSON round trip, the HTML page, the terminal summary.

``make_run`` builds realistic ``peakchaos/1`` run dicts (per-second series with a latency bump and
errors in the fault window); the browser test in tests/integration reuses it.
"""

from __future__ import annotations

import copy
import json
import math
import random
import re
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from pytest_peakchaos.report import (
    SCHEMA,
    SCHEMA_ID,
    ReportSchemaError,
    load_json,
    new_document,
    render_html,
    summary_lines,
    validate,
    validate_run,
    write_html,
    write_json,
    write_reports,
)
from pytest_peakchaos.report import html as html_mod

# name: (requests/s at scale 1 for normal shoppers, baseline p50 ms, calls legacy)
ACTIONS: dict[str, tuple[float, float, bool]] = {
    "browse": (30.0, 3.0, False),
    "view_product": (22.0, 4.0, False),
    "search": (10.0, 6.0, False),
    "add_to_cart": (5.0, 12.0, True),
    "view_cart": (4.0, 3.5, False),
    "remove_from_cart": (1.0, 11.0, True),
    "checkout": (2.0, 25.0, True),
}
LEGACY_ACTIONS = [a for a, (_, _, legacy) in ACTIONS.items() if legacy]
TEST_ID = "tests/acceptance/test_scenarios.py::test_resilient_shop_degrades_gracefully"


def make_run(
    *,
    test: str = TEST_ID,
    seed: int = 1234,
    profile: str = "double11",
    duration: int = 40,
    fault: tuple[float, float] = (10.0, 30.0),
    naive: bool = False,
    scale: float = 1.0,
    not_measured: bool = False,
    strict: bool = True,
) -> dict[str, Any]:
    """A realistic run: ``duration`` seconds of per-second data for 7 actions, a legacy latency fault.

    Resilient (default): legacy-bound actions slow down a little (cached stock, fail-fast checkout,
    some checkouts queued), the rest is untouched, all checks pass. ``naive=True``: the cascade -
    every action waits on legacy, browse times out, checks fail.
    """
    rng = random.Random(seed)
    f_start, f_end = fault
    churn = {"add_to_cart": 3.0, "remove_from_cart": 6.0} if profile == "double11" else {}
    series: dict[str, list[dict[str, Any]]] = {}
    actions: dict[str, dict[str, Any]] = {}
    for name, (rate, base, legacy) in ACTIONS.items():
        points: list[dict[str, Any]] = []
        for t in range(duration):
            in_fault = f_start <= t < f_end
            count = max(0, round(rate * scale * churn.get(name, 1.0) * rng.uniform(0.85, 1.15)))
            p50 = base * rng.uniform(0.9, 1.1)
            errors = queued = 0
            if in_fault and naive:
                p50 = 800.0 + rng.uniform(-150, 250)
                errors = round(count * rng.uniform(0.2, 0.6))
            elif in_fault and legacy:
                p50 = (35.0 if name != "checkout" else 180.0) * rng.uniform(0.9, 1.2)
                if name == "checkout":
                    errors = rng.randint(0, 1)
                    queued = max(0, count - errors - rng.randint(0, 1))
            elif t < 2 and rng.random() < 0.3:
                errors = 1  # warm-up noise
            errors = min(errors, count)
            p95 = p50 * rng.uniform(2.2, 3.0)
            p99 = p95 * rng.uniform(1.2, 1.6)
            empty = count == 0
            points.append({
                "t": t, "count": count, "ok": count - errors, "errors": errors, "queued": queued,
                "p50_ms": None if empty else round(p50, 3), "p95_ms": None if empty else round(p95, 3),
                "p99_ms": None if empty else round(p99, 3),
            })
        series[name] = points
        total = sum(p["count"] for p in points)
        errs = sum(p["errors"] for p in points)
        p50s = sorted(p["p50_ms"] for p in points if p["p50_ms"] is not None)
        p95s = sorted(p["p95_ms"] for p in points if p["p95_ms"] is not None)
        p99s = [p["p99_ms"] for p in points if p["p99_ms"] is not None]
        timeouts = errs // 3 if naive else 0
        actions[name] = {
            "count": total, "ok": total - errs, "errors": errs, "queued": sum(p["queued"] for p in points),
            "p50_ms": p50s[len(p50s) // 2], "p95_ms": p95s[int(0.95 * (len(p95s) - 1))], "p99_ms": max(p99s),
            "max_ms": round(max(p99s) * 1.4, 3),
            "errors_by_kind": {"timeout": timeouts, "status_5xx": errs - timeouts} if errs else {},
            "status_classes": {"2xx": total - errs, "5xx": errs - timeouts} if errs else {"2xx": total},
        }
    requests = sum(a["count"] for a in actions.values())
    started = 22 * duration
    legacy_requests = sum(actions[a]["count"] for a in LEGACY_ACTIONS)
    checks = [
        {"name": "isolation", "phase": "fault", "passed": not naive, "expected": "success ≥ 99% and p95 ≤ 3× baseline",
         "measured": "browse 58.2%, p95 61×" if naive else "99.6%, p95 1.1×", "detail": ""},
        {"name": "fail_fast", "phase": "fault", "passed": not naive, "expected": "checkout p99 ≤ 2000 ms",
         "measured": "checkout p99 5,012 ms" if naive else "checkout p99 412 ms", "detail": ""},
        {"name": "honest_degradation", "phase": "fault", "passed": not naive, "expected": "no 500s, resets or time-outs",
         "measured": f"{actions['browse']['errors']} time-outs" if naive else "0", "detail": "503/429 with Retry-After or 202 are fine"},
        {"name": "ledger", "phase": "recovery", "passed": True, "expected": "every acknowledged order exactly once",
         "measured": "120 of 120", "detail": ""},
        {"name": "recovery", "phase": "recovery", "passed": True, "expected": "success ≥ 99% within 10 s",
         "measured": "after 2 s", "detail": ""},
        {"name": "amplification", "phase": "fault", "passed": True, "expected": "≤ 3 legacy calls per legacy action",
         "measured": "1.30", "detail": ""},
    ]
    for c in checks:
        c.update(outcome="pass" if c["passed"] else "fail", reason="")
    if not_measured:
        why = "no legacy call counter: legacy has no /stats"
        checks[-1].update(outcome="not measured", passed=not strict, measured=f"not measured: {why}", reason=why, detail=why)
    passed = all(c["passed"] for c in checks)
    nm = sum(1 for c in checks if c["outcome"] == "not measured")
    warning = f"warning: {nm} check row(s) not measured and passed only because strict=False" if nm and not strict else None
    describe = f"latency 800±200ms downstream {f_start:g}s→{f_end:g}s"
    return {
        "test": test, "seed": seed, "profile": profile, "scale": scale, "duration_s": float(duration), "passed": passed,
        "strict": strict, "not_measured": nm, "warning": warning,
        "phases": [{"name": "baseline", "start": 0.0, "end": f_start}, {"name": "fault", "start": f_start, "end": f_end},
                   {"name": "recovery", "start": f_end, "end": float(duration)}],
        "faults": [{"kind": "latency", "describe": describe, "start": f_start, "end": f_end, "latency": 800, "jitter": 200,
                    "direction": "downstream"}],
        "fault_events": [{"t": f_start + 0.002, "action": "apply", "fault": "latency 800±200ms downstream", "via": ""},
                         {"t": f_end + 0.01, "action": "revert", "fault": "latency 800±200ms downstream", "via": "delete"}],
        "sessions": {"arrived": started + 10, "started": started, "refused_by_cap": 10, "completed": started - 190, "abandoned": 190},
        "requests": requests,
        "legacy_calls_per_session": round(legacy_requests / started, 3),
        "legacy_actions": list(LEGACY_ACTIONS),
        "actions": actions,
        "series": series,
        "checks": checks,
        "ledger": {"acknowledged": 120, "found": 120, "missing": 0, "duplicated": 0},
        "legacy": {"calls_per_legacy_action": 1.3, "calls": round(legacy_requests * 1.3)},
        "failure": None if passed else "graceful degradation failed:\n  isolation  fault  browse 58.2% < 99%",
    }


def make_document(*runs: dict[str, Any]) -> dict[str, Any]:
    return new_document(runs or [make_run()], generated_at=datetime(2024, 11, 11, 0, 0, 5))


# --------------------------------------------------------------------------- schema


def test_a_realistic_document_is_valid() -> None:
    doc = make_document(make_run(), make_run(profile="normal", naive=True, seed=7))
    assert validate(doc) == []
    assert validate_run(doc["runs"][0]) == []
    assert doc["schema"] == SCHEMA_ID == "peakchaos/2"
    assert SCHEMA["$schema"].endswith("2020-12/schema")


@pytest.mark.parametrize(
    ("mutate", "problem"),
    [
        (lambda d: d["runs"][0].pop("seed"), "runs[0]: missing required key 'seed'"),
        (lambda d: d.pop("generated_at"), "document: missing required key 'generated_at'"),
        (lambda d: d["runs"][0].update(seed="1234"), "runs[0].seed: expected integer, got string '1234'"),
        (lambda d: d["runs"][0].update(passed="yes"), "runs[0].passed: expected boolean, got string 'yes'"),
        (lambda d: d["runs"][0].update(requests=True), "runs[0].requests: expected integer, got boolean True"),
        (lambda d: d["runs"][0]["actions"]["browse"].update(p95_ms="9ms"),
         "runs[0].actions.browse.p95_ms: expected number or null, got string '9ms'"),
        (lambda d: d["runs"][0]["series"]["checkout"][3].pop("errors"),
         "runs[0].series.checkout[3]: missing required key 'errors'"),
        (lambda d: d["runs"][0]["checks"][1].update(passed=None), "runs[0].checks[1].passed: expected boolean, got null None"),
        (lambda d: d["runs"][0]["ledger"].pop("missing"), "runs[0].ledger: missing required key 'missing'"),
        (lambda d: d["runs"][0].update(ledger="none"), "runs[0].ledger: expected object or null, got string 'none'"),
        (lambda d: d["runs"][0]["sessions"].update(started=-1), "runs[0].sessions.started: must be >= 0, got -1"),
        (lambda d: d["runs"][0]["actions"]["search"].update(p99_ms=math.nan), "runs[0].actions.search.p99_ms: nan is not a JSON number"),
        (lambda d: d["runs"][0].update(phases={}), "runs[0].phases: expected array, got object {}"),
        (lambda d: d.update(generated_at="yesterday"), "generated_at: expected an ISO-8601 date-time, got 'yesterday'"),
        (lambda d: d["runs"][0]["faults"][0].update(describe=3), "runs[0].faults[0].describe: expected string, got integer 3"),
        (lambda d: d["runs"][0]["actions"].update({"odd name": {}}), "runs[0].actions.'odd name': missing required key 'count'"),
    ],
)
def test_validation_names_where_and_what(mutate: Any, problem: str) -> None:
    doc = make_document()
    mutate(doc)
    problems = validate(doc)
    assert any(p.startswith(problem) for p in problems), problems


def test_validation_reports_every_problem_and_caps_the_list() -> None:
    doc = make_document()
    for point in doc["runs"][0]["series"]["browse"]:
        point["count"] = "many"
    problems = validate(doc, limit=10)
    assert len(problems) == 10 and problems[-1] == "... and 31 more problems"


def test_a_peakchaos_1_document_is_read_as_peakchaos_2(tmp_path: Path) -> None:
    doc = make_document()
    doc["schema"] = "peakchaos/1"
    for run in doc["runs"]:
        for key in ("strict", "not_measured", "warning"):
            del run[key]
        for c in run["checks"]:
            del c["outcome"], c["reason"]
        run["checks"][-1]["measured"] = "skipped: no legacy call counter"
    assert validate(doc) == []
    path = tmp_path / "old.json"
    path.write_text(json.dumps(doc))
    new = load_json(path)
    assert new["schema"] == "peakchaos/2"
    last = new["runs"][0]["checks"][-1]
    assert last["outcome"] == "not measured" and last["reason"] == "no legacy call counter"
    assert new["runs"][0]["not_measured"] == 1 and "peakchaos/1" in new["runs"][0]["warning"]
    assert [c["outcome"] for c in new["runs"][0]["checks"][:-1]] == ["pass"] * 5


def test_other_schema_ids_and_non_documents_are_refused_clearly() -> None:
    doc = make_document()
    doc["schema"] = "peakchaos/3"
    assert validate(doc) == ["schema: this reader understands 'peakchaos/1', 'peakchaos/2', the document is 'peakchaos/3'"]
    assert validate([]) == ["document: expected object, got array []"]


def test_extra_keys_are_allowed_and_nullable_fields_accept_null() -> None:
    run = make_run()
    run["run_id"] = "abc"
    run["actions"]["browse"]["impatient"] = 3
    run.update(ledger=None, legacy=None, legacy_calls_per_session=None)
    run["faults"][0].update(start=None, end=None)
    run["series"]["browse"][0].update(count=0, ok=0, errors=0, p50_ms=None, p95_ms=None, p99_ms=None)
    assert validate(make_document(run)) == []


def test_integral_floats_count_as_integers() -> None:
    run = make_run()
    run["requests"] = float(run["requests"])
    assert validate_run(run) == []
    run["requests"] = 1.5
    assert validate_run(run) == ["requests: expected integer, got number 1.5"]


# --------------------------------------------------------------------------- JSON


def test_json_round_trip_is_exact_and_stable(tmp_path: Path) -> None:
    doc = make_document(make_run(), make_run(profile="normal", seed=9))
    path = write_json(doc, tmp_path / "out" / "peakchaos.json")
    assert load_json(path) == json.loads(json.dumps(doc))
    text = path.read_text(encoding="utf-8")
    assert list(json.loads(text)) == ["schema", "generated_at", "peakchaos_version", "runs"]
    assert "≥" in text and "\n  " in text  # UTF-8, pretty
    run_keys = list(json.loads(text)["runs"][0])
    assert run_keys[:6] == ["test", "seed", "profile", "scale", "duration_s", "passed"]
    assert list(json.loads(text)["runs"][0]["actions"]) == sorted(ACTIONS)
    # same content built in another order: same bytes
    shuffled = json.loads(json.dumps(doc))
    shuffled = dict(reversed(list(shuffled.items())))
    shuffled["runs"][0] = dict(reversed(list(shuffled["runs"][0].items())))
    assert write_json(shuffled, tmp_path / "again.json").read_text(encoding="utf-8") == text
    assert [p.name for p in path.parent.iterdir()] == ["peakchaos.json"]  # no temporary left behind


def test_invalid_document_writes_nothing(tmp_path: Path) -> None:
    target = tmp_path / "peakchaos.json"
    target.write_text("previous", encoding="utf-8")
    doc = make_document()
    del doc["runs"][0]["checks"]
    with pytest.raises(ReportSchemaError) as info:
        write_json(doc, target)
    assert "runs[0]: missing required key 'checks'" in str(info.value)
    assert info.value.problems == ["runs[0]: missing required key 'checks'"]
    assert target.read_text(encoding="utf-8") == "previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["peakchaos.json"]


def test_load_json_refuses_other_schemas_and_non_json(tmp_path: Path) -> None:
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"schema": "peakchaos/0", "runs": []}), encoding="utf-8")
    with pytest.raises(ReportSchemaError, match="understands 'peakchaos/1'"):
        load_json(other)
    assert load_json(other, validate=False)["schema"] == "peakchaos/0"
    bad = tmp_path / "bad.json"
    bad.write_text("{", encoding="utf-8")
    with pytest.raises(ValueError, match="not JSON"):
        load_json(bad)


def test_nan_is_refused_before_writing(tmp_path: Path) -> None:
    doc = make_document()
    doc["runs"][0]["scale"] = math.inf
    with pytest.raises(ReportSchemaError, match=r"runs\[0\].scale: inf is not a JSON number"):
        write_json(doc, tmp_path / "x.json")


# --------------------------------------------------------------------------- HTML

XMLNS = ("http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink")


def _external_refs(page: str) -> list[str]:
    urls = re.findall(r"""(?:https?:)?//[^\s"'<>)]+""", page)
    return [u for u in urls if u not in XMLNS]


def test_html_has_header_tables_plots_and_no_external_references(tmp_path: Path) -> None:
    resilient = make_run()
    naive = make_run(test="tests/acceptance/test_scenarios.py::test_naive_shop_cascades", profile="double11", naive=True, seed=99)
    path = write_html(make_document(resilient, naive), tmp_path / "peakchaos.html")
    page = path.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    # one svg per plot: 3 per run + the comparison chart
    assert page.count("<svg") == 3 * 2 + 1
    assert page.count("</svg>") == page.count("<svg")
    assert _external_refs(page) == []
    assert "src=" not in page and "<link" not in page and "<script" not in page.lower() and "@import" not in page
    for run in (resilient, naive):
        assert f"<b>{run['seed']}</b>" in page
        for check in run["checks"]:
            assert f"<td><b>{check['name']}</b></td>" in page
    assert page.count('<span class="badge pass">PASSED</span>') == 2  # header + overview row
    assert page.count('<span class="badge fail">FAILED</span>') == 2
    assert page.count('<span class="bad" data-outcome="fail">✘ FAIL</span>') == 3
    assert "success ≥ 99% and p95 ≤ 3× baseline" in page and "browse 58.2%, p95 61×" in page
    assert "graceful degradation failed:" in page  # the failure message
    assert "Legacy calls per session" in page and "120 acknowledged" in page
    # plots carry the fault label and phase names as text
    assert "latency 800±200ms downstream 10s→30s" in page
    assert ">recovery<" in page and ">baseline<" in page
    assert "legacy calls per session" in page  # comparison chart axis
    for name in ACTIONS:
        assert f">{name}<" in page


def test_html_escapes_everything_and_stays_inert(tmp_path: Path) -> None:
    evil = "tests/test_x.py::test_y[<script>alert(1)</script>]"
    run = make_run(test=evil, profile='sale"<b>', naive=True)
    run["checks"][0]["measured"] = "<img src=x onerror=alert(1)>"
    run["faults"][0]["describe"] = "latency <i>800</i> $x^2$ & co"
    run["actions"]["<odd>"] = dict(run["actions"].pop("search"))
    run["series"]["<odd>"] = run["series"].pop("search")
    page = render_html(make_document(run, make_run(seed=5)))
    assert "<script" not in page and "<img" not in page and "<i>" not in page and "<odd>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "sale&quot;&lt;b&gt;" in page
    assert "$x^2$ &amp; co" in page  # no mathtext: dollars stay dollars, in the SVG too


def test_html_single_run_has_no_comparison_chart_and_is_small() -> None:
    page = render_html(make_document(make_run()))
    assert page.count("<svg") == 3
    assert "Comparison" not in page
    size = len(page.encode("utf-8"))
    assert size < 150_000, size


def test_html_ids_are_unique_and_every_reference_resolves() -> None:
    page = render_html(make_document(make_run(), make_run(seed=3, profile="normal"), make_run(seed=4, naive=True)))
    ids = re.findall(r'\sid="([^"]+)"', page)
    assert len(ids) == len(set(ids)) > 10
    refs = set(re.findall(r'(?:href="|url\()#([^")]+)', page))
    assert refs <= set(ids) | {f"run-{i}" for i in (1, 2, 3)}
    assert all(f'id="run-{i}"' in page for i in (1, 2, 3))


def test_html_is_deterministic() -> None:
    doc = make_document(make_run(), make_run(seed=3, profile="normal"))
    assert render_html(doc) == render_html(copy.deepcopy(doc))


def test_html_long_run_is_bucketed_and_bounded() -> None:
    run = make_run(duration=3600, fault=(600.0, 2400.0))
    page = render_html(make_document(run))
    assert "6-second buckets" in page
    assert len(page.encode("utf-8")) < 400_000
    assert _external_refs(page) == []


def test_html_handles_sparse_runs() -> None:
    run = make_run()
    run.update(faults=[], fault_events=[], checks=[], ledger=None, legacy=None, legacy_calls_per_session=None, phases=[])
    quiet = make_run(seed=2)
    quiet["series"] = {"browse": [{"t": 0, "count": 0, "ok": 0, "errors": 0, "queued": 0, "p50_ms": None, "p95_ms": None, "p99_ms": None}]}
    empty = make_run(seed=3)
    empty["series"] = {}
    page = render_html(make_document(run, quiet, empty))
    assert "No faults were injected." in page and "No checks ran." in page and "no ledger for this stack" in page
    assert "no latency data" in page and "No per-second series in this run." in page
    assert page.count("<svg") == 3 + 3 + 1


def test_html_without_matplotlib_still_has_the_tables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(html_mod, "matplotlib_available", lambda: False)
    page = render_html(make_document(make_run(), make_run(seed=4)))
    assert "<svg" not in page and "Plots need matplotlib" in page and "<td><b>isolation</b></td>" in page


def test_html_rejects_invalid_documents() -> None:
    doc = make_document()
    doc["runs"][0]["sessions"] = None
    with pytest.raises(ReportSchemaError, match=r"runs\[0\].sessions: expected object, got null"):
        render_html(doc)


def test_importing_the_report_package_does_not_import_matplotlib() -> None:
    code = "import sys, pytest_peakchaos.report; assert 'matplotlib' not in sys.modules, 'imported'"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# --------------------------------------------------------------------------- write_reports / new_document


def test_write_reports_writes_both_files(tmp_path: Path) -> None:
    doc = make_document(make_run(), make_run(profile="normal", seed=8))
    paths = write_reports(doc, tmp_path / "reports")
    assert paths == {"json": tmp_path / "reports" / "peakchaos.json", "html": tmp_path / "reports" / "peakchaos.html"}
    assert load_json(paths["json"])["runs"][1]["profile"] == "normal"
    assert paths["html"].read_text(encoding="utf-8").count("<svg") == 7


def test_write_reports_writes_nothing_for_a_bad_document(tmp_path: Path) -> None:
    doc = make_document()
    doc["runs"][0]["passed"] = "no"
    with pytest.raises(ReportSchemaError):
        write_reports(doc, tmp_path / "reports")
    assert not (tmp_path / "reports").exists()


def test_new_document_stamps_schema_time_and_version() -> None:
    doc = new_document([make_run()])
    assert doc["schema"] == "peakchaos/2" and doc["peakchaos_version"] == "0.1.0"
    assert doc["generated_at"].endswith("Z")
    assert datetime.fromisoformat(doc["generated_at"].replace("Z", "+00:00")).utcoffset() is not None
    assert validate(doc) == []
    assert make_document()["generated_at"].startswith("2024-11-")


# --------------------------------------------------------------------------- terminal


def test_summary_lines_header_checks_and_actions() -> None:
    lines = summary_lines(make_run())
    assert lines[0] == f"graceful {TEST_ID}  double11 seed=1234 scale=1 40s"
    assert lines[1].split() == ["checks", "phase", "result", "expected", "measured"]
    check_rows = lines[2:8]
    assert [r.split()[0] for r in check_rows] == ["isolation", "fail_fast", "honest_degradation", "ledger",
                                                   "recovery", "amplification"]
    # aligned: every column starts at the same place
    for col in ("phase", "result", "expected", "measured"):
        at = lines[1].index(col)
        assert all(row[at - 2: at] == "  " and row[at] != " " for row in check_rows), col
    assert "sessions 880 started of 890 arrived" in lines[8]
    assert "legacy " in lines[9] and "calls/session" in lines[9] and "ledger 120 acknowledged" in lines[9]
    table = lines[10:]
    assert table[0].split() == ["action", "count", "err", "%", "p50", "ms", "p95", "ms", "p99", "ms"]
    shown = [r.split()[0] for r in table[1:-1]]
    assert shown[:5] == ["browse", "view_product", "add_to_cart", "search", "remove_from_cart"]
    assert "checkout" in shown  # a legacy-bound action is always shown
    assert "view_cart" not in shown
    assert table[-1] == "  (* calls legacy; 1 more action in the HTML report)"
    assert all(len(line) < 160 for line in lines)


def test_summary_lines_for_a_failed_run_mark_the_failed_checks() -> None:
    run = make_run(naive=True)
    run["checks"][0]["measured"] = "x" * 300 + "\nsecond line"
    lines = summary_lines(run)
    assert lines[0].startswith("NOT graceful ")
    fails = [line for line in lines if "  FAIL  " in line]
    assert [line.split()[0] for line in fails] == ["isolation", "fail_fast", "honest_degradation"]
    assert any(line.rstrip().endswith("…") for line in fails)
    assert all("\n" not in line for line in lines)


def test_summary_lines_for_a_sparse_run() -> None:
    run = make_run()
    run.update(checks=[], actions={}, ledger=None, legacy=None, legacy_calls_per_session=None)
    lines = summary_lines(run)
    assert lines[1] == "  no checks ran"
    assert lines[-1] == "  legacy calls/session n/a"


def test_not_measured_has_its_own_word_and_colour_everywhere() -> None:
    strict = make_run(not_measured=True)
    lenient = make_run(not_measured=True, strict=False, seed=99)
    assert validate(make_document(strict, lenient)) == []
    assert strict["passed"] is False and lenient["passed"] is True
    page = render_html(make_document(strict, lenient))
    assert page.count('data-outcome="not-measured"') == 2
    assert "? not measured (fails: strict)" in page and "? not measured</span>" in page
    assert 'tr class="nm"' in page and "--nm:" in page
    assert "✔ pass</span></td></tr>" not in page.split("amplification")[1][:400]  # never shown as a pass
    assert lenient["warning"] in page
    words = [line.split()[2:4] for line in summary_lines(strict) if line.strip().startswith("amplification")]
    assert words == [["NOT", "MEASURED"]]
    text = "\n".join(summary_lines(lenient))
    assert "not measured" in text and lenient["warning"] in text
