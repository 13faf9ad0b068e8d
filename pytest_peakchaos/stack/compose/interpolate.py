"""Compose's variable interpolation (``${VAR:-default}`` and friends) and ``.env``/``env_file`` files."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from .values import _ROOT, _Ctx, _join

class _InterpolationError(Exception):
    pass


_VAR_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_BRACED = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])(.*))?", re.DOTALL)


def _interpolate(text: str, lookup: Mapping[str, str]) -> str:
    if "$" not in text:
        return text
    out: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char != "$":
            out.append(char)
            i += 1
            continue
        nxt = text[i + 1 : i + 2]
        if nxt == "$":
            out.append("$")
            i += 2
        elif nxt == "{":
            end = _closing_brace(text, i + 2)
            if end < 0:
                raise _InterpolationError(f"unclosed '${{' in {text!r}; write '$$' for a literal '$'")
            out.append(_braced(text[i + 2 : end], lookup))
            i = end + 1
        elif match := _VAR_NAME.match(text, i + 1):
            out.append(lookup.get(match[0], ""))
            i = match.end()
        else:
            raise _InterpolationError(
                f"invalid interpolation in {text!r}: '$' must be followed by a variable name, "
                "'{' or another '$' (write '$$' for a literal '$')"
            )
    return "".join(out)


def _closing_brace(text: str, start: int) -> int:
    depth = 0
    j = start
    while j < len(text):
        if text.startswith("$$", j):
            j += 2
        elif text.startswith("${", j):
            depth += 1
            j += 2
        elif text[j] == "}":
            if depth == 0:
                return j
            depth -= 1
            j += 1
        else:
            j += 1
    return -1


def _braced(inner: str, lookup: Mapping[str, str]) -> str:
    match = _BRACED.fullmatch(inner)
    if match is None:
        raise _InterpolationError(
            f"invalid interpolation '${{{inner}}}'; valid forms: ${{VAR}}, ${{VAR:-default}}, ${{VAR-default}}, "
            "${VAR:?message}, ${VAR?message}, ${VAR:+alternative}, ${VAR+alternative}"
        )
    name, op, arg = match[1], match[2], match[3] or ""
    value = lookup.get(name)
    is_set = value is not None
    non_empty = bool(value)
    if op is None:
        return value or ""
    if op in (":-", "-"):
        use_default = not non_empty if op == ":-" else not is_set
        return _interpolate(arg, lookup) if use_default else (value or "")
    if op in (":?", "?"):
        missing = not non_empty if op == ":?" else not is_set
        if missing:
            message = _interpolate(arg, lookup) or "set it in the environment or in .env"
            raise _InterpolationError(f"required variable {name} is missing a value: {message}")
        return value or ""
    # ":+" / "+": the alternative when set
    present = non_empty if op == ":+" else is_set
    return _interpolate(arg, lookup) if present else ""


def _interpolate_tree(ctx: _Ctx, key: str, value: object) -> object:
    if isinstance(value, str):
        try:
            return _interpolate(value, ctx.lookup)
        except _InterpolationError as exc:
            ctx.fail(key or _ROOT, str(exc))
    if isinstance(value, list):
        return [_interpolate_tree(ctx, _join(key, i), item) for i, item in enumerate(value)]
    if isinstance(value, dict):
        return {k: _interpolate_tree(ctx, _join(key, str(k)), v) for k, v in value.items()}
    from .yamlfile import Override

    if isinstance(value, Override):
        return Override(_interpolate_tree(ctx, key, value.value))
    return value


_ENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")


def _read_env_file(ctx: _Ctx, key: str, path: Path, lookup: Mapping[str, str]) -> dict[str, str]:
    """``KEY=VALUE`` lines; ``#`` comments; optional ``export``; quotes; ``$VAR`` interpolated (not in '…')."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        ctx.fail(key, f"env file {path} does not exist; create it or remove it from the list")
    except (OSError, UnicodeDecodeError) as exc:
        ctx.fail(key, f"cannot read env file {path}: {exc}")
    values: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export ") :].lstrip()
        name, sep, rest = line.partition("=")
        name = name.strip()
        where = f"line {number} of {path}"
        if not _ENV_KEY.match(name):
            ctx.fail(key, f"{where}: expected KEY=VALUE with KEY made of letters, digits and _, got {raw.strip()!r}")
        if not sep:  # a bare KEY takes its value from the environment, when set there
            if name in lookup:
                values[name] = lookup[name]
            continue
        rest = rest.lstrip()
        chained = {**lookup, **values}
        try:
            if rest[:1] in ("'", '"'):
                quote = rest[0]
                end = _closing_quote(rest, quote)
                if end < 0:
                    ctx.fail(key, f"{where}: unterminated {quote} quote (values must fit on one line)")
                body = rest[1:end]
                trailing = rest[end + 1 :].strip()
                if trailing and not trailing.startswith("#"):
                    ctx.fail(key, f"{where}: unexpected text {trailing!r} after the closing quote")
                if quote == '"':
                    body = (
                        body.replace("\\\\", "\x00")
                        .replace('\\"', '"')
                        .replace("\\n", "\n")
                        .replace("\\t", "\t")
                        .replace("\x00", "\\")
                    )
                    values[name] = _interpolate(body, chained)
                else:
                    values[name] = body  # single quotes: literal
            else:
                comment = re.search(r"\s#", rest)
                if comment is not None:
                    rest = rest[: comment.start()]
                values[name] = _interpolate(rest.rstrip(), chained)
        except _InterpolationError as exc:
            ctx.fail(key, f"{where}: {exc}")
    return values


def _closing_quote(text: str, quote: str) -> int:
    j = 1
    while j < len(text):
        if quote == '"' and text[j] == "\\":
            j += 2
            continue
        if text[j] == quote:
            return j
        j += 1
    return -1


