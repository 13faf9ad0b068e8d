"""Behaviour mixes: sessions clustered into groups, each with its own transition matrix (as
WESSBAS does for JMeter models), from a seeded reservoir of whole sessions.

Sessions are clustered by k-means (k-means++ start, seeded, a few restarts) on their visit shares
per state. Each group's Markov chain is estimated from its sessions. With ``k="auto"`` the number
of groups is chosen by cross-validation: groups and chains are fitted on one half of the sampled
sessions, and the other half's log-likelihood under the *mixture* (``sum_i log sum_j w_j P_j(s_i)``,
chains smoothed with 0.1 pseudo-counts) is compared; the smallest k within 1 nat per 1000 held-out
sessions of the best wins. (Clustering on the data and scoring hard assignments on the same data
always favours more groups; the held-out mixture likelihood does not.)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

__all__ = ["cluster_sessions"]


def _kmeans(x: Any, k: int, seed: int, restarts: int = 4, iters: int = 60) -> Any:
    import numpy as np

    rng = np.random.default_rng(seed)
    best, best_inertia = None, math.inf
    n = len(x)
    for _ in range(restarts):
        centers = [x[rng.integers(n)]]
        for _ in range(1, k):
            d = np.min(((x[:, None, :] - np.array(centers)[None, :, :]) ** 2).sum(-1), axis=1)
            tot = d.sum()
            centers.append(x[rng.choice(n, p=d / tot)] if tot > 0 else x[rng.integers(n)])
        c = np.array(centers)
        labels = np.zeros(n, dtype=int)
        for _ in range(iters):
            dist = ((x[:, None, :] - c[None, :, :]) ** 2).sum(-1)
            new = dist.argmin(1)
            if (new == labels).all() and _ > 0:
                break
            labels = new
            for j in range(k):
                if (labels == j).any():
                    c[j] = x[labels == j].mean(0)
        inertia = float(((x - c[labels]) ** 2).sum())
        if inertia < best_inertia:
            best, best_inertia = labels.copy(), inertia
    return best


def _chain(seqs: Sequence[tuple[int, ...]], S: int) -> Any:
    import numpy as np

    c = np.zeros((S + 1, S + 1))
    for seq in seqs:
        c[0, seq[0]] += 1
        for a, b in zip(seq, seq[1:]):
            c[a + 1, b] += 1
        c[seq[-1] + 1, S] += 1
    return c


def _mixture_ll(fit_seqs: Sequence[tuple[int, ...]], labels: Any, k: int, test: Sequence[tuple[int, ...]], S: int) -> float:
    import numpy as np

    logp = []
    weights = []
    for j in range(k):
        members = [s for s, lab in zip(fit_seqs, labels) if lab == j]
        c = _chain(members, S) + 0.1
        logp.append(np.log(c / c.sum(1, keepdims=True)))
        weights.append(max(len(members), 1) / len(fit_seqs))
    total = 0.0
    for seq in test:
        per = []
        for j in range(k):
            lp = logp[j]
            v = lp[0, seq[0]] + lp[seq[-1] + 1, S] + sum(lp[a + 1, b] for a, b in zip(seq, seq[1:]))
            per.append(math.log(weights[j]) + float(v))
        top = max(per)
        total += top + math.log(sum(math.exp(p - top) for p in per))
    return total


def cluster_sessions(
    seqs: Sequence[tuple[int, ...]], S: int, names: Sequence[str], k: int | str, *, max_mixes: int = 6, seed: int = 0
) -> tuple[list[dict[str, Any]], list[dict[str, float]]]:
    """``(mixes, criterion)``: per group ``{share, sessions, transitions, criterion, mean_length}``,
    and per tried k ``{k, heldout_loglik}`` (``k="auto"``)."""
    import numpy as np

    seqs = [s for s in seqs if s]
    if len(seqs) < 2:
        return [], []

    def features(group: Sequence[tuple[int, ...]]) -> Any:
        x = np.zeros((len(group), S))
        for i, seq in enumerate(group):
            for s in seq:
                x[i, s] += 1
            x[i] /= len(seq)
        return x

    tried: list[dict[str, float]] = []
    if k == "auto":
        fit_half, test_half = seqs[0::2], seqs[1::2]
        xf = features(fit_half)
        for kk in range(1, min(max_mixes, len(fit_half)) + 1):
            labels = np.zeros(len(fit_half), dtype=int) if kk == 1 else _kmeans(xf, kk, seed)
            tried.append({"k": kk, "heldout_loglik": round(_mixture_ll(fit_half, labels, kk, test_half, S), 2)})
        best = max(t["heldout_loglik"] for t in tried)
        slack = len(test_half) / 1000.0
        chosen = min(int(t["k"]) for t in tried if t["heldout_loglik"] >= best - slack)
        how = "held-out likelihood"
    else:
        chosen, how = int(k), "the user"
    x = features(seqs)
    labels = np.zeros(len(seqs), dtype=int) if chosen == 1 else _kmeans(x, chosen, seed)
    rows = ["entry", *names]
    cols = [*names, "exit"]
    mixes = []
    for j in range(chosen):
        members = [s for s, lab in zip(seqs, labels) if lab == j]
        if not members:
            continue
        c = _chain(members, S)
        trans: dict[str, dict[str, float]] = {}
        for i, r in enumerate(rows):
            tot = c[i].sum()
            if tot > 0:
                row = {cols[m]: round(float(c[i, m] / tot), 4) for m in range(S + 1) if c[i, m] > 0}
                drift = round(1.0 - sum(row.values()), 4)
                top = max(row, key=lambda key: row[key])
                row[top] = round(row[top] + drift, 4)
                trans[r] = row
        mixes.append({"share": len(members) / len(seqs), "sessions": len(members), "transitions": trans, "criterion": how,
                      "mean_length": float(np.mean([len(s) for s in members]))})
    return mixes, tried
