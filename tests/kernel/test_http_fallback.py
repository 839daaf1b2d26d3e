"""What the kernel does not pair goes to the payload path at a message boundary, counted by why:
pipelined requests, Expect: 100-continue, Upgrade and CONNECT, heads longer than the kernel
parses, heads cut by the close. In every case the payload path's parser, fed the data records
that leave the kernel, completes what the kernel did not pair, without a parse error.

Counters are the loader's, and other processes on the machine run through the same programs:
the counts are checked as at least what this test's traffic caused."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from tests.support.servers import NginxServer

from .harness import Capture, started_capture
from .http_support import (
    b64,
    counters,
    data_records,
    delta,
    describe,
    kernel_transactions,
    python_transactions,
    run,
    server,
)

pytestmark = pytest.mark.kernel


@pytest.fixture(scope="module")
def cap(kernel) -> Capture:
    with started_capture(http_pairing=True) as c:
        yield c


@pytest.fixture(scope="module")
def pyserver(cap: Capture):
    with server(cap, "python_server") as (proc, port):
        yield proc.pid, port


def side(cap: Capture, pid: int, client_port: int | None = None, n: int = 0) -> list:
    """A process's records (of the connection from client_port, for a server)."""
    def of_conn(evs: list) -> list:
        if client_port is None:
            return evs
        conns = {e.conn_id for e in evs if getattr(e, "tuple", None) and e.tuple.remote_port == client_port}
        return [e for e in evs if getattr(e, "conn_id", None) in conns]

    def done(evs: list) -> bool:
        mine = of_conn(evs)
        return len(kernel_transactions(mine)) + len(python_transactions(cap, mine)) >= n

    return of_conn(cap.events_until(pid, done))


def both_paths(cap: Capture, evs: list) -> tuple[list, list, list[int]]:
    errors: list[int] = []
    return kernel_transactions(evs), python_transactions(cap, evs, errors), errors


def test_pipelined_requests(cap: Capture) -> None:
    """Three requests in one write: the first is paired (its response followed to its end in the
    kernel), the requests go over from the second, the responses once the first ended."""
    reqs = b"".join(b"GET %s HTTP/1.1\r\nHost: p\r\n\r\n" % p for p in (b"/index.html", b"/status/404", b"/big.bin"))
    before = counters(cap)
    with tempfile.TemporaryDirectory() as tmp, NginxServer(Path(tmp)) as nginx:
        for pid in nginx.pids():
            cap.watch(pid)
        done = run(cap, "raw_client", port=nginx.port, steps=[{"write": b64(reqs)}], linger_ms=500)
        client = side(cap, done.pid)
        k, p, errors = both_paths(cap, client)
        assert [(e.target, e.status) for e in k] == [("/index.html", 200)], describe(client)
        assert [(t.request.target, t.response.status_code) for t in p] == [("/status/404", 404), ("/big.bin", 200)]
        assert errors == [0] and p[1].response.body_size == 100_000
        assert data_records(cap, client)[0].payload.startswith(b"GET /status/404 ")  # from a request on
        port = k[0].tuple.local_port
        srv = side(cap, max(nginx.pids()), port, 3)
        k, p, errors = both_paths(cap, srv)
        assert [(e.target, e.status) for e in k] == [("/index.html", 200)], describe(srv)
        assert [(t.request.target, t.response.status_code) for t in p] == [("/status/404", 404), ("/big.bin", 200)]
        assert errors == [0]
    assert delta(before, counters(cap)).get("ERX_CNT_HTTP_FALLBACK_PIPELINED", 0) >= 2


