"""The zPages' data: the tracez store, rates and quantiles, the service map built from the
agent's real ServiceGraph and RedMetrics, the layout, and the status table."""

from __future__ import annotations

import pytest

from receiver.component.status import TLS_COVERED, ProcessStatus
from receiver.extensions.zpages.layout import LayoutCache, layered_layout
from receiver.extensions.zpages.table import format_servicez
from receiver.extensions.zpages.tracez import ERROR_BUCKET, LATENCY_LABELS, SpanStore, span_protocol
from receiver.extensions.zpages.views import RateWindow, histogram_quantile, service_map, service_rows
from receiver.model.telemetry import Resource, Span, SpanKind, StatusCode
from receiver.telemetry.red_metrics import DURATION_BUCKETS, RedMetrics
from receiver.telemetry.service_graph import ServiceGraph

T0 = 1_700_000_000 * 10**9


class Clock:
    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def res(name: str, pid: int) -> Resource:
    return Resource.from_dict({"service.name": name, "process.pid": pid})


def span(name: str, duration_ns: int, resource: Resource, error: bool = False, i: int = 0, **attrs) -> Span:
    return Span(bytes([1]) * 16, i.to_bytes(8, "big"), name, SpanKind.SERVER, T0, T0 + duration_ns, resource,
                attributes=dict(attrs), status_code=StatusCode.ERROR if error else StatusCode.UNSET)


# -- tracez -----------------------------------------------------------------------------------


def test_spans_are_counted_per_latency_bucket_and_errors_apart():
    store = SpanStore(samples_per_bucket=2)
    app = res("app", 7)
    store.observe([span("GET /a", 5_000, app), span("GET /a", 2_000_000, app, i=1), span("GET /a", 3_000_000, app, i=2),
                   span("GET /a", 1_000, app, error=True, i=3, **{"http.request.method": "GET"})])
    (row,) = store.summary()
    assert row.latency_counts[0] == 1 and row.latency_counts[LATENCY_LABELS.index("[1ms, 10ms)")] == 2
    assert row.errors == 1 and row.total == 4
    (err,) = store.samples("GET /a", ERROR_BUCKET)
    assert err.error and err.span_id == (3).to_bytes(8, "big").hex() and err.pid == 7 and err.service == "app"
    # the ring keeps the most recent, newest first
    store.observe([span("GET /a", 4_000_000, app, i=9)])
    kept = store.samples("GET /a", LATENCY_LABELS.index("[1ms, 10ms)"))
    assert [s.span_id[-2:] for s in kept] == ["09", "02"]
    assert store.samples("GET /a", 99) == [] and store.samples("nope", 0) == []


def test_span_names_and_processes_are_bounded_and_what_is_dropped_is_counted():
    clock = Clock()
    store = SpanStore(samples_per_bucket=1, max_span_names=2, max_processes=2, clock=clock)
    store.observe([span(f"n{i}", 1, res("svc", 100 + i), i=i) for i in range(5)])
    assert [r.name for r in store.summary()] == ["n0", "n1"]
    assert store.dropped == 3 and store.observed == 5
    assert [p.pid for p in store.processes()] == [103, 104]  # least recently seen forgotten


def test_process_activity_names_the_protocols_spans_spoke():
    store = SpanStore()
    app = res("app", 7)
    store.observe([span("GET", 1, app, **{"http.request.method": "GET"}),
                   span("GET", 1, app, **{"db.system.name": "redis"}),
                   span("SELECT", 1, app, error=True, **{"db.system.name": "postgresql"})])
    (p,) = store.processes()
    assert p.protocols == ("http", "postgresql", "redis") and p.spans == 3 and p.errors == 1
    assert span_protocol(span("x", 1, app, **{"rpc.system": "grpc"})) == "grpc"


# -- rates, quantiles -------------------------------------------------------------------------


def test_rates_are_taken_over_the_window_or_since_the_series_began():
    clock = Clock()
    window = RateWindow(window=30, clock=clock)
    assert window.rates({"a": (100.0,)}, {"a": 50.0}) == {"a": (2.0,)}  # no sample yet: average since start
    clock.t += 10
    assert window.rates({"a": (150.0,), "b": (4.0,)}, {"a": 60.0, "b": 2.0}) == {"a": (5.0,), "b": (2.0,)}
    clock.t += 40  # the samples are older than the window: dropped
    assert window.rates({"a": (150.0,)}, {"a": 100.0}) == {"a": (1.5,)}


def test_quantiles_interpolate_in_their_bucket_and_use_the_max_in_the_last():
    bounds = (0.1, 0.2, 0.5)
    assert histogram_quantile(0.5, bounds, [0, 10, 0, 0], 0.2) == pytest.approx(0.15)
    assert histogram_quantile(0.99, bounds, [0, 0, 0, 5], 3.0) == 3.0
    assert histogram_quantile(0.5, bounds, [0, 0, 0, 0], 0.0) is None


