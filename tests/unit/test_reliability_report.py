"""The fault matrix's bookkeeping (bench/reliability/): the agent's drop counters read back from
a Prometheus page, the accounting per service (nginx, the application's PostgreSQL and Redis
queries), the fault sink's count of span ids per process and database, and the table written
only between its markers in docs/reliability.md."""

from __future__ import annotations

import pytest

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from bench.reliability.agent_run import SelfMetrics
from bench.reliability.apps import APP_NAME, AppResult
from bench.reliability.fault_sink import _Ledger
from bench.reliability.report import BEGIN, END, replace_between_markers, row_dict, table
from bench.reliability.row import NGINX_NAME, RowResult

PAGE = """\
# HELP ebpf_receiver_exporter_failed_items_total x
ebpf_receiver_exporter_failed_items_total{exporter="otlp",reason="rejected",signal="traces"} 7.0
ebpf_receiver_exporter_failed_items_total{exporter="otlp",reason="rejected",signal="logs"} 100.0
ebpf_receiver_exporter_dropped_items_total{exporter="otlp",reason="queue_full",signal="traces"} 3.0
ebpf_receiver_processor_dropped_items_total{processor="batch",reason="backlog",signal="traces"} 2.0
ebpf_receiver_http_transactions_aggregated_total 40.0
ebpf_receiver_kernel_events_lost_total{reason="ringbuf_full"} 50.0
ebpf_receiver_kernel_conditions_total{condition="http_shed_ring_full"} 30.0
ebpf_receiver_kernel_events_produced_total 150.0
ebpf_receiver_kernel_events_received_total 100.0
http_server_request_duration_seconds_count{job="mine",http_route="/a"} 60.0
http_server_request_duration_seconds_count{job="mine"} 40.0
http_client_request_duration_seconds_count{job="curl"} 5.0
db_client_operation_duration_seconds_count{job="app",db_system_name="postgresql",db_operation_name="SELECT"} 9.0
db_client_operation_duration_seconds_count{job="app",db_system_name="redis",db_operation_name="INCR"} 4.0
"""


def test_span_drops_count_each_span_once():
    m = SelfMetrics.parse(PAGE)
    assert m.span_drops() == {
        "exporter_failed/rejected": 7.0,  # the logs signal's are not spans
        "exporter_dropped/queue_full": 3.0,
        "processor_dropped/backlog": 2.0,
        "kernel_aggregated": 40.0,
        "kernel_lost/ringbuf_full": 20.0,  # 30 of the 50 were transactions aggregated: counted above
    }
    assert m.kernel() == (150.0, 100.0, 50.0)
    assert m.red_server_count("mine") == 100.0
    assert m.red_db_client_count("app", "postgresql") == 9.0
    assert m.red_db_client_count("app", "redis") == 4.0
    assert m.red_other_count("mine") == 18.0  # curl's and the app's
    assert m.red_other_count("mine", "app") == 5.0


def test_the_table_replaces_only_what_lies_between_the_markers():
    doc = f"# Reliability\nintro\n{BEGIN}\nold table\n{END}\n\n## Fuzzing and hostile input\nkept\n"
    r = RowResult("partial-success", "a fault", sent=10, received=8, dropped={"exporter_failed/rejected": 2.0})
    r.invariant()
    meta = {"command": "make reliability", "date": "d", "cpus": 2, "loadavg_before": (1.0,), "loadavg_after": (2.0,)}
    out = replace_between_markers(doc, table([r], meta))
    assert out.startswith("# Reliability\nintro\n" + BEGIN + "\n")
    assert out.endswith(END + "\n\n## Fuzzing and hostile input\nkept\n")
    assert "old table" not in out
    assert "| partial-success | a fault | 10 (nginx only) | 8 (nginx only) | 2 (exporter_failed/rejected 2) | 0 | 0 (-0) |" in out


