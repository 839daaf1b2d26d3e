"""HTTP/1 pairing in the kernel against real servers and clients: nginx driven by curl, by
http.client on one keep-alive connection and by a client writing its head a byte at a time;
Python's http.server writing chunked, interim, bodiless and close-delimited responses.

Both ends are traced and paired: each request gives exactly one ERX_EV_HTTP_TX record in the
server and one in the client, and no data record leaves the kernel for those connections."""

from __future__ import annotations

import subprocess
import tempfile
from email.utils import formatdate
from pathlib import Path

import pytest

from receiver.capture.events import HttpTxEvent
from tests.support.servers import NginxServer

from .harness import Capture, started_capture
from .http_support import b64, data_records, describe, kernel_transactions, run, server, spawn

pytestmark = pytest.mark.kernel

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
TRACESTATE = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7,vendor=" + "x" * 80


@pytest.fixture(scope="module")
def cap(kernel) -> Capture:
    with started_capture(http_pairing=True) as c:
        yield c


@pytest.fixture(scope="module")
def nginx(cap: Capture):
    with tempfile.TemporaryDirectory() as tmp:
        extra = f"location /sendfile/ {{ sendfile on; alias {tmp}/nginx/html/; }}"
        with NginxServer(Path(tmp), extra_locations=extra) as n:
            for pid in n.pids():
                cap.watch(pid)
            yield n


def nginx_records(cap: Capture, nginx: NginxServer, client_ports: int | set[int], n: int) -> list:
    """The records of nginx's connections from the client's ports, once it paired n
    transactions on them."""
    ports = {client_ports} if isinstance(client_ports, int) else client_ports

    def of_conn(evs: list) -> list:
        conns = {e.conn_id for e in evs if getattr(e, "tuple", None) and e.tuple.remote_port in ports}
        return [e for e in evs if getattr(e, "conn_id", None) in conns]

    def done(pid_evs: list) -> bool:
        return len(kernel_transactions(of_conn(pid_evs))) >= n

    worker = max(nginx.pids())  # the worker is forked after the master
    return of_conn(cap.events_until(worker, done))


def facts(e: HttpTxEvent) -> tuple:
    return (e.method, e.target, e.status, e.req_body_size, e.resp_body_size)


def test_curl_keepalive_one_record_per_request(cap: Capture, nginx: NginxServer) -> None:
    urls = ["/index.html", "/big.bin", "/status/404", "/status/204", "/sendfile/big.bin"]
    args = ["curl", "-s", "-w", "%{http_code} "]
    for u in urls:
        args += ["-o", "/dev/null", nginx.url + u]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE)
    cap.watch(proc.pid)
    out, _ = proc.communicate(timeout=30)
    assert out.split() == [b"200", b"200", b"404", b"204", b"200"]
    client = cap.events_until(proc.pid, lambda evs: len(kernel_transactions(evs)) >= len(urls))
    client_txs = kernel_transactions(client)
    expected = [("GET", "/index.html", 200, 0, 30), ("GET", "/big.bin", 200, 0, 100_000),
                ("GET", "/status/404", 404, 0, 153), ("GET", "/status/204", 204, 0, 0),
                ("GET", "/sendfile/big.bin", 200, 0, 100_000)]
    assert [facts(e) for e in client_txs] == expected, describe(client)
    assert data_records(cap, client) == []
    port = client_txs[0].tuple.local_port
    srv = nginx_records(cap, nginx, port, len(urls))
    srv_txs = kernel_transactions(srv)
    assert [facts(e) for e in srv_txs] == expected, describe(srv)
    assert data_records(cap, srv) == []
    for c, s in zip(client_txs, srv_txs):
        assert c.role == cap.c("ERX_ROLE_CLIENT") and s.role == cap.c("ERX_ROLE_SERVER")
        assert c.direction == cap.c("ERX_DIR_EGRESS") and s.direction == cap.c("ERX_DIR_INGRESS")
        # the client writes before the server reads; the server writes before the client reads
        assert c.start_ns <= s.start_ns <= s.end_ns <= c.end_ns
        assert (c.host, c.user_agent) == (f"127.0.0.1:{nginx.port}", "curl/7.88.1") == (s.host, s.user_agent)
        assert c.req_wire_size == s.req_wire_size == c.req_head_size
        assert c.resp_wire_size == s.resp_wire_size == s.resp_head_size + s.resp_body_size
        assert c.pid == proc.pid and s.pid == max(nginx.pids())
    for txs in (client_txs, srv_txs):  # one after the other on the keep-alive connection
        assert all(a.end_ns <= b.start_ns for a, b in zip(txs, txs[1:]))
    assert srv_txs[-1].syscall == cap.c("ERX_SYS_SENDFILE")  # the body's last bytes went by sendfile


