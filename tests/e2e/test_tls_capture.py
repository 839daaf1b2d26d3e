"""TLS plaintext through OpenSSL uprobes, end to end: real TLS (certificates made here with
openssl), real servers and clients, the real kernel.

* curl -> nginx (``listen ... ssl http2``), HTTP/1.1 and HTTP/2: a SERVER span from nginx and a
  CLIENT span from curl, ``url.scheme=https``, and not one byte of ciphertext delivered;
* Python ``requests`` -> the standard library's HTTPS server: both spans;
* gRPC over TLS: a grpcio client (``ssl_channel_credentials``) -> nginx (TLS, ``grpc_pass``) ->
  the Echo server.  grpcio carries BoringSSL linked in statically *without* symbols, so its own
  side cannot be attached: its connection is recognised as TLS ciphertext and counted
  (``tls_unattached``); nginx's side is plaintext: gRPC transactions and ``rpc.*`` spans;
* the agent as users run it (``ebpf-receiver run``) with a real collector: https spans arrive,
  the discovery summary is logged, the attach-failure counter is served.

The receiver runs in this process (``EbpfReceiver`` with consumers) except in the last test;
servers and clients are child processes (the agent's own pid is never traced).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import textwrap
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from receiver.receivers.ebpf.receiver import EbpfReceiver
from receiver.config import load_config_text
from receiver.protocols.base import Role
from tests.fixtures.record_http2 import GRPC_DIR, grpc_server
from tests.support.agent import AgentProcess
from tests.support.ports import free_port, wait_until
from tests.support.rotel import RotelCollector
from tests.support.tls import Certificate, PythonTlsServer, TlsNginx, make_certificate
from tls_support import Sink, pid_of, sink_capture, wait_for

pytestmark = [pytest.mark.kernel, pytest.mark.e2e]

SERVICE = "fixtures.echo.v1.Echo"


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="e2e-tls-") as name:
        yield Path(name)


@pytest.fixture(scope="module")
def cert(workdir: Path) -> Certificate:
    return make_certificate(workdir)


# The processes under test only (include rules, applied in the kernel): the machine may be busy
# with other traffic, which then costs this capture nothing.
CONFIG = """
receivers:
  ebpf:
    poll_interval: 20ms
    discovery:
      include:
        - cmdline: "*nginx-tls*"   # the nginx of these tests (its workers follow the master)
        - exe: curl
        - cmdline: "*tls_http_server.py*"
        - cmdline: "*grpc_service/server.py*"
        - cmdline: "*import sys, requests*"
        - cmdline: "*grpc.secure_channel*"
exporters:
  debug: {}
service:
  pipelines:
    traces: {receivers: [ebpf], exporters: [debug]}
