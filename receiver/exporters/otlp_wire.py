"""OTLP export requests written straight in protobuf wire format: telemetry objects in, bytes out.

This is what the OTLP exporters send (and what the persistent queue stores).  Its output parses
to a message equal to the one :mod:`receiver.exporters.otlp_encoding` builds (byte for byte the
same, as upb serializes fields in field-number order): that module stays the reference, and the
one used where message objects are needed (OTLP/JSON, metrics).

Why hand-write protobuf: the exporter thread is the agent's largest CPU consumer per traced
request, and protobuf-python (upb) has no API cheaper than building one message object per span,
one ``KeyValue``/``AnyValue`` pair per attribute, and serializing the tree afterwards.  Most of
that work repeats itself: a span's attributes are mostly the same (key, value) pairs as the
previous span's (method, scheme, server address, status code...).  Writing the wire format
ourselves lets :class:`OtlpWireEncoder` serialize each distinct ``KeyValue`` once and reuse the
bytes (a bounded cache), serialize each ``Resource`` and the instrumentation scope once, and join
the pieces of a whole request with a single copy.

The wire format needed is small: length-delimited fields (tag, varint length, payload), varints,
fixed64/fixed32 little-endian; those primitives and the attribute cache are in
:mod:`receiver.exporters.otlp_wire_fields` (field tags derived from the generated descriptors, so
no field number is written by hand).

Each span's ``Span`` message is written in C (``_span_wire.c``, one of the compiled modules built
by ``setup.py``): the profile showed this encoder at ~2.5 µs of the batch thread per nginx span
(4.3 with a new connection per request, whose ports miss the cache); with the C one the whole
request costs ~0.7 µs per span.  It writes exactly what ``_span_message`` writes, and hands back
every span of a shape it does not know, which Python then encodes (or rejects, or repairs) as
before.

Anything off the agent's usual shapes (an ``int`` instead of a :class:`SpanKind`, a ``bytearray``
id, an attribute value of an odd type) is delegated to the reference encoder for that one item,
so the result, including which inputs are rejected, is the same by construction.
"""

from __future__ import annotations

import logging
import struct
from collections import defaultdict, deque
from dataclasses import dataclass
from operator import attrgetter
from typing import Iterable

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)
from opentelemetry.proto.common.v1.common_pb2 import InstrumentationScope
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord as LogRecordProto
from opentelemetry.proto.logs.v1.logs_pb2 import ResourceLogs, ScopeLogs
from opentelemetry.proto.resource.v1.resource_pb2 import Resource as ResourceProto
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Status
from opentelemetry.proto.trace.v1.trace_pb2 import Span as SpanProto

from receiver.component.cpu_yield import CpuYield, in_chunks
from receiver.exporters.errors import PermanentExportError
from receiver.exporters.text_repair import repaired
from receiver.exporters.otlp_encoding import (
    SCOPE_NAME,
    SCOPE_VERSION,
    add_log_record,
    add_span,
    encode_metrics,
    set_attributes,
)
from receiver.exporters.otlp_wire_fields import (
    AV_STRING,
    ONE_BYTE,
    KeyValueFields,
    field_tag,
    length_delimited,
    varint,
)
from receiver.model.signals import Signal
from receiver.model.telemetry import (
    LogRecord,
    Resource,
    SeverityNumber,
    Span,
    SpanKind,
    StatusCode,
)

log = logging.getLogger(__name__)

# -- spans ---------------------------------------------------------------------------------------

_SPAN_TRACE_ID = field_tag(SpanProto, "trace_id")
_SPAN_SPAN_ID = field_tag(SpanProto, "span_id")
_SPAN_TRACE_STATE = field_tag(SpanProto, "trace_state")
_SPAN_PARENT = field_tag(SpanProto, "parent_span_id")
_SPAN_NAME = field_tag(SpanProto, "name")
_SPAN_KIND = field_tag(SpanProto, "kind")
_SPAN_START = field_tag(SpanProto, "start_time_unix_nano")
_SPAN_END = field_tag(SpanProto, "end_time_unix_nano")
_SPAN_ATTRIBUTES = field_tag(SpanProto, "attributes")
_SPAN_STATUS = field_tag(SpanProto, "status")
_SPAN_FLAGS = field_tag(SpanProto, "flags")
_STATUS_MESSAGE = field_tag(Status, "message")
_STATUS_CODE = field_tag(Status, "code")

