"""The calibration report: one self-contained HTML page (inline CSS, inline SVG from matplotlib,
no JavaScript, no external URL): what was measured, the lines dropped with examples, the
transition matrix as a heat map, the think-time fit per state (histogram + fitted densities +
AIC), the arrival curve, and behaviour mixes when asked for."""

from __future__ import annotations

import io
import math
import re
from html import escape
from typing import TYPE_CHECKING, Any

from .core import Calibration

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

__all__ = ["render_calibration_html"]

_CSS = """
body{font-family:'DejaVu Sans',Arial,sans-serif;margin:24px;color:#202124;max-width:1200px}
h1{font-size:22px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #dadce0}
table{border-collapse:collapse;font-size:13px;margin:8px 0}td,th{border:1px solid #dadce0;padding:3px 8px;text-align:left}
th{background:#f1f3f4}td.n{text-align:right;font-variant-numeric:tabular-nums}.warn{color:#b06000}.small{color:#5f6368;font-size:12px}
code{background:#f1f3f4;padding:0 3px}
"""


def _fig(w: float, h: float) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(w, h), dpi=72)


def _svg(fig: Figure) -> str:
    from matplotlib.backends.backend_svg import FigureCanvasSVG

    FigureCanvasSVG(fig)
    buf = io.StringIO()
    with __import__("matplotlib").rc_context({"svg.fonttype": "none", "svg.hashsalt": "peakchaos-calibrate", "font.family": "DejaVu Sans"}):
        fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    text = buf.getvalue()
    text = re.sub(r"<metadata>.*?</metadata>", "", text[text.find("<svg"):], flags=re.S)
    return re.sub(r' xmlns:(?:dc|cc|rdf)="[^"]*"', "", text)


def _heatmap(cal: Calibration) -> str:
    import numpy as np

    m = np.array(cal.matrix)
    rows, cols = cal.rows, cal.cols
    fig = _fig(max(5.0, 0.55 * len(cols) + 2.5), max(3.5, 0.42 * len(rows) + 1.8))
    ax = fig.add_subplot(1, 1, 1)
    im = ax.imshow(m, cmap="Blues", vmin=0.0, vmax=1.0, aspect="auto")
    ax.set_xticks(range(len(cols)), [c[:18] for c in cols], rotation=60, ha="right")
    ax.set_yticks(range(len(rows)), [r[:18] for r in rows])
    ax.set_xlabel("to")
    ax.set_ylabel("from")
    ax.grid(False)
    if len(rows) * len(cols) <= 900:
        for i in range(len(rows)):
            for j in range(len(cols)):
                if m[i, j] >= 0.005:
                    ax.text(j, i, f"{m[i, j]:.2f}", ha="center", va="center", fontsize=7, color="white" if m[i, j] > 0.55 else "#202124")
    fig.colorbar(im, ax=ax, fraction=0.04, label="P(from → to)")
    ax.set_title("Transition matrix (rows sum to 1)")
    return _svg(fig)


def _think_plots(cal: Calibration, samples: dict[str, list[float]] | None) -> str:
    import numpy as np
    from scipy import stats

    states = [s for s in cal.states if s in cal.think and cal.think[s].chosen is not None]
    if not states:
        return "<p class='small'>no think times observed (every session had one request)</p>"
    cols = 3
    nrows = math.ceil(len(states) / cols)
    fig = _fig(11.0, 2.6 * nrows)
    for k, s in enumerate(states):
        f = cal.think[s]
        ax = fig.add_subplot(nrows, cols, k + 1)
        cap = f.cap if math.isfinite(f.cap) else 10 * max(f.mean, 1e-3)
        hi = min(cap, max(f.mean * 6, 1e-3))
        xs = np.linspace(hi / 400, hi, 200)
        if samples and s in samples and samples[s]:
            data = np.asarray(samples[s])
            ax.hist(data[data <= hi], bins=40, density=True, color="#c6dbef", label="observed")
        for fit in f.fits:
            if fit.kind == "exponential":
                ys = stats.expon.pdf(xs, scale=fit.params["mean"])
            else:
                ys = stats.lognorm.pdf(xs, fit.params["sigma"], scale=fit.params["median"])
            style = "-" if fit is f.chosen else "--"
            ax.plot(xs, ys, style, lw=1.4, label=f"{fit.kind} AIC {fit.aic:.0f}")
        ax.set_title(f"{s[:28]} (n={f.n})", fontsize=9)
        ax.set_xlabel("think time, s", fontsize=8)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return _svg(fig)


