"""MemcachedSession on hand-written exchanges: noreply and quiet pipelines, truncated captures,
over-long lines, mid-stream attach; and describe(), the span mapping."""

from __future__ import annotations

from receiver.protocols.api import ConnectionFacts
from receiver.protocols.base import Direction, Role
from receiver.protocols.memcached import PROTOCOL, MemcachedSession, describe

E = Direction.EGRESS
I = Direction.INGRESS  # noqa: E741
FACTS = ConnectionFacts(Role.CLIENT, "tcp", "127.0.0.1", 40000, "10.0.0.5", 11211, "10.0.0.9", 11211)


def run(*pieces, session=None, close=True):
    s = session or MemcachedSession()
    out = []
    for i, (direction, data, *total) in enumerate(pieces, start=1):
        out += s.feed(direction, data, i, total[0] if total else None)
    if close:
        out += s.close(len(pieces) + 1)
    return s, out


def test_noreply_is_emitted_at_once_and_keeps_the_stream_in_step() -> None:
    s = MemcachedSession()
    [t] = s.feed(E, b"set a 0 0 3 noreply\r\nabc\r\n", 1)
    assert t.response is None and t.request.noreply and (t.start_ns, t.end_ns) == (1, 1)
    assert s.feed(E, b"get a\r\nset b 0 0 1 noreply\r\nx\r\n", 2) == []  # waits behind the get
    out = s.feed(I, b"VALUE a 0 3\r\nabc\r\nEND\r\n", 3)
    assert [(t.request.command, t.response and t.response.status) for t in out] == [("get", "END"), ("set", None)]
    assert s.unmatched_replies == 0 and s.parse_errors == 0


def test_data_block_skipped_across_a_truncated_capture() -> None:
    block = b"x" * 10_000
    s, out = run(
        (E, b"set big 0 0 10000\r\n" + block[:4000], 10_019 + 2),  # 4019 captured of 10021 sent
        (I, b"STORED\r\n"),
        (E, b"get big\r\n"),
        (I, b"VALUE big 0 10000\r\n" + block[:100], 10_000 + 19 + 2 + 5),
        (I, b"END\r\n"[:0]),
    )
    assert [(t.request.command, t.response.status, t.request_size) for t in out[:1]] == [("set", "STORED", 10_021)]
    # The END line was inside the missing bytes: the retrieval is cut short but still answers.
    get = out[1]
    assert get.response.status == "END" and get.response.hits == 1 and get.response.truncated
    assert s.capture_gaps == 1 and s.parse_errors == 0


def test_the_next_write_is_found_after_a_gap() -> None:
    s, out = run((E, b"get a\r\nget b\r\n"), (I, b"VALUE a 0 3\r\nab", 100), (I, b"END\r\n"))
    assert [t.response.status if t.response else None for t in out] == ["END", "END"]
    assert out[0].response.truncated and out[1].response.hits == 0 and s.capture_gaps == 1


def test_quiet_pipeline_with_opaque_tokens() -> None:
    s, out = run(
        (E, b"mg a v q O1\r\nmg b v q O2\r\nmg c v q O3\r\nmn\r\n"),
        (I, b"VA 1 O2\r\nx\r\nMN\r\n"),
    )
    got = [(t.request.opaque, t.response.status, t.response.implied, t.response.hits) for t in out]
    assert got == [("1", "EN", True, 0), ("2", "VA", False, 1), ("3", "EN", True, 0), (None, "MN", False, None)]


def test_quiet_commands_left_at_close_get_their_implied_reply() -> None:
    _, out = run((E, b"ms a 1 q\r\nx\r\n"))
    [t] = out
    assert t.response.status == "HD" and t.response.implied


def test_an_over_long_line_is_cut_and_skipped() -> None:
    s = MemcachedSession(max_buffer=256)
    keys = b" ".join(b"key%d" % i for i in range(200))
    out = s.feed(E, b"get " + keys, 1)  # no line end yet: more than may be carried
    out += s.feed(E, b"\r\n", 2)
    out += s.feed(I, b"END\r\n", 3)
    [t] = out
    assert t.request.truncated and 0 < t.request.key_count < 200 and t.response.status == "END"
    assert s.buffered_bytes == 0 and s.parse_errors == 0


