"""Requests to states: a route map the user gives, or automatic path templating.

Route map (YAML): ``routes:`` maps ``"[METHOD] /path/{var}/..."`` to a state name, first match
wins; ``{var}`` matches one path segment, the query string is ignored::

    routes:
      "GET /": home
      "GET /products/{sku}": view_product
      "POST /carts/{cart_id}/items": add_to_cart

Without one, paths are templated: numbers, UUIDs, long hex strings and tokens that mix letters
and digits become ``{id}`` (``{uuid}``), query values become ``{name}``; each (method, template) is
a state named after it (``GET /products/{id}`` -> ``products_id``, ``POST /carts/{id}/items`` ->
``post_carts_id_items``, ``/`` -> ``home``).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .logs import CalibrationError

__all__ = ["Route", "RouteMap", "AutoTemplater", "template_path", "state_name"]

_NUM = re.compile(r"^\d+$")
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_HEX = re.compile(r"^[0-9a-fA-F]{8,}$")
_DIGIT = re.compile(r"\d")
_ALPHA = re.compile(r"[A-Za-z]")
_VAR = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_STATE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def _segment(seg: str) -> str:
    if not seg:
        return seg
    if _NUM.match(seg):
        return "{id}"
    if _UUID.match(seg):
        return "{uuid}"
    if _HEX.match(seg) and _DIGIT.search(seg):
        return "{id}"
    if len(seg) >= 6 and _DIGIT.search(seg) and (_ALPHA.search(seg) or "-" in seg or "_" in seg):
        digits = len(_DIGIT.findall(seg))
        if digits >= 2 or len(seg) >= 12:
            return "{id}"
    return seg


def template_path(path: str) -> tuple[str, str]:
    """``(path template, query template)`` of a request path, e.g.
    ``/products/17?ref=ad`` -> ``("/products/{id}", "ref={ref}")``."""
    route, _, query = path.partition("?")
    route = route.split("#", 1)[0]
    segs = [_segment(s) for s in route.split("/")]
    # repeated placeholders get numbered: /a/{id}/b/{id2}
    seen: dict[str, int] = {}
    for i, s in enumerate(segs):
        if s.startswith("{"):
            n = seen.get(s, 0) + 1
            seen[s] = n
            if n > 1:
                segs[i] = s[:-1] + f"{n}}}"
    tpl = "/".join(segs) or "/"
    qnames = sorted({q.partition("=")[0] for q in query.split("&") if q and q.partition("=")[0].isidentifier()})
    return tpl, "&".join(f"{k}={{{k}}}" for k in qnames)


def state_name(method: str, template: str) -> str:
    words = []
    for seg in template.strip("/").split("/"):
        if not seg:
            continue
        m = _VAR.fullmatch(seg)
        words.append(m.group(1) if m else re.sub(r"[^a-z0-9]+", "_", seg.lower()).strip("_"))
    name = "_".join(w for w in words if w) or "home"
    if method != "GET":
        name = f"{method.lower()}_{name}"
    if name[0].isdigit():
        name = "p_" + name
    return name


class AutoTemplater:
    """(method, path) -> state key ``"METHOD template"``, cached (bounded)."""

    def __init__(self) -> None:
        self.cache: dict[tuple[str, str], str] = {}
        self.queries: dict[str, str] = {}  # state key -> query template seen first

    def __call__(self, method: str, path: str) -> str | None:
        key = (method, path)
        hit = self.cache.get(key)
        if hit is not None:
            return hit
        tpl, query = template_path(path)
        state = f"{'GET' if method == 'HEAD' else method} {tpl}"
        if query and state not in self.queries and len(self.queries) < 10_000:
            self.queries[state] = query
        if len(self.cache) > 100_000:
            self.cache.clear()
        self.cache[key] = state
        return state


@dataclass(frozen=True)
class Route:
    state: str
    method: str | None
    template: str
    regex: re.Pattern[str]


class RouteMap:
    """User-given routes; ``__call__`` returns the state of a request or ``None`` (unmatched)."""

    def __init__(self, routes: list[Route], source: str = "route map") -> None:
        if not routes:
            raise CalibrationError(f"{source}: no routes; expected 'routes:' mapping \"[METHOD] /path/{{var}}\" to a state name")
        self.routes = routes
        self.source = source
        self.cache: dict[tuple[str, str], str | None] = {}

    @classmethod
    def from_mapping(cls, data: Any, source: str = "route map") -> RouteMap:
        if isinstance(data, dict) and "routes" in data:
            data = data["routes"]
        if not isinstance(data, dict):
            raise CalibrationError(f"{source}: expected a mapping 'routes:' of \"[METHOD] /path\" -> state name, got {type(data).__name__}")
        out = []
        for key, state in data.items():
            where = f"{source}: routes.{key!r}"
            if not isinstance(key, str) or not isinstance(state, str) or not _STATE.match(state):
                raise CalibrationError(f"{where}: expected \"[METHOD] /path\": state_name (letters, digits, _ . -), got {state!r}")
            parts = key.split()
            method: str | None = None
            if len(parts) == 2:
                method, tpl = parts[0].upper(), parts[1]
                if method not in _METHODS:
                    raise CalibrationError(f"{where}: unknown method {parts[0]!r}; valid values: {', '.join(_METHODS)}")
            elif len(parts) == 1:
                tpl = parts[0]
            else:
                raise CalibrationError(f"{where}: expected \"[METHOD] /path\"")
            if not tpl.startswith("/"):
                raise CalibrationError(f"{where}: the path must start with '/'")
            tpl = tpl.split("?", 1)[0]
            pattern = "".join("[^/]+" if p.startswith("{") else re.escape(p) for p in re.split(r"(\{[^}]*\})", tpl))
            out.append(Route(state, method, tpl, re.compile(f"^{pattern}/?$")))
        return cls(out, source)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> RouteMap:
        import yaml

        p = Path(path)
        try:
            data = yaml.safe_load(p.read_text(encoding="utf-8"))
        except OSError as exc:
            raise CalibrationError(f"{p}: cannot read the route map ({exc.strerror or exc})") from None
        except yaml.YAMLError as exc:
            raise CalibrationError(f"{p}: not YAML ({exc})") from None
        return cls.from_mapping(data, str(p))

    def __call__(self, method: str, path: str) -> str | None:
        key = (method, path)
        if key in self.cache:
            return self.cache[key]
        route = path.split("?", 1)[0]
        found = None
        for r in self.routes:
            if (r.method is None or r.method == method or (r.method == "GET" and method == "HEAD")) and r.regex.match(route):
                found = r.state
                break
        if len(self.cache) > 100_000:
            self.cache.clear()
        self.cache[key] = found
        return found

    def binding_of(self, state: str) -> tuple[str, str] | None:
        """(method, path template) of the first route naming ``state``."""
        for r in self.routes:
            if r.state == state:
                return r.method or "GET", r.template
        return None
