"""The Prometheus exporter: serves our :class:`Metric` objects (and the self metrics) on ``/metrics``.

Pull-based: on each scrape :class:`OtelMetricsCollector` calls ``metrics_source()`` (e.g.
``RedMetrics.collect``) and translates the result following the OpenTelemetry "Prometheus and
OpenMetrics compatibility" rules, as the Collector's prometheusexporter does:

* names: characters outside ``[a-zA-Z0-9_:]`` become ``_`` (runs collapsed), the unit is
  appended as a word (``s`` → ``_seconds``, ``By`` → ``_bytes``, ``By/s`` →
  ``_bytes_per_second``; ``{annotations}`` dropped; ``1`` adds nothing, except ``_ratio`` on
  gauges), monotonic sums get ``_total``, non-monotonic sums become gauges, the configured
  namespace is prefixed;
* labels: attribute keys sanitised the same way (a leading digit gets ``key_``; keys that
  collide are merged, values joined by ``;``), values stringified (arrays as JSON);
  ``otel_scope_name``/``otel_scope_version`` are added;
* resource: ``job`` (``service.namespace/service.name``) and ``instance``
  (``service.instance.id``) on every series; the other resource attributes on one
  ``target_info`` gauge per resource;
* histograms: cumulative ``_bucket{le}``, ``_count``, ``_sum``; exemplars (OpenMetrics only)
  carry ``trace_id``/``span_id`` in hex and sit on the bucket holding their value.

Content negotiation as prometheus_client's: ``Accept: application/openmetrics-text`` gets
OpenMetrics (with exemplars) unless ``enable_open_metrics`` is false; otherwise the text format
0.0.4.  gzip when accepted.  Optional TLS, with client certificates required when
``client_ca_file`` is set.
"""

from __future__ import annotations

import base64
import gzip
import json
import logging
import math
import re
import socket
import ssl
import threading
from bisect import bisect_left
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Callable, Iterable, Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import (
    CONTENT_TYPE_PLAIN_0_0_4,
    choose_encoder,
    generate_latest,
    gzip_accepted,
)
from prometheus_client.metrics_core import Metric as PromMetric
from prometheus_client.samples import Exemplar as PromExemplar
from prometheus_client.utils import floatToGoString

from receiver.component.threads import AgentThread
from receiver.exporters.otlp_encoding import SCOPE_NAME, SCOPE_VERSION
from receiver.model.telemetry import Metric, MetricKind, Resource

if TYPE_CHECKING:
    from receiver.configuration.tls import TLSServerConfig
    from receiver.exporters.config import PrometheusExporterConfig

log = logging.getLogger(__name__)

# UCUM unit → the word Prometheus names use (the Collector's prometheus translator table).
UNIT_WORDS: dict[str, str] = {
    "d": "days",
    "h": "hours",
    "min": "minutes",
    "s": "seconds",
    "ms": "milliseconds",
    "us": "microseconds",
    "ns": "nanoseconds",
    "By": "bytes",
    "KiBy": "kibibytes",
    "MiBy": "mebibytes",
    "GiBy": "gibibytes",
    "TiBy": "tibibytes",
    "KBy": "kilobytes",
    "MBy": "megabytes",
    "GBy": "gigabytes",
    "TBy": "terabytes",
    "m": "meters",
    "V": "volts",
    "A": "amperes",
    "J": "joules",
    "W": "watts",
    "g": "grams",
    "Cel": "celsius",
    "Hz": "hertz",
    "%": "percent",
}
PER_UNIT_WORDS: dict[str, str] = {"s": "second", "m": "minute", "h": "hour", "d": "day", "w": "week", "mo": "month", "y": "year"}

# Resource attributes that identify the target (job/instance) instead of going to target_info.
_IDENTIFYING = ("service.name", "service.namespace", "service.instance.id")

_INVALID_NAME_RUN = re.compile(r"[^a-zA-Z0-9_:]+")
_INVALID_LABEL_RUN = re.compile(r"[^a-zA-Z0-9_]+")
_UNDERSCORE_RUN = re.compile(r"__+")
_ANNOTATION = re.compile(r"\{[^}]*\}")  # UCUM annotations such as {request}


def sanitize_metric_name(name: str) -> str:
    out = _UNDERSCORE_RUN.sub("_", _INVALID_NAME_RUN.sub("_", name)).strip("_")
    if not out:
        return "_"
    return "_" + out if out[0].isdigit() else out


def sanitize_label_name(key: str) -> str:
    out = _INVALID_LABEL_RUN.sub("_", key)
    if not out:
        return "key_"
    if out[0].isdigit():
        return "key_" + out
    if out.startswith("__"):  # reserved for Prometheus' own use
        return "key" + out
    return out


