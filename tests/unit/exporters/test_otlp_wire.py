"""The wire-format OTLP encoder against the reference message encoder.

Every test encodes the same batch both ways and requires the wire bytes to parse to a message
equal to the reference one (and, where the values allow it, the very same bytes: upb writes
fields in field-number order, as the wire encoder does).  Where the reference rejects a batch,
the wire encoder must reject it too.
"""

from __future__ import annotations

import enum
import math
from types import MappingProxyType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span as SpanProto

from receiver.exporters import otlp_wire
from receiver.exporters.errors import PermanentExportError
from receiver.exporters.otlp_encoding import (
    encode_logs,
    encode_metrics,
    encode_request,
    encode_traces,
)
from receiver.exporters.otlp_wire import OtlpWireEncoder
from receiver.exporters.otlp_wire_fields import KeyValueFields, field_tag, varint
from receiver.model.signals import Signal
from receiver.model.telemetry import (
    LogRecord,
    Metric,
    MetricKind,
    Resource,
    SeverityNumber,
    Span,
    SpanKind,
    StatusCode,
    SumPoint,
)

NGINX = Resource.from_dict({
    "service.name": "nginx", "service.instance.id": "host-1", "process.pid": 1234,
    "process.executable.path": "/usr/sbin/nginx", "host.name": "web-1", "telemetry.sdk.language": "python",
})
POSTGRES_CLIENT = Resource.from_dict({"service.name": "api", "process.pid": 77})
T0 = 1_700_000_000_000_000_000


def http_server_span(i: int, resource: Resource = NGINX, **kw) -> Span:
    """An HTTP server span as the agent makes it (19 attributes)."""
    fields = dict(
        trace_id=bytes([i % 256]) * 16, span_id=(i + 1).to_bytes(8, "big"), name="GET /users/{id}",
        kind=SpanKind.SERVER, start_unix_nano=T0 + i * 1000, end_unix_nano=T0 + i * 1000 + 250_000,
        resource=resource,
        attributes={
            "url.scheme": "http", "network.protocol.name": "http", "network.protocol.version": "1.1",
            "network.transport": "tcp", "server.address": "127.0.0.1", "server.port": 8080,
            "client.address": "10.0.0.7", "client.port": 40000 + i, "network.peer.address": "10.0.0.7",
            "network.peer.port": 40000 + i, "network.local.address": "127.0.0.1", "network.local.port": 8080,
            "http.request.method": "GET", "url.path": f"/users/{i}", "user_agent.original": "curl/8.5.0",
            "http.route": "/users/{id}", "http.response.status_code": 200, "http.response.body.size": 615,
            "url.query": "q=REDACTED",
        },
    )
    fields.update(kw)
    return Span(**fields)


def http_client_span(i: int, **kw) -> Span:
    return http_server_span(
        i, kind=SpanKind.CLIENT, name="POST", parent_span_id=b"\x42" * 8, trace_state="vendor=abc,other=1",
        attributes={
            "http.request.method": "POST", "server.address": "payments.internal", "server.port": 443,
            "url.full": "https://payments.internal/charge", "http.response.status_code": 503,
            "error.type": "503", "network.peer.address": "10.1.2.3", "network.peer.port": 443,
        },
        status_code=StatusCode.ERROR, **kw,
    )


def db_span(i: int, **kw) -> Span:
    return http_server_span(
        i, kind=SpanKind.CLIENT, name="SELECT shop.orders", resource=POSTGRES_CLIENT, parent_span_id=b"\x07" * 8,
        attributes={
            "db.system.name": "postgresql", "db.namespace": "shop", "db.operation.name": "SELECT",
            "db.collection.name": "orders",
            "db.query.text": "SELECT * FROM orders WHERE id = $1 AND " + "x = ? " * 60,
            "db.response.returned_rows": i, "server.address": "db", "server.port": 5432,
        },
        **kw,
    )


