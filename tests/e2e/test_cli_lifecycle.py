"""Lifecycle of the real agent (``ebpf-receiver run`` as a subprocess): SIGTERM/SIGINT stop
capture, flush the batch processor and the sending queues within ``service.shutdown_timeout``
and exit 0; what cannot be sent is logged; a second signal ends the process at once.  Once up,
its ready line names every URL it serves and every exporter's target; a second agent on the
same ports exits 2 with one line naming the component and the address.

Traffic for the agent to capture is the test's own HTTP requests to the agent's Prometheus
endpoint (client spans of this process; the agent's side is never captured).
"""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests

from tests.support.agent import AgentProcess, agent_command
from tests.support.web import web_server
from tests.support.ports import free_port, wait_until
from tests.support.rotel import RotelCollector

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit" / "docs"))
from doc_blocks import sample_block  # noqa: E402  (docs/troubleshooting.md's quoted message)

pytestmark = [pytest.mark.kernel, pytest.mark.e2e]


def agent_config(endpoint: str, prom_port: int, *, exclude_port: int, shutdown_timeout: str, exporter_timeout: str = "5s",
                 batch_timeout: str = "100ms", metrics_level: str = "basic") -> str:
    return f"""
receivers:
  ebpf:
    poll_interval: 20ms
    exclude_ports: [{exclude_port}]
processors:
  batch:
    timeout: {batch_timeout}
exporters:
  otlp:
    endpoint: {endpoint}
    tls: {{insecure: true}}
    timeout: {exporter_timeout}
    retry_on_failure: {{initial_interval: 30s, max_interval: 30s, max_elapsed_time: 0}}
  prometheus:
    endpoint: 127.0.0.1:{prom_port}
service:
  pipelines:
    traces: {{receivers: [ebpf], processors: [batch], exporters: [otlp]}}
    metrics: {{receivers: [ebpf], exporters: [prometheus]}}
  telemetry:
    metrics: {{level: {metrics_level}}}
  shutdown_timeout: {shutdown_timeout}
"""


def get(port: int, path: str) -> requests.Response:
    return requests.get(f"http://127.0.0.1:{port}{path}", timeout=5)


def metric(port: int, name: str, **labels) -> float:
    total = 0.0
    for line in get(port, "/metrics").text.splitlines():
        if line.startswith(name) and all(f'{k}="{v}"' in line for k, v in labels.items()):
            if line[len(name)] in " {":
                total += float(line.rsplit(" ", 1)[1])
    return total


def wait_exit(agent: AgentProcess, timeout: float) -> tuple[int, float]:
    t0 = time.monotonic()
    rc = agent.proc.wait(timeout)
    return rc, time.monotonic() - t0


class Blackhole:
    """A TCP port that completes handshakes (kernel backlog) and then never says anything:
    a collector that hangs every export until its deadline."""

    def __enter__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        return self

    def __exit__(self, *exc):
        self.sock.close()


@pytest.fixture
def web():
    with web_server() as port:
        yield port


def captured_spans(prom_port: int, n: int, web_port: int) -> None:
    """Make spans (requests to the test's own web server) until ``n`` spans were produced."""

    def enough():
        get(web_port, f"/e2e-{uuid.uuid4().hex[:8]}")  # 404: one more client (and server) span
        return metric(prom_port, "ebpf_receiver_spans_total") >= n

    wait_until(enough, timeout=15, interval=0.2, what=f"{n} captured spans")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_flushes_the_batch_and_exits_0_promptly(tmp_path, signum, web):
    prom_port = free_port()
    with RotelCollector(tmp_path, signals=("traces",)) as collector:
        config = agent_config(
            collector.grpc_endpoint, prom_port, exclude_port=collector.grpc_port, shutdown_timeout="30s", batch_timeout="60s"
        )
        agent = AgentProcess(tmp_path, config).start()
        try:
            marker = f"/flush-{uuid.uuid4().hex[:12]}"
            assert get(web, marker).status_code == 404  # spans waiting in the 60 s batch
            wait_until(lambda: metric(prom_port, "ebpf_receiver_spans_total") >= 1, timeout=10, what="the span")
            assert marker not in collector.text()
            agent.proc.send_signal(signum)
            rc, took = wait_exit(agent, 15)
        finally:
            agent.stop()
        assert rc == 0, agent.stderr()
        # nothing to wait for: flushing takes milliseconds; releasing the kernel objects
        # takes 1-5 s on a busy machine — far from the 30 s shutdown_timeout either way
        assert took < 10.0, f"took {took:.1f}s to stop"
        wait_until(lambda: marker in collector.text(), timeout=5, what="the flushed span at rotel")
    assert "stopped" in agent.stderr()


