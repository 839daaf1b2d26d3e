"""A secret header value (from ``${env:...}``) never shows in the CLI's output: not in a normal
run, not at debug level with the detailed debug exporter, not with ``--dry-run``, not when a
config error sits next to it — even when the backends echo it back in their error replies, and
even though the agent captures the backends' side of its own exports (they run on this host,
as a local collector would), HTTP/2 headers included.

The agent is the real CLI in a subprocess; the backends are sinks this test owns on 127.0.0.1,
which check that the secret really was sent.
"""

from __future__ import annotations

import os
import signal
import subprocess
import uuid

import grpc
import pytest
import requests

from tests.support.agent import AgentProcess, agent_command
from tests.support.web import web_server
from tests.support.ports import free_port, wait_until
from tests.unit.exporters.otlp_sinks import start_grpc_sink, start_http_sink

pytestmark = pytest.mark.e2e

CANARY = f"CANARY-{uuid.uuid4().hex}"
ENV = {"ERX_TEST_API_KEY": CANARY}


def assert_hidden(*outputs: str) -> None:
    for text in outputs:
        assert CANARY not in text
        assert CANARY[7:23] not in text  # not even a fragment


def config(grpc_port: int, http_url: str, prom_port: int, level: str, extra: str = "") -> str:
    return f"""
receivers:
  ebpf:
    poll_interval: 20ms
processors:
  batch:
    timeout: 100ms
exporters:
  otlp:
    endpoint: 127.0.0.1:{grpc_port}
    tls: {{insecure: true}}
    headers:
      api-key: ${{env:ERX_TEST_API_KEY}}
    retry_on_failure: {{enabled: false}}{extra}
  otlphttp:
    endpoint: {http_url}
    headers:
      Authorization: Bearer ${{env:ERX_TEST_API_KEY}}
    retry_on_failure: {{enabled: false}}
  debug:
    verbosity: detailed
  prometheus:
    endpoint: 127.0.0.1:{prom_port}
service:
  pipelines:
    traces: {{receivers: [ebpf], processors: [batch], exporters: [otlp, otlphttp, debug]}}
    metrics: {{receivers: [ebpf], exporters: [prometheus, otlp]}}
  telemetry:
    logs: {{level: {level}}}
  shutdown_timeout: 5s
"""


def run_cli(*args: str, config_text: str, tmp_path, env=ENV) -> subprocess.CompletedProcess:
    path = tmp_path / f"cli-{uuid.uuid4().hex[:6]}.yaml"
    path.write_text(config_text)
    return subprocess.run(
        agent_command() + [*args, "--config", str(path)],
        capture_output=True, text=True, timeout=60, env={**os.environ, **env},
    )


@pytest.fixture
def web():
    with web_server() as port:
        yield port


@pytest.fixture
def echoing_backends():
    """Backends that refuse every export and quote the credential back in the error."""
    grpc_server, grpc_sink, grpc_port = start_grpc_sink(
        [("fail", grpc.StatusCode.UNAUTHENTICATED, None, f"api key {CANARY} is revoked")] * 1000
    )
    http_server, http_url = start_http_sink([(401, {"Content-Type": "text/plain"}, f"bad credentials: Bearer {CANARY}".encode())] * 1000)
    yield grpc_sink, grpc_port, http_server, http_url
    grpc_server.stop(None)
    http_server.shutdown()
    http_server.server_close()