def unit_suffix(unit: str, kind: MetricKind, monotonic: bool) -> str:
    """The unit word(s) to append to a metric name ('' for none)."""
    unit = _ANNOTATION.sub("", unit).strip()
    if unit == "1":
        return "ratio" if kind is MetricKind.GAUGE or (kind is MetricKind.SUM and not monotonic) else ""
    if not unit:
        return ""
    main, _, per = unit.partition("/")
    words = UNIT_WORDS.get(main, main) if main else ""
    if per:
        per_word = PER_UNIT_WORDS.get(per, per)
        words = f"{words}_per_{per_word}" if words else f"per_{per_word}"
    return sanitize_metric_name(words).strip("_") if words else ""


def prometheus_name(metric: Metric, namespace: str = "") -> tuple[str, str]:
    """``(family name without _total, unit word)`` for one of our metrics."""
    name = sanitize_metric_name(metric.name)
    is_counter = metric.kind is MetricKind.SUM and metric.monotonic
    if is_counter:
        name = "_".join(t for t in name.split("_") if t != "total") or "_"
    unit = unit_suffix(metric.unit, metric.kind, metric.monotonic)
    if unit and not name.endswith("_" + unit):
        name = f"{name}_{unit}"
    if namespace:
        name = sanitize_metric_name(f"{namespace}_{name}")
    return name, unit


def label_value(value) -> str:
    t = type(value)
    if t is str:
        return value
    if t is bool:
        return "true" if value else "false"
    if isinstance(value, (tuple, list)):
        return json.dumps([_json_safe(v) for v in value], separators=(",", ":"))
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    return str(value)


def _json_safe(value):
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, (tuple, list)):
        return [_json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def attribute_labels(attributes: Iterable[tuple[str, object]]) -> dict[str, str]:
    """Attribute pairs → Prometheus labels (colliding sanitised keys merged with ';', by key)."""
    merged: dict[str, list[tuple[str, str]]] = {}
    for key, value in attributes:
        merged.setdefault(sanitize_label_name(key), []).append((key, label_value(value)))
    return {name: ";".join(v for _, v in sorted(pairs)) for name, pairs in merged.items()}


def resource_labels(resource: Resource) -> dict[str, str]:
    """``job``/``instance`` for the series of one resource."""
    labels = {}
    name = resource.get("service.name")
    if name is not None:
        ns = resource.get("service.namespace")
        labels["job"] = f"{label_value(ns)}/{label_value(name)}" if ns else label_value(name)
    instance = resource.get("service.instance.id")
    if instance is not None:
        labels["instance"] = label_value(instance)
    return labels


class OtelMetricsCollector:
    """A prometheus_client collector translating ``metrics_source()`` at every scrape."""

    def __init__(self, metrics_source: Callable[[], list[Metric]], namespace: str = "") -> None:
        self._source = metrics_source
        self._namespace = namespace

    def collect(self) -> Iterator[PromMetric]:
        try:
            metrics = self._source()
        except Exception:
            log.exception("metrics source failed; serving the self metrics only")
            return
        yield from translate(metrics, self._namespace)


def translate(metrics: Iterable[Metric], namespace: str = "") -> list[PromMetric]:
    """Our metrics → Prometheus metric families (one per name), plus ``target_info``."""
    families: dict[str, PromMetric] = {}
    scope = {"otel_scope_name": SCOPE_NAME, "otel_scope_version": SCOPE_VERSION}
    resources: dict[Resource, dict[str, str]] = {}
    for metric in metrics:
        identity = resources.get(metric.resource)
        if identity is None:
            identity = resources[metric.resource] = resource_labels(metric.resource)
        name, unit = prometheus_name(metric, namespace)
        kind = metric.kind
        typ = "histogram" if kind is MetricKind.HISTOGRAM else "counter" if kind is MetricKind.SUM and metric.monotonic else "gauge"
        family = families.get(name)
        if family is None:
            family = families[name] = PromMetric(name, metric.description or metric.name, typ, unit)
        elif family.type != typ:
            log.warning("metric %s: %s conflicts with an earlier %s of the same name; skipped", metric.name, typ, family.type)
            continue
        for point in metric.points:
            labels = {**attribute_labels(point.attributes), **scope, **identity}
            if typ == "histogram":
                _add_histogram(family, labels, point)
            elif typ == "counter":
                family.add_sample(name + "_total", labels, point.value)
            else:
                family.add_sample(name, labels, point.value)
    out = list(families.values())
    target_info = _target_info(resources)
    if target_info is not None:
        out.append(target_info)
    return out


def _add_histogram(family: PromMetric, labels: dict[str, str], p) -> None:
    bounds = p.explicit_bounds
    exemplars: list = [None] * (len(bounds) + 1)
    for e in p.exemplars:  # latest exemplar in a bucket wins
        i = bisect_left(bounds, e.value)
        if exemplars[i] is None or exemplars[i].time_unix_nano <= e.time_unix_nano:
            exemplars[i] = e
    name = family.name
    cumulative = 0
    for i, count in enumerate(p.bucket_counts):
        cumulative += count
        le = floatToGoString(bounds[i]) if i < len(bounds) else "+Inf"
        e = exemplars[i]
        exemplar = (
            PromExemplar(
                {"trace_id": e.trace_id.hex(), "span_id": e.span_id.hex()}, e.value, e.time_unix_nano / 1e9
            )
            if e is not None
            else None
        )
        family.add_sample(name + "_bucket", {**labels, "le": le}, cumulative, None, exemplar)
    family.add_sample(name + "_count", labels, p.count)
    family.add_sample(name + "_sum", labels, p.sum)


def _target_info(resources: dict[Resource, dict[str, str]]) -> PromMetric | None:
    family = PromMetric("target", "Target metadata", "info")
    for resource, identity in resources.items():
        rest = [(k, v) for k, v in resource.attributes if k not in _IDENTIFYING]
        if rest:
            family.add_sample("target_info", {**attribute_labels(rest), **identity}, 1)
    return family if family.samples else None


def parse_listen_endpoint(endpoint: str) -> tuple[str, int]:
    """``host:port`` / ``[v6]:port`` / ``:port`` (all interfaces) → ``(host, port)``."""
    host, sep, port = endpoint.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"endpoint {endpoint!r} is not host:port")
    return host.strip("[]") or "0.0.0.0", int(port)


