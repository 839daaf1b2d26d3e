"""Hand-written edge cases for RedisSession: every RESP type, pairing rules, connection state,
redaction, losses, bounds.  Timestamps are the index of the feed (1, 2, ...)."""

from __future__ import annotations

import pytest
from redis_support import E, I, array, bulk, command, push, run

from receiver.protocols.base import Role
from receiver.protocols.redis import RedisRequest, RedisResponse, RedisSession, RespType

GET = command("GET", "k")


def one(*pieces: tuple, close: bool = False):
    session, out = run(*pieces, close=close)
    assert len(out) == 1, out
    return session, out[0]


# -- RESP2 types -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "kind", "count"),
    [
        (b"+OK\r\n", RespType.SIMPLE_STRING, None),
        (b"-ERR boom\r\n", RespType.ERROR, None),
        (b":42\r\n", RespType.INTEGER, None),
        (b":-7\r\n", RespType.INTEGER, None),
        (b"$5\r\nhello\r\n", RespType.BULK_STRING, None),
        (b"$0\r\n\r\n", RespType.BULK_STRING, None),
        (b"$-1\r\n", RespType.NULL, None),
        (b"*-1\r\n", RespType.NULL, None),
        (b"*0\r\n", RespType.ARRAY, 0),
        (b"*2\r\n$1\r\na\r\n:1\r\n", RespType.ARRAY, 2),
        (b"*2\r\n*2\r\n:1\r\n:2\r\n*1\r\n*1\r\n$-1\r\n", RespType.ARRAY, 2),  # nested
        (b"*3\r\n$-1\r\n*-1\r\n+x\r\n", RespType.ARRAY, 3),
    ],
)
def test_resp2_reply_types(reply: bytes, kind: RespType, count: int | None) -> None:
    session, t = one((E, GET), (I, reply))
    assert t.response.kind is kind
    assert t.response.element_count == count
    assert t.response.wire_size == len(reply) == t.response_size
    assert t.response.protocol_version == 2
    assert session.parse_errors == 0


def test_status_and_error_text() -> None:
    _, out = run(
        (E, GET + GET + GET + GET),
        (I, b"+OK\r\n-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"),
        (I, b"-ERR unknown command 'FOO', with args beginning with: 'hunter2' \r\n-oops lowercase\r\n"),
    )
    ok, wrongtype, unknown, lower = (t.response for t in out)
    assert (ok.status, ok.error_prefix, ok.is_error) == ("OK", None, False)
    assert (wrongtype.error_prefix, wrongtype.error_message) == (
        "WRONGTYPE",
        "Operation against a key holding the wrong kind of value",
    )
    assert wrongtype.is_error
    assert (unknown.error_prefix, unknown.error_message) == ("ERR", "unknown command 'FOO'")
    assert "hunter2" not in repr(out)
    assert (lower.error_prefix, lower.error_message) == ("", "oops lowercase")


# -- RESP3 types -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "kind", "count"),
    [
        (b"_\r\n", RespType.NULL, None),
        (b"#t\r\n", RespType.BOOLEAN, None),
        (b"#f\r\n", RespType.BOOLEAN, None),
        (b",3.14\r\n", RespType.DOUBLE, None),
        (b",-1.5e10\r\n", RespType.DOUBLE, None),
        (b",inf\r\n", RespType.DOUBLE, None),
        (b",-inf\r\n", RespType.DOUBLE, None),
        (b",nan\r\n", RespType.DOUBLE, None),
        (b"(3492890328409238509324850943850943825024385\r\n", RespType.BIG_NUMBER, None),
        (b"=15\r\ntxt:Some string\r\n", RespType.VERBATIM_STRING, None),
        (b"%2\r\n+a\r\n:1\r\n+b\r\n%1\r\n$1\r\nx\r\n~1\r\n#t\r\n", RespType.MAP, 2),
        (b"~3\r\n+a\r\n+b\r\n,1.5\r\n", RespType.SET, 3),
        (b"%0\r\n", RespType.MAP, 0),
    ],
)
def test_resp3_reply_types(reply: bytes, kind: RespType, count: int | None) -> None:
    session, t = one((E, GET), (I, reply))
    assert t.response.kind is kind
    assert t.response.element_count == count
    assert t.response.wire_size == len(reply)
    assert t.response.protocol_version == 3  # a RESP3-only type was seen
    assert session.protocol_version == 3
    assert session.parse_errors == 0


