"""OTLP/gRPC exporter against a fault-injecting in-process OTLP server on 127.0.0.1."""

from __future__ import annotations

import time

import grpc
import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from receiver.config import OtlpExporterConfig, RetryConfig, TLSClientConfig
from receiver.exporters.errors import PermanentExportError, RequestTooLargeError, RetryableExportError
from receiver.exporters.otlp_grpc import OtlpGrpcExporter, classify_rpc_error, parse_grpc_endpoint
from receiver.exporters.rpc_status import parse_status_minimal, parse_status_protobuf
from receiver.model.telemetry import LogRecord, Resource, Span, SpanKind
from receiver.component.self_metrics import SelfMetrics
from receiver.config import QueueBatchConfig, QueueConfig
from receiver.model.signals import Signal
from tests.unit.exporters.otlp_items import batch_ids, make_items, request_ids
from tests.unit.exporters.otlp_sinks import grpc_server_credentials, start_grpc_sink, status_details


RES = Resource.from_dict({"service.name": "svc"})
FAST_RETRY = RetryConfig(initial_interval=0.01, max_interval=0.02, max_elapsed_time=5)


@pytest.fixture
def otlp_server():
    servers = []

    def start(script=(), credentials=None, **options):
        server, servicer, port = start_grpc_sink(script, credentials, **options)
        servers.append(server)
        return servicer, port

    yield start
    for server in servers:
        server.stop(None)


def make_exporter(port, *, host="127.0.0.1", retry=FAST_RETRY, **config):
    config.setdefault("tls", TLSClientConfig(insecure=True))
    cfg = OtlpExporterConfig(endpoint=f"{host}:{port}", retry_on_failure=retry, **config)
    metrics = SelfMetrics(CollectorRegistry())
    return OtlpGrpcExporter("otlp/test", cfg, metrics), metrics.registry


def count(registry, name, **labels) -> float:
    return registry.get_sample_value(f"ebpf_receiver_exporter_{name}", {"exporter": "otlp/test", **labels}) or 0.0


def spans(n=2) -> list[Span]:
    return [Span(bytes([i + 1]) * 16, bytes([i + 1]) * 8, f"op{i}", SpanKind.SERVER, 1, 2, RES) for i in range(n)]


@pytest.mark.parametrize(
    ("code", "retryable"),
    [
        (grpc.StatusCode.UNAVAILABLE, True),
        (grpc.StatusCode.CANCELLED, True),
        (grpc.StatusCode.DEADLINE_EXCEEDED, True),
        (grpc.StatusCode.ABORTED, True),
        (grpc.StatusCode.OUT_OF_RANGE, True),
        (grpc.StatusCode.DATA_LOSS, True),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, False),
        (grpc.StatusCode.INVALID_ARGUMENT, False),
        (grpc.StatusCode.UNAUTHENTICATED, False),
        (grpc.StatusCode.PERMISSION_DENIED, False),
        (grpc.StatusCode.NOT_FOUND, False),
        (grpc.StatusCode.UNIMPLEMENTED, False),
        (grpc.StatusCode.INTERNAL, False),
        (grpc.StatusCode.UNKNOWN, False),
    ],
)
def test_classification_without_retry_info(code, retryable):
    error = classify_rpc_error(code, "x", ())
    assert isinstance(error, RetryableExportError if retryable else PermanentExportError)
    if retryable:
        assert error.retry_after is None


def test_resource_exhausted_with_retry_info_is_retryable_with_its_delay():
    md = (("grpc-status-details-bin", status_details(grpc.StatusCode.RESOURCE_EXHAUSTED, 2.5)),)
    error = classify_rpc_error(grpc.StatusCode.RESOURCE_EXHAUSTED, "quota", md)
    assert isinstance(error, RetryableExportError) and error.retry_after == pytest.approx(2.5)
    error = classify_rpc_error(grpc.StatusCode.UNAVAILABLE, "x", md)
    assert error.retry_after == pytest.approx(2.5)
    md = (("grpc-status-details-bin", status_details(grpc.StatusCode.RESOURCE_EXHAUSTED, None)),)
    assert isinstance(classify_rpc_error(grpc.StatusCode.RESOURCE_EXHAUSTED, "quota", md), PermanentExportError)
    md = (("grpc-status-details-bin", b"\xff\xff garbage"),)
    assert isinstance(classify_rpc_error(grpc.StatusCode.RESOURCE_EXHAUSTED, "quota", md), PermanentExportError)


@pytest.mark.parametrize(
    ("code", "details"),
    [
        # what servers answer a request over their receive limit with (seen from grpcio, and in the
        # sources of grpc-go, grpc-java and tonic)
        (grpc.StatusCode.RESOURCE_EXHAUSTED, "SERVER: Received message larger than max (2000248 vs. 1048576)"),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, "Decompressed message larger than max"),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, "grpc: received message after decompression larger than max (6624956 vs. 4194304)"),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, "gRPC message exceeds maximum size 4194304: 5000000"),
        (grpc.StatusCode.OUT_OF_RANGE, "Error, decoded message length too large: found 2000248 bytes, the limit is: 1048576 bytes"),
    ],
)
def test_a_request_over_the_servers_size_limit_is_too_large_not_retryable(code, details):
    error = classify_rpc_error(code, details, ())
    assert isinstance(error, RequestTooLargeError) and isinstance(error, PermanentExportError)


