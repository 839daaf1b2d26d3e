"""The settings of every component: one frozen dataclass per component type.

Defaults live here and nowhere else.  :data:`COMPONENT_CONFIGS` maps ``(kind, type)`` — as in
``exporters: {otlp/vendor: ...}`` — to the dataclass that validates and holds its settings.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import ClassVar

from receiver.configuration.checks import (
    container_id_prefix,
    creatable_dir,
    grpc_endpoint,
    host_port,
    http_url,
    metric_namespace,
    not_empty,
    readable_file,
    url_path,
)
from receiver.configuration.mappings import FrozenMap, SecretMap
from receiver.configuration.section import ConfigSection, setting
from receiver.telemetry.sampling import SAMPLER_NAMES

KIB = 1024
MIB = 1024 * KIB

PROTOCOL_NAMES = ("http", "http2", "grpc", "postgresql", "mysql", "redis")


# --- shared blocks -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TLSClientConfig(ConfigSection):
    insecure: bool = setting(False, "Send in plaintext, without TLS.")
    ca_file: str | None = setting(
        None, "CA certificate (PEM) that verifies the server; the system roots when unset.", check=readable_file
    )
    cert_file: str | None = setting(
        None, "Client certificate (PEM) for mutual TLS; set together with key_file.", check=readable_file
    )
    key_file: str | None = setting(
        None, "Client private key (PEM) for mutual TLS; set together with cert_file.", check=readable_file
    )
    insecure_skip_verify: bool = setting(
        False, "Use TLS but do not verify the server's certificate (testing only)."
    )

    def cross_field_problems(self) -> Iterator[tuple[str, str]]:
        if self.cert_file and not self.key_file:
            yield "cert_file", "cert_file needs key_file (mutual TLS uses both)"
        if self.key_file and not self.cert_file:
            yield "key_file", "key_file needs cert_file (mutual TLS uses both)"


@dataclass(frozen=True, slots=True)
class TLSServerConfig(ConfigSection):
    cert_file: str | None = setting(None, "Server certificate (PEM); required.", check=readable_file)
    key_file: str | None = setting(None, "Server private key (PEM); required.", check=readable_file)
    client_ca_file: str | None = setting(
        None, "CA certificate (PEM) that clients must present a certificate from (mutual TLS).",
        check=readable_file,
    )

    def cross_field_problems(self) -> Iterator[tuple[str, str]]:
        for name in ("cert_file", "key_file"):
            if not getattr(self, name):
                yield name, f"{name} is required when tls is configured"


@dataclass(frozen=True, slots=True)
class QueueConfig(ConfigSection):
    enabled: bool = setting(True, "Buffer batches in a queue so export never blocks the pipeline.")
    queue_size: int = setting(1000, "Most batches held; the oldest are dropped (and counted) when full.", minimum=1)
    storage: str | None = setting(
        None, "Directory for a persistent queue that survives restarts; in memory when unset.",
        check=creatable_dir,
    )

    def cross_field_problems(self) -> Iterator[tuple[str, str]]:
        if self.storage is not None and not self.enabled:
            yield "storage", (
                "storage needs the sending queue: set enabled: true (a disabled queue sends synchronously "
                "and keeps nothing)"
            )


@dataclass(frozen=True, slots=True)
class RetryConfig(ConfigSection):
    enabled: bool = setting(True, "Retry batches that failed with a retryable error.")
    initial_interval: float = setting(5.0, "Wait before the first retry.", kind="duration", above=0)
    max_interval: float = setting(30.0, "Longest wait between two retries.", kind="duration", above=0)
    multiplier: float = setting(1.5, "Factor the wait grows by after each retry.", minimum=1.0)
    max_elapsed_time: float = setting(
        300.0, "Give up on a batch after retrying this long; 0 retries forever.", kind="duration", minimum=0
    )

    def cross_field_problems(self) -> Iterator[tuple[str, str]]:
        if self.max_interval < self.initial_interval:
            yield "max_interval", "max_interval must not be shorter than initial_interval"


# --- exporters ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OtlpExporterConfig(ConfigSection):
    """``otlp``: OTLP over gRPC."""

    endpoint: str = setting("localhost:4317", "gRPC endpoint, host:port (or https://host:port).", check=grpc_endpoint)
    tls: TLSClientConfig = setting(TLSClientConfig(), "TLS settings for the connection.")
    headers: Mapping[str, str] = setting(
        SecretMap(), "Headers sent with every request (values are secret: never logged).", secret=True
    )
    compression: str = setting("gzip", "Compression of request bodies.", choices=("gzip", "none"))
    timeout: float = setting(5.0, "Deadline of one export request.", kind="duration", above=0)
    sending_queue: QueueConfig = setting(QueueConfig(), "Queue in front of the exporter.")
    retry_on_failure: RetryConfig = setting(RetryConfig(), "Retries of failed exports.")

    def cross_field_problems(self) -> Iterator[tuple[str, str]]:
        if self.tls.insecure_skip_verify:
            yield "tls", (
                "insecure_skip_verify is not supported by the otlp (gRPC) exporter: grpcio always verifies "
                "the server certificate; give the server's CA in tls.ca_file, or use the otlphttp exporter"
            )


@dataclass(frozen=True, slots=True)
class OtlpHttpExporterConfig(ConfigSection):
    """``otlphttp``: OTLP over HTTP (``/v1/traces``, ``/v1/metrics``, ``/v1/logs``)."""

    endpoint: str = setting(
        "http://localhost:4318", "Base URL; /v1/<signal> is appended per signal.", check=http_url
    )
    tls: TLSClientConfig = setting(TLSClientConfig(), "TLS settings for https:// endpoints.")
    headers: Mapping[str, str] = setting(
        SecretMap(), "Headers sent with every request (values are secret: never logged).", secret=True
    )
    compression: str = setting("gzip", "Compression of request bodies.", choices=("gzip", "none"))
    timeout: float = setting(5.0, "Deadline of one export request.", kind="duration", above=0)
    sending_queue: QueueConfig = setting(QueueConfig(), "Queue in front of the exporter.")
    retry_on_failure: RetryConfig = setting(RetryConfig(), "Retries of failed exports.")
    traces_endpoint: str | None = setting(
        None, "Full URL for traces, instead of endpoint + /v1/traces.", check=http_url
    )
    metrics_endpoint: str | None = setting(
        None, "Full URL for metrics, instead of endpoint + /v1/metrics.", check=http_url
    )
    logs_endpoint: str | None = setting(
        None, "Full URL for logs, instead of endpoint + /v1/logs.", check=http_url
    )
    encoding: str = setting("proto", "Body encoding: protobuf or JSON.", choices=("proto", "json"))


@dataclass(frozen=True, slots=True)
class DebugExporterConfig(ConfigSection):
    """``debug``: prints telemetry to standard error."""

    verbosity: str = setting(
        "basic", "basic: one summary line per batch; normal: one line per item; detailed: everything.",
        choices=("basic", "normal", "detailed"),
    )


@dataclass(frozen=True, slots=True)
class PrometheusExporterConfig(ConfigSection):
    """``prometheus``: serves metrics for scraping at ``http://<endpoint>/metrics``."""

    signals: ClassVar[frozenset[str]] = frozenset({"metrics"})

    endpoint: str = setting("127.0.0.1:9464", "Address the /metrics server listens on.", check=host_port)
    tls: TLSServerConfig | None = setting(None, "Serve https instead of http.")
    namespace: str = setting("", "Prefix added (with '_') to every metric name.", check=metric_namespace)
    enable_open_metrics: bool = setting(True, "Offer the OpenMetrics format (exemplars) to scrapers that ask.")