@pytest.mark.kernel
@pytest.mark.parametrize("level", ["info", "debug"])
def test_a_run_never_prints_the_secret(tmp_path, echoing_backends, level, monkeypatch, web):
    grpc_sink, grpc_port, http_server, http_url = echoing_backends
    prom_port = free_port()
    for key, value in ENV.items():  # the agent subprocess inherits the environment
        monkeypatch.setenv(key, value)
    agent = AgentProcess(tmp_path, config(grpc_port, http_url, prom_port, level))
    try:
        agent.start()

        def both_refused():
            requests.get(f"http://127.0.0.1:{web}/secret-test", timeout=5)  # a span to export
            return grpc_sink.metadata and http_server.received

        wait_until(both_refused, timeout=15, interval=0.2, what="exports to both backends")
        assert grpc_sink.metadata[0]["api-key"] == CANARY  # the secret was used...
        assert http_server.received[0].headers["Authorization"] == f"Bearer {CANARY}"
        agent.proc.send_signal(signal.SIGTERM)
        assert agent.proc.wait(15) == 0
    finally:
        agent.stop()
    stdout, stderr = agent.stdout(), agent.stderr()
    assert "UNAUTHENTICATED" in stderr and "HTTP 401" in stderr  # ...the refusals were logged...
    assert "[REDACTED]" in stderr
    assert_hidden(stdout, stderr)  # ...without it
    if level == "debug":
        assert " DEBUG " in stderr


def test_dry_run_prints_the_config_without_the_secret(tmp_path):
    result = run_cli("run", "--dry-run", config_text=config(4317, "http://127.0.0.1:4318", 9464, "debug"), tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    assert '"api-key": "[REDACTED]"' in result.stdout and '"Authorization": "[REDACTED]"' in result.stdout
    assert_hidden(result.stdout, result.stderr)


@pytest.mark.parametrize(
    ("extra", "env", "expected"),
    [
        ("\n    compression: 5", ENV, "exporters.otlp.compression"),  # an error next to the secret
        ("\n    compresion: gzip", ENV, "unknown key"),
        ("\n    headers: {api-key: '${env:ERX_TEST_API_KEY}-${env:ERX_TEST_UNSET}'}", ENV, "ERX_TEST_UNSET"),  # inside it
    ],
    ids=["wrong-type", "unknown-key", "unset-variable-in-the-secret"],
)
@pytest.mark.parametrize("command", [("run",), ("run", "--dry-run"), ("validate",)], ids=" ".join)
def test_a_config_error_next_to_the_secret_does_not_show_it(tmp_path, extra, env, expected, command):
    text = config(4317, "http://127.0.0.1:4318", 9464, "debug", extra)
    if "headers:" in extra:  # replace the headers block rather than repeat the key
        text = text.replace("    headers:\n      api-key: ${env:ERX_TEST_API_KEY}\n", "", 1)
    result = run_cli(*command, config_text=text, tmp_path=tmp_path, env=env)
    assert result.returncode == 2, result.stderr
    assert expected in result.stderr
    assert_hidden(result.stdout, result.stderr)


def test_the_log_filter_redacts_whatever_logs_the_secret(tmp_path, capsys):
    """Defence in depth: a record from any logger, message or traceback, is redacted."""
    import logging

    from receiver.cli import _keep_secrets_out_of_the_log
    from receiver.config import load_config_text

    cfg = load_config_text(config(4317, "http://127.0.0.1:4318", 9464, "debug"), environ=ENV)
    root = logging.getLogger()
    handler = logging.StreamHandler()
    root.addHandler(handler)
    filters = {h: list(h.filters) for h in root.handlers}
    hpack_level = logging.getLogger("hpack").level
    try:
        _keep_secrets_out_of_the_log(cfg)
        logging.getLogger("some.library").warning("sending %s to %s", f"Bearer {CANARY}", "x")
        try:
            raise RuntimeError(f"bad key {CANARY}")
        except RuntimeError:
            logging.getLogger("other").exception("failed")
        assert logging.getLogger("hpack").level >= logging.WARNING
    finally:
        root.removeHandler(handler)
        for h, before in filters.items():  # pytest's own handlers live on
            h.filters[:] = before
        logging.getLogger("hpack").setLevel(hpack_level)
    err = capsys.readouterr().err
    assert "sending [REDACTED] to x" in err and "RuntimeError: bad key [REDACTED]" in err
    assert_hidden(err)