def test_attached_mid_stream_hunts_for_a_line_that_parses() -> None:
    s = MemcachedSession(kernel_role=Role.CLIENT)
    out = s.feed(I, b"garbage-from-a-value\r\nSTORED\r\n", 1)
    assert out == [] and s.unmatched_replies == 1
    s.feed(E, b"delete k\r\n", 2)
    [t] = s.feed(I, b"DELETED\r\n", 3)
    assert t.response.status == "DELETED"


def test_binary_protocol_is_not_parsed() -> None:
    s, out = run((E, bytes([0x80, 0x00, 0x00, 0x01]) + b"\x00" * 20 + b"\r\n"), (I, b"\x81" + b"\x00" * 23))
    assert out == [] or all(t.request.command == "unknown" for t in out)


def test_plugin_shape() -> None:
    assert PROTOCOL.name == "memcached" and PROTOCOL.default_ports == (11211,)
    session = PROTOCOL.new_session(max_buffer=4096, kernel_role=Role.CLIENT, transport="tcp")
    assert session.role is Role.CLIENT


# -- describe() ------------------------------------------------------------------------------


def one(*pieces):
    _, out = run(*pieces, session=MemcachedSession(kernel_role=Role.CLIENT))
    return out


def test_describe_multi_key_get() -> None:
    [t] = one((E, b"get a b c\r\n"), (I, b"VALUE a 0 1\r\nx\r\nEND\r\n"))
    d = describe(t, FACTS)
    assert d.name == "get" and d.kind == "client" and not d.error
    assert d.attributes == {
        "db.system.name": "memcached", "db.operation.name": "get", "db.operation.batch.size": 3,
        "db.memcached.hits": 1, "db.memcached.misses": 2, "network.transport": "tcp",
        "server.address": "10.0.0.5", "server.port": 11211, "network.peer.address": "10.0.0.9",
        "network.peer.port": 11211,
    }
    assert d.metric_name == "db.client.operation.duration"
    assert d.metric_attributes == (
        ("db.operation.name", "get"), ("db.system.name", "memcached"), ("server.address", "10.0.0.5"),
        ("server.port", 11211),
    )


def test_describe_errors() -> None:
    [t] = one((E, b"incr k 1\r\n"), (I, b"CLIENT_ERROR cannot increment or decrement non-numeric value\r\n"))
    d = describe(t, FACTS)
    assert d.error and d.attributes["error.type"] == "CLIENT_ERROR"
    assert d.status_message == "cannot increment or decrement non-numeric value"
    assert ("error.type", "CLIENT_ERROR") in d.metric_attributes
    [t] = one((E, b"bogus\r\n"), (I, b"ERROR\r\n"))
    assert describe(t, FACTS).attributes["error.type"] == "ERROR"


def test_describe_noreply_and_unanswered() -> None:
    [t] = one((E, b"set a 0 0 1 noreply\r\nx\r\n"))
    d = describe(t, FACTS)
    assert not d.error and d.attributes["db.memcached.noreply"] is True
    [t] = one((E, b"get a\r\n"))  # the connection closed first
    d = describe(t, FACTS)
    assert d.error and d.attributes["error.type"] == "_OTHER"


def test_describe_server_side_is_not_a_span() -> None:
    s = MemcachedSession(kernel_role=Role.SERVER)
    s.feed(I, b"version\r\n", 1)
    [t] = s.feed(E, b"VERSION 1.6.18\r\n", 2)
    assert describe(t, FACTS) is None


def test_describe_unix_socket() -> None:
    [t] = one((E, b"version\r\n"), (I, b"VERSION 1\r\n"))
    facts = ConnectionFacts(Role.CLIENT, "unix", "", 0, "", 0)
    d = describe(t, facts)
    assert d.attributes["network.transport"] == "unix" and "server.address" not in d.attributes
