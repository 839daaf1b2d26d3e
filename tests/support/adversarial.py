"""Adversarial wire input, built from a table (deterministic, no large files in the repository):
HPACK bombs, huge declared lengths, deeply nested RESP, 10 000 pipelined requests on one
connection, invalid UTF-8, NUL bytes in SQL.  Each case is a feed script
(:func:`tests.support.hostile_input.feed_script`) for one protocol session; replayed by
tests/unit/protocols/test_adversarial_corpus.py and used as seeds by the fuzzer.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass

from receiver.protocols.base import Direction
from tests.support.hostile_input import script_of

IN, OUT = Direction.INGRESS, Direction.EGRESS  # the traced process is the server
PIPELINED = 10_000
INVALID_UTF8 = b"\xff\xfe\xc0\xaf\xed\xa0\x80\xf8\x88\x80\x80\x80"


@dataclass(frozen=True)
class Case:
    proto: str
    name: str
    build: Callable[[], list[tuple[Direction, bytes]]]

    def script(self) -> bytes:
        return script_of(self.build())


# -- HTTP/1 ---------------------------------------------------------------------------------


def http1_pipelined() -> list[tuple[Direction, bytes]]:
    return [(IN, b"GET /p HTTP/1.1\r\nHost: a\r\n\r\n" * PIPELINED)]


def http1_huge_length() -> list[tuple[Direction, bytes]]:
    return [(IN, b"POST /u HTTP/1.1\r\nContent-Length: 9999999999999999999\r\n\r\nabc"),
            (IN, b"POST /u HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\nabc")]


def http1_invalid_utf8() -> list[tuple[Direction, bytes]]:
    head = b"GET /" + INVALID_UTF8 + b"?q=" + INVALID_UTF8 + b" HTTP/1.1\r\nX-" + INVALID_UTF8 + b": " + INVALID_UTF8
    return [(IN, head + b"\r\n\r\n"), (OUT, b"HTTP/1.1 200 " + INVALID_UTF8 + b"\r\nContent-Length: 0\r\n\r\n")]


def http1_unterminated_heads() -> list[tuple[Direction, bytes]]:
    return [(IN, b"GET / HTTP/1.1\r\nA: b\r\n" * 5_000)]


# -- HTTP/2 ---------------------------------------------------------------------------------

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def h2_frame(kind: int, flags: int, stream: int, payload: bytes, length: int | None = None) -> bytes:
    n = len(payload) if length is None else length
    return n.to_bytes(3, "big") + bytes([kind, flags]) + struct.pack(">I", stream) + payload


def hpack_literal(name: bytes, value: bytes, index: bool = True) -> bytes:
    """A literal header field (with incremental indexing), new name; lengths < 127."""
    return bytes([0x40 if index else 0x00, len(name)]) + name + bytes([len(value)]) + value


def http2_hpack_bomb() -> list[tuple[Direction, bytes]]:
    # One entry filling the dynamic table, then thousands of one-byte references to it (each
    # would expand to ~4 KiB of headers): the decoded size must stay bounded.
    big = hpack_literal(b"x", b"y" * 100)
    block = big + bytes([0xBE]) * 16_000
    frames = PREFACE + h2_frame(4, 0, 0, b"")
    for stream in range(1, 40, 2):
        frames += h2_frame(1, 0x5, stream, block)  # HEADERS, END_STREAM|END_HEADERS
    return [(IN, frames)]


def http2_table_size_bomb() -> list[tuple[Direction, bytes]]:
    # Dynamic table size updates to 2**32-1 and endless CONTINUATION frames.
    update = bytes([0x3F, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F])
    frames = PREFACE + h2_frame(1, 0x1, 1, update + hpack_literal(b"a", b"b"))  # no END_HEADERS
    frames += h2_frame(9, 0, 1, hpack_literal(b"c", b"d")) * 5_000
    return [(IN, frames)]


def http2_huge_lengths() -> list[tuple[Direction, bytes]]:
    return [(IN, PREFACE + h2_frame(0, 0, 1, b"abc", length=0xFFFFFF) + h2_frame(4, 0, 0, b"", length=0xFFFFFF))]


# -- PostgreSQL -------------------------------------------------------------------------------


def pg_message(tag: bytes, body: bytes, length: int | None = None) -> bytes:
    return tag + struct.pack(">I", (len(body) + 4) if length is None else length) + body


def pg_startup() -> bytes:
    body = struct.pack(">I", 196608) + b"user\0u\0database\0d\0\0"
    return struct.pack(">I", len(body) + 4) + body


def postgresql_nul_sql() -> list[tuple[Direction, bytes]]:
    return [(IN, pg_startup()), (OUT, pg_message(b"R", struct.pack(">I", 0)) + pg_message(b"Z", b"I")),
            (IN, pg_message(b"Q", b"SELECT '\0\0' FROM t\0WHERE \0x = 1\0")),
            (IN, pg_message(b"Q", b"SELECT '" + INVALID_UTF8 + b"'\0"))]


def postgresql_huge_length() -> list[tuple[Direction, bytes]]:
    return [(IN, pg_startup()), (IN, pg_message(b"Q", b"SELECT 1\0", length=0x7FFFFFFF)),
            (IN, b"Q\xff\xff\xff\xff" + b"x" * 1000)]


def postgresql_pipelined() -> list[tuple[Direction, bytes]]:
    return [(IN, pg_startup()), (IN, pg_message(b"Q", b"SELECT 1\0") * PIPELINED)]


# -- MySQL ----------------------------------------------------------------------------------


def mysql_packet(seq: int, body: bytes, length: int | None = None) -> bytes:
    return (len(body) if length is None else length).to_bytes(3, "little") + bytes([seq]) + body


def mysql_greeting() -> bytes:
    body = b"\x0a5.7.0\0" + struct.pack("<I", 1) + b"12345678\0" + struct.pack("<H", 0xF7FF) + b"\x21"
    body += struct.pack("<H", 2) + struct.pack("<H", 0x81FF) + b"\x15" + b"\0" * 10 + b"123456789012\0"
    body += b"mysql_native_password\0"
    return mysql_packet(0, body)


def mysql_login() -> list[tuple[Direction, bytes]]:
    """Greeting, HandshakeResponse41 (user "u", no password), OK."""
    caps = 0x0200 | 0x8000 | 0x80000  # PROTOCOL_41, SECURE_CONNECTION, PLUGIN_AUTH
    response = struct.pack("<IIB", caps, 1 << 24, 0x21) + b"\0" * 23 + b"u\0" + b"\0" + b"mysql_native_password\0"
    ok = mysql_packet(2, b"\x00\x00\x00\x02\x00\x00\x00")
    return [(OUT, mysql_greeting()), (IN, mysql_packet(1, response)), (OUT, ok)]


def mysql_nul_sql() -> list[tuple[Direction, bytes]]:
    return [*mysql_login(), (IN, mysql_packet(0, b"\x03SELECT '\0' FROM \0t\0" + INVALID_UTF8))]


def mysql_huge_length() -> list[tuple[Direction, bytes]]:
    return [(OUT, mysql_greeting()), (IN, mysql_packet(0, b"\x03SELECT 1", length=0xFFFFFF)),
            (IN, b"\xff\xff\xff\x00" * 2_000)]


def mysql_pipelined() -> list[tuple[Direction, bytes]]:
    return [*mysql_login(), (IN, mysql_packet(0, b"\x03SELECT 1") * PIPELINED)]


# -- Redis ----------------------------------------------------------------------------------


def redis_nested() -> list[tuple[Direction, bytes]]:
    return [(IN, b"*1\r\n*1\r\n$4\r\nPING\r\n"), (OUT, b"*1\r\n" * 100_000 + b":1\r\n")]


def redis_huge_lengths() -> list[tuple[Direction, bytes]]:
    return [(IN, b"*2147483647\r\n$4\r\nPING\r\n"), (IN, b"*1\r\n$9223372036854775807\r\nabc"),
            (OUT, b"$99999999999999999999\r\n"), (IN, b"*-5\r\n")]


def redis_pipelined() -> list[tuple[Direction, bytes]]:
    return [(IN, b"*1\r\n$4\r\nPING\r\n" * PIPELINED)]


def redis_invalid_utf8() -> list[tuple[Direction, bytes]]:
    arg = b"$" + str(len(INVALID_UTF8)).encode() + b"\r\n" + INVALID_UTF8 + b"\r\n"
    return [(IN, b"*2\r\n" + arg + arg), (OUT, b"-" + INVALID_UTF8 + b"\r\n")]


# -- memcached, AMQP, DNS, NATS -----------------------------------------------------------------


def memcached_huge_length() -> list[tuple[Direction, bytes]]:
    return [(IN, b"set k 0 0 18446744073709551615\r\nabc"), (IN, b"get " + b"k " * 20_000 + b"\r\n")]


def memcached_pipelined() -> list[tuple[Direction, bytes]]:
    return [(IN, b"get k\r\n" * PIPELINED)]


def amqp_huge_frame() -> list[tuple[Direction, bytes]]:
    return [(IN, b"AMQP\x00\x00\x09\x01"), (IN, b"\x01\x00\x01\xff\xff\xff\xff" + b"\x00" * 100 + b"\xce")]


def dns_huge_and_loops() -> list[tuple[Direction, bytes]]:
    header = struct.pack(">HHHHHH", 1, 0x0100, 0xFFFF, 0, 0, 0)
    loop = b"\xc0\x0c"  # a compression pointer to itself
    message = header + loop + b"\x00\x01\x00\x01"
    return [(IN, struct.pack(">H", len(message)) + message), (IN, b"\xff\xff" + b"\x00" * 100)]


def nats_huge_and_pipelined() -> list[tuple[Direction, bytes]]:
    return [(IN, b"PUB s 99999999999999999999\r\nabc\r\n"), (IN, b"PING\r\n" * PIPELINED),
            (IN, b"PUB " + INVALID_UTF8 + b" 1\r\n\0\r\n")]


CASES: tuple[Case, ...] = (
    Case("http1", "pipelined-10000", http1_pipelined),
    Case("http1", "huge-lengths", http1_huge_length),
    Case("http1", "invalid-utf8", http1_invalid_utf8),
    Case("http1", "unterminated-heads", http1_unterminated_heads),
    Case("http2", "hpack-bomb", http2_hpack_bomb),
    Case("http2", "table-size-and-continuation-bomb", http2_table_size_bomb),
    Case("http2", "huge-lengths", http2_huge_lengths),
    Case("postgresql", "nul-in-sql", postgresql_nul_sql),
    Case("postgresql", "huge-length", postgresql_huge_length),
    Case("postgresql", "pipelined-10000", postgresql_pipelined),
    Case("mysql", "nul-in-sql", mysql_nul_sql),
    Case("mysql", "huge-length", mysql_huge_length),
    Case("mysql", "pipelined-10000", mysql_pipelined),
    Case("redis", "nested-100000", redis_nested),
    Case("redis", "huge-lengths", redis_huge_lengths),
    Case("redis", "pipelined-10000", redis_pipelined),
    Case("redis", "invalid-utf8", redis_invalid_utf8),
    Case("memcached", "huge-length", memcached_huge_length),
    Case("memcached", "pipelined-10000", memcached_pipelined),
    Case("amqp", "huge-frame", amqp_huge_frame),
    Case("dns", "huge-and-pointer-loop", dns_huge_and_loops),
    Case("nats", "huge-and-pipelined", nats_huge_and_pipelined),
)
