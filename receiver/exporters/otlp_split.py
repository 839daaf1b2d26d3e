"""Splitting a serialized OTLP export request into smaller requests holding the same items.

The sending queue splits a request that is over ``sending_queue.batch.max_size`` before sending
it, and one the backend refused as too large (gRPC "message larger than max", HTTP 413).  It
works on serialized requests because that is what every queued batch becomes (the wire encoder's
output, or a persistent-queue file): parsing and copying run inside protobuf's C implementation,
much cheaper than encoding the items again.

Items are what the self metrics count: spans, log records, metric *data points* — a metric
whose points straddle a cut becomes one metric per part, each with the same name, description,
unit and temporality.  Every item lands in exactly one part, in the original order; each part
repeats the resource and scope (with their schema URLs) of the items it holds.
"""

from __future__ import annotations

from dataclasses import dataclass

from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)

from receiver.exporters.errors import PermanentExportError
from receiver.model.signals import Signal


@dataclass(frozen=True, slots=True)
class RequestPart:
    """A serialized export request and the items in it."""

    items: int
    data: bytes


# signal → (request type, resource list field, scope list field, item list field)
_LAYOUT = {
    Signal.TRACES: (ExportTraceServiceRequest, "resource_spans", "scope_spans", "spans"),
    Signal.METRICS: (ExportMetricsServiceRequest, "resource_metrics", "scope_metrics", "metrics"),
    Signal.LOGS: (ExportLogsServiceRequest, "resource_logs", "scope_logs", "log_records"),
}


def parse_request(signal: Signal, data: bytes) -> Message:
    """The export request message of ``data``; :class:`PermanentExportError` if it is not one."""
    try:
        return _LAYOUT[signal][0].FromString(data)
    except DecodeError as e:
        raise PermanentExportError(f"{signal.value} request does not decode: {e}") from None


def _metric_points(metric) -> tuple[str | None, object]:
    kind = metric.WhichOneof("data")
    return kind, (getattr(metric, kind).data_points if kind else ())


def count_request_items(signal: Signal, request: Message) -> int:
    """Spans, log records or metric data points in an export request message."""
    _, resources, scopes, items = _LAYOUT[signal]
    total = 0
    for rs in getattr(request, resources):
        for ss in getattr(rs, scopes):
            if signal is Signal.METRICS:
                total += sum(len(_metric_points(m)[1]) for m in ss.metrics)
            else:
                total += len(getattr(ss, items))
    return total


def _copy_except(source: Message, target: Message, skip: str) -> None:
    """Every set field of ``source`` but ``skip`` into ``target`` (a message of the same type)."""
    for descriptor, value in source.ListFields():
        name = descriptor.name
        if name == skip:
            continue
        if descriptor.is_repeated:
            getattr(target, name).extend(value)
        elif descriptor.message_type is not None:
            getattr(target, name).CopyFrom(value)
        else:
            setattr(target, name, value)


class _PartWriter:
    """Builds one part: reuses the resource and scope entries while items keep coming from the same ones."""

    __slots__ = ("request", "_resources", "_scopes", "_rs_source", "_ss_source", "_rs", "_ss")

    def __init__(self, signal: Signal) -> None:
        request_type, self._resources, self._scopes, _ = _LAYOUT[signal]
        self.request = request_type()
        self._rs_source = self._ss_source = None
        self._rs = self._ss = None

    def scope(self, rs: Message, ss: Message) -> Message:
        """The part's scope entry for items of ``ss`` (of resource ``rs``)."""
        if self._rs_source is not rs:
            self._rs = getattr(self.request, self._resources).add()
            _copy_except(rs, self._rs, self._scopes)
            self._rs_source, self._ss_source = rs, None
        if self._ss_source is not ss:
            self._ss = getattr(self._rs, self._scopes).add()
            _copy_except(ss, self._ss, _LAYOUT_ITEMS[self._scopes])
            self._ss_source = ss
        return self._ss


_LAYOUT_ITEMS = {scopes: items for _, _, scopes, items in _LAYOUT.values()}


def split_request(signal: Signal, data: bytes, parts: int) -> list[RequestPart]:
    """``data`` cut into ``parts`` requests (fewer if it holds fewer items) of near-equal item counts.

    :class:`PermanentExportError` if ``data`` is not an export request of ``signal``.
    """
    request = parse_request(signal, data)
    total = count_request_items(signal, request)
    parts = max(1, min(parts, total))
    if parts == 1:
        return [RequestPart(total, data)]
    bounds = [i * total // parts for i in range(parts + 1)]
    writers = [_PartWriter(signal) for _ in range(parts)]
    _, resources, scopes, items_field = _LAYOUT[signal]
    part = pos = 0

    def room() -> int:
        """Items the current part still takes (moving to the next part when it is full)."""
        nonlocal part
        while pos >= bounds[part + 1] and part < parts - 1:
            part += 1
        return bounds[part + 1] - pos

    for rs in getattr(request, resources):
        for ss in getattr(rs, scopes):
            if signal is not Signal.METRICS:
                items = getattr(ss, items_field)
                i, n = 0, len(items)
                while i < n:
                    take = min(n - i, room())
                    getattr(writers[part].scope(rs, ss), items_field).extend(items[i : i + take])
                    i += take
                    pos += take
                continue
            for metric in ss.metrics:
                kind, points = _metric_points(metric)
                i, n = 0, len(points)
                if n == 0:  # no items: goes with whichever part is being filled
                    room()
                    writers[part].scope(rs, ss).metrics.add().CopyFrom(metric)
                    continue
                while i < n:
                    take = min(n - i, room())
                    out = writers[part].scope(rs, ss).metrics.add()
                    _copy_except(metric, out, kind)
                    data_out = getattr(out, kind)
                    _copy_except(getattr(metric, kind), data_out, "data_points")
                    data_out.data_points.extend(points[i : i + take])
                    i += take
                    pos += take
    return [
        RequestPart(bounds[i + 1] - bounds[i], writer.request.SerializeToString()) for i, writer in enumerate(writers)
    ]
