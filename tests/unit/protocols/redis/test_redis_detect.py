"""Protocol detection: Redis commands and replies yes; HTTP, PostgreSQL, MySQL, TLS and other
line protocols no."""

from __future__ import annotations

import pytest
from redis_support import command

from receiver.protocols.redis import detect


@pytest.mark.parametrize(
    "data",
    [
        command("PING"),
        command("set", "k", "v"),
        command("CLIENT", "SETINFO", "LIB-NAME", "redis-py"),
        command("HELLO", "3"),
        b"*2\r\n$3\r\nGET",  # cut right after the command name
        b"PING\r\n",
        b"ping\r\n",
        b"SET greeting hello\r\n",
        b"+OK\r\n",
        b"+PONG\r\n",
        b"+OK\r\n+OK\r\n:1\r\n",
        b"-ERR unknown command 'x'\r\n",
        b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n",
        b"-NOAUTH Authentication required.\r\n",
        b"%7\r\n$6\r\nserver\r\n$5\r\nredis\r\n",
    ],
)
def test_detects_redis(data: bytes) -> None:
    assert detect(data)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /index.html HTTP/1.0\r\n\r\n",
        b"GET /index.html\r\n",  # HTTP/0.9
        b"POST /api HTTP/1.1\r\n",
        b"HTTP/1.1 200 OK\r\n\r\n",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",  # TLS ClientHello
        b"\x00\x00\x00\x08\x04\xd2\x16\x2f",  # PostgreSQL SSLRequest
        b"\x00\x00\x00\x29\x00\x03\x00\x00user\x00postgres\x00database\x00db\x00\x00",  # PG startup
        b"R\x00\x00\x00\x08\x00\x00\x00\x00",  # PG AuthenticationOk
        b"J\x00\x00\x00\n5.5.5-10.11.6-MariaDB\x00",  # MySQL greeting
        b"\x21\x00\x00\x00\x03SELECT 1",  # MySQL COM_QUERY
        b"*1\r\n$4\r\nNOPE\r\n",  # an unknown command
        b"*1\r\n$4\r\nPINGX\r\n",
        b"*x\r\n",
        b"+OKAY\r\n",
        b"+OK POP3 server ready\r\n",
        b"-error lowercase\r\n",
        b"QUIT\r\n",  # SMTP, POP3, FTP say it too
        b"AUTH LOGIN\r\n",
        b"EHLO mail.example.com\r\n",
        b"PING",  # no line end
        b"\xff" * 64,
    ],
)
def test_does_not_claim_other_protocols(data: bytes) -> None:
    assert not detect(data)


def test_http1_detector_agrees() -> None:
    """Redis is asked before HTTP/1: an HTTP request must not look like an inline GET."""
    from receiver.protocols import http1

    for data in (b"GET / HTTP/1.1\r\n\r\n", b"GET /x?y=1 HTTP/1.1\r\nHost: a\r\n\r\n"):
        assert http1.detect(data) and not detect(data)


def test_the_registry_hands_every_fixture_to_redis() -> None:
    """With every built-in detector in its order, both directions of every recorded connection
    are detected as Redis (no stricter detector asked first claims them)."""
    from redis_support import FIXTURE_NAMES, load_fixture

    from receiver.protocols.registry import ProtocolRegistry

    registry = ProtocolRegistry()
    assert "redis" in registry.names and registry.names[-1] == "http"
    for name in FIXTURE_NAMES:
        fixture = load_fixture(name)
        for side in ("c2s", "s2c"):
            first = next(data for s, data in fixture.chunks if s == side)
            assert registry.detect(first) == "redis", (name, side)
