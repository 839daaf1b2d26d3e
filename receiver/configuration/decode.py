"""Located YAML values → config dataclasses, driven only by the dataclasses' field types.

Supported field types: ``bool``, ``int``, ``float``, ``str``, ``X | None``, ``tuple[X, ...]``,
``Mapping[str, X]`` and nested :class:`~.section.ConfigSection` dataclasses; the field's
:func:`~.section.setting` metadata refines them (durations, sizes, ranges, choices, checks).
``${env:...}`` references are expanded here, value by value, so every error knows its key path
and line.  The first problem raises :class:`~.errors.ConfigError`; values of secret settings
are never quoted.
"""

from __future__ import annotations

import collections.abc
import difflib
import math
import types
import typing
from collections.abc import Mapping
from dataclasses import fields, is_dataclass
from typing import Any

from receiver.configuration.env import EnvText, ExpansionError, expand_env
from receiver.configuration.errors import ConfigError, Location
from receiver.configuration.mappings import FrozenMap, SecretMap
from receiver.configuration.section import ConfigSection, yaml_key
from receiver.configuration.units import format_duration, format_size, parse_duration, parse_size
from receiver.configuration.yaml_source import LocatedList, LocatedMap, type_plain_scalar

# Returned for an explicit null on a setting that cannot be null: the default stays.
KEEP_DEFAULT: Any = object()


