"""OTLP/HTTP exporter against a fault-injecting http.server on 127.0.0.1."""

from __future__ import annotations

import email.utils
import json
import ssl
import time

import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from prometheus_client import CollectorRegistry

from receiver.config import OtlpHttpExporterConfig, RetryConfig, TLSClientConfig
from receiver.exporters.otlp_http import OtlpHttpExporter, parse_retry_after, to_otlp_json
from receiver.exporters.otlp_encoding import encode_traces
from receiver.model.signals import Signal
from receiver.model.telemetry import LogRecord, Metric, MetricKind, Resource, Span, SpanKind, SumPoint
from receiver.component.self_metrics import SelfMetrics
from receiver.config import QueueConfig
from tests.unit.exporters.otlp_items import batch_ids, make_items, request_ids
from tests.unit.exporters.otlp_sinks import start_http_sink
from tests.support.ports import wait_until


RES = Resource.from_dict({"service.name": "svc"})
FAST_RETRY = RetryConfig(initial_interval=0.01, max_interval=0.02, max_elapsed_time=5)


@pytest.fixture
def http_server():
    servers = []

    def start(script=(), ssl_context=None, **options):
        server, url = start_http_sink(script, ssl_context, **options)
        servers.append(server)
        return server, url

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def make_exporter(endpoint, *, retry=FAST_RETRY, **config):
    cfg = OtlpHttpExporterConfig(endpoint=endpoint, retry_on_failure=retry, **config)
    metrics = SelfMetrics(CollectorRegistry())
    return OtlpHttpExporter("otlphttp/test", cfg, metrics), metrics.registry


def count(registry, name, **labels) -> float:
    return registry.get_sample_value(f"ebpf_receiver_exporter_{name}", {"exporter": "otlphttp/test", **labels}) or 0.0


def spans(n=2) -> list[Span]:
    return [Span(bytes([i + 1]) * 16, bytes([i + 1]) * 8, f"op{i}", SpanKind.CLIENT, 1, 2, RES) for i in range(n)]


def run(exporter, **batches):
    exporter.start()
    for signal, batch in batches.items():
        getattr(exporter, f"consume_{signal}")(batch)
    exporter.shutdown(5)


def test_posts_gzip_protobuf_with_headers(http_server):
    server, url = http_server()
    exporter, reg = make_exporter(url + "/", headers={"X-Tenant": "acme"})
    run(exporter, traces=spans(3))
    (req,) = server.received
    assert req.path == "/v1/traces"
    assert req.headers["Content-Type"] == "application/x-protobuf"
    assert req.headers["Content-Encoding"] == "gzip"
    assert req.headers["X-Tenant"] == "acme"
    assert req.headers["User-Agent"].startswith("ebpf-receiver/")
    parsed = ExportTraceServiceRequest.FromString(req.payload())
    assert [s.trace_id for s in parsed.resource_spans[0].scope_spans[0].spans] == [s.trace_id for s in spans(3)]
    assert count(reg, "sent_items_total", signal="traces") == 3


@pytest.mark.parametrize("level, xfl", [(1, 4), (9, 2), (-1, 0)])
def test_compression_params_level_sets_the_gzip_level(http_server, level, xfl):
    from receiver.exporters.config import CompressionParamsConfig

    server, url = http_server()
    batch = make_items(Signal.TRACES, 200, pad=300, random_pad=False)
    exporter, _ = make_exporter(url, compression_params=CompressionParamsConfig(level=level))
    run(exporter, traces=batch)
    (req,) = server.received
    # RFC 1952 XFL: 4 = fastest (level 1), 2 = maximum compression (level 9), 0 otherwise (6).
    assert req.body[:2] == b"\x1f\x8b" and req.body[8] == xfl
    assert request_ids(Signal.TRACES, req.payload()) == batch_ids(Signal.TRACES, batch)


def test_a_gzip_level_out_of_range_names_the_key():
    from receiver.config import load_config_text
    from receiver.configuration.errors import ConfigError

    text = """
receivers: {ebpf: {}}
exporters:
  otlphttp:
    endpoint: http://127.0.0.1:4318
    compression_params:
      level: 12
service: {pipelines: {traces: {receivers: [ebpf], exporters: [otlphttp]}}}
"""
    with pytest.raises(ConfigError) as err:
        load_config_text(text)
    assert "exporters.otlphttp.compression_params.level" in str(err.value) and ":7)" in str(err.value)


def test_per_signal_endpoint_override_and_no_compression(http_server):
    server, url = http_server()
    exporter, reg = make_exporter("http://127.0.0.1:1", metrics_endpoint=url + "/custom/m", compression="none")
    metric = Metric("requests", "", "1", MetricKind.SUM, [SumPoint((), 1, 2, 5)], RES)
    run(exporter, metrics=[metric])
    (req,) = server.received
    assert req.path == "/custom/m" and "Content-Encoding" not in req.headers
    assert ExportMetricsServiceRequest.FromString(req.body).resource_metrics[0].scope_metrics[0].metrics[0].name == "requests"
    assert count(reg, "sent_items_total", signal="metrics") == 1


