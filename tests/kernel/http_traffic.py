"""HTTP/1 traffic for the kernel pairing tests, run as a child process (the agent's own pid is
filtered in the kernel):

    python http_traffic.py <scenario> '<json params>'

Servers print ``{"port": N, "pid": P}`` as their first stdout line once they listen; every
scenario prints one JSON report as its last stdout line.  Times are ``time.monotonic_ns()``
(CLOCK_MONOTONIC, the kernel's ``bpf_ktime_get_ns``) taken around each syscall, so a test can
tell which syscall a kernel timestamp came from.  Standard library only.
"""

from __future__ import annotations

import base64
import http.client
import http.server
import json
import os
import socket
import sys
import threading
import time

now = time.monotonic_ns


def _report(**fields) -> None:
    print(json.dumps({"pid": os.getpid(), **fields}), flush=True)


def _listen() -> socket.socket:
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    print(json.dumps({"port": srv.getsockname()[1], "pid": os.getpid()}), flush=True)
    return srv


def _recv_exact(s: socket.socket, n: int) -> bytes:
    """n bytes in as few reads as the kernel allows (one, with MSG_WAITALL, unless a signal)."""
    out = b""
    while len(out) < n:
        got = s.recv(n - len(out), socket.MSG_WAITALL)
        if not got:
            raise ConnectionError(f"peer closed after {len(out)} of {n} bytes")
        out += got
    return out


# -- replaying a recorded connection (tests/fixtures/http1) -------------------------------------


def _replay(s: socket.socket, chunks: list[tuple[str, bytes]], mine: str, piece: int = 0) -> list[list[int]]:
    """Play our side of the chunks: write ours in one sendall each (or, with `piece`, in writes
    of that many bytes, at most 64 of them, the last one taking the rest), read the peer's with
    exact reads. Returns [index, t_before, t_after] per chunk (the syscalls that moved it)."""
    times = []
    for i, (side, data) in enumerate(chunks):
        t0 = now()
        if side == mine and piece:
            cut = min(len(data), 64 * piece)
            for at in range(0, cut, piece):
                s.sendall(data[at : at + piece])
            if cut < len(data):
                s.sendall(data[cut:])
        elif side == mine:
            s.sendall(data)
        else:
            _recv_exact(s, len(data))
        times.append([i, t0, now()])
    return times


def _fixture_chunks(path: str) -> list[tuple[str, bytes]]:
    with open(path) as f:
        fixture = json.load(f)
    return [(c["dir"], base64.b64decode(c["data"])) for c in fixture["chunks"]]


def scenario_replay_server(p: dict) -> None:
    """Accept one connection and play the server's side of a fixture; close; then wait for the
    client's close (it reads to EOF: a close-delimited body ends there)."""
    chunks = _fixture_chunks(p["fixture"])
    srv = _listen()
    s, _ = srv.accept()
    times = _replay(s, chunks, "s2c", p.get("piece", 0))
    t0 = now()
    s.close()
    close = [t0, now()]
    srv.close()
    _report(times=times, close=close)


def scenario_replay_client(p: dict) -> None:
    """Connect and play the client's side of a fixture; read to EOF; close."""
    chunks = _fixture_chunks(p["fixture"])
    s = socket.create_connection(("127.0.0.1", p["port"]))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    times = _replay(s, chunks, "c2s", p.get("piece", 0))
    t0 = now()
    while s.recv(65536):
        t0 = now()
    eof = now()
    s.close()
    _report(times=times, close=[t0, now()], eof=eof)


# -- a Python server that writes chunked, close-delimited and bodiless responses ----------------


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # quiet
        pass

    def _chunked(self, pieces: list[bytes], trailers: bool = False) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        if self.command == "HEAD":
            return
        for piece in pieces:  # one write per chunk
            self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.flush()
        self.wfile.write(b"0\r\nX-Sum: 1\r\n\r\n" if trailers else b"0\r\n\r\n")
        self.wfile.flush()

    def _body(self, code: int, body: bytes, close: bool = False) -> None:
        self.send_response(code)
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        else:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD" and code not in (204, 304):
            self.wfile.write(body)

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if not size:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return out
                out += self.rfile.read(size)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def do_GET(self) -> None:
        path = self.path
        if path.startswith("/chunked"):
            self._chunked([b"first chunk,", b"second," * 20, b"x" * 3000], trailers="trailers" in path)
        elif path == "/close":
            self._body(200, b"until close " * 100, close=True)
        elif path == "/nocontent":
            self._body(204, b"")
        elif path == "/notmodified":
            self._body(304, b"")
        elif path == "/early-hints":
            self.send_response_only(103)
            self.send_header("Link", "</s.css>; rel=preload")
            self.end_headers()
            self._body(200, b"after hints")
        else:
            self._body(200, b"hello " + path.encode())

    do_HEAD = do_GET

    def do_POST(self) -> None:
        body = self._read_body()
        self._body(201, b"got %d" % len(body))

    do_PUT = do_POST