def test_blob_error() -> None:
    _, t = one((E, GET), (I, b"!21\r\nSYNTAX invalid syntax\r\n"))
    r = t.response
    assert (r.kind, r.error_prefix, r.error_message, r.is_error) == (
        RespType.BLOB_ERROR,
        "SYNTAX",
        "invalid syntax",
        True,
    )


def test_attribute_precedes_a_reply_and_is_not_one() -> None:
    attr = b"|1\r\n+key-popularity\r\n%2\r\n$1\r\na\r\n,0.1923\r\n$1\r\nb\r\n,0.0012\r\n"
    session, out = run(
        (E, GET + GET),
        (I, attr + b"*2\r\n:2039123\r\n:9543892\r\n"),
        (I, b"*2\r\n|1\r\n+ttl\r\n:3600\r\n:1\r\n:2\r\n"),  # an attribute before an element
    )
    first, second = (t.response for t in out)
    assert (first.kind, first.element_count, first.had_attributes) == (RespType.ARRAY, 2, True)
    assert first.wire_size == len(attr) + len(b"*2\r\n:2039123\r\n:9543892\r\n")
    assert (second.kind, second.element_count, second.had_attributes) == (RespType.ARRAY, 2, True)
    assert session.unmatched_replies == 0


def test_push_is_not_a_reply() -> None:
    session, out = run(
        (E, GET),
        (I, push(bulk("invalidate"), array(bulk("k")))),
        (I, b"$1\r\nv\r\n"),
    )
    assert [t.response.kind for t in out] == [RespType.BULK_STRING]
    assert session.push_messages == 1


def test_hello_3_negotiation_and_reset() -> None:
    hello_reply = b"%2\r\n$6\r\nserver\r\n$5\r\nredis\r\n$5\r\nproto\r\n:3\r\n"
    session, out = run(
        (E, command("HELLO", "3", "AUTH", "default", "pa55word", "SETNAME", "app")),
        (I, hello_reply),
        (E, command("SET", "k", "v")),
        (I, b"+OK\r\n"),
        (E, command("RESET")),
        (I, b"+RESET\r\n"),
        (E, GET),
        (I, b"$-1\r\n"),
    )
    hello, set_, reset, get = out
    assert hello.request == RedisRequest("HELLO", None, 6, None, False, hello.request_size)
    assert "pa55word" not in repr(out)
    assert hello.response.kind is RespType.MAP and hello.response.protocol_version == 3
    assert set_.response.protocol_version == 3
    assert reset.response.status == "RESET"
    assert get.response.protocol_version == 2
    assert session.protocol_version == 2


def test_hello_refused_keeps_resp2() -> None:
    session, out = run(
        (E, command("HELLO", "4")),
        (I, b"-NOPROTO unsupported protocol version\r\n"),
        (E, GET),
        (I, b"$1\r\nv\r\n"),
    )
    assert out[0].response.error_prefix == "NOPROTO"
    assert out[1].response.protocol_version == 2


