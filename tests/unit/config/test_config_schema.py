"""The schema other components code against: names, defaults, registry, immutability, docs."""

from __future__ import annotations

import dataclasses

import pytest

from receiver.discovery.log_pipes import DEFAULT_LOG_READERS
from receiver.receivers.ebpf.config import SamplerConfig
from receiver.telemetry.network_config import CONNECT_DURATION_BUCKETS, RTT_BUCKETS, NetworkMetricsConfig
from receiver.exporters.config import CompressionParamsConfig
from receiver.config import (
    COMPONENT_CONFIGS,
    AgentConfig,
    BatchProcessorConfig,
    DebugExporterConfig,
    DiscoveryConfig,
    EbpfReceiverConfig,
    FrozenMap,
    HealthCheckExtensionConfig,
    HttpPairingConfig,
    OtlpExporterConfig,
    OtlpHttpExporterConfig,
    OtlpProfilesExporterConfig,
    PipelineConfig,
    PprofExporterConfig,
    PrometheusExporterConfig,
    ProfilingReceiverConfig,
    ProtocolConfig,
    QueueBatchConfig,
    QueueConfig,
    RetryConfig,
    ServiceConfig,
    TLSClientConfig,
    TLSServerConfig,
    ZPagesExtensionConfig,
    describe_schema,
    parse_component_id,
)

from receiver.processors.tail_sampling_config import TailSamplingProcessorConfig  # noqa: E402

MIB = 1024 * 1024


def test_registry():
    assert dict(COMPONENT_CONFIGS) == {
        ("receivers", "ebpf"): EbpfReceiverConfig,
        ("receivers", "profiling"): ProfilingReceiverConfig,
        ("processors", "batch"): BatchProcessorConfig,
        ("processors", "tail_sampling"): TailSamplingProcessorConfig,
        ("exporters", "otlp"): OtlpExporterConfig,
        ("exporters", "otlphttp"): OtlpHttpExporterConfig,
        ("exporters", "debug"): DebugExporterConfig,
        ("exporters", "prometheus"): PrometheusExporterConfig,
        ("exporters", "pprof"): PprofExporterConfig,
        ("exporters", "otlpprofiles"): OtlpProfilesExporterConfig,
        ("extensions", "health_check"): HealthCheckExtensionConfig,
        ("extensions", "zpages"): ZPagesExtensionConfig,
    }


@pytest.mark.parametrize(
    ("cls", "defaults"),
    [
        (TLSClientConfig, dict(insecure=False, ca_file=None, cert_file=None, key_file=None, insecure_skip_verify=False)),
        (QueueConfig, dict(enabled=True, num_consumers=2, sizer="bytes", queue_size=16 * MIB, batch=QueueBatchConfig(),
                           storage=None)),
        (QueueBatchConfig, dict(sizer="bytes", max_size=3 * MIB)),
        (RetryConfig, dict(enabled=True, initial_interval=5.0, max_interval=30.0, multiplier=1.5, max_elapsed_time=300.0)),
        (OtlpExporterConfig, dict(endpoint="localhost:4317", tls=TLSClientConfig(), headers={}, compression="gzip",
                                  timeout=5.0, sending_queue=QueueConfig(), retry_on_failure=RetryConfig())),
        (OtlpHttpExporterConfig, dict(endpoint="http://localhost:4318", tls=TLSClientConfig(), headers={},
                                      compression="gzip", timeout=5.0, sending_queue=QueueConfig(),
                                      retry_on_failure=RetryConfig(), traces_endpoint=None, metrics_endpoint=None,
                                      logs_endpoint=None, encoding="proto",
                                      compression_params=CompressionParamsConfig(level=6))),
        (DebugExporterConfig, dict(verbosity="basic")),
        (TLSServerConfig, dict(cert_file=None, key_file=None, client_ca_file=None)),
        (PrometheusExporterConfig, dict(endpoint="127.0.0.1:9464", tls=None, namespace="", enable_open_metrics=True)),
        (BatchProcessorConfig, dict(send_batch_size=512, send_batch_max_size=0, timeout=0.2,
                                    max_backlog_bytes=8 * MIB)),
        (HealthCheckExtensionConfig, dict(endpoint="127.0.0.1:13133", path="/")),
        (ProtocolConfig, dict(ports=(), enabled=True)),
        (EbpfReceiverConfig, dict(capture_size=4096, ring_buffer_size=16 * MIB, poll_interval=0.1, wakeup_bytes=MIB,
                                  cpu_budget=0.5, node_busy_threshold=0.85, scheduling="idle",
                                  capture_logs=False, log_pipes="classified", log_pipe_readers=DEFAULT_LOG_READERS,
                                  observe_self=False, exclude_ports=(), exclude_pids=(), max_connections=65536,
                                  max_buffer_per_connection=65536, connection_idle_timeout=300.0, protocols={},
                                  discovery=DiscoveryConfig(), sampler=SamplerConfig(),
                                  http_pairing=HttpPairingConfig(), network_metrics=NetworkMetricsConfig())),
        (NetworkMetricsConfig, dict(rtt=False, retransmits=False, resets=False, connect_failures=False,
                                    connect_duration=False, flow=False, tc_flow=False, tc_interfaces=(),
                                    sample_interval=1.0, rtt_buckets=RTT_BUCKETS,
                                    connect_duration_buckets=CONNECT_DURATION_BUCKETS, max_series=4096)),
        (HttpPairingConfig, dict(enabled=True, connections=8192, aggregate_keys=2048, shed_ring_fraction=0.5,
                                 shed_error_ring_fraction=0.9, shed_keep_slower_than=None)),
        (SamplerConfig, dict(name="parentbased_always_on", ratio=1.0)),
        (DiscoveryConfig, dict(include=(), exclude=(), tls=True, rescan_interval=2.0)),
        (PipelineConfig, dict(receivers=(), processors=(), exporters=())),
        (ServiceConfig, dict(extensions=(), pipelines={}, shutdown_timeout=10.0)),
    ],
)
def test_defaults(cls, defaults):
    instance = cls()
    assert {name: getattr(instance, name) for name in defaults} == defaults
    assert set(defaults) >= {spec.name for spec in dataclasses.fields(cls)} - {"telemetry"}


