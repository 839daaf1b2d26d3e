"""The NATS plug-in on hand-written exchanges (request–reply, timeouts, headers, errors, lost
framing), its span mapping, and fuzzing."""

from __future__ import annotations

from ebpf_receiver_nats import PROTOCOL, NatsError, NatsSession, describe, detect
from ebpf_receiver_nats.types import NatsMessage
from ebpf_receiver_nats.wire import parse_headers, parse_line
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from receiver.protocols.api import ConnectionFacts, Detection
from receiver.protocols.base import Direction, Role

E = Direction.EGRESS
I = Direction.INGRESS  # noqa: E741
FACTS = ConnectionFacts(Role.CLIENT, "tcp", "127.0.0.1", 40000, "127.0.0.1", 4222)
TP = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def client() -> NatsSession:
    s = NatsSession(kernel_role=Role.CLIENT)
    s.feed(I, b'INFO {"server_id":"x","headers":true}\r\n', 0)
    s.feed(E, b'CONNECT {"verbose":false,"headers":true}\r\n', 0)
    return s


def hblock(**headers: str) -> bytes:
    return b"NATS/1.0\r\n" + b"".join(f"{k}: {v}\r\n".encode() for k, v in headers.items()) + b"\r\n"


def test_request_reply_pairs_on_the_inbox() -> None:
    s = client()
    assert s.feed(E, b"SUB _INBOX.abc.* 1\r\nPUB svc.time _INBOX.abc.1 0\r\n\r\n", 10) == []
    [t] = s.feed(I, b"MSG _INBOX.abc.1 1 4\r\nnoon\r\n", 25)
    assert (t.request.subject, t.response.subject, t.start_ns, t.end_ns) == ("svc.time", "_INBOX.abc.1", 10, 25)
    d = describe(t, FACTS)
    assert d.kind == "client" and d.name == "request svc.time" and not d.error


def test_no_responders_is_an_error() -> None:
    s = client()
    s.feed(E, b"PUB svc.none _INBOX.z.1 2\r\nhi\r\n", 1)
    block = b"NATS/1.0 503\r\n\r\n"
    [t] = s.feed(I, b"HMSG _INBOX.z.1 1 %d %d\r\n%s\r\n" % (len(block), len(block), block), 2)
    assert t.response.status == 503
    d = describe(t, FACTS)
    assert d.error and d.attributes["error.type"] == "no_responders"


def test_unanswered_request_becomes_a_send_after_the_timeout() -> None:
    s = NatsSession(kernel_role=Role.CLIENT, reply_timeout_ns=100)
    s.feed(E, b"PUB svc.slow _INBOX.q.1 1\r\nx\r\n", 1)
    [t] = s.feed(E, b"PING\r\n", 200)
    assert t.response is None and s.expired_requests == 1
    d = describe(t, FACTS)
    assert d.kind == "producer" and d.name == "publish svc.slow"


def test_headers_give_the_trace_context() -> None:
    s = client()
    block = hblock(traceparent=TP, tracestate="a=b", Other="x")
    payload = b"data"
    line = b"HPUB orders %d %d\r\n" % (len(block), len(block) + len(payload))
    [t] = s.feed(E, line + block + payload + b"\r\n", 1)
    assert t.request.traceparent == TP and t.request.payload_size == 4 and t.request.header_size == len(block)
    d = describe(t, FACTS)
    assert d.traceparent == TP and d.tracestate == "a=b" and d.kind == "producer"
    assert d.attributes["messaging.message.body.size"] == 4
    assert d.metric_name == "messaging.client.operation.duration"


def test_deliveries_are_consumer_spans_and_inbox_names_are_templated() -> None:
    s = client()
    [t] = s.feed(I, b"MSG orders.created 7 reply.to 3\r\nabc\r\n", 1)
    d = describe(t, FACTS)
    assert d.kind == "consumer" and d.name == "receive orders.created" and d.metric_kind == "count"
    assert d.metric_name == "messaging.client.consumed.messages"
    [t] = s.feed(E, b"PUB _INBOX.qq.9 2\r\nok\r\n", 2)
    d = describe(t, FACTS)
    assert d.name == "publish _INBOX" and d.attributes["messaging.destination.temporary"] is True
    assert ("messaging.destination.name", "_INBOX") in d.metric_attributes


def test_errors_are_counted_and_mapped() -> None:
    s = client()
    [t] = s.feed(I, b"-ERR 'Permissions Violation for Publish to \"secret.subject\"'\r\n", 1)
    assert isinstance(t.request, NatsError) and s.server_errors == 1
    d = describe(t, FACTS)
    assert d.error and d.attributes["error.type"] == "permissions_violation"
    assert NatsError("Maximum Payload Violation", 0).code == "maximum_payload_violation"
    assert NatsError("Unknown Protocol Operation", 0).code == "unknown_protocol_operation"


