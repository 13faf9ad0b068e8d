"""From access logs to a measured behaviour: the calibration pipeline and its result."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .fit import ThinkFit, fit_think
from .logs import CalibrationError, JsonFields, LineErrors, read_hits
from .routes import AutoTemplater, RouteMap, state_name
from .sessions import ENTRY, EXIT, OTHER, Observed, Sessioniser

__all__ = ["Calibration", "calibrate", "DEFAULT_EXCLUDE", "require_numeric"]

#: Requests for static assets are not shopper actions (drop them with ``exclude=None`` to keep them).
DEFAULT_EXCLUDE = r"\.(?:css|js|mjs|map|png|jpe?g|gif|svg|ico|webp|avif|woff2?|ttf|eot|otf)(?:\?|$)"
_NICE = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)


def require_numeric() -> None:
    """numpy + scipy, or a clear error saying how to get them."""
    try:
        import numpy  # noqa: F401
        import scipy  # noqa: F401
    except ImportError as exc:
        raise CalibrationError(
            f"calibration needs numpy and scipy ({exc}); install them with: pip install 'pytest-peakchaos[calibrate]'"
        ) from None


@dataclass
class Calibration:
    """A measured behaviour. ``states`` in order of visits; ``matrix[i][j]`` over rows
    ``["entry", *states]`` and columns ``[*states, "exit"]``; ``counts`` the same, observed."""

    name: str
    sources: list[str]
    states: list[str]
    bindings: dict[str, tuple[str, str]]  # state -> (method, path template)
    visits: dict[str, int]
    counts: list[list[int]]
    matrix: list[list[float]]
    think: dict[str, ThinkFit]
    levels: list[tuple[float, float]]  # arrival step shape: (at seconds, sessions/s)
    span_s: float
    arrival_window_s: float  # first to last session start
    sessions: int
    requests: int
    lines: int
    dropped: dict[str, int]
    dropped_examples: dict[str, str]
    t_first: float
    t_last: float
    timeout_s: float
    session_key: str
    edge_sessions_left: int
    edge_steps_right: int
    split_by_timeout: int
    warnings: list[str] = field(default_factory=list)
    mixes: list[dict[str, Any]] = field(default_factory=list)
    mix_criterion: list[dict[str, float]] = field(default_factory=list)
    think_samples: dict[str, list[float]] = field(default_factory=dict)  # up to 2000 per state, for plots

    @property
    def rows(self) -> list[str]:
        return ["entry", *self.states]

    @property
    def cols(self) -> list[str]:
        return [*self.states, "exit"]

    @property
    def arrival_rate(self) -> float:
        """Mean sessions/s: ``sessions - 1`` arrivals between the first and the last session start
        (a log's tail, where the last sessions play out, adds no arrivals)."""
        window = self.arrival_window_s
        if window > 0 and self.sessions > 1:
            return (self.sessions - 1) / window
        return self.sessions / self.span_s if self.span_s > 0 else 0.0

    @property
    def peak_to_mean(self) -> float:
        mean = self.arrival_rate
        return max((r for _, r in self.levels), default=0.0) / mean if mean > 0 else 0.0

    def probability(self, frm: str, to: str) -> float:
        return self.matrix[self.rows.index(frm)][self.cols.index(to)]

    def count(self, frm: str, to: str) -> int:
        return self.counts[self.rows.index(frm)][self.cols.index(to)]

    def transitions(self) -> dict[str, dict[str, float]]:
        """Rows as ``{from: {to: p}}`` with zero entries left out (each row sums to 1)."""
        out: dict[str, dict[str, float]] = {}
        for i, r in enumerate(self.rows):
            out[r] = {c: p for c, p in zip(self.cols, self.matrix[i]) if p > 0}
        return out

    def summary(self) -> str:
        dropped = sum(self.dropped.values())
        return (
            f"{self.lines} lines, {self.requests} requests in {self.sessions} sessions over {self.span_s:.0f} s; "
            f"{len(self.states)} states; arrivals {self.arrival_rate:.3g}/s mean, peak-to-mean {self.peak_to_mean:.2f}; "
            f"{dropped} lines dropped"
        )


def _rounded_row(counts: Sequence[int]) -> list[float]:
    total = sum(counts)
    if total == 0:
        return [0.0] * (len(counts) - 1) + [1.0]
    row = [round(c / total, 4) for c in counts]
    drift = round(1.0 - sum(row), 4)
    if drift:
        i = max(range(len(row)), key=lambda j: row[j])
        row[i] = round(row[i] + drift, 4)
    return row


def _nice_width(span: float, bucket: float, max_levels: int) -> float:
    want = max(bucket, span / max_levels)
    for w in _NICE:
        if w >= want and w >= bucket:
            return float(w)
    return float(math.ceil(want / 86400) * 86400)


def _levels(obs: Observed, max_levels: int) -> tuple[list[tuple[float, float]], float]:
    span = max(obs.t_last - obs.t_first, 1e-9)
    width = _nice_width(span, obs.bucket_s, max_levels)
    per = max(1, int(round(width / obs.bucket_s)))
    counts: dict[int, int] = {}
    for b, n in obs.arrivals.items():
        counts[b // per] = counts.get(b // per, 0) + n
    n_levels = max(1, math.ceil(span / width - 1e-9))
    out = []
    for i in range(n_levels):
        at = i * width
        length = min(width, span - at)
        out.append((round(at, 3), round(counts.get(i, 0) / length, 6) if length > 0 else 0.0))
    return out, span


def _lump(obs: Observed, max_states: int) -> tuple[list[str], dict[int, int]]:
    """Keep the ``max_states`` most visited keys; the rest become ``other``. Returns the kept
    keys (by visits) and the map old index -> new index."""
    order = sorted(range(len(obs.keys)), key=lambda i: (-obs.visits[i], obs.keys[i]))
    keep = [i for i in order if obs.keys[i] != OTHER][:max_states]
    kept = set(keep)
    names = [obs.keys[i] for i in keep]
    remap = {i: n for n, i in enumerate(keep)}
    rest = [i for i in order if i not in kept]
    if rest:
        names.append(OTHER)
        for i in rest:
            remap[i] = len(names) - 1
    return names, remap


def calibrate(
    paths: Sequence[str | os.PathLike[str]] | str | os.PathLike[str],
    *,
    routes: RouteMap | str | os.PathLike[str] | dict[str, Any] | None = None,
    fmt: str = "auto",
    session_field: str = "sid",
    json_fields: JsonFields | None = None,
    timeout: float = 1800.0,
    time_is: str = "end",
    max_states: int = 40,
    exclude: str | None = DEFAULT_EXCLUDE,
    name: str = "calibrated",
    seed: int = 0,
    mixes: int | str | None = None,
    max_mixes: int = 6,
    reservoir: int = 20_000,
    use_session_id: bool = True,
    max_levels: int = 48,
) -> Calibration:
    """Measure the behaviour in the access logs ``paths`` (streamed; gzip accepted).

    ``routes``: a route map (YAML path, mapping or :class:`RouteMap`); without one, paths are
    templated automatically. ``timeout``: seconds of inactivity that end a session. ``mixes``:
    ``None`` (no mixes), a number of groups, or ``"auto"`` (chosen by held-out likelihood, up to ``max_mixes``).
    Raises :class:`CalibrationError` for bad arguments, unreadable/empty logs, an unknown format,
    a log most of whose lines cannot be read, and a route map that matches nothing.
    """
    require_numeric()
    files = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    if not files:
        raise CalibrationError("logs: give at least one access log file")
    for f in files:
        if not Path(f).is_file():
            raise CalibrationError(f"{f}: no such log file")
    if not (timeout > 0) or math.isinf(timeout):
        raise CalibrationError(f"timeout (--timeout): expected a positive duration, got {timeout!r}")
    if max_states < 1:
        raise CalibrationError(f"max_states (--max-states): expected a number >= 1, got {max_states!r}")
    if mixes is not None and mixes != "auto" and not (isinstance(mixes, int) and mixes >= 1):
        raise CalibrationError(f"mixes: expected a number of groups >= 1 or 'auto', got {mixes!r}")
    rmap: RouteMap | None
    if routes is None or isinstance(routes, RouteMap):
        rmap = routes
    elif isinstance(routes, dict):
        rmap = RouteMap.from_mapping(routes)
    else:
        rmap = RouteMap.load(routes)
    auto = AutoTemplater()
    state_of = rmap if rmap is not None else auto
    try:
        skip = re.compile(exclude) if exclude else None
    except re.error as exc:
        raise CalibrationError(f"exclude: not a regular expression ({exc})") from None
    errors = LineErrors()
    counter = [0]
    excluded = [0]
    sess = Sessioniser(state_of, timeout=timeout, reservoir=reservoir, session_reservoir=5000 if mixes else 0,
                       seed=seed, use_session_id=use_session_id)
    add = sess.add
    for hit in read_hits(files, errors, fmt=fmt, session_field=session_field, json_fields=json_fields, time_is=time_is, counter=counter):
        if skip is not None and skip.search(hit.path):
            excluded[0] += 1
            continue
        add(hit)
    obs = sess.finish()
    lines = counter[0]
    where = ", ".join(map(str, files))
    if lines == 0:
        raise CalibrationError(f"{where}: empty log: no lines to read")
    bad = errors.total
    if bad * 2 > lines:
        detail = "; ".join(f"{n} × {r} (e.g. {errors.examples[r]})" for r, n in sorted(errors.counts.items(), key=lambda kv: -kv[1]))
        raise CalibrationError(f"{where}: {bad} of {lines} lines cannot be read, most of the log: {detail}")
    if rmap is not None and obs.requests == 0 and obs.hits_unmatched:
        raise CalibrationError(
            f"{rmap.source}: the route map matches none of the {obs.hits_unmatched} requests; "
            f"routes: {', '.join((r.method + ' ' if r.method else '') + r.template for r in rmap.routes)}; "
            f"requests look like: {', '.join(obs.unmatched_examples)}"
        )
    if obs.requests == 0:
        raise CalibrationError(f"{where}: no requests left to calibrate from ({excluded[0]} static assets excluded, {bad} unreadable lines)")
    dropped = dict(errors.counts)
    examples = dict(errors.examples)
    warnings: list[str] = []
    if excluded[0]:
        dropped["static asset (exclude pattern)"] = excluded[0]
    if obs.hits_unmatched:
        dropped["no route matches"] = obs.hits_unmatched
        examples["no route matches"] = ", ".join(obs.unmatched_examples)
        warnings.append(f"{obs.hits_unmatched} requests match no route, e.g. {obs.unmatched_examples[0]}")
    for reason, n in errors.counts.items():
        warnings.append(f"{n} lines dropped: {reason}, e.g. {errors.examples[reason]}")

    names, remap = _lump(obs, max_states)
    if OTHER in names and rmap is None:
        warnings.append(f"{len(obs.keys) - max_states} rare path templates lumped into state 'other' (max_states={max_states})")
    S = len(names)
    counts = [[0] * (S + 1) for _ in range(S + 1)]
    for (frm, to), n in obs.transitions.items():
        ri = 0 if frm == ENTRY else remap[frm] + 1
        ci = S if to == EXIT else remap[to]
        counts[ri][ci] += n
    if sum(counts[0]) == 0:
        for s, n in obs.entry_left.items():
            counts[0][remap[s]] += n
        warnings.append(
            "every session began within the timeout of the log's start, so the entry row is taken from them "
            "(some may have begun before the log)"
        )
    matrix = [_rounded_row(row) for row in counts]
    for i, crow in enumerate(counts[1:]):
        if sum(crow) == 0:
            warnings.append(f"state {names[i]!r}: no decided transition out of it (only near the log's end); it exits")
    # bindings: method + template per state
    bindings: dict[str, tuple[str, str]] = {}
    display: list[str] = []
    for key in names:
        if rmap is not None:
            b = rmap.binding_of(key) if key != OTHER else None
            bindings[key] = b or ("GET", "/")
            display.append(key)
        elif key == OTHER:
            bindings[key] = ("GET", "/")
            display.append(key)
        else:
            method, _, tpl = key.partition(" ")
            q = auto.queries.get(key)
            bindings[key] = (method, tpl + (f"?{q}" if q else ""))
            display.append(state_name(method, tpl))
    # unique display names
    seen: dict[str, int] = {}
    for i, d in enumerate(display):
        n = seen.get(d, 0)
        seen[d] = n + 1
        if n:
            display[i] = f"{d}_{n + 1}"
    think: dict[str, ThinkFit] = {}
    merged: dict[int, tuple[list[float], int, float]] = {}
    for old, new in remap.items():
        ts = obs.think[old]
        cur = merged.get(new, ([], 0, 0.0))
        merged[new] = (cur[0] + ts.sample, cur[1] + ts.n, cur[2] + ts.total)
    samples: dict[str, list[float]] = {}
    for new, (sample, n, total) in merged.items():
        if n:
            think[display[new]] = fit_think(sample[: max(reservoir, 1)], n=n, total=total, timeout=timeout)
            samples[display[new]] = sample[:2000]
    levels, span = _levels(obs, max_levels)
    bindings_d = {display[i]: bindings[k] for i, k in enumerate(names)}
    visits: dict[str, int] = {}
    for old, new in remap.items():
        visits[display[new]] = visits.get(display[new], 0) + obs.visits[old]
    key_desc = f"session field {session_field!r}" if obs.with_session_id else "client address + user agent"
    if obs.with_session_id and obs.with_session_id < obs.requests:
        key_desc += f" ({obs.with_session_id} of {obs.requests} requests had it; the rest by client + agent)"
    cal = Calibration(
        name=name,
        sources=[str(f) for f in files],
        states=display,
        bindings=bindings_d,
        visits=visits,
        counts=counts,
        matrix=matrix,
        think=think,
        levels=levels,
        span_s=span,
        arrival_window_s=max(0.0, obs.last_arrival - obs.t_first),
        sessions=obs.sessions,
        requests=obs.requests,
        lines=lines,
        dropped=dropped,
        dropped_examples=examples,
        t_first=obs.t_first,
        t_last=obs.t_last,
        timeout_s=float(timeout),
        session_key=key_desc,
        edge_sessions_left=obs.edge_sessions_left,
        edge_steps_right=obs.edge_steps_right,
        split_by_timeout=obs.split_by_timeout,
        warnings=warnings,
        think_samples=samples,
    )
    if mixes is not None:
        from .mixes import cluster_sessions

        seqs = [tuple(remap[s] for s in seq) for seq in obs.session_sample]
        cal.mixes, cal.mix_criterion = cluster_sessions(seqs, S, display, mixes, max_mixes=max_mixes, seed=seed)
    return cal