def wire_request(encoder: OtlpWireEncoder, spans: list[Span]) -> ExportTraceServiceRequest:
    return ExportTraceServiceRequest.FromString(encoder.traces(spans))


def assert_same(spans: list[Span], encoder: OtlpWireEncoder | None = None, *, same_bytes: bool = True) -> None:
    """The wire encoding of ``spans`` (twice: cold, then warm cache) equals the reference's."""
    encoder = encoder or OtlpWireEncoder()
    reference = encode_traces(spans)
    for _ in range(2):
        data = encoder.traces(spans)
        assert ExportTraceServiceRequest.FromString(data) == reference
        if same_bytes:
            assert data == reference.SerializeToString()


def assert_same_outcome(spans: list[Span]) -> None:
    """Both encoders accept the batch with equal results, or both reject it as permanent."""
    try:
        reference = encode_request(Signal.TRACES, spans)
    except PermanentExportError:
        with pytest.raises(PermanentExportError):
            OtlpWireEncoder().serialize(Signal.TRACES, spans)
        return
    assert ExportTraceServiceRequest.FromString(OtlpWireEncoder().serialize(Signal.TRACES, spans)) == reference


# -- the agent's spans ---------------------------------------------------------------------------


def test_typical_agent_spans_encode_to_the_reference_bytes():
    spans = [http_server_span(i) for i in range(20)]
    spans += [http_server_span(50, parent_span_id=b"\x01" * 8), http_client_span(51), db_span(52), db_span(53)]
    spans += [http_server_span(60, status_code=StatusCode.ERROR, status_message="connection closed before a reply")]
    spans += [http_server_span(61, status_code=StatusCode.OK), http_server_span(62, flags=0)]
    assert_same(spans)


def test_typical_agent_spans_take_the_fast_path(monkeypatch):
    def no_fallback(*args):
        raise AssertionError("fell back to the reference encoder")

    monkeypatch.setattr(otlp_wire, "_reference_span", no_fallback)
    monkeypatch.setattr(otlp_wire, "_reference_log_record", no_fallback)
    encoder = OtlpWireEncoder()
    encoder.traces([http_server_span(1), http_client_span(2), db_span(3)])
    encoder.logs([LogRecord(T0, "boom", NGINX, SeverityNumber.ERROR, "ERROR", {"a": 1}, b"\x01" * 16, b"\x02" * 8)])


def test_empty_batch_is_an_empty_request():
    assert OtlpWireEncoder().traces([]) == b"" == encode_traces([]).SerializeToString()
    assert OtlpWireEncoder().logs([]) == b""


def test_a_generator_batch_is_accepted():
    spans = [http_server_span(i) for i in range(3)]
    assert OtlpWireEncoder().traces(iter(spans)) == encode_traces(spans).SerializeToString()


def test_span_fields_at_their_edges():
    assert_same([
        http_server_span(1, start_unix_nano=0, end_unix_nano=0),  # zero times are not written
        http_server_span(2, start_unix_nano=2**64 - 1, end_unix_nano=2**64 - 1),
        http_server_span(3, start_unix_nano=0),
        http_server_span(4, flags=2**32 - 1),
        http_server_span(5, flags=0x301),
        http_server_span(6, trace_id=b"", span_id=b""),  # not yet linked
        http_server_span(7, trace_id=b"\x01" * 200, span_id=b"\x02" * 3, parent_span_id=b"\x03" * 130),
        http_server_span(8, parent_span_id=b"\x03" * 4),
        http_server_span(9, name=""),
        http_server_span(10, name="n" * 127),
        http_server_span(11, name="n" * 128),
        http_server_span(12, name="é" * 64),  # 128 bytes
        http_server_span(13, name="GET /καλημέρα/🙂", trace_state="k=v", status_message="ünïcode ✓"),
        http_server_span(14, status_message="only a message"),
        http_server_span(15, status_code=StatusCode.ERROR, status_message="x" * 300),
        http_server_span(16, attributes={}),
        http_server_span(17, kind=SpanKind.INTERNAL),
        http_server_span(18, kind=SpanKind.PRODUCER),
        http_server_span(19, kind=SpanKind.CONSUMER),
    ])


