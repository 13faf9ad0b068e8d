"""The shopper profile: who arrives when (a traffic shape), what they do (a Customer Behavior Model
Graph with think times, patience and Zipf-popular products) and what each action means over HTTP
(request bindings).

Everything here is an immutable value; ``Profile.with_(...)`` returns changed copies, and
``Profile.from_dict`` / ``to_dict`` are the YAML/JSON forms (see ``loader.py`` and docs/load.md).
"""

from __future__ import annotations

import math
import random
import string
from dataclasses import dataclass, field, fields, replace
from typing import Any, Mapping

from pytest_peakchaos.load.shapes import Shape, shape_from_dict

__all__ = [
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

ENTRY = "entry"
EXIT = "exit"
#: The actions of the graph (the non-virtual states). ``entry`` and ``exit`` send no request.
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
STATES: tuple[str, ...] = (ENTRY, *ACTIONS, EXIT)
#: Actions that need something in the (planned) cart; when it is empty their probability is spread
#: over the row's other targets.
NEEDS_CART: frozenset[str] = frozenset({"remove_from_cart", "checkout"})

#: Variables a request template may use (plus any a binding ``capture``s from a response).
TEMPLATE_VARS: dict[str, str] = {
    "session": "the session's index in the run (0, 1, ...)",
    "run_id": "the run's id (random per run unless given)",
    "cart_id": "a per-session cart id: pc-<run_id>-<session>",
    "sku": "the product: Zipf-picked (view_product, add_to_cart without a preceding view) or a cart item (remove_from_cart)",
    "qty": "catalog.qty",
    "page": "browse page, Zipf-picked from 1..catalog.pages",
    "query": "search term, Zipf-picked from catalog.search_terms (URL-quoted in paths, raw in JSON)",
    "idempotency_key": "a fresh key per checkout; an impatient retry of the same checkout reuses it",
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
            v = rng.expovariate(1.0 / self.mean)
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
    """The Customer Behavior Model Graph.

    ``transitions[a][b]`` is the probability of going from state ``a`` to ``b``; rows exist for
    ``entry`` and every action that can be reached, and each sums to 1. ``think[a]`` is the time a
    shopper spends on the page of action ``a`` before the next request (``think_default`` for
    actions not listed), multiplied by ``think_scale`` (a time compression for short CI runs).
    ``max_actions`` bounds a session's length.
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
    def states(self) -> tuple[str, ...]:
        """The states that occur, in canonical order (``entry`` first, ``exit`` last)."""
        used = set(self.transitions)
        for row in self.transitions.values():
            used.update(k for k, p in row.items() if p > 0)
        return tuple(s for s in STATES if s in used)

    @property
    def matrix(self) -> list[list[float]]:
        """The transition matrix over ``states`` (rows: from, columns: to)."""
        st = self.states
        return [[self.transitions.get(a, {}).get(b, 0.0) for b in st] for a in st]

    def reachable(self) -> tuple[str, ...]:
        """Actions reachable from ``entry``."""
        seen: set[str] = set()
        todo = [ENTRY]
        for _ in range(len(STATES) * len(STATES)):
            if not todo:
                break
            a = todo.pop()
            for b, p in self.transitions.get(a, {}).items():
                if p > 0 and b not in seen and b != EXIT:
                    seen.add(b)
                    todo.append(b)
        return tuple(a for a in ACTIONS if a in seen)

    def think_for(self, action: str) -> Dist:
        return self.think.get(action, self.think_default)

    def validate(self) -> None:
        where = "behaviour.transitions"
        if ENTRY not in self.transitions:
            raise ProfileError(f"{where}: needs a row for {ENTRY!r} (where sessions start)")
        if self.think_scale < 0 or self.max_actions < 1:
            raise ProfileError("behaviour: think_scale must be >= 0 and max_actions >= 1")
        for a, row in self.transitions.items():
            if a not in STATES or a == EXIT:
                raise ProfileError(f"{where}.{a}: unknown state; valid rows: {', '.join(s for s in STATES if s != EXIT)}")
            total = 0.0
            for b, p in row.items():
                if b not in STATES or b == ENTRY:
                    raise ProfileError(f"{where}.{a}.{b}: unknown target state; valid values: {', '.join(STATES[1:])}")
                if not (0.0 <= p <= 1.0):
                    raise ProfileError(f"{where}.{a}.{b}: a probability must be between 0 and 1, got {p!r}")
                total += p
            if abs(total - 1.0) > 1e-6:
                raise ProfileError(f"{where}.{a}: probabilities must sum to 1, they sum to {total:.6g}")
        for a in self.reachable():
            if a not in self.transitions:
                raise ProfileError(f"{where}: state {a!r} can be reached but has no row of transitions")
        # every reachable state must be able to reach exit (else sessions only end by max_actions)
        can_exit = {EXIT}
        for _ in range(len(STATES)):
            for a, row in self.transitions.items():
                if any(p > 0 and b in can_exit for b, p in row.items()):
                    can_exit.add(a)
        for a in (ENTRY, *self.reachable()):
            if a not in can_exit:
                raise ProfileError(f"{where}.{a}: no path from {a!r} to {EXIT!r}; sessions would never end")
        for a in self.think:
            if a not in ACTIONS:
                raise ProfileError(f"behaviour.think.{a}: unknown action; valid values: default, {', '.join(ACTIONS)}")

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
            r = _mapping(row, f"{where}.transitions.{a}")
            rows[str(a)] = {str(b): _num(p, f"{where}.transitions.{a}.{b}", minimum=0, maximum=1) for b, p in r.items()}
        think_in = _mapping(m.get("think", {}), f"{where}.think")
        default = Dist.exponential(7.0, 70.0)
        think: dict[str, Dist] = {}
        for a, d in think_in.items():
            if a == "default":
                default = Dist.from_dict(d, f"{where}.think.default")
            elif a in ACTIONS:
                think[a] = Dist.from_dict(d, f"{where}.think.{a}")
            else:
                raise ProfileError(f"{where}.think.{a}: unknown action; valid values: default, {', '.join(ACTIONS)}")
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


def _template_fields(template: Any) -> set[str]:
    """The ``{var}`` names used in a (nested) template."""
    out: set[str] = set()
    if isinstance(template, str):
        for _, name, spec, conv in string.Formatter().parse(template):
            if name is not None:
                if not name.isidentifier() or spec or conv:
                    raise ProfileError(f"template {template!r}: use plain '{{name}}' placeholders (no format specs)")
                out.add(name)
    elif isinstance(template, Mapping):
        for k, v in template.items():
            out |= _template_fields(k) | _template_fields(v)
    elif isinstance(template, (list, tuple)):
        for v in template:
            out |= _template_fields(v)
    return out


@dataclass(frozen=True)
class RequestBinding:
    """How one action becomes an HTTP request.

    ``path`` and ``json`` are templates with ``{var}`` placeholders (``TEMPLATE_VARS`` plus anything a
    binding ``capture``s). A JSON string that is exactly ``"{var}"`` is replaced by the typed value
    (``"{sku}"`` -> ``7``). ``idempotency_key`` names a header that carries a fresh key per action
    (checkout); a response whose status is in ``acknowledge`` counts as an *acknowledged order*, with
    its id read from the dotted JSON path ``order_id``. ``capture`` maps session variables to dotted
    JSON paths read from 2xx responses.
    """

    method: str
    path: str
    json: Any = None
    headers: tuple[tuple[str, str], ...] = ()
    idempotency_key: str | None = None
    order_id: str | None = None
    acknowledge: tuple[int, ...] = ()
    capture: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if self.method not in HTTP_METHODS:
            raise ProfileError(f"method: unknown HTTP method {self.method!r}; valid values: {', '.join(HTTP_METHODS)}")
        if not self.path.startswith("/"):
            raise ProfileError(f"path: must start with '/', got {self.path!r}")

    @property
    def acknowledges(self) -> bool:
        return bool(self.acknowledge)

    def variables(self) -> set[str]:
        names = _template_fields(self.path) | _template_fields(self.json)
        for k, v in self.headers:
            names |= _template_fields(k) | _template_fields(v)
        return names

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"method": self.method, "path": self.path}
        if self.json is not None:
            out["json"] = self.json
        if self.headers:
            out["headers"] = dict(self.headers)
        if self.idempotency_key:
            out["idempotency_key"] = self.idempotency_key
        if self.order_id:
            out["order_id"] = self.order_id
        if self.acknowledge:
            out["acknowledge"] = list(self.acknowledge)
        if self.capture:
            out["capture"] = dict(self.capture)
        return out

    @classmethod
    def from_dict(cls, data: Any, where: str) -> RequestBinding:
        m = _mapping(data, where)
        valid = ("method", "path", "json", "headers", "idempotency_key", "order_id", "acknowledge", "capture")
        _keys(m, where, valid, ("method", "path"))
        method = m["method"]
        if not isinstance(method, str) or method.upper() not in HTTP_METHODS:
            raise ProfileError(f"{where}.method: unknown HTTP method {method!r}; valid values: {', '.join(HTTP_METHODS)}")
        path = m["path"]
        if not isinstance(path, str) or not path.startswith("/"):
            raise ProfileError(f"{where}.path: expected a path template starting with '/', got {path!r}")
        headers = _mapping(m.get("headers", {}), f"{where}.headers")
        capture = _mapping(m.get("capture", {}), f"{where}.capture")
        ack = m.get("acknowledge")
        key = m.get("idempotency_key")
        if key is not None and (not isinstance(key, str) or not key):
            raise ProfileError(f"{where}.idempotency_key: expected a header name such as 'Idempotency-Key', got {key!r}")
        if ack is None:
            ack_t: tuple[int, ...] = (200, 201, 202) if (key or m.get("order_id")) else ()
        else:
            if not isinstance(ack, list) or not all(isinstance(x, int) and 100 <= x <= 599 for x in ack):
                raise ProfileError(f"{where}.acknowledge: expected a list of HTTP status codes such as [201, 202], got {ack!r}")
            ack_t = tuple(ack)
        order_id = m.get("order_id")
        if order_id is not None and not isinstance(order_id, str):
            raise ProfileError(f"{where}.order_id: expected a dotted JSON path such as 'order_id', got {order_id!r}")
        for var, p in capture.items():
            if not str(var).isidentifier() or not isinstance(p, str):
                raise ProfileError(f"{where}.capture.{var}: expected 'variable: dotted.json.path', got {p!r}")
        try:
            b = cls(
                method=method.upper(),
                path=path,
                json=m.get("json"),
                headers=tuple((str(k), str(v)) for k, v in headers.items()),
                idempotency_key=key,
                order_id=order_id,
                acknowledge=ack_t,
                capture=tuple((str(k), str(v)) for k, v in capture.items()),
            )
            b.variables()
        except ProfileError as exc:
            raise ProfileError(f"{where}.{exc}") from None
        return b


@dataclass(frozen=True)
class Profile:
    """A named shopper population: arrival ``shape``, ``behaviour`` graph, ``patience``, ``catalog``
    (Zipf popularity), per-action request ``bindings`` and the ``legacy_actions`` whose binding
    reaches the legacy system. ``sources`` documents where each number comes from."""

    name: str
    shape: Shape
    behaviour: Behaviour
    bindings: dict[str, RequestBinding]
    patience: Patience = field(default_factory=Patience)
    catalog: Catalog = field(default_factory=Catalog)
    legacy_actions: frozenset[str] = frozenset()
    description: str = ""
    sources: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.legacy_actions, frozenset):
            object.__setattr__(self, "legacy_actions", frozenset(self.legacy_actions))
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
        """The actions sessions can reach."""
        return self.behaviour.reachable()

    def validate(self) -> None:
        for a in self.behaviour.reachable():
            if a not in self.bindings:
                raise ProfileError(
                    f"profile {self.name!r}: action {a!r} can be reached but has no binding; "
                    f"bound actions: {', '.join(sorted(self.bindings)) or '(none)'}"
                )
        for a in self.bindings:
            if a not in ACTIONS:
                raise ProfileError(f"profile {self.name!r}: bindings.{a}: unknown action; valid values: {', '.join(ACTIONS)}")
        for a in self.legacy_actions:
            if a not in ACTIONS:
                raise ProfileError(f"profile {self.name!r}: legacy_actions: unknown action {a!r}; valid values: {', '.join(ACTIONS)}")
        captured = {v for b in self.bindings.values() for v, _ in b.capture}
        known = set(TEMPLATE_VARS) | captured
        for a, b in self.bindings.items():
            for v in b.variables():
                if v not in known:
                    raise ProfileError(
                        f"profile {self.name!r}: bindings.{a}: unknown template variable {{{v}}}; "
                        f"valid values: {', '.join(sorted(known))}"
                    )

    # -- composition ------------------------------------------------------------------------------
    def with_(self, **changes: Any) -> Profile:
        """A copy with changes. Top-level fields (``name``, ``shape``, ``behaviour``, ``patience``,
        ``catalog``, ``bindings``, ``legacy_actions``, ``description``, ``sources``) are replaced;
        the fields of ``behaviour``, ``patience`` and ``catalog`` can be given directly too
        (``with_(think_scale=0.1, retry_probability=0.9, zipf_s=1.2)``); ``transitions`` given as a
        partial mapping replaces just those rows."""
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
        if "bindings" in direct:
            direct["bindings"] = dict(direct["bindings"])
        out = replace(self, **direct) if direct else self
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
            out = replace(out, **{part: replace(current, **kw)})
        return out

    def with_shape(self, shape: Shape) -> Profile:
        return self.with_(shape=shape)

    def with_bindings(self, bindings: Mapping[str, RequestBinding] | Profile, *, legacy_actions: frozenset[str] | set[str] | None = None) -> Profile:
        """Bind this behaviour to another system: ``bindings`` is a mapping or another profile whose
        bindings (and legacy actions, unless given) are taken."""
        if isinstance(bindings, Profile):
            legacy = bindings.legacy_actions if legacy_actions is None else frozenset(legacy_actions)
            return self.with_(bindings=dict(bindings.bindings), legacy_actions=legacy)
        return self.with_(bindings=dict(bindings), legacy_actions=self.legacy_actions if legacy_actions is None else frozenset(legacy_actions))

    def scaled(self, factor: float) -> Profile:
        """Arrival rates multiplied by ``factor``."""
        return self.with_(shape=self.shape.scaled(factor))

    # -- analysis -----------------------------------------------------------------------------------
    def expected_visits(self, sessions: int = 20_000, seed: int = 0) -> dict[str, float]:
        """Mean visits per session for each action, estimated by planning ``sessions`` sessions
        (exact for the planner, including the cart rules; no impatience)."""
        from pytest_peakchaos.load.plan import plan_sessions

        counts = {a: 0 for a in ACTIONS}
        for plan in plan_sessions(self, seed, sessions):
            for step in plan.steps:
                counts[step.action] += 1
        return {a: c / sessions for a, c in counts.items() if a in self.actions or c}

    def expected_legacy_calls_per_session(self, sessions: int = 20_000, seed: int = 0) -> float:
        visits = self.expected_visits(sessions, seed)
        return sum(v for a, v in visits.items() if a in self.legacy_actions)

    # -- serialisation ------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
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

    @classmethod
    def from_dict(cls, data: Any, where: str = "profile") -> Profile:
        """Build from the resolved dict form (no ``base``; ``bindings`` inline)."""
        m = _mapping(data, where)
        valid = ("name", "description", "arrival", "behaviour", "patience", "catalog", "bindings", "legacy_actions", "sources")
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
            if a not in ACTIONS:
                raise ProfileError(f"{where}.bindings.{a}: unknown action; valid values: {', '.join(ACTIONS)}")
            bindings[a] = RequestBinding.from_dict(b, f"{where}.bindings.{a}")
        legacy = m.get("legacy_actions", [])
        if not isinstance(legacy, list) or not all(isinstance(x, str) for x in legacy):
            raise ProfileError(f"{where}.legacy_actions: expected a list of action names, got {legacy!r}")
        for a in legacy:
            if a not in ACTIONS:
                raise ProfileError(f"{where}.legacy_actions: unknown action {a!r}; valid values: {', '.join(ACTIONS)}")
        sources = _mapping(m.get("sources", {}), f"{where}.sources")
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
            )
        except ProfileError as exc:
            msg = str(exc)
            raise ProfileError(msg if msg.startswith(where) else f"{where}: {msg}") from None
