"""OTLP over gRPC: :class:`OtlpGrpcPusher` (the transport) and :class:`OtlpGrpcExporter`.

Error classification follows the OTLP specification and the Collector's otlpexporter:
``UNAVAILABLE``, ``CANCELLED``, ``DEADLINE_EXCEEDED``, ``ABORTED``, ``OUT_OF_RANGE`` and
``DATA_LOSS`` are retryable; ``RESOURCE_EXHAUSTED`` only when the status details carry a
``google.rpc.RetryInfo`` (the server promises recovery); everything else is permanent.  A
``RetryInfo`` delay, when present, is honoured as the minimum backoff.

One exception comes first: a request over the server's message size limit is
:class:`~receiver.exporters.errors.RequestTooLargeError` (the sending queue splits it), never
retried unchanged.  Servers say so in the status details: gRPC C-core (grpcio)
``RESOURCE_EXHAUSTED`` "Received message larger than max (N vs. M)", grpc-go (the Collector)
``RESOURCE_EXHAUSTED`` "grpc: received message larger than max (N vs. M)" (or "after
decompression"), grpc-java ``RESOURCE_EXHAUSTED`` "gRPC message exceeds maximum size M: N", and
tonic (rotel) ``OUT_OF_RANGE`` "Error, decoded message length too large: found N bytes, the
limit is: M bytes" — which the plain table would retry forever.

Endpoint: ``host:port`` (plaintext if ``tls.insecure``, else TLS), or with an ``http://``
(plaintext) or ``https://`` (TLS) scheme, which wins over ``tls.insecure``.

Requests go out already serialized (``Export`` methods called without a request serializer, so
bytes pass through): a batch is written straight to wire format by the pusher's
:class:`~receiver.exporters.otlp_wire.OtlpWireEncoder`, and one from the persistent queue is
sent as the bytes that were stored.  Header values are
secrets: they are removed from error texts before those are logged.
"""

from __future__ import annotations

import logging
import re
import threading
from typing import TYPE_CHECKING, Callable

import grpc
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceResponse,
)

from receiver import __version__
from receiver.configuration.secrets import redact, secret_fragments
from receiver.exporters.errors import (
    ExportError,
    PermanentExportError,
    RequestTooLargeError,
    RetryableExportError,
)
from receiver.exporters.otlp_encoding import rejected_items
from receiver.exporters.otlp_wire import OtlpWireEncoder
from receiver.exporters.rpc_status import parse_status
from receiver.component.backpressure import Backpressure
from receiver.exporters.sending_queue import QueuedRetryingSender
from receiver.model.signals import Signal

if TYPE_CHECKING:
    from receiver.component.self_metrics import SelfMetrics
    from receiver.configuration.tls import TLSClientConfig
    from receiver.exporters.config import OtlpExporterConfig
    from receiver.exporters.exporter_metrics import ExporterMetrics

log = logging.getLogger(__name__)

RETRYABLE_CODES = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.OUT_OF_RANGE,
        grpc.StatusCode.DATA_LOSS,
    }
)

# Codes a server answers a request over its message size limit with, and what the details say
# then (grpcio, grpc-go, grpc-java, tonic: see the module docstring).
TOO_LARGE_CODES = frozenset({grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.OUT_OF_RANGE})
TOO_LARGE_DETAILS = re.compile(r"larger than max|exceeds maximum size|length too large", re.IGNORECASE)

# The OTLP Export methods: full method name and response type, per signal.
EXPORT_METHODS = {
    Signal.TRACES: ("/opentelemetry.proto.collector.trace.v1.TraceService/Export", ExportTraceServiceResponse),
    Signal.METRICS: ("/opentelemetry.proto.collector.metrics.v1.MetricsService/Export", ExportMetricsServiceResponse),
    Signal.LOGS: ("/opentelemetry.proto.collector.logs.v1.LogsService/Export", ExportLogsServiceResponse),
}

_COMPRESSION = {"gzip": grpc.Compression.Gzip, "none": grpc.Compression.NoCompression, "": grpc.Compression.NoCompression}


def classify_rpc_error(
    code: grpc.StatusCode, details: str | None, trailing_metadata, secrets: tuple[str, ...] = ()
) -> ExportError:
    """Turn a failed call's status into a permanent or retryable export error."""
    retry_delay = None
    for key, value in trailing_metadata or ():
        if key == "grpc-status-details-bin":
            status = parse_status(value)
            if status is not None:
                retry_delay = status.retry_delay
    message = redact(f"gRPC {code.name}: {details or ''}".rstrip(": "), secrets)
    if code in TOO_LARGE_CODES and retry_delay is None and TOO_LARGE_DETAILS.search(details or ""):
        return RequestTooLargeError(message)
    if code in RETRYABLE_CODES or (code is grpc.StatusCode.RESOURCE_EXHAUSTED and retry_delay is not None):
        return RetryableExportError(message, retry_delay)
    return PermanentExportError(message)


