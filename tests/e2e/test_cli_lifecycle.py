"""Lifecycle of the real agent (``ebpf-receiver run`` as a subprocess): SIGTERM/SIGINT stop
capture, flush the batch processor and the sending queues within ``service.shutdown_timeout``
and exit 0; what cannot be sent is logged; a second signal ends the process at once.

Traffic for the agent to capture is the test's own HTTP requests to the agent's Prometheus
endpoint (client spans of this process; the agent's side is never captured).
"""

from __future__ import annotations

import re
import signal
import socket
import time
import uuid

import pytest
import requests

from tests.support.agent import AgentProcess
from tests.support.ports import free_port, wait_until
from tests.support.rotel import RotelCollector

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


def captured_spans(prom_port: int, n: int) -> None:
    """Make client spans (requests to the agent's own endpoint) until ``n`` spans were produced."""

    def enough():
        get(prom_port, f"/e2e-{uuid.uuid4().hex[:8]}")  # 404: one more client span
        return metric(prom_port, "ebpf_receiver_spans_total") >= n

    wait_until(enough, timeout=15, interval=0.2, what=f"{n} captured spans")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_flushes_the_batch_and_exits_0_promptly(tmp_path, signum):
    prom_port = free_port()
    with RotelCollector(tmp_path, signals=("traces",)) as collector:
        config = agent_config(
            collector.grpc_endpoint, prom_port, exclude_port=collector.grpc_port, shutdown_timeout="30s", batch_timeout="60s"
        )
        agent = AgentProcess(tmp_path, config).start()
        try:
            marker = f"/flush-{uuid.uuid4().hex[:12]}"
            assert get(prom_port, marker).status_code == 404  # a client span waiting in the 60 s batch
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
def test_an_unavailable_collector_cannot_hold_shutdown_past_its_timeout(tmp_path, collector):
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
            captured_spans(prom_port, 3)
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


def test_a_second_signal_during_a_slow_shutdown_exits_at_once(tmp_path):
    prom_port = free_port()
    with Blackhole() as hole:
        config = agent_config(
            f"127.0.0.1:{hole.port}", prom_port, exclude_port=hole.port, shutdown_timeout="60s", exporter_timeout="60s"
        )
        agent = AgentProcess(tmp_path, config).start()
        try:
            captured_spans(prom_port, 3)
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
