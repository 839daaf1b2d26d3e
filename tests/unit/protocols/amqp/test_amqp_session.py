"""AmqpSession on hand-built frames: interleaved channels, field tables (and their abuse),
broker refusals, lost framing; describe(), the span mapping; fuzzing."""

from __future__ import annotations

import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from receiver.protocols.amqp import PROTOCOL, AmqpSession, describe, detect
from receiver.protocols.amqp.wire import PROTOCOL_HEADER, Reader, content_header
from receiver.protocols.api import ConnectionFacts, Detection
from receiver.protocols.base import Direction, Role
from tests.support.protocol_fixtures import fixture_names, load_fixture

E = Direction.EGRESS
I = Direction.INGRESS  # noqa: E741
FACTS = ConnectionFacts(Role.CLIENT, "tcp", "127.0.0.1", 40000, "127.0.0.1", 5672)
TP = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def frame(ftype: int, channel: int, payload: bytes) -> bytes:
    return struct.pack("!BHI", ftype, channel, len(payload)) + payload + b"\xce"


def shortstr(s: str) -> bytes:
    return bytes([len(s)]) + s.encode()


def method(channel: int, cls: int, mid: int, args: bytes = b"") -> bytes:
    return frame(1, channel, struct.pack("!HH", cls, mid) + args)


def table(**fields: bytes) -> bytes:
    body = b"".join(shortstr(k) + v for k, v in fields.items())
    return struct.pack("!I", len(body)) + body


def longstr(s: str) -> bytes:
    return b"S" + struct.pack("!I", len(s)) + s.encode()


def header(channel: int, body_size: int, headers: bytes | None = None) -> bytes:
    flags = 0x2000 if headers is not None else 0
    return frame(2, channel, struct.pack("!HHQH", 60, 0, body_size, flags) + (headers or b""))


def publish(channel: int, exchange: str, key: str, body: bytes, headers: bytes | None = None, split: int = 0) -> bytes:
    out = method(channel, 60, 40, b"\x00\x00" + shortstr(exchange) + shortstr(key) + b"\x00")
    out += header(channel, len(body), headers)
    parts = [body[i : i + split] for i in range(0, len(body), split)] if split else [body]
    return out + b"".join(frame(3, channel, p) for p in parts if p)


def deliver(channel: int, tag: int, exchange: str, key: str, body: bytes, headers: bytes | None = None) -> bytes:
    args = shortstr("ctag") + struct.pack("!Q", tag) + b"\x00" + shortstr(exchange) + shortstr(key)
    return method(channel, 60, 60, args) + header(channel, len(body), headers) + frame(3, channel, body)


def client_session() -> AmqpSession:
    s = AmqpSession(kernel_role=Role.CLIENT)
    s.feed(E, PROTOCOL_HEADER, 0)
    return s


def test_interleaved_channels_assemble_their_own_content() -> None:
    s = client_session()
    a = publish(1, "ex", "a", b"x" * 10, split=4)
    b = publish(2, "ex", "b", b"y" * 6, table(traceparent=longstr(TP)), split=3)
    # frames of the two messages alternate: method1, method2, header1, header2, bodies...
    fa = _frames(a)
    fb = _frames(b)
    mixed = b"".join(x for pair in zip(fa, fb) for x in pair) + b"".join(fa[len(fb):]) + b"".join(fb[len(fa):])
    out = s.feed(E, mixed, 1)
    got = {t.request.routing_key: t.request for t in out}
    assert got["a"].body_size == 10 and got["a"].traceparent is None and got["a"].channel == 1
    assert got["b"].body_size == 6 and got["b"].traceparent == TP and got["b"].channel == 2
    assert s.parse_errors == 0


def _frames(data: bytes) -> list[bytes]:
    out = []
    while data:
        size = struct.unpack_from("!I", data, 3)[0]
        out.append(data[: 8 + size])
        data = data[8 + size :]
    return out


def test_field_table_values_and_bounds() -> None:
    nested = table(inner=longstr("v"))
    t = table(traceparent=longstr(TP), n=b"I" + struct.pack("!i", -5), flag=b"t\x01", sub=b"F" + nested,
              arr=b"A" + struct.pack("!I", 5) + b"b\x01b\x02V", void=b"V", raw=b"x" + struct.pack("!I", 3) + b"abc")
    got = Reader(t).table()
    assert got is not None and got["traceparent"] == TP and got["n"] == -5 and got["sub"] == {"inner": "v"}
    assert Reader(struct.pack("!I", 100) + b"\x01a").table() is None  # claims more than there is
    assert Reader(table(bad=b"?")).table() is None  # unknown type
    deep = longstr("x")
    for _ in range(10):
        deep = b"F" + table(d=deep)
    assert Reader(table(deep=deep)).table() is None  # nested too deep
    assert content_header(b"\x00") is None