# kind, start and end in one call (every agent span has all three non-zero and a one-byte kind)
_KIND_START_END = struct.Struct(f"<{len(_SPAN_KIND)}sB{len(_SPAN_START)}sQ{len(_SPAN_END)}sQ")
_START = struct.Struct(f"<{len(_SPAN_START)}sQ")
_END = struct.Struct(f"<{len(_SPAN_END)}sQ")
_FLAGS = struct.Struct(f"<{len(_SPAN_FLAGS)}sI")
_STATUS_CODES = {code: _STATUS_CODE + varint(code) for code in StatusCode if code}


def _status(code: StatusCode, message: str) -> bytes:
    """The ``status`` field of a span whose status is not the default."""
    body = length_delimited(_STATUS_MESSAGE, message.encode()) if message else b""
    if code:
        body += _STATUS_CODES[code]
    return length_delimited(_SPAN_STATUS, body)


# The usual agent span: a 16-byte trace id, an 8-byte span id, no trace state, an 8-byte parent
# id or none, a name shorter than 128 bytes (one length byte), non-zero start and end times.
# Written with one ``%``: ids, [parent,] name length, name, kind/start/end, attributes, the rest.
_USUAL_SPAN = _SPAN_TRACE_ID + b"\x10%b" + _SPAN_SPAN_ID + b"\x08%b" + _SPAN_NAME + b"%b%b%b%b%b"
_USUAL_CHILD_SPAN = (
    _SPAN_TRACE_ID + b"\x10%b" + _SPAN_SPAN_ID + b"\x08%b" + _SPAN_PARENT + b"\x08%b" + _SPAN_NAME + b"%b%b%b%b%b"
)
_FLAGS_1 = _FLAGS.pack(_SPAN_FLAGS, 1)


def _span_head(trace_id: bytes, span_id: bytes, trace_state: str, parent: bytes, name: bytes) -> bytes:
    """Fields 1-5 of a span (ids, trace state, name), each omitted when empty."""
    out = length_delimited(_SPAN_TRACE_ID, trace_id) if trace_id else b""
    if span_id:
        out += length_delimited(_SPAN_SPAN_ID, span_id)
    if trace_state:
        out += length_delimited(_SPAN_TRACE_STATE, trace_state.encode())
    if parent:
        out += length_delimited(_SPAN_PARENT, parent)
    if name:
        out += length_delimited(_SPAN_NAME, name)
    return out


def _span_kind_times(kind: SpanKind, start: int, end: int) -> bytes:
    """Fields 6-8 of a span (kind, start and end times), each omitted when zero."""
    out = _SPAN_KIND + varint(kind) if kind else b""
    if start:
        out += _START.pack(_SPAN_START, start)
    if end:
        out += _END.pack(_SPAN_END, end)
    return out


def _reference_span(span: Span) -> bytes:
    """A span's serialized ``Span`` message, built by the reference encoder."""
    holder = ScopeSpans()
    add_span(holder.spans, span)
    return holder.spans[0].SerializeToString()


def _span_message(span: Span, attributes: bytes) -> bytes:
    """A span's serialized ``Span`` message, given its serialized attributes.

    Fields are written in field-number order, the defaults (empty, zero) omitted, as protobuf does.
    """
    trace_id, span_id, trace_state, parent = span.trace_id, span.span_id, span.trace_state, span.parent_span_id
    name, kind, start, end = span.name, span.kind, span.start_unix_nano, span.end_unix_nano
    code, message, flags = span.status_code, span.status_message, span.flags
    if not (
        type(trace_id) is bytes and type(span_id) is bytes and type(trace_state) is str and type(parent) is bytes
        and type(name) is str and type(kind) is SpanKind and type(start) is int and type(end) is int
        and type(code) is StatusCode and type(message) is str and type(flags) is int
    ):
        return _reference_span(span)
    name = name.encode()
    try:
        tail = _FLAGS_1 if flags == 1 else _FLAGS.pack(_SPAN_FLAGS, flags) if flags else b""
        if code or message:
            tail = _status(code, message) + tail
        if len(trace_id) == 16 and len(span_id) == 8 and not trace_state and 0 < len(name) < 0x80 and kind and start and end:
            times = _KIND_START_END.pack(_SPAN_KIND, kind, _SPAN_START, start, _SPAN_END, end)
            name_length = ONE_BYTE[len(name)]
            if not parent:
                return _USUAL_SPAN % (trace_id, span_id, name_length, name, times, attributes, tail)
            if len(parent) == 8:
                return _USUAL_CHILD_SPAN % (trace_id, span_id, parent, name_length, name, times, attributes, tail)
        head = _span_head(trace_id, span_id, trace_state, parent, name)
        return b"".join((head, _span_kind_times(kind, start, end), attributes, tail))
    except struct.error:  # a time or the flags out of range: the reference rejects them
        return _reference_span(span)


