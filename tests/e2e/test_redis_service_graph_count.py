"""The app → redis service-graph edge counts the commands the app sent, no more, no fewer,
with redis-py's RESP2 and RESP3 handshakes, against what Redis says it received.

Reported as "RESP3 counts one request more than Redis (42 vs 41)".  The agent was right: on
RESP3 redis-py also sends ``CLIENT MAINT_NOTIFICATIONS ON moving-endpoint-type ...``; a server
that does not know it answers ``-ERR unknown subcommand`` and counts it in ``INFO errorstats``,
not in ``INFO commandstats`` (nor does MONITOR show it).  So the edge must equal commandstats
calls plus the rejected commands, and its failed count the rejected ones."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter

import pytest

from tests.e2e.test_telemetry_linking import RedisServer
from tests.support.agent import AgentProcess
from tests.support.ports import free_port, wait_for_port, wait_until
from tests.support.prometheus import metric_sum, scrape
from tests.support.rotel import RotelCollector

pytestmark = [pytest.mark.kernel, pytest.mark.e2e]

APP = textwrap.dedent(
    """
    import sys, redis
    from http.server import ThreadingHTTPServer, BaseHTTPRequestHandler

    r = redis.Redis(host="127.0.0.1", port=int(sys.argv[2]), protocol=int(sys.argv[3]))
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

REQUESTS = 40
EDGE_WAIT = 2.5  # the service graph counts an unpaired client span after 2 s


def agent_config(prom_port: int, collector: RotelCollector) -> str:
    return f"""
receivers:
  ebpf:
    poll_interval: 20ms
processors:
  batch:
    timeout: 100ms
exporters:
  prometheus:
    endpoint: 127.0.0.1:{prom_port}
  otlp:
    endpoint: {collector.grpc_endpoint}
    tls: {{insecure: true}}
service:
  pipelines:
    metrics: {{receivers: [ebpf], exporters: [prometheus]}}
    traces: {{receivers: [ebpf], processors: [batch], exporters: [otlp]}}
"""


def redis_info(port: int, section: str) -> dict[str, dict[str, int]]:
    """INFO <section> as {name: {field: int}} (cmdstat_get → {"calls": 5, ...})."""
    out = subprocess.run(["redis-cli", "-p", str(port), "INFO", section], capture_output=True, text=True,
                         check=True, timeout=10).stdout
    info: dict[str, dict[str, int]] = {}
    for line in out.splitlines():
        name, sep, fields = line.strip().partition(":")
        if not sep or name.startswith("#"):
            continue
        info[name] = {k: int(float(v)) for k, _, v in (f.partition("=") for f in fields.split(",")) if v}
    return info


@pytest.mark.parametrize("protocol", [2, 3], ids=["resp2", "resp3"])
def test_the_redis_edge_counts_what_redis_received(tmp_path, protocol):
    prom_port, app_port = free_port(), free_port()
    service = f"sg-redis-{protocol}-{app_port}"  # ours alone: other engineers' apps run on this host
    (tmp_path / "app.py").write_text(APP)
    with RotelCollector(tmp_path, signals=("traces",)) as collector, RedisServer(tmp_path) as redis_server:
        with AgentProcess(tmp_path, agent_config(prom_port, collector)):
            subprocess.run(["redis-cli", "-p", str(redis_server.port), "CONFIG", "RESETSTAT"], check=True,
                           capture_output=True, timeout=10)
            app = subprocess.Popen([sys.executable, str(tmp_path / "app.py"), str(app_port), str(redis_server.port),
                                    str(protocol)], env={**os.environ, "OTEL_SERVICE_NAME": service},
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
            try:
                wait_for_port(app_port)
                curl = subprocess.run(["curl", "-s", "-o", "/dev/null", "--fail"]
                                      + [f"http://127.0.0.1:{app_port}/n/{i}" for i in range(REQUESTS)], timeout=60)
                assert curl.returncode == 0
                # Redis's own account (only this app talked to this server since RESETSTAT; this
                # test's redis-cli CONFIG RESETSTAT and INFO calls are left out).
                calls = {name: v["calls"] for name, v in redis_info(redis_server.port, "commandstats").items()
                         if name not in ("cmdstat_info", "cmdstat_config|resetstat")}
                rejected = sum(v["count"] for v in redis_info(redis_server.port, "errorstats").values())
                assert calls["cmdstat_incrby"] == REQUESTS
                assert ("cmdstat_hello" in calls) == (protocol == 3)
                received = sum(calls.values()) + rejected

                def edge() -> tuple[float, float]:
                    text = scrape(prom_port)
                    return (metric_sum(text, "traces_service_graph_request_total{", f'client="{service}"'),
                            metric_sum(text, "traces_service_graph_request_failed_total{", f'client="{service}"'))

                try:
                    wait_until(lambda: edge()[0] >= received, timeout=30, what="the app → redis edge")
                except TimeoutError:
                    graph = [line for line in scrape(prom_port).splitlines()
                             if line.startswith("traces_service_graph_request_total")]
                    raise AssertionError(f"no edge of {received} requests from {service} "
                                         f"(Redis: {calls}, {rejected} rejected): {graph}") from None
                time.sleep(EDGE_WAIT)  # anything counted twice would show up now
                total, failed = edge()
                spans = [sp for sp in collector.spans() if sp.resource.get("process.pid") == app.pid
                         and sp.attributes.get("db.system.name") == "redis"]
            finally:
                os.killpg(app.pid, signal.SIGTERM)
                app.wait(10)
    assert (total, failed) == (received, rejected), (calls, rejected)
    # Which commands: the app's Redis spans, command by command, with the errors.
    ops = Counter((sp.attributes.get("db.operation.name"), sp.attributes.get("db.response.status_code"))
                  for sp in spans)
    assert sum(ops.values()) == received
    assert ops[("INCRBY", None)] == REQUESTS
    assert ops[("HELLO", None)] == (1 if protocol == 3 else 0)
    refused = {op: n for (op, code), n in ops.items() if code == "ERR"}
    assert sum(refused.values()) == rejected
    assert set(refused) <= {"CLIENT SETINFO", "CLIENT MAINT_NOTIFICATIONS"}, refused
    # On RESP3 (only) redis-py also asks for maintenance notifications: the "one more" of the
    # report, on a server that knows CLIENT SETINFO but not CLIENT MAINT_NOTIFICATIONS.
    sent = {op for op, _ in ops}
    assert ("CLIENT MAINT_NOTIFICATIONS" in sent) == (protocol == 3)
    # The handshake commands the server refused are the whole difference with commandstats:
    # CLIENT SETINFO x2 when the server predates them, and on RESP3 CLIENT MAINT_NOTIFICATIONS.
    assert rejected <= (3 if protocol == 3 else 2)