def test_http_client_keepalive(cap: Capture, nginx: NginxServer) -> None:
    long_target = "/index.html?" + "q=" + "a" * 400
    # nginx answers 304 to the exact Last-Modified of the file
    modified = formatdate((nginx.root / "html" / "index.html").stat().st_mtime, usegmt=True)
    requests = [
        ["GET", "/index.html", {"User-Agent": "keepalive-test/1"}, None],
        ["HEAD", "/big.bin", {}, None],
        ["GET", "/status/204", {}, None],
        ["GET", "/status/500", {}, None],
        ["POST", "/index.html", {"Content-Type": "text/plain"}, "p" * 1000],
        ["GET", "/index.html", {"If-Modified-Since": modified}, None],
        ["GET", "/index.html?a=1", {"traceparent": TRACEPARENT, "tracestate": TRACESTATE}, None],
        ["GET", long_target, {}, None],
    ]
    done = run(cap, "keepalive_client", port=nginx.port, requests=requests)
    client = cap.events_until(done.pid, lambda evs: len(kernel_transactions(evs)) >= len(requests))
    txs = kernel_transactions(client)
    assert data_records(cap, client) == [], describe(client)
    statuses = [r[0] for r in done.report["responses"]]
    assert statuses == [200, 200, 204, 500, 405, 304, 200, 200]
    assert [e.status for e in txs] == statuses
    assert [e.method for e in txs] == [r[0] for r in requests]
    assert [e.target for e in txs[:7]] == [r[1] for r in requests[:7]]
    assert [e.resp_body_size for e in txs] == [r[1] for r in done.report["responses"]]
    assert txs[0].user_agent == "keepalive-test/1" and txs[1].user_agent == ""
    assert txs[1].resp_body_size == 0 < txs[1].resp_wire_size  # HEAD: a length, no body
    assert [e.req_body_size for e in txs] == [0, 0, 0, 0, 1000, 0, 0, 0]
    assert txs[4].req_wire_size == txs[4].req_head_size + 1000
    # W3C context, as sent; tracestate kept up to its bound, and said so
    assert txs[6].traceparent == TRACEPARENT
    assert txs[6].tracestate == TRACESTATE[: cap.c("ERX_HTTP_TRACESTATE_MAX")]
    assert txs[6].http_flags & cap.c("ERX_HTTP_F_TRACESTATE_CUT")
    assert all(not e.traceparent for e in txs[:6])
    # a target longer than kept: its start, its real length, flagged
    assert txs[7].target == long_target[: cap.c("ERX_HTTP_TARGET_MAX")]
    assert txs[7].target_wire_len == len(long_target)
    assert txs[7].http_flags & cap.c("ERX_HTTP_F_TARGET_CUT")
    # each transaction between the client's request write and its response read
    for e, (_, _, t0, t1) in zip(txs, done.report["responses"]):
        assert t0 <= e.start_ns <= e.end_ns <= t1
        assert e.req_tid == e.tid == done.pid
    # nginx closes a connection after some errors; http.client then opens another
    srv = nginx_records(cap, nginx, {e.tuple.local_port for e in txs}, len(requests))
    assert [(e.method, e.status, e.resp_body_size) for e in kernel_transactions(srv)] == [
        (e.method, e.status, e.resp_body_size) for e in txs]
    assert data_records(cap, srv) == []