# -- service map and servicez from the agent's own aggregators ---------------------------------------


def pair(graph: ServiceGraph, client: Resource, server: Resource | None, i: int, error: bool, **attrs) -> None:
    cid = (1000 + i).to_bytes(8, "big")
    spans = [Span(bytes(16), cid, "call", SpanKind.CLIENT, T0, T0 + 3_000_000, client, attributes=dict(attrs),
                  status_code=StatusCode.ERROR if error else StatusCode.UNSET)]
    if server is not None:
        spans.append(Span(bytes(16), (5000 + i).to_bytes(8, "big"), "serve", SpanKind.SERVER, T0, T0 + 2_000_000, server,
                          parent_span_id=cid, status_code=StatusCode.ERROR if error else StatusCode.UNSET))
    graph.observe(spans)


def test_the_map_has_services_external_peers_and_edges_with_error_ratios():
    graph, red = ServiceGraph(wait_ns=0), RedMetrics()
    front, app = res("front", 1), res("app", 2)
    for i in range(8):
        pair(graph, front, app, i, error=i < 2)
        red.record("http.server.request.duration", app, (("error.type", "500"),) if i < 2 else (), 0.002, T0)
    for i in range(4):
        pair(graph, app, None, 100 + i, error=False, **{"db.system.name": "redis"})
    m = service_map(graph.collect(), red.collect(), RateWindow(clock=Clock()), T0 + 10**9)
    nodes = {n.name: n for n in m.nodes}
    assert set(nodes) == {"front", "app", "redis"}
    assert nodes["redis"].external and not nodes["app"].external
    assert nodes["app"].error_ratio == 0.25 and nodes["app"].health == "bad" and nodes["front"].health == "idle"
    edges = {(e.client, e.server): e for e in m.edges}
    assert edges[("front", "app")].requests == 8 and edges[("front", "app")].error_ratio == 0.25
    assert edges[("app", "redis")].connection_type == "database" and edges[("app", "redis")].failed == 0
    # 3 ms client durations, all in the first bucket (0, 5 ms]: interpolated up to the max seen
    assert DURATION_BUCKETS[0] == 0.005 and edges[("front", "app")].p99_s == pytest.approx(0.99 * 0.003)


def test_servicez_rows_join_receiver_processes_spans_and_red_histograms():
    red = RedMetrics()
    app = res("app", 2)
    metrics_resource = Resource.from_dict({"service.name": "app", "service.instance.id": "x"})
    for i in range(10):
        red.record("http.server.request.duration", metrics_resource, (("error.type", "500"),) if i == 0 else (), 0.03, T0)
    red.record("db.client.operation.duration", metrics_resource, (), 0.001, T0)
    store = SpanStore()
    store.observe([span("GET", 1, app, **{"http.request.method": "GET"})])
    status = ProcessStatus(2, app, metrics_resource, connections=3, protocols=("redis",), tls_stack=("/lib/libssl.so.3",),
                           tls_plaintext=TLS_COVERED, tls_ciphertext_connections=0)
    (row,) = service_rows([status], store.processes(), red.collect(), RateWindow(clock=Clock()), T0 + 5 * 10**9)
    assert row.protocols == ("http", "redis") and row.connections == 3 and row.spans == 1
    assert row.error_ratio == pytest.approx(0.1) and 0.025 < row.p50_s <= 0.05 and row.requests_per_s == 2.0
    assert row.call_error_ratio == 0.0 and row.calls_per_s == pytest.approx(0.2)
    text = format_servicez([{"service": row.service, "pid": row.pid, "protocols": list(row.protocols),
                             "tls_stack": list(row.tls_stack), "tls_plaintext": row.tls_plaintext,
                             "connections": 3, "spans": 1, "requests_per_s": 2.0, "error_ratio": 0.1,
                             "p50_s": row.p50_s, "p99_s": row.p99_s, "calls_per_s": 0.2}])
    header, line = text.splitlines()
    assert header.split()[:2] == ["SERVICE", "PID"] and line.split()[:4] == ["app", "2", "-", "http,redis"]
    assert "libssl.so.3" in line and "10.0" in line.split()


# -- layout -----------------------------------------------------------------------------------


def test_callers_are_left_of_what_they_call_and_a_cycle_shares_a_layer():
    layout = layered_layout(["web", "api", "db", "a", "b"], [("web", "api"), ("api", "db"), ("a", "b"), ("b", "a")])
    x = {n: p[0] for n, p in layout.positions.items()}
    assert x["web"] < x["api"] < x["db"]
    assert x["a"] == x["b"]
    assert layered_layout([], []).positions == {}


def test_the_layout_is_computed_again_only_when_the_graph_changes():
    cache = LayoutCache()
    first = cache.get(["a", "b"], [("a", "b")])
    assert cache.get(["b", "a"], [("a", "b")]) is first and cache.computed == 1
    cache.get(["a", "b", "c"], [("a", "b")])
    assert cache.computed == 2
