"""Validation rules on exporter settings (receiver/exporters/config.py)."""

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


@pytest.mark.parametrize("exporter", ["otlp", "otlphttp"])
def test_sending_queue_keys_of_the_collector(exporter):
    config = load(exporter, """\
        sending_queue:
          num_consumers: 4
          sizer: bytes
          queue_size: 67108864
          batch: {sizer: bytes, max_size: 1048576}
        """)
    queue = config.exporters[exporter].sending_queue
    assert (queue.num_consumers, queue.sizer, queue.queue_size) == (4, "bytes", 64 * 1024 * 1024)
    assert (queue.batch.sizer, queue.batch.max_size) == ("bytes", 1024 * 1024)


def test_a_byte_queue_smaller_than_the_largest_request_is_refused_at_its_line():
    with pytest.raises(ConfigError) as caught:
        load("otlp", """\
            sending_queue:
              sizer: bytes
              queue_size: 1000
            """)
    error = caught.value
    assert error.key_path == "exporters.otlp.sending_queue.queue_size"
    assert error.location.line == 6
    assert "less than batch.max_size (3145728)" in str(error)
    # in items, or with a request limit in items, the units differ: no rule
    load("otlp", "sending_queue: {sizer: bytes, queue_size: 1000, batch: {sizer: items, max_size: 500}}\n")


@pytest.mark.parametrize(
    ("body", "key", "message"),
    [
        ("sending_queue: {sizer: batches}\n", "sending_queue.sizer", "must be one of requests, items, bytes"),
        ("sending_queue: {batch: {sizer: requests}}\n", "sending_queue.batch.sizer", "must be one of items, bytes"),
        ("sending_queue: {num_consumers: 0}\n", "sending_queue.num_consumers", "must be at least 1"),
        ("sending_queue: {num_consumers: 100}\n", "sending_queue.num_consumers", "must be at most 32"),
        ("sending_queue: {batch: {max_size: -1}}\n", "sending_queue.batch.max_size", "must be at least 0"),
        # the Collector's merging half of sending_queue.batch is the batch processor's job here
        ("sending_queue: {batch: {min_size: 100}}\n", "sending_queue.batch.min_size", "unknown key"),
    ],
)
def test_sending_queue_mistakes_name_the_key(body, key, message):
    with pytest.raises(ConfigError) as caught:
        load("otlphttp", body)
    assert caught.value.key_path == f"exporters.otlphttp.{key}"
    assert message in str(caught.value)
