"""Footprint estimates: generous against what a real span holds, and cheap to scale."""

from __future__ import annotations

import gc
import os
import socket
import tracemalloc

from receiver.bpf.abi import load_abi
from receiver.model.footprint import SAMPLES, batch_bytes, item_bytes, span_bytes
from receiver.model.telemetry import LogRecord, Metric, MetricKind, Resource, Span, SpanKind, SumPoint
from receiver.receivers.ebpf.config import EbpfReceiverConfig
from receiver.receivers.ebpf.receiver import EbpfReceiver
from receiver.telemetry.red_metrics import RedMetrics

ABI = load_abi()
HTTP, HTTP_NAMES = ABI.struct_format("erx_http_tx_event", stop_at="strings")
STRINGS = b"GET/api/users/42?full=1127.0.0.1:8080python-requests/2.31"


def paired_http_records(n: int) -> list[bytes]:
    """Kernel-paired HTTP/1 server transactions on one keep-alive connection, as the ring
    buffer delivers them (one connection: what is held is the spans, not connection entries)."""
    v4 = socket.inet_aton("127.0.0.1") + b"\0" * 12
    out = []
    for i in range(n):
        values = {name: 0 for name in HTTP_NAMES}
        values.update({
            "hdr.kind": ABI.const("ERX_EV_HTTP_TX"), "hdr.direction": 1, "hdr.role": 2, "hdr.syscall": 4,
            "hdr.pid": 1, "hdr.tid": 1, "hdr.conn_id": 1000, "hdr.ts_exit_ns": 10**9 + i * 10**6 + 5000,
            "tuple.saddr": v4, "tuple.daddr": v4, "tuple.sport": 8080, "tuple.dport": 40000,
            "tuple.family": socket.AF_INET, "tuple.transport": 1, "start_ns": 10**9 + i * 10**6,
            "end_ns": 10**9 + i * 10**6 + 5000, "req_wire_size": 120, "resp_body_size": 615,
            "resp_wire_size": 850, "req_tid": 1, "req_head_size": 120, "resp_head_size": 235, "status": 200,
            "method": ABI.const("ERX_HTTP_GET"), "method_len": 3, "target_len": 20, "target_wire_len": 20,
            "host_off": 23, "host_len": 14, "user_agent_off": 37, "user_agent_len": 21, "traceparent_off": 58,
            "tracestate_off": 58, "strings_len": len(STRINGS), "req_version": 1, "resp_version": 1,
        })
        out.append(HTTP.pack(*(values[name] for name in HTTP_NAMES)) + STRINGS)
    return out


def test_span_estimate_covers_what_spans_made_from_kernel_records_hold():
    class Sink:
        spans: list = []

        def consume_traces(self, spans):
            self.spans.extend(spans)

    sink = Sink()
    rx = EbpfReceiver(EbpfReceiverConfig(), traces=[sink], red_metrics=RedMetrics(), agent_pid=os.getpid())
    records = paired_http_records(600)
    rx.process_records(records[:100])  # warm caches (resources, interned strings)
    rx.flush()
    sink.spans.clear()
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        rx.process_records(records[100:])
        rx.flush()
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(sink.spans) == 500
    estimated = sum(map(span_bytes, sink.spans))
    assert held <= estimated <= 4 * held, (held, estimated)


def test_batch_bytes_scales_a_few_samples():
    spans = [Span(b"t" * 16, b"s" * 8, "GET", SpanKind.SERVER, 1, 2, Resource(), attributes={"k": "v" * 100})] * 1000
    assert batch_bytes(spans) == 1000 * span_bytes(spans[0])
    assert batch_bytes(spans[:SAMPLES]) == SAMPLES * span_bytes(spans[0])
    assert batch_bytes([]) == 0


def test_every_signal_has_an_estimate():
    log = LogRecord(1, "x" * 500, Resource(), attributes={"a": 1})
    metric = Metric("m", "", "1", MetricKind.SUM, [SumPoint((("i", i),), 0, 1, i) for i in range(10)])
    assert item_bytes(log) > 500
    assert item_bytes(metric) > 10 * 64
    assert item_bytes(b"x" * 1000) >= 1000