def scenario_python_server(p: dict) -> None:
    """http.server (HTTP/1.1, one thread per connection) until stdin closes."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    print(json.dumps({"port": server.server_address[1], "pid": os.getpid()}), flush=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    sys.stdin.read()
    server.shutdown()
    _report()


# -- clients ------------------------------------------------------------------------------------


def scenario_keepalive_client(p: dict) -> None:
    """http.client on one keep-alive connection: each request [method, path, headers, body]
    (body a string or null); reports [status, response body length, t_before, t_after] each."""
    conn = http.client.HTTPConnection("127.0.0.1", p["port"], timeout=10)
    out = []
    for method, path, headers, body in p["requests"]:
        t0 = now()
        conn.request(method, path, body=body.encode() if body is not None else None, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        out.append([resp.status, len(data), t0, now()])
    conn.close()
    _report(responses=out)


def _more(s: socket.socket) -> bytes:
    piece = s.recv(65536)
    if not piece:
        raise ConnectionError("closed inside a response")
    return piece


def _read_response(s: socket.socket, buf: bytes) -> tuple[bytes, bytes]:
    """One final response (1xx interim ones skipped) framed by Content-Length or chunked; returns
    it and the bytes read past it."""
    start = 0
    while True:
        while b"\r\n\r\n" not in buf[start:]:
            buf += _more(s)
        end = buf.index(b"\r\n\r\n", start) + 4
        head = buf[start:end]
        status = int(head.split(b" ", 2)[1])
        if 100 <= status < 200:
            start = end
            continue
        break
    fields = {}
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        fields[name.strip().lower()] = value.strip()
    if fields.get(b"transfer-encoding", b"").lower() == b"chunked":
        pos = end
        while True:
            while b"\r\n" not in buf[pos:]:
                buf += _more(s)
            nl = buf.index(b"\r\n", pos)
            size = int(buf[pos:nl].split(b";")[0], 16)
            pos = nl + 2 + size + 2
            while len(buf) < pos:
                buf += _more(s)
            if not size:
                return buf[start:pos], buf[pos:]
    length = end + int(fields.get(b"content-length", b"0"))
    while len(buf) < length:
        buf += _more(s)
    return buf[start:length], buf[length:]


def scenario_raw_client(p: dict) -> None:
    """One connection: each step writes its bytes (base64) in one syscall (`gap_ms` apart) and,
    when it says `read`, reads one whole response before the next step; finally reads until the
    peer closes (or `linger_ms` of silence); closes."""
    s = socket.create_connection(("127.0.0.1", p["port"]))
    s.settimeout(10)
    sent, responses, buf = [], [], b""
    for step in p["steps"]:
        raw = base64.b64decode(step["write"])
        t0 = now()
        s.sendall(raw)
        sent.append([len(raw), t0, now()])
        if step.get("read"):
            resp, buf = _read_response(s, buf)
            responses.append(resp.split(b"\r\n", 1)[0].decode("latin-1"))
        if p.get("gap_ms"):
            time.sleep(p["gap_ms"] / 1000)
    s.settimeout(p.get("linger_ms", 200) / 1000)
    rest = buf
    while True:
        try:
            piece = s.recv(65536)
        except socket.timeout:
            break
        if not piece:
            break
        rest += piece
    s.close()
    _report(sent=sent, responses=responses, rest=base64.b64encode(rest).decode())


def scenario_expect_client(p: dict) -> None:
    """A request with Expect: 100-continue whose body is sent after the interim response."""
    s = socket.create_connection(("127.0.0.1", p["port"]))
    body = b"b" * p["size"]
    s.sendall(b"PUT /up HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\nExpect: 100-continue\r\n\r\n" % len(body))
    interim = s.recv(65536)
    s.sendall(body)
    final, _ = _read_response(s, b"")
    s.close()
    _report(interim=interim.decode("latin-1"), final=final.decode("latin-1"))


def scenario_burst(p: dict) -> None:
    """`count` requests on `connections` keep-alive connections as fast as they go (one write
    each, the response read to its end by Content-Length; a connection the server closes is
    opened again); reports the statuses seen."""
    def connect() -> socket.socket:
        return socket.create_connection(("127.0.0.1", p["port"]))

    conns = [connect() for _ in range(p["connections"])]
    statuses: dict[str, int] = {}
    paths = p["paths"]
    for i in range(p["count"]):
        slot = i % len(conns)
        s = conns[slot]
        s.sendall(b"GET %s HTTP/1.1\r\nHost: burst\r\n\r\n" % paths[i % len(paths)].encode())
        resp, rest = _read_response(s, b"")
        assert not rest
        head = resp[: resp.index(b"\r\n\r\n")]
        status = head.split(b" ", 2)[1].decode()
        statuses[status] = statuses.get(status, 0) + 1
        if b"\r\nconnection: close" in head.lower():
            s.close()
            conns[slot] = connect()
    for s in conns:
        s.close()
    _report(statuses=statuses)


SCENARIOS = {
    "replay_server": scenario_replay_server,
    "replay_client": scenario_replay_client,
    "python_server": scenario_python_server,
    "keepalive_client": scenario_keepalive_client,
    "raw_client": scenario_raw_client,
    "expect_client": scenario_expect_client,
    "burst": scenario_burst,
}


def main(argv: list[str]) -> int:
    socket.setdefaulttimeout(20)  # no scenario blocks for ever on a silent peer
    SCENARIOS[argv[1]](json.loads(argv[2]) if len(argv) > 2 else {})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