@pytest.mark.parametrize("collector", ["down", "hanging"])
def test_an_unavailable_collector_cannot_hold_shutdown_past_its_timeout(tmp_path, collector, web):
    """Down: connection refused, the batch backs off for 30 s.  Hanging: the export itself
    waits for its 60 s deadline.  Either way shutdown_timeout (2 s) bounds the exit."""
    prom_port = free_port()
    with Blackhole() as hole:
        port = hole.port if collector == "hanging" else free_port()
        config = agent_config(
            f"127.0.0.1:{port}", prom_port, exclude_port=port, shutdown_timeout="2s", exporter_timeout="60s"
        )
        agent = AgentProcess(tmp_path, config).start()
        try:
            captured_spans(prom_port, 3, web)
            wait_until(
                lambda: metric(prom_port, "ebpf_receiver_exporter_sent_items_total") == 0
                and metric(prom_port, "ebpf_receiver_processor_batch_sends_total", signal="traces") >= 1,
                timeout=10, what="a batch handed to the exporter",
            )
            produced = metric(prom_port, "ebpf_receiver_spans_total")
            agent.proc.send_signal(signal.SIGTERM)
            rc, took = wait_exit(agent, 20)
        finally:
            agent.stop()
    assert rc == 0, agent.stderr()
    # The exporters get 2 s; releasing the kernel objects (1-5 s on a busy machine) comes on
    # top.  Unbounded, this shutdown would wait out a 30 s backoff or a 60 s export deadline.
    assert took < 2.0 + 8.0, f"took {took:.1f}s with shutdown_timeout 2s"
    dropped = sum(
        int(m[1]) for m in re.finditer(r"exporter otlp: shutdown: dropped (\d+) traces (?:in flight|still queued)", agent.stderr())
    )
    assert dropped >= produced, agent.stderr()  # everything captured was dropped, and said so


def test_a_second_signal_during_a_slow_shutdown_exits_at_once(tmp_path, web):
    prom_port = free_port()
    with Blackhole() as hole:
        config = agent_config(
            f"127.0.0.1:{hole.port}", prom_port, exclude_port=hole.port, shutdown_timeout="60s", exporter_timeout="60s"
        )
        agent = AgentProcess(tmp_path, config).start()
        try:
            captured_spans(prom_port, 3, web)
            wait_until(
                lambda: metric(prom_port, "ebpf_receiver_processor_batch_sends_total", signal="traces") >= 1,
                timeout=10, what="a batch handed to the exporter",
            )
            agent.proc.send_signal(signal.SIGTERM)
            wait_until(lambda: "shutting down" in agent.stderr(), timeout=15, what="shutdown to begin")
            time.sleep(3.0)  # capture is stopped; the exporter is waiting for the hung collector
            assert agent.proc.poll() is None, "the shutdown was not slow after all"
            agent.proc.send_signal(signal.SIGTERM)
            rc, took = wait_exit(agent, 10)
        finally:
            agent.stop()
    assert rc == -signal.SIGTERM  # the signal's default action: killed at once...
    assert took < 10.0  # ...the kernel still releases the BPF links (seconds), not 60 s of shutdown
    assert "stopped" not in agent.stderr()


