"""``peakchaos.html``: one self-contained page per report document.

No external reference of any kind: CSS is inline, plots are inline SVG drawn by matplotlib (its
object API and SVG canvas: no pyplot, no GUI backend, no global state touched), and the page
needs no JavaScript. Every text that comes from a run is escaped.

Per run: a header (test, profile, seed, scale, duration, PASSED/FAILED), the failure message,
the checks table, sessions / legacy calls per session / ledger, the faults and their events, the
actions table and three plots over time - latency percentiles per action (log scale), throughput
per action and errors (and queued answers) per second per action - each with the fault windows
shaded and labelled and the phase boundaries drawn as dashed lines. With several runs, a
comparison section adds a bar chart of legacy calls per session per run (the Double-11 lesson:
same arrival rate, more legacy calls per session).

matplotlib is imported only while drawing; without it the page is written with its tables and a
note in place of the plots.
"""

from __future__ import annotations

import io
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from .jsonreport import atomic_write_text
from .proof import proof_section
from .schema import SCHEMA_ID, ensure_valid, upgrade

if TYPE_CHECKING:  # pragma: no cover - typing only
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

Run = Mapping[str, Any]

# Per-action colours (Tableau-like, red last: red means faults and failures on this page).
PALETTE = (
    "#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#499894", "#9c755f",
    "#d37295", "#8f8a2f", "#79706e", "#2f4b7c", "#665191", "#e15759",
)
FAULT_COLOURS = ("#e15759", "#f28e2b", "#b07aa1", "#9c755f")
PERCENTILES = (("p50_ms", "p50", "#4e79a7", "-", 1.1), ("p95_ms", "p95", "#f28e2b", "-", 1.4), ("p99_ms", "p99", "#c0392b", "--", 1.1))
PASS_COLOUR = "#2e7d32"
FAIL_COLOUR = "#c62828"
MAX_POINTS = 600  # per line; longer runs are bucketed (counts averaged, percentiles: worst of the bucket)
WIDTH_IN = 11.0

MPL_RC: dict[str, Any] = {
    "text.parse_math": False,  # run data is never mathtext ("$" stays "$")
    "svg.fonttype": "none",  # text stays text: small, selectable, searchable
    "svg.hashsalt": "peakchaos",  # stable ids: same document, same page
    "path.simplify": True,
    "path.simplify_threshold": 0.5,
    "font.family": "DejaVu Sans",
    "font.size": 9.0,
    "axes.titlesize": 10.0,
    "axes.labelsize": 9.0,
    "axes.edgecolor": "#9aa0a6",
    "axes.linewidth": 0.8,
    "axes.grid": True,
    "grid.color": "#e3e5e8",
    "grid.linewidth": 0.6,
    "xtick.color": "#5f6368",
    "ytick.color": "#5f6368",
    "xtick.labelsize": 8.0,
    "ytick.labelsize": 8.0,
    "legend.fontsize": 8.0,
    "legend.frameon": False,
    "figure.dpi": 72.0,
    "figure.facecolor": "white",
}


# --------------------------------------------------------------------------- formatting


def _e(value: Any) -> str:
    return escape(str(value), quote=True)


def _num(value: Any, digits: int = 0) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int) or digits == 0:
        return f"{value:,.0f}"
    return f"{value:,.{digits}f}"


def _ms(value: Any) -> str:
    if value is None:
        return "—"
    v = float(value)
    if v < 10:
        return f"{v:.2f}"
    if v < 100:
        return f"{v:.1f}"
    return f"{v:,.0f}"


def _secs(value: Any) -> str:
    v = float(value)
    return f"{v:.0f}" if v.is_integer() else f"{v:.1f}"


def _scale(run: Run) -> str:
    return _e(f"{float(run['scale']):g}")


def _pct(part: float, whole: float) -> str:
    if not whole:
        return "—"
    p = 100.0 * part / whole
    return f"{p:.1f}%" if p >= 0.1 or p == 0 else "<0.1%"


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _short_test(test: str) -> str:
    return test.rsplit("::", 1)[-1] if "::" in test else test


def _action_order(run: Run) -> list[str]:
    """Actions of a run, busiest first (ties by name)."""
    actions: Mapping[str, Any] = run["actions"]
    names = set(actions) | set(run["series"])
    return sorted(names, key=lambda a: (-int(actions.get(a, {}).get("count", 0)), a))