def test_big_spans_use_multi_byte_lengths():
    big = http_server_span(1, attributes={f"k{i}": "v" * 200 for i in range(100)})  # a ~20 KB span
    huge = http_server_span(2, attributes={"blob": b"\x00" * 3_000_000})  # a 3 MB span (4-byte length)
    assert_same([big, huge])


# -- attribute values ------------------------------------------------------------------------------


class Colour(enum.IntEnum):
    RED = 3


class Shade(str, enum.Enum):
    DARK = "dark"


class Text(str):
    def __str__(self) -> str:
        return "printed"


ALL_VALUE_TYPES = {
    "str": "value", "empty": "", "unicode": "日本語 🙂 ünï", "long": "x" * 1000, "true": True, "false": False,
    "zero": 0, "one": 1, "127": 127, "128": 128, "16383": 16383, "16384": 16384, "2097151": 2**21 - 1,
    "2097152": 2**21, "int64 max": 2**63 - 1, "int64 min": -(2**63), "minus one": -1, "too big": 2**63,
    "too small": -(2**63) - 1, "huge": 2**200, "float": 1.5, "float zero": 0.0, "minus zero": -0.0,
    "inf": math.inf, "-inf": -math.inf, "tiny": 5e-324, "bytes": b"\x00\xff", "empty bytes": b"",
    "long bytes": bytes(range(256)) * 2, "empty array": (), "array": ("a", 1, True, None, 2.5, b"x", ("nested", ())),
    "list": [1, "two", [3.0]], "none": None, "int enum": Colour.RED, "str enum": Shade.DARK,
    "str subclass": Text("raw"),
    "bytearray": bytearray(b"ba"), "memoryview": memoryview(b"mv"), "object": object, "": "empty key",
}


def test_every_attribute_value_type():
    spans = [http_server_span(1, attributes=ALL_VALUE_TYPES)]
    spans += [http_server_span(2, attributes={k: v}) for k, v in ALL_VALUE_TYPES.items()]
    assert_same(spans)


def test_nan_keeps_its_bits():
    span = http_server_span(1, attributes={"nan": math.nan, "array": (math.nan,)})
    assert OtlpWireEncoder().traces([span]) == encode_traces([span]).SerializeToString()


@pytest.mark.parametrize(
    "values",
    [
        (1, True, 1.0, 1),  # equal values of different types under one key
        (0, False, 0.0, -0.0, 0, False),
        ("1", 1, b"1", "1"),
        ((1,), (True,), (1.0,), (1,)),
        (Colour.RED, 3, Shade.DARK, "dark", Text("raw"), "raw", Text("raw")),
    ],
)
def test_equal_values_of_different_types_are_not_confused_by_the_cache(values):
    encoder = OtlpWireEncoder()
    spans = [http_server_span(i, attributes={"a": v, "b": "fixed"}) for i, v in enumerate(values)]
    assert_same(spans, encoder)  # in one batch
    for span in spans:  # and across batches, each batch alone (plain and typed lookups alternate)
        assert_same([span], encoder)


def test_non_string_keys_are_handled_as_protobuf_does():
    assert_same_outcome([http_server_span(1, attributes={b"bytes key": 1})])
    assert_same_outcome([http_server_span(1, attributes={7: "int key"})])
    assert_same_outcome([http_server_span(1, attributes={b"\xff": 1})])


def test_attributes_in_a_mapping_that_is_not_a_dict():
    class Attributes(dict):
        pass

    assert_same([http_server_span(1, attributes=Attributes(a=1, b="x")), http_server_span(2)])
    assert_same([http_server_span(1, attributes=MappingProxyType({"a": 1, "b": [1]}))])


# -- unusual and invalid span fields -------------------------------------------------------------


