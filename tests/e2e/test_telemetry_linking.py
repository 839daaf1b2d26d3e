"""Metrics → traces → logs, linked, from uninstrumented processes: the agent as users run it,
a real collector (rotel), real Redis and PostgreSQL, real clients, and an SDK-instrumented one."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import urllib.request
from pathlib import Path

import pytest

from tests.fixtures.record_postgresql import DATABASE, PSQL, PostgresServer
from tests.support.agent import AgentProcess
from tests.support.ports import free_port, wait_for_port, wait_until
from tests.support.rotel import RotelCollector

pytestmark = [pytest.mark.kernel, pytest.mark.e2e]

SECRET_AUTH = "Bearer s3cr3t-auth-4b9f"
SECRET_COOKIE = "session=c00kie-9a7e"
SECRET_TOKEN = "tok-7d1c2"
SECRET_LITERAL = "sql-literal-55e1"

APP = textwrap.dedent(
    """
    import os, sys, json, redis
    from http.server import ThreadingHTTPServer, BaseHTTPRequestHandler

    r = redis.Redis(host="127.0.0.1", port=int(sys.argv[2]))
    class H(BaseHTTPRequestHandler):
        def do_GET(self):
            value = r.get("greeting")
            print(json.dumps({"level": "warn", "msg": "handling " + self.path}), flush=True)
            body = (value or b"none") + b"\\n"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        def log_message(self, *a):
            pass
    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
    """
)

SDK_CLIENT = textwrap.dedent(
    """
    import sys, requests
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.instrumentation.requests import RequestsInstrumentor

    tp = TracerProvider(resource=Resource.create({"service.name": "sdk-client"}))
    tp.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=sys.argv[2], insecure=True)))
    trace.set_tracer_provider(tp)
    RequestsInstrumentor().instrument()
    requests.get(sys.argv[1], timeout=10)
    tp.shutdown()
    """
)


def agent_config(collector: RotelCollector, prom_port: int) -> str:
    return f"""
receivers:
  ebpf:
    capture_logs: true
processors:
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
    traces: {{receivers: [ebpf], processors: [batch], exporters: [otlp]}}
    logs: {{receivers: [ebpf], processors: [batch], exporters: [otlp]}}
    metrics: {{receivers: [ebpf], exporters: [prometheus]}}
