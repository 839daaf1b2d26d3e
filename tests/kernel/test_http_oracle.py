"""The oracle: every recorded connection of tests/fixtures/http1 replayed over real loopback
sockets (a replay server and client writing the recorded bytes in the recorded chunks), seen at
once by one loader pairing HTTP/1 in the kernel and one that does not.

For both sides (the replay server and the replay client are both traced), the transactions the
kernel paired plus those the payload path's parser (Http1Session) makes of the data records the
pairing loader handed over must equal what the parser makes of the other loader's data records:
method, target, version, Host, User-Agent, traceparent, status, interim codes, body and wire
sizes. Each kernel timestamp must come from the syscall the parser's would: the one that moved
the chunk where the request starts, and the chunk where the response ends (or the close). Each
fixture is replayed with its chunks written whole, and a byte and 7 bytes per write.
Fixtures with pipelined requests or Expect: 100-continue are handed over, counted by reason;
every other fixture is paired whole (no data record of its connection leaves the kernel)."""

from __future__ import annotations

import base64
import json

import pytest

from receiver.protocols.base import Direction, Role
from receiver.protocols.http1 import Http1Session

from .harness import Capture, started_capture
from .http_support import (
    FIXTURES,
    counters,
    data_records,
    delta,
    describe,
    finish,
    kernel_transactions,
    kernel_view,
    python_transactions,
    python_view,
    spawn,
)

pytestmark = pytest.mark.kernel

FIXTURE_NAMES = sorted(p.stem for p in FIXTURES.glob("*.json"))
# Fixtures the kernel hands over: why, and how many transactions it pairs before (the first
# pipelined request is paired: the requests go over from the second one, the responses once
# the first ended; Expect hands over from the first request).
HANDED_OVER = {
    "nginx_pipelined_raw": ("ERX_CNT_HTTP_FALLBACK_PIPELINED", 1),
    "pyserver_pipelined_raw": ("ERX_CNT_HTTP_FALLBACK_PIPELINED", 1),
    "nginx_put_expect_continue_curl": ("ERX_CNT_HTTP_FALLBACK_EXPECT", 0),
    "pyserver_post_expect_continue_curl": ("ERX_CNT_HTTP_FALLBACK_EXPECT", 0),
}
# Which direction a chunk travels, seen from each side.
PERSPECTIVE = {
    "server": {"c2s": Direction.INGRESS, "s2c": Direction.EGRESS},
    "client": {"c2s": Direction.EGRESS, "s2c": Direction.INGRESS},
}


@pytest.fixture(scope="module")
def paired(kernel) -> Capture:
    with started_capture(http_pairing=True, capture_size=16384) as cap:
        yield cap


@pytest.fixture(scope="module")
def unpaired(kernel) -> Capture:
    with started_capture(capture_size=16384) as cap:
        yield cap


def chunk_indexes(chunks: list[tuple[str, bytes]], side: str) -> list[tuple[int, int]]:
    """(start, end) of each transaction as chunk indexes (len(chunks): the close), from the
    parser fed the recorded chunks."""
    session = Http1Session()
    out = []
    for i, (d, data) in enumerate(chunks):
        out += session.feed(PERSPECTIVE[side][d], data, i)
    out += session.close(len(chunks))
    return [(t.start_ns, t.end_ns) for t in out]


def within(ts: int, window: list[int]) -> bool:
    return window[0] <= ts <= window[1]


@pytest.mark.parametrize("piece", [0, 1, 7], ids=["whole", "1-byte-writes", "7-byte-writes"])
@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_fixture_replayed_pairs_as_the_parser_does(paired: Capture, unpaired: Capture, name: str, piece: int) -> None:
    """piece: each side writes its chunks whole, or 1 or 7 bytes per write (the first 64 writes
    of a chunk: heads, chunk-size lines and CRLFs split across syscalls); the reader reads each
    chunk whole."""
    path = FIXTURES / f"{name}.json"
    fixture = json.loads(path.read_text())
    chunks = [(c["dir"], base64.b64decode(c["data"])) for c in fixture["chunks"]]
    before = counters(paired)
    srv_proc = spawn([paired, unpaired], "replay_server", fixture=str(path), piece=piece)
    port = json.loads(srv_proc.stdout.readline())["port"]
    client = finish(spawn([paired, unpaired], "replay_client", fixture=str(path), port=port, piece=piece))
    srv = finish(srv_proc)
    sides = {"server": srv, "client": client}
    reason, paired_first = HANDED_OVER.get(name, (None, None))

    for side, done in sides.items():
        on = paired.events_of(done)
        off = unpaired.events_of(done)
        kernel = kernel_transactions(on)
        errors: list[int] = []
        handed = python_transactions(paired, on, errors)
        oracle = python_transactions(unpaired, off)
        role = Role.SERVER if side == "server" else Role.CLIENT
        context = f"{side}: paired {describe(on)}"
        # The oracle saw what was recorded.
        assert [
            {"method": v["method"], "target": v["target"], "status": v["status"],
             "request_body_size": v["request_body"], "response_body_size": v["response_body"],
             "interim_status_codes": v["interim"]}
            for v in map(python_view, oracle)
        ] == fixture["transactions"], context
        assert all(t.role is role for t in oracle + handed)
        # Together, the kernel's transactions and the handed-over bytes' give the oracle's.
        got = sorted([kernel_view(e) for e in kernel] + [python_view(t) for t in handed], key=json.dumps)
        assert got == sorted((python_view(t) for t in oracle), key=json.dumps), context
        if reason is None:
            assert data_records(paired, on) == [], context
            assert len(kernel) == len(oracle)
        else:  # handed over at a request: the parser took the rest without a hitch
            assert data_records(paired, on), context
            assert len(kernel) == paired_first and errors == [0], (context, errors)
        # Timestamps: from the syscalls that moved the chunks where the parser puts them.
        expected = chunk_indexes(chunks, side)
        times = {i: [t0, t1] for i, t0, t1 in done.report["times"]}
        windows = {**times, len(chunks): done.report["close"]}
        unmatched = [(python_view(t), s, e) for t, (s, e) in zip(oracle, expected)]
        for e in kernel:  # in order: the first oracle transaction with the same facts
            at = next(i for i, (v, _, _) in enumerate(unmatched) if v == kernel_view(e))
            _, start, end = unmatched.pop(at)
            assert within(e.start_ns, windows[start]), (side, e.target, "start", start)
            assert within(e.end_ns, windows[end]), (side, e.target, "end", end)
            assert e.start_ns <= e.end_ns
            assert e.role == int(role)
            assert e.direction == int(Direction.INGRESS if side == "server" else Direction.EGRESS)
        for t, (s, e) in zip(oracle, expected):  # the oracle itself, for the same reason
            assert within(t.start_ns, windows[s]) and within(t.end_ns, windows[e]), (side, "oracle")
    if reason is not None:
        assert delta(before, counters(paired)).get(reason, 0) >= 1
