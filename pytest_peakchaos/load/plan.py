"""Session planning: the seeded walk of a shopper through the behaviour graph.

A session's whole path (actions, products, pages, search terms, think times and the shopper's
patience) is a pure function of ``(profile, seed, session index)``; it does not depend on response
timing. The engine walks the very same iterator, so ``plan_sessions`` shows exactly what a run sends
(impatience may cut a session short or repeat a step, never change it).

The planner keeps the shopper's *intended* cart, by what each state's binding declares: ``cart: add``
adds the product drawn by the previous step (or a Zipf pick when there is none), ``cart: remove``
removes a uniformly chosen cart line, ``cart: clear`` empties it. While the cart is empty, states
with ``needs_cart`` are not possible and their probability is spread proportionally over the row's
other targets. The states' names mean nothing here.

This module reads the profile object only; it does not import ``profiles.model`` (which imports it
lazily for ``Profile.expected_visits``), so there is no import cycle.
"""

from __future__ import annotations

import _random
import hashlib
import random
from bisect import bisect_right
from dataclasses import dataclass
from itertools import accumulate
from typing import TYPE_CHECKING, Any, Iterator

if TYPE_CHECKING:
    from pytest_peakchaos.profiles.model import Profile

__all__ = ["Step", "SessionPlan", "CompiledPlan", "session_rng", "plan_session", "plan_sessions", "arrival_rng", "expected_visits"]

_EXIT = -1


def _derive(seed: int, *parts: object) -> int:
    text = ":".join([str(seed), *map(str, parts)]).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "big")


_blake2b = hashlib.blake2b
_from_bytes = int.from_bytes
_seed_c = _random.Random.seed  # what Random.seed does for an int


def session_rng(seed: int, index: int, stream: str = "path") -> random.Random:
    """The RNG of session ``index``: independent streams for the path and for impatience decisions.

    The same stream as ``random.Random(_derive(seed, "session", index, stream))``, built without
    the generic ``_derive`` and ``Random.seed`` wrappers (a session start is on the hot path)."""
    rng = random.Random.__new__(random.Random)
    _seed_c(rng, _from_bytes(_blake2b(f"{seed}:session:{index}:{stream}".encode(), digest_size=8).digest(), "big"))
    rng.gauss_next = None  # type: ignore[attr-defined]  # what Random.seed resets
    return rng


def arrival_rng(seed: int) -> random.Random:
    return random.Random(_derive(seed, "arrivals"))


@dataclass(frozen=True)
class Step:
    """One planned request. ``think_s`` is the pause *before* it (0 for a session's first request)."""

    action: str
    think_s: float
    sku: Any = None  # an int from the catalog, or a value of the data set 'sku'
    page: int | None = None
    query: str | None = None
    cart_size: int = 0  # lines in the planned cart after the step
    data: tuple[tuple[str, Any], ...] = ()  # rows drawn from data sets at this step


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


_ENTRY_CODE = -2
_CART_NONE, _CART_ADD, _CART_REMOVE, _CART_CLEAR = 0, 1, 2, 3
_CART_CODES = {None: _CART_NONE, "add": _CART_ADD, "remove": _CART_REMOVE, "clear": _CART_CLEAR}
# draw codes: catalog values, or an index into CompiledPlan.datasets (>= 0)
_DRAW_SKU, _DRAW_PAGE, _DRAW_QUERY = -1, -2, -3


class _Picker:
    """Picks from ``n`` values: Zipf-popular (``zipf``), ``uniform`` or in order (``sequential``)."""

    __slots__ = ("mode", "zipf", "n")

    def __init__(self, n: int, pick: str, s: float) -> None:
        self.mode = pick
        self.n = n
        self.zipf = _Zipf(n, s) if pick == "zipf" else None

    def pick(self, rand: float, counter: list[int], slot: int, index: int) -> int:
        if self.zipf is not None:
            return self.zipf.pick(rand)
        if self.mode == "uniform":
            i = int(rand * self.n)
            return i if i < self.n else self.n - 1
        c = counter[slot]
        if c < 0:
            c = index
        counter[slot] = c + 1
        return c % self.n


