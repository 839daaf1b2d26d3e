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
from receiver.extensions.zpages import ZPagesExtension, ZPagesExtensionConfig
from receiver.processors.batch import BatchProcessor, BatchProcessorConfig
from receiver.processors.tail_sampling import TailSampler, TailSamplingProcessor
from receiver.processors.tail_sampling_config import TailSamplingProcessorConfig
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
        exemplars=getattr(settings.host, "deferred_exemplars", None),
        slow_threshold_s=getattr(settings.host, "slow_threshold_s", None),
        serving_spans=getattr(settings.host, "serving_spans", None),
    )
    receiver.register_self_metrics(settings.self_metrics)
    return receiver


def _tail_sampling(settings: CreateSettings, config: TailSamplingProcessorConfig, next_consumer):
    """One engine per id, shared by the id's instances in the traces and logs pipelines; the RED
    exemplars wait for its decisions (the host defers them once a tail sampler exists)."""
    defer = getattr(settings.host, "defer_exemplars", None)
    exemplars = defer() if defer is not None else None
    # Overload shedding keeps slow transactions as records as long as errors (receivers are built
    # after processors): the smallest latency threshold of this config's latency policies.
    thresholds = [p.latency.threshold_ms / 1000 for p in config.policies if p.type == "latency"]
    host = settings.host
    if thresholds and hasattr(host, "slow_threshold_s"):
        current = host.slow_threshold_s
        host.slow_threshold_s = min(thresholds + ([current] if current is not None else []))

    def make(self_metrics):
        engine = TailSampler(config, settings.id, on_decision=exemplars.decided if exemplars is not None else None)
        self_metrics.add_collector(engine)
        return engine

    engine = settings.self_metrics.shared(f"processors.{settings.id}", make)
    return TailSamplingProcessor(engine, next_consumer, settings.ledger)
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
                lambda s, cfg, nxt: BatchProcessor(cfg, [nxt], s.self_metrics, s.host.backpressure, ledger=s.ledger),
                "groups items into batches"),
        Factory("processors", "tail_sampling", TailSamplingProcessorConfig, _tail_sampling,
                "keeps or drops whole traces (spans and logs) by the Collector's tail-sampling policies"),
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
        Factory("extensions", "zpages", ZPagesExtensionConfig,
                lambda s, cfg: ZPagesExtension(cfg, s.host, s.self_metrics),
                "live pages: services, service map, spans, pipelines"),
    ]


def builtin_registry() -> ComponentRegistry:
    """The built-in factories only (what the configuration schema and docs describe)."""
    return ComponentRegistry.of(builtin_factories())


def default_registry() -> ComponentRegistry:
    """The built-ins plus the plug-ins installed in this environment."""
    registry = builtin_registry()
    registry.load_entry_points()
    return registry
