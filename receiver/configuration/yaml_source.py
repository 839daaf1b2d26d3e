"""YAML text → plain Python values that remember the line each key and value was written on.

Scalars are typed with the YAML 1.2 core schema, as the Collector's YAML library does: only
``true``/``false`` are booleans (``yes``, ``on``, ``off`` stay strings), ``010`` is ten, and
``1:30`` is a string.  Mapping keys are always the text as written (never typed) and must be
unique.  Merge keys (``<<: *anchor``) are supported.  Nothing here expands ``${env:...}``.

Hostile input is bounded: nesting deeper than :attr:`YamlLimits.max_depth` and documents that
expand (through aliases) to more than :attr:`YamlLimits.max_nodes` values are refused with one
:class:`ConfigError` naming the key and line, before the work or memory they would cost is spent.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

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


@dataclass(frozen=True, slots=True)
class YamlLimits:
    """How much one configuration document may cost to read.

    ``max_depth`` bounds nesting (PyYAML's composer recurses once per level: a few hundred
    ``[`` would otherwise overflow Python's stack); ``max_nodes`` bounds the values the document
    expands to once aliases are followed (nine levels of nine aliases are 387 million values in
    522 bytes).  A real configuration has a few hundred values and a depth under ten.
    """

    max_depth: int = 64
    max_nodes: int = 100_000


DEFAULT_LIMITS = YamlLimits()


class _CoreSchemaLoader(yaml.SafeLoader):
    """SafeLoader that composes nodes with YAML 1.2 core-schema implicit typing, at most
    ``limits.max_depth`` levels deep."""

    yaml_implicit_resolvers: dict = {}

    def __init__(self, stream, name: str, limits: YamlLimits):
        self._name = name
        self._limits = limits
        self._depth = 0
        self._path: list[str] = []
        super().__init__(stream)

    def compose_node(self, parent, index):
        if self._depth >= self._limits.max_depth:
            mark = self.peek_event().start_mark
            raise ConfigError(
                f"the YAML is nested more than {self._limits.max_depth} levels deep",
                _abridged(tuple(self._path)),
                Location(self._name, mark.line + 1),
            )
        self._depth += 1
        self._path.append(_path_step(parent, index))
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1
            self._path.pop()


def _path_step(parent: Node | None, index: object) -> str:
    """A readable step of the key path being composed (the key's text, or ``[n]``)."""
    if isinstance(parent, SequenceNode):
        return f"[{len(parent.value)}]"
    if isinstance(index, ScalarNode):
        return index.value
    return "?" if parent is not None else ""


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


def parse_yaml(text: str, name: str, limits: YamlLimits = DEFAULT_LIMITS) -> LocatedMap:
    """Parse one configuration document; an empty document is an empty mapping."""
    loader = None
    try:
        loader = _CoreSchemaLoader(text, name, limits)  # the reader checks every character here
        root = loader.get_single_node()
    except yaml.reader.ReaderError as exc:
        raise _reader_error(exc, text, name) from None
    except yaml.MarkedYAMLError as exc:
        raise _syntax_error(exc, name) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"malformed YAML: {type(exc).__name__}", None, Location(name, 1)) from None
    finally:
        if loader is not None:
            loader.dispose()
    if root is None:
        return LocatedMap(Location(name, 1))
    value = _Converter(name, limits).convert(root, ())
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


def _reader_error(exc: yaml.reader.ReaderError, text: str, name: str) -> ConfigError:
    # The character's code, never the text around it (it may be a secret's neighbour).
    position = max(0, min(exc.position, len(text)))
    line = text.count("\n", 0, position) + 1
    character = exc.character if isinstance(exc.character, int) else ord(exc.character[:1] or "\0")
    return ConfigError(
        f"malformed YAML: control character 0x{character:02x} is not allowed in YAML text",
        None,
        Location(name, line),
    )


def _dotted(path: tuple[str, ...]) -> str | None:
    return ".".join(step for step in path if step) if any(path) else None


def _abridged(path: tuple[str, ...], keep: int = 4) -> str | None:
    """A key path cut to its first ``keep`` steps (a deep one would fill a screen)."""
    steps = [step for step in path if step]
    if len(steps) > keep:
        steps = steps[:keep] + [f"...({len(steps) - keep} more levels)"]
    return _dotted(tuple(steps))


class _Converter:
    """Turns a composed node graph into LocatedMap / LocatedList / scalars.

    The graph is shared where aliases point (composing it is cheap); the tree it becomes is not,
    so every value converted is counted and the conversion stops at ``limits.max_nodes`` —
    likewise the depth, which aliases nested in aliases can grow past the composer's limit.
    """

    def __init__(self, name: str, limits: YamlLimits = DEFAULT_LIMITS):
        self.name = name
        self.limits = limits
        self.nodes = 0  # values converted so far
        self._seen: set[int] = set()  # ids of the nodes converted at least once
        self._stack: list[tuple[Node, bool]] = []  # (node, converted before: an alias's use)

    def convert(self, node: Node, path: tuple[str, ...]) -> object:
        self.nodes += 1
        if self.nodes > self.limits.max_nodes:
            self._too_many_values(node, path)
        again = id(node) in self._seen
        self._seen.add(id(node))
        self._stack.append((node, again))
        try:
            return self._convert(node, path)
        finally:
            self._stack.pop()

    def _too_many_values(self, node: Node, path: tuple[str, ...]) -> None:
        # Blame the outermost alias being expanded: the line that holds it, the key it is under.
        where, depth = _where(self.name, node), len(path)
        for index, (_, again) in enumerate(self._stack):
            if again and index > 0:
                where, depth = _where(self.name, self._stack[index - 1][0]), index
                break
        raise ConfigError(
            f"the YAML expands to more than {self.limits.max_nodes} values "
            "(an alias '*name' repeated inside repeated aliases?)",
            _abridged(path[:depth]),
            where,
        )

    def _convert(self, node: Node, path: tuple[str, ...]) -> object:
        if len(path) > self.limits.max_depth:
            raise ConfigError(
                f"the YAML is nested more than {self.limits.max_depth} levels deep (through aliases)",
                _abridged(path),
                _where(self.name, node),
            )
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
