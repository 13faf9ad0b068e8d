"""Session planning: the seeded walk of a shopper through the behaviour graph.

A session's whole path (actions, products, pages, search terms, think times and the shopper's
patience) is a pure function of ``(profile, seed, session index)``; it does not depend on response
timing. The engine walks the very same iterator, so ``plan_sessions`` shows exactly what a run sends
(impatience may cut a session short or repeat a step, never change it).

The planner keeps the shopper's *intended* cart: ``add_to_cart`` adds the product just viewed (or a
Zipf pick when the shopper adds from elsewhere), ``remove_from_cart`` removes a uniformly chosen
cart line, ``checkout`` empties it. While the cart is empty, ``remove_from_cart`` and ``checkout`` are
not possible and their probability is spread proportionally over the row's other targets.
"""

from __future__ import annotations

import hashlib
import random
from bisect import bisect_right
from dataclasses import dataclass
from itertools import accumulate
from typing import TYPE_CHECKING, Iterator

if TYPE_CHECKING:
    from pytest_peakchaos.profiles.model import Profile

__all__ = ["Step", "SessionPlan", "CompiledPlan", "session_rng", "plan_session", "plan_sessions", "arrival_rng"]

# Action codes used on the hot path (indices into profiles.model.ACTIONS).
HOME, BROWSE, SEARCH, VIEW, ADD, REMOVE, VIEW_CART, CHECKOUT = range(8)
_EXIT = -1


def _derive(seed: int, *parts: object) -> int:
    text = ":".join([str(seed), *map(str, parts)]).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "big")


def session_rng(seed: int, index: int, stream: str = "path") -> random.Random:
    """The RNG of session ``index``: independent streams for the path and for impatience decisions."""
    return random.Random(_derive(seed, "session", index, stream))


def arrival_rng(seed: int) -> random.Random:
    return random.Random(_derive(seed, "arrivals"))


@dataclass(frozen=True)
class Step:
    """One planned request. ``think_s`` is the pause *before* it (0 for a session's first request)."""

    action: str
    think_s: float
    sku: int | None = None
    page: int | None = None
    query: str | None = None
    cart_size: int = 0  # lines in the planned cart after the step


@dataclass(frozen=True)
class SessionPlan:
    index: int
    patience_s: float
    steps: tuple[Step, ...]

    @property
    def actions(self) -> tuple[str, ...]:
        return tuple(s.action for s in self.steps)


class _Zipf:
    __slots__ = ("cum", "total", "n")

    def __init__(self, n: int, s: float) -> None:
        weights = [1.0 / (k**s) for k in range(1, n + 1)]
        self.cum = list(accumulate(weights))
        self.total = self.cum[-1]
        self.n = n

    def pick(self, rnd: float) -> int:
        """0-based rank for a uniform ``rnd`` in [0, 1)."""
        i = bisect_right(self.cum, rnd * self.total)
        return i if i < self.n else self.n - 1


class CompiledPlan:
    """A profile's behaviour turned into lookup tables for fast, deterministic walking."""

    def __init__(self, profile: Profile) -> None:
        from pytest_peakchaos.profiles.model import ACTIONS, ENTRY, EXIT, NEEDS_CART

        b = profile.behaviour
        self.actions = ACTIONS
        index = {a: i for i, a in enumerate(ACTIONS)}
        index[EXIT] = _EXIT
        needs = {index[a] for a in NEEDS_CART}
        # rows[from] = (full table, table without cart-needing targets); from = -2 for entry.
        self.rows: dict[int, tuple[tuple[list[int], list[float]], tuple[list[int], list[float]]]] = {}
        for src, row in b.transitions.items():
            code = -2 if src == ENTRY else index[src]
            items = [(index[t], p) for t, p in row.items() if p > 0]
            full_t = [t for t, _ in items]
            full_c = list(accumulate(p for _, p in items))
            full_c[-1] = 1.0 + 1e-12
            allowed = [(t, p) for t, p in items if t not in needs]
            if allowed:
                tot = sum(p for _, p in allowed)
                empty_t = [t for t, _ in allowed]
                empty_c = list(accumulate(p / tot for _, p in allowed))
                empty_c[-1] = 1.0 + 1e-12
            else:
                empty_t, empty_c = [_EXIT], [1.0 + 1e-12]
            self.rows[code] = ((full_t, full_c), (empty_t, empty_c))
        self.think = [b.think_for(a) for a in ACTIONS]
        self.think_scale = b.think_scale
        self.max_actions = b.max_actions
        self.patience = profile.patience
        cat = profile.catalog
        self.catalog = cat
        self.products = _Zipf(cat.products, cat.zipf_s)
        self.pages = _Zipf(cat.pages, cat.page_zipf_s)
        self.terms = _Zipf(len(cat.search_terms), cat.search_zipf_s)

    def walk(self, rng: random.Random) -> Iterator[tuple[int, float, int, int, int, int]]:
        """Yield ``(action, think_s, sku, page, term_index, cart_size)`` per step (-1 = unused).

        Bounded by ``max_actions``; the caller must draw the patience (``rng`` first use) before.
        """
        rand = rng.random
        rows = self.rows
        think = self.think
        scale = self.think_scale
        first_sku = self.catalog.first_sku
        products = self.products.pick
        cart: list[int] = []
        state = -2
        last_sku = -1
        for n in range(self.max_actions):
            full, empty = rows[state]
            targets, cum = full if cart else empty
            nxt = targets[bisect_right(cum, rand())]
            if nxt == _EXIT:
                return
            think_s = think[state].sample(rng) * scale if n > 0 and state >= 0 else 0.0
            sku = page = term = -1
            if nxt == VIEW:
                sku = first_sku + products(rand())
                last_sku = sku
            elif nxt == ADD:
                sku = last_sku if state == VIEW and last_sku >= 0 else first_sku + products(rand())
                if sku not in cart:
                    cart.append(sku)
            elif nxt == REMOVE:
                sku = cart.pop(int(rand() * len(cart)))
            elif nxt == CHECKOUT:
                cart.clear()
            elif nxt == BROWSE:
                page = 1 + self.pages.pick(rand())
            elif nxt == SEARCH:
                term = self.terms.pick(rand())
            state = nxt
            yield nxt, think_s, sku, page, term, len(cart)

    def start(self, seed: int, index: int) -> tuple[random.Random, float]:
        """The session's RNG and the shopper's patience (the RNG's first draw)."""
        rng = session_rng(seed, index)
        return rng, self.patience.wait.sample(rng)


def plan_session(profile: Profile | CompiledPlan, seed: int, index: int) -> SessionPlan:
    """The planned path of session ``index`` of a run with ``seed``."""
    cp = profile if isinstance(profile, CompiledPlan) else CompiledPlan(profile)
    rng, patience = cp.start(seed, index)
    terms = cp.catalog.search_terms
    steps = tuple(
        Step(
            action=cp.actions[a],
            think_s=think,
            sku=sku if sku >= 0 else None,
            page=page if page >= 0 else None,
            query=terms[term] if term >= 0 else None,
            cart_size=size,
        )
        for a, think, sku, page, term, size in cp.walk(rng)
    )
    return SessionPlan(index=index, patience_s=patience, steps=steps)


def plan_sessions(profile: Profile, seed: int, n: int, *, first: int = 0) -> list[SessionPlan]:
    """Plans of sessions ``first .. first+n-1``: exactly what a run with ``seed`` would walk."""
    cp = CompiledPlan(profile)
    return [plan_session(cp, seed, i) for i in range(first, first + n)]