def test_too_large_needs_the_wording_and_no_retry_info():
    assert isinstance(classify_rpc_error(grpc.StatusCode.OUT_OF_RANGE, "seek past end", ()), RetryableExportError)
    assert type(classify_rpc_error(grpc.StatusCode.RESOURCE_EXHAUSTED, "quota", ())) is PermanentExportError
    md = (("grpc-status-details-bin", status_details(grpc.StatusCode.RESOURCE_EXHAUSTED, 1.0)),)
    error = classify_rpc_error(grpc.StatusCode.RESOURCE_EXHAUSTED, "message larger than max", md)
    assert isinstance(error, RetryableExportError)  # RetryInfo: the server says it is a throttle


@pytest.mark.parametrize("signal", list(Signal))
def test_a_grpcio_receive_limit_splits_requests_until_they_fit(otlp_server, signal):
    servicer, port = otlp_server(max_receive_message_length=40 * 1024)
    exporter, reg = make_exporter(port, compression="none", sending_queue=QueueConfig(num_consumers=1))
    batch = make_items(signal, 120, pad=1000)  # ~120 KiB: refused, then halves, then quarters
    run_batch(exporter, signal, batch)
    arrived = [i for r in servicer.accepted for i in request_ids(signal, r)]
    assert sorted(arrived) == sorted(batch_ids(signal, batch))
    assert count(reg, "request_splits_total", signal=signal.value, trigger="too_large") == 3
    assert count(reg, "sent_items_total", signal=signal.value) == len(arrived)
    assert count(reg, "retries_total", signal=signal.value) == 0


def test_max_size_keeps_requests_under_a_grpcio_receive_limit(otlp_server):
    servicer, port = otlp_server(max_receive_message_length=40 * 1024)
    queue = QueueConfig(batch=QueueBatchConfig(max_size=32 * 1024))
    exporter, reg = make_exporter(port, compression="none", sending_queue=queue)
    batch = make_items(Signal.LOGS, 120, pad=1000)
    run_batch(exporter, Signal.LOGS, batch)
    assert sorted(i for r in servicer.accepted for i in request_ids(Signal.LOGS, r)) == sorted(batch_ids(Signal.LOGS, batch))
    assert len(servicer.requests) == len(servicer.accepted) >= 4  # none refused
    assert count(reg, "request_splits_total", signal="logs", trigger="too_large") == 0


def run_batch(exporter, signal, batch):
    exporter.start()
    exporter.consume(signal, batch)
    exporter.shutdown(10)


@pytest.mark.parametrize("delay", [None, 0.0, 0.25, 3.0, 86400.5])
def test_minimal_status_decoder_agrees_with_generated_classes(delay):
    data = status_details(grpc.StatusCode.RESOURCE_EXHAUSTED, delay)
    assert parse_status_minimal(data) == parse_status_protobuf(data)
    assert parse_status_minimal(data).retry_delay == (pytest.approx(delay) if delay is not None else None)


@given(st.binary(max_size=64))
def test_minimal_status_decoder_never_raises(data):
    parse_status_minimal(data)


def test_endpoint_scheme():
    assert parse_grpc_endpoint("collector:4317", insecure=False) == ("collector:4317", True)
    assert parse_grpc_endpoint("collector:4317", insecure=True) == ("collector:4317", False)
    assert parse_grpc_endpoint("http://collector:4317", insecure=False) == ("collector:4317", False)
    assert parse_grpc_endpoint("https://collector:4317/", insecure=True) == ("collector:4317", True)


def test_unavailable_then_ok_delivers_with_headers(otlp_server):
    server, port = otlp_server([("fail", grpc.StatusCode.UNAVAILABLE, None)] * 2)
    exporter, reg = make_exporter(port, headers={"Authorization": "Bearer t0k", "x-tenant": "a"})
    exporter.start()
    exporter.consume_traces(spans(3))
    exporter.shutdown(5)
    assert count(reg, "sent_items_total", signal="traces") == 3
    assert count(reg, "retries_total", signal="traces") == 2
    assert len(server.requests) == 3
    assert server.metadata[-1]["authorization"] == "Bearer t0k" and server.metadata[-1]["x-tenant"] == "a"
    assert "ebpf-receiver/" in server.metadata[-1]["user-agent"]
    got = server.requests[-1].resource_spans[0].scope_spans[0].spans
    assert [s.name for s in got] == ["op0", "op1", "op2"]


def test_logs_are_exported_too(otlp_server):
    server, port = otlp_server()
    exporter, reg = make_exporter(port, compression="none")
    exporter.start()
    exporter.consume_logs([LogRecord(1, "hello", RES)])
    exporter.shutdown(5)
    assert count(reg, "sent_items_total", signal="logs") == 1
    assert server.requests[0].resource_logs[0].scope_logs[0].log_records[0].body.string_value == "hello"


