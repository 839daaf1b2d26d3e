"""Telemetry with a unique id per item (span, log record, metric data point), and the ids read back
from OTLP export requests — to check that every item arrives exactly once however requests are
split.  Shared by the exporter unit tests and the e2e export tests.

``pad`` makes items big: a string of that many characters, repeated, or with ``random_pad``
random base64 (which gzip cannot shrink below three quarters).
"""

from __future__ import annotations

import base64
import os
import time
import uuid

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from receiver.model.signals import Signal
from receiver.model.telemetry import LogRecord, Metric, MetricKind, Resource, SeverityNumber, Span, SpanKind, SumPoint

RES = Resource.from_dict({"service.name": "items-test", "service.instance.id": "i-1"})
OTHER_RES = Resource.from_dict({"service.name": "items-test-2"})

REQUEST_TYPES = {
    Signal.TRACES: ExportTraceServiceRequest,
    Signal.METRICS: ExportMetricsServiceRequest,
    Signal.LOGS: ExportLogsServiceRequest,
}


def _pad(pad: int, random_pad: bool):
    if not pad:
        return {}
    return {"pad": base64.b64encode(os.urandom(pad * 3 // 4)).decode() if random_pad else "p" * pad}


def make_spans(n: int, pad: int = 0, random_pad: bool = False, resources=(RES,)) -> list[Span]:
    now = time.time_ns()
    out = []
    for i in range(n):
        uid = uuid.uuid4().bytes
        out.append(
            Span(uid, uid[:8], f"op-{i % 7}", SpanKind.SERVER, now, now + 1000, resources[i % len(resources)],
                 attributes={"item.id": uid[:8].hex(), **_pad(pad, random_pad)})
        )
    return out


def make_logs(n: int, pad: int = 0, random_pad: bool = False, resources=(RES,)) -> list[LogRecord]:
    now = time.time_ns()
    return [
        LogRecord(now, "line", resources[i % len(resources)], SeverityNumber.INFO, "INFO",
                  {"item.id": uuid.uuid4().hex[:16], **_pad(pad, random_pad)})
        for i in range(n)
    ]


def make_metrics(metrics: int, points: int, pad: int = 0, random_pad: bool = False, resources=(RES,)) -> list[Metric]:
    now = time.time_ns()
    out = []
    for m in range(metrics):
        pts = [
            SumPoint(tuple(sorted({"item.id": uuid.uuid4().hex[:16], **_pad(pad, random_pad)}.items())), now - 1000, now, float(p))
            for p in range(points)
        ]
        out.append(Metric(f"items.test.m{m % 5}", "test metric", "1", MetricKind.SUM, pts, resources[m % len(resources)]))
    return out


def make_items(signal: Signal, n: int, pad: int = 0, random_pad: bool = False, resources=(RES,)) -> list:
    """``n`` items of ``signal``; metrics as metrics of up to 4 data points each."""
    if signal is Signal.TRACES:
        return make_spans(n, pad, random_pad, resources)
    if signal is Signal.LOGS:
        return make_logs(n, pad, random_pad, resources)
    batch = make_metrics(-(-n // 4), 4, pad, random_pad, resources)
    extra = sum(len(m.points) for m in batch) - n
    if extra:
        batch[-1].points = batch[-1].points[: len(batch[-1].points) - extra]
    return batch


def batch_ids(signal: Signal, batch: list) -> list[str]:
    if signal is Signal.TRACES:
        return [s.attributes["item.id"] for s in batch]
    if signal is Signal.LOGS:
        return [r.attributes["item.id"] for r in batch]
    return [dict(p.attributes)["item.id"] for m in batch for p in m.points]


def _attribute(attributes, key: str) -> str:
    for kv in attributes:
        if kv.key == key:
            return kv.value.string_value
    raise KeyError(key)


def request_ids(signal: Signal, request) -> list[str]:
    """The item ids in an export request message (or its serialized bytes), in order."""
    if isinstance(request, (bytes, bytearray, memoryview)):
        request = REQUEST_TYPES[signal].FromString(bytes(request))
    if signal is Signal.TRACES:
        return [_attribute(s.attributes, "item.id") for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans]
    if signal is Signal.LOGS:
        return [_attribute(r.attributes, "item.id") for rl in request.resource_logs for sl in rl.scope_logs for r in sl.log_records]
    out = []
    for rm in request.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                kind = metric.WhichOneof("data")
                out.extend(_attribute(p.attributes, "item.id") for p in getattr(metric, kind).data_points)
    return out