# The compiled span encoder (``_span_wire.c``, built with the package): the same bytes as
# ``_span_message``; None for a span it leaves to Python.  Without it (a source tree nobody
# built) the Python path encodes every span.
try:
    from receiver.exporters import _span_wire
except ImportError:  # pragma: no cover - the build always has it; tests check it is there
    _span_wire = None
else:
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

    _span_wire.configure(Span, SpanKind, StatusCode, (
        _SPAN_TRACE_ID, _SPAN_SPAN_ID, _SPAN_TRACE_STATE, _SPAN_PARENT, _SPAN_NAME, _SPAN_KIND, _SPAN_START,
        _SPAN_END, _SPAN_ATTRIBUTES, _SPAN_STATUS, _SPAN_FLAGS, _STATUS_MESSAGE, _STATUS_CODE,
        field_tag(KeyValue, "key"), field_tag(KeyValue, "value"), field_tag(AnyValue, "string_value"),
        field_tag(AnyValue, "bool_value"), field_tag(AnyValue, "int_value"), field_tag(AnyValue, "double_value"),
        field_tag(AnyValue, "bytes_value"),
    ))


# -- logs ----------------------------------------------------------------------------------------

_LOG_TIME = field_tag(LogRecordProto, "time_unix_nano")
_LOG_SEVERITY = field_tag(LogRecordProto, "severity_number")
_LOG_SEVERITY_TEXT = field_tag(LogRecordProto, "severity_text")
_LOG_BODY = field_tag(LogRecordProto, "body")
_LOG_ATTRIBUTES = field_tag(LogRecordProto, "attributes")
_LOG_TRACE_ID = field_tag(LogRecordProto, "trace_id")
_LOG_SPAN_ID = field_tag(LogRecordProto, "span_id")
_LOG_OBSERVED = field_tag(LogRecordProto, "observed_time_unix_nano")
_LOG_TIME_FIELD = struct.Struct(f"<{len(_LOG_TIME)}sQ")
_LOG_OBSERVED_FIELD = struct.Struct(f"<{len(_LOG_OBSERVED)}sQ")
_SEVERITIES = {s: _LOG_SEVERITY + varint(s) for s in SeverityNumber if s}

_RESOURCE_OF = attrgetter("resource")
_LOG_FIELDS = attrgetter(
    "time_unix_nano", "severity_number", "severity_text", "body", "trace_id", "span_id", "observed_time_unix_nano"
)
_PLAIN_LOG = (int, SeverityNumber, str, str, bytes, bytes, int)


def _reference_log_record(record: LogRecord) -> bytes:
    """A record's serialized ``LogRecord`` message, built by the reference encoder."""
    holder = ScopeLogs()
    add_log_record(holder.log_records, record)
    return holder.log_records[0].SerializeToString()


def _log_message(record: LogRecord, attributes: bytes) -> bytes:
    """A record's serialized ``LogRecord`` message, given its serialized attributes."""
    fields = _LOG_FIELDS(record)
    if tuple(map(type, fields)) != _PLAIN_LOG:
        return _reference_log_record(record)
    time, severity, severity_text, body, trace_id, span_id, observed = fields
    parts = []
    try:
        if time:
            parts.append(_LOG_TIME_FIELD.pack(_LOG_TIME, time))
        if severity:
            parts.append(_SEVERITIES[severity])
        if severity_text:
            parts.append(length_delimited(_LOG_SEVERITY_TEXT, severity_text.encode()))
        parts.append(length_delimited(_LOG_BODY, length_delimited(AV_STRING, body.encode())))
        parts.append(attributes)
        if trace_id:
            parts.append(length_delimited(_LOG_TRACE_ID, trace_id))
        if span_id:
            parts.append(length_delimited(_LOG_SPAN_ID, span_id))
        if observed:
            parts.append(_LOG_OBSERVED_FIELD.pack(_LOG_OBSERVED, observed))
    except struct.error:  # a time out of range: the reference rejects it
        return _reference_log_record(record)
    return b"".join(parts)