# --- processors ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BatchProcessorConfig(ConfigSection):
    """``batch``: groups items into batches before export."""

    send_batch_size: int = setting(8192, "Send a batch once it holds this many items.", minimum=1)
    send_batch_max_size: int = setting(
        0, "Split batches larger than this; 0 means no limit.", minimum=0
    )
    timeout: float = setting(
        0.2, "Send a non-empty batch after this long regardless of size.", kind="duration", minimum=0
    )

    def cross_field_problems(self) -> Iterator[tuple[str, str]]:
        if self.send_batch_max_size and self.send_batch_max_size < self.send_batch_size:
            yield "send_batch_max_size", "send_batch_max_size must be 0 or at least send_batch_size"


# --- extensions ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HealthCheckExtensionConfig(ConfigSection):
    """``health_check``: an HTTP endpoint answering 200 while the agent is healthy."""

    signals: ClassVar[frozenset[str]] = frozenset()

    endpoint: str = setting("127.0.0.1:13133", "Address the health server listens on.", check=host_port)
    path: str = setting("/", "URL path of the health check.", check=url_path)


# --- receivers -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProtocolConfig(ConfigSection):
    ports: tuple[int, ...] = setting(
        (), "Server ports known to carry this protocol; empty means detect it on any port.", minimum=1, maximum=65535
    )
    enabled: bool = setting(True, "Parse this protocol at all.")


