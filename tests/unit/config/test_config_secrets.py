"""Header values never show: not in repr, not in redacted_dict, not in any error message."""

from __future__ import annotations

import textwrap
import traceback

import pytest
import yaml

from receiver.config import (
    REDACTED,
    ConfigError,
    OtlpExporterConfig,
    OtlpHttpExporterConfig,
    load_config_text,
    redacted_dict,
)

CANARY = "CANARY-7f3a9c1e"


def config_text(headers_line: str, extra: str = "") -> str:
    return textwrap.dedent(
        f"""\
        receivers: {{ebpf: }}
        exporters:
          otlp:
            headers:
              {headers_line}
            {extra}
        service: {{pipelines: {{traces: {{receivers: [ebpf], exporters: [otlp]}}}}}}
        """
    )


def assert_hidden(*texts: str) -> None:
    for text in texts:
        assert CANARY not in text
        assert CANARY[7:] not in text  # not even a fragment


def test_repr_and_dump_of_a_loaded_config_hide_header_values():
    config = load_config_text(config_text(f"api-key: {CANARY}"), environ={})
    assert config.exporters["otlp"].headers["api-key"] == CANARY  # usable by the exporter
    dump = redacted_dict(config)
    assert dump["exporters"]["otlp"]["headers"] == {"api-key": REDACTED}
    assert_hidden(repr(config), str(config), repr(config.exporters["otlp"]), repr(config.exporters["otlp"].headers))
    assert_hidden(str(dump), yaml.safe_dump(dump))


def test_secret_from_the_environment_is_hidden_too():
    config = load_config_text(config_text("authorization: Bearer ${env:TOKEN}"), environ={"TOKEN": CANARY})
    assert config.exporters["otlp"].headers["authorization"] == f"Bearer {CANARY}"
    assert_hidden(repr(config), str(redacted_dict(config)))


@pytest.mark.parametrize("cls", [OtlpExporterConfig, OtlpHttpExporterConfig])
def test_configs_built_in_code_are_repr_safe(cls):
    config = cls(headers={"api-key": CANARY})
    assert_hidden(repr(config), str(redacted_dict(config)))
    assert config.headers["api-key"] == CANARY


@pytest.mark.parametrize(
    ("headers_line", "extra", "environ"),
    [
        (f"api-key: {CANARY}", "compression: 5", {}),  # a wrong type next to it
        (f"api-key: {CANARY}", "compresion: gzip", {}),  # an unknown key next to it
        (f"api-key: {CANARY}", "timeout: forever", {}),  # a bad duration next to it
        ("api-key: 73419", "", {}),  # the secret itself has the wrong type (int)
        (f"api-key: [{CANARY}]", "", {}),  # ... a list
        (f"api-key: {{k: {CANARY}}}", "", {}),  # ... a mapping
        ("api-key: ${env:KEY}", "compression: 5", {"KEY": CANARY}),  # expanded, error elsewhere
        (f"api-key: {CANARY}-${{env:UNSET}}", "", {}),  # unset variable inside the secret
        (f"api-key: {CANARY}${{env:KEY", "", {}),  # unterminated reference inside the secret
        (f"api-key: {CANARY}${{vault:KEY}}", "", {}),  # unsupported scheme inside the secret
        (f"api-key: ${{env:{CANARY[:6]}-x}}", "", {}),  # bad variable name
        (f"api-key: {CANARY}: x", "", {}),  # YAML syntax error on the secret's line
        (f"api-key: '{CANARY}", "", {}),  # unterminated quote
        (f"api-key: {CANARY}\n      api-key: {CANARY}", "", {}),  # duplicate header
    ],
)
def test_error_messages_never_contain_header_values(headers_line, extra, environ):
    with pytest.raises(ConfigError) as caught:
        load_config_text(config_text(headers_line, extra), environ=environ)
    error = caught.value
    if "73419" in headers_line:
        assert "73419" not in str(error)
    assert_hidden(str(error), repr(error), error.message, str(error.args), str(error.key_path))
    assert_hidden("".join(traceback.format_exception(error)))  # no chained exception leaks it either


def test_header_names_are_shown():
    with pytest.raises(ConfigError) as caught:
        load_config_text(config_text("api-key: 73419"), environ={})
    assert caught.value.key_path == "exporters.otlp.headers.api-key"
    assert "expected a string, got an integer" in str(caught.value)