# -- requests ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Layout:
    """The tags of an export request's nesting: request → Resource* → Scope* → item."""

    resource_group: bytes  # request.resource_spans / resource_logs
    resource: bytes  # Resource*.resource
    scope_group: bytes  # Resource*.scope_spans / scope_logs
    scope: bytes  # Scope*.scope
    item: bytes  # Scope*.spans / log_records

    @classmethod
    def of(
        cls, request, group_field: str, resource_group, scope_field: str, scope_group, item_field: str
    ) -> "_Layout":
        return cls(
            field_tag(request, group_field),
            field_tag(resource_group, "resource"),
            field_tag(resource_group, scope_field),
            field_tag(scope_group, "scope"),
            field_tag(scope_group, item_field),
        )


_TRACES = _Layout.of(ExportTraceServiceRequest, "resource_spans", ResourceSpans, "scope_spans", ScopeSpans, "spans")
_LOGS = _Layout.of(ExportLogsServiceRequest, "resource_logs", ResourceLogs, "scope_logs", ScopeLogs, "log_records")


class _LengthPrefixes(dict):
    """Tag + varint length of an item field, by length: looked up in C for a whole batch."""

    __slots__ = ("tag", "max_entries")

    def __init__(self, tag: bytes, max_entries: int) -> None:
        super().__init__()
        self.tag = tag
        self.max_entries = max_entries

    def __missing__(self, length: int) -> bytes:
        prefix = self.tag + varint(length)
        if len(self) >= self.max_entries:
            self.clear()
        self[length] = prefix
        return prefix


def _resource_message(resource: Resource) -> bytes:
    """The serialized ``Resource`` message (reference encoder: done once per resource)."""
    message = ResourceProto()
    set_attributes(message.attributes, resource.attributes)
    return message.SerializeToString()


_SCOPE = InstrumentationScope(name=SCOPE_NAME, version=SCOPE_VERSION).SerializeToString()


