"""Property-based fuzzing of Http1Session: it never raises and stays within its bounds.

Every test counts the examples it ran and prints the count (visible in the pytest output).
``internal_errors`` counts exceptions caught by the session's last-resort handler, so it must
stay 0: wire data is handled by the parser, never by the safety net.
"""

from __future__ import annotations

from typing import Any

import pytest
from http1_support import FIXTURE_NAMES, PERSPECTIVES, load_fixture
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from receiver.protocols.base import Direction, Role
from receiver.protocols.http1 import Http1Session

SETTINGS = settings(
    max_examples=300,
    deadline=None,
    database=None,  # keep the checkout clean
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
FIXTURES = {name: load_fixture(name) for name in FIXTURE_NAMES}

# Pieces that make the soup look like HTTP often enough to reach deep parser states.
HTTP_PIECES = [
    b"GET ",
    b"HEAD ",
    b"POST ",
    b"CONNECT ",
    b"/",
    b"/x?y=1 ",
    b"HTTP/1.1",
    b"HTTP/1.0",
    b" 200 OK",
    b" 100 Continue",
    b" 101 Switching",
    b" 204 No Content",
    b" 304 X",
    b"\r\n",
    b"\n",
    b"\r",
    b" ",
    b":",
    b"Host: a",
    b"Content-Length: 5",
    b"Content-Length: 0",
    b"Content-Length: 99999",
    b"Transfer-Encoding: chunked",
    b"Transfer-Encoding: gzip",
    b"Expect: 100-continue",
    b"5\r\nhello\r\n",
    b"0\r\n\r\n",
    b"a;ext=1\r\n",
    b"X-Trailer: t\r\n",
    b"hello",
    b"\x00\xff",
]

http_soup = st.lists(st.sampled_from(HTTP_PIECES), max_size=40).map(b"".join)
feed_data = st.one_of(st.binary(max_size=300), http_soup)
feeds = st.lists(
    st.tuples(
        st.sampled_from([Direction.EGRESS, Direction.INGRESS]),
        feed_data,
        st.one_of(st.none(), st.integers(min_value=0, max_value=5000)),
    ),
    max_size=25,
)


def check_bounds(session: Http1Session) -> None:
    assert session.internal_errors == 0
    for stream in session._streams:
        assert len(stream.buf) <= session.max_buffer
    assert session.pending_requests <= session._stitcher.max_pending


def check_transactions(transactions: list) -> None:
    for t in transactions:
        assert t.start_ns <= t.end_ns
        assert t.request_size >= t.request.head_size > 0
        assert t.request.body_size >= 0
        if t.response is not None:
            assert t.response_size >= t.response.head_size > 0
            assert t.response.body_size >= 0


def report(capsys: pytest.CaptureFixture[str], name: str, count: int) -> None:
    with capsys.disabled():
        print(f"\n[hypothesis] {name}: {count} examples")


def test_fuzz_arbitrary_feeds(capsys: pytest.CaptureFixture[str]) -> None:
    count = 0

    @SETTINGS
    @given(feeds=feeds, max_buffer=st.integers(min_value=256, max_value=4096), max_pending=st.integers(1, 8))
    def run(feeds: list, max_buffer: int, max_pending: int) -> None:
        nonlocal count
        count += 1
        session = Http1Session(max_buffer=max_buffer, max_pending=max_pending)
        out = []
        for ts, (direction, data, extra) in enumerate(feeds):
            total = None if extra is None else len(data) + extra
            out += session.feed(direction, data, ts, total)
            check_bounds(session)
        out += session.close(len(feeds))
        check_bounds(session)
        check_transactions(out)
        assert session.buffered_bytes == 0

    run()
    report(capsys, "arbitrary feeds", count)
    assert count >= 100


@st.composite
def mutated_fixture(draw: st.DrawFn) -> tuple[str, Role, list[tuple[Direction, bytes, int | None]]]:
    name = draw(st.sampled_from(FIXTURE_NAMES))
    role = draw(st.sampled_from([Role.CLIENT, Role.SERVER]))
    dirs = PERSPECTIVES[role]
    pieces: list[tuple[Direction, bytes, int | None]] = []
    for side, data in FIXTURES[name].chunks:
        data = bytearray(data)
        for _ in range(draw(st.integers(0, 2))):  # mutations of this chunk
            op = draw(st.sampled_from(["flip", "insert", "delete", "none"]))
            at = draw(st.integers(0, len(data)))
            if op == "flip" and at < len(data):
                data[at] ^= draw(st.integers(1, 255))
            elif op == "insert":
                data[at:at] = draw(st.one_of(st.binary(min_size=1, max_size=20), st.sampled_from(HTTP_PIECES)))
            elif op == "delete":
                del data[at : at + draw(st.integers(1, 50))]
        # split the chunk, and maybe capture only a prefix of each piece
        cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=3)))
        bounds = [0, *cuts, len(data)]
        for lo, hi in zip(bounds, bounds[1:], strict=False):
            piece = bytes(data[lo:hi])
            if piece and draw(st.integers(0, 9)) == 0:  # truncated capture
                kept = draw(st.integers(0, len(piece)))
                pieces.append((dirs[side], piece[:kept], len(piece) + draw(st.integers(0, 100))))
            else:
                pieces.append((dirs[side], piece, None))
    return name, role, pieces


