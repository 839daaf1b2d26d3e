"""Settings of the exporters (``exporters: {otlp: ..., otlphttp: ..., debug: ..., prometheus: ...}``)
and of the sending queue and retries they share (the Collector's exporterhelper).  Defaults live
in these dataclasses and nowhere else."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import ClassVar

from receiver.configuration.checks import (
    creatable_dir,
    grpc_endpoint,
    host_port,
    http_url,
    metric_namespace,
)
from receiver.configuration.mappings import SecretMap
from receiver.configuration.section import ConfigSection, setting
from receiver.configuration.tls import TLSClientConfig, TLSServerConfig

KIB = 1024
MIB = 1024 * KIB


# --- exporter sending queue and retries (the Collector's exporterhelper) -----------------------
# sending_queue and retry_on_failure of the otlp and otlphttp exporters, implemented by
# receiver/exporters/sending_queue.py.  Key names and units follow the Collector's
# exporterhelper (sending_queue.sizer, queue_size, num_consumers, batch.sizer, batch.max_size).


@dataclass(frozen=True, slots=True)
class QueueBatchConfig(ConfigSection):
    """``sending_queue.batch``: the largest request sent; larger batches are split before sending.

    The Collector's exporter-side batching, its splitting half: merging small batches is the
    batch processor's job here, so ``min_size`` and ``flush_timeout`` are not accepted.
    """

    sizer: str = setting(
        "bytes",
        "Unit of max_size: items (spans, log records, metric data points) or bytes (of the serialized "
        "OTLP protobuf request, before compression).",
        choices=("items", "bytes"),
    )
    max_size: int = setting(
        3 * MIB,
        "Largest request sent, in sizer units; a larger batch is split into requests of at most this "
        "size before it is sent, and a single item larger than it is dropped (counted failed, too_large). "
        "0: no limit. The default, 3 MiB, stays under the 4 MiB gRPC servers accept by default.",
        minimum=0,
    )


@dataclass(frozen=True, slots=True)
class QueueConfig(ConfigSection):
    enabled: bool = setting(True, "Buffer batches in a queue so export never blocks the pipeline.")
    num_consumers: int = setting(
        2,
        "Threads sending from each signal's queue (an exporter has one queue per signal, so a slow signal "
        "never holds up another). More keep more requests in flight; encoding still runs one at a time "
        "under Python's GIL.",
        minimum=1,
        maximum=32,
    )
    sizer: str = setting(
        "bytes",
        "Unit of queue_size: bytes (of the serialized OTLP request; batches are encoded when queued: the "
        "memory a queue holds is bounded, whatever the load), requests (batches, as they arrive; the "
        "Collector's default) or items (spans, log records, metric data points).",
        choices=("requests", "items", "bytes"),
    )
    queue_size: int = setting(
        16 * MIB,
        "Most each signal's queue holds, in sizer units (16 MiB: about 28,000 spans); the oldest are dropped "
        "(and counted) when full.",
        minimum=1,
    )
    batch: QueueBatchConfig = setting(QueueBatchConfig(), "Size limit of one export request.")
    storage: str | None = setting(
        None, "Directory for a persistent queue that survives restarts; in memory when unset. Holds one "
        "fsynced file per queued request and `.crash-ledger` (64 bytes, memory-mapped, written once per "
        "batch), from which the next start counts what a killed agent held in memory (dropped, agent_killed).",
        check=creatable_dir,
    )

    def cross_field_problems(self) -> Iterator[tuple[str, str]]:
        if self.storage is not None and not self.enabled:
            yield "storage", (
                "storage needs the sending queue: set enabled: true (a disabled queue sends synchronously "
                "and keeps nothing)"
            )
        batch = self.batch
        if self.sizer == "bytes" and batch.sizer == "bytes" and self.queue_size < batch.max_size:
            yield "queue_size", (
                f"with sizer: bytes, queue_size is in bytes: {self.queue_size} is less than batch.max_size "
                f"({batch.max_size}), so a request of the largest size could never be queued "
                f"(e.g. queue_size: 67108864, 64 MiB)"
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


def _gzip_level(level: int) -> str | None:
    if level == -1 or 1 <= level <= 9:
        return None
    return f"{level} is not a gzip level: 1 (fastest) to 9 (smallest), or -1 (zlib's default, 6)"


@dataclass(frozen=True, slots=True)
class CompressionParamsConfig(ConfigSection):
    """``compression_params``: settings of the ``compression`` algorithm (confighttp's)."""

    level: int = setting(
        6, "gzip level: 1 (least CPU) to 9 (smallest requests); -1 is zlib's default (6).", check=_gzip_level
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
    compression_params: CompressionParamsConfig = setting(
        CompressionParamsConfig(), "Compression level (the gRPC exporter has none: grpcio compresses at zlib's "
        "default)."
    )
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


@dataclass(frozen=True, slots=True)
class PprofExporterConfig(ConfigSection):
    """``pprof``: CPU profiles as gzipped pprof files in a directory and/or pushed to a
    Pyroscope-compatible ``/ingest`` endpoint."""

    signals: ClassVar[frozenset[str]] = frozenset({"profiles"})

    directory: str | None = setting(None, "Write each profile to <directory>/cpu-<unix ms>.pb.gz.", check=creatable_dir)
    max_files: int = setting(120, "Most profile files kept in directory (the oldest are removed).", minimum=1)
    endpoint: str | None = setting(
        None, "Pyroscope base URL; each profile is POSTed to <endpoint>/ingest?format=pprof.", check=http_url
    )
    application_name: str = setting("ebpf-receiver", "Pyroscope application name (the `name` parameter).")
    headers: Mapping[str, str] = setting(
        SecretMap(), "Headers sent with every push (values are secret: never logged).", secret=True
    )
    timeout: float = setting(10.0, "Deadline of one push.", kind="duration", above=0)

    def cross_field_problems(self) -> Iterator[tuple[str, str]]:
        if self.directory is None and self.endpoint is None:
            yield "directory", "give a directory, an endpoint, or both"


@dataclass(frozen=True, slots=True)
class OtlpProfilesExporterConfig(ConfigSection):
    """``otlpprofiles``: the OTLP profiles signal over gRPC (``ProfilesService/Export``,
    opentelemetry-proto ``v1development``). Development status: off unless the flag is set."""

    signals: ClassVar[frozenset[str]] = frozenset({"profiles"})

    enable_development_signal: bool = setting(
        False, "Accept that the OTLP profiles protocol is in development (it may change, collectors may not "
        "take it): the exporter refuses to start without it.",
    )
    endpoint: str = setting("localhost:4317", "gRPC endpoint, host:port (or https://host:port).", check=grpc_endpoint)
    tls: TLSClientConfig = setting(TLSClientConfig(), "TLS settings for the connection.")
    headers: Mapping[str, str] = setting(
        SecretMap(), "Headers sent with every request (values are secret: never logged).", secret=True
    )
    timeout: float = setting(10.0, "Deadline of one export request.", kind="duration", above=0)

    def cross_field_problems(self) -> Iterator[tuple[str, str]]:
        if not self.enable_development_signal:
            yield "enable_development_signal", (
                "the OTLP profiles signal is in development: set enable_development_signal: true to export it"
            )
