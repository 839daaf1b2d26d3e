"""The YAML layer: line numbers, YAML 1.2 core typing, merge keys, malformed input."""

from __future__ import annotations

import pytest

from receiver.config import ConfigError, Location, load_config_text
from receiver.configuration.yaml_source import LocatedList, LocatedMap, locate, merge_maps, parse_yaml

TEXT = """\
receivers:
  ebpf:
    exclude_ports:
      - 22
      - 80
exporters: {debug: {verbosity: basic}}
"""


def test_keys_values_and_items_remember_their_lines():
    tree = parse_yaml(TEXT, "x.yaml")
    ebpf = tree["receivers"]["ebpf"]
    assert isinstance(ebpf, LocatedMap) and isinstance(ebpf["exclude_ports"], LocatedList)
    assert ebpf.key_location("exclude_ports") == Location("x.yaml", 3)
    assert ebpf.value_location("exclude_ports") == Location("x.yaml", 4)
    assert ebpf["exclude_ports"].item_locations == [Location("x.yaml", 4), Location("x.yaml", 5)]
    assert locate(tree, ("receivers", "ebpf", "exclude_ports", 1)) == Location("x.yaml", 5)
    assert locate(tree, ("exporters", "debug", "verbosity")) == Location("x.yaml", 6)
    # A missing key is located at the last key that exists: where it would be added.
    assert locate(tree, ("receivers", "ebpf", "protocols", "http")) == Location("x.yaml", 2)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("a: yes", "yes"),
        ("a: on", "on"),
        ("a: off", "off"),
        ("a: true", True),
        ("a: False", False),
        ("a: 010", 10),
        ("a: 0o17", 15),
        ("a: 0x1f", 31),
        ("a: 1:30", "1:30"),
        ("a: 1.5", 1.5),
        ("a: 1e3", 1000.0),
        ("a: ~", None),
        ("a:", None),
        ("a: '8080'", "8080"),
        ("a: !!str 8080", "8080"),
        ("a: 2001-12-14", "2001-12-14"),
    ],
)
def test_scalars_follow_the_yaml_1_2_core_schema(text, value):
    assert parse_yaml(text, "x")["a"] == value


def test_keys_are_always_the_text_written():
    assert list(parse_yaml("80: a\ntrue: b\n~: c\n", "x")) == ["80", "true", "~"]


def test_merge_keys():
    tree = parse_yaml(
        "base: &base {a: 1, b: 2}\nmerged:\n  <<: *base\n  b: 3\n", "x"
    )
    assert dict(tree["merged"]) == {"a": 1, "b": 3}
    assert tree["merged"].value_location("a") == Location("x", 1)


def test_anchors_in_a_config():
    config = load_config_text(
        """\
receivers: {ebpf: }
exporters:
  otlp/a: &common
    endpoint: a.example:4317
    compression: none
  otlp/b:
    <<: *common
    endpoint: b.example:4317
service: {pipelines: {traces: {receivers: [ebpf], exporters: [otlp/a, otlp/b]}}}
""",
        environ={},
    )
    assert config.exporters["otlp/b"].compression == "none"
    assert config.exporters["otlp/b"].endpoint == "b.example:4317"


def test_merge_maps_replaces_lists_and_scalars():
    base = parse_yaml("a: {x: 1, l: [1, 2]}\nb: 1\n", "base")
    override = parse_yaml("a: {l: [3]}\nb: {c: 1}\n", "over")
    merged = merge_maps(base, override)
    assert merged == {"a": {"x": 1, "l": [3]}, "b": {"c": 1}}
    assert merged["a"].value_location("x").file == "base"
    assert merged["a"].value_location("l").file == "over"


@pytest.mark.parametrize(
    ("text", "message", "line"),
    [
        ("a: 1\n---\nb: 2\n", "expected a single document in the stream, but found another document", 2),
        ("a: [1, 2\n", "malformed YAML", 2),
        ("a: 'open\n", "while scanning a quoted scalar on line 1", 2),
        ("a: !custom 1\n", "unsupported YAML tag !custom", 1),
        ("a: !!int abc\n", "value does not match its tag !!int", 1),
        ("a: *nowhere\n", "found undefined alias", 1),
        ("? [a, b]\n: 1\n", "mapping keys must be plain strings", 1),
        ("a: 1\na: 2\n", "duplicate key 'a' (first written on line 1)", 2),
    ],
)
def test_malformed_yaml(text, message, line):
    with pytest.raises(ConfigError) as caught:
        parse_yaml(text, "x.yaml")
    assert message in str(caught.value)
    assert caught.value.location == Location("x.yaml", line)


def test_empty_document_is_an_empty_mapping():
    assert parse_yaml("# only a comment\n", "x") == {}


def test_syntax_error_message_never_quotes_the_source_line():
    with pytest.raises(ConfigError) as caught:
        parse_yaml("headers:\n  api-key: CANARY-1234: x\n", "x.yaml")
    assert "CANARY" not in str(caught.value)
    assert caught.value.location == Location("x.yaml", 2)