def _arrivals(cal: Calibration) -> str:
    fig = _fig(11.0, 2.8)
    ax = fig.add_subplot(1, 1, 1)
    xs = [a for a, _ in cal.levels] + [cal.span_s]
    ys = [r for _, r in cal.levels]
    ax.stairs(ys, xs, color="#4e79a7", lw=1.5, label="sessions/s (step shape)")
    ax.axhline(cal.arrival_rate, color="#e15759", ls="--", lw=1, label=f"mean {cal.arrival_rate:.3g}/s")
    ax.set_xlabel("seconds since the log's first request")
    ax.set_ylabel("sessions/s")
    ax.set_title(f"Arrivals: peak-to-mean {cal.peak_to_mean:.2f}")
    ax.legend()
    return _svg(fig)


def _table(head: list[str], rows: list[list[Any]]) -> str:
    h = "".join(f"<th>{escape(x)}</th>" for x in head)
    body = "".join(
        "<tr>" + "".join(f"<td class='n'>{escape(str(c))}</td>" if isinstance(c, (int, float)) else f"<td>{escape(str(c))}</td>" for c in r) + "</tr>"
        for r in rows
    )
    return f"<table><tr>{h}</tr>{body}</table>"


def render_calibration_html(cal: Calibration) -> str:
    """The whole page as text (render first, write after: see ``output.write_outputs``)."""
    try:
        import matplotlib  # noqa: F401

        plots = True
    except ImportError:
        plots = False
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>peakchaos calibration: {escape(cal.name)}</title><style>{_CSS}</style></head><body>"]
    parts.append(f"<h1>Calibration: {escape(cal.name)}</h1><p>{escape(cal.summary())}</p>")
    facts: list[list[Any]] = [
        ["logs", ", ".join(cal.sources)],
        ["lines read", cal.lines],
        ["requests used", cal.requests],
        ["sessions", f"{cal.sessions} (by {cal.session_key}; inactivity timeout {cal.timeout_s:g} s; {cal.split_by_timeout} split by it)"],
        ["time span", f"{cal.span_s:.1f} s"],
        ["arrivals", f"{cal.arrival_rate:.4g} sessions/s mean, peak-to-mean {cal.peak_to_mean:.3f}"],
        ["edges not counted", f"entry of {cal.edge_sessions_left} sessions near the start; {cal.edge_steps_right} steps near the end"],
    ]
    parts.append(_table(["measured", "value"], facts))
    parts.append("<h2>Dropped lines</h2>")
    if cal.dropped:
        parts.append(_table(["reason", "lines", "example"], [[r, n, cal.dropped_examples.get(r, "")] for r, n in cal.dropped.items()]))
    else:
        parts.append("<p>none</p>")
    if cal.warnings:
        parts.append("<ul>" + "".join(f"<li class='warn'>{escape(w)}</li>" for w in cal.warnings) + "</ul>")
    parts.append("<h2>States</h2>")
    parts.append(_table(["state", "method", "path template", "visits"], [[s, *cal.bindings[s], cal.visits.get(s, 0)] for s in cal.states]))
    parts.append("<h2>Transition matrix</h2>")
    parts.append(_heatmap(cal) if plots else "<p class='small'>matplotlib is not installed: no plots</p>")
    parts.append("<h2>Think times</h2>")
    fit_rows = []
    for s, f in cal.think.items():
        for fit in f.fits:
            params = ", ".join(f"{k} {v:.4g}" for k, v in fit.params.items())
            fit_rows.append([s, f.n, f"{f.mean:.4g}", f"{f.cap:.4g}", f.censored, fit.kind, params, f"{fit.aic:.1f}", "chosen" if fit is f.chosen else ""])
    parts.append(_table(["state", "n", "observed mean s", "cap s", "at cap", "fit", "parameters", "AIC", ""], fit_rows))
    if plots:
        parts.append(_think_plots(cal, cal.think_samples))
    parts.append("<h2>Arrival curve</h2>")
    if plots:
        parts.append(_arrivals(cal))
    if cal.mixes:
        parts.append("<h2>Behaviour mixes</h2>")
        if cal.mix_criterion:
            parts.append(_table(["k", "held-out log-likelihood"], [[t["k"], t["heldout_loglik"]] for t in cal.mix_criterion]))
        parts.append(_table(["group", "share of sessions", "sessions in sample", "mean length"],
                            [[i + 1, f"{m['share']:.1%}", m["sessions"], f"{m['mean_length']:.2f}"] for i, m in enumerate(cal.mixes)]))
    parts.append("</body></html>\n")
    return "".join(parts)
