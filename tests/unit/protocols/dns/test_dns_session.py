"""DNS parsing and pairing on hand-built messages: name compression (and its abuse), timeouts,
responses without a question, oversized TCP messages; describe(), the span mapping; fuzzing."""

from __future__ import annotations

import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from receiver.protocols.api import ConnectionFacts, Detection
from receiver.protocols.base import Direction, Role
from receiver.protocols.dns import PROTOCOL, DnsSession, describe, detect
from receiver.protocols.dns.parse import parse_message, read_name

E = Direction.EGRESS
I = Direction.INGRESS  # noqa: E741
FACTS = ConnectionFacts(Role.CLIENT, "udp", "127.0.0.1", 40000, "127.0.0.53", 53)


def name(text: str) -> bytes:
    return b"".join(bytes([len(p)]) + p.encode() for p in text.split(".") if p) + b"\x00"


def message(ident: int, flags: int, question: bytes | None = None, an: int = 0, body: bytes = b"") -> bytes:
    qd = 1 if question is not None else 0
    return struct.pack("!HHHHHH", ident, flags, qd, an, 0, 0) + (question or b"") + body


def q(text: str, qtype: int = 1) -> bytes:
    return name(text) + struct.pack("!HH", qtype, 1)


QUERY, RESPONSE = 0x0100, 0x8180
A_RECORD = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 60, 4) + b"\x0a\x00\x00\x01"


def test_name_compression_is_followed() -> None:
    buf = message(1, RESPONSE, q("www.example.com"), 1, b"\x03api\xc0\x10" + b"\x00\x01\x00\x01")
    assert read_name(buf, 12) == ("www.example.com", 12 + 17)
    assert read_name(buf, 12 + 21) == ("api.example.com", 12 + 21 + 6)


def test_compression_loops_and_forward_pointers_are_refused() -> None:
    looping = struct.pack("!HHHHHH", 1, 0, 1, 0, 0, 0) + b"\xc0\x0c"  # points at itself
    assert read_name(looping, 12) is None
    forward = struct.pack("!HHHHHH", 1, 0, 1, 0, 0, 0) + b"\xc0\x0e\x01a\x00"
    assert read_name(forward, 12) is None
    long = struct.pack("!HHHHHH", 1, 0, 1, 0, 0, 0) + (b"\x3f" + b"a" * 63) * 5 + b"\x00"
    assert read_name(long, 12) is None  # over 255 bytes
    msg = parse_message(looping)
    assert msg is not None and msg.question is None


def test_non_printable_labels_are_escaped() -> None:
    buf = message(1, QUERY, b"\x03a.b\x02\x00z\x00" + b"\x00\x01\x00\x01")
    assert parse_message(buf).question.name == "a\\.b.\\000z"


def test_pairs_by_id_and_question_case_insensitively() -> None:
    s = DnsSession()
    s.feed(E, message(7, QUERY, q("A.test")), 1)
    s.feed(E, message(8, QUERY, q("b.test")), 2)
    assert s.feed(I, message(7, RESPONSE, q("a.test", 28)), 3) == []  # another type: not its answer
    [t] = s.feed(I, message(8, RESPONSE, q("b.test"), 1, A_RECORD), 4)
    assert t.request.id == 8 and t.response.answer_count == 1 and (t.start_ns, t.end_ns) == (2, 4)
    [t] = s.feed(I, message(7, RESPONSE | 3, q("a.test")), 5)
    assert t.response.rcode_name == "NXDOMAIN" and t.role is Role.CLIENT
    assert s.unmatched_responses == 1


def test_formerr_without_question_pairs_by_id() -> None:
    s = DnsSession()
    s.feed(E, message(9, QUERY, q("x.test")), 1)
    [t] = s.feed(I, message(9, RESPONSE | 1), 2)
    assert t.response.rcode_name == "FORMERR" and t.response.question is None