def test_connection_close(cap: Capture, nginx: NginxServer) -> None:
    proc = subprocess.Popen(["curl", "-s", "-o", "/dev/null", "-H", "Connection: close", nginx.url + "/index.html"])
    cap.watch(proc.pid)
    assert proc.wait(30) == 0
    client = cap.events_of(proc)
    (tx,) = kernel_transactions(client)
    assert (tx.method, tx.target, tx.status, tx.resp_body_size) == ("GET", "/index.html", 200, 30)
    assert tx.http_flags & cap.c("ERX_HTTP_F_REQ_CONN_CLOSE")
    assert tx.http_flags & cap.c("ERX_HTTP_F_RESP_CONN_CLOSE")
    (srv,) = kernel_transactions(nginx_records(cap, nginx, tx.tuple.local_port, 1))
    assert facts(srv) == facts(tx)


def test_client_writing_its_head_a_byte_at_a_time(cap: Capture, nginx: NginxServer) -> None:
    head = b"GET /index.html?slow=1 HTTP/1.1\r\nHost: bytewise\r\nUser-Agent: one-byte/1\r\nConnection: close\r\n\r\n"
    done = run(cap, "raw_client", port=nginx.port, steps=[{"write": b64(head[i : i + 1])} for i in range(len(head))])
    client = cap.events_until(done.pid, lambda evs: len(kernel_transactions(evs)) >= 1)
    (tx,) = kernel_transactions(client)
    assert data_records(cap, client) == [], describe(client)
    assert (tx.method, tx.target, tx.host, tx.user_agent, tx.status) == (
        "GET", "/index.html?slow=1", "bytewise", "one-byte/1", 200)
    assert tx.req_head_size == tx.req_wire_size == len(head)
    first = done.report["sent"][0]
    assert first[1] <= tx.start_ns <= first[2]  # the syscall that carried the first byte
    (srv,) = kernel_transactions(nginx_records(cap, nginx, tx.tuple.local_port, 1))
    assert (srv.target, srv.host, srv.req_head_size, srv.status) == (tx.target, tx.host, len(head), 200)


@pytest.fixture(scope="module")
def pyserver(cap: Capture):
    with server(cap, "python_server") as (proc, port):
        yield proc.pid, port


def test_python_server_chunked_interim_bodiless_and_close(cap: Capture, pyserver) -> None:
    pid, port = pyserver
    requests = [
        ["GET", "/chunked", {}, None],
        ["GET", "/chunked-trailers", {}, None],
        ["HEAD", "/chunked", {}, None],
        ["GET", "/nocontent", {}, None],
        ["GET", "/notmodified", {}, None],
        ["POST", "/form", {"Content-Type": "text/plain"}, "f" * 777],
        ["GET", "/close", {}, None],
    ]
    done = run(cap, "keepalive_client", port=port, requests=requests)
    client = cap.events_of(done)
    txs = kernel_transactions(client)
    assert data_records(cap, client) == [], describe(client)
    chunked_body = len(b"first chunk,") + len(b"second," * 20) + 3000
    assert [(e.method, e.target, e.status, e.resp_body_size) for e in txs] == [
        ("GET", "/chunked", 200, chunked_body), ("GET", "/chunked-trailers", 200, chunked_body),
        ("HEAD", "/chunked", 200, 0), ("GET", "/nocontent", 204, 0), ("GET", "/notmodified", 304, 0),
        ("POST", "/form", 201, len(b"got 777")), ("GET", "/close", 200, len(b"until close ") * 100)]
    chunked = cap.c("ERX_HTTP_F_RESP_CHUNKED")
    assert [bool(e.http_flags & chunked) for e in txs] == [True, True, False, False, False, False, False]
    # chunk framing counts on the wire: size lines, CRLFs, the last chunk (and its trailer)
    framing = sum(len(b"%x\r\n\r\n" % n) for n in (12, 140, 3000)) + len(b"0\r\n\r\n")
    assert txs[0].resp_wire_size == txs[0].resp_head_size + chunked_body + framing
    assert txs[1].resp_wire_size == txs[0].resp_wire_size + len(b"X-Sum: 1\r\n")
    assert txs[5].req_body_size == 777
    last = txs[6]
    assert last.http_flags & cap.c("ERX_HTTP_F_CLOSE_DELIMITED")
    assert last.syscall == cap.c("ERX_SYS_CLOSE")  # the close ended its body
    for e, (_, _, t0, t1) in zip(txs[:6], done.report["responses"]):
        assert t0 <= e.start_ns <= e.end_ns <= t1
    # the server's view of the same connection, from its own records
    srv = cap.events_until(pid, lambda evs: len(kernel_transactions(evs)) >= len(requests))
    srv_txs = [e for e in kernel_transactions(srv) if e.tuple.remote_port == txs[0].tuple.local_port]
    assert [(e.method, e.status, e.resp_body_size, e.resp_wire_size, e.req_body_size) for e in srv_txs] == [
        (e.method, e.status, e.resp_body_size, e.resp_wire_size, e.req_body_size) for e in txs]


