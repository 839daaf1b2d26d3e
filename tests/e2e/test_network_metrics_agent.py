"""Network health through the running agent: a real thread-per-request HTTP server whose handler
dials a port nobody listens on, real curl, a real collector (rotel) and the Prometheus endpoint.

The refused connect is counted by reason on ``network_tcp_connect_failures_total``, becomes an
ERROR client span ``connect`` under the request that made it, and an error log record of that
span; the served connections show up in the RTT histogram and the flow counters."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from tests.support.agent import AgentProcess
from tests.support.ports import free_port, wait_until
from tests.support.prometheus import metric_sum, scrape
from tests.support.rotel import RotelCollector

pytestmark = [pytest.mark.kernel, pytest.mark.e2e]

N = 5

SERVER = textwrap.dedent("""
    import socket, sys
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    CLOSED = int(sys.argv[2])

    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        def do_GET(self):
            s = socket.socket()
            try:
                s.connect(("127.0.0.1", CLOSED))
                code = 200
            except ConnectionRefusedError:
                code = 502
            finally:
                s.close()
            body = b"upstream refused"
            self.send_response(code)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        def log_message(self, *a):
            pass

    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
""")


def config(otlp: str, prom_port: int) -> str:
    return f"""
receivers:
  ebpf:
    poll_interval: 20ms
    network_metrics: {{rtt: true, connect_failures: true, connect_duration: true, flow: true}}
processors:
  batch: {{timeout: 100ms}}
exporters:
  otlp:
    endpoint: {otlp}
    tls: {{insecure: true}}
  prometheus:
    endpoint: 127.0.0.1:{prom_port}
service:
  pipelines:
    traces: {{receivers: [ebpf], processors: [batch], exporters: [otlp]}}
    logs: {{receivers: [ebpf], processors: [batch], exporters: [otlp]}}
    metrics: {{receivers: [ebpf], exporters: [prometheus]}}
"""


def test_refused_connect_is_a_metric_an_error_span_under_its_request_and_a_log(tmp_path):
    prom_port, port, closed = free_port(), free_port(), free_port()
    with RotelCollector(tmp_path) as collector:
        with AgentProcess(tmp_path, config(collector.grpc_endpoint, prom_port)):
            server = subprocess.Popen([sys.executable, "-c", SERVER, str(port), str(closed)])
            try:
                wait_until(lambda: subprocess.run(["curl", "-s", "-o", "/dev/null", f"http://127.0.0.1:{port}/warm"],
                                                  timeout=10).returncode == 0, timeout=15, what="server up")
                subprocess.run(["curl", "-s", *[a for i in range(N) for a in ("-o", "/dev/null",
                                f"http://127.0.0.1:{port}/call/{i}")]], check=True, timeout=30)

                def refused():
                    text = scrape(prom_port)
                    n = metric_sum(text, "network_tcp_connect_failures_total{", 'error_type="refused"',
                                   f'network_peer_port="{closed}"')
                    return n >= N + 1 and text

                text = wait_until(refused, timeout=20, what="refused connects counted")
                assert metric_sum(text, "network_tcp_connect_failures_total{", 'error_type="refused"',
                                  f'network_peer_port="{closed}"') == N + 1  # /warm and the N calls
                assert metric_sum(text, "network_tcp_rtt_seconds_count{", f'network_peer_port="{port}"') > 0

                def spans():
                    got = collector.spans()
                    connects = [s for s in got if s.name == "connect" and s.attributes.get("network.peer.port") == closed]
                    servers = {s.span_id: s for s in got if s.kind == "SPAN_KIND_SERVER" and
                               str(s.attributes.get("url.path", "")).startswith("/call/")}
                    return len(connects) >= N + 1 and len(servers) >= N and (connects, servers)

                connects, servers = wait_until(spans, timeout=20, what="connect spans")
            finally:
                server.kill()
                server.wait()
    under = [c for c in connects if c.parent_id in servers]
    assert len(under) == N, (len(under), [c.parent_id for c in connects])
    for c in under:
        assert c.kind == "SPAN_KIND_CLIENT" and c.status_code == "STATUS_CODE_ERROR"
        assert c.attributes["error.type"] == "refused"
        assert c.trace_id == servers[c.parent_id].trace_id
    logs = [r for r in collector.logs() if "connect" in r.body and f":{closed}" in r.body]
    assert {r.span_id for r in logs} >= {c.span_id for c in under}
