"""HTTP/2 detection: the preface, or plausible frames that chain; never other protocols."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from http2_support import FIXTURE_NAMES, PREFACE, frame, load_fixture, ping, rst_stream, settings, walk, window_update

from receiver.protocols.http2 import detect

FIXTURES = Path(__file__).resolve().parents[4] / "tests" / "fixtures"


@pytest.mark.parametrize(
    "data",
    [
        PREFACE,
        PREFACE[:8],
        PREFACE + settings((3, 100)),
        settings((3, 100), (4, 65535)) + window_update(0) + settings(ack=True),  # a server's first write
        settings(ack=True),
        frame(1, 0x5, 1, b"\x82\x86\x84") + frame(0, 0x1, 1, b"body"),
        frame(0, 0x0, 3, b"x" * 100) + frame(0, 0x0, 3, b"y" * 9000)[:50],  # the last frame continues past the capture
        ping() + rst_stream(5, 8),
    ],
    ids=["preface", "preface-prefix", "preface+settings", "server-settings", "settings-ack", "headers+data",
         "cut-data", "ping+rst"],
)
def test_detects(data: bytes) -> None:
    assert detect(data)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"PRI * H",
        PREFACE[:4],
        b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
        b"POST /x HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc",
        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
        b"PRI * HTTP/1.1\r\n\r\n",
        # PostgreSQL: SSLRequest, StartupMessage, AuthenticationOk + ReadyForQuery, a query.
        b"\x00\x00\x00\x08\x04\xd2\x16\x2f",
        b"\x00\x00\x00\x29\x00\x03\x00\x00user\x00postgres\x00database\x00postgres\x00\x00",
        b"R\x00\x00\x00\x08\x00\x00\x00\x00Z\x00\x00\x00\x05I",
        b"Q\x00\x00\x00\x0dselect 1\x00",
        b"N",
        # MySQL: server greeting, COM_QUERY, OK packet, COM_QUIT.
        b"\x4a\x00\x00\x00\x0a10.11.6-MariaDB\x00" + b"\x01" * 50,
        b"\x09\x00\x00\x00\x03select 1",
        b"\x07\x00\x00\x02\x00\x00\x00\x02\x00\x00\x00",
        b"\x01\x00\x00\x00\x01",
        # Redis RESP.
        b"*1\r\n$4\r\nPING\r\n",
        b"+PONG\r\n",
        b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n",
        b":1\r\n",
        b"-ERR unknown command\r\n",
        # TLS ClientHello start.
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 32,
        # Frames that do not chain, or break the per-type rules.
        frame(0, 0, 0, b"data on stream 0"),
        frame(4, 0, 1, b""),  # SETTINGS on a stream
        frame(3, 0, 1, b"\x00\x00\x00"),  # RST_STREAM of 3 bytes
        frame(0, 0x40, 1, b"x"),  # undefined flag
        frame(0x20, 0, 1, b"x"),  # unknown type
        frame(0, 0, 1, b"x" * 10) + b"\x01\x02",  # trailing bytes that are no frame header
        b"\x00" * 64,
    ],
)
def test_rejects(data: bytes) -> None:
    assert not detect(data)


def test_first_write_of_each_side_of_every_fixture() -> None:
    for name in FIXTURE_NAMES:
        fixture = load_fixture(name)
        for side in ("c2s", "s2c"):
            first = next(data for s, data in fixture.chunks if s == side)
            assert detect(first), (name, side)


def test_any_run_of_whole_frames_mid_connection() -> None:
    fixture = load_fixture("grpc_concurrent")
    stream = b"".join(d for s, d in fixture.chunks if s == "s2c")
    frames = walk(stream)
    for i in range(0, len(frames) - 2):
        assert detect(stream[frames[i].offset : frames[i + 2].end])


def _other_protocol_chunks() -> list[tuple[str, bytes]]:
    chunks = []
    for path in sorted(FIXTURES.glob("*/*.json")):
        if path.parent.name in ("http2", "grpc_service"):
            continue
        try:
            raw = json.loads(path.read_text())
            for c in raw.get("chunks", ()):
                chunks.append((f"{path.parent.name}/{path.stem}", base64.b64decode(c["data"])))
        except (ValueError, KeyError, TypeError, AttributeError):
            continue  # another team's fixture format: not ours to judge
    return chunks


def test_never_claims_other_protocols_recorded_traffic() -> None:
    chunks = _other_protocol_chunks()
    assert len(chunks) > 50  # at least the HTTP/1 fixtures
    claimed = [(name, data[:24]) for name, data in chunks if detect(data)]
    assert claimed == []
