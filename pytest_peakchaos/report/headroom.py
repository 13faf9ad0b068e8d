"""The headroom part of the reports: its JSON schema (``headroom[]``, a top-level key of the
document) and its HTML section.

An entry is :meth:`pytest_peakchaos.headroom.HeadroomResult.to_dict`: the interval (``graceful_up_to``
/ ``not_at``, sessions/s), the first failing checks, and every probe (rate, scale, seed, verdict,
legacy calls per session, first failing check, and the probe's full run dict).

The HTML section draws, per search, the verdict against rate: every probe on a rate axis
(graceful: green circle, not graceful: red cross, inconclusive: grey square) at its legacy calls
per session, the interval between the last graceful and the first failing rate shaded, each
failing probe labelled with its first failing check; then the probe table. With several searches,
an overview compares them (a test's later searches as multiples of its first one's graceful rate:
the Double-11 lesson's ratio when a test searched normal, then double11 shoppers).

Cheap to import (no matplotlib, no html module at import time: :mod:`.schema` imports this).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

Entry = Mapping[str, Any]

_NUM = {"type": "number", "minimum": 0}
_NUM_OR_NULL = {"type": ["number", "null"], "minimum": 0}

#: JSON Schema definitions merged into :data:`pytest_peakchaos.report.schema.SCHEMA` ``$defs``.
HEADROOM_DEFS: dict[str, Any] = {
    "headroom": {
        "type": "object",
        "description": "one headroom search: the highest graceful arrival rate under a fault schedule",
        "properties": {
            "test": {"type": "string", "description": "pytest node id, or a name given outside pytest"},
            "profile": {"type": "string"},
            "seed": {"type": "integer", "description": "seed of the search: the probes' seeds derive from it"},
            "rate_unit": {"const": "sessions/s"},
            "base_rate": {**_NUM, "description": "the profile's peak arrival rate at scale 1"},
            "range": {"type": "array", "items": _NUM, "description": "[lowest, highest] rate searched"},
            "duration_s": {**_NUM, "description": "length of one probe"},
            "budget_s": {**_NUM, "description": "time budget of the whole search"},
            "max_probes": {"type": "integer", "minimum": 1},
            "resolution": _NUM,
            "graceful_up_to": {**_NUM_OR_NULL, "description": "highest rate every probe passed at; null: not even the lowest"},
            "not_at": {**_NUM_OR_NULL, "description": "lowest rate a probe failed at; null: none failed"},
            "first_failures": {"type": "array", "items": {"$ref": "#/$defs/headroom_check"}},
            "flaky": {"type": "array", "items": _NUM, "description": "rates whose probes disagreed"},
            "stopped": {"type": "string", "description": "why the search ended"},
            "wall_s": _NUM,
            "summary": {"type": "string"},
            "faults": {"type": "array", "items": {"type": "object"}},
            "probes": {"type": "array", "items": {"$ref": "#/$defs/headroom_probe"}},
        },
        "required": ["test", "profile", "seed", "range", "graceful_up_to", "not_at", "first_failures", "stopped",
                     "wall_s", "summary", "probes"],
    },
    "headroom_check": {
        "type": "object",
        "properties": {"name": {"type": "string"}, "phase": {"type": "string"}, "measured": {"type": "string"}},
        "required": ["name", "phase", "measured"],
    },
    "headroom_probe": {
        "type": "object",
        "properties": {
            "index": {"type": "integer", "minimum": 1},
            "rate": _NUM,
            "scale": _NUM,
            "seed": {"type": "integer"},
            "step": {"type": "string", "description": "bracket, bisect, repeat, retry or step up"},
            "verdict": {"type": "string", "description": "pass, fail or inconclusive"},
            "passed": {"type": "boolean"},
            "wall_s": _NUM,
            "legacy_calls_per_session": _NUM_OR_NULL,
            "first_failure": {"anyOf": [{"$ref": "#/$defs/headroom_check"}, {"type": "null"}]},
            "error": {"type": "string"},
            "run": {"anyOf": [{"$ref": "#/$defs/run"}, {"type": "null"}], "description": "the probe's full run"},
        },
        "required": ["index", "rate", "scale", "seed", "verdict", "passed", "legacy_calls_per_session", "first_failure"],
    },
}

#: The document's top-level ``headroom`` key (optional).
HEADROOM_PROPERTY: dict[str, Any] = {
    "type": "array",
    "items": {"$ref": "#/$defs/headroom"},
    "description": "headroom searches of the session, in order (optional)",
}

PASS_COLOUR = "#2e7d32"
FAIL_COLOUR = "#c62828"
GREY = "#80868b"


def _rate(x: Any) -> str:
    if x is None:
        return "—"
    v = float(x)
    return f"{v:,.0f}" if v >= 1000 else f"{v:.3g}"


def _check_label(check: Mapping[str, Any] | None) -> str:
    return "" if not check else f"{check['name']}/{check['phase']}"


def _verdict_svg(entry: Entry) -> str:
    from matplotlib.lines import Line2D
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    from .html import _new_figure, _short, _svg

    probes: Sequence[Mapping[str, Any]] = entry["probes"]
    lo_r, hi_r = (float(v) for v in entry["range"])
    up_to, not_at = entry["graceful_up_to"], entry["not_at"]
    fig = _new_figure(3.2)
    ax = fig.add_subplot()
    log = hi_r / lo_r >= 8
    if log:
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: _rate(v)))  # no mathtext on this page
        ax.xaxis.set_minor_formatter(NullFormatter())
    left, right = lo_r / (1.25 if log else 1) - (0 if log else 0.05 * (hi_r - lo_r)), hi_r * (1.25 if log else 1) + (0 if log else 0.05 * (hi_r - lo_r))
    left = max(left, 1e-6)
    if up_to is not None:
        ax.axvspan(left, float(up_to), color=PASS_COLOUR, alpha=0.07, lw=0, zorder=0)
    if not_at is not None:
        ax.axvspan(float(not_at), right, color=FAIL_COLOUR, alpha=0.07, lw=0, zorder=0)
    if up_to is not None and not_at is not None:
        ax.axvspan(float(up_to), float(not_at), color="#f9ab00", alpha=0.28, lw=0, zorder=0.5)
    ys = [p["legacy_calls_per_session"] for p in probes]
    known = [float(y) for y in ys if y is not None]
    top = max(known, default=1.0) or 1.0
    styles = {"pass": ("o", PASS_COLOUR), "fail": ("X", FAIL_COLOUR), "inconclusive": ("s", GREY)}
    for p in probes:
        marker, colour = styles.get(str(p["verdict"]), ("s", GREY))
        y = float(p["legacy_calls_per_session"]) if p["legacy_calls_per_session"] is not None else 0.0
        ax.scatter([float(p["rate"])], [y], marker=marker, s=46, color=colour, zorder=3, edgecolors="white", linewidths=0.6)
        ax.annotate(str(p["index"]), (float(p["rate"]), y), xytext=(5, 4), textcoords="offset points", fontsize=7, color="#5f6368")
        if p["verdict"] == "fail" and p.get("first_failure"):
            ax.annotate(_short(_check_label(p["first_failure"]), 28), (float(p["rate"]), y), xytext=(5, -10),
                        textcoords="offset points", fontsize=7.5, color=FAIL_COLOUR)
    for value, colour, label, side in ((up_to, PASS_COLOUR, "graceful up to", "right"), (not_at, FAIL_COLOUR, "not at", "left")):
        if value is not None:
            ax.axvline(float(value), color=colour, lw=1.0, ls=(0, (4, 3)), zorder=1)
            ax.text(float(value), 1.01, f" {label} {_rate(value)} ", transform=ax.get_xaxis_transform(), ha=side,
                    va="bottom", fontsize=8, color=colour)
    ax.set_xlim(left, right)
    ax.set_ylim(0, top * 1.3)
    ax.set_xlabel("session arrival rate (sessions/s)" + (", log scale" if log else ""))
    ax.set_ylabel("legacy calls per session")
    handles = [Line2D([], [], ls="", marker=m, color=c, markersize=7) for m, c in styles.values()]
    fig.legend(handles, ["graceful", "not graceful", "inconclusive"], loc="outside upper right", ncols=3)
    return _svg(fig, f"headroom: verdict against rate, {entry['test']}")


def _probe_table(entry: Entry) -> str:
    from .html import _e, _table

    rows = []
    for p in entry["probes"]:
        ok = p["verdict"] == "pass"
        mark = {"pass": '<span class="ok">✔ graceful</span>', "fail": '<span class="bad">✘ not graceful</span>'}.get(
            str(p["verdict"]), '<span class="small">? inconclusive</span>')
        why = p.get("error") or ""
        ff = p.get("first_failure")
        if ff:
            why = f"{ff['name']}/{ff['phase']}: {ff['measured']}"
        lcs = p["legacy_calls_per_session"]
        cls = "pass" if ok else "fail" if p["verdict"] == "fail" else ""
        scale = f"{float(p['scale']):.3g}"
        wall = f"{float(p.get('wall_s', 0)):.1f}"
        calls = "—" if lcs is None else f"{float(lcs):.2f}"
        rows.append(
            f'<tr class="{cls}"><td class="n">{_e(p["index"])}</td>'
            f'<td class="n">{_e(_rate(p["rate"]))}</td><td class="n">{_e(scale)}</td>'
            f'<td>{_e(p.get("step", ""))}</td><td>{mark}</td><td class="n">{_e(wall)} s</td>'
            f'<td class="n">{_e(calls)}</td><td class="n">{_e(p["seed"])}</td>'
            f'<td class="small">{_e(why) or "—"}</td></tr>'
        )
    head = [("#", "n"), ("rate (sessions/s)", "n"), ("scale", "n"), ("step", ""), ("verdict", ""), ("wall", "n"),
            ("legacy calls / session", "n"), ("seed", "n"), ("first failing check", "")]
    return _table(head, rows)


def _entry_section(index: int, entry: Entry, draw: Callable[..., str] | None) -> str:
    from .html import _e

    lo, hi = entry["graceful_up_to"], entry["not_at"]
    badge_cls = "pass" if lo is not None else "fail"
    interval = f"graceful up to <b>{_e(_rate(lo))}</b> · not at <b>{_e(_rate(hi))}</b> sessions/s"
    faults = "; ".join(str(f.get("describe", f.get("kind", "?"))) for f in entry.get("faults", [])) or "no faults"
    meta = [
        ("profile", _e(entry["profile"])), ("seed", _e(entry["seed"])),
        ("range", f"{_e(_rate(entry['range'][0]))}–{_e(_rate(entry['range'][1]))} sessions/s"),
        ("probe", f"{_e(entry.get('duration_s', '?'))} s"), ("probes", _e(len(entry["probes"]))),
        ("stopped", _e(entry["stopped"])), ("faults", _e(faults)),
    ]
    meta_html = "".join(f"<div>{k} <b>{v}</b></div>" for k, v in meta)
    if draw is None:
        plot = '<p class="note">Plots need matplotlib: <code>pip install "pytest-peakchaos[report]"</code>.</p>'
    elif entry["probes"]:
        plot = ('<div class="plotbox"><h4>Verdict against rate</h4>' + draw(_verdict_svg, entry)
                + '<p class="small">Each probe at its rate and legacy calls per session (numbered in the order they ran);'
                " shaded amber: where the boundary lies, between the last graceful and the first failing rate;"
                " failing probes name their first failing check.</p></div>")
    else:
        plot = '<p class="small">No probe ran.</p>'
    return (
        f'<section class="card headroom" id="headroom-{index}">'
        f'<div class="runhead"><h2>headroom #{index} {_e(entry["test"])}</h2>'
        f'<span class="badge {badge_cls}">{interval}</span></div>'
        f'<div class="meta">{meta_html}</div>'
        f'<p><b>{_e(entry["summary"])}</b></p>{plot}<h3>Probes</h3>{_probe_table(entry)}</section>'
    )


def _overview(entries: Sequence[Entry]) -> str:
    from .html import _e, _short, _short_test, _table

    firsts: dict[str, tuple[int, Any]] = {}  # a test's first search: the others of that test compare to it
    rows = []
    for i, e in enumerate(entries, 1):
        lo = e["graceful_up_to"]
        group = str(e["test"]).split("#", 1)[0]
        j, first = firsts.setdefault(group, (i, lo))
        ratio = "—" if j == i or lo is None or not first else f"{float(lo) / float(first):.2f}× of #{j}"
        rows.append(
            f'<tr><td class="n">{i}</td><td><a href="#headroom-{i}">{_e(_short(_short_test(str(e["test"])), 80))}</a></td>'
            f'<td>{_e(e["profile"])}</td><td class="n">{_e(_rate(lo))}</td><td class="n">{_e(_rate(e["not_at"]))}</td>'
            f'<td class="n">{_e(ratio)}</td><td class="n">{len(e["probes"])}</td><td class="small">{_e(e["summary"])}</td></tr>'
        )
    head = [("#", "n"), ("test", ""), ("profile", ""), ("graceful up to", "n"), ("not at", "n"),
            ("graceful rate vs the test's first", "n"), ("probes", "n"), ("summary", "")]
    return f'<section class="card"><h3 style="margin-top:0">Headroom</h3>{_table(head, rows)}</section>'


def headroom_html(document: Mapping[str, Any], draw: Callable[..., str] | None) -> str:
    """The document's headroom sections ('' without any); ``draw(fn, entry)`` renders a plot
    (``None``: no matplotlib)."""
    entries: Sequence[Entry] = document.get("headroom") or []
    if not entries:
        return ""
    parts = [_overview(entries)] if len(entries) > 1 else []
    parts.extend(_entry_section(i, e, draw) for i, e in enumerate(entries, 1))
    return "".join(parts)