@pytest.mark.parametrize(
    "fields",
    [
        {"kind": 2},  # a plain int kind and status code are accepted by protobuf
        {"status_code": 2},
        {"kind": 0},
        {"kind": -1},
        {"name": b"bytes name"},  # protobuf decodes bytes for a string field
        {"name": b"\xff"},
        {"trace_id": "not bytes"},
        {"trace_id": bytearray(16)},
        {"span_id": memoryview(b"12345678")},
        {"parent_span_id": None},
        {"kind": True},
        {"kind": 2**31},
        {"kind": 1.0},
        {"start_unix_nano": -1},
        {"end_unix_nano": 2**64},
        {"start_unix_nano": 1.5},
        {"start_unix_nano": True},
        {"flags": 2**32},
        {"flags": -1},
        {"flags": True},
        {"status_code": 7},
        {"status_code": True},
        {"status_message": 5},
        {"name": None},
        {"attributes": {"k": {1: 2}}},
    ],
)
def test_unusual_or_invalid_fields_behave_as_in_the_reference(fields):
    assert_same_outcome([http_server_span(1), http_server_span(2, **fields)])


# -- resources -----------------------------------------------------------------------------------


def test_resources_grouped_in_order_of_first_appearance():
    other = Resource.from_dict({"service.name": "other"})
    spans = [http_server_span(1), db_span(2), http_server_span(3, resource=other), http_server_span(4), db_span(5)]
    assert_same(spans)


def test_an_empty_resource_is_left_out():
    assert_same([http_server_span(1, resource=Resource()), http_server_span(2)])


def test_equal_but_distinct_resources_are_merged_as_the_reference_does():
    a1 = Resource.from_dict({"service.name": "a"})
    a2 = Resource.from_dict({"service.name": "a"})
    b = Resource.from_dict({"service.name": "b"})
    assert a1 == a2 and a1 is not a2
    spans = [http_server_span(0, resource=a2), http_server_span(1, resource=b), http_server_span(2, resource=a1),
             http_server_span(3, resource=a2), http_server_span(4, resource=a1)]
    assert_same(spans)


def test_an_unhashable_resource_is_rejected_as_by_the_reference():
    assert_same_outcome([http_server_span(1, resource=Resource((("list", [1]),)))])


def test_equal_resources_with_different_value_types_are_cached_apart():
    encoder = OtlpWireEncoder()
    as_int = Resource((("process.pid", 1),))
    as_bool = Resource((("process.pid", True),))
    assert as_int == as_bool
    assert_same([http_server_span(1, resource=as_int)], encoder)
    assert_same([http_server_span(1, resource=as_bool)], encoder)


# -- logs and metrics ----------------------------------------------------------------------------


def log_record(i: int, **kw) -> LogRecord:
    fields = dict(
        time_unix_nano=T0 + i, body=f"connection reset {i}", resource=NGINX, severity_number=SeverityNumber.WARN,
        severity_text="WARN", attributes={"event.name": "ebpf_receiver.protocol.error", "fd": 7, "url.path": "/x"},
        trace_id=b"\x01" * 16, span_id=b"\x02" * 8, observed_time_unix_nano=T0 + 10 + i,
    )
    fields.update(kw)
    return LogRecord(**fields)


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"body": ""},
        {"body": "ünïcode 🙂" * 30},
        {"attributes": {}},
        {"attributes": ALL_VALUE_TYPES},
        {"severity_number": SeverityNumber.UNSPECIFIED, "severity_text": ""},
        {"severity_number": 17},
        {"time_unix_nano": 0, "observed_time_unix_nano": 0},
        {"trace_id": b"", "span_id": b""},
        {"resource": POSTGRES_CLIENT},
        {"time_unix_nano": -1},
        {"body": b"bytes"},
        {"trace_id": "str"},
    ],
)
def test_log_records_encode_as_the_reference(fields):
    records = [log_record(1), log_record(2, **fields), log_record(3)]
    try:
        reference = encode_request(Signal.LOGS, records)
    except PermanentExportError:
        with pytest.raises(PermanentExportError):
            OtlpWireEncoder().serialize(Signal.LOGS, records)
        return
    data = OtlpWireEncoder().serialize(Signal.LOGS, records)
    assert ExportLogsServiceRequest.FromString(data) == reference
    assert data == encode_logs(records).SerializeToString()