"""


class RedisServer:
    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.dir = workdir

    def __enter__(self):
        self.proc = subprocess.Popen(
            [shutil.which("redis-server") or "/usr/bin/redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", str(self.dir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        wait_for_port(self.port)
        subprocess.run(["redis-cli", "-p", str(self.port), "SET", "greeting", "hello"], check=True,
                       capture_output=True, timeout=10)
        return self

    def __exit__(self, *exc):
        os.killpg(self.proc.pid, signal.SIGTERM)
        self.proc.wait(10)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("telemetry")
    prom_port = free_port()
    app_port = free_port()
    (tmp / "app.py").write_text(APP)
    (tmp / "sdk_client.py").write_text(SDK_CLIENT)
    pg = PostgresServer().start()
    try:
        with RotelCollector(tmp) as collector, RedisServer(tmp) as redis_server:
            with AgentProcess(tmp, agent_config(collector, prom_port)) as agent:
                # The app logs to a file, a log destination (a pipe into this test would not be).
                app_log = open(tmp / "app.log", "wb")
                app = subprocess.Popen([sys.executable, str(tmp / "app.py"), str(app_port), str(redis_server.port)],
                                       stdout=app_log, stderr=subprocess.DEVNULL, start_new_session=True)
                app_log.close()
                try:
                    wait_for_port(app_port)
                    yield {"collector": collector, "agent": agent, "app_port": app_port, "prom_port": prom_port,
                           "pg": pg, "tmp": tmp}
                finally:
                    os.killpg(app.pid, signal.SIGTERM)
                    app.wait(10)
    finally:
        pg.stop()


def spans_where(collector, **attrs):
    out = []
    for s in collector.spans():
        if all((s.attributes.get(k) if k not in ("kind", "service") else None) == v or
               (k == "kind" and s.kind == v) or (k == "service" and s.resource.get("service.name") == v)
               for k, v in attrs.items()):
            out.append(s)
    return out


def test_threaded_server_calls_and_logs_join_the_request_trace(env):
    c = env["collector"]
    url = f"http://127.0.0.1:{env['app_port']}/items/42"
    subprocess.run(["curl", "-s", "-o", "/dev/null", url], check=True, timeout=20)

    def found():
        srv = spans_where(c, kind="SPAN_KIND_SERVER", **{"url.path": "/items/42"})
        cli = spans_where(c, kind="SPAN_KIND_CLIENT", service="curl", **{"url.path": "/items/42"})
        red = spans_where(c, kind="SPAN_KIND_CLIENT", **{"db.system.name": "redis", "db.operation.name": "GET"})
        logs = [r for r in c.logs() if "handling /items/42" in r.body]
        return srv and cli and red and logs and (srv[0], cli[0], red, logs[0])

    srv, cli, reds, log = wait_until(found, timeout=30, what="server, client, redis spans and the log line")
    # One trace: curl -> app (same host) -> redis (thread-per-request).
    assert srv.trace_id == cli.trace_id and srv.parent_id == cli.span_id
    red = [r for r in reds if r.trace_id == srv.trace_id]
    assert red and red[0].parent_id == srv.span_id
    assert srv.name == "GET /items/{id}" and srv.attributes["http.route"] == "/items/{id}"
    # The log line written while serving carries the server span's ids and its JSON level.
    assert log.trace_id == srv.trace_id and log.span_id == srv.span_id
    assert log.severity_text == "warn"


def test_sdk_instrumented_client_and_uninstrumented_server_form_one_trace(env):
    c = env["collector"]
    url = f"http://127.0.0.1:{env['app_port']}/sdk/call"
    subprocess.run([sys.executable, str(env["tmp"] / "sdk_client.py"), url, c.grpc_endpoint], check=True, timeout=60)

    def found():
        sdk = spans_where(c, service="sdk-client", kind="SPAN_KIND_CLIENT")
        srv = spans_where(c, kind="SPAN_KIND_SERVER", **{"url.path": "/sdk/call"})
        return sdk and srv and (sdk[0], srv[0])

    sdk, srv = wait_until(found, timeout=30, what="SDK client span and kernel server span")
    assert srv.trace_id == sdk.trace_id
    assert srv.parent_id == sdk.span_id
    # The SDK made the client span: the agent made no duplicate of it.
    dup = [s for s in spans_where(c, kind="SPAN_KIND_CLIENT", **{"url.path": "/sdk/call"})
           if s.resource.get("service.name") != "sdk-client"]
    assert dup == []


def test_bad_sql_is_an_error_span_with_sqlstate_and_a_linked_log(env):
    c, pg = env["collector"], env["pg"]
    r = subprocess.run(
        [PSQL, "-h", "127.0.0.1", "-p", str(pg.port), "-U", "postgres", "-d", DATABASE, "-c",
         "SELECT * FROM no_such_table"],
        capture_output=True, text=True, timeout=30,
    )
    assert "no_such_table" in r.stderr

    def found():
        spans = [s for s in spans_where(c, kind="SPAN_KIND_CLIENT", **{"db.system.name": "postgresql"})
                 if s.attributes.get("db.response.status_code") == "42P01"]
        logs = [x for x in c.logs() if x.attributes.get("db.response.status_code") == "42P01"]
        return spans and logs and (spans[0], logs)

    span, logs = wait_until(found, timeout=30, what="the 42P01 span and its log record")
    assert span.status_code == "STATUS_CODE_ERROR"
    assert span.attributes["error.type"] == "42P01"
    assert span.attributes["db.operation.name"] == "SELECT"
    assert span.attributes["db.collection.name"] == "no_such_table"
    assert span.name == "SELECT no_such_table"
    assert span.attributes["db.namespace"] == DATABASE
    assert any(x.trace_id == span.trace_id and x.span_id == span.span_id for x in logs)


def test_secrets_never_reach_the_collector(env):
    c, pg = env["collector"], env["pg"]
    subprocess.run(
        ["curl", "-s", "-o", "/dev/null", "-H", f"Authorization: {SECRET_AUTH}", "-H", f"Cookie: {SECRET_COOKIE}",
         f"http://127.0.0.1:{env['app_port']}/secret?token={SECRET_TOKEN}&page=2"],
        check=True, timeout=20,
    )
    subprocess.run(
        [PSQL, "-h", "127.0.0.1", "-p", str(pg.port), "-U", "postgres", "-d", DATABASE, "-c",
         f"SELECT count(*) AS n FROM pg_class WHERE relname = '{SECRET_LITERAL}'"],
        check=True, capture_output=True, timeout=30,
    )
    wait_until(lambda: spans_where(c, **{"url.path": "/secret"}) and
               [s for s in spans_where(c, **{"db.system.name": "postgresql"})
                if "relname = ?" in str(s.attributes.get("db.query.text", ""))],
               timeout=30, what="the spans of the secret-carrying requests")
    raw = c.raw_bytes()
    for secret in (SECRET_AUTH, "s3cr3t-auth", SECRET_COOKIE, "c00kie", SECRET_TOKEN, SECRET_LITERAL):
        assert secret.encode() not in raw, f"{secret!r} reached the collector"
    q = [s for s in spans_where(c, **{"url.path": "/secret"})][0].attributes["url.query"]
    assert q == "token=REDACTED&page=2"


def test_histogram_exemplars_point_at_received_spans(env):
    c = env["collector"]
    subprocess.run(["curl", "-s", "-o", "/dev/null", f"http://127.0.0.1:{env['app_port']}/exemplar"], check=True,
                   timeout=20)
    wait_until(lambda: spans_where(c, **{"url.path": "/exemplar"}), timeout=30, what="the span")
    req = urllib.request.Request(f"http://127.0.0.1:{env['prom_port']}/metrics",
                                 headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    text = urllib.request.urlopen(req, timeout=5).read().decode()
    ids = set(re.findall(r'http_server_request_duration_seconds_bucket\{[^}]*\} \S+ # \{[^}]*trace_id="([0-9a-f]{32})"',
                         text))
    assert ids, "no exemplars on http_server_request_duration_seconds"
    received = {s.trace_id for s in c.spans()}
    assert ids & received
