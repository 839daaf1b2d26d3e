"""OTLP over HTTP: :class:`OtlpHttpPusher` (the transport) and :class:`OtlpHttpExporter`.

POSTs one export request per batch to ``{endpoint}/v1/traces|metrics|logs`` (or the per-signal
override, used as is), protobuf (``application/x-protobuf``) or OTLP/JSON
(``application/json``), gzip-compressed if configured.

Classification (OTLP specification, as the Collector's otlphttpexporter): 429, 502, 503 and
504 are retryable, honouring ``Retry-After`` (delay-seconds or HTTP-date); connection errors and
timeouts are retryable; 413 (Content Too Large) is
:class:`~receiver.exporters.errors.RequestTooLargeError`, which the sending queue answers by
splitting the request; every other non-2xx status is permanent.  A 2xx response body may carry
a partial success, whose rejected items are counted, not retried.

TLS comes from the URL scheme (``https://``); ``tls.ca_file`` replaces the system trust store,
``tls.cert_file``/``key_file`` give a client certificate, ``tls.insecure_skip_verify`` disables
verification.

Requests are written straight to protobuf wire format by the pusher's
:class:`~receiver.exporters.otlp_wire.OtlpWireEncoder` (what the sending queue measures, splits
and stores) and sent as is, or, with ``encoding: json``, parsed and re-encoded to OTLP/JSON
just before the POST.  Header values are secrets: they are removed from error texts (a
backend may echo them in an error body) before those are logged.
"""

from __future__ import annotations

import base64
import datetime
import email.utils
import gzip
import json
import logging
import threading
import time
from typing import TYPE_CHECKING

import requests
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from requests.adapters import HTTPAdapter

