"""RedMetrics: bucket placement, cumulative snapshots, overflow series, exemplars, threads."""

from __future__ import annotations

import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from receiver.model.telemetry import MetricKind, Resource
from receiver.telemetry.red_metrics import DURATION_BUCKETS, OVERFLOW_ATTRIBUTES, RedMetrics

NAME = "http.server.request.duration"
RES = Resource.from_dict({"service.name": "api"})
GET = (("http.request.method", "GET"), ("http.response.status_code", 200))
POST = (("http.request.method", "POST"), ("http.response.status_code", 500))


def points_by_attrs(red: RedMetrics, name: str = NAME, resource: Resource = RES):
    (metric,) = [m for m in red.collect() if m.name == name and m.resource == resource]
    return {p.attributes: p for p in metric.points}


def test_bucket_boundaries_are_upper_inclusive():
    red = RedMetrics(clock_ns=lambda: 1000)
    for v in (0.0, 0.005, 0.0050001, 0.01, 10, 10.5, 1e9):
        red.record(NAME, RES, GET, v, 100)
    p = points_by_attrs(red)[GET]
    assert p.explicit_bounds == DURATION_BUCKETS
    assert len(p.bucket_counts) == len(DURATION_BUCKETS) + 1
    # 0 and 0.005 → bucket 0 (≤0.005); 0.0050001 and 0.01 → bucket 1; 10 → bucket 13; 10.5, 1e9 → +Inf
    expected = [0] * 15
    expected[0], expected[1], expected[13], expected[14] = 2, 2, 1, 2
    assert p.bucket_counts == expected
    assert p.count == 7 and p.sum == pytest.approx(0.0 + 0.005 + 0.0050001 + 0.01 + 10 + 10.5 + 1e9)
    assert (p.min, p.max) == (0.0, 1e9)


def test_snapshots_are_cumulative_and_independent():
    now = [2_000]
    red = RedMetrics(clock_ns=lambda: now[0])
    red.record(NAME, RES, GET, 0.02, 1_000)
    first = points_by_attrs(red)[GET]
    red.record(NAME, RES, GET, 0.02, 1_500)
    now[0] = 3_000
    second = points_by_attrs(red)[GET]
    assert first.count == 1 and sum(first.bucket_counts) == 1  # not changed by later records
    assert second.count == 2 and second.bucket_counts[2] == 2
    assert first.start_time_unix_nano == second.start_time_unix_nano == 1_000
    assert (first.time_unix_nano, second.time_unix_nano) == (2_000, 3_000)


def test_metric_shape():
    red = RedMetrics()
    red.record(NAME, RES, GET, 0.1, 1)
    red.record("db.client.operation.duration", RES, (), 0.1, 1)
    metrics = {m.name: m for m in red.collect()}
    m = metrics[NAME]
    assert (m.unit, m.kind, m.resource) == ("s", MetricKind.HISTOGRAM, RES)
    assert m.description == "Duration of HTTP server requests."
    assert metrics["db.client.operation.duration"].points[0].attributes == ()


def test_series_are_per_resource_and_attributes():
    other = Resource.from_dict({"service.name": "worker"})
    red = RedMetrics()
    red.record(NAME, RES, GET, 0.1, 1)
    red.record(NAME, RES, POST, 0.1, 1)
    red.record(NAME, other, GET, 0.1, 1)
    assert set(points_by_attrs(red)) == {GET, POST}
    assert set(points_by_attrs(red, resource=other)) == {GET}


def test_exemplars_one_per_bucket_latest_wins():
    red = RedMetrics()
    red.record(NAME, RES, GET, 0.02, 10, b"\x01" * 16, b"\x01" * 8)
    red.record(NAME, RES, GET, 0.021, 20, b"\x02" * 16, b"\x02" * 8)  # same bucket, later
    red.record(NAME, RES, GET, 3.0, 30, b"\x03" * 16, b"\x03" * 8)
    red.record(NAME, RES, GET, 0.022, 40)  # no ids: counted, no exemplar
    ex = points_by_attrs(red)[GET].exemplars
    assert [(e.value, e.time_unix_nano, e.trace_id, e.span_id) for e in ex] == [
        (0.021, 20, b"\x02" * 16, b"\x02" * 8),
        (3.0, 30, b"\x03" * 16, b"\x03" * 8),
    ]


def test_cardinality_cap_routes_new_attribute_sets_to_overflow():
    red = RedMetrics(max_series_per_metric=3)
    for i in range(10):
        red.record(NAME, RES, (("url.path", f"/p{i}"),), 0.1, 1)
    red.record(NAME, RES, (("url.path", "/p0"),), 0.1, 1)  # an existing series still counts
    other = Resource.from_dict({"service.name": "other"})
    red.record(NAME, other, (("url.path", "/x"),), 0.1, 1)  # the cap is per metric, over resources
    red.record("rpc.server.duration", RES, (("url.path", "/y"),), 0.1, 1)  # another metric: own cap
    points = points_by_attrs(red)
    assert set(points) == {(("url.path", "/p0"),), (("url.path", "/p1"),), (("url.path", "/p2"),), OVERFLOW_ATTRIBUTES}
    assert points[(("url.path", "/p0"),)].count == 2
    assert points[OVERFLOW_ATTRIBUTES].count == 7
    assert OVERFLOW_ATTRIBUTES == (("otel.metric.overflow", True),)
    assert set(points_by_attrs(red, resource=other)) == {OVERFLOW_ATTRIBUTES}
    assert set(points_by_attrs(red, "rpc.server.duration")) == {(("url.path", "/y"),)}


def test_nan_is_ignored_and_bad_arguments_refused():
    red = RedMetrics()
    red.record(NAME, RES, GET, float("nan"), 1)
    assert red.collect() == []
    with pytest.raises(ValueError):
        RedMetrics(max_series_per_metric=0)
    with pytest.raises(ValueError):
        RedMetrics(bounds=(1, 0.5))


def test_concurrent_records_are_all_counted():
    red = RedMetrics()

    def work(k):
        for i in range(2000):
            red.record(NAME, RES, GET if i % 2 else POST, (i % 50) / 10, i, bytes([k]) * 16, bytes([k]) * 8)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(1, 5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    points = points_by_attrs(red)
    assert points[GET].count + points[POST].count == 8000
    assert sum(points[GET].bucket_counts) == points[GET].count


@given(st.lists(st.floats(min_value=0, max_value=20, allow_nan=False), min_size=1, max_size=50))
def test_bucket_counts_match_a_linear_scan(values):
    red = RedMetrics()
    for v in values:
        red.record(NAME, RES, GET, v, 1)
    p = points_by_attrs(red)[GET]
    expected = [0] * (len(DURATION_BUCKETS) + 1)
    for v in values:
        expected[next((i for i, b in enumerate(DURATION_BUCKETS) if v <= b), len(DURATION_BUCKETS))] += 1
    assert p.bucket_counts == expected
    assert p.count == len(values)