def test_interim_response_then_final(cap: Capture, pyserver) -> None:
    """103 Early Hints before the final response: noted on the transaction, in no size."""
    _, port = pyserver
    steps = [{"write": b64(b"GET /early-hints HTTP/1.1\r\nHost: t\r\n\r\n"), "read": True},
             {"write": b64(b"GET /after HTTP/1.1\r\nHost: t\r\n\r\n"), "read": True}]
    done = run(cap, "raw_client", port=port, steps=steps)
    assert done.report["responses"] == ["HTTP/1.1 200 OK"] * 2
    client = cap.events_of(done)
    txs = kernel_transactions(client)
    assert data_records(cap, client) == [], describe(client)
    assert [(e.target, e.status, e.interim_status_codes, e.n_interim) for e in txs] == [
        ("/early-hints", 200, (103,), 1), ("/after", 200, (), 0)]
    assert txs[0].resp_wire_size == txs[0].resp_head_size + len(b"after hints")


def test_request_bodies_chunked_and_split(cap: Capture, pyserver) -> None:
    """A chunked request body, and a Content-Length body written in three pieces after its
    head: each is one transaction with the body's size."""
    _, port = pyserver
    chunked = (b"PUT /up HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\n\r\n")
    head = b"POST /up HTTP/1.1\r\nHost: t\r\nContent-Length: 30\r\n\r\n"
    steps = [{"write": b64(chunked), "read": True}, {"write": b64(head)}, {"write": b64(b"a" * 10)},
             {"write": b64(b"b" * 10)}, {"write": b64(b"c" * 10), "read": True}]
    done = run(cap, "raw_client", port=port, steps=steps, gap_ms=20)
    assert done.report["responses"] == ["HTTP/1.1 201 Created"] * 2
    client = cap.events_of(done)
    txs = kernel_transactions(client)
    assert data_records(cap, client) == [], describe(client)
    assert [(e.method, e.status, e.req_body_size) for e in txs] == [("PUT", 201, 12), ("POST", 201, 30)]
    assert txs[0].http_flags & cap.c("ERX_HTTP_F_REQ_CHUNKED")
    assert txs[0].req_wire_size == len(chunked)
    assert txs[1].req_wire_size == len(head) + 30


def test_repeated_heads_and_heads_of_the_same_length(cap: Capture, pyserver) -> None:
    """A keep-alive connection's repeated heads are recognised again (not parsed again); heads of
    the same length that differ are told apart."""
    _, port = pyserver
    paths = ["/k1", "/k1", "/k2", "/k1", "/k3", "/k3"]
    requests = [["GET", p, {"User-Agent": "same/1"}, None] for p in paths]
    requests.append(["GET", "/k1", {"User-Agent": "same/2"}, None])
    done = run(cap, "keepalive_client", port=port, requests=requests)
    client = cap.events_of(done)
    txs = kernel_transactions(client)
    assert data_records(cap, client) == [], describe(client)
    assert [(e.target, e.user_agent, e.resp_body_size) for e in txs] == [
        (p, "same/1", len(b"hello " + p.encode())) for p in paths] + [("/k1", "same/2", len(b"hello /k1"))]
    assert len({e.req_head_size for e in txs}) == 1  # all the same length
