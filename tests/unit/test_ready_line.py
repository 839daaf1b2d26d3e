"""The ready line names every URL the agent serves and every exporter's target; a component that
cannot listen is named with its address in one line (the end-to-end proofs, with real ports and
a second agent, are in tests/e2e/test_cli_lifecycle.py)."""

from __future__ import annotations

import errno
import os
import re
import socket
import urllib.request
from pathlib import Path

import pytest

from receiver.config import load_config
from receiver.pipeline import Agent, ComponentStartError
from receiver.ready_line import ready_line
from tests.support.ports import free_port

BASE = """
receivers:
  ebpf:
processors:
  batch:
service:
  pipelines:
    traces: {receivers: [ebpf], processors: [batch], exporters: [%s]}
    metrics: {receivers: [ebpf], exporters: [%s]}
"""


def agent_for(tmp_path: Path, exporters: str, traces: str, metrics: str, extra: str = "") -> Agent:
    path = tmp_path / "agent.yaml"
    path.write_text(f"exporters:\n{exporters}\n{BASE % (traces, metrics)}{extra}")
    return Agent(load_config([str(path)], {}))


def test_every_exporter_target_and_served_url(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("")
    agent = agent_for(tmp_path, f"""
  otlp:
    endpoint: localhost:4317
    tls: {{insecure: true}}
  otlp/vendor:
    endpoint: https://otlp.vendor.example:443
  otlphttp:
    endpoint: http://127.0.0.1:4318
    encoding: json
    logs_endpoint: http://logs.example:4318/v1/logs
  debug:
    verbosity: detailed
  prometheus:
    endpoint: "[::1]:9464"
extensions:
  health_check:
    endpoint: 127.0.0.1:13133
    path: /health
""", "otlp, otlp/vendor, otlphttp, debug", "prometheus", extra="  extensions: [health_check]\n")
    try:
        line = ready_line(agent, "1.2.3", 42)
    finally:
        agent.shutdown(timeout=1.0)
    assert line.startswith("ebpf-receiver 1.2.3 running (pid 42); pipelines: traces, metrics; ")
    assert "serving http://[::1]:9464/metrics (prometheus), http://127.0.0.1:13133/health (health_check); " in line
    assert line.endswith(
        "exporting otlp → localhost:4317 (grpc, insecure), otlp/vendor → otlp.vendor.example:443 (grpc, tls), "
        "otlphttp → http://127.0.0.1:4318 (http, json, logs → http://logs.example:4318/v1/logs), "
        "debug → stderr (verbosity: detailed)"
    )


def test_the_served_url_answers(tmp_path):
    port = free_port()
    agent = agent_for(tmp_path, f"  debug:\n  prometheus:\n    endpoint: 127.0.0.1:{port}\n", "debug", "prometheus")
    agent.receivers.clear()  # no kernel here: the served endpoints are what this test is about
    agent.start()
    try:
        line = ready_line(agent, "x", 1)
        url = re.search(r"serving (\S+) \(prometheus\)", line).group(1)
        assert url == f"http://127.0.0.1:{port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            assert response.status == 200
    finally:
        agent.shutdown(timeout=1.0)


def test_a_taken_port_names_the_component_and_the_address(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        agent = agent_for(tmp_path, f"  debug:\n  prometheus:\n    endpoint: 127.0.0.1:{port}\n", "debug", "prometheus")
        agent.receivers.clear()
        with pytest.raises(ComponentStartError) as caught:
            agent.start()
        agent.shutdown(timeout=1.0)
    err = caught.value
    assert str(err) == (f"exporters.prometheus: cannot listen on 127.0.0.1:{port}: "
                        "address already in use (another agent running?)")
    assert err.listen and err.component == "exporters.prometheus"


@pytest.mark.parametrize("code,listen,words", [
    (errno.EACCES, True, "permission denied (ports below 1024 need root or CAP_NET_BIND_SERVICE)"),
    (errno.EADDRNOTAVAIL, True, "no interface of this host has that address"),
    (errno.ENOMEM, False, "cannot start: Cannot allocate memory"),
])
def test_start_errors_say_what_to_do(code, listen, words):
    err = ComponentStartError("extensions", "health_check", "10.9.9.9:80", OSError(code, os.strerror(code)))
    assert err.listen is listen
    assert str(err).startswith("extensions.health_check: ") and str(err).endswith(words)
