"""Several --config files: maps deep-merge, the later file wins, lists are replaced."""

from __future__ import annotations

import pytest

from receiver.config import ConfigError, Location, load_config

BASE = """\
receivers:
  ebpf:
    capture_size: 4096
    exclude_ports: [22, 2222]
    protocols:
      redis: {enabled: false}
exporters:
  otlp:
    endpoint: localhost:4317
    tls: {insecure: true}
    headers: {x-team: payments}
  debug:
service:
  pipelines:
    traces: {receivers: [ebpf], exporters: [otlp, debug]}
"""

OVERRIDE = """\
receivers:
  ebpf:
    capture_size: 8192
    exclude_ports: [9100]
    protocols:
      mysql: {ports: [3307]}
exporters:
  otlp:
    headers: {x-env: prod}
service:
  pipelines:
    traces: {exporters: [otlp]}
"""


def test_maps_merge_later_wins_lists_replace(write):
    config = load_config([write(BASE, "base.yaml"), write(OVERRIDE, "prod.yaml")], {})
    ebpf = config.receivers["ebpf"]
    assert ebpf.capture_size == 8192  # later file wins
    assert ebpf.exclude_ports == (9100,)  # lists are replaced, not appended
    assert set(ebpf.protocols) == {"redis", "mysql"}  # maps merge
    assert ebpf.protocols["redis"].enabled is False
    otlp = config.exporters["otlp"]
    assert otlp.endpoint == "localhost:4317" and otlp.tls.insecure is True  # untouched keys survive
    assert otlp.headers == {"x-team": "payments", "x-env": "prod"}
    traces = config.service.pipelines["traces"]
    assert traces.receivers == ("ebpf",) and traces.exporters == ("otlp",)
    assert config.source_files == ("base.yaml", "prod.yaml")


def test_errors_point_at_the_file_that_wrote_the_value(write):
    base = write(BASE, "base.yaml")
    bad = write("receivers:\n  ebpf:\n    capture_size: 1\n", "bad.yaml")
    with pytest.raises(ConfigError) as caught:
        load_config([base, bad], {})
    assert caught.value.key_path == "receivers.ebpf.capture_size"
    assert caught.value.location == Location("bad.yaml", 3)


def test_unchanged_values_keep_their_own_file(write):
    bad_base = BASE.replace("capture_size: 4096", "capture_size: 1")
    base = write(bad_base, "base.yaml")
    other = write("exporters:\n  debug:\n    verbosity: detailed\n", "other.yaml")
    with pytest.raises(ConfigError) as caught:
        load_config([base, other], {})
    assert caught.value.location == Location("base.yaml", 3)


def test_null_in_a_later_file_resets_to_defaults(write):
    config = load_config([write(BASE, "base.yaml"), write("receivers:\n  ebpf:\n", "reset.yaml")], {})
    assert config.receivers["ebpf"].capture_size == 4096
    assert config.receivers["ebpf"].exclude_ports == ()


def test_a_later_file_can_complete_an_earlier_one(write):
    components = write("receivers: {ebpf: }\nexporters: {debug: }\n", "components.yaml")
    service = write("service:\n  pipelines:\n    logs: {receivers: [ebpf], exporters: [debug]}\n", "service.yaml")
    config = load_config([components, service], {})
    assert list(config.service.pipelines) == ["logs"]


def test_syntax_error_in_the_second_file_names_it(write):
    base = write(BASE, "base.yaml")
    broken = write("receivers:\n  ebpf: [\n", "broken.yaml")
    with pytest.raises(ConfigError) as caught:
        load_config([base, broken], {})
    assert caught.value.location.file == "broken.yaml"
