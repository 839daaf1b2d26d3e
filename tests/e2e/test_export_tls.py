"""TLS and mutual TLS, configured from YAML as users write it, against sinks the tests own with
certificates made by ``openssl`` for the test (servers on 127.0.0.1, certificates for localhost).

The server side checks what the client proved: the client certificate's common name arrives
at the sink.  Cases already in tests/unit/exporters (gRPC mTLS happy path, https with a CA and
a client certificate, insecure_skip_verify over https) are not repeated.
"""

from __future__ import annotations

import subprocess
import textwrap

import pytest
from prometheus_client import CollectorRegistry

from receiver.config import load_config_text
from receiver.exporters.otlp_grpc import OtlpGrpcExporter
from receiver.exporters.otlp_http import OtlpHttpExporter
from receiver.model.telemetry import Resource, Span, SpanKind
from receiver.component.self_metrics import SelfMetrics
from tests.support.agent import agent_command
from tests.unit.exporters.otlp_sinks import (
    TlsFiles,
    grpc_server_credentials,
    https_server_context,
    make_pki,
    start_grpc_sink,
    start_http_sink,
)

pytestmark = pytest.mark.e2e

RES = Resource.from_dict({"service.name": "tls-e2e"})


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> TlsFiles:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def other_pki(tmp_path_factory) -> TlsFiles:
    """A second, unrelated CA: its certificates must not be trusted by ``pki``'s and back."""
    return make_pki(tmp_path_factory.mktemp("other-pki"), ca_name="other-ca")


def exporter(exporter_id: str, settings: str):
    """The exporter the agent builds from this YAML (retries off: one attempt per batch)."""
    text = (
        "receivers: {ebpf: }\n"
        f"exporters:\n  {exporter_id}:\n"
        + textwrap.indent(textwrap.dedent(settings), "    ")
        + "    retry_on_failure: {enabled: false}\n"
        + f"service: {{pipelines: {{traces: {{receivers: [ebpf], exporters: [{exporter_id}]}}}}}}\n"
    )
    config = load_config_text(text, "tls.yaml", environ={})
    metrics = SelfMetrics(CollectorRegistry())
    cls = OtlpGrpcExporter if exporter_id.startswith("otlp/") or exporter_id == "otlp" else OtlpHttpExporter
    return cls(exporter_id, config.exporters[exporter_id], metrics), metrics.registry


def send_one(exp) -> Span:
    span = Span(b"\x11" * 16, b"\x22" * 8, "tls", SpanKind.CLIENT, 1, 2, RES)
    exp.start()
    exp.consume_traces([span])
    exp.shutdown(5)
    return span


def outcome(registry, exporter_id: str) -> str:
    def get(name, **labels):
        return registry.get_sample_value(name, {"exporter": exporter_id, "signal": "traces", **labels}) or 0

    if get("ebpf_receiver_exporter_sent_items_total"):
        return "sent"
    if get("ebpf_receiver_exporter_failed_items_total", reason="retries_exhausted"):
        return "failed"
    return "nothing"


@pytest.fixture
def grpc_sink():
    servers = []

    def start(credentials):
        server, servicer, port = start_grpc_sink(credentials=credentials)
        servers.append(server)
        return servicer, port

    yield start
    for server in servers:
        server.stop(None)


@pytest.fixture
def https_sink():
    servers = []

    def start(context):
        server, url = start_http_sink(ssl_context=context)
        servers.append(server)
        return server, url.replace("127.0.0.1", "localhost")

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_grpc_tls_with_ca_file(grpc_sink, pki, other_pki):
    sink, port = grpc_sink(grpc_server_credentials(pki, require_client_cert=False))
    exp, reg = exporter("otlp", f"endpoint: localhost:{port}\ntls: {{ca_file: {pki.ca_cert}}}\n")
    send_one(exp)
    assert outcome(reg, "otlp") == "sent"
    assert sink.span_ids() == ["22" * 8]
    assert sink.auth[0].get("transport_security_type") == [b"ssl"]

    # the same server, verified against a CA that did not sign its certificate: refused
    exp, reg = exporter("otlp/wrong-ca", f"endpoint: https://localhost:{port}\ntls: {{ca_file: {other_pki.ca_cert}}}\n")
    send_one(exp)
    assert outcome(reg, "otlp/wrong-ca") == "failed"
    assert len(sink.requests) == 1


