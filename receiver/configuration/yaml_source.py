"""YAML text → plain Python values that remember the line each key and value was written on.

Scalars are typed with the YAML 1.2 core schema, as the Collector's YAML library does: only
``true``/``false`` are booleans (``yes``, ``on``, ``off`` stay strings), ``010`` is ten, and
``1:30`` is a string.  Mapping keys are always the text as written (never typed) and must be
unique.  Merge keys (``<<: *anchor``) are supported.  Nothing here expands ``${env:...}``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from receiver.configuration.errors import ConfigError, Location

_TAG = "tag:yaml.org,2002:"
_STR, _NULL, _BOOL, _INT, _FLOAT, _MERGE = (
    _TAG + name for name in ("str", "null", "bool", "int", "float", "merge")
)

_CORE_SCHEMA = (
    (_NULL, r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""]),
    (_BOOL, r"^(?:true|True|TRUE|false|False|FALSE)$", list("tTfF")),
    (_INT, r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$", list("-+0123456789")),
    (
        _FLOAT,
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.nan|\.NaN|\.NAN)$",
        list("-+.0123456789"),
    ),
    (_MERGE, r"^(?:<<)$", ["<"]),
)


class _CoreSchemaLoader(yaml.SafeLoader):
    """SafeLoader that composes nodes with YAML 1.2 core-schema implicit typing."""

    yaml_implicit_resolvers: dict = {}


for _tag, _pattern, _first in _CORE_SCHEMA:
    _CoreSchemaLoader.add_implicit_resolver(_tag, re.compile(_pattern), _first)


class LocatedMap(dict):
    """A YAML mapping (keys are ``str``) that knows where each key and value was written."""

    __slots__ = ("location", "key_locations", "value_locations")

    def __init__(self, location: Location):
        super().__init__()
        self.location = location
        self.key_locations: dict[str, Location] = {}
        self.value_locations: dict[str, Location] = {}

    def key_location(self, key: str) -> Location:
        return self.key_locations.get(key, self.location)

    def value_location(self, key: str) -> Location:
        return self.value_locations.get(key, self.location)

    def put(self, key: str, value: object, key_location: Location, value_location: Location) -> None:
        self[key] = value
        self.key_locations[key] = key_location
        self.value_locations[key] = value_location


class LocatedList(list):
    """A YAML sequence that knows where each item was written."""

    __slots__ = ("location", "item_locations")

    def __init__(self, location: Location):
        super().__init__()
        self.location = location
        self.item_locations: list[Location] = []

    def item_location(self, index: int) -> Location:
        if 0 <= index < len(self.item_locations):
            return self.item_locations[index]
        return self.location


def locate(tree: object, keys: Sequence[str | int], fallback: Location | None = None) -> Location | None:
    """Where ``tree[keys[0]][keys[1]]...`` was written (its value's line).

    If the path stops early (a key is absent) it is the line of the last key that exists —
    the place where the missing one belongs — or ``fallback`` if none does.
    """
    found = fallback  # the value's line once every key is found
    container = fallback  # the line of the last key found
    node = tree
    for key in keys:
        if isinstance(node, LocatedMap) and isinstance(key, str) and key in node:
            found, container = node.value_location(key), node.key_location(key)
        elif isinstance(node, LocatedList) and isinstance(key, int) and 0 <= key < len(node):
            found = container = node.item_location(key)
        else:
            return container
        node = node[key]
    return found


def parse_yaml(text: str, name: str) -> LocatedMap:
    """Parse one configuration document; an empty document is an empty mapping."""
    loader = _CoreSchemaLoader(text)
    try:
        root = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        raise _syntax_error(exc, name) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"malformed YAML: {exc}", None, Location(name, 1)) from None
    finally:
        loader.dispose()
    if root is None:
        return LocatedMap(Location(name, 1))
    value = _Converter(name).convert(root, ())
    if not isinstance(value, LocatedMap):
        raise ConfigError(
            f"the document must be a mapping (receivers:, exporters:, service: ...), got {_node_kind(root)}",
            None,
            _where(name, root),
        )
    return value


def merge_maps(base: LocatedMap, override: LocatedMap) -> LocatedMap:
    """Deep-merge two trees: mappings merge key by key, anything else (lists too) is replaced."""
    merged = LocatedMap(override.location)
    for key, value in base.items():
        merged.put(key, value, base.key_location(key), base.value_location(key))
    for key, value in override.items():
        old = merged.get(key)
        if isinstance(old, LocatedMap) and isinstance(value, LocatedMap):
            value = merge_maps(old, value)
        merged.put(key, value, override.key_location(key), override.value_location(key))
    return merged


def _where(name: str, node: Node) -> Location:
    return Location(name, node.start_mark.line + 1)


def _node_kind(node: Node) -> str:
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    return "a scalar"


def _syntax_error(exc: yaml.MarkedYAMLError, name: str) -> ConfigError:
    # Built from the parts, never str(exc): PyYAML's text quotes the source line, which may hold a secret.
    mark = exc.problem_mark or exc.context_mark
    problem = exc.problem or exc.context or "invalid syntax"
    message = f"malformed YAML: {problem}"
    if exc.context and exc.problem:
        if exc.problem.startswith("but "):
            message = f"malformed YAML: {exc.context}, {exc.problem}"
        elif exc.context_mark is not None:
            message += f" ({exc.context} on line {exc.context_mark.line + 1})"
    line = mark.line + 1 if mark is not None else 1
    return ConfigError(message, None, Location(name, line))


def _dotted(path: tuple[str, ...]) -> str | None:
    return ".".join(path) if path else None


class _Converter:
    """Turns a composed node graph into LocatedMap / LocatedList / scalars."""

    def __init__(self, name: str):
        self.name = name

    def convert(self, node: Node, path: tuple[str, ...]) -> object:
        if isinstance(node, MappingNode):
            return self._mapping(node, path)
        if isinstance(node, SequenceNode):
            items = LocatedList(_where(self.name, node))
            for index, child in enumerate(node.value):
                items.append(self.convert(child, path + (f"[{index}]",)))
                items.item_locations.append(_where(self.name, child))
            return items
        return self._scalar(node, path)

    def _mapping(self, node: MappingNode, path: tuple[str, ...]) -> LocatedMap:
        result = LocatedMap(_where(self.name, node))
        merged_sources: list[LocatedMap] = []
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:
                merged_sources.extend(self._merge_sources(value_node, path))
                continue
            if not isinstance(key_node, ScalarNode):
                raise ConfigError(
                    "mapping keys must be plain strings", _dotted(path), _where(self.name, key_node)
                )
            key = key_node.value
            if key in result:
                first = result.key_location(key).line
                raise ConfigError(
                    f"duplicate key '{key}' (first written on line {first})",
                    _dotted(path + (key,)),
                    _where(self.name, key_node),
                )
            value = self.convert(value_node, path + (key,))
            result.put(key, value, _where(self.name, key_node), _where(self.name, value_node))
        for source in merged_sources:  # explicit keys win; earlier merge sources win over later ones
            for key, value in source.items():
                if key not in result:
                    result.put(key, value, source.key_location(key), source.value_location(key))
        return result

    def _merge_sources(self, node: Node, path: tuple[str, ...]) -> list[LocatedMap]:
        value = self.convert(node, path + ("<<",))
        sources = value if isinstance(value, LocatedList) else [value]
        if not all(isinstance(source, LocatedMap) for source in sources):
            raise ConfigError(
                "a merge key '<<' needs a mapping or a list of mappings",
                _dotted(path + ("<<",)),
                _where(self.name, node),
            )
        return list(sources)

    def _scalar(self, node: ScalarNode, path: tuple[str, ...]) -> object:
        text = node.value
        tag = node.tag
        if tag == _STR or tag == "!":
            return text
        try:
            if tag == _NULL:
                if text not in ("", "~", "null", "Null", "NULL"):
                    raise ValueError
                return None
            if tag == _BOOL:
                if text.lower() not in ("true", "false"):
                    raise ValueError
                return text.lower() == "true"
            if tag == _INT:
                return parse_yaml_int(text)
            if tag == _FLOAT:
                return parse_yaml_float(text)
        except ValueError:
            raise ConfigError(
                f"value does not match its tag {tag.replace(_TAG, '!!')}",
                _dotted(path),
                _where(self.name, node),
            ) from None
        raise ConfigError(
            f"unsupported YAML tag {tag.replace(_TAG, '!!')}", _dotted(path), _where(self.name, node)
        )


def parse_yaml_int(text: str) -> int:
    """An integer in YAML 1.2 core syntax (decimal, ``0o17``, ``0x1f``)."""
    if text.startswith("0o"):
        return int(text[2:], 8)
    if text.startswith("0x"):
        return int(text[2:], 16)
    if not re.fullmatch(r"[-+]?[0-9]+", text):
        raise ValueError(text)
    return int(text, 10)


def parse_yaml_float(text: str) -> float:
    """A float in YAML 1.2 core syntax (``1.5``, ``1e3``, ``.inf``, ``.nan``)."""
    lowered = text.lower()
    if lowered in (".inf", "+.inf"):
        return math.inf
    if lowered == "-.inf":
        return -math.inf
    if lowered == ".nan":
        return math.nan
    return float(text)


def type_plain_scalar(text: str) -> object:
    """What YAML would make of ``text`` written as a plain scalar (used after env expansion)."""
    for tag, pattern, first in _CORE_SCHEMA:
        if tag == _MERGE or not re.match(pattern, text):
            continue
        if (text[:1] or "") not in first:
            continue
        if tag == _NULL:
            return None
        if tag == _BOOL:
            return text.lower() == "true"
        if tag == _INT:
            return parse_yaml_int(text)
        return parse_yaml_float(text)
    return text