def action_colours(document: Mapping[str, Any]) -> dict[str, str]:
    """One colour per action name, the same in every run and plot of the document."""
    names: set[str] = set()
    for run in document["runs"]:
        names.update(run["actions"])
        names.update(run["series"])
    return {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(sorted(names))}


def _fault_window(fault: Mapping[str, Any], duration: float) -> tuple[float, float]:
    start = fault.get("start")
    end = fault.get("end")
    return (float(start) if start is not None else 0.0, float(end) if end is not None else duration)


# --------------------------------------------------------------------------- data for plots


class _Grid:
    """Per-second series on a common time grid, bucketed to at most :data:`MAX_POINTS`."""

    def __init__(self, run: Run) -> None:
        series: Mapping[str, Sequence[Mapping[str, Any]]] = run["series"]
        last = max((float(p["t"]) for points in series.values() for p in points), default=0.0)
        seconds = max(int(math.ceil(float(run["duration_s"]))), int(math.floor(last)) + 1, 1)
        self.width = max(1, math.ceil(seconds / MAX_POINTS))
        self.buckets = math.ceil(seconds / self.width)
        self.x = [(b + 0.5) * self.width for b in range(self.buckets)]
        self.end = float(self.buckets * self.width)
        self.rate: dict[str, dict[str, list[float]]] = {}
        self.latency: dict[str, dict[str, list[float]]] = {}
        for action, points in series.items():
            sums = {k: [0.0] * self.buckets for k in ("count", "errors", "queued")}
            worst = {k: [math.nan] * self.buckets for k, *_ in PERCENTILES}
            for p in points:
                b = min(self.buckets - 1, int(float(p["t"]) // self.width))
                for k in sums:
                    sums[k][b] += float(p.get(k) or 0)
                for k in worst:
                    v = p.get(k)
                    if v is None or not float(v) > 0:  # no request that second, or log-scale-hostile
                        continue
                    if math.isnan(worst[k][b]) or float(v) > worst[k][b]:
                        worst[k][b] = float(v)
            self.rate[action] = {k: [v / self.width for v in vals] for k, vals in sums.items()}
            self.latency[action] = worst


# --------------------------------------------------------------------------- matplotlib


def matplotlib_available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


_GEOMETRY_ATTR = re.compile(r'\s(d|x|y|transform)="([^"]*)"')
_LONG_DECIMAL = re.compile(r"(\.\d{2})\d+")
_DEFINED_ID = re.compile(r'\sid="([^"]+)"')


def _compact_geometry(match: re.Match[str]) -> str:
    value = " ".join(match.group(2).split())  # path data: one line
    value = _LONG_DECIMAL.sub(r"\1", value)  # 0.01 pt is plenty on screen
    return f' {match.group(1)}="{value}"'


def _drop_bare_groups(lines: Iterable[str]) -> str:
    """Join the lines, leaving out ``<g>`` elements without attributes (and their ``</g>``)."""
    kept: list[str] = []
    stack: list[bool] = []
    for line in lines:
        if line == "<g>":
            stack.append(False)
            continue
        if line == "</g>" and stack:
            if stack.pop():
                kept.append(line)
            continue
        opened = len(re.findall(r"<g[\s>]", line)) - len(re.findall(r"<g\s[^>]*/>", line))
        closed = line.count("</g>")
        for _ in range(opened):
            stack.append(True)
        for _ in range(closed):
            if stack:
                stack.pop()
        kept.append(line)
    return "\n".join(kept)


def _svg(fig: Figure, label: str) -> str:
    """The figure as an inline ``<svg>`` element: no XML prolog, DOCTYPE or metadata (so no URLs
    but the namespaces), geometry rounded, group ids dropped, no indentation."""
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None, "Format": None, "Type": None})
    text = buf.getvalue()
    text = text[text.index("<svg"):]
    text = re.sub(r"<metadata>.*?</metadata>\s*", "", text, count=1, flags=re.S)
    text = re.sub(r'<g id="[^"]*"', "<g", text)  # nothing refers to groups
    text = re.sub(r' transform="rotate\(-?0 [^"]*\)"', "", text)  # a rotation by 0 degrees
    text = _GEOMETRY_ATTR.sub(_compact_geometry, text)
    text = _drop_bare_groups(line.strip() for line in text.splitlines() if line.strip())
    head_end = text.index(">")
    head = text[:head_end]
    width = re.search(r'\swidth="([\d.]+)pt"', head)
    head = re.sub(r'\s(width|height)="[^"]*"', "", head)
    style = f' style="max-width:{width.group(1)}pt"' if width else ""
    head = head.replace("<svg", f'<svg class="plot" role="img" aria-label="{_e(label)}"{style}', 1)
    return head + text[head_end:] + "\n"


