"""The calibrated profile as YAML.

One function decides the profile format (:func:`profile_document`): the states named by the log
(any names), ``behaviour.transitions`` rows from ``entry`` and every state (each sums to 1, ``exit``
a column), ``behaviour.think`` per state (fitted, ``max`` = the cap), an ``arrival`` ``step`` shape
over the log's timeline, and ``bindings`` with the observed method and path template of each
state, for the user to finish (placeholders such as ``{id}`` must become the profile's template
variables). What was measured is in a comment header and under ``sources:``.
"""

from __future__ import annotations

import math
from typing import Any

from .core import Calibration

__all__ = ["profile_document", "profile_yaml", "mix_documents", "EMIT_DRAWS"]

#: A binding whose path uses ``{sku}``, ``{page}`` or ``{query}`` declares the draw (``draw: [sku]``),
#: as the profile format expects (docs/load.md); False writes bindings without it.
EMIT_DRAWS = True
_DRAWABLE = ("sku", "page", "query")


def _secs(v: float) -> str:
    return f"{v:.6g}s"


def _binding(method: str, path: str, draws: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"method": method, "path": path}
    if draws:
        used = [v for v in _DRAWABLE if "{" + v + "}" in path]
        if used:
            out["draw"] = used
    return out


def profile_document(
    cal: Calibration, *, transitions: dict[str, dict[str, float]] | None = None, name: str | None = None, draws: bool | None = None
) -> dict[str, Any]:
    """The profile as a plain dict in the YAML profile format (docs/load.md). The only place that
    decides the format."""
    draws = EMIT_DRAWS if draws is None else draws
    think: dict[str, Any] = {}
    n_all = sum(f.n for f in cal.think.values())
    mean_all = sum(f.mean * f.n for f in cal.think.values()) / n_all if n_all else 7.0
    think["default"] = {"dist": "exponential", "mean": _secs(max(mean_all, 0.001)), "max": _secs(cal.timeout_s)}
    for state in cal.states:
        f = cal.think.get(state)
        if f is not None and f.chosen is not None:
            d = f.chosen.dist(f.cap)
            for k in ("mean", "median", "max"):
                if k in d:
                    d[k] = _secs(d[k])
            think[state] = d
    rows = transitions if transitions is not None else cal.transitions()
    mean_len = cal.requests / cal.sessions if cal.sessions else 1.0
    doc: dict[str, Any] = {
        "name": name or cal.name,
        "description": (
            f"Calibrated from {', '.join(cal.sources)}: {cal.sessions} sessions, {cal.requests} requests over "
            f"{cal.span_s:.0f} s. Bindings are the observed routes: finish them (template variables) before a run."
        ),
        "arrival": {"shape": "step", "duration": _secs(cal.span_s), "levels": [[_secs(a), r] for a, r in cal.levels]},
        "behaviour": {
            "think_scale": 1.0,
            "max_actions": int(max(200, math.ceil(20 * mean_len))),
            "think": think,
            "transitions": rows,
        },
        "bindings": {s: _binding(m, p, draws) for s, (m, p) in cal.bindings.items()},
        "sources": _sources(cal),
    }
    return doc


def _sources(cal: Calibration) -> dict[str, str]:
    dropped = ", ".join(f"{n} {r}" for r, n in cal.dropped.items()) or "none"
    fits = "; ".join(
        f"{s}: {f.chosen.kind} (n={f.n}, AIC {' vs '.join(f'{x.kind} {x.aic:.1f}' for x in f.fits)})"
        for s, f in cal.think.items() if f.chosen is not None
    )
    return {
        "calibration": (
            f"peakchaos calibrate: {cal.lines} lines, {cal.requests} requests, {cal.sessions} sessions "
            f"(by {cal.session_key}, inactivity timeout {cal.timeout_s:g} s), time span {cal.span_s:.1f} s, "
            f"{len(cal.states)} states; dropped lines: {dropped}"
        ),
        "behaviour.transitions": (
            f"Observed transition frequencies. Not counted, so the edges bias nothing: the entry of "
            f"{cal.edge_sessions_left} sessions that began within the timeout of the log's start, and "
            f"{cal.edge_steps_right} steps within the timeout of its end."
        ),
        "behaviour.think": f"Gap from a request's end to the session's next request, fitted by maximum likelihood (truncated at the timeout, censored at a cap), chosen by AIC: {fits}",
        "arrival": f"Sessions started per {cal.levels[1][0] - cal.levels[0][0] if len(cal.levels) > 1 else cal.span_s:g} s over the log; mean {cal.arrival_rate:.4g}/s, peak-to-mean {cal.peak_to_mean:.3f}",
    }


def _header(cal: Calibration) -> str:
    lines = [
        "Calibrated by `peakchaos calibrate` (pytest-peakchaos).",
        f"logs: {', '.join(cal.sources)}",
        f"lines: {cal.lines}; requests: {cal.requests}; sessions: {cal.sessions} by {cal.session_key}",
        f"time span: {cal.span_s:.1f} s; states: {len(cal.states)}; arrivals: {cal.arrival_rate:.4g}/s mean, peak-to-mean {cal.peak_to_mean:.3f}",
    ]
    if cal.dropped:
        lines.append("dropped lines: " + "; ".join(f"{n} {r}" for r, n in cal.dropped.items()))
        for r, ex in cal.dropped_examples.items():
            lines.append(f"  e.g. ({r}) {ex[:150]}")
    else:
        lines.append("dropped lines: none")
    lines.append("To do: finish the bindings (path placeholders -> template variables), mark legacy actions.")
    return "".join(f"# {ln}\n" for ln in lines)


def _dump(doc: dict[str, Any]) -> str:
    import yaml

    text: str = yaml.safe_dump(doc, sort_keys=False, default_flow_style=None, width=140, allow_unicode=True)
    return text


def profile_yaml(cal: Calibration, **kw: Any) -> str:
    """The profile YAML text: a comment header of what was measured, then the document."""
    return _header(cal) + _dump(profile_document(cal, **kw))


def mix_documents(cal: Calibration) -> list[tuple[float, str]]:
    """One profile YAML per behaviour mix group: ``(share of sessions, text)``."""
    out = []
    for i, mix in enumerate(cal.mixes):
        head = _header(cal) + f"# behaviour mix {i + 1} of {len(cal.mixes)}: {mix['share']:.1%} of sessions ({mix['sessions']} in the sample)\n"
        doc = profile_document(cal, transitions=mix["transitions"], name=f"{cal.name}-mix{i + 1}")
        doc["arrival"]["levels"] = [[a, round(r * mix["share"], 6)] for a, r in doc["arrival"]["levels"]]
        doc["sources"]["behaviour mix"] = f"group {i + 1} of {len(cal.mixes)} (k-means on visit shares, k chosen by {mix['criterion']}); arrivals scaled by its share"
        out.append((float(mix["share"]), head + _dump(doc)))
    return out