def join_path(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def did_you_mean(word: str, candidates: collections.abc.Iterable[str], listing: str = "expected one of") -> str:
    """`` (did you mean 'x'?)`` or, failing a close match, `` (expected one of: a, b)``."""
    options = sorted(candidates)
    close = difflib.get_close_matches(word, options, n=1)
    if close:
        return f" (did you mean '{close[0]}'?)"
    if options:
        return f" ({listing}: {', '.join(options)})"
    return ""


def unwrap_optional(tp: Any) -> tuple[bool, Any]:
    """``X | None`` → ``(True, X)``; anything else → ``(False, tp)``."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [arg for arg in typing.get_args(tp) if arg is not type(None)]
        if len(args) == 1 and len(typing.get_args(tp)) == 2:
            return True, args[0]
    return False, tp


def field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


class Decoder:
    """Decodes one configuration tree; ``environ`` supplies ``${env:...}`` values."""

    def __init__(self, environ: Mapping[str, str]):
        self.environ = environ

    # --- structure ------------------------------------------------------------------------

    def section(self, cls: type[ConfigSection], raw: object, path: str, location: Location) -> ConfigSection:
        """Decode a mapping into ``cls``; unknown keys and cross-field problems are errors."""
        if raw is None:
            raw = LocatedMap(location)
        if not isinstance(raw, LocatedMap):
            raise ConfigError(f"expected a mapping of settings, got {describe(raw, False)}", path or None, location)
        specs = {yaml_key(spec): spec for spec in fields(cls)}
        types_by_name = field_types(cls)
        unsupported = cls.unsupported_keys
        for key in raw:
            if key not in specs:
                if key in unsupported:
                    raise ConfigError(f"not supported by this agent: {unsupported[key]}", join_path(path, key),
                                      raw.key_location(key))
                raise ConfigError(
                    f"unknown key{did_you_mean(key, specs)}", join_path(path, key), raw.key_location(key)
                )
        values = {}
        for key, value in raw.items():
            spec = specs[key]
            decoded = self.value(
                types_by_name[spec.name], spec.metadata, value, join_path(path, key), raw.value_location(key)
            )
            if decoded is not KEEP_DEFAULT:
                values[spec.name] = decoded
        config = cls(**values)
        for name, problem in config.cross_field_problems():
            where = raw.value_location(name) if name in raw else raw.location
            if name not in raw and "[" in name:  # "policies[2].latency": the located item
                where = _item_location(raw, name) or where
            raise ConfigError(problem, join_path(path, name), where)
        return config

    def value(self, tp: Any, meta: Mapping[str, Any], raw: object, path: str, location: Location) -> Any:
        """Decode one setting's value; returns :data:`KEEP_DEFAULT` for null on a non-optional one."""
        secret = bool(meta.get("secret"))
        if isinstance(raw, str):
            try:
                raw = expand_env(raw, self.environ)
            except ExpansionError as exc:
                raise ConfigError(str(exc), path, location) from None
        optional, tp = unwrap_optional(tp)
        if isinstance(raw, EnvText) and (tp is not str or (optional and not raw)):
            raw = type_plain_scalar(raw)  # YAML typing of the expanded text; "" is null
        if raw is None:
            return None if optional else KEEP_DEFAULT
        if is_dataclass(tp):
            return self.section(tp, raw, path, location)
        origin = typing.get_origin(tp)
        if origin is tuple:
            return self._tuple(typing.get_args(tp)[0], meta, raw, path, location)
        if origin is collections.abc.Mapping:
            return self._mapping(typing.get_args(tp)[1], meta, raw, path, location)
        value = self._scalar(tp, meta, raw, path, location)
        self._check(value, meta, path, location, secret)
        return value

    def _tuple(self, item_tp: Any, meta: Mapping[str, Any], raw: object, path: str, location: Location) -> tuple:
        if not isinstance(raw, LocatedList):
            raise ConfigError(
                f"expected a list of {expected(item_tp, meta, plural=True)}, got {describe(raw, meta.get('secret'))}",
                path,
                location,
            )
        items = []
        for index, item in enumerate(raw):
            item_path, item_location = f"{path}[{index}]", raw.item_location(index)
            decoded = self.value(item_tp, meta, item, item_path, item_location)
            if decoded is KEEP_DEFAULT:
                raise ConfigError(f"expected {expected(item_tp, meta)}, got null", item_path, item_location)
            items.append(decoded)
        return tuple(items)

    def _mapping(self, value_tp: Any, meta: Mapping[str, Any], raw: object, path: str, location: Location) -> FrozenMap:
        secret = bool(meta.get("secret"))
        if not isinstance(raw, LocatedMap):
            raise ConfigError(f"expected a mapping, got {describe(raw, secret)}", path, location)
        allowed, key_check = meta.get("keys"), meta.get("key_check")
        entries = {}
        for key, item in raw.items():
            key_path = join_path(path, key)
            if allowed is not None and key not in allowed:
                raise ConfigError(f"unknown key{did_you_mean(key, allowed)}", key_path, raw.key_location(key))
            if key_check is not None and (problem := key_check(key)):
                raise ConfigError(problem, key_path, raw.key_location(key))
            decoded = self.value(value_tp, meta, item, key_path, raw.value_location(key))
            if decoded is KEEP_DEFAULT:
                if not is_dataclass(value_tp):
                    raise ConfigError(
                        f"expected {expected(value_tp, meta)}, got null", key_path, raw.value_location(key)
                    )
                decoded = value_tp()
            entries[key] = decoded
        return SecretMap(entries) if secret else FrozenMap(entries)

    # --- scalars --------------------------------------------------------------------------

    def _scalar(self, tp: Any, meta: Mapping[str, Any], raw: object, path: str, location: Location) -> Any:
        secret = bool(meta.get("secret"))
        kind = meta.get("kind")

        def wrong_type() -> ConfigError:
            hint = ""
            if tp is str and isinstance(raw, (bool, int, float)):
                hint = " (write it in quotes if it is meant as text)"
            return ConfigError(f"expected {expected(tp, meta)}, got {describe(raw, secret)}{hint}", path, location)

        if isinstance(raw, (LocatedMap, LocatedList)):
            raise wrong_type()
        if tp is bool:
            if not isinstance(raw, bool):
                raise wrong_type()
            return raw
        if tp is int:
            if kind == "bytes" and isinstance(raw, str):
                try:
                    return parse_size(raw)
                except ValueError as exc:
                    raise ConfigError(f"invalid size {quote(raw, secret)}: {exc}", path, location) from None
            if isinstance(raw, bool) or not isinstance(raw, int):
                raise wrong_type()
            return raw
        if tp is float:
            if kind == "duration" and isinstance(raw, str):
                try:
                    value = parse_duration(raw)
                except ValueError as exc:
                    raise ConfigError(f"invalid duration {quote(raw, secret)}: {exc}", path, location) from None
            elif isinstance(raw, bool) or not isinstance(raw, (int, float)):
                raise wrong_type()
            else:
                value = float(raw)
            if not math.isfinite(value):
                raise ConfigError(f"must be a finite number, got {describe(raw, secret)}", path, location)
            return value
        if tp is str:
            if not isinstance(raw, str):
                raise wrong_type()
            return str(raw)
        raise TypeError(f"{path}: the config decoder does not support fields of type {tp!r}")

    def _check(self, value: Any, meta: Mapping[str, Any], path: str, location: Location, secret: bool) -> None:
        def fail(problem: str) -> None:
            raise ConfigError(problem if not secret else "invalid value", path, location)

        choices = meta.get("choices")
        if choices is not None and value not in choices:
            suggestion = difflib.get_close_matches(str(value), choices, n=1)
            hint = f" (did you mean '{suggestion[0]}'?)" if suggestion else ""
            fail(f"must be one of {', '.join(choices)}; got {quote(value, secret)}{hint}")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            kind = meta.get("kind")
            minimum, above, maximum = meta.get("minimum"), meta.get("above"), meta.get("maximum")
            if minimum is not None and value < minimum:
                fail(f"must be at least {show_number(minimum, kind)}, got {show_number(value, kind)}")
            if above is not None and value <= above:
                fail(f"must be greater than {show_number(above, kind)}, got {show_number(value, kind)}")
            if maximum is not None and value > maximum:
                fail(f"must be at most {show_number(maximum, kind)}, got {show_number(value, kind)}")
            if meta.get("power_of_two") and (value <= 0 or value & (value - 1)):
                lower = 1 << (max(value, 1).bit_length() - 1)
                fail(
                    f"must be a power of two, got {show_number(value, kind)} "
                    f"(nearest: {show_number(lower, kind)} or {show_number(lower * 2, kind)})"
                )
        check = meta.get("check")
        if check is not None and (problem := check(value)):
            fail(problem)


def _item_location(raw: LocatedMap, name: str) -> Location | None:
    """Where ``key[i]`` (optionally ``.sub``) of ``raw`` is written, as deep as it is located."""
    key, _, rest = name.partition("[")
    if key not in raw:
        return None
    index_text, _, tail = rest.partition("]")
    items = raw[key]
    if not isinstance(items, LocatedList) or not index_text.isdigit() or int(index_text) >= len(items):
        return None
    item = items[int(index_text)]
    sub = tail.lstrip(".").split(".", 1)[0].split("[", 1)[0]
    if sub and isinstance(item, LocatedMap) and sub in item:
        return item.key_location(sub)
    return items.item_location(int(index_text))


# --- message pieces ---------------------------------------------------------------------------


def quote(value: object, secret: bool = False) -> str:
    if secret:
        return "a hidden value"
    text = str(value).replace("\n", "\\n")
    if len(text) > 60:
        text = text[:57] + "..."
    return f"'{text}'"


def describe(raw: object, secret: bool | None) -> str:
    """``the integer 5``, ``the string 'x'``, ``a list`` — without the value for secrets."""
    if raw is None:
        return "null"
    if isinstance(raw, dict):
        return "a mapping"
    if isinstance(raw, list):
        return "a list"
    if isinstance(raw, bool):
        return "a boolean" if secret else f"the boolean {str(raw).lower()}"
    if isinstance(raw, int):
        return "an integer" if secret else f"the integer {raw}"
    if isinstance(raw, float):
        return "a number" if secret else f"the number {raw}"
    return "a string" if secret else f"the string {quote(raw)}"


def expected(tp: Any, meta: Mapping[str, Any], plural: bool = False) -> str:
    kind = meta.get("kind")
    if tp is bool:
        text = "booleans (true or false)" if plural else "a boolean (true or false)"
    elif tp is int and kind == "bytes":
        text = "sizes in bytes (4096 or 16MiB)" if plural else "a size in bytes (4096 or 16MiB)"
    elif tp is int:
        text = "integers" if plural else "an integer"
    elif tp is float and kind == "duration":
        text = "durations" if plural else "a duration (5s, 200ms, 1m) or a number of seconds"
    elif tp is float:
        text = "numbers" if plural else "a number"
    elif tp is str:
        text = "strings" if plural else "a string"
    else:
        text = "mappings" if plural else "a mapping"
    return text


def show_number(value: float, kind: str | None) -> str:
    if kind == "duration":
        return format_duration(value)
    if kind == "bytes":
        short = format_size(int(value))
        return str(value) if isinstance(short, int) else f"{short} ({value})"
    return str(value)