def test_control_lines_are_counted_not_transactions() -> None:
    s = client()
    assert s.feed(E, b"PING\r\nSUB a 1\r\nUNSUB 1\r\n", 1) == []
    assert s.feed(I, b"PONG\r\n+OK\r\n", 2) == []
    assert (s.pings, s.pongs, s.oks, s.subscriptions) == (1, 1, 1, 1)


def test_payload_skipped_across_a_truncated_capture_and_sync_found_again() -> None:
    s = client()
    big = b"PUB big 100000\r\n" + b"z" * 4000
    [t] = s.feed(E, big, 1, 16 + 100_002)
    assert t.request.payload_size == 100_000 and t.request.truncated and s.capture_gaps == 0
    s.feed(E, b"PUB x 5\r\nab", 2, 11 + 5)  # payload and the next line partly lost
    [t] = s.feed(E, b"PUB after 1\r\nq\r\n", 3)
    assert t.request.subject == "after" and s.parse_errors == 0


def test_lowercase_operations_are_accepted() -> None:
    s = client()
    [t] = s.feed(E, b"pub lower 1\r\nx\r\n", 1)
    assert t.request.subject == "lower"


def test_server_side_makes_no_spans() -> None:
    s = NatsSession(kernel_role=Role.SERVER)
    [t] = s.feed(I, b"PUB a 1\r\nx\r\n", 1)
    assert t.role is Role.SERVER and describe(t, FACTS) is None


def test_wire_helpers() -> None:
    assert parse_line(b"PUB a b 5").reply_to == "b"
    assert parse_line(b"HPUB a 10 5") is None  # header bigger than the total
    assert parse_line(b"MSG a 1 99999999999999") is None
    assert parse_line(b"INFO nojson") is None
    assert parse_headers(b"NATS/1.0 503 No Responders\r\n\r\n") == (503, {})
    assert parse_headers(b"NATS/1.0\r\ntraceparent: 00-aa")[1] == {}  # cut short: not read


def test_detection() -> None:
    assert detect(b'INFO {"server_id":"x"}\r\n', I) is Detection.YES
    assert detect(b'CONNECT {"verbose":false}\r\n', E) is Detection.YES
    assert detect(b"PUB orders 5\r\nhello\r\n", E) is Detection.MAYBE
    for other in (b"*1\r\n$4\r\nPING\r\n", b"PING\r\n", b"+OK\r\n", b"INFO\r\n", b"INFO server\r\n",
                  b"GET / HTTP/1.1\r\n\r\n", b"set k 0 0 1\r\nx\r\n", b"AMQP\x00\x00\x09\x01", b""):
        assert detect(other, E) is Detection.NO, other


def test_plugin_shape() -> None:
    assert PROTOCOL.name == "nats" and PROTOCOL.default_ports == (4222,) and PROTOCOL.api_version == 1
    assert PROTOCOL.new_session(max_buffer=4096, kernel_role=Role.CLIENT, transport="tcp").role is Role.CLIENT


FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
tokens = st.sampled_from([b"PUB ", b"HPUB ", b"MSG ", b"HMSG ", b"SUB ", b"INFO {", b"CONNECT {", b"PING", b"PONG",
                          b"+OK", b"-ERR 'x'", b"a ", b"_INBOX.1 ", b"5", b"12 ", b"99999999", b"\r\n", b"\n",
                          b"NATS/1.0 503", b"traceparent: ", b"hello", b" "])


@FUZZ
@given(st.lists(st.tuples(st.sampled_from(list(Direction)),
                          st.one_of(st.binary(max_size=200), st.lists(tokens, max_size=30).map(b"".join)),
                          st.one_of(st.none(), st.integers(0, 3000))), max_size=25),
       st.sampled_from([Role.UNKNOWN, Role.CLIENT, Role.SERVER]))
def test_arbitrary_bytes_never_raise(pieces, role) -> None:
    s = NatsSession(max_buffer=512, max_pending=8, kernel_role=role, reply_timeout_ns=7)
    for i, (direction, data, extra) in enumerate(pieces):
        for t in s.feed(direction, data, i, None if extra is None else len(data) + extra):
            assert isinstance(t.request, NatsMessage | NatsError)
            describe(t, FACTS)
        assert s.internal_errors == 0 and s.buffered_bytes <= 2 * s.max_buffer + 8192 and s.pending_requests <= 8
    for t in s.close(len(pieces)):
        describe(t, FACTS)
    assert s.internal_errors == 0


@FUZZ
@given(st.binary(max_size=600))
def test_detect_and_wire_never_raise(data: bytes) -> None:
    parse_line(data)
    parse_headers(data)
    assert isinstance(detect(data, E), Detection)