def parse_grpc_endpoint(endpoint: str, insecure: bool) -> tuple[str, bool]:
    """``(target, use_tls)`` from a configured endpoint."""
    if endpoint.startswith("http://"):
        return endpoint[len("http://") :].rstrip("/"), False
    if endpoint.startswith("https://"):
        return endpoint[len("https://") :].rstrip("/"), True
    return endpoint, not insecure


def _read(path: str | None) -> bytes | None:
    if path is None:
        return None
    with open(path, "rb") as f:
        return f.read()


def channel_credentials(tls: TLSClientConfig) -> grpc.ChannelCredentials:
    if tls.insecure_skip_verify:
        raise ValueError("tls.insecure_skip_verify is not supported by the gRPC exporter (grpcio cannot skip verification)")
    if (tls.cert_file is None) != (tls.key_file is None):
        raise ValueError("tls.cert_file and tls.key_file must be given together")
    return grpc.ssl_channel_credentials(
        root_certificates=_read(tls.ca_file),
        private_key=_read(tls.key_file),
        certificate_chain=_read(tls.cert_file),
    )


class OtlpGrpcPusher:
    """Sends one batch per unary ``Export`` call on a single channel."""

    def __init__(self, config: OtlpExporterConfig) -> None:
        if config.compression not in _COMPRESSION:
            raise ValueError(f"unsupported compression {config.compression!r} (gzip or none)")
        self._target, self._use_tls = parse_grpc_endpoint(config.endpoint, config.tls.insecure)
        self._credentials = channel_credentials(config.tls) if self._use_tls else None
        self._metadata = tuple((k.lower(), v) for k, v in config.headers.items())
        self._secrets = secret_fragments(config.headers.values())
        self._compression = _COMPRESSION[config.compression]
        self._timeout = config.timeout
        # gRPC reconnects on its own schedule (by default backing off up to 120 s): keep it
        # within ours, so a collector that comes back is used at our next retry, not minutes later.
        retry = config.retry_on_failure
        self._reconnect_backoff_ms = (max(1, int(retry.initial_interval * 1000)), max(1, int(retry.max_interval * 1000)))
        self._channel: grpc.Channel | None = None
        self._calls: dict[Signal, Callable] = {}
        self._encoder = OtlpWireEncoder()
        self._encoder_lock = threading.Lock()  # its caches are not thread-safe

    def start(self) -> None:
        options = [
            ("grpc.primary_user_agent", f"ebpf-receiver/{__version__}"),
            ("grpc.initial_reconnect_backoff_ms", self._reconnect_backoff_ms[0]),
            ("grpc.max_reconnect_backoff_ms", self._reconnect_backoff_ms[1]),
        ]
        if self._credentials is not None:
            self._channel = grpc.secure_channel(self._target, self._credentials, options=options)
        else:
            self._channel = grpc.insecure_channel(self._target, options=options)
        self._calls = {
            signal: self._channel.unary_unary(method, request_serializer=None, response_deserializer=response.FromString)
            for signal, (method, response) in EXPORT_METHODS.items()
        }

    def serialize(self, signal: Signal, batch: list) -> bytes:
        with self._encoder_lock:
            return self._encoder.serialize(signal, batch)

    def push_serialized(self, signal: Signal, data: bytes) -> int:
        call = self._calls.get(signal)
        if call is None:
            raise RetryableExportError("exporter is not started")
        try:
            response = call(data, timeout=self._timeout, metadata=self._metadata, compression=self._compression)
        except grpc.RpcError as e:
            raise classify_rpc_error(e.code(), e.details(), e.trailing_metadata(), self._secrets) from None
        except ValueError as e:  # "Cannot invoke RPC on closed channel!": shutdown raced the push
            raise RetryableExportError(str(e)) from None
        rejected, message = rejected_items(signal, response)
        if rejected or message:
            log.warning(
                "%s partially rejected by %s: %d rejected: %s",
                signal.value, self._target, rejected, redact(message, self._secrets),
            )
        return rejected

    def shutdown(self) -> None:
        if self._channel is not None:
            self._channel.close()  # cancels a call in flight: the worker sees CANCELLED
            self._channel = None


class OtlpGrpcExporter(QueuedRetryingSender):
    """The OTLP/gRPC exporter as the pipeline sees it: queue + retry around :class:`OtlpGrpcPusher`."""

    def __init__(
        self,
        exporter_id: str,
        config: OtlpExporterConfig,
        self_metrics: SelfMetrics,
        *,
        exporter_metrics: ExporterMetrics | None = None,
        backpressure: Backpressure | None = None,
    ) -> None:
        super().__init__(
            exporter_id,
            OtlpGrpcPusher(config),
            self_metrics,
            config.sending_queue,
            config.retry_on_failure,
            exporter_metrics=exporter_metrics,
            backpressure=backpressure,
        )