def test_grpc_mutual_tls_from_yaml_presents_the_client_certificate(grpc_sink, pki, other_pki):
    sink, port = grpc_sink(grpc_server_credentials(pki, require_client_cert=True))
    exp, reg = exporter(
        "otlp/mtls",
        f"""\
        endpoint: localhost:{port}
        tls:
          ca_file: {pki.ca_cert}
          cert_file: {pki.client_cert}
          key_file: {pki.client_key}
        """,
    )
    send_one(exp)
    assert outcome(reg, "otlp/mtls") == "sent"
    assert sink.auth[0]["x509_common_name"] == [b"test-client"]

    # a client certificate from another CA is refused by the server
    exp, reg = exporter(
        "otlp/stranger",
        f"endpoint: localhost:{port}\ntls: {{ca_file: {pki.ca_cert}, cert_file: {other_pki.client_cert}, key_file: {other_pki.client_key}}}\n",
    )
    send_one(exp)
    assert outcome(reg, "otlp/stranger") == "failed"
    assert len(sink.requests) == 1


def test_otlphttp_https_with_ca_file(https_sink, pki, other_pki):
    sink, url = https_sink(https_server_context(pki, require_client_cert=False))
    exp, reg = exporter("otlphttp", f"endpoint: {url}\ntls: {{ca_file: {pki.ca_cert}}}\n")
    send_one(exp)
    assert outcome(reg, "otlphttp") == "sent"
    assert sink.span_ids() == ["22" * 8]
    assert sink.received[0].peer_cert is None  # no client certificate was asked for

    exp, reg = exporter("otlphttp/wrong-ca", f"endpoint: {url}\ntls: {{ca_file: {other_pki.ca_cert}}}\n")
    send_one(exp)
    assert outcome(reg, "otlphttp/wrong-ca") == "failed"
    exp, reg = exporter("otlphttp/system-roots", f"endpoint: {url}\n")  # the test CA is not a system root
    send_one(exp)
    assert outcome(reg, "otlphttp/system-roots") == "failed"
    assert len(sink.received) == 1


def test_otlphttp_mutual_tls(https_sink, pki):
    sink, url = https_sink(https_server_context(pki, require_client_cert=True))
    exp, reg = exporter(
        "otlphttp/mtls", f"endpoint: {url}\ntls: {{ca_file: {pki.ca_cert}, cert_file: {pki.client_cert}, key_file: {pki.client_key}}}\n"
    )
    send_one(exp)
    assert outcome(reg, "otlphttp/mtls") == "sent"
    assert sink.received[0].peer_common_name == "test-client"

    exp, reg = exporter("otlphttp/no-cert", f"endpoint: {url}\ntls: {{ca_file: {pki.ca_cert}}}\n")
    send_one(exp)
    assert outcome(reg, "otlphttp/no-cert") == "failed"
    assert len(sink.received) == 1


def test_cli_refuses_insecure_skip_verify_for_grpc_and_accepts_it_for_http(tmp_path):
    def validate(exporter_id: str, endpoint: str) -> subprocess.CompletedProcess:
        path = tmp_path / f"{exporter_id}.yaml"
        path.write_text(
            f"receivers: {{ebpf: }}\nexporters:\n  {exporter_id}:\n    endpoint: {endpoint}\n"
            f"    tls:\n      insecure_skip_verify: true\n"
            f"service: {{pipelines: {{traces: {{receivers: [ebpf], exporters: [{exporter_id}]}}}}}}\n"
        )
        return subprocess.run(agent_command() + ["validate", "--config", str(path)], capture_output=True, text=True, timeout=30)

    grpc_result = validate("otlp", "collector.example:4317")
    assert grpc_result.returncode == 2
    assert "exporters.otlp.tls: insecure_skip_verify is not supported by the otlp (gRPC) exporter" in grpc_result.stderr
    assert "otlp.yaml:6" in grpc_result.stderr
    http_result = validate("otlphttp", "https://collector.example:4318")
    assert http_result.returncode == 0, http_result.stderr
