"""Files → one validated :class:`AgentConfig`, or one :class:`ConfigError`.

Order of work: read and parse every file (syntax errors), deep-merge them (later files win,
lists are replaced), then decode section by section — components, then ``service`` — and
finally check that the pipelines only name components that exist, of the right kind, that
support the pipeline's signal.  Nothing starts before all of it has passed.
"""

from __future__ import annotations

import importlib.resources
import os
from collections.abc import Mapping, Sequence

from receiver.configuration.decode import Decoder, did_you_mean, quote
from receiver.configuration.errors import ConfigError, Location
from receiver.configuration.mappings import FrozenMap
from receiver.configuration.section import ConfigSection
from receiver.configuration.service import (
    COMPONENT_KINDS,
    AgentConfig,
    ServiceConfig,
    parse_component_id,
    pipeline_signal,
)
from receiver.configuration.yaml_source import LocatedMap, locate, merge_maps, parse_yaml

DEFAULT_CONFIG_NAME = "<embedded default.yaml>"
TOP_LEVEL_KEYS = COMPONENT_KINDS + ("service",)

_SINGULAR = {"receivers": "receiver", "processors": "processor", "exporters": "exporter", "extensions": "extension"}

# (kind, type) → the config class of that component type (from the component registry).
Registry = Mapping[tuple[str, str], type[ConfigSection]]


def default_config_text() -> str:
    """The embedded default configuration (``config/default.yaml``, shipped in the package)."""
    resource = importlib.resources.files("receiver") / "defaults" / "default.yaml"
    return resource.read_text(encoding="utf-8")


def load_config(
    paths: Sequence[str] | None,
    environ: Mapping[str, str] | None = None,
    *,
    components: Registry,
) -> AgentConfig:
    """Load and validate the given files (merged in order), or the embedded default if none.

    ``environ`` supplies ``${env:...}`` values (``os.environ`` when None).
    """
    if not paths:
        return load_config_text(default_config_text(), DEFAULT_CONFIG_NAME, environ, components=components)
    if isinstance(paths, str):
        paths = [paths]
    tree: LocatedMap | None = None
    for path in paths:
        document = parse_yaml(_read(path), path)
        tree = document if tree is None else merge_maps(tree, document)
    assert tree is not None
    return build_config(tree, environ, components=components, source_files=tuple(paths))


def load_config_text(
    text: str,
    name: str = "<string>",
    environ: Mapping[str, str] | None = None,
    *,
    components: Registry,
) -> AgentConfig:
    """Load and validate one configuration given as text; ``name`` appears in error locations."""
    return build_config(parse_yaml(text, name), environ, components=components, source_files=(name,))


def build_config(
    tree: LocatedMap,
    environ: Mapping[str, str] | None = None,
    *,
    components: Registry,
    source_files: tuple[str, ...] = (),
) -> AgentConfig:
    """Validate a parsed (and merged) tree into an :class:`AgentConfig`."""
    decoder = Decoder(os.environ if environ is None else environ)
    for key in tree:
        if key not in TOP_LEVEL_KEYS:
            raise ConfigError(f"unknown key{did_you_mean(key, TOP_LEVEL_KEYS)}", key, tree.key_location(key))
    sections = {kind: _components(decoder, components, kind, tree) for kind in COMPONENT_KINDS}
    if tree.get("service") is None:
        raise ConfigError(
            "the service section is required (it lists the pipelines to run)", "service", tree.value_location("service")
        )
    service = decoder.section(ServiceConfig, tree["service"], "service", tree.value_location("service"))
    _check_service(service, sections, tree)
    return AgentConfig(
        receivers=sections["receivers"],
        processors=sections["processors"],
        exporters=sections["exporters"],
        extensions=sections["extensions"],
        service=service,
        source_files=source_files,
    )


def _read(path: str) -> str:
    try:
        with open(path, "rb") as file:
            data = file.read()
    except OSError as exc:
        raise ConfigError(f"cannot read config file '{path}': {exc.strerror or exc}") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ConfigError("the file is not UTF-8 text", None, Location(path, line)) from None


