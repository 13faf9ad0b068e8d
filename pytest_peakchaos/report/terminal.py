"""The per-experiment summary the pytest plugin prints in its terminal section.

Plain text (no colour codes: pytest's terminal writer adds markup where it wants it), aligned,
short enough to read at a glance::

    graceful tests/acceptance/test_scenarios.py::test_resilient  double11 seed=1234 scale=1 40s
      checks      phase     result  expected                             measured
      isolation   fault     pass    success ≥ 99% and p95 ≤ 3× baseline  99.6%, p95 2.1×
      ...
      sessions 890 started of 900 arrived, 700 completed, 190 abandoned, 10 refused · 12,000 requests
      legacy 3.40 calls/session · ledger 120 acknowledged, 120 found, 0 missing, 0 duplicated
      action          count  err %  p50 ms  p95 ms  p99 ms
      browse          4,000   0.3%    3.10    9.00    20.5
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

Run = Mapping[str, Any]


def _cut(text: Any, limit: int) -> str:
    s = " ".join(str(text).split())  # one line, whatever the producer put in
    return s if len(s) <= limit else s[: limit - 1] + "…"


def _ms(value: Any) -> str:
    if value is None:
        return "-"
    v = float(value)
    return f"{v:.2f}" if v < 10 else f"{v:.1f}" if v < 100 else f"{v:,.0f}"


def _secs(value: Any) -> str:
    v = float(value)
    return f"{v:.0f}s" if v.is_integer() else f"{v:.1f}s"


def _align(rows: Sequence[Sequence[str]], right: Sequence[bool], indent: str = "  ") -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = []
    for row in rows:
        cells = [c.rjust(w) if r else c.ljust(w) for c, w, r in zip(row, widths, right)]
        out.append((indent + "  ".join(cells)).rstrip())
    return out


def outcome_word(check: Mapping[str, Any]) -> str:
    """``pass``, ``FAIL``, ``NOT MEASURED`` (failed a strict run) or ``not measured`` (a warning)."""
    outcome = check.get("outcome") or ("pass" if check.get("passed") else "fail")
    if outcome == "not measured":
        return "not measured" if check.get("passed") else "NOT MEASURED"
    return "pass" if outcome == "pass" else "FAIL"


def summary_lines(run: Run, *, top: int = 5, width: int = 44) -> list[str]:
    """A compact summary of one run: header, checks table, sessions/legacy/ledger, top actions.

    ``top`` limits the actions shown (busiest first, legacy-bound actions always included);
    ``width`` caps the expected/measured columns.
    """
    # not pytest's PASSED/FAILED: a verdict, not a test outcome
    verdict = {"graceful": "graceful", "not measured": "NOT MEASURED"}.get(
        str(run.get("verdict") or ("graceful" if run.get("passed") else "")), "NOT graceful"
    )
    lines = [
        f"{verdict} {run['test']}  {run['profile']} seed={run['seed']} scale={float(run['scale']):g} {_secs(run['duration_s'])}"
    ]
    checks = run.get("checks") or []
    if checks:
        rows = [["checks", "phase", "result", "expected", "measured"]]
        for c in checks:
            rows.append([_cut(c["name"], 28), _cut(c["phase"], 14), outcome_word(c),
                         _cut(c["expected"], width), _cut(c["measured"], width)])
        lines += _align(rows, [False] * 5)
    else:
        lines.append("  no checks ran")
    if run.get("warning"):
        lines.append("  " + _cut(run["warning"], 300))
    s = run["sessions"]
    lines.append(
        f"  sessions {s['started']:,} started of {s['arrived']:,} arrived, {s['completed']:,} completed,"
        f" {s['abandoned']:,} abandoned, {s['refused_by_cap']:,} refused · {run['requests']:,} requests"
    )
    lcs = run.get("legacy_calls_per_session")
    parts = [f"legacy {lcs:.2f} calls/session" if lcs is not None else "legacy calls/session n/a"]
    legacy = run.get("legacy")
    if legacy and legacy.get("calls_per_legacy_action") is not None:
        parts.append(f"{legacy['calls_per_legacy_action']:.2f} legacy calls per legacy action")
    ledger = run.get("ledger")
    if ledger is not None:
        parts.append(
            f"ledger {ledger['acknowledged']:,} acknowledged, {ledger['found']:,} found,"
            f" {ledger['missing']:,} missing, {ledger['duplicated']:,} duplicated"
        )
    lines.append("  " + " · ".join(parts))
    actions: Mapping[str, Mapping[str, Any]] = run.get("actions") or {}
    if actions:
        busiest = sorted(actions, key=lambda a: (-int(actions[a]["count"]), a))
        legacy_actions = set(run.get("legacy_actions") or ())
        shown = busiest[:top] + [a for a in busiest[top:] if a in legacy_actions]
        rows = [["action", "count", "err %", "p50 ms", "p95 ms", "p99 ms"]]
        for name in shown:
            a = actions[name]
            count = int(a["count"])
            err = f"{100.0 * a['errors'] / count:.1f}%" if count else "-"
            rows.append([_cut(name + (" *" if name in legacy_actions else ""), 24), f"{count:,}", err,
                         _ms(a["p50_ms"]), _ms(a["p95_ms"]), _ms(a["p99_ms"])])
        lines += _align(rows, [False, True, True, True, True, True])
        hidden = len(busiest) - len(shown)
        notes = []
        if legacy_actions & set(shown):
            notes.append("* calls legacy")
        if hidden:
            notes.append(f"{hidden} more action{'s' if hidden != 1 else ''} in the HTML report")
        if notes:
            lines.append("  (" + "; ".join(notes) + ")")
    return lines