def test_unanswered_queries_expire_then_close() -> None:
    s = DnsSession(query_timeout_ns=1000)
    s.feed(E, message(1, QUERY, q("slow.test")), 100)
    s.feed(E, message(2, QUERY, q("later.test")), 900)
    [t] = s.feed(E, message(3, QUERY, q("third.test")), 1101)  # 1001 ns after the first
    assert t.request.id == 1 and t.response is None and s.expired_queries == 1
    assert s.feed(I, message(1, RESPONSE, q("slow.test")), 1200) == [] and s.unmatched_responses == 1
    out = s.close(1300)
    assert [t.request.id for t in out] == [2, 3] and all(t.response is None for t in out)


def test_a_timeout_lasts_as_long_as_the_client_waited() -> None:
    """The span of an unanswered query ends when the client gave up — at the timeout, or when
    it closed its socket — not when the query was written (that made timeouts 0 s lookups)."""
    s = DnsSession(query_timeout_ns=1000)
    s.feed(E, message(1, QUERY, q("slow.test")), 100)
    [t] = s.feed(E, message(2, QUERY, q("next.test")), 5000)  # noticed long after the timeout
    assert (t.start_ns, t.end_ns) == (100, 1100)
    [t] = s.close(5600)  # the client gave up on the second one and closed the socket
    assert (t.start_ns, t.end_ns) == (5000, 5600)


def test_pending_queries_are_bounded() -> None:
    s = DnsSession(max_pending=4)
    for i in range(10):
        s.feed(E, message(i, QUERY, q(f"n{i}.test")), i)
    assert s.pending_queries == 4 and s.dropped_queries == 6
    [t] = s.feed(I, message(9, RESPONSE, q("n9.test")), 20)
    assert t.request.id == 9


def test_truncated_udp_datagram_keeps_its_header_and_size() -> None:
    s = DnsSession()
    s.feed(E, message(5, QUERY, q("big.test", 16)), 1)
    response = message(5, RESPONSE, q("big.test", 16), 30, b"\x00" * 3000)
    [t] = s.feed(I, response[:40], 2, len(response))
    assert t.response.answer_count == 30 and t.response.truncated and t.response_size == len(response)


def test_server_side_queries() -> None:
    s = DnsSession(kernel_role=Role.SERVER)
    s.feed(I, message(4, QUERY, q("a.test")), 1)
    [t] = s.feed(E, message(4, RESPONSE, q("a.test"), 1, A_RECORD), 2)
    assert t.role is Role.SERVER
    d = describe(t, ConnectionFacts(Role.SERVER, "udp", "127.0.0.1", 53, "127.0.0.1", 40000))
    assert d.kind == "server" and d.metric_name is None and d.attributes["client.port"] == 40000


def test_tcp_message_larger_than_the_buffer_is_skipped_by_length() -> None:
    s = DnsSession(transport="tcp", max_buffer=512)
    query = message(6, QUERY, q("big.test", 16))
    s.feed(E, struct.pack("!H", len(query)) + query, 1)
    response = message(6, RESPONSE, q("big.test", 16), 40, b"\x01" * 6000)
    framed = struct.pack("!H", len(response)) + response
    out = []
    for i in range(0, len(framed), 1000):
        out += s.feed(I, framed[i : i + 1000], 2 + i)
    [t] = out
    assert t.response.answer_count == 40 and t.response_size == len(response) and s.buffered_bytes == 0


def test_tcp_resynchronises_on_the_next_plausible_write() -> None:
    s = DnsSession(transport="tcp")
    lost = message(1, QUERY, q("lost.test"))
    s.feed(E, b"\x00", 1, 2 + len(lost))  # the length prefix itself was cut
    assert s.capture_gaps == 1
    s.feed(E, b"garbage!" * 4, 2)  # not a DNS message: dropped
    query = message(2, QUERY, q("ok.test"))
    s.feed(E, struct.pack("!H", len(query)) + query, 3)
    response = message(2, RESPONSE, q("ok.test"))
    [t] = s.feed(I, struct.pack("!H", len(response)) + response, 4)
    assert t.request.id == 2 and s.parse_errors == 1


