"""Tail sampling in the running agent (issue 18 acceptance): an uninstrumented thread-per-request
Python app calling Redis and PostgreSQL serves fast OK, slow (sleep) and 500 requests in known
numbers; the policy keeps errors + latency > 200 ms + 5 % of the rest.  Every error and slow
trace reaches a real collector whole (server span, Redis and PostgreSQL children, log records),
the fast ones within binomial bounds of 5 %, and the RED metrics count every request; exemplars
point only at exported traces."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap

import pytest

from tests.e2e.test_telemetry_linking import RedisServer
from tests.fixtures.record_postgresql import PostgresServer
from tests.support.agent import AgentProcess
from tests.support.ports import free_port, wait_for_port, wait_until
from tests.support.prometheus import OPENMETRICS, metric_sum, scrape
from tests.support.rotel import RotelCollector

pytestmark = [pytest.mark.kernel, pytest.mark.e2e]

N_FAST, N_SLOW, N_FAIL = 400, 12, 12
N_CALLER = 4  # fast requests whose caller sent a sampled traceparent: kept by keep_if_caller_sampled
SPAN_ID = "00f067aa0ba902b7"


def caller_trace_id(i: int) -> str:
    return f"{0xca11e4 + i:016x}" + "f" * 16  # low 8 bytes all ones: never under the 5 % ratio
FAST_CLIENTS = 4

APP = textwrap.dedent(
    """
    import json, os, sys, threading, time
    import psycopg, redis
    from http.server import ThreadingHTTPServer, BaseHTTPRequestHandler

    r = redis.Redis(host="127.0.0.1", port=int(sys.argv[2]))
    pg = psycopg.connect(sys.argv[3], autocommit=True)
    pg_lock = threading.Lock()

    class H(BaseHTTPRequestHandler):
        def do_GET(self):
            kind = self.path.split("/")[1]
            r.incr("hits")
            with pg_lock:
                pg.execute("SELECT 1").fetchall()
            line = json.dumps({"level": "info", "msg": "handling " + self.path}) + "\\n"
            os.write(1, line.encode())  # one write: lines of concurrent threads never interleave
            if kind == "tsacc-slow":
                time.sleep(0.25)
            status = 500 if kind == "tsacc-fail" else 200
            body = b"ok\\n"
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        def log_message(self, *a):
            pass
    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
    """
)


def agent_config(collector: RotelCollector, prom_port: int) -> str:
    return f"""
receivers:
  ebpf:
    capture_logs: true
processors:
  tail_sampling:
    decision_wait: 1s
    keep_if_caller_sampled: true
    policies:
      [
        {{name: errors, type: status_code, status_code: {{status_codes: [ERROR]}}}},
        {{name: slow, type: latency, latency: {{threshold_ms: 200}}}},
        {{name: five-percent, type: probabilistic, probabilistic: {{sampling_percentage: 5}}}},
      ]
  batch:
    timeout: 100ms
exporters:
  otlp:
    endpoint: {collector.grpc_endpoint}
    tls: {{insecure: true}}
  prometheus:
    endpoint: 127.0.0.1:{prom_port}
service:
  pipelines:
    traces: {{receivers: [ebpf], processors: [tail_sampling, batch], exporters: [otlp]}}
    logs: {{receivers: [ebpf], processors: [tail_sampling, batch], exporters: [otlp]}}
    metrics: {{receivers: [ebpf], exporters: [prometheus]}}