class CompiledPlan:
    """A profile's behaviour turned into lookup tables for fast, deterministic walking.

    Reads only the profile object (its behaviour, bindings' declarations, catalog and data sets):
    this module does not import ``profiles.model``.
    """

    def __init__(self, profile: Profile) -> None:
        b = profile.behaviour
        self.actions: tuple[str, ...] = b.actions
        index = {a: i for i, a in enumerate(self.actions)}
        index["exit"] = _EXIT
        binds = profile.bindings
        self.cart_op = [_CART_CODES[binds[a].cart] if a in binds else _CART_NONE for a in self.actions]
        needs = {i for i, a in enumerate(self.actions) if a in binds and binds[a].needs_cart}
        self.sends = [a in binds and binds[a].sends for a in self.actions]
        data = getattr(profile, "data", {}) or {}
        self.dataset_names: tuple[str, ...] = tuple(n for n in data if n != "sku")
        ds_index = {n: i for i, n in enumerate(self.dataset_names)}
        self.datasets = [data[n].values for n in self.dataset_names]
        self.dataset_pickers = [_Picker(len(data[n].values), data[n].pick, data[n].zipf_s) for n in self.dataset_names]
        codes = {"sku": _DRAW_SKU, "page": _DRAW_PAGE, "query": _DRAW_QUERY}
        self.draws: list[tuple[int, ...]] = []
        for a in self.actions:
            bd = binds.get(a)
            self.draws.append(tuple(codes[d] if d in codes else ds_index[d] for d in (bd.draw if bd else ())))
        self.draws_sku = [_DRAW_SKU in d for d in self.draws]
        # rows[from] = (full table, table without cart-needing targets); from = -2 for entry.
        self.rows: dict[int, tuple[tuple[list[int], list[float]], tuple[list[int], list[float]]]] = {}
        for src, row in b.transitions.items():
            if src != "entry" and src not in index:
                continue
            code = _ENTRY_CODE if src == "entry" else index[src]
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
        self.think = [b.think_for(a) for a in self.actions]
        self.think_scale = b.think_scale
        self.max_actions = b.max_actions
        self.patience = profile.patience
        cat = profile.catalog
        self.catalog = cat
        sku_data = data.get("sku")
        self.sku_values: tuple[Any, ...] | None = sku_data.values if sku_data is not None else None
        if sku_data is not None:
            self.products = _Picker(len(sku_data.values), sku_data.pick, sku_data.zipf_s)
        else:
            self.products = _Picker(cat.products, "zipf", cat.zipf_s)
        self.pages = _Zipf(cat.pages, cat.page_zipf_s)
        self.terms = _Zipf(len(cat.search_terms), cat.search_zipf_s)
        self.qty = cat.qty

    def walk(self, rng: random.Random, sink: dict[str, Any] | None = None, index: int = 0,
             ) -> Iterator[tuple[int, float, Any, int, int, int]]:
        """Yield ``(state, think_s, sku, page, term_index, cart_size)`` per step (``sku`` None and
        ``page``/``term_index`` -1 when not drawn at that step).

        With a ``sink`` dict, data-set draws go into it (``sink[name] = row``) and so do the cart's
        variables (``cart``, ``cart_size``, ``cart_items``) whenever the cart changes (a ``clear``
        leaves the contents it cleared, for the ordering request). ``index`` is the session's index
        (where ``sequential`` data sets start). Bounded by ``max_actions``; the caller must draw
        the patience (``rng`` first use) before.
        """
        rand = rng.random
        rows = self.rows
        think = self.think
        scale = self.think_scale
        cart_op = self.cart_op
        draws = self.draws
        draws_sku = self.draws_sku
        products = self.products
        pick_zipf = products.zipf.pick if products.zipf is not None else None  # one call, not two
        sku_values = self.sku_values
        first_sku = self.catalog.first_sku
        counters = [-1] * (len(self.datasets) + 1)
        cart: list[Any] = []
        state = _ENTRY_CODE
        last_sku: Any = None
        qty = self.qty
        for n in range(self.max_actions):
            full, empty = rows[state]
            targets, cum = full if cart else empty
            nxt = targets[bisect_right(cum, rand())]
            if nxt == _EXIT:
                return
            think_s = think[state].sample(rng) * scale if n > 0 and state >= 0 else 0.0
            sku: Any = None
            page = term = -1
            for d in draws[nxt]:
                if d == _DRAW_SKU:
                    k = pick_zipf(rand()) if pick_zipf is not None else products.pick(rand(), counters, -1, index)
                    sku = sku_values[k] if sku_values is not None else first_sku + k
                elif d == _DRAW_PAGE:
                    page = 1 + self.pages.pick(rand())
                elif d == _DRAW_QUERY:
                    term = self.terms.pick(rand())
                else:
                    row = self.datasets[d][self.dataset_pickers[d].pick(rand(), counters, d, index)]
                    if sink is not None:
                        sink[self.dataset_names[d]] = row
            op = cart_op[nxt]
            if op:
                if op == _CART_ADD:
                    if sku is None:
                        if last_sku is not None and state >= 0 and draws_sku[state]:
                            sku = last_sku
                        else:
                            k = products.pick(rand(), counters, -1, index)
                            sku = sku_values[k] if sku_values is not None else first_sku + k
                    if sku not in cart:
                        cart.append(sku)
                elif op == _CART_REMOVE:
                    sku = cart.pop(int(rand() * len(cart)))
                else:
                    if sink is not None:
                        sink["cart"] = list(cart)
                        sink["cart_size"] = len(cart)
                        sink["cart_items"] = [{"sku": s, "qty": qty} for s in cart]
                    cart.clear()
                if sink is not None and op != _CART_CLEAR:
                    sink["cart"] = list(cart)
                    sink["cart_size"] = len(cart)
                    sink["cart_items"] = [{"sku": s, "qty": qty} for s in cart]
            if draws_sku[nxt]:
                last_sku = sku
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
    steps = []
    sink: dict[str, Any] | None = {} if cp.datasets else None
    for a, think, sku, page, term, size in cp.walk(rng, sink, index):
        data: tuple[tuple[str, Any], ...] = ()
        if sink:
            data = tuple(sorted((k, v) for k, v in sink.items() if k in cp.dataset_names))
            sink.clear()
        steps.append(Step(
            action=cp.actions[a],
            think_s=think,
            sku=sku,
            page=page if page >= 0 else None,
            query=terms[term] if term >= 0 else None,
            cart_size=size,
            data=data,
        ))
    return SessionPlan(index=index, patience_s=patience, steps=tuple(steps))


def plan_sessions(profile: Profile, seed: int, n: int, *, first: int = 0) -> list[SessionPlan]:
    """Plans of sessions ``first .. first+n-1``: exactly what a run with ``seed`` would walk."""
    cp = CompiledPlan(profile)
    return [plan_session(cp, seed, i) for i in range(first, first + n)]


def expected_visits(profile: Profile, sessions: int = 20_000, seed: int = 0) -> dict[str, float]:
    """Mean visits per session for each state, estimated by planning ``sessions`` sessions (exact
    for the planner, including the cart rules; no impatience)."""
    cp = CompiledPlan(profile)
    counts = dict.fromkeys(cp.actions, 0)
    for i in range(sessions):
        rng, _ = cp.start(seed, i)
        for a, *_ in cp.walk(rng, None, i):
            counts[cp.actions[a]] += 1
    reach = set(profile.actions)
    return {a: c / sessions for a, c in counts.items() if a in reach or c}