def test_broker_refusal_answers_the_request_and_is_counted() -> None:
    s = client_session()
    s.feed(E, method(1, 50, 10, b"\x00\x00" + shortstr("missing") + b"\x01" + table()), 1)  # passive declare
    close = method(1, 20, 40, struct.pack("!H", 404) + shortstr("NOT_FOUND - no queue 'missing'") + struct.pack("!HH", 50, 10))
    [t] = s.feed(I, close, 2)
    assert t.request.name == "queue.declare" and t.request.queue == "missing"
    assert t.response.reply_code == 404 and s.broker_errors == 1
    d = describe(t, FACTS)
    assert d.error and d.attributes["error.type"] == "NOT_FOUND" and d.name == "queue.declare"
    assert d.status_message == "NOT_FOUND - no queue 'missing'"


def test_nowait_requests_expect_nothing() -> None:
    s = client_session()
    assert s.feed(E, method(1, 50, 10, b"\x00\x00" + shortstr("q") + b"\x10" + table()), 1) == []
    assert s.pending_requests == 0


def test_lost_framing_finishes_the_message_and_finds_the_next_frame() -> None:
    s = client_session()
    big = publish(1, "ex", "k", b"z" * 50_000)
    out = s.feed(E, big[:1000], 1, len(big) + 5)  # the rest and 5 more bytes were not captured
    [t] = out
    assert t.request.body_size == 50_000 and t.request.truncated and s.capture_gaps == 1
    [t] = s.feed(E, publish(1, "ex", "next", b"ok"), 2)
    assert t.request.routing_key == "next" and not t.request.truncated


def test_hunting_refuses_body_bytes_that_look_like_a_frame() -> None:
    s = client_session()
    s.feed(E, b"\x00" * 3, 1, 100)  # lost
    assert s.feed(E, b"\x03\x00\x07\x00\x00\x00\x05hello", 2) == []  # a body nobody waits for
    [t] = s.feed(E, publish(3, "", "q", b"m"), 3)
    assert t.request.channel == 3


def test_server_side_sees_the_same_commands() -> None:
    s = AmqpSession()
    s.feed(I, PROTOCOL_HEADER + publish(1, "ex", "k", b"abc"), 1)
    assert s.role is Role.SERVER
    [t] = s.feed(I, publish(1, "ex", "k", b"abc"), 2)
    assert t.role is Role.SERVER and describe(t, FACTS) is None


def test_detection() -> None:
    assert detect(PROTOCOL_HEADER, E) is Detection.YES
    start = method(0, 10, 10, b"\x00\x09" + table() + b"\x00\x00\x00\x05PLAIN\x00\x00\x00\x05en_US")
    assert detect(start, I) is Detection.YES
    assert detect(method(1, 60, 80, struct.pack("!Q", 1) + b"\x00"), E) is Detection.MAYBE
    for other in (b"GET / HTTP/1.1\r\n\r\n", b"*1\r\n$4\r\nPING\r\n", b"INFO {}\r\n", b"set k 0 0 1\r\nx\r\n",
                  b"\x01\x00\x00\x00\x00\x00\x04\x00\x0a\x00\x0aX", b""):
        assert detect(other, E) is Detection.NO, other


# -- describe() ------------------------------------------------------------------------------


def test_describe_publish() -> None:
    s = client_session()
    [t] = s.feed(E, publish(1, "orders", "order.created", b"{}", table(traceparent=longstr(TP), tracestate=longstr("a=1"))), 1)
    d = describe(t, FACTS)
    assert d.name == "publish orders" and d.kind == "producer" and d.traceparent == TP and d.tracestate == "a=1"
    assert d.attributes["messaging.destination.name"] == "orders"
    assert d.attributes["messaging.rabbitmq.destination.routing_key"] == "order.created"
    assert d.attributes["messaging.message.body.size"] == 2 and d.attributes["messaging.operation.type"] == "send"
    assert d.metric_name == "messaging.client.operation.duration" and d.metric_kind == "duration"
    assert ("messaging.destination.name", "orders") in d.metric_attributes
    assert all(k != "messaging.rabbitmq.destination.routing_key" for k, _ in d.metric_attributes)