"""


def curl(urls: list[str], *headers: str) -> subprocess.Popen:
    return subprocess.Popen(["curl", "-s", *[a for h in headers for a in ("-H", h)],
                             *[a for u in urls for a in ("-o", "/dev/null", u)]], start_new_session=True)


def test_errors_and_slow_traces_kept_whole_the_rest_sampled_metrics_from_all(tmp_path):
    prom_port, app_port = free_port(), free_port()
    (tmp_path / "app.py").write_text(APP)
    pg = PostgresServer().start()
    try:
        with RotelCollector(tmp_path) as collector, RedisServer(tmp_path) as redis_server:
            with AgentProcess(tmp_path, agent_config(collector, prom_port)):
                app_log = open(tmp_path / "app.log", "wb")
                app = subprocess.Popen([sys.executable, str(tmp_path / "app.py"), str(app_port),
                                        str(redis_server.port), pg.tcp_dsn()],
                                       stdout=app_log, stderr=subprocess.DEVNULL, start_new_session=True)
                app_log.close()
                try:
                    wait_for_port(app_port)
                    base = f"http://127.0.0.1:{app_port}"
                    procs = [curl([f"{base}/tsacc-slow/{i}"]) for i in range(N_SLOW)]
                    procs.append(curl([f"{base}/tsacc-fail/{i}" for i in range(N_FAIL)]))
                    procs += [curl([f"{base}/tsacc-caller/{i}"], f"traceparent: 00-{caller_trace_id(i)}-{SPAN_ID}-01")
                              for i in range(N_CALLER)]
                    per = N_FAST // FAST_CLIENTS
                    procs += [curl([f"{base}/tsacc-fast/{c * per + i}" for i in range(per)])
                              for c in range(FAST_CLIENTS)]
                    assert [p.wait(120) for p in procs] == [0] * len(procs)
                    check(collector, prom_port, app.pid, redis_server.port, pg.port)
                finally:
                    os.killpg(app.pid, signal.SIGTERM)
                    app.wait(10)
    finally:
        pg.stop()


def check(collector: RotelCollector, prom_port: int, app_pid: int, redis_port: int, pg_port: int) -> None:
    # RED metrics: every request, kept or not.
    red = "http_server_request_duration_seconds_count{"

    def counted():
        t = scrape(prom_port)
        return metric_sum(t, red, "tsacc-") >= N_FAST + N_SLOW + N_FAIL + N_CALLER and t

    text = wait_until(counted, timeout=30, what="RED metrics of every request")
    assert metric_sum(text, red, "tsacc-fast") == N_FAST
    assert metric_sum(text, red, "tsacc-slow") == N_SLOW
    assert metric_sum(text, red, "tsacc-fail", 'error_type="500"') == N_FAIL

    def servers():
        return [s for s in collector.spans() if s.kind == "SPAN_KIND_SERVER"
                and s.resource.get("process.pid") == app_pid and str(s.attributes.get("url.path")).startswith("/tsacc-")]

    def path_kind(s) -> str:
        return s.attributes["url.path"].split("/")[1]

    # Errors and slow ones all arrive; then wait for the exports to settle.
    wait_until(lambda: len([s for s in servers() if path_kind(s) != "tsacc-fast"]) >= N_SLOW + N_FAIL + N_CALLER,
               timeout=40, what="every slow and failed request's server span")
    seen: list[int] = []

    def settled():  # the agent sees the whole host: count only what is the app's
        n = (len([s for s in collector.spans() if s.resource.get("process.pid") == app_pid])
             + len([r for r in collector.logs() if r.resource.get("process.pid") == app_pid]))
        seen.append(n)
        return len(seen) >= 8 and len(set(seen[-8:])) == 1

    wait_until(settled, timeout=30, interval=0.25, what="exports to settle")
    spans, logs = collector.spans(), collector.logs()
    srv = servers()
    by_kind = {k: [s for s in srv if path_kind(s) == k]
               for k in ("tsacc-fast", "tsacc-slow", "tsacc-fail", "tsacc-caller")}
    assert len(by_kind["tsacc-slow"]) == N_SLOW and len(by_kind["tsacc-fail"]) == N_FAIL
    # The caller sampled these: kept whatever the policies say, in the caller's trace.
    assert sorted((s.trace_id, s.parent_id) for s in by_kind["tsacc-caller"]) == [
        (caller_trace_id(i), SPAN_ID) for i in range(N_CALLER)]
    # Binomial(400, 0.05): mean 20, sd 4.4 — outside [5, 40] is a broken sampler.
    kept_fast = len(by_kind["tsacc-fast"])
    assert 5 <= kept_fast <= 40, kept_fast

    # Every exported trace is whole: its Redis and PostgreSQL children, its log line (and, for a
    # 500, the protocol error's log record).
    for s in srv:
        children = [c for c in spans if c.parent_id == s.span_id and c.trace_id == s.trace_id]
        systems = {c.attributes.get("db.system.name") for c in children}
        assert {"redis", "postgresql"} <= systems, (s.attributes["url.path"], systems)
        mine = [r for r in logs if r.trace_id == s.trace_id]
        assert any(r.body.endswith(f"handling {s.attributes['url.path']}\"}}") and r.span_id == s.span_id
                   for r in mine), s.attributes["url.path"]
        if path_kind(s) == "tsacc-fail":
            assert any(r.attributes.get("event.name") == "ebpf_receiver.protocol.error" for r in mine)
    # Nothing of a dropped trace leaks: every Redis/PostgreSQL span and log line of the app
    # belongs to an exported request trace.
    kept = {s.trace_id for s in srv}
    db = [c for c in spans if c.resource.get("process.pid") == app_pid
          and c.attributes.get("server.port") in (redis_port, pg_port) and c.parent_id]
    assert db and {c.trace_id for c in db} <= kept
    # (the app's own: another agent on the host may capture a collector printing these lines)
    handling = [r for r in logs if "handling /tsacc-" in r.body and r.resource.get("process.pid") == app_pid]
    assert len(handling) == len(srv) and {r.trace_id for r in handling} == kept

    # Exemplars point only at exported traces.
    om = scrape(prom_port, OPENMETRICS)
    ids = {m.group(1) for line in om.splitlines()
           if line.startswith("http_server_request_duration_seconds_bucket{") and "tsacc-" in line
           and (m := re.search(r' # \{[^}]*trace_id="([0-9a-f]{32})"', line))}
    assert ids and ids <= {s.trace_id for s in spans}
    # The decisions are counted per policy (a slow request whose Redis pool opened a connection
    # has the server's ERR answers to redis-py's handshake in its trace: an error trace too).
    own = scrape(prom_port)
    traces = "ebpf_receiver_tail_sampling_traces_total{"
    assert (metric_sum(own, traces, 'policy="errors"') + metric_sum(own, traces, 'policy="slow"')
            >= N_FAIL + N_SLOW)
    assert metric_sum(own, traces, 'policy="five-percent"') > 0
    # A decision is counted under the first policy that kept the trace: a caller's trace that a
    # policy kept anyway (5 %, or an error of a client's handshake) is not the escape hatch's.
    assert 1 <= metric_sum(own, traces, 'policy="keep_if_caller_sampled"') <= N_CALLER
    print(f"\nkept fast traces: {kept_fast} of {N_FAST} (5 %: {N_FAST // 20} expected)")
    assert metric_sum(own, "ebpf_receiver_tail_sampling_dropped_items_total{", 'signal="traces"') > 0
