"""Every example in config/ loads, and the embedded default is config/default.yaml."""

from __future__ import annotations

import dataclasses
import importlib.resources
import os
from pathlib import Path

import pytest

from receiver.config import (
    BatchProcessorConfig,
    ConfigError,
    DebugExporterConfig,
    EbpfReceiverConfig,
    OtlpExporterConfig,
    PrometheusExporterConfig,
    default_config_text,
    load_config,
)

REPO = Path(__file__).resolve().parents[3]
EXAMPLES = sorted((REPO / "config").glob("*.yaml"))
EXAMPLE_ENV = {"VENDOR_API_KEY": "example-key"}


def test_the_examples_are_there():
    assert {path.name for path in EXAMPLES} >= {"default.yaml", "local-collector.yaml", "vendor.yaml", "otlphttp.yaml"}


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: path.name)
def test_every_example_loads(path):
    config = load_config([str(path)], EXAMPLE_ENV)
    assert config.service.pipelines
    assert config.source_files == (str(path),)


def test_embedded_default_is_config_default_yaml():
    link = REPO / "receiver" / "defaults" / "default.yaml"
    assert link.is_symlink() and os.readlink(link) == "../../config/default.yaml"
    resource = importlib.resources.files("receiver") / "defaults" / "default.yaml"
    assert resource.read_text() == (REPO / "config" / "default.yaml").read_text() == default_config_text()


@pytest.mark.parametrize("paths", [None, []])
def test_no_paths_loads_the_embedded_default(paths):
    embedded = load_config(paths, {})
    from_file = load_config([str(REPO / "config" / "default.yaml")], {})
    assert dataclasses.replace(embedded, source_files=()) == dataclasses.replace(from_file, source_files=())
    assert embedded.source_files == ("<embedded default.yaml>",)


def test_default_pipelines():
    config = load_config(None, {})
    pipelines = {pipeline_id: dataclasses.astuple(p) for pipeline_id, p in config.service.pipelines.items()}
    assert pipelines == {
        "traces": (("ebpf",), ("batch",), ("debug",)),
        "metrics": (("ebpf",), (), ("prometheus",)),
        "logs": (("ebpf",), ("batch",), ("debug",)),
    }
    assert isinstance(config.receivers["ebpf"], EbpfReceiverConfig)
    assert isinstance(config.processors["batch"], BatchProcessorConfig)
    assert isinstance(config.exporters["debug"], DebugExporterConfig)
    prometheus = config.exporters["prometheus"]
    assert isinstance(prometheus, PrometheusExporterConfig) and prometheus.endpoint == "127.0.0.1:9464"


def test_default_example_restates_only_true_defaults():
    # The commented default.yaml shows some values; they must be the dataclass defaults, but for
    # the one it changes on purpose and says so: spans on the console in the first minute.
    config = load_config(None, {})
    assert config.receivers["ebpf"] == EbpfReceiverConfig()
    assert config.processors["batch"] == BatchProcessorConfig()
    assert config.exporters["debug"] == dataclasses.replace(DebugExporterConfig(), verbosity="normal")
    assert DebugExporterConfig().verbosity == "basic"
    assert "the exporter's\n    # own default is basic" in default_config_text()
    assert config.exporters["prometheus"] == PrometheusExporterConfig()


def test_local_collector_example():
    config = load_config([str(REPO / "config" / "local-collector.yaml")], {})
    otlp = config.exporters["otlp"]
    assert isinstance(otlp, OtlpExporterConfig)
    assert otlp.endpoint == "localhost:4317" and otlp.tls.insecure is True
    assert "prometheus" in config.service.pipelines["metrics/prometheus"].exporters


def test_vendor_example_takes_its_key_from_the_environment():
    config = load_config([str(REPO / "config" / "vendor.yaml")], {"VENDOR_API_KEY": "k-123"})
    vendor = config.exporters["otlp/vendor"]
    assert vendor.headers == {"api-key": "k-123"}
    assert vendor.tls.insecure is False


def test_vendor_example_without_the_key_says_which_variable():
    with pytest.raises(ConfigError) as caught:
        load_config([str(REPO / "config" / "vendor.yaml")], {})
    assert caught.value.key_path == "exporters.otlp/vendor.headers.api-key"
    assert "environment variable 'VENDOR_API_KEY' is not set" in str(caught.value)
