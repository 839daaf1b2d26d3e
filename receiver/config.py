"""Agent configuration: OpenTelemetry-Collector-style YAML → validated, frozen dataclasses.

::

    config = load_config(["config.yaml"])            # or load_config(None) for the embedded default
    otlp = config.exporters["otlp/vendor"]           # an OtlpExporterConfig
    for pipeline_id, pipeline in config.service.pipelines.items(): ...

Files look like a Collector configuration (``receivers``, ``processors``, ``exporters``,
``extensions``, ``service``), support ``${env:VAR}`` / ``${env:VAR:-default}`` / ``$$`` in values,
and merge in order when several are given (maps deep-merge, later wins, lists are replaced).
Everything is validated before anything starts; the first problem raises :class:`ConfigError`,
whose ``str()`` is one line naming the key path and ``file:line``.  Header values are secrets:
they never appear in ``repr``, :func:`redacted_dict` or error messages.

The implementation lives in :mod:`receiver.configuration`; the config class of each component
type sits next to the component and is registered with its factory (:mod:`receiver.distribution`);
this module is the API: it validates against the factories of this distribution and installed
plug-ins.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType

from receiver.configuration import describe as _describe
from receiver.configuration import loader as _loader
from receiver.configuration.describe import SettingDoc, redacted_dict
from receiver.configuration.errors import ConfigError, Location
from receiver.configuration.loader import default_config_text
from receiver.configuration.mappings import REDACTED, FrozenMap, SecretMap
from receiver.configuration.section import SIGNALS, ConfigSection, setting
from receiver.configuration.service import (
    COMPONENT_KINDS,
    AgentConfig,
    PipelineConfig,
    ServiceConfig,
    TelemetryConfig,
    TelemetryLogsConfig,
    TelemetryMetricsConfig,
    parse_component_id,
    pipeline_signal,
)
from receiver.configuration.tls import TLSClientConfig, TLSServerConfig
from receiver.configuration.units import format_duration, parse_duration, parse_size
from receiver.discovery.config import DiscoveryConfig, DiscoveryRule
from receiver.distribution import builtin_registry, default_registry
from receiver.exporters.config import (
    DebugExporterConfig,
    OtlpExporterConfig,
    OtlpHttpExporterConfig,
    OtlpProfilesExporterConfig,
    PprofExporterConfig,
    PrometheusExporterConfig,
    QueueBatchConfig,
    QueueConfig,
    RetryConfig,
)
from receiver.extensions.health_check import HealthCheckExtensionConfig
from receiver.extensions.zpages.config import ZPagesExtensionConfig
from receiver.processors.batch import BatchProcessorConfig
from receiver.receivers.ebpf.config import (
    PROTOCOL_NAMES,
    EbpfReceiverConfig,
    HttpPairingConfig,
    ProtocolConfig,
)
from receiver.receivers.profiling.config import ProfilingReceiverConfig
from receiver.telemetry.network_config import NetworkMetricsConfig

# (kind, type) → config class of every built-in component type: what docs/configuration.md describes.
COMPONENT_CONFIGS: Mapping[tuple[str, str], type[ConfigSection]] = MappingProxyType(
    dict(builtin_registry().config_classes())
)


def _components(components: Mapping | None) -> Mapping:
    return components if components is not None else default_registry().config_classes()


def load_config(
    paths: Sequence[str] | None, environ: Mapping[str, str] | None = None, *, components: Mapping | None = None
) -> AgentConfig:
    """Load and validate the given files (merged in order), or the embedded default if none;
    ``components`` defaults to this distribution's factories and installed plug-ins."""
    return _loader.load_config(paths, environ, components=_components(components))


def load_config_text(
    text: str, name: str = "<string>", environ: Mapping[str, str] | None = None, *, components: Mapping | None = None
) -> AgentConfig:
    """Load and validate one configuration given as text; ``name`` appears in error locations."""
    return _loader.load_config_text(text, name, environ, components=_components(components))


def describe_schema(components: Mapping | None = None) -> dict[str, tuple[SettingDoc, ...]]:
    """Every key of every component type (built-ins unless ``components`` is given) and of ``service``."""
    return _describe.describe_schema(COMPONENT_CONFIGS if components is None else components)


__all__ = [
    "COMPONENT_CONFIGS",
    "COMPONENT_KINDS",
    "PROTOCOL_NAMES",
    "REDACTED",
    "SIGNALS",
    "AgentConfig",
    "BatchProcessorConfig",
    "ConfigError",
    "ConfigSection",
    "DebugExporterConfig",
    "DiscoveryConfig",
    "DiscoveryRule",
    "EbpfReceiverConfig",
    "FrozenMap",
    "HealthCheckExtensionConfig",
    "HttpPairingConfig",
    "Location",
    "NetworkMetricsConfig",
    "OtlpExporterConfig",
    "OtlpHttpExporterConfig",
    "PipelineConfig",
    "OtlpProfilesExporterConfig",
    "PprofExporterConfig",
    "PrometheusExporterConfig",
    "ProfilingReceiverConfig",
    "ProtocolConfig",
    "QueueBatchConfig",
    "QueueConfig",
    "RetryConfig",
    "SecretMap",
    "ServiceConfig",
    "SettingDoc",
    "TLSClientConfig",
    "TLSServerConfig",
    "TelemetryConfig",
    "TelemetryLogsConfig",
    "TelemetryMetricsConfig",
    "default_config_text",
    "describe_schema",
    "format_duration",
    "load_config",
    "load_config_text",
    "parse_component_id",
    "parse_duration",
    "parse_size",
    "pipeline_signal",
    "redacted_dict",
    "setting",
    "ZPagesExtensionConfig",
]