def server_ssl_context(tls: TLSServerConfig) -> ssl.SSLContext:
    if not tls.cert_file or not tls.key_file:
        raise ValueError("prometheus tls needs cert_file and key_file")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(tls.cert_file, tls.key_file)
    if tls.client_ca_file:
        ctx.load_verify_locations(tls.client_ca_file)
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def handle_error(self, request, client_address) -> None:
        log.debug("prometheus endpoint: error serving %s", client_address, exc_info=True)


def _handler(registry: CollectorRegistry, open_metrics: bool) -> type[BaseHTTPRequestHandler]:
    class MetricsHandler(BaseHTTPRequestHandler):
        timeout = 10  # seconds a client may idle on a connection (and for the TLS handshake)

        def setup(self) -> None:
            super().setup()
            if isinstance(self.request, ssl.SSLSocket):  # handshake here, not in the accept loop
                self.request.do_handshake()

        def do_GET(self) -> None:
            if self.path.split("?", 1)[0] != "/metrics":
                self.send_error(404)
                return
            if open_metrics:
                encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
            else:
                encoder, content_type = generate_latest, CONTENT_TYPE_PLAIN_0_0_4
            try:
                body = encoder(registry)
            except Exception:
                log.exception("prometheus endpoint: cannot render metrics")
                self.send_error(500)
                return
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            if gzip_accepted(self.headers.get("Accept-Encoding", "")):
                body = gzip.compress(body, compresslevel=6)
                self.send_header("Content-Encoding", "gzip")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args) -> None:  # no access log on stderr
            pass

    return MetricsHandler


class PrometheusExporter:
    """Serves ``/metrics`` from ``registry``, to which it adds the translated ``metrics_source()``.

    ``start()`` binds the port and registers the collector; ``shutdown()`` unregisters it and
    frees the port.  Both are idempotent.  :attr:`port` is the bound port (useful with port 0).
    """

    pull = True  # scraped: the pipeline gives it no periodic metric reader

    def __init__(
        self,
        config: PrometheusExporterConfig,
        metrics_source: Callable[[], list[Metric]],
        registry: CollectorRegistry,
    ) -> None:
        self._host, self._port = parse_listen_endpoint(config.endpoint)
        self._ssl = server_ssl_context(config.tls) if config.tls is not None else None
        self._open_metrics = config.enable_open_metrics
        self._registry = registry
        self._collector = OtelMetricsCollector(metrics_source, config.namespace)
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._shut_down = False

    @property
    def port(self) -> int:
        return self._server.server_address[1] if self._server is not None else self._port

    def start(self) -> None:
        with self._lock:
            if self._server is not None or self._shut_down:
                return
            family = socket.getaddrinfo(self._host, self._port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0][0]
            server_class = type("_Server", (_Server,), {"address_family": family})
            server = server_class((self._host, self._port), _handler(self._registry, self._open_metrics))
            if self._ssl is not None:
                server.socket = self._ssl.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
            self._registry.register(self._collector)
            self._server = server
            # serve_forever checks for shutdown every poll_interval: each check is a wakeup (~60 us of CPU on
            # a VM), so the standard library's 0.5 s rather than 0.1 s (shutdown waits at most that long).
            self._thread = AgentThread(server.serve_forever, "prometheus-exporter", kwargs={"poll_interval": 0.5})
            self._thread.start()

    def shutdown(self, timeout: float = 5.0) -> None:
        with self._lock:
            if self._shut_down:
                return
            self._shut_down = True
            server, thread = self._server, self._thread
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout)
        self._registry.unregister(self._collector)