class OtlpWireEncoder:
    """Serialized OTLP export requests for batches of spans, log records and metrics.

    Owns the caches (serialized attributes per repeated field, resources), each bounded by
    ``max_entries``; one encoder per exporter.  Metrics, a few points per collection interval,
    go through the reference message encoder.
    """

    def __init__(self, max_entries: int = 4096, cpu_yield: CpuYield | None = None, compiled: bool = True) -> None:
        # compiled=False: every span through the Python encoder (the reference the C one is tested against).
        self._compiled = _span_wire.encode if compiled and _span_wire is not None else None
        # Encoding a batch is one of the agent's longest stretches: it gives the CPU back between chunks.
        self._yield = cpu_yield if cpu_yield is not None else CpuYield()
        self._span_attributes = KeyValueFields(_SPAN_ATTRIBUTES, max_entries)
        self._log_attributes = KeyValueFields(_LOG_ATTRIBUTES, max_entries)
        self._span_prefixes = _LengthPrefixes(_TRACES.item, max_entries)
        self._log_prefixes = _LengthPrefixes(_LOGS.item, max_entries)
        self._resources: dict[tuple[bytes, int], tuple[Resource, bytes]] = {}
        self._max_resources = max_entries
        self.repaired_items = 0  # spans and log records sent with lone surrogates replaced
        self._repair_logged = 0

    def serialize(self, signal: Signal, batch: list) -> bytes:
        """The serialized export request for a batch; :class:`PermanentExportError` if it cannot be encoded.

        A batch holding a string UTF-8 cannot encode (a lone surrogate) is encoded again with
        each such character replaced by U+FFFD (:mod:`.text_repair`), the items changed counted
        in ``repaired_items``: one bad string no longer costs the whole batch.
        """
        try:
            try:
                return self._serialize(signal, batch)
            except UnicodeEncodeError:
                if signal is not Signal.TRACES and signal is not Signal.LOGS:
                    raise
                fixed = [repaired(item) for item in batch]
                changed = sum(1 for a, b in zip(fixed, batch) if a is not b)
                if not changed:
                    raise
                body = self._serialize(signal, fixed)
                self.repaired_items += changed
                if self._repair_logged < 10:
                    self._repair_logged += 1
                    log.warning("otlp: %d %s held text UTF-8 cannot encode (lone surrogates), sent with U+FFFD "
                                "in their place (%d so far)", changed, signal.value, self.repaired_items)
                return body
        except (ValueError, TypeError) as e:
            raise PermanentExportError(f"cannot encode {signal.value}: {e}") from e

    def _serialize(self, signal: Signal, batch: list) -> bytes:
        if signal is Signal.TRACES:
            return self.traces(batch)
        if signal is Signal.LOGS:
            return self.logs(batch)
        return encode_metrics(batch).SerializeToString()

    def traces(self, spans: Iterable[Span]) -> bytes:
        """A serialized ``ExportTraceServiceRequest``."""
        spans = spans if type(spans) is list else list(spans)
        messages: list[bytes] = []
        compiled = self._compiled
        for part in in_chunks(spans, self._yield):
            if compiled is not None:
                encoded = compiled(part)
                if None in encoded:  # those spans go through Python, which may raise (and repair)
                    blocks = self._span_attributes.blocks
                    for i, span in enumerate(part):
                        if encoded[i] is None:
                            encoded[i] = _span_message(span, blocks([span.attributes])[0])
                messages += encoded
                continue
            attributes = self._span_attributes.blocks([span.attributes for span in part])
            messages += map(_span_message, part, attributes)
        return self._request(_TRACES, self._span_prefixes, list(map(_RESOURCE_OF, spans)), messages)

    def logs(self, records: Iterable[LogRecord]) -> bytes:
        """A serialized ``ExportLogsServiceRequest``."""
        records = records if type(records) is list else list(records)
        messages: list[bytes] = []
        for part in in_chunks(records, self._yield):
            attributes = self._log_attributes.blocks([record.attributes for record in part])
            messages += map(_log_message, part, attributes)
        return self._request(_LOGS, self._log_prefixes, list(map(_RESOURCE_OF, records)), messages)

    def _request(
        self, layout: _Layout, prefixes: _LengthPrefixes, resources: list[Resource], messages: list[bytes]
    ) -> bytes:
        """Item messages grouped by resource (in order of first appearance) under the one scope.

        Each item's field goes into its group as two pieces (tag + length, message), and the
        whole request is joined once at the end, the enclosing lengths summed from the pieces.
        Grouping runs in C, by resource identity; distinct but equal resources (which the
        reference merges) take the ordered Python loop.
        """
        ids = list(map(id, resources))
        groups: defaultdict[int, list[bytes]] = defaultdict(list)
        pieces = zip(map(prefixes.__getitem__, map(len, messages)), messages)
        deque(map(list.extend, map(groups.__getitem__, ids), pieces), maxlen=0)  # consume
        firsts = dict(zip(ids, resources))  # id → its resource
        if len(set(firsts.values())) < len(groups):  # (also: TypeError for an unhashable one, as the reference)
            return self._request_merging(layout, prefixes, resources, messages)
        return self._join(layout, [(firsts[i], pieces) for i, pieces in groups.items()])

    def _request_merging(
        self, layout: _Layout, prefixes: _LengthPrefixes, resources: list[Resource], messages: list[bytes]
    ) -> bytes:
        """:meth:`_request` grouping equal resources, as the reference does (a dict of resources)."""
        groups: dict[Resource, list[bytes]] = {}
        for resource, message in zip(resources, messages):
            pieces = groups.get(resource)
            if pieces is None:
                pieces = groups[resource] = []
            pieces += (prefixes[len(message)], message)
        return self._join(layout, list(groups.items()))

    def _join(self, layout: _Layout, groups: list[tuple[Resource, list[bytes]]]) -> bytes:
        """The request: one Resource* per group (its resource, the scope, the items' pieces)."""
        scope = length_delimited(layout.scope, _SCOPE)
        out: list[bytes] = []
        for resource, pieces in groups:
            scope_group_size = len(scope) + sum(map(len, pieces))
            scope_group = layout.scope_group + varint(scope_group_size)
            resource_field = self._resource_field(layout, resource)
            size = len(resource_field) + len(scope_group) + scope_group_size
            out += (layout.resource_group, varint(size), resource_field, scope_group, scope)
            out += pieces
        return b"".join(out)

    def _resource_field(self, layout: _Layout, resource: Resource) -> bytes:
        """The ``resource`` field of a group (absent for an empty resource), cached per resource.

        Keyed by identity, not equality (``("a", 1)`` equals ``("a", True)``); the entry holds the
        resource, so its id is not reused while cached.  The agent shares one resource per process.
        """
        key = (layout.resource, id(resource))
        entry = self._resources.get(key)
        if entry is not None and entry[0] is resource:
            return entry[1]
        message = _resource_message(resource)
        field = length_delimited(layout.resource, message) if message else b""
        if len(self._resources) >= self._max_resources:
            self._resources.clear()
        self._resources[key] = (resource, field)
        return field