# -- requests: names, keys, redaction --------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "name", "key"),
    [
        (("get", "k"), "GET", "k"),
        (("SET", "user:1", "secret-value", "EX", "10"), "SET", "user:1"),
        (("CLIENT", "SETNAME", "my-conn"), "CLIENT SETNAME", None),
        (("config", "get", "maxmemory"), "CONFIG GET", None),
        (("CONFIG", "SET", "requirepass", "s3cret"), "CONFIG SET", None),
        (("CONFIG", "NOPE", "x"), "CONFIG", None),
        (("OBJECT", "ENCODING", "k"), "OBJECT ENCODING", "k"),
        (("XGROUP", "CREATE", "stream", "grp", "$"), "XGROUP CREATE", "stream"),
        (("MEMORY", "USAGE", "k"), "MEMORY USAGE", "k"),
        (("EVAL", "return redis.call('get', KEYS[1])", "1", "k1", "argv-secret"), "EVAL", "k1"),
        (("EVAL", "return 1", "0", "not-a-key"), "EVAL", None),
        (("EVALSHA", "abc", "2", "k1", "k2"), "EVALSHA", "k1"),
        (("FCALL", "fn", "1", "k1"), "FCALL", "k1"),
        (("XREAD", "COUNT", "2", "STREAMS", "s1", "s2", "0", "0"), "XREAD", "s1"),
        (("XREADGROUP", "GROUP", "g", "c", "COUNT", "1", "NOACK", "STREAMS", "s1", ">"), "XREADGROUP", "s1"),
        (("BITOP", "AND", "dest", "a", "b"), "BITOP", "dest"),
        (("MIGRATE", "host", "6379", "k", "0", "5000", "AUTH", "pw"), "MIGRATE", "k"),
        (("ZUNIONSTORE", "dest", "2", "a", "b"), "ZUNIONSTORE", "dest"),
        (("ZUNION", "2", "a", "b"), "ZUNION", "a"),
        (("LMPOP", "2", "a", "b", "LEFT"), "LMPOP", "a"),
        (("BLMPOP", "0", "1", "a", "LEFT"), "BLMPOP", "a"),
        (("AUTH", "user", "password1"), "AUTH", None),
        (("AUTH", "password1"), "AUTH", None),
        (("PUBLISH", "chan", "message-body"), "PUBLISH", None),
        (("SPUBLISH", "shard-chan", "message-body"), "SPUBLISH", "shard-chan"),
        (("KEYS", "user:*"), "KEYS", None),
        (("JSON.SET", "doc", "$", "{}"), "JSON.SET", None),  # module commands: name only
        (("PING",), "PING", None),
    ],
)
def test_command_and_first_key(args: tuple[str, ...], name: str, key: str | None) -> None:
    _, t = one((E, command(*args)), (I, b"+OK\r\n"))
    assert (t.request.command, t.request.key, t.request.arg_count) == (name, key, len(args) - 1)
    text = repr(t)
    for secret in ("secret-value", "s3cret", "argv-secret", "password1", "message-body", "pw'"):
        assert secret not in text


def test_binary_and_long_keys() -> None:
    _, out = run(
        (E, command(b"GET", b"\xff\xfebin") + command(b"GET", b"x" * 1000)),
        (I, b"$-1\r\n$-1\r\n"),
    )
    assert out[0].request.key == "\\xff\\xfebin"
    assert out[1].request.key == "x" * 256


def test_not_a_command_word() -> None:
    _, out = run((E, GET), (I, b"$-1\r\n"), (E, command(b"\x00\x01", b"k")), (I, b"-ERR unknown command\r\n"))
    assert out[1].request.command == "UNKNOWN" and out[1].request.key is None


def test_first_frame_decides_the_direction() -> None:
    session, out = run((E, command("JSON.GET", "doc")), (I, b"$2\r\n{}\r\n"))
    assert session.role is Role.CLIENT and out[0].request.command == "JSON.GET"
    session, out = run((E, array(bulk("user:1"), bulk("user:2"))))  # a KEYS reply: not a request
    assert session.role is Role.SERVER


def test_inline_commands() -> None:
    session, out = run(
        (E, b"PING\r\n"),
        (I, b"+PONG\r\n"),
        (E, b'set "my key" "a value with spaces"\r\n'),
        (I, b"+OK\r\n"),
        (E, b"\r\n\r\nget 'my key'\n"),  # empty lines are ignored; a bare LF ends a line too
        (I, b"$19\r\na value with spaces\r\n"),
        (E, b"AUTH hunter2\r\n"),
        (I, b"-ERR nope\r\n"),
    )
    assert [(t.request.command, t.request.key, t.request.arg_count, t.request.inline) for t in out] == [
        ("PING", None, 0, True),
        ("SET", "my key", 2, True),
        ("GET", "my key", 1, True),
        ("AUTH", None, 1, True),
    ]
    assert out[1].request.wire_size == len(b'set "my key" "a value with spaces"\r\n')
    assert "hunter2" not in repr(out)
    assert session.parse_errors == 0


