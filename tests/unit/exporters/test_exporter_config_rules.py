"""Validation rules on exporter settings (receiver/configuration/components.py)."""

from __future__ import annotations

import textwrap

import pytest

from receiver.config import ConfigError, OtlpExporterConfig, TLSClientConfig, load_config_text


def load(exporter: str, body: str):
    """A config whose only exporter ``exporter`` has the settings ``body`` (YAML, from line 4)."""
    text = (
        "receivers: {ebpf: }\n"
        "exporters:\n"
        f"  {exporter}:\n"
        + textwrap.indent(textwrap.dedent(body), "    ")
        + f"service: {{pipelines: {{traces: {{receivers: [ebpf], exporters: [{exporter}]}}}}}}\n"
    )
    return load_config_text(text, "agent.yaml", environ={})


def test_grpc_insecure_skip_verify_is_refused_with_the_reason():
    with pytest.raises(ConfigError) as caught:
        load("otlp", """\
            endpoint: collector:4317
            tls:
              insecure_skip_verify: true
            """)
    error = caught.value
    assert error.key_path == "exporters.otlp.tls"
    assert error.location.line == 6  # where the tls settings are written
    assert "insecure_skip_verify is not supported by the otlp (gRPC) exporter" in str(error)
    assert "tls.ca_file" in str(error) and "otlphttp" in str(error)


def test_grpc_insecure_skip_verify_false_is_fine():
    config = load("otlp", "tls: {insecure_skip_verify: false, insecure: true}\n")
    assert config.exporters["otlp"].tls.insecure


def test_otlphttp_keeps_insecure_skip_verify():
    config = load("otlphttp", "endpoint: https://collector:4318\ntls: {insecure_skip_verify: true}\n")
    assert config.exporters["otlphttp"].tls.insecure_skip_verify


def test_the_rule_holds_for_configs_built_in_code():
    assert list(OtlpExporterConfig(tls=TLSClientConfig(insecure_skip_verify=True)).cross_field_problems())


@pytest.mark.parametrize("exporter", ["otlp", "otlphttp"])
def test_persistent_storage_needs_the_queue(exporter, tmp_path):
    with pytest.raises(ConfigError) as caught:
        load(exporter, f"sending_queue: {{enabled: false, storage: {tmp_path}}}\n")
    assert caught.value.key_path == f"exporters.{exporter}.sending_queue.storage"
    assert "enabled: true" in str(caught.value)
    config = load(exporter, f"sending_queue: {{storage: {tmp_path}/q}}\n")
    assert config.exporters[exporter].sending_queue.storage == f"{tmp_path}/q"