def test_429_honours_retry_after_seconds(http_server):
    server, url = http_server([(429, {"Retry-After": "1"}, b"")])
    exporter, reg = make_exporter(url)
    run(exporter, traces=spans())
    assert server.times[1] - server.times[0] >= 0.99
    assert count(reg, "sent_items_total", signal="traces") == 2
    assert count(reg, "retries_total", signal="traces") == 1


@pytest.mark.parametrize("status", [502, 503, 504])
def test_gateway_errors_are_retried(http_server, status):
    server, url = http_server([(status, {}, b"busy")])
    exporter, reg = make_exporter(url)
    run(exporter, traces=spans())
    assert len(server.received) == 2
    assert count(reg, "sent_items_total", signal="traces") == 2


@pytest.mark.parametrize("status", [400, 401, 403, 404, 500])
def test_other_errors_are_permanent(http_server, status):
    server, url = http_server([(status, {"Content-Type": "text/plain"}, b"bad")])
    exporter, reg = make_exporter(url)
    run(exporter, traces=spans(3))
    assert len(server.received) == 1
    assert count(reg, "failed_items_total", signal="traces", reason="permanent") == 3


@pytest.mark.parametrize("signal", list(Signal))
@pytest.mark.parametrize("compression", ["gzip", "none"])
def test_413_splits_the_request_in_halves_until_it_fits(http_server, signal, compression):
    server, url = http_server(max_body=40 * 1024)
    exporter, reg = make_exporter(url, compression=compression, sending_queue=QueueConfig(num_consumers=1))
    batch = make_items(signal, 120, pad=1000, random_pad=True)  # ~120 KiB, gzip or not
    exporter.start()
    exporter.consume(signal, batch)
    exporter.shutdown(10)
    statuses = [r.status for r in server.received]
    assert statuses == [413, 413, 200, 200, 413, 200, 200]
    arrived = [i for r in server.received if r.status == 200 for i in request_ids(signal, r.payload())]
    assert sorted(arrived) == sorted(batch_ids(signal, batch))
    assert count(reg, "request_splits_total", signal=signal.value, trigger="too_large") == 3
    assert count(reg, "sent_items_total", signal=signal.value) == len(arrived)


def test_413_for_a_single_item_counts_it_too_large(http_server):
    server, url = http_server(max_body=8 * 1024)
    exporter, reg = make_exporter(url, compression="none")
    small, huge = make_items(Signal.LOGS, 4, pad=100), make_items(Signal.LOGS, 1, pad=9000)
    run(exporter, logs=small + huge)
    arrived = [i for r in server.received if r.status == 200 for i in request_ids(Signal.LOGS, r.payload())]
    assert sorted(arrived) == sorted(batch_ids(Signal.LOGS, small))
    assert count(reg, "failed_items_total", signal="logs", reason="too_large") == 1
    assert count(reg, "sent_items_total", signal="logs") == 4


def test_json_encoding_splits_too(http_server):
    server, url = http_server(max_body=30 * 1024)
    exporter, reg = make_exporter(url, compression="none", encoding="json")
    batch = make_items(Signal.TRACES, 60, pad=600)
    run(exporter, traces=batch)
    arrived = [s for r in server.received if r.status == 200 for s in r.span_ids()]
    assert sorted(arrived) == sorted(s.span_id.hex() for s in batch)
    assert count(reg, "sent_items_total", signal="traces") == 60


def test_partial_success_in_protobuf_and_json_bodies(http_server):
    resp = ExportTraceServiceResponse()
    resp.partial_success.rejected_spans = 2
    json_body = json.dumps({"partialSuccess": {"rejectedSpans": "1", "errorMessage": "old"}}).encode()
    server, url = http_server(
        [
            (200, {"Content-Type": "application/x-protobuf"}, resp.SerializeToString()),
            (200, {"Content-Type": "application/json"}, json_body),
        ]
    )
    exporter, reg = make_exporter(url)
    exporter.start()
    exporter.consume_traces(spans(5))
    exporter.consume_traces(spans(3))
    exporter.shutdown(5)
    assert count(reg, "failed_items_total", signal="traces", reason="rejected") == 3
    assert count(reg, "sent_items_total", signal="traces") == 5 + 3 - 3