def test_ignored_empty_arrays() -> None:
    session, out = run((E, b"*0\r\n" + GET), (I, b"$1\r\nv\r\n"))
    assert len(out) == 1 and out[0].request.command == "GET"


# -- pairing -----------------------------------------------------------------------------------


def test_pipelining_pairs_fifo_across_feed_boundaries() -> None:
    requests = b"".join(command("INCR", f"k{i}") for i in range(50))
    replies = b"".join(b":%d\r\n" % i for i in range(50))
    session, out = run((E, requests[:333]), (E, requests[333:]), (I, replies[:7]), (I, replies[7:]))
    assert [t.request.key for t in out] == [f"k{i}" for i in range(50)]
    assert all(t.response.kind is RespType.INTEGER for t in out)
    assert [t.start_ns for t in out][:2] == [1, 1]
    assert out[-1].start_ns == 2 and out[-1].end_ns == 4
    assert sum(t.response_size for t in out) == len(replies)


def test_multi_exec_one_transaction_per_command() -> None:
    _, out = run(
        (E, command("MULTI") + command("SET", "a", "1") + command("INCR", "a") + command("EXEC")),
        (I, b"+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n+OK\r\n:2\r\n"),
        (E, command("MULTI") + command("SET", "a") + command("EXEC")),
        (I, b"+OK\r\n-ERR wrong number of arguments for 'set' command\r\n"),
        (I, b"-EXECABORT Transaction discarded because of previous errors.\r\n"),
        (E, command("MULTI") + command("DISCARD")),
        (I, b"+OK\r\n+OK\r\n"),
    )
    got = [(t.request.command, t.response.status or t.response.error_prefix or t.response.kind.value) for t in out]
    assert got == [
        ("MULTI", "OK"),
        ("SET", "QUEUED"),
        ("INCR", "QUEUED"),
        ("EXEC", "array"),
        ("MULTI", "OK"),
        ("SET", "ERR"),
        ("EXEC", "EXECABORT"),
        ("MULTI", "OK"),
        ("DISCARD", "OK"),
    ]
    assert out[3].response.element_count == 2


def test_subscribe_confirmations_pair_with_the_request_messages_do_not() -> None:
    def confirm(kind: str, channel: str, n: int) -> bytes:
        return array(bulk(kind), bulk(channel), b":%d\r\n" % n)

    session, out = run(
        (E, command("SUBSCRIBE", "a", "b", "c")),
        (I, confirm("subscribe", "a", 1) + confirm("subscribe", "b", 2)),
        (I, confirm("subscribe", "c", 3) + array(bulk("message"), bulk("a"), bulk("hi"))),
        (E, command("PSUBSCRIBE", "n*")),
        (I, confirm("psubscribe", "n*", 4)),
        (I, array(bulk("pmessage"), bulk("n*"), bulk("news"), bulk("x")) * 3),
        (E, command("PING")),
        (I, array(bulk("message"), bulk("b"), bulk("y")) + array(bulk("pong"), bulk(""))),
        (E, command("UNSUBSCRIBE")),  # from all channels: one confirmation each (3)
        (I, confirm("unsubscribe", "a", 3) + confirm("unsubscribe", "b", 2) + confirm("unsubscribe", "c", 1)),
        (E, command("PUNSUBSCRIBE")),
        (I, confirm("punsubscribe", "n*", 0)),
        (E, GET),
        (I, b"$1\r\nv\r\n"),
    )
    assert [(t.request.command, t.response.reply_count, t.start_ns, t.end_ns) for t in out] == [
        ("SUBSCRIBE", 3, 1, 3),
        ("PSUBSCRIBE", 1, 4, 5),
        ("PING", 1, 7, 8),
        ("UNSUBSCRIBE", 3, 9, 10),
        ("PUNSUBSCRIBE", 1, 11, 12),
        ("GET", 1, 13, 14),
    ]
    assert session.push_messages == 5
    assert session.unmatched_replies == 0