# -- detection and mapping -------------------------------------------------------------------


def test_detection() -> None:
    query = message(0x1234, QUERY, q("example.com"))
    assert detect(query, E) is Detection.YES
    assert detect(struct.pack("!H", len(query)) + query, E) is Detection.YES  # TCP framing
    assert detect(message(0x1234, RESPONSE, q("example.com"), 1, A_RECORD), I) is Detection.YES
    for other in (b"GET / HTTP/1.1\r\n\r\n", b"*1\r\n$4\r\nPING\r\n", b"set k 0 0 5\r\nhello\r\n",
                  b"INFO {}\r\n", b"AMQP\x00\x00\x09\x01", b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03", b""):
        assert detect(other, E) is Detection.NO, other


def test_describe_client_lookup() -> None:
    s = DnsSession()
    s.feed(E, message(1, QUERY, q("alpha.test", 28)), 1)
    [t] = s.feed(I, message(1, RESPONSE, q("alpha.test", 28), 1, A_RECORD), 2)
    d = describe(t, FACTS)
    assert d.name == "AAAA" and d.kind == "client" and not d.error
    assert d.attributes == {
        "dns.question.type": "AAAA", "dns.question.name": "alpha.test", "network.transport": "udp",
        "server.address": "127.0.0.53", "server.port": 53, "network.peer.address": "127.0.0.53",
        "network.peer.port": 53, "dns.response.code": "NOERROR", "dns.answer.count": 1,
    }
    assert d.metric_name == "dns.lookup.duration"
    assert d.metric_attributes == (("dns.question.name", "alpha.test"),)


def test_describe_errors_and_timeouts() -> None:
    s = DnsSession()
    s.feed(E, message(1, QUERY, q("nope.test")), 1)
    s.feed(E, message(2, QUERY, q("slow.test")), 2)
    [t] = s.feed(I, message(1, RESPONSE | 3, q("nope.test")), 3)
    d = describe(t, FACTS)
    assert d.error and d.attributes["error.type"] == "NXDOMAIN"
    assert d.metric_attributes == (("dns.question.name", "nope.test"), ("error.type", "NXDOMAIN"))
    [t] = s.close(4)
    d = describe(t, FACTS)
    assert d.error and d.attributes["error.type"] == "timeout" and d.name == "A"


def test_plugin_shape() -> None:
    assert PROTOCOL.transports == frozenset({"udp", "tcp"}) and PROTOCOL.default_ports == (53,)
    assert PROTOCOL.new_session(max_buffer=4096, kernel_role=Role.CLIENT, transport="tcp").transport == "tcp"


# -- fuzzing ---------------------------------------------------------------------------------

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
parts = st.sampled_from([message(1, QUERY, q("a.test")), message(1, RESPONSE, q("a.test"), 1, A_RECORD),
                         b"\xc0\x0c", b"\x00\x28", b"\x3f", b"\x00" * 12, b"\xff\xff"])


@FUZZ
@given(st.lists(st.tuples(st.sampled_from(list(Direction)),
                          st.one_of(st.binary(max_size=200), st.lists(parts, max_size=6).map(b"".join)),
                          st.one_of(st.none(), st.integers(0, 3000))), max_size=20),
       st.sampled_from(["udp", "tcp"]))
def test_arbitrary_bytes_never_raise(pieces, transport) -> None:
    s = DnsSession(transport=transport, max_buffer=512, max_pending=8, query_timeout_ns=5)
    for i, (direction, data, extra) in enumerate(pieces):
        for t in s.feed(direction, data, i, None if extra is None else len(data) + extra):
            describe(t, FACTS)
        assert s.internal_errors == 0 and s.buffered_bytes <= 1024 and s.pending_queries <= 8
    for t in s.close(len(pieces)):
        describe(t, FACTS)
    assert s.internal_errors == 0


@FUZZ
@given(st.binary(max_size=600))
def test_parse_and_detect_never_raise(data: bytes) -> None:
    parse_message(data)
    assert isinstance(detect(data, E), Detection)
