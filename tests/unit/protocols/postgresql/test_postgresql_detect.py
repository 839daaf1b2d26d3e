"""``detect``: PostgreSQL connections and mid-stream messages yes; HTTP, Redis, MySQL, TLS no."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from pg_support import (
    BIND_COMPLETE,
    CANCEL_REQUEST,
    FIXTURE_DIR,
    FIXTURE_NAMES,
    GSSENC_REQUEST,
    PARSE_COMPLETE,
    SSL_REQUEST,
    SYNC,
    bind,
    command_complete,
    describe,
    error_response,
    execute,
    extended,
    handshake,
    load_fixture,
    parse,
    query,
    ready,
    select_result,
    startup,
)

from receiver.protocols.postgresql import detect
from receiver.protocols.registry import ProtocolRegistry

POSITIVE = {
    "startup": startup(),
    "startup without database": startup(database=None, application_name="x"),
    "ssl request": SSL_REQUEST,
    "gssenc request": GSSENC_REQUEST,
    "cancel request": CANCEL_REQUEST,
    "query": query("SELECT 1"),
    "query, capture cut": query("SELECT * FROM orders WHERE customer_id = 42 ORDER BY created_at")[:30],
    "extended": extended("SELECT $1", (b"1",)),
    "parse only": parse("INSERT INTO t VALUES ($1)", "_pg3_0", (23,)),
    "prepared execution": bind("_pg3_0", "", (b"1",)) + describe() + execute() + SYNC,
    "backend handshake": handshake(),
    "backend result": select_result(b"1", b"2") + ready(),
    "backend pipeline": PARSE_COMPLETE + BIND_COMPLETE + command_complete("INSERT 0 1"),
    "ready for query": ready("T"),
    "error response": error_response(),
}

NEGATIVE = {
    "empty": b"",
    "short": b"Q\x00\x00",
    "http get": b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
    "http post": b"POST /api HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}",
    "http put": b"PUT /x HTTP/1.1\r\n\r\n",
    "http delete": b"DELETE /x HTTP/1.1\r\n\r\n",
    "http patch": b"PATCH /x HTTP/1.1\r\n\r\n",
    "http head": b"HEAD / HTTP/1.1\r\n\r\n",
    "http connect": b"CONNECT a:443 HTTP/1.1\r\n\r\n",
    "http trace": b"TRACE / HTTP/1.1\r\n\r\n",
    "http response": b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
    "http2 preface": b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    "redis array": b"*2\r\n$3\r\nGET\r\n$1\r\na\r\n",
    "redis ok": b"+OK\r\n",
    "redis error": b"-ERR unknown command\r\n",
    "redis inline ping": b"PING\r\n",
    "redis inline quit": b"QUIT\r\n",
    "redis inline del": b"DEL key\r\n",
    "redis inline set": b"SET k v\r\n",
    "redis resp3 map": b"%1\r\n+a\r\n:1\r\n",
    "tls client hello": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(32),
    "ssh banner": b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n",
    "text with spaces": b"S 1 2 3 4 5 6 7 8 9\r\n",
    "nul padding": bytes(64),
}


@pytest.mark.parametrize("name", POSITIVE)
def test_detects(name: str) -> None:
    assert detect(POSITIVE[name])


@pytest.mark.parametrize("name", NEGATIVE)
def test_rejects(name: str) -> None:
    assert not detect(NEGATIVE[name])


def test_detects_the_first_bytes_of_every_fixture_connection() -> None:
    for name in FIXTURE_NAMES:
        fixture = load_fixture(name)
        assert detect(fixture.chunks[0][1]), name


def test_detects_mid_stream_chunks_of_the_fixtures() -> None:
    """Most later chunks are recognisable on their own too (not the big result's 8 KiB
    pieces: those start wherever the proxy's reads cut the stream)."""
    seen = hits = 0
    for name in FIXTURE_NAMES:
        fixture = load_fixture(name)
        if fixture.encrypted or name == "psycopg_large":
            continue
        for side, data in fixture.chunks[4:]:
            if len(data) < 6:
                continue
            seen += 1
            hits += detect(data)
    assert hits >= 0.8 * seen


def mysql_packet(seq: int, payload: bytes) -> bytes:
    return len(payload).to_bytes(3, "little") + bytes([seq]) + payload


@pytest.mark.parametrize("version", ["5.5.5-10.11.6-MariaDB-0+deb12u1", "8.0.36", "5.7.44-log", "8.4.0-debug-valgrind"])
def test_rejects_mysql_greetings(version: str) -> None:
    for pad in range(0, 40):
        payload = b"\x0a" + version.encode() + b"\x00" + (17).to_bytes(4, "little") + b"abcdefgh\x00" + bytes(pad)
        assert not detect(mysql_packet(0, payload))


def test_rejects_mysql_commands() -> None:
    for n in range(0, 200):
        sql = b"SELECT " + b"1" * n
        assert not detect(mysql_packet(0, b"\x03" + sql))


def other_protocol_fixture_chunks() -> list[tuple[str, bytes]]:
    """The first chunk of each direction of every other protocol's recorded connections."""
    out = []
    for path in sorted(Path(FIXTURE_DIR).parent.glob("*/*.json")):
        if path.parent == FIXTURE_DIR:
            continue
        try:
            chunks = json.loads(path.read_text()).get("chunks", [])
        except (ValueError, AttributeError):
            continue
        firsts: dict[str, bytes] = {}
        for chunk in chunks if isinstance(chunks, list) else []:
            if isinstance(chunk, dict) and "dir" in chunk and "data" in chunk:
                firsts.setdefault(chunk["dir"], base64.b64decode(chunk["data"]))
        out += [(f"{path.parent.name}/{path.stem}:{side}", data) for side, data in firsts.items()]
    return out


def test_rejects_other_protocols_recorded_traffic() -> None:
    chunks = other_protocol_fixture_chunks()
    assert chunks, "the http1 fixtures at least should be there"
    assert [name for name, data in chunks if detect(data)] == []


def test_registry_picks_postgresql_before_http() -> None:
    registry = ProtocolRegistry()
    assert "postgresql" in registry.names
    assert registry.names.index("postgresql") < registry.names.index("http")
    assert registry.detect(startup()) == "postgresql"
    assert registry.detect(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n") == "http"
    assert type(registry.new_session("postgresql")).__name__ == "PostgresSession"
