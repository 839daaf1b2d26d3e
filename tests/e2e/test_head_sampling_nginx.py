"""Head sampling in the running agent: a real nginx, real curl, a real collector (rotel) and the
Prometheus endpoint.  Sampled-out requests send no spans but stay in the RED metrics; a trace's
decision is shared by its client and server spans, and W3C context from the caller is obeyed."""

from __future__ import annotations

import subprocess

import pytest

from tests.support.agent import AgentProcess
from tests.support.ports import free_port, wait_until
from tests.support.prometheus import OPENMETRICS, metric_sum, scrape
from tests.support.rotel import RotelCollector
from tests.support.servers import NginxServer

pytestmark = [pytest.mark.kernel, pytest.mark.e2e]

N_PLAIN = 200  # requests without context: kept with probability RATIO
RATIO = 0.3
N_CONTEXT = 5  # requests with traceparent, sampled flag set / unset
N_ERRORS = 20  # 5xx: sampled or not, they count as errors


def config(otlp: str, prom_port: int) -> str:
    return f"""
receivers:
  ebpf:
    poll_interval: 20ms
    sampler: {{name: parentbased_traceidratio, ratio: {RATIO}}}
processors:
  batch: {{timeout: 100ms}}
exporters:
  otlp:
    endpoint: {otlp}
    tls: {{insecure: true}}
  prometheus:
    endpoint: 127.0.0.1:{prom_port}
service:
  pipelines:
    traces: {{receivers: [ebpf], processors: [batch], exporters: [otlp]}}
    metrics: {{receivers: [ebpf], exporters: [prometheus]}}
"""


def curl(urls: list[str], *headers: str) -> None:
    args = [a for h in headers for a in ("-H", h)] + [a for u in urls for a in ("-o", "/dev/null", u)]
    subprocess.run(["curl", "-s", *args], check=True, timeout=60)


def test_ratio_sampling_keeps_red_metrics_exact_and_traces_whole(tmp_path):
    prom_port = free_port()
    with RotelCollector(tmp_path) as collector, NginxServer(tmp_path) as nginx:
        with AgentProcess(tmp_path, config(collector.grpc_endpoint, prom_port)):
            curl([f"{nginx.url}/index.html?plain={i}" for i in range(N_PLAIN)])
            kept_tid, dropped_tid = "a" * 32, "b" * 32
            curl([f"{nginx.url}/index.html?ctx=1"] * N_CONTEXT, f"traceparent: 00-{kept_tid}-00f067aa0ba902b7-01")
            curl([f"{nginx.url}/index.html?ctx=0"] * N_CONTEXT, f"traceparent: 00-{dropped_tid}-00f067aa0ba902b7-00")
            curl([f"{nginx.url}/status/500"] * N_ERRORS)
            total = N_PLAIN + 2 * N_CONTEXT + N_ERRORS

            counts: list[float] = []

            def all_counted():
                t = scrape(prom_port)
                counts.append(metric_sum(t, "http_server_request_duration_seconds_count{", 'job="nginx"'))
                return counts[-1] >= total and t

            try:
                text = wait_until(all_counted, timeout=20, what="RED metrics of every request")
            except TimeoutError:
                pytest.fail(f"nginx requests counted {counts[-1:]} of {total}\n{scrape(prom_port)}")
            # Rate and errors: every request, sampled or not.
            assert metric_sum(text, "http_server_request_duration_seconds_count{", 'job="nginx"') == total
            assert metric_sum(text, "http_server_request_duration_seconds_count{", 'job="nginx"',
                              'error_type="500"') == N_ERRORS

            def server_spans():
                return [s for s in collector.spans()
                        if s.kind == "SPAN_KIND_SERVER" and s.resource.get("service.name") == "nginx"]

            # Wait until the sampled-out counter has moved and the exported spans stop arriving.
            seen: list[int] = []

            def settled():
                srv = server_spans()
                seen.append(len(srv))
                stable = len(seen) >= 5 and len(set(seen[-5:])) == 1
                return stable and metric_sum(scrape(prom_port), "ebpf_receiver_spans_sampled_out_total") > 0 and srv

            spans = wait_until(settled, timeout=30, interval=0.25, what="exported spans to settle")
            plain = [s for s in spans if s.attributes.get("url.query", "").startswith("plain=")]
            # Binomial(200, 0.3): mean 60, sd 6.5 — far outside [25, 100] is a broken sampler.
            assert 25 <= len(plain) <= 100, len(plain)
            # Parent-based: the caller's decision wins over the ratio.
            assert len([s for s in spans if s.attributes.get("url.query") == "ctx=1"]) == N_CONTEXT
            assert all(s.trace_id == kept_tid for s in spans if s.attributes.get("url.query") == "ctx=1")
            assert [s for s in spans if s.attributes.get("url.query") == "ctx=0" or s.trace_id == dropped_tid] == []

            # The decision is per trace: curl's client span (same-host linked) is exported exactly
            # when nginx's server span of the same call is.
            def curl_spans():
                return [s for s in collector.spans()
                        if s.kind == "SPAN_KIND_CLIENT" and s.resource.get("service.name") == "curl"
                        and s.attributes.get("url.query", "").startswith("plain=")]

            clients = wait_until(lambda: len(c := curl_spans()) >= len(plain) and c, timeout=20,
                                 what="curl client spans")
            assert {c.trace_id for c in clients} == {s.trace_id for s in plain}

            # Exemplars only point at exported traces (spans of the last requests may still be on
            # their way: wait for them, a bounded time).
            def exemplar_trace_ids() -> set[str]:
                text = scrape(prom_port, OPENMETRICS)
                return {part.split('trace_id="', 1)[1][:32] for part in text.split("# {")[1:] if 'trace_id="' in part}

            def exemplars_exported():
                ids = exemplar_trace_ids()
                missing = ids - {s.trace_id for s in collector.spans()}
                return (ids and not missing) or None

            try:
                wait_until(exemplars_exported, timeout=10, what="exemplars' traces at the collector")
            except Exception:
                ids = exemplar_trace_ids()
                pytest.fail(f"exemplars point at traces never exported: {ids - {s.trace_id for s in collector.spans()}}")
