"""Reading compose YAML like compose's Go parser does, and merging override files like compose.

YAML 1.2 core schema: ``22:22`` is a string (not the sexagesimal 1342), ``yes``/``no``/``on``/``off``
are strings, dates are strings, a key repeated in one mapping is an error; anchors and ``<<:``
merge keys work; ``!reset`` and ``!override`` work in override files.
"""

from __future__ import annotations

import re
from collections.abc import Hashable
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import ConstructorError

from .values import _ROOT, _Ctx, _mapping

class _Loader(yaml.SafeLoader):
    """A SafeLoader (no arbitrary objects) with YAML 1.2 core scalars and duplicate-key errors."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        seen: set[object] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, Hashable):
                if key in seen:
                    raise ConstructorError(
                        "while constructing a mapping",
                        node.start_mark,
                        f"found duplicate key {key!r}; each key may appear once in a mapping",
                        key_node.start_mark,
                    )
                seen.add(key)
        return super().construct_mapping(node, deep)


def _construct_int(loader: yaml.SafeLoader, node: yaml.Node) -> int:
    assert isinstance(node, yaml.ScalarNode)
    text = loader.construct_scalar(node).replace("_", "")
    if text.startswith(("0o", "0O")):
        return int(text[2:], 8)
    if text.startswith(("0x", "0X")):
        return int(text[2:], 16)
    return int(text, 10)


def _construct_float(loader: yaml.SafeLoader, node: yaml.Node) -> float:
    assert isinstance(node, yaml.ScalarNode)
    text = loader.construct_scalar(node).lower()
    if text.endswith(".inf"):
        return float("-inf") if text.startswith("-") else float("inf")
    if text == ".nan":
        return float("nan")
    return float(text)


_Loader.yaml_implicit_resolvers = {}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:int", re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"), list("-+0123456789")
)
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+0123456789."),
)
_Loader.add_implicit_resolver("tag:yaml.org,2002:null", re.compile(r"^(?:~|null|Null|NULL|)$"), ["~", "n", "N", ""])
_Loader.add_implicit_resolver("tag:yaml.org,2002:merge", re.compile(r"^(?:<<)$"), ["<"])
_Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)
_Loader.add_constructor("tag:yaml.org,2002:float", _construct_float)

def load_document(ctx: _Ctx, path: Path) -> dict[str, object]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        ctx.fail(_ROOT, f"compose file {path} does not exist; check --peakchaos-stack or the path you passed")
    except IsADirectoryError:
        ctx.fail(_ROOT, f"{path} is a folder; pass the compose file inside it (e.g. compose/shop.yml)")
    except (OSError, UnicodeDecodeError) as exc:
        ctx.fail(_ROOT, f"cannot read the compose file: {exc}")
    try:
        document = yaml.load(text, Loader=_Loader)  # _Loader is a SafeLoader: no arbitrary objects
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = ": ".join(p for p in (exc.context, exc.problem) if p)
        what = "invalid YAML" if isinstance(exc, ConstructorError) else "YAML syntax error"
        ctx.fail(_ROOT, f"{what}{where}: {problem or exc}")
    except yaml.YAMLError as exc:
        ctx.fail(_ROOT, f"YAML syntax error: {exc}")
    if document is None:
        ctx.fail(_ROOT, "the file is empty; a compose file needs at least 'services:'")
    return _mapping(ctx, _ROOT, document, "a mapping with 'services' at the top of the file")



class Reset:
    """``!reset``: the key is removed from what the earlier files said."""


class Override:
    """``!override value``: the value replaces (not merges with) what the earlier files said."""

    def __init__(self, value: object) -> None:
        self.value = value


def _construct_reset(loader: yaml.SafeLoader, node: yaml.Node) -> Reset:
    return Reset()


def _construct_override(loader: yaml.SafeLoader, node: yaml.Node) -> Override:
    if isinstance(node, yaml.MappingNode):
        return Override(loader.construct_mapping(node, deep=True))
    if isinstance(node, yaml.SequenceNode):
        return Override(loader.construct_sequence(node, deep=True))
    assert isinstance(node, yaml.ScalarNode)
    return Override(loader.construct_scalar(node))


_Loader.add_constructor("!reset", _construct_reset)
_Loader.add_constructor("!override", _construct_override)

#: service keys whose lists become maps keyed by name (``K=V`` or ``K: V``) when files are merged
_AS_MAP = ("environment", "labels", "extra_hosts", "sysctls", "annotations")
#: service keys whose list items are merged by their container path
_BY_TARGET = ("volumes", "devices", "secrets", "configs", "tmpfs")
#: service keys an override replaces whole
_REPLACED = ("command", "entrypoint", "healthcheck.test")


def _as_map(value: object) -> object:
    if not isinstance(value, list):
        return value
    out: dict[str, object] = {}
    for item in value:
        text = str(item)
        name, sep, rest = text.partition("=")
        out[name] = rest if sep else None
    return out


def _target_of(item: object) -> object:
    if isinstance(item, dict):
        return item.get("target", item.get("source", repr(item)))
    text = str(item)
    parts = text.split(":")
    return parts[1] if len(parts) >= 2 else parts[0]


def _merge(base: object, over: object, path: str) -> object:
    if isinstance(over, Reset):
        return over
    if isinstance(over, Override):
        return _strip(over.value)
    leaf = path.rsplit(".", 1)[-1]
    in_service = path.startswith("services.") and path.count(".") >= 2
    rel = path.split(".", 2)[2] if in_service else ""
    if in_service and rel in _REPLACED:
        return _strip(over)
    if in_service and rel in _AS_MAP or leaf in ("args",) and in_service:
        base, over = _as_map(base), _as_map(over)
    if in_service and rel == "depends_on":
        base = {k: None for k in base} if isinstance(base, list) else base
        over = {k: None for k in over} if isinstance(over, list) else over
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for key, value in over.items():
            merged = _merge(base[key], value, f"{path}.{key}" if path else str(key)) if key in base else _strip(value)
            if isinstance(merged, Reset):
                out.pop(key, None)
            else:
                out[key] = merged
        return out
    if isinstance(base, list) and isinstance(over, list):
        if in_service and rel in _BY_TARGET:
            by: dict[object, object] = {_target_of(item): item for item in base}
            for item in over:
                by[_target_of(item)] = _strip(item)
            return list(by.values())
        out_list = list(base)
        for item in over:
            if item not in out_list:
                out_list.append(_strip(item))
        return out_list
    return _strip(over)


def _strip(value: object) -> object:
    """Drop ``!reset``/``!override`` markers from a value taken whole."""
    if isinstance(value, Override):
        return _strip(value.value)
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if not isinstance(v, Reset)}
    if isinstance(value, list):
        return [_strip(v) for v in value if not isinstance(v, Reset)]
    return value


def merge_documents(documents: list[dict[str, object]]) -> dict[str, object]:
    """Compose's merge of ``-f a.yml -f b.yml``: later files override and extend earlier ones."""
    merged: object = _strip(documents[0])
    for document in documents[1:]:
        merged = _merge(merged, document, "")
    assert isinstance(merged, dict)
    return merged
