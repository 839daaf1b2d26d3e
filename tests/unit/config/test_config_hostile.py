"""Hostile configuration text: one ConfigError (key, line), bounded work, never a traceback.

The three inputs a probe found (issue 20): a flow collection nested 493 deep (RecursionError),
a lone 0x1a byte (ReaderError escaped: the loader was built outside the ``try``), and a 522-byte
alias bomb (nine levels of nine aliases: 387 million values, past 20 s and 1.25 GB).  The work
is bounded by counting: the converter visits at most ``max_nodes`` values, asserted exactly.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from receiver.config import ConfigError, Location, load_config_text
from receiver.configuration.yaml_source import DEFAULT_LIMITS, YamlLimits, _Converter, parse_yaml


def alias_bomb(levels: int = 10, fanout: int = 9) -> str:
    """``a: &a [x, ...]``, then each level a list of ``fanout`` aliases of the one before
    (nine levels of nine aliases by default)."""
    names = [chr(ord("a") + i) for i in range(levels)]
    lines = [f"{names[0]}: &{names[0]} [{', '.join(['x'] * fanout)}]"]
    for prev, name in zip(names, names[1:]):
        lines.append(f"{name}: &{name} [{', '.join(['*' + prev] * fanout)}]")
    return "\n".join(lines) + "\n"


def nested(depth: int) -> str:
    return "a: " + "[" * depth + "]" * depth


def test_the_alias_bomb_is_small():
    assert len(alias_bomb()) < 600  # 9**9 = 387,420,489 values once expanded


def test_deep_nesting_is_one_error_naming_the_key_and_line():
    with pytest.raises(ConfigError) as caught:
        parse_yaml("ok: 1\n" + nested(493), "c.yaml")
    error = caught.value
    assert "nested more than 64 levels deep" in error.message
    assert error.key_path.startswith("a.[0].[0]") and "more levels" in error.key_path
    assert error.location == Location("c.yaml", 2)
    assert "\n" not in str(error)


def test_nesting_up_to_the_limit_is_accepted_and_one_more_is_not():
    limits = YamlLimits(max_depth=10)
    # The root mapping is one level, 'a' sits in it, each '[' adds one.
    assert parse_yaml(nested(9), "c", limits)["a"] == [[[[[[[[[]]]]]]]]]
    with pytest.raises(ConfigError, match="nested more than 10 levels"):
        parse_yaml(nested(10), "c", limits)


@pytest.mark.parametrize(
    ("text", "line"),
    [("\x1a", 1), ("a: 1\nb: 2\nc: x\x1a\n", 3), ("a: '\x00'\n", 1), ("\ufffe", 1)],
)
def test_a_control_character_is_one_error_with_its_line(text, line):
    with pytest.raises(ConfigError) as caught:
        parse_yaml(text, "c.yaml")
    assert caught.value.location == Location("c.yaml", line)
    assert "control character 0x" in caught.value.message


def test_the_alias_bomb_stops_at_the_node_budget_naming_the_alias_line():
    with pytest.raises(ConfigError) as caught:
        parse_yaml(alias_bomb(), "c.yaml")
    error = caught.value
    assert "expands to more than 100000 values" in error.message
    # f (line 6) is the first level past the budget: 9**6 = 531,441 values; the blamed alias is its first item.
    assert error.key_path == "f.[0]"
    assert error.location == Location("c.yaml", 6)


def test_the_converter_visits_at_most_max_nodes_values():
    """Bounded work, counted: the conversion stops at exactly the budget (+1, the refused one)."""
    import yaml

    from receiver.configuration.yaml_source import _CoreSchemaLoader

    loader = _CoreSchemaLoader(alias_bomb(), "c", DEFAULT_LIMITS)
    root = loader.get_single_node()
    loader.dispose()
    converter = _Converter("c", YamlLimits(max_nodes=5_000))
    with pytest.raises(ConfigError):
        converter.convert(root, ())
    assert converter.nodes == 5_001
    assert isinstance(root, yaml.MappingNode)


def test_a_document_with_exactly_max_nodes_values_is_accepted():
    # root + key 'a' value (the list) + 3 items = 5 values.
    assert parse_yaml("a: [1, 2, 3]", "c", YamlLimits(max_nodes=5))["a"] == [1, 2, 3]
    with pytest.raises(ConfigError, match="more than 4 values"):
        parse_yaml("a: [1, 2, 3]", "c", YamlLimits(max_nodes=4))


def test_aliases_nested_in_aliases_cannot_grow_the_depth_past_the_limit():
    limits = YamlLimits(max_depth=8, max_nodes=10_000)
    text = "a: &a [[[[1]]]]\nb: &b [[[*a]]]\nc: [[[*b]]]\n"  # each level within the limit, expanded 12 deep
    with pytest.raises(ConfigError, match="through aliases") as caught:
        parse_yaml(text, "c.yaml", limits)
    assert caught.value.key_path.startswith("c.")


def test_merge_keys_still_work_within_the_budget():
    tree = parse_yaml("base: &b {x: 1, y: 2}\none: {<<: *b, y: 3}\ntwo: {<<: *b}\n", "c")
    assert dict(tree["one"]) == {"x": 1, "y": 3} and dict(tree["two"]) == {"x": 1, "y": 2}


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (nested(493).encode(), "nested more than 64 levels deep"),
        (b"\x1a", "control character 0x1a"),
        (alias_bomb().encode(), "expands to more than 100000 values"),
    ],
    ids=["nesting", "ctrl-z", "alias-bomb"],
)
def test_validate_exits_2_with_one_line(tmp_path, content, needle):
    path = tmp_path / "hostile.yaml"
    path.write_bytes(content)
    done = subprocess.run(
        [sys.executable, "-m", "receiver.cli", "validate", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("ebpf-receiver: config error: ") and needle in lines[0]
    assert "Traceback" not in done.stderr


# Found by the fuzz campaign (make fuzz; the inputs are kept in tests/fixtures/config/fuzz/).


@pytest.mark.parametrize(
    ("kind", "setting", "value"),
    [("otlp", "endpoint", "//]"), ("otlp", "endpoint", "https://[::1:4317"),
     ("otlphttp", "endpoint", "http://]x"), ("otlphttp", "endpoint", "http://[::1")],
)
def test_an_unbalanced_ipv6_bracket_in_an_endpoint_is_one_error(kind, setting, value):
    # urlsplit raises ValueError("Invalid IPv6 URL") on these: it escaped the loader.
    text = f"exporters:\n  {kind}:\n    {setting}: '{value}'\n"
    with pytest.raises(ConfigError) as caught:
        load_config_text(text, "c.yaml", environ={})
    assert caught.value.key_path == f"exporters.{kind}.{setting}"
    assert caught.value.location == Location("c.yaml", 3)
    assert f"'{value}' is not" in str(caught.value)


def test_an_error_quoting_a_value_with_line_breaks_stays_one_line():
    text = 'exporters:\n  otlp:\n    endpoint: "a\\nb\\r\\nc"\n'
    with pytest.raises(ConfigError) as caught:
        load_config_text(text, "c.yaml", environ={})
    rendered = str(caught.value)
    assert "\n" not in rendered and "\r" not in rendered
    assert "'a\\nb\\r\\nc' is not a gRPC endpoint" in rendered
    assert caught.value.message.count("\n") == 2  # the message itself keeps the value as given
