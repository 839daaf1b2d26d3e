"""Small pure helpers of receiver.telemetry: routes, trace context, resources, log severity,
HTTP redaction, service graph."""

from pathlib import Path

import pytest

from receiver.telemetry.http_semconv import redact_query, split_target
from receiver.telemetry.logs import LogLineAssembler, severity_of
from receiver.model.telemetry import Resource, SeverityNumber, Span, SpanKind, StatusCode
from receiver.discovery.resources import (
    ProcessResources,
    derive_service_name,
    parse_resource_attributes,
    service_instance_id,
)
from receiver.telemetry.routes import RouteTemplater
from receiver.telemetry.service_graph import ServiceGraph
from receiver.telemetry.trace_context import parse_traceparent


@pytest.mark.parametrize(
    "path,route",
    [
        ("/users/123/orders", "/users/{id}/orders"),
        ("/items/3f2504e0-4f89-11d3-9a0c-0305e82c3301", "/items/{id}"),
        ("/blob/deadbeefcafebabe", "/blob/{id}"),
        ("/static/app.css", "/static/app.css"),
        ("/", "/"),
    ],
)
def test_route_templating(path, route):
    assert RouteTemplater().route(path) == route


def test_route_user_patterns_and_ignored():
    r = RouteTemplater(patterns=["/api/{version}/things/*"], ignored=["/health"])
    assert r.route("/api/v2/things/abc") == "/api/{version}/things/*"
    assert r.route("/health") is None


@pytest.mark.parametrize(
    "value,ok",
    [
        ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", True),
        ("00-00000000000000000000000000000000-00f067aa0ba902b7-01", False),
        ("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", False),
        ("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", False),
        ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7", False),
        ("00-4bf92f3577b34da6a3ce929d0e0e473x-00f067aa0ba902b7-01", False),
        ("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-future", True),
        ("", False),
    ],
)
def test_traceparent(value, ok):
    assert (parse_traceparent(value) is not None) == ok


@pytest.mark.parametrize(
    "exe,argv,name",
    [
        ("/usr/bin/python3.11", ("python3", "app.py"), "app"),
        ("/usr/bin/python3.11", ("python3", "-u", "/srv/shop/main.py"), "main"),
        ("/usr/lib/jvm/bin/java", ("java", "-Xmx1g", "-jar", "/opt/shop.jar"), "shop"),
        ("/usr/sbin/nginx", ("nginx: worker process",), "nginx"),
        ("/usr/bin/redis-server", ("/usr/bin/redis-server", "127.0.0.1:6379"), "redis-server"),
        ("/usr/bin/node", ("node", "server.js"), "server"),
    ],
)
def test_service_name_derivation(exe, argv, name):
    assert derive_service_name(exe, argv) == name


def test_resource_from_a_fake_proc(tmp_path: Path):
    p = tmp_path / "42"
    p.mkdir()
    (p / "cmdline").write_bytes(b"python3\0app.py\0")
    (p / "environ").write_bytes(
        b"OTEL_RESOURCE_ATTRIBUTES=deployment.environment.name=prod,team=a%2Cb\0POD_NAME=web-1\0POD_NAMESPACE=shop\0"
    )
    (p / "cgroup").write_bytes(b"0::/kubepods/pod1/" + b"a" * 64 + b"\n")
    (p / "exe").symlink_to("/usr/bin/python3.11")
    r = ProcessResources(proc_root=str(tmp_path), host_name="node1").get(42)
    assert r.service_name == "app"
    assert r.get("deployment.environment.name") == "prod" and r.get("team") == "a,b"
    assert r.get("container.id") == "a" * 64
    assert r.get("k8s.pod.name") == "web-1" and r.get("k8s.namespace.name") == "shop"
    assert r.get("process.pid") == 42 and r.get("process.runtime.name") == "cpython"
    assert r.get("service.instance.id") == service_instance_id("node1", "a" * 64, "", "app", "python3.11")


