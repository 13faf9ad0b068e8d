"""Synthetic access logs from a known Markov model (seeded): for the round-trip tests and the
benchmark. Any state names; each state is a route ``/<state>/<n>``.

Sessions arrive by a Poisson process at ``rate``/s; each walks ``transitions`` from ``entry`` to
``exit`` with a think time per state drawn from ``think`` (``(kind, mean-or-median, sigma, cap)``,
clamped at the cap like the profile's ``Dist``). Every session has its own client address and user
agent (and a ``sid=`` field unless ``with_sid=False``). Lines are written in completion order,
like nginx does.
"""

from __future__ import annotations

import heapq
import math
import random
import time
from collections.abc import Iterator, Mapping
from typing import IO

__all__ = ["walk_lines", "write_log"]

Think = tuple[str, float, float, float]


def _draw(rng: random.Random, spec: Think) -> float:
    kind, m, sigma, cap = spec
    v = rng.expovariate(1.0 / m) if kind == "exponential" else rng.lognormvariate(math.log(m), sigma)
    return min(v, cap)


def walk_lines(
    transitions: Mapping[str, Mapping[str, float]],
    think: Mapping[str, Think],
    *,
    rate: float,
    duration: float,
    seed: int,
    t0: float = 1_700_000_000.0,
    with_sid: bool = True,
    service_s: float = 0.002,
    max_steps: int = 200,
) -> Iterator[str]:
    """Log lines (with ``\\n``) of the sessions arriving in ``[0, duration)``, in completion order.
    Memory: the sessions in flight (a heap), not the log."""
    rng = random.Random(seed)
    rows = {a: (list(r), list(r.values())) for a, r in transitions.items()}
    heap: list[tuple[float, int, str, int, int]] = []  # (end time, session, state, step, n)
    t_arr = rng.expovariate(rate)
    sid = 0
    months = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

    def nxt(state: str) -> str:
        targets, weights = rows[state]
        return rng.choices(targets, weights)[0]

    def line(t_end: float, s: int, state: str, n: int) -> str:
        g = time.gmtime(t0 + t_end)
        stamp = f"{g.tm_mday:02d}/{months[g.tm_mon - 1]}/{g.tm_year}:{g.tm_hour:02d}:{g.tm_min:02d}:{g.tm_sec:02d} +0000"
        ip = f"10.{(s >> 16) & 255}.{(s >> 8) & 255}.{s & 255}"
        extra = f" sid=s{s}" if with_sid else ""
        return (f'{ip} - - [{stamp}] "GET /{state}/{n} HTTP/1.1" 200 512 "-" "Mozilla/5.0 (synthetic {s})"'
                f"{extra} msec={t0 + t_end:.3f} rt={service_s:.3f}\n")

    while True:
        if t_arr < duration and (not heap or t_arr <= heap[0][0]):
            first = nxt("entry")
            if first != "exit":
                heapq.heappush(heap, (t_arr + service_s, sid, first, 1, rng.randrange(1000)))
            sid += 1
            t_arr += rng.expovariate(rate)
            continue
        if not heap:
            return
        t_end, s, state, step, n = heapq.heappop(heap)
        yield line(t_end, s, state, n)
        after = nxt(state)
        if after == "exit" or step >= max_steps:
            continue
        start = t_end + _draw(rng, think[state])
        heapq.heappush(heap, (start + service_s, s, after, step + 1, rng.randrange(1000)))


def write_log(fh: IO[str], lines: Iterator[str], *, max_bytes: int | None = None, max_lines: int | None = None) -> tuple[int, int]:
    """Write ``lines`` to ``fh`` until exhausted or a bound; returns (lines, bytes)."""
    n = b = 0
    buf: list[str] = []
    for ln in lines:
        buf.append(ln)
        n += 1
        b += len(ln)
        if len(buf) >= 10_000:
            fh.write("".join(buf))
            buf.clear()
        if (max_bytes is not None and b >= max_bytes) or (max_lines is not None and n >= max_lines):
            break
    fh.write("".join(buf))
    return n, b
