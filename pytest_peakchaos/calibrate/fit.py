"""Think-time fits: exponential and lognormal by maximum likelihood, chosen by AIC.

The observations are gaps shorter than the session timeout (longer gaps end a session), so the
likelihood is *truncated* at the timeout. A load generator or a UI that caps think times (TPC-W's
70 s, the engine's ``max``) piles observations up at the cap: when at least 0.5 % of the samples
(and 5) sit within 20 ms (or 2 %) of the largest value, the samples from there on are treated as
*censored* at the cap (known to be >= it).
The chosen distribution is given with the cap as its ``max``, as the profile's ``Dist`` clamps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Fit", "ThinkFit", "fit_think"]


@dataclass(frozen=True)
class Fit:
    kind: str  # exponential | lognormal
    params: dict[str, float]  # mean | median, sigma
    loglik: float
    aic: float

    def dist(self, cap: float) -> dict[str, Any]:
        out: dict[str, Any] = {"dist": self.kind}
        if self.kind == "exponential":
            out["mean"] = _round(self.params["mean"])
        else:
            out["median"] = _round(self.params["median"])
            out["sigma"] = round(self.params["sigma"], 4)
        if math.isfinite(cap):
            out["max"] = _round(cap)
        return out


@dataclass(frozen=True)
class ThinkFit:
    n: int
    mean: float  # observed mean gap
    cap: float  # clamp / truncation point
    censored: int  # samples at the cap
    chosen: Fit | None
    fits: tuple[Fit, ...] = field(default_factory=tuple)

    @property
    def fitted_mean(self) -> float:
        """Mean of the chosen distribution clamped at ``cap`` (what the engine would sample)."""
        if self.chosen is None:
            return self.mean
        return clamped_mean(self.chosen, self.cap)


def _round(v: float) -> float:
    return float(f"{v:.4g}")


def clamped_mean(f: Fit, cap: float) -> float:
    """E[min(X, cap)]."""
    from scipy import stats

    if f.kind == "exponential":
        m = f.params["mean"]
        return m * (1 - math.exp(-cap / m)) if math.isfinite(cap) else m
    mu, s = math.log(f.params["median"]), f.params["sigma"]
    if not math.isfinite(cap):
        return math.exp(mu + s * s / 2)
    z = (math.log(cap) - mu) / s
    # E[X; X<c] + c P(X>=c)
    part = math.exp(mu + s * s / 2) * float(stats.norm.cdf(z - s))
    return part + cap * float(stats.norm.sf(z))


def fit_think(sample: list[float], *, n: int, total: float, timeout: float, resolution: float = 0.001) -> ThinkFit:
    """Fit the gaps in ``sample`` (a reservoir of the ``n`` seen, summing to ``total``)."""
    import numpy as np
    from scipy import optimize, stats

    mean_obs = total / n if n else 0.0
    x = np.asarray(sample, dtype=float)
    x = x[np.isfinite(x)]
    if len(x) < 2:
        return ThinkFit(n, mean_obs, timeout, 0, None)
    x = np.maximum(x, resolution / 2)  # zero gaps (same millisecond) are below the clock's resolution
    top = float(x.max())
    # A cap shows as a point mass at the largest values: many samples within a window that a
    # continuous tail fills with about window/mean of them. The window allows for a load
    # generator's loop lag and a log's clock resolution; the cap is the cluster's 10th percentile.
    window = max(0.02, 0.02 * top)
    at_top = x >= top - window
    k = int(at_top.sum())
    if k >= 5 and k >= 0.005 * len(x) and top < timeout:
        cap = float(np.percentile(x[at_top], 10))
        cens = x >= cap
        trunc = math.inf
    else:
        cap = timeout
        cens = np.zeros(len(x), dtype=bool)
        trunc = timeout
    xu = x[~cens]
    nc = int(cens.sum())
    if len(xu) < 2:
        return ThinkFit(n, mean_obs, cap, nc, None)

    def ll_exp(m: float) -> float:
        ll = float(stats.expon.logpdf(xu, scale=m).sum())
        if nc:
            ll += nc * float(stats.expon.logsf(cap, scale=m))
        if math.isfinite(trunc):
            ll -= len(x) * float(stats.expon.logcdf(trunc, scale=m))
        return ll

    def ll_logn(mu: float, s: float) -> float:
        ll = float(stats.lognorm.logpdf(xu, s, scale=math.exp(mu)).sum())
        if nc:
            ll += nc * float(stats.lognorm.logsf(cap, s, scale=math.exp(mu)))
        if math.isfinite(trunc):
            ll -= len(x) * float(stats.lognorm.logcdf(trunc, s, scale=math.exp(mu)))
        return ll

    fits: list[Fit] = []
    # exponential: closed form when only censored, else 1-d search around it
    m0 = float((xu.sum() + nc * cap) / len(xu))
    if math.isfinite(trunc):
        r = optimize.minimize_scalar(lambda lm: -ll_exp(math.exp(lm)), bounds=(math.log(m0) - 5, math.log(m0) + 5), method="bounded")
        m_hat = math.exp(float(r.x))
    else:
        m_hat = m0
    le = ll_exp(m_hat)
    fits.append(Fit("exponential", {"mean": m_hat}, le, 2 * 1 - 2 * le))
    lx = np.log(xu)
    start = np.array([float(lx.mean()), math.log(max(float(lx.std()), 1e-3))])
    r2 = optimize.minimize(lambda v: -ll_logn(float(v[0]), math.exp(float(v[1]))), start, method="Nelder-Mead",
                           options={"xatol": 1e-5, "fatol": 1e-6, "maxiter": 2000})
    mu, s = float(r2.x[0]), math.exp(float(r2.x[1]))
    ln = ll_logn(mu, s)
    if math.isfinite(ln):
        fits.append(Fit("lognormal", {"median": math.exp(mu), "sigma": s}, ln, 2 * 2 - 2 * ln))
    chosen = min(fits, key=lambda f: f.aic)
    return ThinkFit(n, mean_obs, cap, nc, chosen, tuple(fits))