def test_expect_continue(cap: Capture, pyserver) -> None:
    """Expect: 100-continue hands the connection over at that request (nothing was paired yet:
    from its start); the parser sees the interim response and the final one."""
    pid, port = pyserver
    before = counters(cap)
    done = run(cap, "expect_client", port=port, size=3000)
    assert done.report["interim"].startswith("HTTP/1.1 100 Continue")
    client = side(cap, done.pid)
    k, p, errors = both_paths(cap, client)
    assert k == [] and errors == [0], describe(client)
    assert [(t.request.method, t.request.body_size, t.response.status_code, t.response.interim_status_codes)
            for t in p] == [("PUT", 3000, 201, (100,))]
    first = data_records(cap, client)[0]
    assert first.payload.startswith(b"PUT /up HTTP/1.1\r\n")
    srv = side(cap, pid, first.tuple.local_port, 1)
    k, p, errors = both_paths(cap, srv)
    assert k == [] and [t.response.status_code for t in p] == [201], describe(srv)
    assert set(errors) == {0}
    assert delta(before, counters(cap)).get("ERX_CNT_HTTP_FALLBACK_EXPECT", 0) >= 2


@pytest.mark.parametrize("request_head", [
    b"GET /ws HTTP/1.1\r\nHost: u\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
    b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
], ids=["upgrade", "connect"])
def test_upgrade_and_connect(cap: Capture, pyserver, request_head: bytes) -> None:
    """Upgrade and CONNECT hand over at the request (the server here answers normally; CONNECT
    with 501 and a close)."""
    _, port = pyserver
    before = counters(cap)
    method = request_head.split(b" ")[0].decode()
    steps = [{"write": b64(request_head), "read": True}]
    if method == "GET":  # the connection stays with the payload path
        steps.append({"write": b64(b"GET /after HTTP/1.1\r\nHost: u\r\n\r\n"), "read": True})
    done = run(cap, "raw_client", port=port, steps=steps)
    client = side(cap, done.pid)
    k, p, errors = both_paths(cap, client)
    assert k == [] and errors == [0], describe(client)
    assert [t.request.method for t in p] == [method] + (["GET"] if method == "GET" else [])
    assert delta(before, counters(cap)).get("ERX_CNT_HTTP_FALLBACK_UPGRADE", 0) >= 1


def test_head_longer_than_the_kernel_parses(cap: Capture, pyserver) -> None:
    """A head past ERX_HTTP_MAX_HEAD, in one write after a paired request: handed over at it."""
    _, port = pyserver
    big = b"GET /big-head HTTP/1.1\r\nHost: b\r\nX-Filler: " + b"f" * 3000 + b"\r\n\r\n"
    steps = [{"write": b64(b"GET /first HTTP/1.1\r\nHost: b\r\n\r\n"), "read": True},
             {"write": b64(big), "read": True}]
    before = counters(cap)
    done = run(cap, "raw_client", port=port, steps=steps)
    client = side(cap, done.pid)
    k, p, errors = both_paths(cap, client)
    assert [e.target for e in k] == ["/first"], describe(client)
    assert [(t.request.target, t.request.head_size) for t in p] == [("/big-head", len(big))] and errors == [0]
    assert delta(before, counters(cap)).get("ERX_CNT_HTTP_FALLBACK_HEAD_TOO_LARGE", 0) >= 1


def test_head_cut_by_the_close(cap: Capture, pyserver) -> None:
    """Half a head in two writes, then the close: its bytes reach user space (one record with
    the first write's facts), as they would without the pairing."""
    _, port = pyserver
    first, second = b"GET /never HTTP/1.1\r\n", b"Host: c\r\nX-Half: "
    before = counters(cap)
    done = run(cap, "raw_client", port=port, steps=[{"write": b64(first)}, {"write": b64(second)}], linger_ms=50)
    client = side(cap, done.pid)
    assert kernel_transactions(client) == []
    (rec,) = data_records(cap, client)
    assert rec.payload == first + second and rec.total_len == len(first + second)
    sent = done.report["sent"][0]
    assert sent[1] <= rec.ts_exit_ns <= sent[2]  # the syscall that carried its first byte
    assert delta(before, counters(cap)).get("ERX_CNT_HTTP_FALLBACK_TRUNCATED", 0) >= 1