@dataclass(frozen=True, slots=True)
class DiscoveryRule(ConfigSection):
    """Matches a process when every fact it names matches."""

    exe: str | None = setting(
        None, "Glob on the executable's path; without '/', on its file name (nginx, python3*).", check=not_empty
    )
    cmdline: str | None = setting(None, "Glob on the command line, arguments joined by spaces.", check=not_empty)
    port: int | None = setting(
        None, "A local TCP port the process has a socket on (listening or connected).", minimum=1, maximum=65535
    )
    pid: int | None = setting(None, "The process id.", minimum=1, maximum=4194304)
    container_id: str | None = setting(
        None, "The process's container id, or a prefix of it (12 digits as docker ps shows).",
        check=container_id_prefix,
    )
    cgroup: str | None = setting(None, "Glob on a cgroup path of the process (/proc/<pid>/cgroup).", check=not_empty)

    def cross_field_problems(self) -> Iterator[tuple[str, str]]:
        if all(getattr(self, name) is None for name in ("exe", "cmdline", "port", "pid", "container_id", "cgroup")):
            yield "exe", "a rule needs at least one of exe, cmdline, port, pid, container_id, cgroup"


@dataclass(frozen=True, slots=True)
class DiscoveryConfig(ConfigSection):
    """Which processes are traced, and TLS plaintext from the libraries they load."""

    include: tuple[DiscoveryRule, ...] = setting(
        (), "Trace only processes that match one of these rules (a process forked without exec follows its "
        "parent); empty: every process (but the agent)."
    )
    exclude: tuple[DiscoveryRule, ...] = setting(
        (), "Never trace processes that match one of these rules (wins over include)."
    )
    tls: bool = setting(
        True, "Attach uprobes to the TLS libraries (OpenSSL, BoringSSL) processes load, for plaintext."
    )
    rescan_interval: float = setting(
        2.0, "How often all processes are looked at again (new libraries, forks, port rules).",
        kind="duration", above=0,
    )


@dataclass(frozen=True, slots=True)
class SamplerConfig(ConfigSection):
    """Head sampling of the traces that start (or continue) here; names as OTEL_TRACES_SAMPLER."""

    name: str = setting(
        "parentbased_always_on",
        "always_on, always_off, traceidratio, or parentbased_* of one of them: keep the caller's decision "
        "(the W3C sampled flag) for traces that arrive with a traceparent. Sampled-out spans are not exported, "
        "but still counted in the RED metrics.",
        choices=SAMPLER_NAMES,
    )
    ratio: float = setting(
        1.0, "Fraction of traces kept by traceidratio (decided on the trace id, like the SDKs).",
        minimum=0.0, maximum=1.0,
    )


# --- HTTP/1 pairing in the kernel (bpf/src/lib/http1_pair.h) --------------------------------