def test_fuzz_mutated_fixtures(capsys: pytest.CaptureFixture[str]) -> None:
    count = 0

    @SETTINGS
    @given(case=mutated_fixture(), max_buffer=st.sampled_from([256, 1024, 64 * 1024]))
    def run(case: tuple, max_buffer: int) -> None:
        nonlocal count
        count += 1
        _, _, pieces = case
        session = Http1Session(max_buffer=max_buffer)
        out = []
        for ts, (direction, data, total_len) in enumerate(pieces):
            out += session.feed(direction, data, ts, total_len)
            check_bounds(session)
        out += session.close(len(pieces))
        check_bounds(session)
        check_transactions(out)

    run()
    report(capsys, "mutated fixtures", count)
    assert count >= 100


def test_fuzz_random_splits_give_the_same_transactions(capsys: pytest.CaptureFixture[str]) -> None:
    count = 0
    whole = {}
    for name, fixture in FIXTURES.items():
        session = Http1Session()
        out = []
        for ts, (side, data) in enumerate(fixture.chunks):
            out += session.feed(PERSPECTIVES[Role.CLIENT][side], data, ts)
        out += session.close(len(fixture.chunks))
        whole[name] = [(t.request, t.response) for t in out]

    @SETTINGS
    @given(name=st.sampled_from(FIXTURE_NAMES), data=st.data())
    def run(name: str, data: st.DataObject) -> None:
        nonlocal count
        count += 1
        session = Http1Session()
        out = []
        ts = 0
        for side, chunk in FIXTURES[name].chunks:
            cuts = sorted(data.draw(st.lists(st.integers(0, len(chunk)), max_size=6)))
            bounds = [0, *cuts, len(chunk)]
            for lo, hi in zip(bounds, bounds[1:], strict=False):
                out += session.feed(PERSPECTIVES[Role.CLIENT][side], chunk[lo:hi], ts)
                ts += 1
        out += session.close(ts)
        assert [(t.request, t.response) for t in out] == whole[name]
        assert session.parse_errors == 0

    run()
    report(capsys, "random splits", count)
    assert count >= 100


# -- model-based: generated valid conversations must parse exactly ---------------------------


@st.composite
def chunked_body(draw: st.DrawFn) -> tuple[bytes, int]:
    """A chunked body (extensions, optional trailers) and its payload size."""
    sizes = draw(st.lists(st.integers(1, 300), max_size=4))
    wire = b""
    for size in sizes:
        ext = draw(st.sampled_from([b"", b";a=b", b'; name="v"']))
        wire += b"%x%s\r\n" % (size, ext) + b"c" * size + b"\r\n"
    trailers = draw(st.sampled_from([b"", b"X-Sum: 1\r\n", b"A: 1\r\nB: 2\r\n"]))
    return wire + b"0\r\n" + trailers + b"\r\n", sum(sizes)


