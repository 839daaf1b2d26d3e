"""Thread-per-request linking on HTTP/1.1 keep-alive connections (issue 18): a Python
``ThreadingHTTPServer`` with ``protocol_version = "HTTP/1.1"`` serves every request of a
connection on one thread, one Redis call per request; three curl processes send 150 requests
each on one connection.  Every Redis span must be the child of its request's server span —
the second request of each connection once came out with an orphan Redis span."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from tests.e2e.test_telemetry_linking import RedisServer
from tests.support.agent import AgentProcess
from tests.support.ports import free_port, wait_for_port, wait_until
from tests.support.rotel import RotelCollector

pytestmark = [pytest.mark.kernel, pytest.mark.e2e]

APP = textwrap.dedent(
    """
    import sys, redis
    from http.server import ThreadingHTTPServer, BaseHTTPRequestHandler

    r = redis.Redis(host="127.0.0.1", port=int(sys.argv[2]))
    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        def do_GET(self):
            r.incr("hits:" + self.path)
            body = b"ok\\n"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        def log_message(self, *a):
            pass
    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
    """
)

CLIENTS = 3
REQUESTS = 150


def agent_config(collector: RotelCollector, pairing: bool) -> str:
    return f"""
receivers:
  ebpf:
    http_pairing: {{enabled: {str(pairing).lower()}}}
processors:
  batch:
    timeout: 100ms
exporters:
  otlp:
    endpoint: {collector.grpc_endpoint}
    tls: {{insecure: true}}
service:
  pipelines:
    traces: {{receivers: [ebpf], processors: [batch], exporters: [otlp]}}
"""


@pytest.mark.parametrize("pairing", [True, False], ids=["paired-in-kernel", "payload-path"])
def test_every_redis_call_of_a_keepalive_connection_has_its_request_as_parent(tmp_path, pairing):
    app_port = free_port()
    (tmp_path / "app.py").write_text(APP)
    with RotelCollector(tmp_path, signals=("traces",)) as collector, RedisServer(tmp_path) as redis_server:
        with AgentProcess(tmp_path, agent_config(collector, pairing)):
            app = subprocess.Popen([sys.executable, str(tmp_path / "app.py"), str(app_port), str(redis_server.port)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
            try:
                wait_for_port(app_port)
                curls = [subprocess.Popen(["curl", "-s", "-o", "/dev/null", "--fail"]
                                          + [f"http://127.0.0.1:{app_port}/ka/{c}/{i}" for i in range(REQUESTS)],
                                          stdout=subprocess.DEVNULL, start_new_session=True)
                         for c in range(CLIENTS)]
                assert [p.wait(120) for p in curls] == [0] * CLIENTS

                def all_seen():
                    spans = collector.spans()
                    srv = [s for s in spans if s.kind == "SPAN_KIND_SERVER"
                           and str(s.attributes.get("url.path", "")).startswith("/ka/")
                           and s.resource.get("process.pid") == app.pid]
                    red = [s for s in spans if s.attributes.get("db.system.name") == "redis"
                           and s.attributes.get("server.port") == redis_server.port
                           and s.resource.get("process.pid") == app.pid]
                    return len(srv) >= CLIENTS * REQUESTS and len(red) >= CLIENTS * REQUESTS and (srv, red)

                srv, red = wait_until(all_seen, timeout=60, what="every server and redis span")
            finally:
                os.killpg(app.pid, signal.SIGTERM)
                app.wait(10)
    servers = {s.span_id: s for s in srv}
    assert len(servers) == CLIENTS * REQUESTS
    orphans = [s for s in red if s.parent_id not in servers]
    assert orphans == [], f"{len(orphans)} of {len(red)} redis spans without their request as parent"
    for s in red:
        assert s.trace_id == servers[s.parent_id].trace_id
    # Every request has its Redis call (a new Redis connection adds its handshake commands).
    assert len({s.parent_id for s in red}) == CLIENTS * REQUESTS
