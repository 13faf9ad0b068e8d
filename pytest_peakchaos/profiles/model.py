"""The shopper profile: who arrives when (a traffic shape), what they do (a Customer Behavior Model
Graph with think times, patience and Zipf-popular products) and what each action means over HTTP
(request bindings).

Everything here is an immutable value; ``Profile.with_(...)`` returns changed copies, and
``Profile.from_dict`` / ``to_dict`` are the YAML/JSON forms (see ``loader.py`` and docs/load.md).
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass, field, fields, replace
from typing import Any, Mapping

from pytest_peakchaos.load.shapes import Shape, shape_from_dict

__all__ = [
    "ACTION_CLASSES",
    "Capture",
    "DataSet",
    "SessionConfig",
    "ENTRY",
    "EXIT",
    "ACTIONS",
    "STATES",
    "TEMPLATE_VARS",
    "ProfileError",
    "Dist",
    "Behaviour",
    "Patience",
    "Catalog",
    "RequestBinding",
    "Profile",
]

_log = math.log

ENTRY = "entry"
EXIT = "exit"
#: The reference shop's state names (the built-in profiles use them). A profile names its own
#: states; nothing in the engine depends on these names.
ACTIONS: tuple[str, ...] = (
    "home",
    "browse",
    "search",
    "view_product",
    "add_to_cart",
    "remove_from_cart",
    "view_cart",
    "checkout",
)
REFERENCE_ACTIONS = ACTIONS
STATES: tuple[str, ...] = (ENTRY, *ACTIONS, EXIT)
#: The reference states that need something in the cart (as the built-in bindings declare).
NEEDS_CART: frozenset[str] = frozenset({"remove_from_cart", "checkout"})
STATE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*\Z")

#: Action classes: what the checks expect of an action.
ACTION_CLASSES: tuple[str, ...] = ("isolated", "cached", "legacy", "client")
CART_OPS: tuple[str, ...] = ("add", "remove", "clear")
CATALOG_DRAWS: tuple[str, ...] = ("sku", "page", "query")
THRESHOLD_KEYS: tuple[str, ...] = ("success", "p95_ms", "p99_ms")
PICKS: tuple[str, ...] = ("zipf", "uniform", "sequential")

#: Variables a request template may use (plus data sets and anything a binding ``capture``s).
TEMPLATE_VARS: dict[str, str] = {
    "session": "the session's index in the run (0, 1, ...)",
    "run_id": "the run's id (random per run unless given)",
    "cart_id": "pc-<run_id>-<session> until a capture replaces it",
    "sku": "the last drawn product (catalog or data set 'sku'), or the cart line a 'cart: remove' step removes",
    "qty": "catalog.qty",
    "page": "browse page, Zipf-picked from 1..catalog.pages",
    "query": "search term, Zipf-picked from catalog.search_terms",
    "idempotency_key": "a fresh key per ordering step; an impatient retry of the same step reuses it",
    "cart": "the planned cart's skus (a JSON list; comma-joined in paths and forms)",
    "cart_size": "the number of lines in the planned cart",
    "cart_items": "the planned cart as [{sku, qty}, ...]",
}

DIST_KINDS = ("constant", "exponential", "uniform", "lognormal")


class ProfileError(ValueError):
    """A profile that cannot be used; the message names the key and the valid values."""


# ----------------------------------------------------------------------------------------------
# small readers that produce good messages


def _num(value: Any, where: str, *, minimum: float | None = None, maximum: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise ProfileError(f"{where}: expected a number, got {value!r}")
    v = float(value)
    if minimum is not None and v < minimum:
        raise ProfileError(f"{where}: must be >= {minimum:g}, got {value!r}")
    if maximum is not None and v > maximum:
        raise ProfileError(f"{where}: must be <= {maximum:g}, got {value!r}")
    return v


def _int(value: Any, where: str, *, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ProfileError(f"{where}: expected a whole number, got {value!r}")
    if value < minimum:
        raise ProfileError(f"{where}: must be >= {minimum}, got {value!r}")
    return value


def _dur(value: Any, where: str) -> float:
    from pytest_peakchaos.units import parse_duration

    try:
        return parse_duration(value, what=where)
    except ValueError as exc:
        raise ProfileError(str(exc)) from None


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ProfileError(f"{where}: expected a mapping, got {type(value).__name__} {value!r}")
    return value


def _keys(data: Mapping[str, Any], where: str, valid: tuple[str, ...], required: tuple[str, ...] = ()) -> None:
    for key in data:
        if key not in valid:
            raise ProfileError(f"{where}.{key}: unknown key; valid keys: {', '.join(valid)}")
    for key in required:
        if key not in data:
            raise ProfileError(f"{where}: missing required key {key!r}; keys: {', '.join(valid)}")


# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Dist:
    """A random duration in seconds: ``constant``, truncated ``exponential``, ``uniform`` or ``lognormal``.

    ``mean`` is the constant value / exponential mean / lognormal median; ``low``..``high`` the
    uniform range, and ``high`` the truncation point of exponential and lognormal (values above it
    are clamped to it, like TPC-W's 70 s cap on a 7 s mean think time).
    """

    kind: str = "exponential"
    mean: float = 0.0
    low: float = 0.0
    high: float = math.inf
    sigma: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in DIST_KINDS:
            raise ProfileError(f"dist: unknown distribution {self.kind!r}; valid values: {', '.join(DIST_KINDS)}")
        if self.mean < 0 or self.low < 0 or self.high < self.low or self.sigma < 0:
            raise ProfileError(f"dist: bad parameters {self!r}: durations must be >= 0 and low <= high")

    @classmethod
    def constant(cls, seconds: float) -> Dist:
        return cls("constant", mean=seconds)

    @classmethod
    def exponential(cls, mean: float, cap: float = math.inf) -> Dist:
        return cls("exponential", mean=mean, high=cap)

    def sample(self, rng: random.Random) -> float:
        kind = self.kind
        if kind == "exponential":
            if self.mean <= 0.0:
                return 0.0
            # Random.expovariate(1 / mean), written out (the same draw and value, one call less on
            # the walk's per-step path)
            v = -_log(1.0 - rng.random()) / (1.0 / self.mean)
            return v if v < self.high else self.high
        if kind == "constant":
            return self.mean
        if kind == "uniform":
            return self.low + (self.high - self.low) * rng.random()
        if self.mean <= 0.0:
            return 0.0
        v = rng.lognormvariate(math.log(self.mean), self.sigma)
        return v if v < self.high else self.high

    def expected(self) -> float:
        """The mean of the (clamped) distribution."""
        if self.kind == "constant":
            return self.mean
        if self.kind == "uniform":
            return (self.low + self.high) / 2
        if self.kind == "exponential":
            if self.mean <= 0:
                return 0.0
            if math.isinf(self.high):
                return self.mean
            return self.mean * (1 - math.exp(-self.high / self.mean))
        mu = math.log(self.mean) if self.mean > 0 else 0.0
        return math.exp(mu + self.sigma**2 / 2)  # ignores clamping

    def to_dict(self) -> dict[str, Any]:
        if self.kind == "constant":
            return {"dist": "constant", "value": self.mean}
        if self.kind == "uniform":
            return {"dist": "uniform", "min": self.low, "max": self.high}
        out: dict[str, Any] = {"dist": self.kind, ("median" if self.kind == "lognormal" else "mean"): self.mean}
        if self.kind == "lognormal":
            out["sigma"] = self.sigma
        if not math.isinf(self.high):
            out["max"] = self.high
        return out

    @classmethod
    def from_dict(cls, data: Any, where: str) -> Dist:
        if isinstance(data, (int, float, str)) and not isinstance(data, bool):
            return cls.constant(_dur(data, where))
        m = _mapping(data, where)
        kind = m.get("dist")
        if kind not in DIST_KINDS:
            raise ProfileError(f"{where}.dist: unknown distribution {kind!r}; valid values: {', '.join(DIST_KINDS)}")
        if kind == "constant":
            _keys(m, where, ("dist", "value"), ("value",))
            return cls.constant(_dur(m["value"], f"{where}.value"))
        if kind == "uniform":
            _keys(m, where, ("dist", "min", "max"), ("min", "max"))
            low, high = _dur(m["min"], f"{where}.min"), _dur(m["max"], f"{where}.max")
            if high < low:
                raise ProfileError(f"{where}: min must be <= max, got min={low:g}s max={high:g}s")
            return cls("uniform", low=low, high=high)
        if kind == "exponential":
            _keys(m, where, ("dist", "mean", "max"), ("mean",))
            high = _dur(m["max"], f"{where}.max") if "max" in m else math.inf
            return cls("exponential", mean=_dur(m["mean"], f"{where}.mean"), high=high)
        _keys(m, where, ("dist", "median", "sigma", "max"), ("median", "sigma"))
        high = _dur(m["max"], f"{where}.max") if "max" in m else math.inf
        return cls(
            "lognormal", mean=_dur(m["median"], f"{where}.median"), sigma=_num(m["sigma"], f"{where}.sigma", minimum=0), high=high
        )


@dataclass(frozen=True)
class Behaviour:
    """The Customer Behavior Model Graph over the profile's own states.

    ``transitions[a][b]`` is the probability of going from state ``a`` to ``b``; ``entry`` and
    ``exit`` are the only reserved (virtual) states. Rows exist for ``entry`` and every state that
    can be reached, and each sums to 1. ``think[a]`` is the time a shopper spends on the page of
    state ``a`` before the next step (``think_default`` for states not listed), multiplied by
    ``think_scale`` (a time compression for short CI runs). ``max_actions`` bounds a session.
    """

    transitions: dict[str, dict[str, float]]
    think: dict[str, Dist] = field(default_factory=dict)
    think_default: Dist = field(default_factory=lambda: Dist.exponential(7.0, 70.0))
    think_scale: float = 1.0
    max_actions: int = 200

    def __post_init__(self) -> None:
        self.validate()

    # -- derived views ---------------------------------------------------------------------------
    @property
    def actions(self) -> tuple[str, ...]:
        """The non-virtual states, in the order they first appear (rows, then targets)."""
        seen: dict[str, None] = {}
        for a, row in self.transitions.items():
            if a != ENTRY:
                seen.setdefault(a)
        for row in self.transitions.values():
            for b in row:
                if b not in (ENTRY, EXIT):
                    seen.setdefault(b)
        return tuple(seen)

    @property
    def states(self) -> tuple[str, ...]:
        """The states that occur (``entry`` first, ``exit`` last)."""
        used = set(self.transitions)
        for row in self.transitions.values():
            used.update(k for k, p in row.items() if p > 0)
        return tuple(s for s in (ENTRY, *self.actions, EXIT) if s in used)

    @property
    def matrix(self) -> list[list[float]]:
        """The transition matrix over ``states`` (rows: from, columns: to)."""
        st = self.states
        return [[self.transitions.get(a, {}).get(b, 0.0) for b in st] for a in st]

    def reachable(self) -> tuple[str, ...]:
        """States reachable from ``entry`` (in ``actions`` order)."""
        seen: set[str] = set()
        todo = [ENTRY]
        for _ in range(len(self.transitions) * (len(self.transitions) + 2) + 2):
            if not todo:
                break
            a = todo.pop()
            for b, p in self.transitions.get(a, {}).items():
                if p > 0 and b not in seen and b != EXIT:
                    seen.add(b)
                    todo.append(b)
        return tuple(a for a in self.actions if a in seen)

    def unreachable(self) -> tuple[str, ...]:
        """States with a row that ``entry`` cannot reach (reported, not an error)."""
        r = set(self.reachable())
        return tuple(a for a in self.transitions if a != ENTRY and a not in r)

    def think_for(self, action: str) -> Dist:
        return self.think.get(action, self.think_default)

    def validate(self) -> None:
        where = "behaviour.transitions"
        if ENTRY not in self.transitions:
            raise ProfileError(f"{where}: needs a row for {ENTRY!r} (where sessions start)")
        if self.think_scale < 0 or self.max_actions < 1:
            raise ProfileError("behaviour: think_scale must be >= 0 and max_actions >= 1")
        rows = set(self.transitions)
        for a, row in self.transitions.items():
            if a == EXIT:
                raise ProfileError(f"{where}.{EXIT}: {EXIT!r} is where sessions end; it has no row")
            if not STATE_NAME.match(a):
                raise ProfileError(f"{where}.{a}: bad state name; use letters, digits, '_', '.', '-'")
            total = 0.0
            for b, p in row.items():
                if b == ENTRY:
                    raise ProfileError(f"{where}.{a}.{ENTRY}: sessions cannot return to {ENTRY!r}")
                if b != EXIT and b not in rows and p > 0:
                    valid = ", ".join(sorted(rows - {ENTRY}) + [EXIT])
                    raise ProfileError(f"{where}.{a}.{b}: unknown target state {b!r} (it has no row); valid values: {valid}")
                if not (0.0 <= p <= 1.0):
                    raise ProfileError(f"{where}.{a}.{b}: a probability must be between 0 and 1, got {p!r}")
                total += p
            if abs(total - 1.0) > 1e-6:
                raise ProfileError(f"{where}.{a}: probabilities must sum to 1, they sum to {total:.6g}")
        # every reachable state must be able to reach exit (else sessions only end by max_actions)
        can_exit = {EXIT}
        for _ in range(len(rows) + 1):
            for a, row in self.transitions.items():
                if any(p > 0 and b in can_exit for b, p in row.items()):
                    can_exit.add(a)
        for a in (*self.reachable(), ENTRY):
            if a not in can_exit:
                raise ProfileError(f"{where}.{a}: no way out: no path from {a!r} to {EXIT!r}; sessions would never end")
        for a in self.think:
            if a not in rows:
                raise ProfileError(f"behaviour.think.{a}: unknown state; valid values: default, {', '.join(self.actions)}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "transitions": {a: dict(row) for a, row in self.transitions.items()},
            "think": {"default": self.think_default.to_dict(), **{a: d.to_dict() for a, d in self.think.items()}},
            "think_scale": self.think_scale,
            "max_actions": self.max_actions,
        }

    @classmethod
    def from_dict(cls, data: Any, where: str = "behaviour") -> Behaviour:
        m = _mapping(data, where)
        _keys(m, where, ("transitions", "think", "think_scale", "max_actions"), ("transitions",))
        rows_in = _mapping(m["transitions"], f"{where}.transitions")
        rows: dict[str, dict[str, float]] = {}
        for a, row in rows_in.items():
            if row is None:  # a base profile's row removed by a child (`state: null`)
                continue
            r = _mapping(row, f"{where}.transitions.{a}")
            rows[str(a)] = {str(b): _num(p, f"{where}.transitions.{a}.{b}", minimum=0, maximum=1) for b, p in r.items()}
        think_in = _mapping(m.get("think", {}), f"{where}.think")
        default = Dist.exponential(7.0, 70.0)
        think: dict[str, Dist] = {}
        for a, d in think_in.items():
            if a == "default":
                default = Dist.from_dict(d, f"{where}.think.default")
            elif a in rows and a != ENTRY:
                think[a] = Dist.from_dict(d, f"{where}.think.{a}")
            else:
                valid = ", ".join(x for x in rows if x != ENTRY)
                raise ProfileError(f"{where}.think.{a}: unknown state; valid values: default, {valid}")
        return cls(
            transitions=rows,
            think=think,
            think_default=default,
            think_scale=_num(m.get("think_scale", 1.0), f"{where}.think_scale", minimum=0),
            max_actions=_int(m.get("max_actions", 200), f"{where}.max_actions", minimum=1),
        )


@dataclass(frozen=True)
class Patience:
    """Impatience: each shopper draws a patience (``wait``) at session start; when a response takes
    longer (from the intended send time), the shopper refreshes (a retry of the same request, same
    idempotency key) with ``retry_probability`` while fewer than ``max_retries`` were made for
    this step, and otherwise abandons the session. The slow request is not cancelled: it completes or
    times out on its own and is recorded as it ends (a refresh does not stop server work)."""

    wait: Dist = field(default_factory=lambda: Dist.constant(10.0))
    retry_probability: float = 0.3
    max_retries: int = 2

    def __post_init__(self) -> None:
        if not 0.0 <= self.retry_probability <= 1.0:
            raise ProfileError(f"patience.retry_probability: must be between 0 and 1, got {self.retry_probability!r}")
        if self.max_retries < 0:
            raise ProfileError(f"patience.max_retries: must be >= 0, got {self.max_retries!r}")

    def to_dict(self) -> dict[str, Any]:
        return {"wait": self.wait.to_dict(), "retry_probability": self.retry_probability, "max_retries": self.max_retries}

    @classmethod
    def from_dict(cls, data: Any, where: str = "patience") -> Patience:
        m = _mapping(data, where)
        _keys(m, where, ("wait", "retry_probability", "max_retries"))
        base = cls()
        return cls(
            wait=Dist.from_dict(m["wait"], f"{where}.wait") if "wait" in m else base.wait,
            retry_probability=_num(m.get("retry_probability", base.retry_probability), f"{where}.retry_probability", minimum=0, maximum=1),
            max_retries=_int(m.get("max_retries", base.max_retries), f"{where}.max_retries"),
        )


@dataclass(frozen=True)
class Catalog:
    """What shoppers pick from: ``products`` skus numbered from ``first_sku``, with Zipf popularity
    (weight of the k-th most popular ∝ 1/k^zipf_s); browse pages and search terms likewise."""

    products: int = 200
    zipf_s: float = 1.0
    first_sku: int = 1
    pages: int = 10
    page_zipf_s: float = 1.0
    search_terms: tuple[str, ...] = ("phone", "tv", "laptop", "shoes", "rice cooker", "headphones", "coffee", "toys")
    search_zipf_s: float = 1.0
    qty: int = 1

    def __post_init__(self) -> None:
        if self.products < 1 or self.pages < 1 or self.qty < 1 or not self.search_terms:
            raise ProfileError("catalog: products, pages and qty must be >= 1 and search_terms must not be empty")
        if min(self.zipf_s, self.page_zipf_s, self.search_zipf_s) < 0:
            raise ProfileError("catalog: Zipf exponents must be >= 0 (0 = uniform)")

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["search_terms"] = list(self.search_terms)
        return out

    @classmethod
    def from_dict(cls, data: Any, where: str = "catalog") -> Catalog:
        m = _mapping(data, where)
        names = tuple(f.name for f in fields(cls))
        _keys(m, where, names)
        kw: dict[str, Any] = {}
        for k, v in m.items():
            if k in ("products", "first_sku", "pages", "qty"):
                kw[k] = _int(v, f"{where}.{k}", minimum=0 if k == "first_sku" else 1)
            elif k == "search_terms":
                if not isinstance(v, list) or not v or not all(isinstance(x, str) and x for x in v):
                    raise ProfileError(f"{where}.search_terms: expected a non-empty list of strings, got {v!r}")
                kw[k] = tuple(v)
            else:
                kw[k] = _num(v, f"{where}.{k}", minimum=0)
        return cls(**kw)


HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD")
CAPTURE_KINDS = ("json", "header", "regex")


def _template_fields(template: Any) -> set[str]:
    """The ``{var}`` / ``{var.field}`` names used in a (nested) template."""
    from pytest_peakchaos.profiles.template import TemplateError, fields

    try:
        return fields(template)
    except TemplateError as exc:
        raise ProfileError(str(exc)) from None


@dataclass(frozen=True)
class Capture:
    """A session variable read from a response: ``kind`` is ``json`` (a dotted path), ``header``
    (a header name, first value) or ``regex`` (on the body; group 1 when the pattern has one)."""

    var: str
    kind: str
    expr: str

    def to_dict(self) -> Any:
        return self.expr if self.kind == "json" else {self.kind: self.expr}

    @classmethod
    def from_dict(cls, var: str, data: Any, where: str) -> Capture:
        if not var.isidentifier():
            raise ProfileError(f"{where}: capture variable {var!r} must be an identifier (letters, digits, '_')")
        if isinstance(data, str) and data:
            return cls(var, "json", data)
        m = _mapping(data, where)
        if len(m) != 1 or next(iter(m)) not in CAPTURE_KINDS:
            raise ProfileError(
                f"{where}: expected a dotted JSON path or one of {{json: path}}, {{header: Name}}, {{regex: pattern}}; got {data!r}"
            )
        kind, expr = next(iter(m.items()))
        if not isinstance(expr, str) or not expr:
            raise ProfileError(f"{where}.{kind}: expected a non-empty string, got {expr!r}")
        if kind == "regex":
            try:
                re.compile(expr)
            except re.error as exc:
                raise ProfileError(f"{where}.regex: not a valid regular expression {expr!r}: {exc}") from None
        return cls(var, kind, expr)


@dataclass(frozen=True)
class RequestBinding:
    """How one state becomes an HTTP request, and what the state means.

    ``path``, ``headers`` and the body (``json``, ``form`` or ``body``) are templates (see
    ``profiles.template`` and docs/load.md). ``draw`` lists the values picked when the state is
    entered (``sku``, ``page``, ``query`` or a data set name); ``cart`` is its effect on the planned
    cart (``add``, ``remove``, ``clear``); ``needs_cart`` makes it impossible with an empty cart.
    ``klass`` is what the checks expect (``isolated``, ``cached``, ``legacy``, ``client``: no
    request). ``idempotency_key`` names a header with a fresh key per visit; a response whose
    status is in ``acknowledge`` is an *acknowledged order*, its id at the dotted JSON path
    ``order_id``. ``capture`` reads session variables from responses with a ``capture_status``.
    """

    method: str = "GET"
    path: str = "/"
    json: Any = None
    headers: tuple[tuple[str, str], ...] = ()
    idempotency_key: str | None = None
    order_id: str | None = None
    acknowledge: tuple[int, ...] = ()
    capture: tuple[Capture, ...] = ()
    form: tuple[tuple[str, str], ...] | None = None
    body: str | None = None
    content_type: str | None = None
    draw: tuple[str, ...] = ()
    cart: str | None = None
    needs_cart: bool = False
    klass: str = "isolated"
    thresholds: tuple[tuple[str, float], ...] = ()
    capture_status: tuple[int, int] = (200, 299)

    def __post_init__(self) -> None:
        if self.method not in HTTP_METHODS:
            raise ProfileError(f"method: unknown HTTP method {self.method!r}; valid values: {', '.join(HTTP_METHODS)}")
        if not self.path.startswith("/"):
            raise ProfileError(f"path: must start with '/', got {self.path!r}")
        if self.klass not in ACTION_CLASSES:
            raise ProfileError(f"class: unknown action class {self.klass!r}; valid values: {', '.join(ACTION_CLASSES)}")
        if self.cart is not None and self.cart not in CART_OPS:
            raise ProfileError(f"cart: unknown cart effect {self.cart!r}; valid values: {', '.join(CART_OPS)}")
        if self.capture and any(isinstance(c, tuple) for c in self.capture):  # older (var, path) pairs
            object.__setattr__(self, "capture", tuple(c if isinstance(c, Capture) else Capture(c[0], "json", c[1]) for c in self.capture))

    @property
    def acknowledges(self) -> bool:
        return bool(self.acknowledge)

    @property
    def sends(self) -> bool:
        """False for a client-side step (``class: client``): no request, only think time."""
        return self.klass != "client"

    def variables(self) -> set[str]:
        if not self.sends:
            return set()
        names = _template_fields(self.path) | _template_fields(self.json) | _template_fields(self.body)
        for k, v in (*self.headers, *(self.form or ())):
            names |= _template_fields(k) | _template_fields(v)
        return names

    def to_dict(self) -> dict[str, Any]:
        if not self.sends:
            out: dict[str, Any] = {"request": False}
        else:
            out = {"method": self.method, "path": self.path}
        if self.json is not None:
            out["json"] = self.json
        if self.form is not None:
            out["form"] = dict(self.form)
        if self.body is not None:
            out["body"] = self.body
        if self.content_type:
            out["content_type"] = self.content_type
        if self.headers:
            out["headers"] = dict(self.headers)
        if self.draw:
            out["draw"] = list(self.draw)
        if self.cart:
            out["cart"] = self.cart
        if self.needs_cart != (self.cart in ("remove", "clear")):
            out["needs_cart"] = self.needs_cart
        if self.klass not in ("isolated", "client"):
            out["class"] = self.klass
        if self.idempotency_key or self.order_id or self.acknowledge:
            order: dict[str, Any] = {}
            if self.idempotency_key:
                order["idempotency_key"] = self.idempotency_key
            if self.order_id:
                order["id"] = self.order_id
            order["acknowledge"] = list(self.acknowledge)
            out["order"] = order
        if self.capture:
            out["capture"] = {c.var: c.to_dict() for c in self.capture}
        if self.capture_status != (200, 299):
            out["capture_status"] = list(self.capture_status)
        if self.thresholds:
            out["thresholds"] = dict(self.thresholds)
        return out

    @classmethod
    def from_dict(cls, data: Any, where: str) -> RequestBinding:
        m = _mapping(data, where)
        valid = ("method", "path", "json", "form", "body", "content_type", "headers", "idempotency_key", "order_id",
                 "acknowledge", "order", "capture", "capture_status", "draw", "cart", "needs_cart", "class", "legacy",
                 "request", "thresholds")
        _keys(m, where, valid)
        klass = m.get("class", "isolated")
        if klass not in ACTION_CLASSES:
            raise ProfileError(f"{where}.class: unknown action class {klass!r}; valid values: {', '.join(ACTION_CLASSES)}")
        if "legacy" in m:
            if not isinstance(m["legacy"], bool):
                raise ProfileError(f"{where}.legacy: expected true or false, got {m['legacy']!r}")
            if m["legacy"]:
                if "class" in m and klass != "legacy":
                    raise ProfileError(f"{where}: legacy: true contradicts class: {klass}")
                klass = "legacy"
        if "request" in m:
            if not isinstance(m["request"], bool):
                raise ProfileError(f"{where}.request: expected true or false, got {m['request']!r}")
            if not m["request"]:
                if "class" in m and klass != "client":
                    raise ProfileError(f"{where}: request: false contradicts class: {klass}")
                klass = "client"
        sends = klass != "client"
        if sends:
            for k in ("method", "path"):
                if k not in m:
                    raise ProfileError(f"{where}: missing required key {k!r} (or 'request: false' for a step that sends nothing)")
        else:
            bad = [k for k in ("method", "path", "json", "form", "body", "headers", "order", "idempotency_key", "capture") if k in m]
            if bad:
                raise ProfileError(f"{where}: a client-side step (request: false) sends nothing; remove {', '.join(bad)}")
        method = m.get("method", "GET")
        if not isinstance(method, str) or method.upper() not in HTTP_METHODS:
            raise ProfileError(f"{where}.method: unknown HTTP method {method!r}; valid values: {', '.join(HTTP_METHODS)}")
        path = m.get("path", "/")
        if not isinstance(path, str) or not path.startswith("/"):
            raise ProfileError(f"{where}.path: expected a path template starting with '/', got {path!r}")
        bodies = [k for k in ("json", "form", "body") if k in m]
        if len(bodies) > 1:
            raise ProfileError(f"{where}: give at most one body, got {', '.join(bodies)}")
        form = None
        if "form" in m:
            form = tuple((str(k), str(v)) for k, v in _mapping(m["form"], f"{where}.form").items())
        body = m.get("body")
        if body is not None and not isinstance(body, str):
            raise ProfileError(f"{where}.body: expected a string template, got {body!r}")
        ctype = m.get("content_type")
        if ctype is not None and (not isinstance(ctype, str) or not ctype):
            raise ProfileError(f"{where}.content_type: expected a media type such as 'text/plain', got {ctype!r}")
        headers = _mapping(m.get("headers", {}), f"{where}.headers")
        capture_in = _mapping(m.get("capture", {}), f"{where}.capture")
        captures = tuple(Capture.from_dict(str(v), c, f"{where}.capture.{v}") for v, c in capture_in.items())
        # the order: new nested form, or the older flat keys
        order = m.get("order")
        key, order_id, ack = m.get("idempotency_key"), m.get("order_id"), m.get("acknowledge")
        if order is not None:
            if any(k in m for k in ("idempotency_key", "order_id", "acknowledge")):
                raise ProfileError(f"{where}: give 'order: {{...}}' or the older idempotency_key/order_id/acknowledge, not both")
            om = _mapping(order, f"{where}.order")
            _keys(om, f"{where}.order", ("idempotency_key", "id", "acknowledge"))
            key, order_id, ack = om.get("idempotency_key"), om.get("id"), om.get("acknowledge")
            if ack is None:
                ack = [200, 201, 202]
        if key is not None and (not isinstance(key, str) or not key):
            raise ProfileError(f"{where}.idempotency_key: expected a header name such as 'Idempotency-Key', got {key!r}")
        if ack is None:
            ack_t: tuple[int, ...] = (200, 201, 202) if (key or order_id) else ()
        else:
            if not isinstance(ack, list) or not all(isinstance(x, int) and not isinstance(x, bool) and 100 <= x <= 599 for x in ack):
                raise ProfileError(f"{where}.acknowledge: expected a list of HTTP status codes such as [201, 202], got {ack!r}")
            ack_t = tuple(ack)
        if order_id is not None and not isinstance(order_id, str):
            raise ProfileError(f"{where}.order.id: expected a dotted JSON path such as 'order_id', got {order_id!r}")
        draw = m.get("draw", [])
        if isinstance(draw, str):
            draw = [draw]
        if not isinstance(draw, list) or not all(isinstance(x, str) and x.isidentifier() for x in draw):
            raise ProfileError(f"{where}.draw: expected a list of names (sku, page, query or a data set), got {draw!r}")
        cart = m.get("cart")
        if cart is not None and cart not in CART_OPS:
            raise ProfileError(f"{where}.cart: unknown cart effect {cart!r}; valid values: {', '.join(CART_OPS)}")
        needs = m.get("needs_cart", cart in ("remove", "clear"))
        if not isinstance(needs, bool):
            raise ProfileError(f"{where}.needs_cart: expected true or false, got {needs!r}")
        if cart == "remove" and not needs:
            raise ProfileError(f"{where}: cart: remove needs a cart line to remove (needs_cart cannot be false)")
        th = _mapping(m.get("thresholds", {}), f"{where}.thresholds")
        thresholds: list[tuple[str, float]] = []
        for k, v in th.items():
            if k not in THRESHOLD_KEYS:
                raise ProfileError(f"{where}.thresholds.{k}: unknown key; valid keys: {', '.join(THRESHOLD_KEYS)}")
            thresholds.append((k, _num(v, f"{where}.thresholds.{k}", minimum=0, maximum=1 if k == "success" else None)))
        cs = m.get("capture_status", [200, 299])
        if (not isinstance(cs, list) or len(cs) != 2 or not all(isinstance(x, int) and 100 <= x <= 599 for x in cs)
                or cs[0] > cs[1]):
            raise ProfileError(f"{where}.capture_status: expected [lowest, highest] status, such as [200, 399], got {cs!r}")
        try:
            b = cls(
                method=method.upper(),
                path=path,
                json=m.get("json"),
                headers=tuple((str(k), str(v)) for k, v in headers.items()),
                idempotency_key=key,
                order_id=order_id,
                acknowledge=ack_t,
                capture=captures,
                form=form,
                body=body,
                content_type=ctype,
                draw=tuple(draw),
                cart=cart,
                needs_cart=needs,
                klass=klass,
                thresholds=tuple(thresholds),
                capture_status=(cs[0], cs[1]),
            )
            b.variables()
        except ProfileError as exc:
            raise ProfileError(f"{where}.{exc}") from None
        return b


@dataclass(frozen=True)
class DataSet:
    """Data-driven values: ``values`` (scalars or mappings), picked ``zipf`` (rank k ∝ 1/k^zipf_s),
    ``uniform`` or ``sequential`` (session i starts at row i mod n, then the next)."""

    name: str
    values: tuple[Any, ...]
    pick: str = "zipf"
    zipf_s: float = 1.0

    def __post_init__(self) -> None:
        if not self.values:
            raise ProfileError(f"data.{self.name}: no values")
        if self.pick not in PICKS:
            raise ProfileError(f"data.{self.name}.pick: unknown pick {self.pick!r}; valid values: {', '.join(PICKS)}")

    def to_dict(self) -> dict[str, Any]:
        return {"values": list(self.values), "pick": self.pick, "zipf_s": self.zipf_s}

    @classmethod
    def from_dict(cls, name: str, data: Any, where: str, directory: Any = None) -> DataSet:
        m = _mapping(data, where)
        _keys(m, where, ("file", "values", "column", "pick", "zipf_s"))
        if ("file" in m) == ("values" in m):
            raise ProfileError(f"{where}: give exactly one of 'file' (CSV or YAML) or 'values' (a list)")
        if "file" in m:
            values = _read_data_file(m["file"], f"{where}.file", directory)
        else:
            values = m["values"]
            if not isinstance(values, list):
                raise ProfileError(f"{where}.values: expected a list, got {values!r}")
        col = m.get("column")
        if col is not None:
            if not all(isinstance(v, Mapping) and col in v for v in values):
                raise ProfileError(f"{where}.column: {col!r} is not a column of every row")
            values = [v[col] for v in values]
        values = [dict(v) if isinstance(v, Mapping) else v for v in values]
        for i, v in enumerate(values):
            if not isinstance(v, (str, int, float, dict)) or isinstance(v, bool):
                raise ProfileError(f"{where}: row {i}: expected a string, number or mapping, got {v!r}")
        return cls(
            name=name,
            values=tuple(values),
            pick=str(m.get("pick", "zipf")),
            zipf_s=_num(m.get("zipf_s", 1.0), f"{where}.zipf_s", minimum=0),
        )


def _read_data_file(spec: Any, where: str, directory: Any) -> list[Any]:
    from pathlib import Path

    if not isinstance(spec, str) or not spec:
        raise ProfileError(f"{where}: expected a file path, got {spec!r}")
    path = Path(spec)
    if not path.is_absolute() and directory is not None:
        path = Path(directory) / path
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ProfileError(f"{where}: cannot read {str(path)!r}: {exc.strerror or exc}") from None
    if path.suffix.lower() == ".csv":
        import csv
        import io

        rows = list(csv.DictReader(io.StringIO(text)))
        out: list[Any] = []
        for r in rows:
            out.append({k: (int(v) if v.isdigit() and not (len(v) > 1 and v[0] == "0") else v) for k, v in r.items() if k})
        if not out:
            raise ProfileError(f"{where}: {str(path)!r} has no rows (a CSV needs a header row and at least one row)")
        return out
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ProfileError(f"{where}: {str(path)!r} is not valid YAML: {exc}") from None
    if not isinstance(data, list) or not data:
        raise ProfileError(f"{where}: {str(path)!r} must hold a non-empty YAML list (of values or mappings)")
    return data


@dataclass(frozen=True)
class SessionConfig:
    """Per-session behaviour of the client: a cookie jar, default headers a browser sends, and TLS
    verification for ``https://`` base URLs (``True``, ``False`` or a CA bundle path)."""

    cookies: bool = True
    headers: tuple[tuple[str, str], ...] = ()
    tls_verify: bool | str = True

    def to_dict(self) -> dict[str, Any]:
        return {"cookies": self.cookies, "headers": dict(self.headers), "tls_verify": self.tls_verify}

    @classmethod
    def from_dict(cls, data: Any, where: str = "session") -> SessionConfig:
        m = _mapping(data, where)
        _keys(m, where, ("cookies", "headers", "tls_verify"))
        cookies = m.get("cookies", True)
        if not isinstance(cookies, bool):
            raise ProfileError(f"{where}.cookies: expected true or false, got {cookies!r}")
        verify = m.get("tls_verify", True)
        if not isinstance(verify, (bool, str)) or verify == "":
            raise ProfileError(f"{where}.tls_verify: expected true, false or a CA bundle path, got {verify!r}")
        headers = _mapping(m.get("headers", {}), f"{where}.headers")
        for k, v in headers.items():
            if not isinstance(k, str) or not k or any(c in k for c in ": \r\n") or not isinstance(v, (str, int)) or "\n" in str(v):
                raise ProfileError(f"{where}.headers.{k}: expected 'Header-Name: value' on one line, got {v!r}")
            _template_fields(str(v))
        return cls(cookies=cookies, headers=tuple((str(k), str(v)) for k, v in headers.items()), tls_verify=verify)


@dataclass(frozen=True)
class Profile:
    """A named shopper population: arrival ``shape``, ``behaviour`` graph over its own states,
    ``patience``, ``catalog`` (Zipf popularity), data sets, per-state request ``bindings``
    (whose declarations say what each state does and what the checks expect of it), the client's
    ``session`` settings, and ``sources`` documenting where each number comes from.

    ``legacy_actions`` is the set of legacy-bound states: those declared ``legacy: true`` (or
    ``class: legacy``) plus any given here (the older form)."""

    name: str
    shape: Shape
    behaviour: Behaviour
    bindings: dict[str, RequestBinding]
    patience: Patience = field(default_factory=Patience)
    catalog: Catalog = field(default_factory=Catalog)
    legacy_actions: frozenset[str] = frozenset()
    description: str = ""
    sources: dict[str, str] = field(default_factory=dict)
    data: dict[str, DataSet] = field(default_factory=dict)
    session: SessionConfig = field(default_factory=SessionConfig)

    def __post_init__(self) -> None:
        declared = {a for a, b in self.bindings.items() if b.klass == "legacy"}
        object.__setattr__(self, "legacy_actions", frozenset(self.legacy_actions) | frozenset(declared))
        self.validate()

    # -- convenience views ----------------------------------------------------------------------
    @property
    def states(self) -> tuple[str, ...]:
        return self.behaviour.states

    @property
    def matrix(self) -> list[list[float]]:
        return self.behaviour.matrix

    @property
    def actions(self) -> tuple[str, ...]:
        """The states sessions can reach."""
        return self.behaviour.reachable()

    @property
    def warnings(self) -> tuple[str, ...]:
        """Things worth knowing that are not errors (unreachable states)."""
        out = []
        for a in self.behaviour.unreachable():
            out.append(f"profile {self.name!r}: state {a!r} has transitions but cannot be reached from {ENTRY!r}")
        return tuple(out)

    def action_classes(self) -> dict[str, str]:
        """``{state: "isolated" | "cached" | "legacy" | "client"}`` for the reachable states."""
        out = {}
        for a in self.actions:
            b = self.bindings[a]
            out[a] = "legacy" if a in self.legacy_actions and b.sends else b.klass
        return out

    def action_thresholds(self) -> dict[str, dict[str, float]]:
        """Per-action bounds declared in the bindings (``success``, ``p95_ms``, ``p99_ms``)."""
        return {a: dict(b.thresholds) for a, b in self.bindings.items() if b.thresholds and a in self.actions}

    def validate(self) -> None:
        reach = self.behaviour.reachable()
        missing = [a for a in reach if a not in self.bindings]
        if missing:
            raise ProfileError(
                f"profile {self.name!r}: state{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing))} can be reached "
                f"but {'have' if len(missing) > 1 else 'has'} no binding; bound states: {', '.join(sorted(self.bindings)) or '(none)'}"
            )
        states = set(self.behaviour.actions)
        for a in self.bindings:
            if a not in states:
                raise ProfileError(
                    f"profile {self.name!r}: bindings.{a}: not a state of the behaviour graph; valid values: {', '.join(self.behaviour.actions)}"
                )
        for a in self.legacy_actions:
            if a not in states:
                raise ProfileError(
                    f"profile {self.name!r}: legacy_actions: unknown action {a!r}; valid values: {', '.join(self.behaviour.actions)}"
                )
        for name in self.data:
            if name in TEMPLATE_VARS and name != "sku":
                raise ProfileError(f"profile {self.name!r}: data.{name}: the name is a built-in variable; use another name (only 'sku' may be replaced)")
        drawable = set(CATALOG_DRAWS) | set(self.data)
        captured = {c.var for b in self.bindings.values() for c in b.capture}
        known = set(TEMPLATE_VARS) | captured | set(self.data)
        for a, b in self.bindings.items():
            for d in b.draw:
                if d not in drawable:
                    raise ProfileError(f"profile {self.name!r}: bindings.{a}.draw: unknown value {d!r}; valid values: {', '.join(sorted(drawable))}")
            for v in b.variables():
                if v.split(".", 1)[0] not in known:
                    raise ProfileError(
                        f"profile {self.name!r}: bindings.{a}: unknown template variable {{{v}}}; "
                        f"valid values: {', '.join(sorted(known))}"
                    )
        for k, v in self.session.headers:
            for var in _template_fields(v):
                if var.split(".", 1)[0] not in known:
                    raise ProfileError(f"profile {self.name!r}: session.headers.{k}: unknown template variable {{{var}}}; valid values: {', '.join(sorted(known))}")
        if self.behaviour.reachable() and not any(self.bindings[a].sends for a in reach):
            raise ProfileError(f"profile {self.name!r}: no reachable state sends a request (all are 'request: false')")

    # -- composition ------------------------------------------------------------------------------
    def with_(self, **changes: Any) -> Profile:
        """A copy with changes. Top-level fields (``name``, ``shape``, ``behaviour``, ``patience``,
        ``catalog``, ``bindings``, ``legacy_actions``, ``description``, ``sources``, ``data``,
        ``session``) are replaced; the fields of ``behaviour``, ``patience`` and ``catalog`` can be
        given directly too (``with_(think_scale=0.1, retry_probability=0.9, zipf_s=1.2)``);
        ``transitions`` given as a partial mapping replaces just those rows."""
        top = {f.name for f in fields(self)}
        nested = {"behaviour": Behaviour, "patience": Patience, "catalog": Catalog}
        direct: dict[str, Any] = {}
        sub: dict[str, dict[str, Any]] = {k: {} for k in nested}
        for key, value in changes.items():
            if key in top:
                direct[key] = value
                continue
            for part, cls in nested.items():
                if key in {f.name for f in fields(cls)}:
                    sub[part][key] = value
                    break
            else:
                valid = sorted(top | {f.name for cls in nested.values() for f in fields(cls)})
                raise ProfileError(f"Profile.with_: unknown field {key!r}; valid values: {', '.join(valid)}")
        if "legacy_actions" in direct:
            direct["legacy_actions"] = frozenset(direct["legacy_actions"])
        elif "bindings" in direct:
            # legacy states declared by the old bindings do not carry over to new ones
            old_declared = {a for a, b in self.bindings.items() if b.klass == "legacy"}
            direct["legacy_actions"] = frozenset(a for a in self.legacy_actions if a not in old_declared and a in direct["bindings"])
        if "bindings" in direct:
            direct["bindings"] = dict(direct["bindings"])
        out = self
        for part, kw in sub.items():
            if not kw:
                continue
            current = getattr(out, part)
            if part == "behaviour" and "transitions" in kw:
                merged = {a: dict(r) for a, r in current.transitions.items()}
                merged.update({a: dict(r) for a, r in kw["transitions"].items()})
                kw["transitions"] = merged
            if part == "catalog" and "search_terms" in kw:
                kw["search_terms"] = tuple(kw["search_terms"])
            direct[part] = replace(current, **kw)
        return replace(out, **direct) if direct else out

    def with_shape(self, shape: Shape) -> Profile:
        return self.with_(shape=shape)

    def with_bindings(self, bindings: Mapping[str, RequestBinding] | Profile, *, legacy_actions: frozenset[str] | set[str] | None = None) -> Profile:
        """Bind this behaviour to another system: ``bindings`` is a mapping or another profile whose
        bindings (and legacy actions, unless given) are taken. The bindings replace this profile's
        whole: every reachable state needs one."""
        if isinstance(bindings, Profile):
            legacy = bindings.legacy_actions if legacy_actions is None else frozenset(legacy_actions)
            return self.with_(bindings=dict(bindings.bindings), legacy_actions=legacy)
        if legacy_actions is None:
            return self.with_(bindings=dict(bindings))
        return self.with_(bindings=dict(bindings), legacy_actions=frozenset(legacy_actions))

    def scaled(self, factor: float) -> Profile:
        """Arrival rates multiplied by ``factor``."""
        return self.with_(shape=self.shape.scaled(factor))

    # -- analysis -----------------------------------------------------------------------------------
    def expected_visits(self, sessions: int = 20_000, seed: int = 0) -> dict[str, float]:
        """Mean visits per session for each state, estimated by planning ``sessions`` sessions
        (exact for the planner, including the cart rules; no impatience). Same as
        ``pytest_peakchaos.load.plan.expected_visits``."""
        from pytest_peakchaos.load.plan import expected_visits

        return expected_visits(self, sessions, seed)

    def expected_legacy_calls_per_session(self, sessions: int = 20_000, seed: int = 0) -> float:
        visits = self.expected_visits(sessions, seed)
        return sum(v for a, v in visits.items() if a in self.legacy_actions)

    # -- serialisation ------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        out = {
            "name": self.name,
            "description": self.description,
            "arrival": self.shape.to_dict(),
            "behaviour": self.behaviour.to_dict(),
            "patience": self.patience.to_dict(),
            "catalog": self.catalog.to_dict(),
            "bindings": {a: b.to_dict() for a, b in self.bindings.items()},
            "legacy_actions": sorted(self.legacy_actions),
            "sources": dict(self.sources),
        }
        if self.data:
            out["data"] = {k: d.to_dict() for k, d in self.data.items()}
        if self.session != SessionConfig():
            out["session"] = self.session.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: Any, where: str = "profile", directory: Any = None) -> Profile:
        """Build from the resolved dict form (no ``base``; ``bindings`` inline). Data files are read
        relative to ``directory``."""
        m = _mapping(data, where)
        valid = ("name", "description", "arrival", "behaviour", "patience", "catalog", "bindings", "legacy_actions",
                 "sources", "data", "session")
        _keys(m, where, valid, ("name", "arrival", "behaviour", "bindings"))
        name = m["name"]
        if not isinstance(name, str) or not name:
            raise ProfileError(f"{where}.name: expected a non-empty string, got {name!r}")
        try:
            shape = shape_from_dict(dict(_mapping(m["arrival"], f"{where}.arrival")), where=f"{where}.arrival")
        except ProfileError:
            raise
        except ValueError as exc:
            raise ProfileError(str(exc)) from None
        bindings_in = _mapping(m["bindings"], f"{where}.bindings")
        bindings: dict[str, RequestBinding] = {}
        for a, b in bindings_in.items():
            bindings[str(a)] = RequestBinding.from_dict(b, f"{where}.bindings.{a}")
        legacy = m.get("legacy_actions", [])
        if not isinstance(legacy, list) or not all(isinstance(x, str) for x in legacy):
            raise ProfileError(f"{where}.legacy_actions: expected a list of action names, got {legacy!r}")
        sources = _mapping(m.get("sources", {}), f"{where}.sources")
        data_in = _mapping(m.get("data", {}), f"{where}.data")
        datasets = {}
        for k, d in data_in.items():
            if not str(k).isidentifier():
                raise ProfileError(f"{where}.data.{k}: a data set name must be an identifier (letters, digits, '_')")
            datasets[str(k)] = DataSet.from_dict(str(k), d, f"{where}.data.{k}", directory)
        try:
            return cls(
                name=name,
                description=str(m.get("description", "")),
                shape=shape,
                behaviour=Behaviour.from_dict(m["behaviour"], f"{where}.behaviour"),
                patience=Patience.from_dict(m.get("patience", {}), f"{where}.patience"),
                catalog=Catalog.from_dict(m.get("catalog", {}), f"{where}.catalog"),
                bindings=bindings,
                legacy_actions=frozenset(legacy),
                sources={str(k): str(v) for k, v in sources.items()},
                data=datasets,
                session=SessionConfig.from_dict(m.get("session", {}), f"{where}.session"),
            )
        except ProfileError as exc:
            msg = str(exc)
            raise ProfileError(msg if msg.startswith(where) else f"{where}: {msg}") from None
