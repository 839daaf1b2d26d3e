"""An include rule on the command line, the agent as users run it (``ebpf-receiver run``): a
Python ``ThreadingHTTPServer`` started before the agent — by this Python test process, so
it runs its parent's executable — called by uninstrumented clients (curl and python urllib
in subprocesses) must give server spans of that process.  It once gave none: found at start
with its parent's executable, it was taken for a fork without exec and inherited the test
runner's "not included"."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.support.agent import AgentProcess
from tests.support.ports import free_port, wait_for_port, wait_until
from tests.support.rotel import RotelCollector

pytestmark = [pytest.mark.kernel, pytest.mark.e2e]

SERVER = textwrap.dedent(
    """
    import sys, time
    from http.server import ThreadingHTTPServer, BaseHTTPRequestHandler

    class H(BaseHTTPRequestHandler):
        def do_GET(self):
            time.sleep(0.01)
            body = b"slow\\n"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        def log_message(self, *a):
            pass
    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
    """
)

CLIENT = "import sys, urllib.request; [urllib.request.urlopen(u).read() for u in sys.argv[1:]]"
N_CURL = 3
N_URLLIB = 3


def agent_config(collector: RotelCollector) -> str:
    return f"""
receivers:
  ebpf:
    poll_interval: 20ms
    discovery:
      include:
        - cmdline: "*slow_server.py*"
processors:
  batch:
    timeout: 100ms
exporters:
  otlp:
    endpoint: {collector.grpc_endpoint}
    tls: {{insecure: true}}
    retry_on_failure: {{initial_interval: 100ms, max_interval: 1s}}
service:
  pipelines:
    traces:
      receivers: [ebpf]
      processors: [batch]
      exporters: [otlp]
"""


@pytest.fixture
def slow_server(tmp_path: Path):
    script = tmp_path / "slow_server.py"
    script.write_text(SERVER)
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(script), str(port)], start_new_session=True)
    try:
        wait_for_port(port)
        yield proc, port
    finally:
        proc.kill()
        proc.wait(5)


def test_a_server_included_by_cmdline_before_the_agent_started(tmp_path: Path, slow_server) -> None:
    server, port = slow_server
    with RotelCollector(tmp_path, signals=("traces",)) as collector:
        with AgentProcess(tmp_path, agent_config(collector)):
            for i in range(N_CURL):
                subprocess.run(["curl", "-s", "-o", "/dev/null", f"http://127.0.0.1:{port}/curl/{i}"],
                               check=True, timeout=20)
            urls = [f"http://127.0.0.1:{port}/urllib/{i}" for i in range(N_URLLIB)]
            client = subprocess.run([sys.executable, "-c", CLIENT, *urls], check=True, timeout=20)
            assert client.returncode == 0

            def server_spans():
                return [s for s in collector.spans()
                        if s.resource.get("process.pid") == server.pid and s.kind == "SPAN_KIND_SERVER"]

            spans = wait_until(lambda: len(server_spans()) >= N_CURL + N_URLLIB and server_spans(), timeout=20,
                               what="server spans of the included server")
            paths = sorted(s.attributes.get("url.path") for s in spans)
            assert paths == sorted([f"/curl/{i}" for i in range(N_CURL)] + [f"/urllib/{i}" for i in range(N_URLLIB)])
            assert all(s.attributes.get("server.port") == port for s in spans)
            assert all(s.resource.get("service.name") == "slow_server" for s in spans)