def _unique_ids(svg: str, prefix: str) -> str:
    """Prefix the ids an SVG defines (and its references to them): ids must be unique in a page,
    and matplotlib's hashed ids repeat between figures."""
    for ident in sorted(set(_DEFINED_ID.findall(svg)), key=len, reverse=True):
        svg = svg.replace(f'id="{ident}"', f'id="{prefix}{ident}"').replace(f"#{ident}", f"#{prefix}{ident}")
    return svg


def _number_svgs(page: str) -> str:
    parts = re.split(r"(<svg\b.*?</svg>)", page, flags=re.S)
    count = 0
    for i, part in enumerate(parts):
        if part.startswith("<svg"):
            count += 1
            parts[i] = _unique_ids(part, f"f{count}-")
    return "".join(parts)


def _new_figure(height_in: float) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(WIDTH_IN, height_in), layout="constrained")


def _overlay(ax: Axes, run: Run, end: float, *, labels: str) -> None:
    """Shade fault windows (``labels``: "full", "kind" or "") and draw phase boundaries."""
    import matplotlib.transforms as mtransforms

    trans = mtransforms.blended_transform_factory(ax.transData, ax.transAxes)
    for i, fault in enumerate(run["faults"]):
        start, stop = _fault_window(fault, end)
        colour = FAULT_COLOURS[i % len(FAULT_COLOURS)]
        ax.axvspan(start, stop, color=colour, alpha=0.13, lw=0, zorder=0)
        if labels:
            text = str(fault["describe"]) if labels == "full" else str(fault["kind"])
            ax.text(
                start + end * 0.004, 0.97 - 0.1 * i, _short(text, 90), transform=trans,
                ha="left", va="top", fontsize=8, color=colour, clip_on=True, zorder=5,
                bbox={"boxstyle": "square,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.75},
            )
    boundaries = sorted({float(p[k]) for p in run["phases"] for k in ("start", "end")} - {0.0, end})
    for b in boundaries:
        if 0 < b < end:
            ax.axvline(b, color="#5f6368", lw=0.8, ls=(0, (4, 3)), zorder=1)
    if labels == "full":
        for phase in run["phases"]:
            mid = (float(phase["start"]) + float(phase["end"])) / 2
            if 0 <= mid <= end:
                ax.text(mid, 0.03, _short(str(phase["name"]), 24), transform=trans, ha="center",
                        va="bottom", fontsize=8, color="#5f6368", style="italic", clip_on=True, zorder=5)
    ax.set_xlim(0, end)


def _ms_label(value: float, _pos: Any = None) -> str:
    if value >= 1000:
        s = value / 1000
        return f"{s:g} s"
    return f"{value:g} ms"


def _latency_svg(run: Run, grid: _Grid, actions: list[str], colours: Mapping[str, str]) -> str:
    from matplotlib.lines import Line2D
    from matplotlib.ticker import FuncFormatter, LogLocator, NullLocator

    plotted = [a for a in actions if a in grid.latency]
    n = len(plotted)
    cols = 1 if n <= 1 else 2 if n <= 4 else 3
    rows = max(1, math.ceil(n / cols))
    fig = _new_figure(0.75 + 1.9 * rows)
    axes = fig.subplots(rows, cols, sharex=True, sharey=True, squeeze=False)
    has_data = any(v == v for a in plotted for k in grid.latency[a] for v in grid.latency[a][k])
    for i in range(rows * cols):
        ax = axes[i // cols][i % cols]
        if i >= n:
            fig.delaxes(ax)
            if i - cols >= 0:  # the panel above now ends its column: give it x labels
                axes[(i - cols) // cols][i % cols].tick_params(labelbottom=True)
            continue
        action = plotted[i]
        for key, _, colour, style, width in PERCENTILES:
            ax.plot(grid.x, grid.latency[action][key], color=colour, ls=style, lw=width)
        _overlay(ax, run, grid.end, labels="kind" if i == 0 else "")
        ax.set_title(action, loc="left", color=colours.get(action, "#333"), fontweight="bold")
    if has_data:
        first = axes[0][0]
        first.set_yscale("log")
        first.yaxis.set_major_locator(LogLocator(base=10))
        first.yaxis.set_major_formatter(FuncFormatter(_ms_label))
        first.yaxis.set_minor_locator(NullLocator())  # decades are enough, and minor ticks x panels add up
    else:
        axes[0][0].text(0.5, 0.5, "no latency data", transform=axes[0][0].transAxes, ha="center", color="#5f6368")
    handles = [Line2D([], [], color=c, ls=s, lw=w) for _, _, c, s, w in PERCENTILES]
    fig.legend(handles, [label for _, label, *_ in PERCENTILES], loc="outside upper right", ncols=3)
    fig.supxlabel("seconds since the load started", fontsize=9, color="#5f6368")
    fig.supylabel("latency (log scale)", fontsize=9, color="#5f6368")
    return _svg(fig, f"latency percentiles per action, {run['test']}")


def _rate_svg(run: Run, grid: _Grid, actions: list[str], colours: Mapping[str, str], *, errors: bool) -> str:
    fig = _new_figure(3.5)
    ax = fig.add_subplot()
    drawn = 0
    top = 0.0
    for action in actions:
        rate = grid.rate.get(action)
        if rate is None:
            continue
        colour = colours.get(action, "#333")
        lines: list[tuple[list[float], str, dict[str, Any]]] = []
        if not errors:
            lines.append((rate["count"], action, {"lw": 1.4}))
        else:
            lines.append((rate["errors"], f"{action} errors", {"lw": 1.4, "ds": "steps-mid"}))
            lines.append((rate["queued"], f"{action} queued (202)", {"lw": 1.2, "ls": "--", "ds": "steps-mid"}))
        for values, label, style in lines:
            if errors and not any(values):
                continue
            ax.plot(grid.x, values, color=colour, label=label, **style)
            top = max(top, max(values))
            drawn += 1
    _overlay(ax, run, grid.end, labels="full")
    ax.set_ylim(0, top * (1.12 + 0.1 * len(run["faults"])) or 1)  # headroom for the fault labels
    if errors and not drawn:
        ax.set_ylim(0, 1)
        ax.text(0.5, 0.5, "no errors and nothing queued", transform=ax.transAxes, ha="center", va="center", color=PASS_COLOUR)
    ax.set_ylabel("errors / queued per second" if errors else "requests per second")
    ax.set_xlabel("seconds since the load started", color="#5f6368")
    if drawn:
        fig.legend(loc="outside upper center", ncols=min(drawn, 8))
    what = "errors per second per action" if errors else "throughput per action"
    return _svg(fig, f"{what}, {run['test']}")


def _comparison_svg(runs: Sequence[Run]) -> str:
    from matplotlib.patches import Patch

    fig = _new_figure(1.0 + 0.42 * len(runs))
    ax = fig.add_subplot()
    labels = [_short(f"#{i + 1} {r['profile']} · {_short_test(str(r['test']))}", 60) for i, r in enumerate(runs)]
    values = [float(r["legacy_calls_per_session"] or 0.0) for r in runs]
    colours = [PASS_COLOUR if r["passed"] else FAIL_COLOUR for r in runs]
    y = list(range(len(runs)))
    ax.set_axisbelow(True)
    ax.barh(y, values, color=colours, height=0.6, alpha=0.85)
    ax.set_yticks(y, labels)
    ax.invert_yaxis()
    top = max(values, default=0.0) or 1.0
    for yi, v, r in zip(y, values, runs):
        text = "n/a" if r["legacy_calls_per_session"] is None else f"{v:.2f}"
        ax.text(v + top * 0.01, yi, text, va="center", fontsize=8, color="#333")
    ax.set_xlim(0, top * 1.12)
    ax.grid(axis="y", visible=False)
    ax.set_xlabel("legacy calls per session")
    fig.legend(handles=[Patch(color=PASS_COLOUR), Patch(color=FAIL_COLOUR)], labels=["passed", "failed"],
               loc="outside upper right", ncols=2)
    return _svg(fig, "legacy calls per session, per run")


def _draw(fn: Any, *args: Any, **kwargs: Any) -> str:
    import matplotlib

    with matplotlib.rc_context(cast(Any, MPL_RC)):  # the stubs want literal keys
        return str(fn(*args, **kwargs))


# --------------------------------------------------------------------------- HTML


CSS = """
:root{--fg:#202124;--muted:#5f6368;--line:#dadce0;--bg:#f4f5f7;--card:#fff;--pass:#2e7d32;--fail:#c62828;--nm:#8a5a00;--nmbg:#fff3d6;
--passbg:#e8f5e9;--failbg:#fdecea;--warnbg:#fff4e5}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--fg);font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",Arial,sans-serif}
main{max-width:1180px;margin:0 auto;padding:24px 20px 48px}
h1{font-size:22px;margin:0 0 4px}
h2{font-size:17px;margin:0;word-break:break-all;font-family:ui-monospace,"DejaVu Sans Mono",Menlo,Consolas,monospace;font-weight:600}
h3{font-size:15px;margin:22px 0 8px;color:#3c4043}
.sub{color:var(--muted);margin:0 0 18px}
.card{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:18px 22px;margin:18px 0;box-shadow:0 1px 2px rgba(0,0,0,.04)}
.runhead{display:flex;gap:14px;align-items:flex-start;justify-content:space-between}
.badge{display:inline-block;padding:3px 10px;border-radius:4px;font-weight:700;font-size:13px;letter-spacing:.04em;color:#fff;white-space:nowrap}
.badge.pass{background:var(--pass)}.badge.fail{background:var(--fail)}
.meta{display:flex;flex-wrap:wrap;gap:6px 22px;margin:10px 0 0;padding:0;color:var(--muted)}
.meta div{white-space:nowrap}.meta b{color:var(--fg);font-weight:600}
table{border-collapse:collapse;width:100%;font-size:13px;margin:4px 0}td a{overflow-wrap:anywhere}
th,td{padding:5px 9px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
th{background:#f8f9fa;color:#3c4043;font-weight:600;border-bottom:2px solid var(--line)}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tr.fail td{background:var(--failbg)}tr.nm td{background:var(--nmbg)}
.nm{color:var(--nm);font-weight:700;white-space:nowrap}.badge.nm{background:var(--nm);color:#fff}
.ok{color:var(--pass);font-weight:700;white-space:nowrap}.bad{color:var(--fail);font-weight:700;white-space:nowrap}
.small{font-size:12px;color:var(--muted)}
.dot{display:inline-block;width:10px;height:10px;border-radius:50%;margin-right:6px;vertical-align:baseline}
.sw{display:inline-block;width:14px;height:10px;margin-right:6px;opacity:.55;vertical-align:baseline}
pre.failure{background:var(--failbg);border-left:4px solid var(--fail);padding:10px 12px;margin:14px 0 0;overflow-x:auto;
font:12px/1.4 ui-monospace,"DejaVu Sans Mono",Menlo,Consolas,monospace;white-space:pre-wrap}
ul.facts{list-style:none;padding:0;margin:6px 0}ul.facts li{margin:3px 0}
.tag{display:inline-block;font-size:11px;padding:0 5px;border-radius:3px;background:#eef1f6;color:#3c4043;margin-left:4px}
.plotbox{margin:8px 0 4px}
.plotbox h4{margin:14px 0 2px;font-size:13px;color:#3c4043}
svg.plot{display:block;width:100%;height:auto}
details summary{cursor:pointer;color:var(--muted);margin:8px 0}
.note{background:var(--warnbg);padding:8px 12px;border-radius:4px}
a{color:#1a56c4;text-decoration:none}a:hover{text-decoration:underline}
footer{color:var(--muted);font-size:12px;text-align:center;margin-top:28px}
"""


def _badge(passed: bool) -> str:
    return '<span class="badge pass">PASSED</span>' if passed else '<span class="badge fail">FAILED</span>'


def _table(head: Iterable[tuple[str, str]], rows: Iterable[str]) -> str:
    cols = "".join(f'<th class="{cls}">{label}</th>' if cls else f"<th>{label}</th>" for label, cls in head)
    return f"<table><thead><tr>{cols}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _checks_table(run: Run) -> str:
    checks = run["checks"]
    if not checks:
        return '<p class="small">No checks ran.</p>'
    with_detail = any(c.get("detail") for c in checks)
    head = [("check", ""), ("phase", ""), ("expected", ""), ("measured", ""), ("result", "")]
    if with_detail:
        head.append(("detail", ""))
    rows = []
    for c in checks:
        outcome = c.get("outcome") or ("pass" if c["passed"] else "fail")
        if outcome == "not measured":
            # its own colour and word: never shown as a pass (it fails a strict run)
            word = "? not measured" + ("" if c["passed"] else " (fails: strict)")
            result, cls = f'<span class="nm" data-outcome="not-measured">{_e(word)}</span>', "nm"
        elif outcome == "pass":
            result, cls = '<span class="ok" data-outcome="pass">✔ pass</span>', "pass"
        else:
            result, cls = '<span class="bad" data-outcome="fail">✘ FAIL</span>', "fail"
        measured = c["measured"]
        if outcome == "not measured" and c.get("reason") and c.get("reason") not in measured:
            measured = f"{measured} ({c['reason']})"
        cells = [f"<td><b>{_e(c['name'])}</b></td>", f"<td>{_e(c['phase'])}</td>", f"<td>{_e(c['expected'])}</td>",
                 f"<td>{_e(measured)}</td>", f"<td>{result}</td>"]
        if with_detail:
            cells.append(f'<td class="small">{_e(c.get("detail", ""))}</td>')
        rows.append(f'<tr class="{cls}">{"".join(cells)}</tr>')
    return _table(head, rows)


def _actions_table(run: Run, actions: list[str], colours: Mapping[str, str]) -> str:
    stats: Mapping[str, Mapping[str, Any]] = run["actions"]
    legacy = set(run["legacy_actions"])
    rows = []
    for name in actions:
        s = stats.get(name)
        if s is None:
            continue
        kinds = " · ".join(f"{_e(k)} {_num(v)}" for k, v in sorted(s["errors_by_kind"].items()) if v)
        classes = " · ".join(f"{_e(k)} {_num(v)}" for k, v in sorted(s["status_classes"].items()) if v)
        tag = '<span class="tag">legacy</span>' if name in legacy else ""
        err_cls = "n bad" if s["errors"] else "n"
        rows.append(
            f'<tr><td><span class="dot" style="background:{colours.get(name, "#333")}"></span>{_e(name)}{tag}</td>'
            f'<td class="n">{_num(s["count"])}</td><td class="{err_cls}">{_num(s["errors"])}</td>'
            f'<td class="n">{_pct(s["errors"], s["count"])}</td><td class="n">{_num(s["queued"])}</td>'
            f'<td class="n">{_ms(s["p50_ms"])}</td><td class="n">{_ms(s["p95_ms"])}</td><td class="n">{_ms(s["p99_ms"])}</td>'
            f'<td class="n">{_ms(s["max_ms"])}</td><td class="small">{kinds or "—"}</td><td class="small">{classes or "—"}</td></tr>'
        )
    if not rows:
        return '<p class="small">No actions recorded.</p>'
    head = [("action", ""), ("count", "n"), ("errors", "n"), ("error %", "n"), ("queued", "n"), ("p50 ms", "n"),
            ("p95 ms", "n"), ("p99 ms", "n"), ("max ms", "n"), ("errors by kind", ""), ("status classes", "")]
    return _table(head, rows)


def _facts(run: Run) -> str:
    s = run["sessions"]
    items = [
        f"<li><b>Sessions</b>: {_num(s['arrived'])} arrived · {_num(s['started'])} started · {_num(s['completed'])} completed"
        f" · {_num(s['abandoned'])} abandoned · {_num(s['refused_by_cap'])} refused by the concurrency cap"
        f" · {_num(run['requests'])} requests</li>"
    ]
    lcs = run["legacy_calls_per_session"]
    legacy_actions = ", ".join(_e(a) for a in run["legacy_actions"]) or "none"
    line = f"<li><b>Legacy calls per session</b>: {_num(lcs, 2)} <span class='small'>(legacy-bound actions: {legacy_actions})</span>"
    legacy = run["legacy"]
    if legacy is not None:
        line += (f" · legacy received {_num(legacy['calls'])} calls,"
                 f" {_num(legacy['calls_per_legacy_action'], 2)} per legacy-bound action")
    items.append(line + "</li>")
    ledger = run["ledger"]
    if ledger is None:
        items.append("<li><b>Ledger</b>: <span class='small'>no ledger for this stack</span></li>")
    else:
        bad = ledger["missing"] or ledger["duplicated"]
        mark = '<span class="bad">✘</span>' if bad else '<span class="ok">✔</span>'
        items.append(
            f"<li><b>Ledger</b>: {mark} {_num(ledger['acknowledged'])} acknowledged · {_num(ledger['found'])} found"
            f" · {_num(ledger['missing'])} missing · {_num(ledger['duplicated'])} duplicated</li>"
        )
    return f'<ul class="facts">{"".join(items)}</ul>'


def _faults(run: Run) -> str:
    faults = run["faults"]
    duration = float(run["duration_s"])
    if not faults:
        body = '<p class="small">No faults were injected.</p>'
    else:
        rows = []
        for i, f in enumerate(faults):
            start, end = _fault_window(f, duration)
            colour = FAULT_COLOURS[i % len(FAULT_COLOURS)]
            rows.append(f'<li><span class="sw" style="background:{colour}"></span><b>{_e(f["kind"])}</b>: {_e(f["describe"])}'
                        f' <span class="small">({_secs(start)} s → {_secs(end)} s)</span></li>')
        body = f'<ul class="facts">{"".join(rows)}</ul>'
    events = run["fault_events"]
    if events:
        rows = [f'<tr><td class="n">{float(ev["t"]):.3f}</td><td>{_e(ev["action"])}</td><td>{_e(ev["fault"])}</td>'
                f'<td>{_e(ev["via"]) or "—"}</td></tr>' for ev in events]
        body += (f"<details><summary>Fault events ({len(events)})</summary>"
                 + _table([("t (s)", "n"), ("event", ""), ("fault", ""), ("via", "")], rows) + "</details>")
    return body


def _plots(run: Run, actions: list[str], colours: Mapping[str, str], with_plots: bool) -> str:
    if not with_plots:
        return '<p class="note">Plots need matplotlib: <code>pip install "pytest-peakchaos[report]"</code>.</p>'
    if not any(run["series"].values()):
        return '<p class="small">No per-second series in this run.</p>'
    grid = _Grid(run)
    parts = [
        ("Latency percentiles per action (p50 / p95 / p99, log scale)", _draw(_latency_svg, run, grid, actions, colours)),
        ("Throughput per action (requests per second)", _draw(_rate_svg, run, grid, actions, colours, errors=False)),
        ("Errors per second per action (dashed: answers queued with 202)", _draw(_rate_svg, run, grid, actions, colours, errors=True)),
    ]
    note = ""
    if grid.width > 1:
        note = (f'<p class="small">Long run: points are {grid.width}-second buckets (rates averaged,'
                " percentiles the worst second of the bucket).</p>")
    figs = "".join(f'<div class="plotbox"><h4>{_e(title)}</h4>{svg}</div>' for title, svg in parts)
    return (note + figs + '<p class="small">Shaded: fault windows (labelled). Dashed vertical lines: phase boundaries'
            f" ({_phases_text(run)}).</p>")


def _phases_text(run: Run) -> str:
    return " · ".join(f"{_e(p['name'])} {_secs(p['start'])}–{_secs(p['end'])} s" for p in run["phases"]) or "none"


def _run_section(index: int, run: Run, colours: Mapping[str, str], with_plots: bool) -> str:
    actions = _action_order(run)
    meta = [
        ("profile", _e(run["profile"])), ("seed", _e(run["seed"])), ("scale", _scale(run)),
        ("duration", f"{_secs(run['duration_s'])} s"), ("requests", _num(run["requests"])), ("phases", _phases_text(run)),
    ]
    stack = run.get("stack")
    if stack:
        if isinstance(stack, Mapping):
            where = stack.get("file") or stack.get("project") or "?"
            extra = ", ".join(str(stack[k]) for k in ("backend", "run_id") if stack.get(k))
            meta.append(("stack", _e(f"{where} ({extra})" if extra else where)))
        else:
            meta.append(("stack", _e(str(stack))))
    meta_html = "".join(f"<div>{k} <b>{v}</b></div>" for k, v in meta)
    failure = f'<pre class="failure">{_e(run["failure"])}</pre>' if run["failure"] else ""
    if run.get("warning"):
        failure += f'<p class="note nmwarn">{_e(run["warning"])}</p>'
    return (
        f'<section class="card run" id="run-{index}">'
        f'<div class="runhead"><h2>#{index} {_e(run["test"])}</h2>{_badge(bool(run["passed"]))}</div>'
        f'<div class="meta">{meta_html}</div>{failure}'
        f"<h3>Checks</h3>{_checks_table(run)}"
        f"<h3>Sessions, legacy, ledger</h3>{_facts(run)}"
        f"<h3>Faults</h3>{_faults(run)}"
        f"<h3>Actions</h3>{_actions_table(run, actions, colours)}"
        f"<h3>Over time</h3>{_plots(run, actions, colours, with_plots)}"
        "</section>"
    )


def _overview(runs: Sequence[Run], with_plots: bool) -> str:
    rows = []
    for i, r in enumerate(runs, 1):
        phases_of: dict[str, list[str]] = {}
        for c in r["checks"]:
            if not c["passed"]:
                label = str(c["phase"]) + (": not measured" if c.get("outcome") == "not measured" else "")
                phases_of.setdefault(str(c["name"]), []).append(label)
        failed = [f"{name} ({', '.join(ph)})" for name, ph in phases_of.items()]
        rows.append(
            f'<tr class="{"pass" if r["passed"] else "fail"}"><td class="n">{i}</td>'
            f'<td><a href="#run-{i}">{_e(_short(_short_test(str(r["test"])), 80))}</a></td>'
            f'<td>{_e(r["profile"])}</td><td class="n">{_e(r["seed"])}</td><td class="n">{_scale(r)}</td>'
            f'<td class="n">{_num(r["sessions"]["started"])}</td><td class="n">{_num(r["requests"])}</td>'
            f'<td class="n">{_num(r["legacy_calls_per_session"], 2)}</td><td>{_badge(bool(r["passed"]))}</td>'
            f'<td class="small">{_e(", ".join(failed)) or "—"}</td></tr>'
        )
    head = [("#", "n"), ("test", ""), ("profile", ""), ("seed", "n"), ("scale", "n"), ("sessions", "n"),
            ("requests", "n"), ("legacy calls / session", "n"), ("result", ""), ("failed checks", "")]
    chart = ""
    if len(runs) > 1:
        if with_plots:
            chart = ('<div class="plotbox"><h4>Legacy calls per session, per run</h4>'
                     + _draw(_comparison_svg, runs)
                     + '<p class="small">Legacy-bound requests per started session. Between runs at the same'
                     " session arrival rate, a higher bar means each shopper puts more load on legacy (sale-day"
                     " cart churn: the Double-11 lesson).</p></div>")
        title = "Comparison"
    else:
        title = "Run"
    return f'<section class="card"><h3 style="margin-top:0">{title}</h3>{_table(head, rows)}{chart}</section>'


def render_html(document: Mapping[str, Any]) -> str:
    """The report page as text (the document is validated first; ``peakchaos/1`` is upgraded)."""
    document = upgrade(document)
    ensure_valid(document, "peakchaos report")
    runs: Sequence[Run] = document["runs"]
    with_plots = matplotlib_available()
    colours = action_colours(document)
    passed = sum(1 for r in runs if r["passed"])
    summary = f"{len(runs)} run{'s' if len(runs) != 1 else ''}: {passed} passed, {len(runs) - passed} failed"
    body = [
        f"<h1>pytest-peakchaos report</h1><p class='sub'>{_e(summary)} · generated {_e(document['generated_at'])}"
        f" · pytest-peakchaos {_e(document['peakchaos_version'])}</p>",
    ]
    if runs:
        body.append(_overview(runs, with_plots))
    elif not document.get("headroom"):
        body.append('<section class="card"><p>No experiments ran.</p></section>')
    from .headroom import headroom_html

    body.append(headroom_html(document, _draw if with_plots else None))
    body.extend(_run_section(i, run, colours, with_plots) for i, run in enumerate(runs, 1))
    body.append(proof_section(document))
    body.append(f"<footer>schema {_e(SCHEMA_ID)} · the same data is in peakchaos.json</footer>")
    page = (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>peakchaos report — {_e(summary)}</title><style>{CSS}</style></head>\n"
        f"<body><main>\n{''.join(body)}\n</main></body></html>\n"
    )
    return _number_svgs(page)


def write_html(document: Mapping[str, Any], path: str | os.PathLike[str]) -> Path:
    """Validate ``document`` and write the self-contained report page to ``path``; returns the path."""
    target = Path(path)
    atomic_write_text(target, render_html(document))
    return target