"""


@pytest.fixture(scope="module")
def capture() -> Iterator[tuple[EbpfReceiver, Sink]]:
    with sink_capture(load_config_text(CONFIG).receivers["ebpf"]) as capture:
        yield capture


@pytest.fixture(scope="module")
def stubs(workdir: Path) -> Path:
    sys.path.insert(0, str(GRPC_DIR))
    try:
        from stubs import generate  # noqa: PLC0415 - grpc_service is a directory of scripts
    finally:
        sys.path.remove(str(GRPC_DIR))
    return generate(workdir / "stubs")


@pytest.fixture(scope="module")
def nginx(workdir: Path, cert: Certificate, stubs: Path, capture) -> Iterator[TlsNginx]:
    with grpc_server(stubs) as backend, TlsNginx(workdir, cert, grpc_backend=backend) as server:
        yield server


def counter(receiver: EbpfReceiver, name: str) -> int:
    return receiver.kernel_counters()[receiver.loader.abi.const(name)]


def http_facts(span) -> tuple:
    a = span.attributes
    return (a["http.request.method"], a["url.path"], a.get("http.response.status_code"), a["url.scheme"],
            a["network.protocol.version"])


@pytest.mark.parametrize("version,option", [("1.1", "--http1.1"), ("2", "--http2")], ids=["http1.1", "h2"])
def test_curl_to_nginx_over_tls(capture, nginx: TlsNginx, cert: Certificate, version: str, option: str) -> None:
    receiver, sink = capture
    suppressed = counter(receiver, "ERX_CNT_TLS_CIPHERTEXT")
    paths = ["/index.html", "/status/404"]
    outputs = [a for p in paths for a in ("-o", "/dev/null", nginx.url + p)]
    proc = subprocess.run(
        ["curl", "-sS", "--noproxy", "*", "--cacert", str(cert.cert), option, "-w", "%{http_code} %{http_version}\\n",
         *outputs],
        capture_output=True, text=True, timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["200", version, "404", version]
    expected = {("GET", "/index.html", 200, "https", version), ("GET", "/status/404", 404, "https", version)}

    client = wait_for(lambda: sink.spans(lambda s: s.kind.name == "CLIENT" and s.resource.service_name == "curl"
                                         and s.attributes.get("server.port") == nginx.port
                                         and s.attributes.get("network.protocol.version") == version),
                      2, "curl CLIENT spans")
    assert {http_facts(s) for s in client} == expected
    curl_pid = pid_of(client[0])
    ports = {s.attributes["network.local.port"] for s in client}
    nginx_pids = set(nginx.pids())
    server = wait_for(lambda: sink.spans(lambda s: s.kind.name == "SERVER" and pid_of(s) in nginx_pids
                                         and s.attributes.get("client.port") in ports),
                      2, "nginx SERVER spans")
    assert {http_facts(s) for s in server} == expected
    assert all(s.resource.service_name == "nginx" for s in server)
    # The server span is the child of curl's client span (same-host linking works over TLS).
    by_path = {s.attributes["url.path"]: s for s in client}
    for s in server:
        c = by_path[s.attributes["url.path"]]
        assert (s.trace_id, s.parent_span_id) == (c.trace_id, c.span_id)

    # Not one byte of ciphertext reached user space: curl's data events are all TLS plaintext,
    # and so are nginx's on curl's connections; the kernel counted the syscalls it kept back.
    tls = receiver.loader.abi.const("ERX_FLAG_TLS")
    curl_events = sink.data_events(lambda pid, f, p: pid == curl_pid)
    assert curl_events and all(f & tls for _, f, _ in curl_events)
    nginx_events = sink.data_events(lambda pid, f, p: pid in nginx_pids and p == nginx.port)
    assert nginx_events and all(f & tls for _, f, _ in nginx_events)
    assert counter(receiver, "ERX_CNT_TLS_CIPHERTEXT") > suppressed


REQUESTS_CLIENT = textwrap.dedent(
    """
    import sys, requests
    url, ca = sys.argv[1], sys.argv[2]
    with requests.Session() as s:
        for path in ("/orders/1", "/status/404"):
            r = s.get(url + path, verify=ca, timeout=10)
            print(r.status_code)
    """
)


def test_python_requests_to_a_python_tls_server(capture, cert: Certificate) -> None:
    _, sink = capture
    with PythonTlsServer(cert) as server:
        proc = subprocess.run([sys.executable, "-c", REQUESTS_CLIENT, server.url, str(cert.cert)],
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.split() == ["200", "404"]
        client = wait_for(lambda: sink.spans(lambda s: s.kind.name == "CLIENT"
                                             and s.attributes.get("server.port") == server.port), 2, "requests spans")
        served = wait_for(lambda: sink.spans(lambda s: s.kind.name == "SERVER" and pid_of(s) == server.pid),
                          2, "server spans")
    expected = {("GET", "/orders/1", 200, "https", "1.1"), ("GET", "/status/404", 404, "https", "1.1")}
    assert {http_facts(s) for s in client} == expected
    assert {http_facts(s) for s in served} == expected
    assert {pid_of(s) for s in client} != {server.pid}
    assert all(s.attributes["user_agent.original"].startswith("python-requests/") for s in served)


GRPC_TLS_CLIENT = textwrap.dedent(
    """
    import json, sys
    sys.path.insert(0, sys.argv[1])
    import grpc
    from stubs import load
    pb2, pb2_grpc = load(sys.argv[2])
    creds = grpc.ssl_channel_credentials(root_certificates=open(sys.argv[4], "rb").read())
    out = []
    with grpc.secure_channel(sys.argv[3], creds) as channel:
        stub = pb2_grpc.EchoStub(channel)
        out.append(stub.Say(pb2.EchoRequest(text="hello over tls", size=10), timeout=10).text)
        try:
            stub.Lookup(pb2.EchoRequest(text="missing"), timeout=10)
        except grpc.RpcError as err:
            out.append(err.code().name)
    print(json.dumps(out))
    """
)


def test_grpc_over_tls(capture, nginx: TlsNginx, cert: Certificate, stubs: Path) -> None:
    receiver, sink = capture
    unattached = receiver.tracker.tls_unattached
    proc = subprocess.run(
        [sys.executable, "-c", GRPC_TLS_CLIENT, str(GRPC_DIR), str(stubs), f"127.0.0.1:{nginx.port}", str(cert.cert)],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == ["hello over tls", "NOT_FOUND"]

    # nginx decrypted the calls: its side of the TLS connection is gRPC, with service and method.
    nginx_pids = set(nginx.pids())

    def nginx_grpc():
        return sink.transactions(lambda t: t.pid in nginx_pids and t.transaction.role is Role.SERVER
                                 and t.tls and t.tuple.local_port == nginx.port
                                 and t.transaction.protocol == "http2" and t.transaction.request.is_grpc)

    served = wait_for(nginx_grpc, 2, "nginx gRPC transactions")
    reqs = sorted((t.transaction.request.grpc_service, t.transaction.request.grpc_method) for t in served)
    assert reqs == [(SERVICE, "Lookup"), (SERVICE, "Say")]
    statuses = {t.transaction.request.grpc_method: t.transaction.response.grpc_status for t in served}
    assert statuses == {"Say": 0, "Lookup": 5}
    spans = wait_for(lambda: sink.spans(lambda s: s.kind.name == "SERVER" and pid_of(s) in nginx_pids
                                        and s.attributes.get("rpc.system") == "grpc"
                                        and s.attributes.get("server.port") == nginx.port), 2, "gRPC spans")
    assert sorted((s.attributes["rpc.service"], s.attributes["rpc.method"], s.attributes["url.scheme"])
                  for s in spans) == [(SERVICE, "Lookup", "https"), (SERVICE, "Say", "https")]

    # The grpcio client's own side is ciphertext (BoringSSL without symbols): recognised as TLS,
    # not parsed, not a protocol error.  (The counter is process-wide: other traffic may add.)
    client_ports = {t.tuple.remote_port for t in served}
    client_txs = sink.transactions(lambda t: t.tuple.local_port in client_ports and t.tuple.remote_port == nginx.port)
    assert client_txs == []
    # Counted once the connection has ended (the client exited) with no plaintext.
    wait_until(lambda: receiver.tracker.tls_unattached >= unattached + 1, timeout=10,
               what="the grpcio connection counted as tls_unattached")


# -- the agent as users run it -------------------------------------------------------------------


def agent_config(otlp: str, prom_port: int) -> str:
    return f"""
