"""Every protocol session does work linear in its input, whatever the input (issue 20).

Anyone who can send bytes to a traced server chooses what the agent parses: a parser that
re-reads its buffer for every retry turns a few hundred KiB into seconds of agent CPU.  Work is
counted, never timed: the Python calls a session makes (``sys.setprofile``: every function and
builtin call, regex and ``bytes.find`` included) for an input of n units and of 4n units; linear
work gives a ratio of 4.  The C-level scans hide inside single calls, so the HTTP/1 search for
the end of a head (the scan that made the quadratic rescan) is also counted in bytes.
"""

from __future__ import annotations

import sys

import pytest

from receiver.protocols.base import Direction
from receiver.protocols.http1 import Http1Session
from receiver.protocols.http1 import parse as http1_parse
from tests.support.hostile_input import SESSIONS, feed_script, fixture_seeds

BIG_BUFFER = 1 << 20  # larger than any input here: the buffer cap never cuts the work short
RATIO = 5.5  # 4n units against n: linear is 4 (plus start-up costs: up to 4.8 seen), quadratic 16


def count_calls(proto: str, data: bytes, piece: int | None) -> int:
    """Python and builtin calls made by a fresh session fed ``data`` (whole, or in ``piece``s)."""
    session = SESSIONS[proto](max_buffer=BIG_BUFFER)
    calls = 0

    def profile(_frame, event, _arg):
        nonlocal calls
        if event == "call" or event == "c_call":
            calls += 1

    pieces = [data] if piece is None else [data[i : i + piece] for i in range(0, len(data), piece)]
    sys.setprofile(profile)
    try:
        for ts, chunk in enumerate(pieces):
            session.feed(Direction.INGRESS, chunk, ts)
        session.close(len(pieces))
    finally:
        sys.setprofile(None)
    assert session.internal_errors == 0
    return calls


def first_request(proto: str) -> bytes:
    """The first bytes the client sent in the first recorded connection of ``proto``."""
    return next(f.data for f in feed_script(fixture_seeds(proto)[0]) if f.direction is Direction.INGRESS)


def units(proto: str) -> dict[str, bytes]:
    request = first_request(proto)
    return {
        "pipelined": request,  # the same request again and again on one connection
        "cut": request[: len(request) // 2],  # heads that never complete
        "corrupt": bytes([request[0] ^ 0xFF]) + request[1:],  # resynchronisation after every one
        "long-line": b"x" * 64,  # one line that never ends
    }


CASES = [(proto, shape, piece) for proto in SESSIONS for shape in ("pipelined", "cut", "corrupt", "long-line")
         for piece in (None, 7)]


@pytest.mark.parametrize(("proto", "shape", "piece"), CASES)
def test_work_is_linear_in_the_input(proto, shape, piece):
    unit = units(proto)[shape]
    n = max(2, 4_000 // len(unit))
    small = count_calls(proto, unit * n, piece)
    large = count_calls(proto, unit * (4 * n), piece)
    assert large <= RATIO * small + 200, f"{proto}/{shape}: {small} calls for {n} units, {large} for {4 * n}"


class _SearchCounter:
    """Counts the bytes HTTP/1 searches for the empty line ending a head."""

    def __init__(self) -> None:
        self.searched = 0
        self.original = http1_parse.find_head_end

    def __call__(self, buf, start, end):
        self.searched += max(0, end - start)
        return self.original(buf, start, end)


@pytest.mark.parametrize("piece", [None, 1400, 23])
def test_http1_searches_each_byte_for_a_head_end_a_bounded_number_of_times(monkeypatch, piece):
    """The probe's input: request lines and fields that never end in an empty line.  Before the
    fix each retry searched ``max_buffer`` bytes again (2,900 copies: 1.7 s)."""
    unit = b"GET / HTTP/1.1\r\nA: b\r\n"
    counts = []
    for n in (2_900, 11_600):
        counter = _SearchCounter()
        monkeypatch.setattr(http1_parse, "find_head_end", counter)
        session = Http1Session()  # the default max_buffer (64 KiB): the bound the bug multiplied
        data = unit * n
        pieces = [data] if piece is None else [data[i : i + piece] for i in range(0, len(data), piece)]
        for ts, chunk in enumerate(pieces):
            session.feed(Direction.INGRESS, chunk, ts)
        assert session.internal_errors == 0
        counts.append(counter.searched)
        # Each byte searched at most ~twice (a retry re-reads the two bytes an empty line could straddle).
        assert counter.searched <= 3 * len(data), f"{counter.searched} bytes searched for {len(data)}"
    assert counts[1] <= RATIO * counts[0]


def test_http1_an_incomplete_start_line_in_small_writes_is_parsed_a_bounded_number_of_times(monkeypatch):
    """A request line arriving 16 bytes at a time: each write used to re-parse the whole line
    (regex, line-end search: 8 KiB lines cost 25 ms).  Counted: bytes handed to the head parser
    and to the hunt for a message start."""
    from receiver.protocols.http1 import session as http1_session

    offered = 0

    def counting(function):
        def wrapper(buf, pos, end, *args):
            nonlocal offered
            offered += end - pos
            return function(buf, pos, end, *args)

        return wrapper

    monkeypatch.setattr(http1_session, "parse_head_after", counting(http1_session.parse_head_after))
    monkeypatch.setattr(http1_session, "find_message_start", counting(http1_session.find_message_start))
    for prefix in (b"GET /", b"HTTP/1.1 200 "):
        offered = 0
        data = prefix + b"x" * 7_000
        session = Http1Session()
        for ts, at in enumerate(range(0, len(data), 16)):
            session.feed(Direction.INGRESS, data[at : at + 16], ts)
        assert session.internal_errors == 0
        assert offered <= 8 * len(data), f"{offered} bytes parsed for {len(data)}"


def test_http1_a_control_byte_ends_the_deferral_as_before():
    """Garbage written after a plausible start is still dropped at once: the next write's
    request is parsed as it was before small writes were deferred."""
    session = Http1Session()
    out = []
    for ts, data in enumerate([b"GET /abc", b"\x00\x01", b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
                               b"HTTP/1.1 204 No Content\r\n\r\n"]):
        direction = Direction.EGRESS if data.startswith(b"HTTP/") else Direction.INGRESS
        out += session.feed(direction, data, ts)
    assert [t.request.target for t in out] == ["/"]
    assert session.internal_errors == 0