# -- what the agent serves, and a second agent on the same ports --------------------------------


def served_config(prom_port: int, health_port: int, otlp_port: int, http_port: int) -> str:
    return f"""
receivers:
  ebpf:
    exclude_ports: [{prom_port}, {health_port}]
processors:
  batch:
exporters:
  otlp:
    endpoint: 127.0.0.1:{otlp_port}
    tls: {{insecure: true}}
  otlphttp:
    endpoint: http://127.0.0.1:{http_port}
  debug:
  prometheus:
    endpoint: 127.0.0.1:{prom_port}
extensions:
  health_check:
    endpoint: 127.0.0.1:{health_port}
service:
  extensions: [health_check]
  pipelines:
    traces: {{receivers: [ebpf], processors: [batch], exporters: [otlp, debug]}}
    logs: {{receivers: [ebpf], processors: [batch], exporters: [otlphttp]}}
    metrics: {{receivers: [ebpf], exporters: [prometheus]}}
"""


@pytest.fixture(scope="module")
def first_agent(tmp_path_factory):
    ports = {"prom": free_port(), "health": free_port(), "otlp": free_port(), "http": free_port()}
    workdir = tmp_path_factory.mktemp("first-agent")
    agent = AgentProcess(workdir, served_config(ports["prom"], ports["health"], ports["otlp"], ports["http"])).start()
    try:
        yield agent, ports
    finally:
        agent.stop()


def test_the_ready_line_names_every_served_url_and_exporter_target(first_agent):
    agent, p = first_agent
    (ready,) = [line for line in agent.stderr().splitlines() if "running (pid" in line]
    metrics_url = f"http://127.0.0.1:{p['prom']}/metrics"
    health_url = f"http://127.0.0.1:{p['health']}/"
    assert f"serving {metrics_url} (prometheus), {health_url} (health_check);" in ready, ready
    assert ready.endswith(
        f"exporting otlp → 127.0.0.1:{p['otlp']} (grpc, insecure), debug → stderr (verbosity: basic), "
        f"otlphttp → http://127.0.0.1:{p['http']} (http, proto)"
    ), ready
    # What it names is what answers.
    assert requests.get(metrics_url, timeout=5).status_code == 200
    assert requests.get(health_url, timeout=5).json() == {"status": "Server available"}


@pytest.mark.parametrize("taken", ["prometheus", "health_check"])
def test_a_second_agent_on_the_same_ports_exits_2_naming_the_component_and_the_address(first_agent, tmp_path, taken):
    agent, p = first_agent
    # The same configuration, or only the health check's port in common.
    prom = p["prom"] if taken == "prometheus" else free_port()
    config = tmp_path / "second.yaml"
    config.write_text(served_config(prom, p["health"], p["otlp"], p["http"]))
    t0 = time.monotonic()
    second = subprocess.run(agent_command() + ["run", "--config", str(config)], capture_output=True, text=True,
                            timeout=60)
    assert second.returncode == 2, second.stderr
    assert time.monotonic() - t0 < 30  # before loading anything into the kernel
    component, port = ("exporters.prometheus", prom) if taken == "prometheus" else ("extensions.health_check", p["health"])
    line = f"ebpf-receiver: {component}: cannot listen on 127.0.0.1:{port}: address already in use (another agent running?)"
    assert line in second.stderr.splitlines(), second.stderr
    assert "Errno" not in second.stderr and "Traceback" not in second.stderr
    if taken == "prometheus":  # docs/troubleshooting.md quotes this line
        assert re.sub(r":\d+:", ":<port>:", line) == re.sub(r":\d+:", ":<port>:", sample_block("port-in-use").text.strip())
    # The first agent is unharmed.
    assert requests.get(f"http://127.0.0.1:{p['health']}/", timeout=5).status_code == 200
    assert agent.proc.poll() is None
