"""TLS stacks beyond an ``SSL*`` bound to its socket, end to end: real servers, real clients,
the real kernel.

* memory BIOs: an asyncio HTTPS server (``asyncio.start_server(ssl=...)``) and an aiohttp one,
  whose TLS runs in ``ssl.MemoryBIO`` (the event loop moves the ciphertext): 50 concurrent
  keep-alive connections each, every request one SERVER span with its path, status,
  ``url.scheme=https`` and the client port of the connection it was sent on;
* the same on one event loop serving HTTPS and plain HTTP at once (schemes never mixed), and
  an asyncio HTTPS client (its connections tied by their first handshake write);
* plaintext that belongs to no connection (TLS between two memory BIOs, no socket) is counted
  ``tls_unattached{reason="no_socket"}``;
* Go crypto/tls: an HTTPS server built here from source with the system's Go (standard
  library), with its symbols and DWARF and stripped (``-s -w``: functions found in
  ``.gopclntab``, offsets from the per-version table), driven by curl over HTTP/1.1
  (keep-alive) and HTTP/2; a gRPC-Go server over TLS (Debian's golang-google-grpc-dev), called
  by a grpcio client: ``rpc.*`` SERVER spans with their status;
* OpenSSL linked into an executable (libssl.a, functions in .symtab only): a C HTTPS server
  built here, driven by curl, server spans;
* ``ebpf-receiver check --config`` lists those servers' TLS stacks and their coverage.

The receiver runs in this process (``EbpfReceiver`` with consumers); servers and clients are
child processes (the agent's own pid is never traced).
"""

from __future__ import annotations

import collections
import json
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from receiver.config import load_config_text
from receiver.discovery.go_tls import inspect_go_binary
from receiver.receivers.ebpf.receiver import EbpfReceiver
from tests.support.go_build import GO_GRPC_TLS_SERVER, GO_TLS_SERVER, go_build
from tests.support.ports import wait_until
from tests.support.static_openssl import build_static_openssl_server
from tests.support.tls import MEMORY_BIO_SERVER, Certificate, PythonTlsServer, make_certificate
from tls_support import Sink, pid_of, sink_capture, wait_for

pytestmark = [pytest.mark.kernel, pytest.mark.e2e]

CONFIG = """
receivers:
  ebpf:
    poll_interval: 20ms
    # Exact counts: no CPU budget (over it the kernel turns HTTP/1 transactions into RED
    # aggregates instead of spans; the in-process receiver shares this busy test process).
    cpu_budget: 0
    discovery:
      include:
        - cmdline: "*memory_bio_server.py*"
        - cmdline: "*in-memory-tls*"
        - cmdline: "*asyncio-tls-client*"
        - exe: go-tls-server
        - exe: go-grpc-tls-server
        - exe: tls-static-server
        # The clients too: a client the rules leave out is traced from its exec until discovery
        # judges it, and its first ciphertext would make a connection with no plaintext.
        - exe: curl
        - cmdline: "*http.client, json, ssl*"
exporters:
  debug: {}
service:
  pipelines:
    traces: {receivers: [ebpf], exporters: [debug]}
"""


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="e2e-tls-stacks-") as name:
        yield Path(name)


@pytest.fixture(scope="module")
def cert(workdir: Path) -> Certificate:
    return make_certificate(workdir)


@pytest.fixture(scope="module")
def capture() -> Iterator[tuple[EbpfReceiver, Sink]]:
    with sink_capture(load_config_text(CONFIG).receivers["ebpf"]) as capture:
        yield capture