def test_metrics_are_serialized_by_the_reference_encoder():
    metrics = [Metric("requests", "", "1", MetricKind.SUM, [SumPoint((("a", "b"),), 1, 2, 5)], NGINX)]
    assert OtlpWireEncoder().serialize(Signal.METRICS, metrics) == encode_metrics(metrics).SerializeToString()


def test_serialize_turns_encoding_failures_into_permanent_errors():
    with pytest.raises(PermanentExportError, match="cannot encode traces"):
        OtlpWireEncoder().serialize(Signal.TRACES, [http_server_span(1, start_unix_nano=-5)])


# -- the cache -----------------------------------------------------------------------------------


def test_key_value_cache_is_bounded_and_stays_correct():
    fields = KeyValueFields(field_tag(SpanProto, "attributes"), max_entries=16)
    maps = [{"port": 40000 + i, "path": f"/p/{i % 7}", "method": "GET"} for i in range(200)]
    reference = KeyValueFields(fields.tag, max_entries=10**6)
    for start in range(0, 200, 10):
        batch = maps[start:start + 10]
        assert fields.blocks(batch) == reference.blocks(batch)
        assert len(fields) <= 16
    assert len(reference) == 200 + 7 + 1


def test_a_high_cardinality_key_holds_at_most_a_quarter_of_the_cache():
    fields = KeyValueFields(b"\x4a", max_entries=16)
    fields.blocks([{"method": "GET", "port": port} for port in range(40)])  # 36 ports refused
    assert ("method", "GET") in fields
    assert sum(key[0] == "port" for key in fields) == 4
    fields.blocks([{"method": "GET", "port": port} for port in range(100, 140)])  # 64 refused: emptied once
    assert len(fields) <= 16
    assert sum(key[0] == "port" for key in fields) == 4 and ("method", "GET") in fields


def test_cache_keeps_only_short_hashable_exact_values():
    fields = KeyValueFields(b"\x4a", max_entries=100)
    fields.blocks([{"long": "x" * 1000, "float": 1.5, "tuple": (1,), "bool": True, "short": "s", "int": 1}])
    assert sorted(key[0] for key in fields) == ["bool", "int", "short"]


def test_encoder_with_a_tiny_cache_stays_correct():
    encoder = OtlpWireEncoder(max_entries=3)
    for start in range(0, 60, 20):
        assert_same([http_server_span(i) for i in range(start, start + 20)] + [db_span(start)], encoder)


def test_cache_bound_must_be_positive():
    with pytest.raises(ValueError):
        OtlpWireEncoder(max_entries=0)


# -- wire primitives -----------------------------------------------------------------------------


@pytest.mark.parametrize("n", [0, 1, 127, 128, 300, 16383, 16384, 2**21 - 1, 2**21, 2**35, 2**64 - 1])
def test_varint_matches_the_protobuf_encoding(n):
    from google.protobuf.internal.encoder import _VarintBytes

    assert varint(n) == _VarintBytes(n)


def test_varint_rejects_negative_numbers():
    with pytest.raises(ValueError):
        varint(-1)


# -- property ------------------------------------------------------------------------------------

scalars = st.one_of(
    st.text(max_size=30),
    st.booleans(),
    st.integers(),  # beyond int64 too: those become decimal strings
    st.floats(allow_nan=False),
    st.binary(max_size=30),
    st.none(),
)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3).map(tuple), max_leaves=6)
keys = st.one_of(st.sampled_from(["http.request.method", "server.port", "a", ""]), st.text(max_size=12))
resources = st.sampled_from([  # Resource(NGINX.attributes): equal to NGINX, another object
    NGINX, POSTGRES_CLIENT, Resource(), Resource.from_dict({"service.name": "x", "n": 1.5}),
    Resource(NGINX.attributes),
])
ids = st.one_of(st.binary(min_size=16, max_size=16), st.binary(min_size=8, max_size=8), st.binary(max_size=20))