receivers:
  ebpf:
    poll_interval: 20ms
    discovery:
      include: [{{cmdline: "*nginx-tls*"}}, {{exe: curl}}]
processors:
  batch:
    timeout: 100ms
exporters:
  otlp:
    endpoint: {otlp}
    tls: {{insecure: true}}
  prometheus:
    endpoint: 127.0.0.1:{prom_port}
service:
  pipelines:
    traces: {{receivers: [ebpf], processors: [batch], exporters: [otlp]}}
    metrics: {{receivers: [ebpf], exporters: [prometheus]}}
"""


def test_the_agent_exports_https_spans_and_reports_discovery(tmp_path: Path, cert: Certificate) -> None:
    prom_port = free_port()
    with RotelCollector(tmp_path) as collector, TlsNginx(tmp_path, cert) as server:
        agent = AgentProcess(tmp_path, agent_config(collector.grpc_endpoint, prom_port)).start()
        try:
            subprocess.run(["curl", "-sS", "--cacert", str(cert.cert), "-o", "/dev/null", server.url + "/index.html"],
                           check=True, timeout=30)

            def spans():
                return [s for s in collector.spans() if s.attributes.get("url.path") == "/index.html"
                        and s.attributes.get("server.port") == server.port]

            got = wait_until(lambda: len(spans()) >= 2 and spans(), timeout=20, what="https spans at the collector")
            assert {(s.kind, s.attributes["url.scheme"]) for s in got} == {
                ("SPAN_KIND_SERVER", "https"), ("SPAN_KIND_CLIENT", "https")}
            with urllib.request.urlopen(f"http://127.0.0.1:{prom_port}/metrics", timeout=5) as r:
                metrics = r.read().decode()
            assert 'ebpf_receiver_uprobe_attach_failures_total{reason="attach_error"}' in metrics
            # One family, by reason: the tracker's (no_library) and the kernel's.
            for reason in ("no_library", "no_socket", "connection_table_full", "go_no_fd"):
                assert f'ebpf_receiver_tls_unattached_total{{reason="{reason}"}}' in metrics, reason
            assert len([ln for ln in metrics.splitlines() if ln.startswith("# TYPE ") and "tls_unattached" in ln]) == 1
            attached = [ln for ln in metrics.splitlines() if ln.startswith("ebpf_receiver_tls_libraries_attached ")]
            assert attached and float(attached[0].split()[1]) >= 1
        finally:
            assert agent.stop() == 0
    log = agent.stderr()
    summary = [ln for ln in log.splitlines() if "discovery: instrumented" in ln]
    assert summary and "TLS libraries" in summary[0] and "libssl.so" in log
    # The start-up log names each traced process's TLS stack: nginx's master and worker.
    stacks = [ln for ln in log.splitlines() if "TLS: pid" in ln and " nginx: " in ln]
    assert stacks and all("openssl (shared)" in ln and "plaintext covered" in ln for ln in stacks), log