# Opens every connection (TLS handshake done) before any request, then sends REQUESTS requests
# on each, keep-alive; prints [[local port, [[path, status], ...]], ...] per connection.
KEEPALIVE_CLIENT = textwrap.dedent(
    """
    import http.client, json, ssl, sys, threading
    port, ca, conns, per = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    plain = sys.argv[5:] == ["http"]
    ctx = ssl.create_default_context(cafile=ca)
    ready = threading.Barrier(conns)
    out = [None] * conns

    def run(i):
        c = (http.client.HTTPConnection("127.0.0.1", port, timeout=30) if plain
             else http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=30))
        c.connect()
        ready.wait(60)
        got = []
        for j in range(per):
            path = f"/c{i}/r{j}" + ("/status/404" if j == per - 1 else "")
            c.request("GET", path)
            r = c.getresponse()
            r.read()
            got.append([path, r.status])
        out[i] = [c.sock.getsockname()[1], got]
        c.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(conns)]
    for t in threads: t.start()
    for t in threads: t.join()
    print(json.dumps(out))
    """
)
CONNECTIONS = 50
REQUESTS = 4


@pytest.mark.parametrize("kind", ["asyncio", "aiohttp"])
def test_memory_bio_servers_over_many_keepalive_connections(capture, cert: Certificate, kind: str) -> None:
    receiver, sink = capture
    bound = receiver.kernel_counters()[receiver.loader.abi.const("ERX_CNT_TLS_BIO_BOUND")]
    lost = unattached(receiver)
    with PythonTlsServer(cert, "--kind", kind, script=MEMORY_BIO_SERVER) as server:
        # Requests made before libssl is attached have no plaintext to show: wait for it.
        wait_until(lambda: any(server.pid in lib.pids for lib in receiver.discovery.libraries.attached),
                   timeout=20, what="libssl attached for the server")
        proc = subprocess.run([sys.executable, "-c", KEEPALIVE_CLIENT, str(server.port), str(cert.cert),
                               str(CONNECTIONS), str(REQUESTS)], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        per_conn = json.loads(proc.stdout)
        expected = collections.Counter(
            (path, status, "https", port) for port, got in per_conn for path, status in got)
        assert len(expected) == CONNECTIONS * REQUESTS
        assert all(status == (404 if path.endswith("/404") else 200) for path, status, _, _ in expected)

        def served():
            return sink.spans(lambda s: s.kind.name == "SERVER" and pid_of(s) == server.pid)

        spans = wait_for(served, CONNECTIONS * REQUESTS, f"{kind} SERVER spans", timeout=60)
    got = collections.Counter((s.attributes["url.path"], s.attributes.get("http.response.status_code"),
                               s.attributes["url.scheme"], s.attributes.get("client.port")) for s in spans)
    # Exactly one span per request, each on the connection it was sent on.
    assert got == expected
    assert receiver.kernel_counters()[receiver.loader.abi.const("ERX_CNT_TLS_BIO_BOUND")] >= bound + CONNECTIONS
    # No plaintext went unattached, and every connection, now closed, showed its plaintext (the
    # first ciphertext of each, read before its first SSL call, is not counted).
    time.sleep(1.0)
    assert unattached(receiver) == lost


def test_tls_and_plain_connections_on_one_event_loop(capture, cert: Certificate) -> None:
    """One asyncio thread serves HTTPS (memory BIOs) and plain HTTP, 25 keep-alive connections
    of each at once: every request on its connection, with its scheme; no plain connection is
    taken for a TLS one (their reads and writes interleave with the TLS calls)."""
    receiver, sink = capture
    lost = unattached(receiver)
    with PythonTlsServer(cert, "--kind", "asyncio", "--plain-too", script=MEMORY_BIO_SERVER) as server:
        wait_until(lambda: any(server.pid in lib.pids for lib in receiver.discovery.libraries.attached),
                   timeout=20, what="libssl attached for the server")
        plain_port = int(server.ready_line.split()[2])
        clients = [subprocess.Popen([sys.executable, "-c", KEEPALIVE_CLIENT, str(port), str(cert.cert), "25", "4",
                                     scheme], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                   for port, scheme in ((server.port, "https"), (plain_port, "http"))]
        expected: collections.Counter = collections.Counter()
        for client, scheme in zip(clients, ("https", "http")):
            out, err = client.communicate(timeout=120)
            assert client.returncode == 0, err
            expected.update((path, status, scheme, port) for port, got in json.loads(out) for path, status in got)
        assert sum(expected.values()) == 200
        spans = wait_for(lambda: sink.spans(lambda s: s.kind.name == "SERVER" and pid_of(s) == server.pid), 200,
                         "SERVER spans of both schemes", timeout=60)
    got = collections.Counter((s.attributes["url.path"], s.attributes.get("http.response.status_code"),
                               s.attributes["url.scheme"], s.attributes.get("client.port")) for s in spans)
    assert got == expected
    time.sleep(1.0)
    assert unattached(receiver) == lost


def diagnosis(receiver: EbpfReceiver, sink: Sink, pid: int) -> str:
    """What the capture saw of pid, for a failure's message."""
    c = receiver.kernel_counters()
    names = {v: n for n, v in receiver.loader.abi.constants.items() if n.startswith("ERX_CNT_")}
    return (f"events {sink.data_events(lambda p, f, port: p == pid)[:20]}; "
            f"txs {len(sink.transactions(lambda t: t.pid == pid))}; "
            f"counters {[(names[i], v) for i, v in enumerate(c) if v and i in names]}; "
            f"libraries {[(lib.path, sorted(lib.pids)) for lib in receiver.discovery.libraries.attached]}")


def unattached(receiver: EbpfReceiver) -> dict[str, int]:
    """ebpf_receiver_tls_unattached_total by reason, the kernel's and the tracker's."""
    families = [f for c in (receiver.tracker,) for f in c.collect()]
    counters = receiver.kernel_counters()
    out = {"no_library": receiver.tracker.tls_unattached}
    for name, reason in (("ERX_CNT_TLS_UNMAPPED", "no_socket"), ("ERX_CNT_TLS_NO_CONN", "connection_table_full")):
        out[reason] = counters[receiver.loader.abi.const(name)]
    assert families  # the tracker reports the family too
    return out


# Two SSLObjects talking through memory BIOs in one process, no socket at all: the plaintext
# exists but belongs to no connection.
IN_MEMORY_TLS = textwrap.dedent(
    """
    import ssl, sys
    cert, key = sys.argv[1], sys.argv[2]  # in-memory-tls
    sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER); sctx.load_cert_chain(cert, key)
    cctx = ssl.create_default_context(cafile=cert)
    pipes = [ssl.MemoryBIO() for _ in range(4)]
    client = cctx.wrap_bio(pipes[0], pipes[1], server_hostname="localhost")
    server = sctx.wrap_bio(pipes[2], pipes[3], server_side=True)
    sys.stdin.readline()  # the go of the test (libssl attached)

    def pump():
        pipes[2].write(pipes[1].read()); pipes[0].write(pipes[3].read())

    for _ in range(10):
        done = 0
        for side in (client, server):
            try:
                side.do_handshake(); done += 1
            except ssl.SSLWantReadError:
                pass
        pump()
        if done == 2:
            break
    client.write(b"GET /in-memory HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n"); pump()
    print(server.read(4096).decode().split()[1])
    """
)


def test_plaintext_of_no_connection_is_counted_unattached(capture, cert: Certificate) -> None:
    receiver, _ = capture
    before = unattached(receiver)
    proc = subprocess.Popen([sys.executable, "-c", IN_MEMORY_TLS, str(cert.cert), str(cert.key)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # The interpreter maps libssl at start; hold the work until it is attached.
    try:
        wait_until(lambda: any(proc.pid in lib.pids for lib in receiver.discovery.libraries.attached),
                   timeout=20, what="libssl attached for the in-memory TLS process")
    finally:
        out, err = proc.communicate("go\n", timeout=60)
    assert proc.returncode == 0, err
    assert out.split() == ["/in-memory"]
    # The client's SSL_write and the server's SSL_read: each plaintext, counted, not lost quietly.
    after = wait_until(lambda: unattached(receiver)["no_socket"] >= before["no_socket"] + 2 and unattached(receiver),
                       timeout=10, what="no_socket counted")
    assert after["no_socket"] == before["no_socket"] + 2


# -- Go crypto/tls -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def go_binaries(workdir: Path) -> dict[str, Path]:
    return {"symbols": go_build(GO_TLS_SERVER, workdir / "go-tls-server", workdir),
            "stripped": go_build(GO_TLS_SERVER, workdir / "stripped" / "go-tls-server", workdir, strip=True)}


def test_a_stripped_build_gives_the_probes_of_the_full_one(go_binaries: dict[str, Path]) -> None:
    """.gopclntab (stripped) and .symtab name the same functions; capstone finds the same RETs."""
    full, stripped = (inspect_go_binary(str(go_binaries[b])) for b in ("symbols", "stripped"))
    assert full.covered and stripped.covered
    assert (full.read, full.write) == (stripped.read, stripped.write)
    assert len(full.read.returns) >= 1 and len(full.write.returns) >= 1
    assert (full.offsets.source, stripped.offsets.source) == ("dwarf", "table")
    assert full.offsets.__dict__ | {"source": ""} == stripped.offsets.__dict__ | {"source": ""}
    assert full.itab_tcpconn and not stripped.itab_tcpconn


class GoServer:
    def __init__(self, binary: Path, cert: Certificate) -> None:
        self.proc = subprocess.Popen([str(binary), str(cert.cert), str(cert.key)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline().split()
        assert line[:1] == ["READY"], self.proc.stderr.read()
        self.port = int(line[1])
        self.pid = self.proc.pid

    def stop(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(10)


def wait_attached(receiver: EbpfReceiver, pid: int, what: str):
    return wait_until(lambda: next((lib for lib in receiver.discovery.libraries.by_file.values() if pid in lib.pids),
                                   None), timeout=30, what=what)


@pytest.mark.parametrize("build", ["symbols", "stripped"])
@pytest.mark.parametrize("version,option", [("1.1", "--http1.1"), ("2", "--http2")], ids=["http1.1", "h2"])
def test_go_crypto_tls_server(capture, cert: Certificate, go_binaries: dict[str, Path], build: str, version: str,
                              option: str) -> None:
    receiver, sink = capture
    lost = unattached(receiver)
    server = GoServer(go_binaries[build], cert)
    try:
        lib = wait_attached(receiver, server.pid, "the Go server's crypto/tls attached")
        assert (lib.kind, lib.attached, lib.version.startswith("go1.")) == ("go", True, True), lib.error
        paths = [f"/go/{i}" for i in range(5)] + ["/go/5/status/404", "/go/6/status/503"]
        urls = [a for p in paths for a in ("-o", "/dev/null", f"https://127.0.0.1:{server.port}{p}")]
        proc = subprocess.run(["curl", "-sS", "--noproxy", "*", option, "--cacert", str(cert.cert),
                               "-w", "%{http_code} %{http_version}\\n", *urls],
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.split() == [x for p in paths for x in (p.rsplit("/", 1)[1] if "status" in p else "200",
                                                                  version)]
        spans = wait_for(lambda: sink.spans(lambda s: s.kind.name == "SERVER" and pid_of(s) == server.pid),
                         len(paths), "Go SERVER spans")
    finally:
        server.stop()
    got = collections.Counter((s.attributes["url.path"], s.attributes.get("http.response.status_code"),
                               s.attributes["url.scheme"], s.attributes["network.protocol.version"]) for s in spans)
    assert got == collections.Counter(
        (p, int(p.rsplit("/", 1)[1]) if "status" in p else 200, "https", version) for p in paths)
    # Every connection showed its plaintext: none counted unattached, once closed either (a
    # close_notify written as curl's RST arrives is not taken for a new, ciphertext-only one).
    time.sleep(1.0)
    assert unattached(receiver) == lost


GRPC_TLS_CLIENT = textwrap.dedent(
    """
    import json, sys, grpc
    port, ca = sys.argv[1], sys.argv[2]
    creds = grpc.ssl_channel_credentials(root_certificates=open(ca, "rb").read())
    out = []
    with grpc.secure_channel(f"127.0.0.1:{port}", creds) as channel:
        check = channel.unary_unary("/grpc.health.v1.Health/Check")  # raw protobuf bytes
        for _ in range(3):
            out.append(check(b"\\n\\x04echo", timeout=10).hex())  # service "echo": SERVING (1)
        try:
            check(b"\\n\\x07missing", timeout=10)
        except grpc.RpcError as err:
            out.append(err.code().name)
    print(json.dumps(out))
    """
)


def test_grpc_go_over_tls(capture, cert: Certificate, workdir: Path) -> None:
    receiver, sink = capture
    binary = go_build(GO_GRPC_TLS_SERVER, workdir / "go-grpc-tls-server", workdir)
    server = GoServer(binary, cert)
    try:
        lib = wait_attached(receiver, server.pid, "the gRPC-Go server's crypto/tls attached")
        assert (lib.kind, lib.attached) == ("go", True), lib.error
        proc = subprocess.run([sys.executable, "-c", GRPC_TLS_CLIENT, str(server.port), str(cert.cert)],
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout) == ["0801"] * 3 + ["NOT_FOUND"]
        spans = wait_for(lambda: sink.spans(lambda s: s.kind.name == "SERVER" and pid_of(s) == server.pid), 4,
                         "gRPC-Go SERVER spans")
    finally:
        server.stop()
    got = collections.Counter((s.attributes.get("rpc.system"), s.attributes.get("rpc.service"),
                               s.attributes.get("rpc.method"), s.attributes.get("rpc.grpc.status_code"),
                               s.attributes.get("url.scheme")) for s in spans)
    assert got == collections.Counter({("grpc", "grpc.health.v1.Health", "Check", 0, "https"): 3,
                                       ("grpc", "grpc.health.v1.Health", "Check", 5, "https"): 1})


# An asyncio HTTPS client (memory BIOs on the client side): 5 keep-alive connections at once,
# 4 requests each; prints [[local port, [[path, status], ...]], ...].
ASYNCIO_CLIENT = textwrap.dedent(
    """
    import asyncio, json, ssl, sys  # asyncio-tls-client
    port, ca = int(sys.argv[1]), sys.argv[2]
    ctx = ssl.create_default_context(cafile=ca)

    async def connection(i):
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx)
        got = []
        for j in range(4):
            path = f"/a{i}/r{j}" + ("/status/404" if j == 3 else "")
            writer.write(f"GET {path} HTTP/1.1\\r\\nHost: localhost\\r\\n\\r\\n".encode())
            head = await reader.readuntil(b"\\r\\n\\r\\n")
            length = int([ln for ln in head.split(b"\\r\\n") if ln.lower().startswith(b"content-length")][0]
                         .split(b":")[1])
            await reader.readexactly(length)
            got.append([path, int(head.split()[1])])
        port_ = writer.get_extra_info("sockname")[1]
        writer.close()
        await writer.wait_closed()
        return [port_, got]

    async def main():
        print(json.dumps(await asyncio.gather(*(connection(i) for i in range(5)))))

    sys.stdin.readline()  # the go of the test: libssl is attached

    asyncio.run(main())
    """
)


def test_asyncio_https_client_on_memory_bios(capture, cert: Certificate, go_binaries: dict[str, Path]) -> None:
    receiver, sink = capture
    server = GoServer(go_binaries["symbols"], cert)
    try:
        wait_attached(receiver, server.pid, "the Go server attached")
        client = subprocess.Popen([sys.executable, "-c", ASYNCIO_CLIENT, str(server.port), str(cert.cert)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            wait_until(lambda: any(client.pid in lib.pids for lib in receiver.discovery.libraries.attached),
                       timeout=20, what="libssl attached for the client")
        finally:
            out, err = client.communicate("go\n", timeout=60)
        assert client.returncode == 0, err
        expected = collections.Counter((path, status, "https", port) for port, got in json.loads(out)
                                       for path, status in got)
        assert sum(expected.values()) == 20
        try:
            spans = wait_for(lambda: sink.spans(lambda s: s.kind.name == "CLIENT" and pid_of(s) == client.pid), 20,
                             "asyncio CLIENT spans")
        except AssertionError as err:
            raise AssertionError(f"{err}; {diagnosis(receiver, sink, client.pid)}") from None
    finally:
        server.stop()
    got = collections.Counter((s.attributes["url.path"], s.attributes.get("http.response.status_code"),
                               s.attributes["url.scheme"], s.attributes.get("network.local.port")) for s in spans)
    assert got == expected


# -- OpenSSL linked into the executable ----------------------------------------------------------


def test_statically_linked_openssl_server(capture, cert: Certificate, workdir: Path) -> None:
    receiver, sink = capture
    binary = build_static_openssl_server(workdir / "tls-static-server")
    server = GoServer(binary, cert)  # same protocol: CERT KEY, READY <port>, stdin
    try:
        lib = wait_attached(receiver, server.pid, "the static OpenSSL server attached")
        assert (lib.kind, lib.attached, lib.path) == ("openssl", True, str(binary)), lib.error
        stack = next(r for r in receiver.discovery.tls_report() if r.pid == server.pid)
        assert (stack.stack, stack.covered) == ("openssl (static)", True)
        paths = [f"/static/{i}" for i in range(5)] + ["/static/5/status/404"]
        urls = [a for p in paths for a in ("-o", "/dev/null", f"https://127.0.0.1:{server.port}{p}")]
        proc = subprocess.run(["curl", "-sS", "--noproxy", "*", "--http1.1", "--cacert", str(cert.cert),
                               "-w", "%{http_code}\\n", *urls], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.split() == ["200"] * 5 + ["404"]
        try:
            spans = wait_for(lambda: sink.spans(lambda s: s.kind.name == "SERVER" and pid_of(s) == server.pid),
                             len(paths), "static OpenSSL SERVER spans")
        except AssertionError as err:
            raise AssertionError(f"{err}; {diagnosis(receiver, sink, server.pid)}") from None
    finally:
        server.stop()
    got = collections.Counter((s.attributes["url.path"], s.attributes.get("http.response.status_code"),
                               s.attributes["url.scheme"]) for s in spans)
    assert got == collections.Counter((p, 404 if p.endswith("404") else 200, "https") for p in paths)


CHECK_CONFIG = """
receivers:
  ebpf:
    discovery:
      include:
        - exe: go-tls-server
        - cmdline: "*memory_bio_server.py*"
        - cmdline: "*sleep 3600*"
exporters:
  debug: {}
service:
  pipelines:
    traces: {receivers: [ebpf], exporters: [debug]}
"""


def test_check_lists_the_tls_stack_of_each_traced_process(tmp_path: Path, cert: Certificate,
                                                            go_binaries: dict[str, Path]) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(CHECK_CONFIG)
    go = GoServer(go_binaries["symbols"], cert)
    sleeper = subprocess.Popen(["sleep", "3600"])
    # Through a shell: a Python child of this (Python) test would be taken for a pre-fork worker
    # of it by discovery's listing (same executable), and share its verdict.
    py = subprocess.Popen(["sh", "-c", f"{sys.executable} {MEMORY_BIO_SERVER} --cert {cert.cert} --key {cert.key} "
                                       "--kind asyncio; true"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert py.stdout.readline().startswith("READY")
        py_pid = int(Path(f"/proc/{py.pid}/task/{py.pid}/children").read_text().split()[0])
        proc = subprocess.run([sys.executable, "-m", "receiver.cli", "check", "--config", str(config)],
                              capture_output=True, text=True, timeout=120)
    finally:
        go.stop()
        sleeper.kill()
        sleeper.wait()
        py.stdin.close()
        py.wait(10)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = {int(line.split()[0]): line for line in proc.stdout.split("TLS stacks of the processes")[1].splitlines()
            if line.split() and line.split()[0].isdigit()}
    assert "go crypto/tls" in rows[go.pid] and "covered go1." in rows[go.pid], rows
    assert py_pid in rows, proc.stdout
    assert "openssl (shared)" in rows[py_pid] and "covered" in rows[py_pid] and "libssl" in rows[py_pid], rows
    assert rows[sleeper.pid].split()[2:] == ["none", "-"], rows