def test_unsubscribe_from_nothing_gets_one_confirmation() -> None:
    session, out = run(
        (E, command("UNSUBSCRIBE") + GET),
        (I, array(bulk("unsubscribe"), b"$-1\r\n", b":0\r\n") + b"$-1\r\n"),
    )
    assert [(t.request.command, t.response.reply_count) for t in out] == [("UNSUBSCRIBE", 1), ("GET", 1)]


def test_resp3_pubsub_pushes_interleave_with_replies() -> None:
    def confirm(kind: str, channel: str, n: int) -> bytes:
        return push(bulk(kind), bulk(channel), b":%d\r\n" % n)

    session, out = run(
        (E, command("SSUBSCRIBE", "s1", "s2")),
        (I, confirm("ssubscribe", "s1", 1) + confirm("ssubscribe", "s2", 2)),
        (E, GET),
        (I, push(bulk("smessage"), bulk("s1"), bulk("m")) + b"_\r\n"),
        (I, confirm("sunsubscribe", "s1", 1)),  # unsolicited: the slot moved
        (E, command("SUNSUBSCRIBE")),
        (I, confirm("sunsubscribe", "s2", 0)),
    )
    assert [(t.request.command, t.request.key, t.response.kind, t.response.reply_count) for t in out] == [
        ("SSUBSCRIBE", "s1", RespType.PUSH, 2),
        ("GET", "k", RespType.NULL, 1),
        ("SUNSUBSCRIBE", None, RespType.PUSH, 1),
    ]
    assert session.push_messages == 2


def test_subscribe_error_is_the_reply() -> None:
    _, out = run((E, command("SUBSCRIBE") + GET), (I, b"-ERR wrong number of arguments\r\n$-1\r\n"))
    assert [(t.request.command, t.response.kind) for t in out] == [
        ("SUBSCRIBE", RespType.ERROR),
        ("GET", RespType.NULL),
    ]


def test_message_shaped_reply_when_not_subscribed_is_a_reply() -> None:
    _, t = one((E, command("LRANGE", "l", "0", "-1")), (I, array(bulk("message"), bulk("a"), bulk("b"))))
    assert t.response.element_count == 3


def test_monitor_output_is_dropped() -> None:
    line = b'+1700000000.123456 [0 127.0.0.1:5000] "SET" "k" "top-secret"\r\n'
    session, out = run((E, command("MONITOR")), (I, b"+OK\r\n" + line), (I, line * 3), close=True)
    assert [(t.request.command, t.response.status) for t in out] == [("MONITOR", "OK")]
    assert session.monitor_lines == 4
    assert "top-secret" not in repr(out)


def test_client_reply_off_skip_on() -> None:
    _, out = run(
        (E, command("CLIENT", "REPLY", "SKIP") + command("SET", "a", "1") + GET),
        (I, b"$1\r\n1\r\n"),
        (E, command("CLIENT", "REPLY", "OFF") + command("SET", "b", "2") + command("CLIENT", "REPLY", "ON") + GET),
        (I, b"+OK\r\n$1\r\n2\r\n"),
    )
    assert [(t.request.command, t.response and t.response.kind) for t in out] == [
        ("CLIENT REPLY", None),
        ("SET", None),
        ("GET", RespType.BULK_STRING),
        ("CLIENT REPLY", None),
        ("SET", None),
        ("CLIENT REPLY", RespType.SIMPLE_STRING),
        ("GET", RespType.BULK_STRING),
    ]


def test_select_tracks_the_database() -> None:
    session, out = run(
        (E, command("SELECT", "3") + GET),
        (I, b"+OK\r\n$-1\r\n"),
        (E, command("SELECT", "99")),
        (I, b"-ERR DB index is out of range\r\n"),
        (E, GET),
        (I, b"$-1\r\n"),
    )
    assert [t.request.database for t in out] == [None, 3, 3, 3]
    assert session.database == 3