def test_service_telemetry_defaults():
    telemetry = ServiceConfig().telemetry
    assert (telemetry.logs.level, telemetry.metrics.level) == ("info", "basic")


def test_configs_are_frozen_hashable_and_normalise_containers():
    config = EbpfReceiverConfig(exclude_ports=[22, 80], protocols={"http": ProtocolConfig(ports=[8080])})
    assert config.exclude_ports == (22, 80)
    assert isinstance(config.protocols, FrozenMap) and config.protocols["http"].ports == (8080,)
    assert hash(config) == hash(EbpfReceiverConfig(exclude_ports=(22, 80), protocols={"http": ProtocolConfig(ports=(8080,))}))
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.capture_size = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        config.protocols["redis"] = ProtocolConfig()  # type: ignore[index]


def test_loaded_config_is_hashable(load):
    config = load(
        """\
        receivers: {ebpf: {protocols: {http: {ports: [80]}}}}
        exporters: {otlp: {headers: {a: b}}}
        service: {pipelines: {traces: {receivers: [ebpf], exporters: [otlp]}}}
        """
    )
    assert isinstance(config, AgentConfig)
    hash(config)


def test_parse_component_id():
    assert parse_component_id("otlp/vendor") == ("otlp", "vendor")
    assert parse_component_id("batch") == ("batch", "")
    for bad in ("", "otlp/", "1otlp", "otlp/a b", "ot-lp"):
        with pytest.raises(ValueError):
            parse_component_id(bad)


# --- describe_schema -------------------------------------------------------------------------


def _all_config_classes():
    seen, todo = set(), list(COMPONENT_CONFIGS.values()) + [ServiceConfig]
    while todo:
        cls = todo.pop()
        if cls in seen:
            continue
        seen.add(cls)
        for spec in dataclasses.fields(cls):
            for candidate in (TLSClientConfig, TLSServerConfig, QueueConfig, QueueBatchConfig, RetryConfig, ProtocolConfig,
                              PipelineConfig):
                if candidate.__name__ in str(spec.type):
                    todo.append(candidate)
    return seen


@pytest.mark.parametrize("cls", sorted(_all_config_classes(), key=lambda cls: cls.__name__), ids=lambda cls: cls.__name__)
def test_every_setting_has_a_one_line_doc(cls):
    for spec in dataclasses.fields(cls):
        doc = spec.metadata.get("doc")
        assert doc and "\n" not in doc and doc.endswith("."), f"{cls.__name__}.{spec.name}"
        assert not (spec.metadata.get("secret") and spec.metadata.get("check")), "checks would quote secrets"


def test_describe_schema_lists_every_key_with_type_default_and_doc():
    schema = describe_schema()
    assert set(schema) == {f"{kind}.{type_}" for kind, type_ in COMPONENT_CONFIGS} | {"service"}
    otlp = {entry.key: entry for entry in schema["exporters.otlp"]}
    assert {"endpoint", "tls", "tls.ca_file", "headers", "sending_queue.queue_size", "retry_on_failure.max_elapsed_time"} <= set(otlp)
    assert (otlp["tls.ca_file"].type, otlp["tls.ca_file"].default) == ("string or null", "null")
    assert (otlp["timeout"].type, otlp["timeout"].default) == ("duration", "5s")
    assert otlp["compression"].allowed == "one of: gzip, none"
    assert otlp["headers"].type == "map of string to string"
    ebpf = {entry.key: entry for entry in schema["receivers.ebpf"]}
    assert (ebpf["ring_buffer_size"].type, ebpf["ring_buffer_size"].default) == ("size", "16MiB")
    assert "power of two" in ebpf["ring_buffer_size"].allowed
    assert ebpf["capture_size"].allowed == "64..16KiB"
    assert ebpf["exclude_ports"].type == "list of int"
    assert ebpf["protocols"].allowed.startswith("keys: http, http2, grpc, postgresql, mysql, redis")
    assert "protocols.<name>.ports" in ebpf
    service = {entry.key: entry for entry in schema["service"]}
    assert "pipelines.<name>.receivers" in service and service["telemetry.logs.level"].default == "info"
    for entries in schema.values():
        for entry in entries:
            assert entry.doc and entry.type and entry.default, entry
