"""``${env:...}`` expansion: syntax, defaults, ``$$``, and typing by the target setting."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from receiver.configuration.env import EnvText, ExpansionError, expand_env

ENV = {"HOST": "collector", "PORT": "4317", "EMPTY": ""}


@pytest.mark.parametrize(
    ("text", "expanded"),
    [
        ("plain", "plain"),
        ("${env:HOST}", "collector"),
        ("${HOST}", "collector"),  # env is the default scheme
        ("${env:HOST}:${env:PORT}", "collector:4317"),
        ("http://${env:HOST}:4318/v1", "http://collector:4318/v1"),
        ("${env:MISSING:-fallback}", "fallback"),
        ("${env:MISSING:-}", ""),
        ("${env:MISSING:-a:b-c}", "a:b-c"),
        ("${env:HOST:-fallback}", "collector"),
        ("${env:EMPTY:-fallback}", ""),  # set but empty stays empty, as in the Collector
        ("$$", "$"),
        ("price: $$5", "price: $5"),
        ("$${env:HOST}", "${env:HOST}"),
        ("$$$${env:HOST}", "$${env:HOST}"),
        ("$$${env:HOST}", "$collector"),
        ("cost $5", "cost $5"),  # a lone $ is literal
        ("trailing $", "trailing $"),
    ],
)
def test_expansion(text, expanded):
    assert expand_env(text, ENV) == expanded


def test_whole_value_reference_is_marked_for_typing_by_its_setting():
    assert isinstance(expand_env("${env:PORT}", ENV), EnvText)
    assert not isinstance(expand_env("${env:PORT}0", ENV), EnvText)
    assert not isinstance(expand_env("${env:HOST}${env:PORT}", ENV), EnvText)
    assert not isinstance(expand_env("$${env:PORT}", ENV), EnvText)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("${env:NOPE}", "environment variable 'NOPE' is not set"),
        ("${NOPE}", "environment variable 'NOPE' is not set"),
        ("${env:HOST", "unterminated '${'"),
        ("${file:/etc/passwd}", "unsupported reference scheme 'file'"),
        ("${env:1BAD}", "invalid environment variable name"),
        ("${env:}", "invalid environment variable name"),
    ],
)
def test_expansion_errors(text, message):
    with pytest.raises(ExpansionError, match=message.replace("$", r"\$").replace("{", r"\{")):
        expand_env(text, ENV)


@given(st.text())
def test_text_with_escaped_dollars_comes_back_unchanged(text):
    assert expand_env(text.replace("$", "$$"), {}) == text


@given(st.text().filter(lambda text: "$" not in text))
def test_text_without_dollars_is_untouched(text):
    assert expand_env(text, {}) == text


# --- in a configuration ----------------------------------------------------------------------


def test_expanded_values_take_the_type_of_their_setting(load):
    config = load(
        """\
        receivers:
          ebpf:
            capture_size: ${env:CAPTURE}
            capture_logs: ${env:LOGS}
            poll_interval: ${env:POLL}
            connection_idle_timeout: ${env:IDLE}
            exclude_ports:
              - ${env:SSH_PORT}
              - 2222
        exporters:
          otlp:
            endpoint: ${env:HOST}:${env:PORT}
            headers:
              x-tenant: ${env:TENANT}
        service: {pipelines: {traces: {receivers: [ebpf], exporters: [otlp]}}}
        """,
        environ={
            "CAPTURE": "8192",
            "LOGS": "true",
            "POLL": "50ms",
            "IDLE": "60",
            "SSH_PORT": "22",
            "HOST": "collector",
            "PORT": "4317",
            "TENANT": "0042",  # all digits, but headers are strings: stays "0042"
        },
    )
    ebpf = config.receivers["ebpf"]
    assert ebpf.capture_size == 8192
    assert ebpf.capture_logs is True
    assert ebpf.poll_interval == pytest.approx(0.05)
    assert ebpf.connection_idle_timeout == 60.0
    assert ebpf.exclude_ports == (22, 2222)
    otlp = config.exporters["otlp"]
    assert otlp.endpoint == "collector:4317"
    assert otlp.headers == {"x-tenant": "0042"}
    assert type(otlp.headers["x-tenant"]) is str
    assert type(otlp.endpoint) is str


def test_embedded_reference_stays_text(load_error):
    # As in the Collector, only a value that is entirely one reference is re-typed.
    error = load_error(
        """\
        receivers:
          ebpf:
            max_connections: ${env:THOUSANDS}000   # <-
        exporters: {debug: }
        service: {pipelines: {traces: {receivers: [ebpf], exporters: [debug]}}}
        """,
        "receivers.ebpf.max_connections",
        environ={"THOUSANDS": "4"},
    )
    assert "expected an integer, got the string '4000'" in str(error)


def test_expanded_text_that_does_not_fit_the_setting(load_error):
    error = load_error(
        """\
        receivers:
          ebpf:
            capture_logs: ${env:LOGS}   # <-
        exporters: {debug: }
        service: {pipelines: {traces: {receivers: [ebpf], exporters: [debug]}}}
        """,
        "receivers.ebpf.capture_logs",
        environ={"LOGS": "sometimes"},
    )
    assert "expected a boolean (true or false), got the string 'sometimes'" in str(error)


def test_empty_expansion_of_an_optional_setting_is_null(load):
    config = load(
        """\
        receivers: {ebpf: }
        exporters:
          otlp:
            tls: {ca_file: "${env:CA_FILE:-}"}
        service: {pipelines: {traces: {receivers: [ebpf], exporters: [otlp]}}}
        """
    )
    assert config.exporters["otlp"].tls.ca_file is None


def test_keys_are_not_expanded(load):
    config = load(
        """\
        receivers: {ebpf: }
        exporters:
          otlp:
            headers:
              ${env:NAME}: value
        service: {pipelines: {traces: {receivers: [ebpf], exporters: [otlp]}}}
        """,
        environ={"NAME": "x-expanded"},
    )
    assert list(config.exporters["otlp"].headers) == ["${env:NAME}"]


def test_double_dollar_in_a_config_value(load):
    config = load(
        """\
        receivers: {ebpf: }
        exporters:
          otlp:
            headers:
              x-template: "$${env:NOT_EXPANDED} costs $$5"
        service: {pipelines: {traces: {receivers: [ebpf], exporters: [otlp]}}}
        """
    )
    assert config.exporters["otlp"].headers["x-template"] == "${env:NOT_EXPANDED} costs $5"


def test_default_is_used_when_unset(load):
    config = load(
        """\
        receivers: {ebpf: }
        exporters:
          otlp:
            endpoint: ${env:OTLP_ENDPOINT:-localhost:14317}
        service: {pipelines: {traces: {receivers: [ebpf], exporters: [otlp]}}}
        """
    )
    assert config.exporters["otlp"].endpoint == "localhost:14317"


def test_process_environment_is_used_when_environ_is_not_given(write, monkeypatch):
    from receiver.config import load_config

    monkeypatch.setenv("EBPF_RECEIVER_TEST_SIZE", "2048")
    name = write(
        """\
        receivers: {ebpf: {capture_size: "${env:EBPF_RECEIVER_TEST_SIZE}"}}
        exporters: {debug: }
        service: {pipelines: {traces: {receivers: [ebpf], exporters: [debug]}}}
        """
    )
    assert load_config([name]).receivers["ebpf"].capture_size == 2048
