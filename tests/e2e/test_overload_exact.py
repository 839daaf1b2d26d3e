"""Overload is a state, not a loss: nginx saturated by wrk, the agent with a small ring buffer so
that it falls behind for sure — the RED count of nginx's requests still equals what wrk
completed (± the requests in flight when wrk stopped), with the transactions the kernel
aggregated instead of submitting counted by reason."""

from __future__ import annotations

import re
import subprocess
import time

import pytest

from tests.support.agent import AgentProcess
from tests.support.ports import free_port, wait_until
from tests.support.prometheus import metric_sum, scrape
from tests.support.servers import NginxServer

pytestmark = [pytest.mark.kernel, pytest.mark.e2e]

CONNECTIONS = 8


SMALL_RING = """\
    ring_buffer_size: 64KiB     # falls behind at once under wrk: the kernel aggregates the excess
    wakeup_bytes: 16KiB
"""


def config(prom_port: int, ebpf: str = SMALL_RING) -> str:
    return f"""
receivers:
  ebpf:
{ebpf.rstrip()}
    discovery:
      include: [{{exe: nginx}}]
exporters:
  debug: {{verbosity: basic}}
  prometheus:
    endpoint: 127.0.0.1:{prom_port}
service:
  pipelines:
    traces: {{receivers: [ebpf], exporters: [debug]}}
    metrics: {{receivers: [ebpf], exporters: [prometheus]}}
"""


def completed(wrk_output: str) -> int:
    return int(re.search(r"(\d+) requests in", wrk_output).group(1))


SERIES = 'http_server_request_duration_seconds_count{'


def saturate_and_settle(nginx, prom_port: int) -> tuple[int, str]:
    """wrk against nginx for 4 s; returns the requests it completed and the metrics page once
    nginx's RED count has stopped moving (the aggregates are drained once a second)."""
    time.sleep(1.0)
    out = subprocess.run(["wrk", "-t1", f"-c{CONNECTIONS}", "-d4s", f"{nginx.url}/index.html"],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    sent = completed(out)

    def settled():
        a = metric_sum(scrape(prom_port), SERIES, 'job="nginx"')
        time.sleep(1.5)
        text = scrape(prom_port)
        b = metric_sum(text, SERIES, 'job="nginx"')
        return a == b and b >= sent - CONNECTIONS and text

    return sent, wait_until(settled, timeout=30, what="the RED count to settle")


def test_saturated_nginx_red_count_equals_completed_requests(tmp_path):
    prom_port = free_port()
    with NginxServer(tmp_path) as nginx, AgentProcess(tmp_path, config(prom_port)):
        sent, text = saturate_and_settle(nginx, prom_port)
    counted = metric_sum(text, SERIES, 'job="nginx"')
    assert sent - CONNECTIONS <= counted <= sent + CONNECTIONS, (counted, sent)
    aggregated = metric_sum(text, "ebpf_receiver_http_transactions_aggregated_total")
    shed = sum(metric_sum(text, "ebpf_receiver_kernel_conditions_total{", f'condition="{c}"')
               for c in ("http_shed_ring", "http_shed_level", "http_shed_ring_full"))
    assert aggregated > 0 and aggregated == shed, (aggregated, shed)  # overload happened, all of it merged
    assert metric_sum(text, "ebpf_receiver_kernel_conditions_total{", 'condition="http_aggregates_full"') == 0
    # Those transactions have no span: the spans made are the rest.
    spans = metric_sum(text, "ebpf_receiver_spans_total")
    assert spans >= counted - aggregated - CONNECTIONS


def test_a_saturated_node_sheds_successes_to_the_kernel_and_counts_stay_exact(tmp_path):
    """No CPU budget, a ring buffer that does not fill: only the node's saturation (nginx and wrk
    on the machine's CPUs) moves the shed level, to 1 and no further; the RED count stays exact."""
    prom_port = free_port()
    cfg = config(prom_port, ebpf="    cpu_budget: 0\n    node_busy_threshold: 0.5\n")
    with NginxServer(tmp_path) as nginx, AgentProcess(tmp_path, cfg) as agent:
        sent, text = saturate_and_settle(nginx, prom_port)
        log = agent.stderr()
    counted = metric_sum(text, SERIES, 'job="nginx"')
    assert sent - CONNECTIONS <= counted <= sent + CONNECTIONS, (counted, sent)
    assert "shed level 0 -> 1 (node busy)" in log, log[-3000:]
    assert "shed level 1 -> 2" not in log  # a busy node never sheds the errors
    by_level = metric_sum(text, "ebpf_receiver_kernel_conditions_total{", 'condition="http_shed_level"')
    aggregated = metric_sum(text, "ebpf_receiver_http_transactions_aggregated_total")
    assert by_level > 0 and aggregated >= by_level, (by_level, aggregated)
    assert "\nebpf_receiver_node_cpu_busy " in text  # the gauge (near 0 now: wrk has ended)