def test_reply_never_pairs_with_a_later_request() -> None:
    session, out = run((I, b"+OK\r\n"), (E, GET), (I, b"$1\r\nv\r\n"))
    assert [t.request.command for t in out] == ["GET"]
    assert session.unmatched_replies == 1
    assert session.role is Role.CLIENT  # learnt from the reply seen first


def test_server_role() -> None:
    session, out = run((I, GET), (E, b"$1\r\nv\r\n"))
    assert session.role is Role.SERVER and out[0].role is Role.SERVER


def test_close_emits_unanswered_requests_and_truncated_replies() -> None:
    session, out = run((E, command("BLPOP", "q", "0")), close=True)
    assert out[0].response is None and out[0].end_ns == 2
    session, out = run((E, command("LRANGE", "l", "0", "-1")), (I, b"*3\r\n$1\r\na\r\n"), close=True)
    assert out[0].response.truncated and out[0].response.element_count == 3


def test_max_pending_drops_the_oldest_and_discards_its_reply() -> None:
    session = RedisSession(max_pending=4)
    requests = b"".join(command("GET", f"k{i}") for i in range(10))
    replies = b"".join(bulk(f"v{i}") for i in range(10))
    _, out = run((E, requests), (I, replies), session=session)
    assert [t.request.key for t in out] == [f"k{i}" for i in range(6, 10)]
    assert session.dropped_requests == 6
    assert session.unmatched_replies == 6


# -- losses --------------------------------------------------------------------------------------


def test_huge_bulk_skipped_by_length_when_truncated() -> None:
    size = 10**9
    head = b"$%d\r\n" % size
    session = RedisSession(max_buffer=1024)
    _, out = run(
        (E, GET),
        (I, head + b"x" * 100, size + len(head) + 2),  # one write; 100 payload bytes captured
        (E, GET),
        (I, b"$1\r\nv\r\n"),
        session=session,
    )
    assert [t.response.wire_size for t in out] == [size + len(head) + 2, 7]
    assert not out[0].response.truncated
    assert session.buffered_bytes == 0
    assert session.capture_gaps == 0


def test_huge_bulk_fed_in_pieces_is_never_buffered() -> None:
    session = RedisSession(max_buffer=1024)
    session.feed(E, command("SET", "k", "v"), 1)
    session.feed(I, b"$100000\r\n", 2)
    for i in range(10):
        session.feed(I, b"y" * 10000, 3 + i)
        assert session.buffered_bytes == 0
    out = session.feed(I, b"\r\n", 20)
    assert out[0].response.wire_size == 100000 + 11


def test_request_loss_leaves_a_gap_that_absorbs_the_lost_replies() -> None:
    batch = b"".join(command("SET", f"k{i}", "v") for i in range(100))
    cut = len(command("SET", "k0", "v")) * 10 + 5  # ten whole commands, then a cut
    session, out = run(
        (E, batch[:cut], len(batch)),  # 90 requests lost
        (I, b"+OK\r\n" * 100),
        (E, GET),
        (I, b"$1\r\nv\r\n"),
    )
    # The eleventh request was cut after its array header: a request, name unknown, that the
    # eleventh reply answers; the 89 others' replies are absorbed by the gap.
    assert [t.request.key for t in out] == [f"k{i}" for i in range(10)] + [None, "k"]
    assert out[10].request.command == "UNKNOWN" and out[10].request.truncated
    assert out[-1].response.kind is RespType.BULK_STRING
    assert session.unmatched_replies == 89
    assert session.capture_gaps == 1


def test_reply_loss_drops_the_requests_sent_before_it() -> None:
    replies = b"".join(bulk("v" * 10) for _ in range(20))
    session, out = run(
        (E, b"".join(command("GET", f"k{i}") for i in range(20))),
        (I, replies[:40], len(replies)),  # 2 whole replies, then a cut in the third's header area
        (E, command("PING")),
        (I, b"+PONG\r\n"),
    )
    assert [t.request.command for t in out][:2] == ["GET", "GET"]
    assert out[-1].request.command == "PING" and out[-1].response.status == "PONG"
    assert session.dropped_requests + len(out) == 21