def _components(decoder: Decoder, registry: Registry, kind: str, tree: LocatedMap) -> FrozenMap:
    raw = tree.get(kind)
    if raw is None:
        return FrozenMap()
    if not isinstance(raw, LocatedMap):
        raise ConfigError(f"expected a mapping of {kind} by id", kind, tree.value_location(kind))
    known = sorted(type_ for kind_, type_ in registry if kind_ == kind)
    configs = {}
    for component_id, body in raw.items():
        path = f"{kind}.{component_id}"
        try:
            type_, _ = parse_component_id(component_id)
        except ValueError as exc:
            raise ConfigError(str(exc), path, raw.key_location(component_id)) from None
        cls = registry.get((kind, type_))
        if cls is None:
            message = f"unknown {_SINGULAR[kind]} type '{type_}'{did_you_mean(type_, known, 'known types')}"
            elsewhere = [other for other, t in registry if t == type_ and other != kind]
            if elsewhere:
                message += f"; '{type_}' is a {_SINGULAR[elsewhere[0]]}, configure it under {elsewhere[0]}"
            raise ConfigError(message, path, raw.key_location(component_id))
        configs[component_id] = decoder.section(cls, body, path, raw.value_location(component_id))
    return FrozenMap(configs)


def _check_service(service: ServiceConfig, sections: Mapping[str, FrozenMap], tree: LocatedMap) -> None:
    """Cross-references: every id a pipeline or service.extensions names must fit."""
    _check_ids(service.extensions, "extensions", sections, tree, ("service", "extensions"))
    if not service.pipelines:
        raise ConfigError(
            "at least one pipeline is required (traces, metrics, logs or profiles)",
            "service.pipelines",
            locate(tree, ("service", "pipelines"), tree.location),
        )
    for pipeline_id, pipeline in service.pipelines.items():
        signal = pipeline_signal(pipeline_id)
        for role in ("receivers", "processors", "exporters"):
            ids = getattr(pipeline, role)
            keys = ("service", "pipelines", pipeline_id, role)
            if role != "processors" and not ids:
                raise ConfigError(
                    f"pipeline '{pipeline_id}' needs at least one {_SINGULAR[role]}",
                    ".".join(keys),
                    locate(tree, keys, tree.location),
                )
            _check_ids(ids, role, sections, tree, keys)
            for index, component_id in enumerate(ids):
                supported = type(sections[role][component_id]).signals
                if signal not in supported:
                    raise ConfigError(
                        f"{_SINGULAR[role]} '{component_id}' does not support {signal} "
                        f"(it supports: {', '.join(sorted(supported)) or 'none'})",
                        f"{'.'.join(keys)}[{index}]",
                        locate(tree, keys + (index,), tree.location),
                    )


def _check_ids(
    ids: tuple[str, ...], kind: str, sections: Mapping[str, FrozenMap], tree: LocatedMap, keys: tuple[str, ...]
) -> None:
    """Each id is listed once and names a component defined under ``kind``."""
    seen: set[str] = set()
    for index, component_id in enumerate(ids):
        item_path = f"{'.'.join(keys)}[{index}]"
        where = locate(tree, keys + (index,), tree.location)
        shown = quote(component_id)  # any string: a quoted YAML scalar may hold line breaks
        if component_id in seen:
            raise ConfigError(f"{shown} is listed twice", item_path, where)
        seen.add(component_id)
        if component_id in sections[kind]:
            continue
        elsewhere = [other for other in COMPONENT_KINDS if component_id in sections[other]]
        if elsewhere:
            message = f"{shown} is one of the {elsewhere[0]}, not one of the {kind}"
        elif sections[kind]:
            hint = did_you_mean(component_id, sections[kind], "defined")
            message = f"{shown} is not defined under {kind}{hint}"
        else:
            message = f"{shown} is not defined under {kind} (no {kind} are defined)"
        raise ConfigError(message, item_path, where)