def test_resource_exhausted_honours_retry_info_delay(otlp_server):
    server, port = otlp_server([("fail", grpc.StatusCode.RESOURCE_EXHAUSTED, 0.3)])
    exporter, reg = make_exporter(port)
    exporter.start()
    exporter.consume_traces(spans())
    exporter.shutdown(5)
    assert count(reg, "sent_items_total", signal="traces") == 2
    assert server.times[1] - server.times[0] >= 0.29


def test_permanent_errors_are_not_retried(otlp_server):
    server, port = otlp_server(
        [("fail", grpc.StatusCode.RESOURCE_EXHAUSTED, None), ("fail", grpc.StatusCode.INVALID_ARGUMENT, None)]
    )
    exporter, reg = make_exporter(port)
    exporter.start()
    exporter.consume_traces(spans(2))
    exporter.consume_traces(spans(1))
    exporter.shutdown(5)
    assert len(server.requests) == 2
    assert count(reg, "failed_items_total", signal="traces", reason="permanent") == 3
    assert count(reg, "retries_total", signal="traces") == 0


def test_deadline_exceeded_is_retried(otlp_server):
    server, port = otlp_server([("sleep", 0.5)])
    exporter, reg = make_exporter(port, timeout=0.1)
    exporter.start()
    exporter.consume_traces(spans())
    exporter.shutdown(5)
    assert count(reg, "retries_total", signal="traces") >= 1
    assert count(reg, "sent_items_total", signal="traces") == 2


def test_partial_success_counts_rejected(otlp_server):
    server, port = otlp_server([("reject", 1)])
    exporter, reg = make_exporter(port)
    exporter.start()
    exporter.consume_traces(spans(4))
    exporter.shutdown(5)
    assert len(server.requests) == 1
    assert count(reg, "sent_items_total", signal="traces") == 3
    assert count(reg, "failed_items_total", signal="traces", reason="rejected") == 1


def test_unreachable_endpoint_is_dropped_at_shutdown():
    exporter, reg = make_exporter(1, retry=RetryConfig(initial_interval=0.05, max_interval=0.05, max_elapsed_time=0), timeout=0.2)
    exporter.start()
    exporter.consume_traces(spans(2))
    time.sleep(0.2)
    t0 = time.monotonic()
    exporter.shutdown(0.3)
    assert time.monotonic() - t0 < 1.5
    assert count(reg, "dropped_items_total", signal="traces", reason="shutdown") == 2
    assert count(reg, "retries_total", signal="traces") >= 1


def test_mutual_tls(otlp_server, tls_files):
    creds = grpc_server_credentials(tls_files, require_client_cert=True)
    server, port = otlp_server(credentials=creds)
    tls = TLSClientConfig(ca_file=tls_files.ca_cert, cert_file=tls_files.client_cert, key_file=tls_files.client_key)
    exporter, reg = make_exporter(port, host="localhost", tls=tls)
    exporter.start()
    exporter.consume_traces(spans(1))
    exporter.shutdown(5)
    assert count(reg, "sent_items_total", signal="traces") == 1

    # without the client certificate the server refuses the handshake: retryable, then dropped
    no_client = TLSClientConfig(ca_file=tls_files.ca_cert)
    exporter, reg = make_exporter(port, host="localhost", tls=no_client, retry=RetryConfig(enabled=False))
    exporter.start()
    exporter.consume_traces(spans(1))
    exporter.shutdown(5)
    assert count(reg, "failed_items_total", signal="traces", reason="retries_exhausted") == 1
    assert len(server.requests) == 1


def test_bad_config_is_refused_at_construction():
    with pytest.raises(ValueError, match="compression"):
        make_exporter(1, compression="zstd")
    with pytest.raises(ValueError, match="insecure_skip_verify"):
        make_exporter(1, tls=TLSClientConfig(insecure_skip_verify=True))
    with pytest.raises(ValueError, match="together"):
        make_exporter(1, tls=TLSClientConfig(cert_file="/x"))


def test_status_details_echoing_a_header_value_are_redacted(otlp_server, caplog):
    secret = "s3cr3t-CANARY-4b7a"
    server, port = otlp_server([("fail", grpc.StatusCode.UNAUTHENTICATED, None, f"unknown key {secret}")])
    exporter, reg = make_exporter(port, headers={"x-api-key": secret})
    error = classify_rpc_error(grpc.StatusCode.UNAUTHENTICATED, f"bad key {secret}", (), (secret,))
    assert str(error) == "gRPC UNAUTHENTICATED: bad key [REDACTED]"
    with caplog.at_level("DEBUG"):
        exporter.start()
        exporter.consume_traces(spans(1))
        exporter.shutdown(5)
    assert server.metadata[0]["x-api-key"] == secret
    assert count(reg, "failed_items_total", signal="traces", reason="permanent") == 1
    assert "gRPC UNAUTHENTICATED: unknown key [REDACTED]" in caplog.text
    assert secret not in caplog.text