def test_nested_reply_cut_by_the_capture_is_truncated_and_later_replies_pair() -> None:
    big = b"*1000\r\n" + b"".join(b"*2\r\n$4\r\nitem\r\n:%d\r\n" % i for i in range(1000))
    session, out = run(
        (E, command("COMMAND", "DOCS")),
        (I, big[:4096], len(big)),
        (E, command("PING")),
        (I, b"+PONG\r\n"),
    )
    docs, ping = out
    assert docs.request.command == "COMMAND DOCS" and docs.response.truncated
    assert docs.response.element_count == 1000 and docs.response.wire_size == len(big)
    assert ping.response.status == "PONG"


def test_mid_stream_attach_resynchronises() -> None:
    session, out = run(
        (I, b"lue-of-a-bulk-string-cut\r\n:12\r\n"),  # ends mid bulk: hunting
        (E, b"GET k\r\n$3\r\nfoo\r\n"),  # an inline request at the start of a feed
        (I, b"$-1\r\n"),
    )
    assert [t.request.command for t in out] == ["GET"]


def test_invalid_bytes_count_as_parse_errors_and_resync() -> None:
    session, out = run(
        (E, GET),
        (I, b"?garbage\r\n"),
        (E, GET),
        (I, b"$1\r\nv\r\n"),
    )
    assert session.parse_errors == 1
    assert [t.request.command for t in out] == ["GET"] and out[0].start_ns == 3


def test_requests_must_hold_bulk_strings() -> None:
    session, out = run((E, GET), (E, b"*2\r\n:1\r\n$1\r\nk\r\n"), (E, GET), (I, b"$-1\r\n$-1\r\n"))
    assert session.parse_errors == 1


def test_nesting_is_bounded() -> None:
    ok = b"*1\r\n" * 64 + b":1\r\n"
    too_deep = b"*1\r\n" * 65 + b":1\r\n"
    session, out = run((E, GET + GET), (I, ok), (I, too_deep))
    assert len(out) == 1 and out[0].response.element_count == 1
    assert session.parse_errors == 1


@pytest.mark.parametrize(
    "bad",
    [b"$99999999999999\r\n", b"*99999999999\r\n", b":12a\r\n", b"#x\r\n", b"_x\r\n", b",\r\n", b"$-2\r\n", b"+OK\n"],
)
def test_invalid_headers(bad: bytes) -> None:
    session, out = run((E, GET), (I, bad))
    assert out == [] and session.parse_errors == 1


def test_long_lines_are_skipped_not_buffered() -> None:
    session = RedisSession(max_buffer=1024)
    line = b"+1700000000.123456 [0 127.0.0.1:5000] " + b'"x"' * 5000 + b"\r\n"
    _, out = run((E, command("MONITOR")), (I, b"+OK\r\n"), (I, line[:2000]), (I, line[2000:]), session=session)
    assert session.monitor_lines == 1
    assert session.buffered_bytes == 0


def test_types_are_frozen() -> None:
    _, t = one((E, GET), (I, b"+OK\r\n"))
    with pytest.raises(AttributeError):
        t.request.command = "x"  # type: ignore[misc]
    assert isinstance(t.response, RedisResponse)


def test_static_capture_plans_agree_with_the_policy() -> None:
    """The fast path's per-command plans copy exactly what the general path's policy copies."""
    from receiver.protocols.redis.commands import KNOWN_COMMANDS, capture_cap, static_plan

    for name in sorted(KNOWN_COMMANDS):
        plan = static_plan(name.encode())
        if plan is None:
            continue
        items: list = [name.encode()]
        for index in range(1, 16):
            assert capture_cap(items, index) == (plan[index - 1] if index <= len(plan) else 0), (name, index)
            items.append(None)
