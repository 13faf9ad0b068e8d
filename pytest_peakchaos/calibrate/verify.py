"""How close a calibration came to a known model: the round-trip checks.

* every transition observed at least ``min_obs`` times is within ``abs_tol`` of the model's;
* a chi-square goodness-of-fit test of all rows together does not reject the model at ``alpha``
  (cells with an expected count below 5 are pooled per row; a count on a transition the model
  does not have fails outright);
* the fitted think-time means (of the clamped distributions) are within ``rel_tol`` of the model's;
* the mean arrival rate is within ``rate_tol`` of the model's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from .core import Calibration

__all__ = ["Recovery", "compare_to_model"]


@dataclass
class Recovery:
    worst_abs: float = 0.0
    worst_cell: str = ""
    cells_checked: int = 0
    chi2: float = 0.0
    df: int = 0
    p_value: float = 1.0
    think_errors: dict[str, float] = field(default_factory=dict)  # relative error of the mean
    rate_error: float | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def describe(self) -> str:
        think = ", ".join(f"{s} {e:+.1%}" for s, e in self.think_errors.items())
        rate = "not measured" if self.rate_error is None else f"{self.rate_error:+.2%}"
        return (f"{self.cells_checked} transitions checked, worst |diff| {self.worst_abs:.4f} ({self.worst_cell}); "
                f"chi2 {self.chi2:.1f} on {self.df} df, p={self.p_value:.3g}; think means {think or 'not measured'}; "
                f"arrival rate {rate}" + ("; PROBLEMS: " + "; ".join(self.problems) if self.problems else ""))


def compare_to_model(
    cal: Calibration,
    transitions: Mapping[str, Mapping[str, float]],
    *,
    state_of: Mapping[str, str] | None = None,
    think_means: Mapping[str, float] | None = None,
    rate: float | None = None,
    min_obs: int = 200,
    abs_tol: float = 0.03,
    alpha: float = 0.01,
    rel_tol: float = 0.10,
    rate_tol: float = 0.05,
) -> Recovery:
    """Compare ``cal`` with the model. ``state_of`` maps the model's state names to the
    calibration's (default: the same names)."""
    from scipy import stats

    name = dict(state_of or {})
    name.setdefault("entry", "entry")
    name.setdefault("exit", "exit")
    rec = Recovery()
    for frm, row in transitions.items():
        cf = name.get(frm, frm)
        if cf not in cal.rows:
            rec.problems.append(f"state {frm!r} ({cf!r}) was not recovered")
            continue
        i = cal.rows.index(cf)
        counts = cal.counts[i]
        total = sum(counts)
        model = {cal.cols.index(name.get(t, t)): p for t, p in row.items() if name.get(t, t) in cal.cols}
        missing = [t for t in row if name.get(t, t) not in cal.cols and row[t] > 0]
        if missing:
            rec.problems.append(f"{frm}: targets {missing} were not recovered")
        for j, n in enumerate(counts):
            if n and j not in model:
                rec.problems.append(f"{frm} -> {cal.cols[j]}: observed {n} times, not in the model")
        for j, p in model.items():
            if counts[j] >= min_obs:
                rec.cells_checked += 1
                d = abs(cal.matrix[i][j] - p)
                if d > rec.worst_abs:
                    rec.worst_abs, rec.worst_cell = d, f"{frm} -> {cal.cols[j]}: {cal.matrix[i][j]:.4f} vs {p:.4f} (n={counts[j]})"
                if d > abs_tol:
                    rec.problems.append(f"{frm} -> {cal.cols[j]}: {cal.matrix[i][j]:.4f} vs model {p:.4f} (n={counts[j]})")
        if total == 0:
            continue
        obs: list[float] = []
        exp: list[float] = []
        pool_o = pool_e = 0.0
        for j, p in model.items():
            e = p * total
            if e < 5:
                pool_o += counts[j]
                pool_e += e
            else:
                obs.append(counts[j])
                exp.append(e)
        if pool_e > 0:
            obs.append(pool_o)
            exp.append(pool_e)
        if len(obs) > 1:
            rec.chi2 += sum((o - e) ** 2 / e for o, e in zip(obs, exp))
            rec.df += len(obs) - 1
    if rec.df:
        rec.p_value = float(stats.chi2.sf(rec.chi2, rec.df))
        if rec.p_value < alpha:
            rec.problems.append(f"chi-square rejects the model: {rec.chi2:.1f} on {rec.df} df, p={rec.p_value:.3g} < {alpha}")
    for s, m in (think_means or {}).items():
        f = cal.think.get(name.get(s, s))
        if f is None or f.chosen is None:
            rec.problems.append(f"think time of {s!r}: not measured")
            continue
        err = f.fitted_mean / m - 1.0
        rec.think_errors[s] = err
        if abs(err) > rel_tol:
            rec.problems.append(f"think time of {s!r}: fitted mean {f.fitted_mean:.4g}s vs model {m:.4g}s ({err:+.1%})")
    if rate is not None:
        rec.rate_error = cal.arrival_rate / rate - 1.0
        if abs(rec.rate_error) > rate_tol:
            rec.problems.append(f"arrival rate {cal.arrival_rate:.4g}/s vs model {rate:.4g}/s ({rec.rate_error:+.1%})")
    return rec
