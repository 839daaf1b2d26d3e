"""Walking skeleton, end to end: real nginx + real curl, the agent as users run it, a real
OTLP collector (rotel) and a real Prometheus tool (promtool)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.support.agent import AgentProcess
from tests.support.ports import free_port, wait_until
from tests.support.prometheus import metric_sum, scrape
from tests.support.rotel import RotelCollector
from tests.support.servers import NginxServer

pytestmark = [pytest.mark.kernel, pytest.mark.e2e]

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
N_REQUESTS = 7


def agent_config(otlp_endpoint: str, prom_port: int) -> str:
    return f"""
receivers:
  ebpf:
    poll_interval: 20ms
processors:
  batch:
    timeout: 100ms
exporters:
  otlp:
    endpoint: {otlp_endpoint}
    tls: {{insecure: true}}
    retry_on_failure: {{initial_interval: 100ms, max_interval: 1s}}
  debug:
    verbosity: normal
  prometheus:
    endpoint: 127.0.0.1:{prom_port}
service:
  pipelines:
    traces:
      receivers: [ebpf]
      processors: [batch]
      exporters: [otlp, debug]
    metrics:
      receivers: [ebpf]
      exporters: [prometheus]
"""


def held_prog_ids(pid: int) -> set[int]:
    """Ids of the BPF programs a process holds (its program and link fds' ``prog_id``)."""
    ids: set[int] = set()
    for fd in Path(f"/proc/{pid}/fdinfo").iterdir():
        try:
            ids.update(int(line.split()[1]) for line in fd.read_text().splitlines() if line.startswith("prog_id:"))
        except OSError:  # the fd closed meanwhile
            continue
    return ids


def bpf_prog_ids() -> set[int]:
    """Ids of loaded erx_* programs (bpftool cannot name their owner here: that needs BPF
    iterators, a tracing program type this kernel lacks)."""
    out = subprocess.run(["bpftool", "-j", "prog", "show"], capture_output=True, text=True, check=True).stdout
    return {p["id"] for p in json.loads(out) if p.get("name", "").startswith("erx_")}


def server_count(text: str, service: str) -> float:
    return metric_sum(text, "http_server_request_duration_seconds_count{", f'job="{service}"')


@pytest.fixture
def stack(tmp_path):
    prom_port = free_port()
    with RotelCollector(tmp_path) as collector, NginxServer(tmp_path) as nginx:
        before = bpf_prog_ids()
        agent = AgentProcess(tmp_path, agent_config(collector.grpc_endpoint, prom_port)).start()
        try:
            yield collector, nginx, agent, prom_port, before
        finally:
            if agent.proc is not None:
                agent.stop()


def test_nginx_server_spans_reach_a_real_collector_and_prometheus(stack, tmp_path):
    collector, nginx, agent, prom_port, progs_before = stack
    agent_progs = held_prog_ids(agent.proc.pid)  # not "new since": other agents may run on the host
    assert agent_progs <= bpf_prog_ids() - progs_before
    assert len(agent_progs) >= 30, "the agent attached too few BPF programs"

    urls = [f"{nginx.url}/index.html"] * (N_REQUESTS - 1) + [f"{nginx.url}/status/404"]
    # One curl, one keep-alive connection, N requests, each with the same W3C traceparent.
    outputs = [arg for url in urls for arg in ("-o", "/dev/null", url)]
    subprocess.run(
        ["curl", "-s", "-H", f"traceparent: 00-{TRACE_ID}-{PARENT_ID}-01", *outputs],
        check=True,
        timeout=20,
    )

    pids = set(nginx.pids())  # this test's nginx (others on the host are traced too)

    def server_spans():
        return [
            s for s in collector.spans()
            if s.kind == "SPAN_KIND_SERVER" and s.resource.get("process.pid") in pids
        ]

    spans = wait_until(lambda: len(server_spans()) >= N_REQUESTS and server_spans(), timeout=20, what="nginx spans")
    assert len(spans) == N_REQUESTS, [s.attributes.get("url.path") for s in spans]
    ok = [s for s in spans if s.attributes.get("url.path") == "/index.html"]
    assert len(ok) == N_REQUESTS - 1
    s = ok[0]
    assert s.trace_id == TRACE_ID
    assert s.parent_id == PARENT_ID
    assert s.name.startswith("GET")
    assert s.attributes["http.request.method"] == "GET"
    assert s.attributes["http.response.status_code"] == 200
    assert s.attributes["server.port"] == nginx.port
    assert s.attributes["network.peer.address"] == "127.0.0.1"
    assert s.attributes["client.address"] == "127.0.0.1"
    assert s.resource["process.pid"] in nginx.pids()
    not_found = [s for s in spans if s.attributes.get("url.path") == "/status/404"]
    assert len(not_found) == 1 and not_found[0].attributes["http.response.status_code"] == 404
    assert not_found[0].status_code != "STATUS_CODE_ERROR", "a server 4xx is not an error per semconv"

    # curl sent its own traceparent, as an SDK-instrumented client does: the SDK made that
    # client span, so the agent does not make a duplicate.
    client = [s for s in collector.spans() if s.kind == "SPAN_KIND_CLIENT" and s.resource.get("service.name") == "curl"]
    assert [c for c in client if c.trace_id == TRACE_ID] == []

    # Without a traceparent, caller and callee on one host still form one trace (same-host
    # linking by mirrored tuples): the server span is the child of curl's client span.
    subprocess.run(["curl", "-s", "-o", "/dev/null", f"{nginx.url}/status/204"], check=True, timeout=20)

    def linked_pair():
        spans = collector.spans()
        srv = [s for s in spans if s.kind == "SPAN_KIND_SERVER" and s.attributes.get("url.path") == "/status/204"]
        cli = [s for s in spans if s.kind == "SPAN_KIND_CLIENT" and s.resource.get("service.name") == "curl"
               and s.attributes.get("url.path") == "/status/204"]
        return srv and cli and (srv[0], cli[0])

    srv, cli = wait_until(linked_pair, timeout=20, what="linked client/server spans")
    assert srv.trace_id == cli.trace_id
    assert srv.parent_id == cli.span_id
    assert cli.parent_id == ""

    # Prometheus: the counts equal the requests sent, and the exposition passes promtool.
    text = wait_until(lambda: (t := scrape(prom_port)) and server_count(t, "nginx") >= N_REQUESTS + 1 and t, timeout=10,
                      what="metrics")
    assert server_count(text, "nginx") == N_REQUESTS + 1
    check = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr

    # The debug exporter printed spans on the console.
    assert "GET" in agent.stderr() + agent.stdout()

    # SIGTERM: clean exit, no BPF programs left behind.
    assert agent.stop() == 0
    # Program memory is released asynchronously (RCU) after the last reference goes; each TLS
    # uprobe link adds ~0.1 s of unregistering (15 per TLS library).
    wait_until(lambda: not (bpf_prog_ids() & agent_progs), timeout=30, what="BPF programs to be released")


def test_agent_exits_2_on_a_bad_config(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("receivers:\n  ebpf:\n    capture_sise: 100\nexporters:\n  debug: {}\nservice:\n  pipelines:\n    traces: {receivers: [ebpf], exporters: [debug]}\n")
    from tests.support.agent import agent_command

    r = subprocess.run(agent_command() + ["run", "--config", str(bad)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2
    assert "capture_sise" in r.stderr and "bad.yaml:3" in r.stderr
    assert "capture_size" in r.stderr  # did-you-mean