@st.composite
def spans(draw) -> Span:
    return Span(
        trace_id=draw(ids), span_id=draw(ids), name=draw(st.text(max_size=40)), kind=draw(st.sampled_from(SpanKind)),
        start_unix_nano=draw(st.integers(0, 2**64 - 1)), end_unix_nano=draw(st.integers(0, 2**64 - 1)),
        resource=draw(resources), parent_span_id=draw(st.one_of(st.just(b""), ids)),
        trace_state=draw(st.one_of(st.just(""), st.text(max_size=20))),
        attributes=draw(st.dictionaries(keys, values, max_size=8)),
        status_code=draw(st.sampled_from(StatusCode)),
        status_message=draw(st.one_of(st.just(""), st.text(max_size=20))),
        flags=draw(st.integers(0, 2**32 - 1)),
    )


@settings(max_examples=200, deadline=None)
@given(st.lists(spans(), max_size=6), st.integers(1, 8))
def test_any_batch_of_spans_encodes_as_the_reference(batch, cache_size):
    encoder = OtlpWireEncoder(max_entries=cache_size)
    reference = encode_traces(batch)
    for _ in range(2):  # cold, then warm (or cleared) caches
        data = encoder.traces(batch)
        assert ExportTraceServiceRequest.FromString(data) == reference
        assert data == reference.SerializeToString()  # also tells 0.0 from -0.0


# -- text UTF-8 cannot encode ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "fields, fixed",
    [
        ({"name": "GET \ud800"}, {"name": "GET \ufffd"}),  # lone surrogate: not UTF-8
        ({"trace_state": "a=\udfff"}, {"trace_state": "a=\ufffd"}),
        ({"status_message": "\udcff!"}, {"status_message": "\ufffd!"}),  # surrogateescape of byte 0xff
        ({"attributes": {"bad": "\ud800x"}}, {"attributes": {"bad": "\ufffdx"}}),
        ({"attributes": {"\ud800": 1}}, {"attributes": {"\ufffd": 1}}),
        ({"attributes": {"list": ("ok", "\udfff")}}, {"attributes": {"list": ("ok", "\ufffd")}}),
        ({"resource": Resource((("process.executable.path", "/opt/\udcff/app"),))},
         {"resource": Resource((("process.executable.path", "/opt/\ufffd/app"),))}),
    ],
)
def test_lone_surrogates_are_sent_as_replacement_characters_not_dropped_with_the_batch(fields, fixed):
    good = [http_server_span(i) for i in range(5)]
    bad = http_server_span(9, **fields)
    encoder = OtlpWireEncoder()
    body = encoder.serialize(Signal.TRACES, [*good, bad])
    # the batch as if the bad span had been written with U+FFFD: every span arrives
    assert ExportTraceServiceRequest.FromString(body) == encode_request(
        Signal.TRACES, [*good, http_server_span(9, **fixed)])
    assert encoder.repaired_items == 1
    assert encoder.serialize(Signal.TRACES, good) and encoder.repaired_items == 1  # clean batches untouched


def test_lone_surrogates_in_log_records_are_repaired_too():
    rec = LogRecord(T0, "line \ud800", NGINX, attributes={"k": "\udcff"})
    encoder = OtlpWireEncoder()
    body = encoder.serialize(Signal.LOGS, [rec])
    assert ExportLogsServiceRequest.FromString(body) == encode_request(
        Signal.LOGS, [LogRecord(T0, "line \ufffd", NGINX, attributes={"k": "\ufffd"})])
    assert encoder.repaired_items == 1