def _page(nginx: float, postgresql: float, redis: float) -> SelfMetrics:
    return SelfMetrics.parse(
        f'http_server_request_duration_seconds_count{{job="{NGINX_NAME}"}} {nginx}\n'
        f'db_client_operation_duration_seconds_count{{job="{APP_NAME}",db_system_name="postgresql"}} {postgresql}\n'
        f'db_client_operation_duration_seconds_count{{job="{APP_NAME}",db_system_name="redis"}} {redis}\n')


def test_the_application_is_accounted_per_service_and_in_the_total():
    r = RowResult("unavailable-70", "a fault")
    r.account(100, AppResult({"postgresql": 20, "redis": 20}, {}),
              {"nginx": 100, "postgresql": 20, "redis": 20}, _page(100, 20, 20))
    r.exit_code = 0
    r.invariant()
    assert r.passed, r.checks
    assert (r.sent, r.received, r.gap) == (140, 140, 0)
    meta = {"command": "make reliability", "date": "d", "cpus": 2, "loadavg_before": (1.0,), "loadavg_after": (2.0,)}
    assert "| unavailable-70 | a fault | 140 (100 + 20 + 20) | 140 (100 + 20 + 20) | 0 | 0 | 0 (-0) | 100 / 20 / 20 |" \
        in table([r], meta)
    assert row_dict(r)["services"]["redis"] == {"sent": 20, "received": 20, "red": 20.0}


def test_a_service_short_of_its_operations_fails_even_when_the_total_balances():
    # a Redis span missing and a PostgreSQL operation counted twice in the RED metrics: the sums
    # are right, the per-service checks are not
    r = RowResult("x", "f")
    r.account(100, AppResult({"postgresql": 20, "redis": 20}, {}),
              {"nginx": 100, "postgresql": 21, "redis": 19}, _page(100, 21, 20))
    r.exit_code = 0
    r.invariant()
    assert r.gap == 0
    failed = [w for w, ok in r.checks if not ok]
    assert len(failed) == 2
    assert failed[0].startswith("every postgresql operation in the RED metrics (21 of 20)")
    assert failed[1].startswith("nothing dropped: received == sent for every service")


def test_an_application_load_stopped_early_fails_the_row():
    r = RowResult("x", "f")
    r.account(10, AppResult({"postgresql": 3, "redis": 5}, {"postgresql": "OperationalError: gone"}),
              {"nginx": 10, "postgresql": 3, "redis": 5}, _page(10, 3, 5))
    r.exit_code = 0
    r.invariant()
    assert not r.passed
    assert "the application's postgresql load stopped early: OperationalError: gone" in r.notes


def _request(spans: list[tuple[int, bytes, str]]) -> ExportTraceServiceRequest:
    req = ExportTraceServiceRequest()
    for pid, sid, system in spans:
        rs = req.resource_spans.add()
        kv = rs.resource.attributes.add()
        kv.key, kv.value.int_value = "process.pid", pid
        span = rs.scope_spans.add().spans.add()
        span.span_id = sid
        if system:
            a = span.attributes.add()
            a.key, a.value.string_value = "db.system.name", system
    return req


def test_the_sink_counts_distinct_span_ids_per_process_and_database():
    ledger = _Ledger(frozenset({10, 20}))
    req = _request([(10, b"a", ""), (20, b"b", "postgresql"), (20, b"c", "redis"), (30, b"d", "redis")])
    assert ledger.accept(req, reject=0) == 0
    assert ledger.accept(_request([(20, b"b", "postgresql")]), reject=0) == 0  # a duplicate
    counts = ledger.counts()
    assert counts.by_source == {(10, ""): 1, (20, "postgresql"): 1, (20, "redis"): 1}
    assert (counts.received_unique, counts.duplicated, counts.foreign) == (3, 1, {30: 1})


def test_a_positive_gap_fails_and_a_document_without_markers_is_refused():
    r = RowResult("x", "f", sent=10, received=8, exit_code=0)
    r.invariant()
    assert not r.passed and r.gap == 2
    with pytest.raises(ValueError):
        replace_between_markers("# no markers\n", "table")
