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

The implementation lives in :mod:`receiver.configuration`; this module is the API.
"""

from receiver.configuration.components import (
    COMPONENT_CONFIGS,
    PROTOCOL_NAMES,
    BatchProcessorConfig,
    DebugExporterConfig,
    DiscoveryConfig,
    DiscoveryRule,
    EbpfReceiverConfig,
    HealthCheckExtensionConfig,
    HttpPairingConfig,
    OtlpExporterConfig,
    OtlpHttpExporterConfig,
    PrometheusExporterConfig,
    ProtocolConfig,
    QueueConfig,
    RetryConfig,
    TLSClientConfig,
    TLSServerConfig,
)
from receiver.configuration.describe import SettingDoc, describe_schema, redacted_dict
from receiver.configuration.errors import ConfigError, Location
from receiver.configuration.loader import default_config_text, load_config, load_config_text
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
from receiver.configuration.units import format_duration, parse_duration, parse_size

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
    "OtlpExporterConfig",
    "OtlpHttpExporterConfig",
    "PipelineConfig",
    "PrometheusExporterConfig",
    "ProtocolConfig",
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
]