from receiver import __version__
from receiver.configuration.secrets import redact, secret_fragments
from receiver.exporters.errors import (
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
    from receiver.exporters.config import OtlpHttpExporterConfig
    from receiver.exporters.exporter_metrics import ExporterMetrics

log = logging.getLogger(__name__)

RETRYABLE_STATUSES = frozenset({429, 502, 503, 504})
TOO_LARGE_STATUS = 413

_PATHS = {Signal.TRACES: "/v1/traces", Signal.METRICS: "/v1/metrics", Signal.LOGS: "/v1/logs"}
_REQUESTS = {
    Signal.TRACES: ExportTraceServiceRequest,
    Signal.METRICS: ExportMetricsServiceRequest,
    Signal.LOGS: ExportLogsServiceRequest,
}
_RESPONSES = {
    Signal.TRACES: ExportTraceServiceResponse,
    Signal.METRICS: ExportMetricsServiceResponse,
    Signal.LOGS: ExportLogsServiceResponse,
}
_CONTENT_TYPES = {"proto": "application/x-protobuf", "json": "application/json"}

# OTLP/JSON encodes these bytes fields as hex, not base64 (the protobuf JSON mapping).
_HEX_ID_FIELDS = ("traceId", "spanId", "parentSpanId")


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delay-seconds or HTTP-date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000": UTC by RFC 5322
        when = when.replace(tzinfo=datetime.timezone.utc)
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def to_otlp_json(message) -> bytes:
    """OTLP/JSON: the protobuf JSON mapping with hex ids and integer enums."""
    doc = json_format.MessageToDict(message, use_integers_for_enums=True)
    _hex_ids(doc)
    return json.dumps(doc, separators=(",", ":")).encode()


def _hex_ids(node) -> None:
    if isinstance(node, dict):
        for key in _HEX_ID_FIELDS:
            value = node.get(key)
            if isinstance(value, str):
                node[key] = base64.b64decode(value).hex()
        for value in node.values():
            if isinstance(value, (dict, list)):
                _hex_ids(value)
    elif isinstance(node, list):
        for value in node:
            if isinstance(value, (dict, list)):
                _hex_ids(value)


def signal_urls(config: OtlpHttpExporterConfig) -> dict[Signal, str]:
    base = config.endpoint.rstrip("/")
    overrides = {
        Signal.TRACES: config.traces_endpoint,
        Signal.METRICS: config.metrics_endpoint,
        Signal.LOGS: config.logs_endpoint,
    }
    return {s: overrides[s] or base + _PATHS[s] for s in Signal}


class OtlpHttpPusher:
    """Sends one batch per POST on a ``requests.Session`` (connection reuse)."""

    def __init__(self, config: OtlpHttpExporterConfig) -> None:
        if config.compression not in ("gzip", "none", ""):
            raise ValueError(f"unsupported compression {config.compression!r} (gzip or none)")
        if config.encoding not in _CONTENT_TYPES:
            raise ValueError(f"unsupported encoding {config.encoding!r} (proto or json)")
        tls = config.tls
        if (tls.cert_file is None) != (tls.key_file is None):
            raise ValueError("tls.cert_file and tls.key_file must be given together")
        self._urls = signal_urls(config)
        self._json = config.encoding == "json"
        self._gzip = config.compression == "gzip"
        level = config.compression_params.level
        self._gzip_level = 6 if level == -1 else level
        self._timeout = config.timeout
        self._headers = {
            "User-Agent": f"ebpf-receiver/{__version__}",
            "Content-Type": _CONTENT_TYPES[config.encoding],
            **({"Content-Encoding": "gzip"} if self._gzip else {}),
            **config.headers,
        }
        self._secrets = secret_fragments(config.headers.values())
        self._verify: bool | str = False if tls.insecure_skip_verify else (tls.ca_file or True)
        self._cert = (tls.cert_file, tls.key_file) if tls.cert_file else None
        self._session: requests.Session | None = None
        self._encoder = OtlpWireEncoder()
        self._encoder_lock = threading.Lock()  # its caches are not thread-safe
        # one pooled connection per consumer thread (each exporter has a queue per signal)
        self._pool_size = len(Signal) * config.sending_queue.num_consumers

    def start(self) -> None:
        session = requests.Session()
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=self._pool_size)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        session.headers.update(self._headers)
        session.verify = self._verify
        session.cert = self._cert
        session.trust_env = False  # no proxies or netrc from the environment for telemetry
        self._session = session

    def serialize(self, signal: Signal, batch: list) -> bytes:
        with self._encoder_lock:
            return self._encoder.serialize(signal, batch)

    def push_serialized(self, signal: Signal, data: bytes) -> int:
        if self._json:
            try:
                data = to_otlp_json(_REQUESTS[signal].FromString(data))
            except DecodeError as e:
                raise PermanentExportError(f"stored {signal.value} request does not decode: {e}") from None
        return self._post(signal, data)

    def _post(self, signal: Signal, body: bytes) -> int:
        if self._gzip:
            body = gzip.compress(body, compresslevel=self._gzip_level)
        url = self._urls[signal]
        session = self._session
        if session is None:
            raise RetryableExportError("exporter is not started or already shut down")
        try:
            response = session.post(url, data=body, timeout=self._timeout)
        except requests.RequestException as e:  # connection refused/reset, timeout, TLS failure
            raise RetryableExportError(redact(f"POST {url}: {e.__class__.__name__}: {e}", self._secrets)) from None
        status = response.status_code
        if 200 <= status < 300:
            rejected, message = self._partial_success(signal, response)
            if rejected or message:
                log.warning(
                    "%s partially rejected by %s: %d rejected: %s", signal.value, url, rejected, redact(message, self._secrets)
                )
            return rejected
        message = redact(f"POST {url}: HTTP {status}{_error_detail(response)}", self._secrets)
        if status in RETRYABLE_STATUSES:
            raise RetryableExportError(message, parse_retry_after(response.headers.get("Retry-After")))
        if status == TOO_LARGE_STATUS:
            raise RequestTooLargeError(message)
        raise PermanentExportError(message)

    def _partial_success(self, signal: Signal, response: requests.Response) -> tuple[int, str]:
        content = response.content
        if not content:
            return 0, ""
        parsed = _RESPONSES[signal]()
        try:
            if "json" in response.headers.get("Content-Type", ""):
                json_format.Parse(content, parsed, ignore_unknown_fields=True)
            else:
                parsed.ParseFromString(content)
        except (DecodeError, json_format.ParseError, ValueError):
            log.debug("unparseable OTLP response body from %s", response.url)
            return 0, ""
        return rejected_items(signal, parsed)

    def shutdown(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None


def _error_detail(response: requests.Response) -> str:
    """A short description of an error body (a ``google.rpc.Status`` or text)."""
    content = response.content[:4096]
    if not content:
        return ""
    if "protobuf" in response.headers.get("Content-Type", ""):
        status = parse_status(content)
        return f": {status.message}" if status is not None and status.message else ""
    return ": " + content[:200].decode("utf-8", "replace").strip()


class OtlpHttpExporter(QueuedRetryingSender):
    """The OTLP/HTTP exporter as the pipeline sees it: queue + retry around :class:`OtlpHttpPusher`."""

    def __init__(
        self,
        exporter_id: str,
        config: OtlpHttpExporterConfig,
        self_metrics: SelfMetrics,
        *,
        exporter_metrics: ExporterMetrics | None = None,
        backpressure: Backpressure | None = None,
    ) -> None:
        super().__init__(
            exporter_id,
            OtlpHttpPusher(config),
            self_metrics,
            config.sending_queue,
            config.retry_on_failure,
            exporter_metrics=exporter_metrics,
            backpressure=backpressure,
        )