def test_json_encoding_uses_hex_ids(http_server):
    server, url = http_server()
    exporter, _ = make_exporter(url, encoding="json", compression="none")
    span = Span(bytes(range(16)), bytes(range(8)), "op", SpanKind.SERVER, 1, 2, RES, parent_span_id=b"\xaa" * 8)
    run(exporter, traces=[span])
    (req,) = server.received
    assert req.headers["Content-Type"] == "application/json"
    doc = json.loads(req.body)
    out = doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    assert out["traceId"] == bytes(range(16)).hex()
    assert out["spanId"] == bytes(range(8)).hex()
    assert out["parentSpanId"] == "aa" * 8
    assert out["kind"] == 2
    assert json.loads(to_otlp_json(encode_traces([span])))["resourceSpans"][0]["resource"]["attributes"][0]["key"] == "service.name"


def test_connection_refused_is_retryable_and_dropped_at_shutdown():
    exporter, reg = make_exporter("http://127.0.0.1:1", retry=RetryConfig(initial_interval=0.05, max_interval=0.05, max_elapsed_time=0))
    exporter.start()
    exporter.consume_traces(spans(2))
    time.sleep(0.2)
    exporter.shutdown(0.2)
    assert count(reg, "retries_total", signal="traces") >= 1
    assert count(reg, "dropped_items_total", signal="traces", reason="shutdown") == 2


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_https_with_ca_and_client_certificate(http_server, tls_files):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(tls_files.server_cert, tls_files.server_key)
    ctx.load_verify_locations(tls_files.ca_cert)
    ctx.verify_mode = ssl.CERT_REQUIRED
    server, url = http_server(ssl_context=ctx)
    tls = TLSClientConfig(ca_file=tls_files.ca_cert, cert_file=tls_files.client_cert, key_file=tls_files.client_key)
    exporter, reg = make_exporter(url, tls=tls)
    run(exporter, traces=spans(1))
    assert count(reg, "sent_items_total", signal="traces") == 1

    # an untrusted server certificate fails unless verification is skipped
    ctx_no_client = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx_no_client.load_cert_chain(tls_files.server_cert, tls_files.server_key)
    server, url = http_server(ssl_context=ctx_no_client)
    exporter, reg = make_exporter(url, retry=RetryConfig(enabled=False))
    run(exporter, traces=spans(1))
    assert count(reg, "failed_items_total", signal="traces", reason="retries_exhausted") == 1
    exporter, reg = make_exporter(url, tls=TLSClientConfig(insecure_skip_verify=True))
    run(exporter, traces=spans(1))
    assert count(reg, "sent_items_total", signal="traces") == 1


def test_parse_retry_after():
    now = 1_700_000_000.0
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after(" 0 ") == 0.0
    assert parse_retry_after(email.utils.formatdate(now + 30, usegmt=True), now=now) == pytest.approx(30)
    assert parse_retry_after(email.utils.formatdate(now - 30, usegmt=True), now=now) == 0.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("-5") is None


def test_bad_config_is_refused():
    with pytest.raises(ValueError, match="encoding"):
        make_exporter("http://x", encoding="thrift")
    with pytest.raises(ValueError, match="compression"):
        make_exporter("http://x", compression="br")


SECRET = "s3cr3t-CANARY-9d2e"


def test_a_backend_echoing_the_api_key_does_not_put_it_in_the_log(http_server, caplog):
    echo = f"invalid api key: Bearer {SECRET}".encode()
    server, url = http_server([(401, {"Content-Type": "text/plain"}, echo), (503, {}, SECRET.encode())])
    exporter, reg = make_exporter(url, headers={"Authorization": f"Bearer {SECRET}"})
    with caplog.at_level("DEBUG"):
        exporter.start()
        exporter.consume_traces(spans(1))  # the signals have their own queues: one after the other
        wait_until(lambda: count(reg, "failed_items_total", signal="traces", reason="permanent"), timeout=5, what="the 401")
        exporter.consume_logs([LogRecord(1, "x", RES)])
        exporter.shutdown(5)
    assert server.received[0].headers["Authorization"] == f"Bearer {SECRET}"  # sent, of course
    assert count(reg, "failed_items_total", signal="traces", reason="permanent") == 1
    assert count(reg, "sent_items_total", signal="logs") == 1  # after the 503
    text = caplog.text
    assert "invalid api key: [REDACTED]" in text
    assert SECRET not in text and SECRET[:10] not in text


def test_serialized_requests_are_sent_as_stored_or_as_json(http_server):
    from receiver.exporters.otlp_http import OtlpHttpPusher

    server, url = http_server()
    for encoding in ("proto", "json"):
        pusher = OtlpHttpPusher(OtlpHttpExporterConfig(endpoint=url, encoding=encoding, compression="none"))
        pusher.start()
        data = pusher.serialize(Signal.TRACES, spans(2))
        assert pusher.push_serialized(Signal.TRACES, data) == 0
        pusher.shutdown()
    proto, as_json = server.received
    assert proto.body == data
    assert as_json.headers["Content-Type"] == "application/json"
    assert as_json.span_ids() == proto.span_ids() == [s.span_id.hex() for s in spans(2)]