def test_describe_deliver_and_default_exchange() -> None:
    s = client_session()
    [t] = s.feed(I, deliver(1, 42, "", "jobs", b"body"), 1)
    d = describe(t, FACTS)
    assert d.name == "receive amq.default" and d.kind == "consumer" and d.metric_kind == "count"
    assert d.metric_name == "messaging.client.consumed.messages"
    assert d.attributes["messaging.rabbitmq.message.delivery_tag"] == 42
    assert d.attributes["messaging.destination.name"] == ""


def test_describe_get_and_settle() -> None:
    s = client_session()
    s.feed(E, method(1, 60, 70, b"\x00\x00" + shortstr("jobs") + b"\x00"), 1)
    get_ok = method(1, 60, 71, struct.pack("!Q", 7) + b"\x00" + shortstr("ex") + shortstr("jobs") + struct.pack("!I", 0))
    [t] = s.feed(I, get_ok + header(1, 3) + frame(3, 1, b"abc"), 2)
    d = describe(t, FACTS)
    assert d.kind == "client" and d.name == "receive ex" and d.attributes["messaging.message.body.size"] == 3
    s.feed(E, method(1, 60, 70, b"\x00\x00" + shortstr("jobs") + b"\x00"), 3)
    [t] = s.feed(I, method(1, 60, 72, shortstr("")), 4)
    assert describe(t, FACTS).attributes["messaging.batch.message_count"] == 0
    [t] = s.feed(E, method(1, 60, 120, struct.pack("!Q", 7) + b"\x00"), 5)
    d = describe(t, FACTS)
    assert d.name == "nack" and d.attributes["messaging.operation.type"] == "settle" and not d.error


def test_describe_ignores_successful_management() -> None:
    s = client_session()
    s.feed(E, method(1, 20, 10, shortstr("")), 1)
    [t] = s.feed(I, method(1, 20, 11, struct.pack("!I", 0)), 2)
    assert describe(t, FACTS) is None


def test_plugin_shape() -> None:
    assert PROTOCOL.name == "amqp" and PROTOCOL.default_ports == (5672,)
    assert PROTOCOL.new_session(max_buffer=4096, kernel_role=Role.CLIENT, transport="tcp").role is Role.CLIENT


# -- fuzzing ---------------------------------------------------------------------------------

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
parts = st.sampled_from([PROTOCOL_HEADER, publish(1, "e", "k", b"abc"), deliver(2, 1, "e", "k", b"x"),
                         method(1, 50, 10, b"\x00\x00\x01q\x00" + table()), header(1, 10), frame(3, 1, b"12345"),
                         frame(8, 0, b""), b"\xce", b"\x01\x00\x01", struct.pack("!I", 10**9)])


@FUZZ
@given(st.lists(st.tuples(st.sampled_from(list(Direction)),
                          st.one_of(st.binary(max_size=200), st.lists(parts, max_size=6).map(b"".join)),
                          st.one_of(st.none(), st.integers(0, 3000))), max_size=20),
       st.sampled_from([Role.UNKNOWN, Role.CLIENT, Role.SERVER]))
def test_arbitrary_bytes_never_raise(pieces, role) -> None:
    s = AmqpSession(max_buffer=512, max_pending=8, kernel_role=role)
    for i, (direction, data, extra) in enumerate(pieces):
        for t in s.feed(direction, data, i, None if extra is None else len(data) + extra):
            describe(t, FACTS)
        assert s.internal_errors == 0 and s.buffered_bytes <= 1024 + 14 and s.pending_requests <= 8 * 2048
    for t in s.close(len(pieces)):
        describe(t, FACTS)
    assert s.internal_errors == 0


@FUZZ
@given(st.binary(max_size=600))
def test_tables_and_detect_never_raise(data: bytes) -> None:
    Reader(data).table()
    content_header(data)
    assert isinstance(detect(data, E), Detection)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.large_base_example])
@given(st.sampled_from(fixture_names("amqp")), st.randoms(use_true_random=False))
def test_mutated_fixtures_stay_bounded(name, rnd) -> None:
    f = load_fixture("amqp", name)
    s = AmqpSession(max_buffer=512, kernel_role=Role.CLIENT)
    dirs = {"c2s": E, "s2c": I}
    for i, (side, data) in enumerate(f.chunks):
        data = bytearray(data[:2000])
        if data and rnd.random() < 0.3:
            data[rnd.randrange(len(data))] = rnd.randrange(256)
        s.feed(dirs[side], bytes(data), i, None if rnd.random() < 0.7 else len(data) + rnd.randrange(100))
        assert s.internal_errors == 0 and s.buffered_bytes <= 1100
    s.close(len(f.chunks))
    assert s.internal_errors == 0
