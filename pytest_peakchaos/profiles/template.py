"""Request templates: ``{name}`` or ``{name.field}`` placeholders, ``{{``/``}}`` literal braces.

A template is parsed once into parts (literal text and variable references) so the load engine's
hot path only joins strings. ``fields(t)`` lists the variables for validation; ``Template`` renders
with a per-placement encoder (URL-quoting in paths, form-encoding in forms, none in headers).
"""

from __future__ import annotations

import re
from typing import Any, Callable

__all__ = ["TemplateError", "Template", "parse", "fields", "lookup"]

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*\Z")


class TemplateError(ValueError):
    """A template that cannot be parsed; the message quotes it."""


def parse(text: str) -> list[str | tuple[str, str | None]]:
    """Parts of ``text``: literal strings and ``(name, field or None)`` references."""
    parts: list[str | tuple[str, str | None]] = []
    lit: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "{":
            if text.startswith("{{", i):
                lit.append("{")
                i += 2
                continue
            j = text.find("}", i)
            if j < 0:
                raise TemplateError(f"template {text!r}: '{{' without a closing '}}' (write '{{{{' for a literal brace)")
            name = text[i + 1 : j].strip()
            if not _NAME.match(name):
                raise TemplateError(
                    f"template {text!r}: bad placeholder {{{name}}}; use {{name}} or {{name.field}} (no format specs)"
                )
            if lit:
                parts.append("".join(lit))
                lit = []
            head, _, rest = name.partition(".")
            parts.append((head, rest or None))
            i = j + 1
        elif c == "}":
            if text.startswith("}}", i):
                lit.append("}")
                i += 2
                continue
            raise TemplateError(f"template {text!r}: single '}}' (write '}}}}' for a literal brace)")
        else:
            lit.append(c)
            i += 1
    if lit:
        parts.append("".join(lit))
    return parts


def fields(template: Any) -> set[str]:
    """The variable names (``name`` or ``name.field``) used in a (nested) template."""
    out: set[str] = set()
    if isinstance(template, str):
        for p in parse(template):
            if isinstance(p, tuple):
                out.add(p[0] if p[1] is None else f"{p[0]}.{p[1]}")
    elif isinstance(template, dict):
        for k, v in template.items():
            out |= fields(k) | fields(v)
    elif isinstance(template, (list, tuple)):
        for v in template:
            out |= fields(v)
    return out


def lookup(values: dict[str, Any], name: str, field: str | None) -> Any:
    v = values.get(name, "")
    if field is None:
        return v
    for part in field.split("."):
        if isinstance(v, dict):
            v = v.get(part, "")
        elif isinstance(v, list) and part.isdigit() and int(part) < len(v):
            v = v[int(part)]
        else:
            return ""
    return v


class Template:
    """A parsed string template rendered with ``encode(value) -> str`` for each variable."""

    __slots__ = ("text", "parts", "static", "single", "literal", "fmt", "names")

    def __init__(self, text: str) -> None:
        self.text = text
        self.parts = parse(text)
        self.static = all(isinstance(p, str) for p in self.parts)
        self.literal = "".join(p for p in self.parts if isinstance(p, str)) if self.static else ""
        # the fast form when no placeholder has a field: a %-format over the values in order
        plain = all(isinstance(p, str) or p[1] is None for p in self.parts)
        self.fmt = "".join(p.replace("%", "%%") if isinstance(p, str) else "%s" for p in self.parts) if plain else None
        self.names = tuple(p[0] for p in self.parts if isinstance(p, tuple))
        # exactly one placeholder and nothing else: JSON bodies keep the typed value
        self.single = self.parts[0] if len(self.parts) == 1 and isinstance(self.parts[0], tuple) else None

    def render(self, values: dict[str, Any], encode: Callable[[Any], str]) -> str:
        if self.static:
            return self.literal
        if self.fmt is not None:
            get = values.get
            return self.fmt % tuple([encode(get(n, "")) for n in self.names])
        out = []
        for p in self.parts:
            if isinstance(p, str):
                out.append(p)
            else:
                out.append(encode(lookup(values, p[0], p[1])))
        return "".join(out)

    def typed(self, values: dict[str, Any]) -> Any:
        """The raw value for a single-placeholder template, else the rendered string."""
        if self.single is not None:
            return lookup(values, self.single[0], self.single[1])
        return self.render(values, _plain)


def _plain(v: Any) -> str:
    if isinstance(v, list):
        return ",".join(map(str, v))
    return str(v)