def test_otel_service_name_wins_and_gone_processes_fall_back_to_comm(tmp_path: Path):
    p = tmp_path / "7"
    p.mkdir()
    (p / "environ").write_bytes(b"OTEL_SERVICE_NAME=checkout\0")
    res = ProcessResources(proc_root=str(tmp_path), host_name="h")
    assert res.get(7).service_name == "checkout"
    res.remember_comm(8, "curl")
    assert res.get(8).service_name == "curl"
    assert parse_resource_attributes("a=1, b = 2,broken") == {"a": "1", "b": "2"}


@pytest.mark.parametrize(
    "line,sev",
    [
        ('{"level":"error","msg":"boom"}', SeverityNumber.ERROR),
        ('{"level":50,"msg":"pino"}', SeverityNumber.ERROR),
        ("2026-01-01 12:00:00 WARNING disk almost full", SeverityNumber.WARN),
        ("[INFO] started", SeverityNumber.INFO),
        ("nothing to see", SeverityNumber.UNSPECIFIED),
    ],
)
def test_log_severity(line, sev):
    assert severity_of(line)[0] == sev


def test_partial_writes_join_into_lines_and_idle_flush():
    a = LogLineAssembler(max_line=64, idle_ns=100)
    assert a.feed(1, 1, 1, b"hel", 0) == []
    lines = a.feed(1, 1, 1, b"lo\nwor", 10)
    assert [l.text for l in lines] == ["hello"]
    assert [l.text for l in a.flush_idle(200)] == ["wor"]
    assert len(a.feed(1, 1, 2, b"x" * 100, 0)) == 1 and a.truncated_lines == 1


def test_query_redaction_and_targets():
    assert redact_query("a=1&token=abc&password=x&b") == "a=1&token=REDACTED&password=REDACTED&b"
    assert split_target("http://u:p@h/p?q=1") == ("/p", "q=1", True)
    assert split_target("/x#frag") == ("/x", None, False)


def test_service_graph_pairs_and_virtual_nodes():
    clock = [0]
    g = ServiceGraph(wait_ns=10, clock_ns=lambda: clock[0])
    a, b = Resource.from_dict({"service.name": "a"}), Resource.from_dict({"service.name": "b"})
    cli = Span(b"t" * 16, b"c" * 8, "GET", SpanKind.CLIENT, 0, 2_000_000, a)
    srv = Span(b"t" * 16, b"s" * 8, "GET", SpanKind.SERVER, 0, 1_000_000, b, parent_span_id=b"c" * 8,
               status_code=StatusCode.ERROR)
    db = Span(b"t" * 16, b"d" * 8, "SELECT", SpanKind.CLIENT, 0, 1, a, attributes={"db.system.name": "postgresql"})
    g.observe([srv, cli, db])
    clock[0] = 100
    ms = {m.name: m for m in g.collect()}
    req = {dict(p.attributes)["server"]: p.value for p in ms["traces_service_graph_request"].points}
    assert req == {"b": 1, "postgresql": 1}
    failed = {dict(p.attributes)["server"]: p.value for p in ms["traces_service_graph_request_failed"].points}
    assert failed == {"b": 1, "postgresql": 0}
    assert ms["traces_service_graph_request_server"].points[0].count == 1


@pytest.mark.parametrize(
    "line,secret",
    [
        ("GET /secret?token=tok-7d1c2&page=2", "tok-7d1c2"),
        ("Authorization: Bearer abc.def.ghi", "abc.def.ghi"),
        ("Cookie: session=xyz123", "xyz123"),
        ('{"password": "hunter2", "user": "bob"}', "hunter2"),
        ("login password=hunter2 ok", "hunter2"),
    ],
)
def test_log_lines_are_scrubbed_of_secrets(line, secret):
    from receiver.telemetry.logs import scrub_secrets

    out = scrub_secrets(line)
    assert secret not in out and "REDACTED" in out