@st.composite
def exchange(draw: st.DrawFn, last: bool) -> tuple[bytes, bytes, dict[str, Any]]:
    method = draw(st.sampled_from(["GET", "POST", "PUT", "HEAD", "DELETE", "OPTIONS"]))
    target = "/" + draw(st.text("abc/?=&%-_.~0123456789", max_size=30))
    headers = b"Host: example\r\n" + draw(st.sampled_from([b"", b"Accept: */*\r\n", b"X-Repeat: 1\r\nx-repeat: 2\r\n"]))
    body_kind = draw(st.sampled_from(["none", "length", "chunked"])) if method in ("POST", "PUT") else "none"
    interim = draw(st.lists(st.sampled_from([100, 102, 103]), max_size=2))
    if body_kind == "length":
        size = draw(st.integers(1, 3000))
        headers += b"Content-Length: %d\r\n" % size
        body = b"b" * size
    elif body_kind == "chunked":
        headers += b"Transfer-Encoding: chunked\r\n"
        body, size = draw(chunked_body())
    else:
        body, size = b"", 0
    if body and draw(st.booleans()):
        headers += b"Expect: 100-continue\r\n"
    req = b"%s %s HTTP/1.1\r\n%s\r\n" % (method.encode(), target.encode(), headers)

    status = draw(st.sampled_from([200, 201, 204, 304, 404, 500]))
    no_body = method == "HEAD" or status in (204, 304)
    framing = draw(st.sampled_from(["length", "chunked"] + (["close"] if last else [])))
    resp_headers = b"Server: gen\r\n"
    if framing == "length":
        length = draw(st.integers(0, 5000))
        resp_headers += b"content-length: %d\r\n" % length
        resp_body, resp_size = (b"", 0) if no_body else (b"r" * length, length)
    elif framing == "chunked":
        resp_headers += b"Transfer-Encoding: chunked\r\n"
        resp_body, resp_size = (b"", 0) if no_body else draw(chunked_body())
    else:
        resp_body = b"" if no_body else b"until close " * draw(st.integers(0, 50))
        resp_size = len(resp_body)
    eol = b"\n" if draw(st.integers(0, 9)) == 0 else b"\r\n"
    final = (b"HTTP/1.1 %d Reason\r\n" % status + resp_headers + b"\r\n").replace(b"\r\n", eol)
    interim_wire = b"".join(b"HTTP/1.1 %d Info\r\n\r\n" % code for code in interim)
    expected = {
        "method": method,
        "target": target,
        "status": status,
        "request_body_size": size,
        "response_body_size": resp_size,
        "interim_status_codes": interim,
        "request_size": len(req) + len(body),
        "response_size": len(final) + len(resp_body),
    }
    return req + body, interim_wire + final + resp_body, expected


@st.composite
def conversation(draw: st.DrawFn) -> tuple[list, list[dict[str, Any]]]:
    n = draw(st.integers(1, 6))
    exchanges = [draw(exchange(last=i == n - 1)) for i in range(n)]
    pipelined = draw(st.booleans())
    ordered: list[tuple[str, bytes]] = []
    if pipelined:
        ordered = [("c2s", b"".join(e[0] for e in exchanges)), ("s2c", b"".join(e[1] for e in exchanges))]
    else:
        for req, resp, _ in exchanges:
            ordered += [("c2s", req), ("s2c", resp)]
    pieces = []
    for side, data in ordered:
        cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=4)))
        bounds = [0, *cuts, len(data)]
        pieces += [(side, data[lo:hi]) for lo, hi in zip(bounds, bounds[1:], strict=False) if hi > lo]
    return pieces, [e[2] for e in exchanges]


def test_fuzz_generated_conversations_parse_exactly(capsys: pytest.CaptureFixture[str]) -> None:
    count = 0

    @SETTINGS
    @given(case=conversation(), role=st.sampled_from([Role.CLIENT, Role.SERVER]))
    def run(case: tuple, role: Role) -> None:
        nonlocal count
        count += 1
        pieces, expected = case
        dirs = PERSPECTIVES[role]
        session = Http1Session()
        out = []
        for ts, (side, data) in enumerate(pieces):
            out += session.feed(dirs[side], data, ts)
        out += session.close(len(pieces))
        got = [
            {
                "method": t.request.method,
                "target": t.request.target,
                "status": t.response.status_code,
                "request_body_size": t.request.body_size,
                "response_body_size": t.response.body_size,
                "interim_status_codes": list(t.response.interim_status_codes),
                "request_size": t.request_size,
                "response_size": t.response_size,
            }
            for t in out
        ]
        assert got == expected
        assert session.parse_errors == 0 and session.internal_errors == 0
        assert all(t.role is role and t.start_ns <= t.end_ns for t in out)

    run()
    report(capsys, "generated conversations", count)
    assert count >= 100
