"""The components this distribution is built with (the Collector builder's ``components.go``).

:func:`default_registry` returns them plus the factories installed packages register under the
``ebpf_receiver.components`` entry-point group (see :mod:`receiver.component`).
"""

from __future__ import annotations

from receiver.component import (
    ComponentRegistry,
    CreateSettings,
    Factory,
    ReceiverConsumers,
)
from receiver.exporters.config import (
    DebugExporterConfig,
    OtlpExporterConfig,
    OtlpHttpExporterConfig,
    OtlpProfilesExporterConfig,
    PprofExporterConfig,
    PrometheusExporterConfig,
)
from receiver.exporters.otlp_profiles import OtlpProfilesExporter
from receiver.exporters.pprof import PprofExporter
from receiver.exporters.debug import DebugExporter
from receiver.exporters.exporter_metrics import ExporterMetrics
from receiver.exporters.otlp_grpc import OtlpGrpcExporter
from receiver.exporters.otlp_http import OtlpHttpExporter
from receiver.exporters.prometheus import PrometheusExporter
from receiver.extensions.health_check import (
    HealthCheckExtension,
    HealthCheckExtensionConfig,
)
from receiver.processors.batch import BatchProcessor, BatchProcessorConfig
from receiver.receivers.ebpf.config import EbpfReceiverConfig
from receiver.receivers.profiling.config import ProfilingReceiverConfig


def _ebpf(settings: CreateSettings, config: EbpfReceiverConfig, consumers: ReceiverConsumers):
    from receiver.receivers.ebpf.receiver import (
        EbpfReceiver,  # loads cffi/libbpf: only when used
    )

    receiver = EbpfReceiver(
        config,
        traces=consumers.traces,
        logs=consumers.logs,
        red_metrics=settings.host.red_metrics,
        service_graph=settings.host.service_graph,
        backpressure=settings.host.backpressure,
        serving_spans=getattr(settings.host, "serving_spans", None),
    )
    receiver.register_self_metrics(settings.self_metrics)
    return receiver


def _profiling(settings: CreateSettings, config: ProfilingReceiverConfig, consumers: ReceiverConsumers):
    from receiver.receivers.profiling.receiver import ProfilingReceiver  # loads cffi/libbpf: only when used

    receiver = ProfilingReceiver(config, profiles=consumers.profiles, host=settings.host)
    settings.self_metrics.add_collector(receiver)
    return receiver


def _exporter_metrics(settings: CreateSettings) -> ExporterMetrics:
    """The sending-queue metrics every exporter of one agent shares (registered once)."""
    return settings.self_metrics.shared("exporter_metrics", ExporterMetrics)


def builtin_factories() -> list[Factory]:
    return [
        Factory("receivers", "ebpf", EbpfReceiverConfig, _ebpf, "socket traffic of local processes, captured with eBPF"),
        Factory("receivers", "profiling", ProfilingReceiverConfig, _profiling,
                "CPU profiles of every process (perf_event sampling, stacks aggregated in the kernel)"),
        Factory("processors", "batch", BatchProcessorConfig,
                lambda s, cfg, nxt: BatchProcessor(cfg, [nxt], s.self_metrics, s.host.backpressure), "groups items into batches"),
        Factory("exporters", "otlp", OtlpExporterConfig,
                lambda s, cfg: OtlpGrpcExporter(s.id, cfg, s.self_metrics, exporter_metrics=_exporter_metrics(s),
                                                backpressure=s.host.backpressure),
                "OTLP over gRPC"),
        Factory("exporters", "otlphttp", OtlpHttpExporterConfig,
                lambda s, cfg: OtlpHttpExporter(s.id, cfg, s.self_metrics, exporter_metrics=_exporter_metrics(s),
                                                backpressure=s.host.backpressure),
                "OTLP over HTTP"),
        Factory("exporters", "debug", DebugExporterConfig,
                lambda s, cfg: DebugExporter(s.id, cfg, s.self_metrics, stream=s.host.debug_stream),
                "prints telemetry"),
        Factory("exporters", "prometheus", PrometheusExporterConfig,
                lambda s, cfg: PrometheusExporter(cfg, s.host.collect_metrics, s.self_metrics.registry),
                "serves metrics for scraping"),
        Factory("exporters", "pprof", PprofExporterConfig,
                lambda s, cfg: PprofExporter(s.id, cfg, s.self_metrics), "pprof files and Pyroscope ingest"),
        Factory("exporters", "otlpprofiles", OtlpProfilesExporterConfig,
                lambda s, cfg: OtlpProfilesExporter(s.id, cfg, s.self_metrics),
                "OTLP profiles over gRPC (development signal)"),
        Factory("extensions", "health_check", HealthCheckExtensionConfig,
                lambda s, cfg: HealthCheckExtension(cfg), "HTTP health endpoint"),
    ]


def builtin_registry() -> ComponentRegistry:
    """The built-in factories only (what the configuration schema and docs describe)."""
    return ComponentRegistry.of(builtin_factories())


def default_registry() -> ComponentRegistry:
    """The built-ins plus the plug-ins installed in this environment."""
    registry = builtin_registry()
    registry.load_entry_points()
    return registry