@dataclass(frozen=True, slots=True)
class HttpPairingConfig(ConfigSection):
    """``http_pairing``: HTTP/1 requests paired with their responses in the kernel, and overload
    aggregated there (one record per transaction, no body byte leaves the kernel)."""

    enabled: bool = setting(
        True, "Pair HTTP/1 transactions in the kernel; what it cannot pair (pipelining, Expect, Upgrade, "
        "heads over 2 KiB...) is handed to the payload path's parser at a request, counted by reason.",
    )
    connections: int = setting(
        8192, "Most connections paired at once (about 1.5 KiB of kernel memory each); past it the least "
        "recently used fall back to the payload path.", minimum=1,
    )
    aggregate_keys: int = setting(
        2048, "Most overload aggregates (process, method, status, role, scheme, version, server) kept in "
        "the kernel between two reads (152 bytes of kernel memory per CPU each); past it, transactions are "
        "counted lost.", minimum=1,
    )
    shed_ring_fraction: float = setting(
        0.5, "With more of the ring buffer than this waiting, transactions are aggregated in the kernel "
        "instead of submitted (RED counts stay exact; no span); 0 never.", minimum=0.0, maximum=1.0,
    )
    shed_error_ring_fraction: float = setting(
        0.9, "The same for errors (5xx; 4xx too for a client; no response): they are shed last.",
        minimum=0.0, maximum=1.0,
    )

    def cross_field_problems(self) -> Iterator[tuple[str, str]]:
        if self.shed_ring_fraction and self.shed_error_ring_fraction and (
                self.shed_error_ring_fraction < self.shed_ring_fraction):
            yield "shed_error_ring_fraction", "shed_error_ring_fraction must not be below shed_ring_fraction"


# --- receivers ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EbpfReceiverConfig(ConfigSection):
    """``ebpf``: captures socket traffic of local processes with eBPF."""

    capture_size: int = setting(
        4096, "Bytes of payload captured per syscall.", kind="bytes", minimum=64, maximum=16 * KIB
    )
    ring_buffer_size: int = setting(
        16 * MIB, "Size of the kernel→user ring buffer; a power of two.", kind="bytes",
        minimum=4 * KIB, maximum=1024 * MIB, power_of_two=True,
    )
    poll_interval: float = setting(0.02, "Longest wait between two ring-buffer polls.", kind="duration", above=0)
    wakeup_bytes: int = setting(
        1 * MIB, "Wake the reader early each time this many more bytes are waiting; 0 wakes on every event.",
        kind="bytes", minimum=0,
    )
    capture_logs: bool = setting(False, "Also turn writes to stdout/stderr into log records.")
    exclude_ports: tuple[int, ...] = setting((), "Ports whose traffic is never captured.", minimum=1, maximum=65535)
    exclude_pids: tuple[int, ...] = setting((), "Processes that are never traced.", minimum=1, maximum=4194304)
    max_connections: int = setting(65536, "Most connections tracked at once (kernel and user space).", minimum=1)
    max_buffer_per_connection: int = setting(
        64 * KIB, "Most unparsed bytes kept per connection and direction.", kind="bytes", minimum=64
    )
    connection_idle_timeout: float = setting(
        300.0, "Forget a connection after this long without traffic.", kind="duration", above=0
    )
    protocols: Mapping[str, ProtocolConfig] = setting(
        FrozenMap(), "Per-protocol settings; protocols not listed are enabled and detected on any port.",
        keys=PROTOCOL_NAMES,
    )
    discovery: DiscoveryConfig = setting(
        DiscoveryConfig(), "Which processes are traced (applied in the kernel), TLS library discovery."
    )
    sampler: SamplerConfig = setting(SamplerConfig(), "Which traces are exported as spans.")
    http_pairing: HttpPairingConfig = setting(
        HttpPairingConfig(), "HTTP/1 transactions paired in the kernel, and overload handled there."
    )

    def cross_field_problems(self) -> Iterator[tuple[str, str]]:
        if self.wakeup_bytes > self.ring_buffer_size:
            yield "wakeup_bytes", "wakeup_bytes must not exceed ring_buffer_size"
        if self.max_buffer_per_connection < self.capture_size:
            yield "max_buffer_per_connection", "max_buffer_per_connection must be at least capture_size"


COMPONENT_CONFIGS: Mapping[tuple[str, str], type[ConfigSection]] = MappingProxyType(
    {
        ("receivers", "ebpf"): EbpfReceiverConfig,
        ("processors", "batch"): BatchProcessorConfig,
        ("exporters", "otlp"): OtlpExporterConfig,
        ("exporters", "otlphttp"): OtlpHttpExporterConfig,
        ("exporters", "debug"): DebugExporterConfig,
        ("exporters", "prometheus"): PrometheusExporterConfig,
        ("extensions", "health_check"): HealthCheckExtensionConfig,
    }
)
