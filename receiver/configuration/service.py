"""The ``service:`` section (which components run, wired into which pipelines) and the whole config."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from receiver.configuration.checks import pipeline_id
from receiver.configuration.mappings import FrozenMap
from receiver.configuration.section import PIPELINE_SIGNALS, ConfigSection, setting

COMPONENT_KINDS = ("receivers", "processors", "exporters", "extensions")

_COMPONENT_TYPE = re.compile(r"[a-zA-Z][0-9a-zA-Z_]{0,62}")
_COMPONENT_NAME = re.compile(r"[^\s/]+")


def parse_component_id(component_id: str) -> tuple[str, str]:
    """``"otlp/vendor"`` → ``("otlp", "vendor")``; ``"batch"`` → ``("batch", "")``.

    Raises ``ValueError`` (with a readable reason) for malformed ids.
    """
    type_, slash, name = component_id.partition("/")
    if not _COMPONENT_TYPE.fullmatch(type_):
        raise ValueError(
            f"invalid component id '{component_id}': the type must start with a letter and "
            "contain only letters, digits and '_'"
        )
    if slash and not _COMPONENT_NAME.fullmatch(name):
        raise ValueError(
            f"invalid component id '{component_id}': the name after '/' must be non-empty, "
            "without spaces or '/'"
        )
    return type_, name


def pipeline_signal(pipeline: str) -> str:
    """``"traces/sampled"`` → ``"traces"``."""
    return pipeline.partition("/")[0]


@dataclass(frozen=True, slots=True)
class PipelineConfig(ConfigSection):
    receivers: tuple[str, ...] = setting((), "Receiver ids feeding the pipeline (at least one).")
    processors: tuple[str, ...] = setting((), "Processor ids, applied in order.")
    exporters: tuple[str, ...] = setting((), "Exporter ids the result fans out to (at least one).")


@dataclass(frozen=True, slots=True)
class TelemetryLogsConfig(ConfigSection):
    level: str = setting(
        "info", "Least severe level of the agent's own log.", choices=("debug", "info", "warn", "error")
    )


@dataclass(frozen=True, slots=True)
class TelemetryMetricsConfig(ConfigSection):
    level: str = setting(
        "basic", "How much the agent reports about itself.", choices=("none", "basic", "normal", "detailed")
    )


@dataclass(frozen=True, slots=True)
class TelemetryConfig(ConfigSection):
    logs: TelemetryLogsConfig = setting(TelemetryLogsConfig(), "The agent's own log.")
    metrics: TelemetryMetricsConfig = setting(TelemetryMetricsConfig(), "The agent's own metrics.")


@dataclass(frozen=True, slots=True)
class ServiceConfig(ConfigSection):
    extensions: tuple[str, ...] = setting((), "Extension ids to start.")
    pipelines: Mapping[str, PipelineConfig] = setting(
        FrozenMap(), f"Pipelines by id: {', '.join(PIPELINE_SIGNALS)}, optionally /name.", key_check=pipeline_id
    )
    telemetry: TelemetryConfig = setting(TelemetryConfig(), "The agent's own logs and metrics.")
    shutdown_timeout: float = setting(
        10.0, "How long shutdown waits for pipelines to drain.", kind="duration", above=0
    )


@dataclass(frozen=True, slots=True)
class AgentConfig(ConfigSection):
    """A whole, validated configuration.  Component maps are keyed by id (``otlp/vendor``)."""

    receivers: Mapping[str, ConfigSection] = setting(FrozenMap(), "Receivers by id.")
    processors: Mapping[str, ConfigSection] = setting(FrozenMap(), "Processors by id.")
    exporters: Mapping[str, ConfigSection] = setting(FrozenMap(), "Exporters by id.")
    extensions: Mapping[str, ConfigSection] = setting(FrozenMap(), "Extensions by id.")
    service: ServiceConfig = setting(ServiceConfig(), "Which components run and how they connect.")
    source_files: tuple[str, ...] = setting((), "Where the configuration was read from, in merge order.")
