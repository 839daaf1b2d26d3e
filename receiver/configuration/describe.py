"""Views of the schema and of a loaded config that are safe to print: docs and redacted dumps."""

from __future__ import annotations

import collections.abc
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields, is_dataclass
from typing import Any

from receiver.configuration.decode import field_types, unwrap_optional
from receiver.configuration.mappings import REDACTED
from receiver.configuration.section import ConfigSection, yaml_key
from receiver.configuration.service import COMPONENT_KINDS, AgentConfig, ServiceConfig
from receiver.configuration.units import format_duration, format_size


@dataclass(frozen=True, slots=True)
class SettingDoc:
    """One key of a component's settings, for generated documentation."""

    key: str  # dotted path inside the component: "tls.ca_file", "protocols.<name>.ports"
    type: str  # "bool", "int", "size", "duration", "string", "list of int", "map of string to string", ...
    default: str  # as it would be written in YAML: "5s", "16MiB", "null", "[]"
    doc: str  # one line
    allowed: str = ""  # "one of: gzip, none", "64..16384", "power of two", ... or ""


def describe_schema(
    components: Mapping[tuple[str, str], type[ConfigSection]],
) -> dict[str, tuple[SettingDoc, ...]]:
    """Every key of every component type (``"exporters.otlp"``, ...) and of ``"service"``."""
    schema = {f"{kind}.{type_}": tuple(_section_docs(cls, "")) for (kind, type_), cls in components.items()}
    schema["service"] = tuple(_section_docs(ServiceConfig, ""))
    return schema


def redacted_dict(config: ConfigSection) -> dict[str, Any]:
    """Plain data for any config object, secrets replaced by ``[REDACTED]``.

    Durations are written back as duration strings, so ``yaml.safe_dump`` of the result of an
    :class:`AgentConfig` is itself a loadable configuration (minus the secrets).
    """
    if isinstance(config, AgentConfig):
        dump: dict[str, Any] = {
            kind: {component_id: redacted_dict(section) for component_id, section in getattr(config, kind).items()}
            for kind in COMPONENT_KINDS
        }
        dump["service"] = redacted_dict(config.service)
        return dump
    return {yaml_key(spec): _plain(getattr(config, spec.name), spec.metadata) for spec in fields(config)}


def _plain(value: Any, meta: Mapping[str, Any]) -> Any:
    if isinstance(value, ConfigSection):
        return redacted_dict(value)
    if isinstance(value, Mapping):
        return {key: REDACTED if meta.get("secret") else _plain(item, meta) for key, item in value.items()}
    if isinstance(value, tuple):
        return [_plain(item, meta) for item in value]
    if value is not None and meta.get("secret"):
        return REDACTED
    if value is not None and meta.get("kind") == "duration":
        return format_duration(value)
    return value


def _section_docs(cls: type, prefix: str) -> Iterator[SettingDoc]:
    types_by_name = field_types(cls)
    for spec in fields(cls):
        key = prefix + yaml_key(spec)
        optional, tp = unwrap_optional(types_by_name[spec.name])
        meta = spec.metadata
        yield SettingDoc(
            key=key,
            type=_type_text(tp, meta) + (" or null" if optional else ""),
            default=_default_text(spec.default, meta),
            doc=meta["doc"],
            allowed=_allowed_text(meta),
        )
        if is_dataclass(tp):
            yield from _section_docs(tp, key + ".")
        elif typing.get_origin(tp) is collections.abc.Mapping and is_dataclass(typing.get_args(tp)[1]):
            yield from _section_docs(typing.get_args(tp)[1], key + ".<name>.")
        elif typing.get_origin(tp) is tuple and is_dataclass(typing.get_args(tp)[0]):
            yield from _section_docs(typing.get_args(tp)[0], key + "[].")


def _type_text(tp: Any, meta: Mapping[str, Any]) -> str:
    kind = meta.get("kind")
    if is_dataclass(tp):
        return "mapping"
    origin = typing.get_origin(tp)
    if origin is tuple:
        if is_dataclass(typing.get_args(tp)[0]):
            return "list of mappings"
        return "list of " + _type_text(typing.get_args(tp)[0], meta)
    if origin is collections.abc.Mapping:
        return "map of string to " + _type_text(typing.get_args(tp)[1], {})
    if tp is int:
        return "size" if kind == "bytes" else "int"
    if tp is float:
        return "duration" if kind == "duration" else "float"
    return {bool: "bool", str: "string"}.get(tp, getattr(tp, "__name__", str(tp)))


def _default_text(default: Any, meta: Mapping[str, Any]) -> str:
    if default is None:
        return "null"
    if isinstance(default, ConfigSection):
        return "{}"
    if isinstance(default, bool):
        return str(default).lower()
    if isinstance(default, Mapping):
        return "{}" if not default else str(dict(default))
    if isinstance(default, tuple):
        return "[" + ", ".join(str(item) for item in default) + "]"
    kind = meta.get("kind")
    if kind == "duration":
        return format_duration(default)
    if kind == "bytes":
        return str(format_size(default))
    if isinstance(default, str):
        return default if default else '""'
    return str(default)


def _allowed_text(meta: Mapping[str, Any]) -> str:
    parts = []
    kind = meta.get("kind")

    def number(value: float) -> str:
        if kind == "duration":
            return format_duration(value)
        if kind == "bytes":
            return str(format_size(int(value)))
        return str(value)

    if meta.get("choices"):
        parts.append("one of: " + ", ".join(meta["choices"]))
    if meta.get("keys"):
        parts.append("keys: " + ", ".join(meta["keys"]))
    minimum, above, maximum = meta.get("minimum"), meta.get("above"), meta.get("maximum")
    if minimum is not None and maximum is not None:
        parts.append(f"{number(minimum)}..{number(maximum)}")
    elif minimum is not None:
        parts.append(f">= {number(minimum)}")
    elif maximum is not None:
        parts.append(f"<= {number(maximum)}")
    if above is not None:
        parts.append(f"> {number(above)}")
    if meta.get("power_of_two"):
        parts.append("power of two")
    for check_name in ("check", "key_check"):
        check = meta.get(check_name)
        if check is not None and check.__doc__:
            parts.append(check.__doc__.strip().splitlines()[0].rstrip("."))
    return "; ".join(parts)
