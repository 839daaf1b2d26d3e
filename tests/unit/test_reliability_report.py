"""The fault matrix's bookkeeping (bench/reliability/): the agent's drop counters read back from
a Prometheus page, and the table written only between its markers in docs/reliability.md."""

from __future__ import annotations

import pytest

from bench.reliability.agent_run import SelfMetrics
from bench.reliability.report import BEGIN, END, replace_between_markers, table
from bench.reliability.row import RowResult

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
    assert m.red_other_count("mine") == 5.0


def test_the_table_replaces_only_what_lies_between_the_markers():
    doc = f"# Reliability\nintro\n{BEGIN}\nold table\n{END}\n\n## Fuzzing and hostile input\nkept\n"
    r = RowResult("partial-success", "a fault", sent=10, received=8, dropped={"exporter_failed/rejected": 2.0})
    r.invariant()
    meta = {"command": "make reliability", "date": "d", "cpus": 2, "loadavg_before": (1.0,), "loadavg_after": (2.0,)}
    out = replace_between_markers(doc, table([r], meta))
    assert out.startswith("# Reliability\nintro\n" + BEGIN + "\n")
    assert out.endswith(END + "\n\n## Fuzzing and hostile input\nkept\n")
    assert "old table" not in out
    assert "| partial-success | a fault | 10 | 8 | 2 (exporter_failed/rejected 2) | 0 | 0 (-0) |" in out


def test_a_positive_gap_fails_and_a_document_without_markers_is_refused():
    r = RowResult("x", "f", sent=10, received=8, exit_code=0)
    r.invariant()
    assert not r.passed and r.gap == 2
    with pytest.raises(ValueError):
        replace_between_markers("# no markers\n", "table")
