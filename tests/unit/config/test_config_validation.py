"""One test per validation rule: each failure is one message naming the key path and file:line."""

from __future__ import annotations


import pytest

from receiver.config import ConfigError, load_config


# --- keys ------------------------------------------------------------------------------------


def test_unknown_key_names_its_path_and_suggests_the_close_one(load_error):
    error = load_error(
        """\
        receivers:
          ebpf:
            capture_sise: 4096   # <-
        exporters: {debug: }
        service: {pipelines: {traces: {receivers: [ebpf], exporters: [debug]}}}
        """,
        "receivers.ebpf.capture_sise",
    )
    assert "unknown key (did you mean 'capture_size'?)" in str(error)


def test_unknown_key_without_a_close_match_lists_the_valid_ones(load_error):
    error = load_error(
        """\
        receivers: {ebpf: }
        exporters:
          debug:
            colour: red   # <-
        service: {pipelines: {traces: {receivers: [ebpf], exporters: [debug]}}}
        """,
        "exporters.debug.colour",
    )
    assert "expected one of: verbosity" in str(error)


def test_unknown_top_level_section(load_error):
    error = load_error(
        """\
        receivers: {ebpf: }
        exporters: {debug: }
        conectors: {}   # <-
        service: {pipelines: {traces: {receivers: [ebpf], exporters: [debug]}}}
        """,
        "conectors",
    )
    assert "unknown key" in str(error)


def test_unknown_protocol_name_suggests_the_close_one(load_error):
    error = load_error(
        """\
        receivers:
          ebpf:
            protocols:
              postgres: {ports: [5432]}   # <-
        exporters: {debug: }
        service: {pipelines: {traces: {receivers: [ebpf], exporters: [debug]}}}
        """,
        "receivers.ebpf.protocols.postgres",
    )
    assert "did you mean 'postgresql'?" in str(error)


def test_duplicate_key_points_at_the_second_one(load_error):
    error = load_error(
        """\
        receivers:
          ebpf:
            capture_size: 4096
            capture_size: 8192   # <-
        exporters: {debug: }
        service: {pipelines: {traces: {receivers: [ebpf], exporters: [debug]}}}
        """,
        "receivers.ebpf.capture_size",
    )
    assert "duplicate key 'capture_size' (first written on line 3)" in str(error)


# --- types -----------------------------------------------------------------------------------


def test_wrong_type_names_expected_and_given(load_error):
    error = load_error(
        """\
        receivers:
          ebpf:
            capture_logs: yes   # <-
        exporters: {debug: }
        service: {pipelines: {traces: {receivers: [ebpf], exporters: [debug]}}}
        """,
        "receivers.ebpf.capture_logs",
    )
    # YAML 1.2 core schema, like the Collector: `yes` is a string, not a boolean.
    assert "expected a boolean (true or false), got the string 'yes'" in str(error)


def test_float_is_not_an_integer(load_error):
    error = load_error(
        """\
        receivers: {ebpf: }
        processors:
          batch:
            send_batch_size: 100.5   # <-
        exporters: {debug: }
        service: {pipelines: {traces: {receivers: [ebpf], exporters: [debug]}}}
        """,
        "processors.batch.send_batch_size",
    )
    assert "expected an integer, got the number 100.5" in str(error)


def test_scalar_where_a_list_is_expected(load_error):
    error = load_error(
        """\
        receivers:
          ebpf:
            exclude_ports: 22   # <-
        exporters: {debug: }
        service: {pipelines: {traces: {receivers: [ebpf], exporters: [debug]}}}
        """,
        "receivers.ebpf.exclude_ports",
    )
    assert "expected a list of integers, got the integer 22" in str(error)


def test_list_item_error_names_the_index_and_its_own_line(load_error):
    error = load_error(
        """\
        receivers:
          ebpf:
            exclude_ports:
              - 22
              - 70000   # <-
        exporters: {debug: }
        service: {pipelines: {traces: {receivers: [ebpf], exporters: [debug]}}}
        """,
        "receivers.ebpf.exclude_ports[1]",
    )
    assert "must be at most 65535, got 70000" in str(error)


def test_mapping_where_a_scalar_is_expected(load_error):
    load_error(
        """\
        receivers: {ebpf: }
        exporters:
          otlp:
            endpoint:
              host: localhost   # <-
          debug:
        service: {pipelines: {traces: {receivers: [ebpf], exporters: [debug]}}}
        """,
        "exporters.otlp.endpoint",
    )


# --- allowed values --------------------------------------------------------------------------


def test_value_outside_the_allowed_set(load_error):
    error = load_error(
        """\
        receivers: {ebpf: }
        exporters:
          otlp:
            compression: gzipp   # <-
        service: {pipelines: {traces: {receivers: [ebpf], exporters: [otlp]}}}
        """,
        "exporters.otlp.compression",
    )
    assert "must be one of gzip, none; got 'gzipp' (did you mean 'gzip'?)" in str(error)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("capture_size: 32", "must be at least 64, got 32"),
        ("capture_size: 32KiB", "must be at most 16KiB (16384), got 32KiB (32768)"),
        ("ring_buffer_size: 10MiB", "must be a power of two, got 10MiB (10485760)"),
        ("poll_interval: 0s", "must be greater than 0s, got 0s"),
        ("max_connections: 0", "must be at least 1, got 0"),
    ],
)
def test_value_outside_the_allowed_range(load_error, line, message):
    key = line.split(":")[0]
    error = load_error(
        f"""\
        receivers:
          ebpf:
            {line}   # <-
        exporters: {{debug: }}
        service: {{pipelines: {{traces: {{receivers: [ebpf], exporters: [debug]}}}}}}
        """,
        f"receivers.ebpf.{key}",
    )
    assert message in str(error)


def test_rule_across_settings_points_at_the_setting_written(load_error):
    error = load_error(
        """\
        receivers:
          ebpf:
            ring_buffer_size: 1MiB
            wakeup_bytes: 2MiB   # <-
        exporters: {debug: }
        service: {pipelines: {traces: {receivers: [ebpf], exporters: [debug]}}}
        """,
        "receivers.ebpf.wakeup_bytes",
    )
    assert "wakeup_bytes must not exceed ring_buffer_size" in str(error)


def test_errors_are_shed_after_successes(load_error):
    error = load_error(
        """\
        receivers:
          ebpf:
            http_pairing:
              shed_ring_fraction: 0.8
              shed_error_ring_fraction: 0.5   # <-
        exporters: {debug: }
        service: {pipelines: {traces: {receivers: [ebpf], exporters: [debug]}}}
        """,
        "receivers.ebpf.http_pairing.shed_error_ring_fraction",
    )
    assert "shed_error_ring_fraction must not be below shed_ring_fraction" in str(error)


def test_invalid_duration(load_error):
    error = load_error(
        """\
        receivers: {ebpf: }
        processors:
          batch:
            timeout: 5 seconds   # <-
        exporters: {debug: }
        service: {pipelines: {traces: {receivers: [ebpf], exporters: [debug]}}}
        """,
        "processors.batch.timeout",
    )
    assert "invalid duration '5 seconds'" in str(error)


def test_otlphttp_endpoint_must_be_a_url(load_error):
    error = load_error(
        """\
        receivers: {ebpf: }
        exporters:
          otlphttp:
            endpoint: localhost:4318   # <-
        service: {pipelines: {traces: {receivers: [ebpf], exporters: [otlphttp]}}}
        """,
        "exporters.otlphttp.endpoint",
    )
    assert "is not an http(s) URL" in str(error)


# --- components ------------------------------------------------------------------------------


def test_unknown_component_type_suggests_the_close_one(load_error):
    error = load_error(
        """\
        receivers: {ebpf: }
        exporters:
          otlpgrpc/vendor:   # <-
            endpoint: example.com:443
        service: {pipelines: {traces: {receivers: [ebpf], exporters: [otlpgrpc/vendor]}}}
        """,
        "exporters.otlpgrpc/vendor",
    )
    assert "unknown exporter type 'otlpgrpc' (did you mean 'otlp'?)" in str(error)


def test_component_type_under_the_wrong_section_says_where_it_belongs(load_error):
    error = load_error(
        """\
        receivers:
          ebpf:
          batch:   # <-
        exporters: {debug: }
        service: {pipelines: {traces: {receivers: [ebpf], exporters: [debug]}}}
        """,
        "receivers.batch",
    )
    assert "'batch' is a processor, configure it under processors" in str(error)


def test_malformed_component_id(load_error):
    error = load_error(
        """\
        receivers: {ebpf: }
        exporters:
          otlp/:   # <-
        service: {pipelines: {traces: {receivers: [ebpf], exporters: [otlp/]}}}
        """,
        "exporters.otlp/",
    )
    assert "invalid component id 'otlp/'" in str(error)


# --- service and pipelines -------------------------------------------------------------------


def test_pipeline_naming_an_undefined_component(load_error):
    error = load_error(
        """\
        receivers: {ebpf: }
        exporters: {debug: }
        service:
          pipelines:
            traces:
              receivers: [ebpf]
              exporters:
                - debugg   # <-
        """,
        "service.pipelines.traces.exporters[0]",
    )
    assert "'debugg' is not defined under exporters (did you mean 'debug'?)" in str(error)


def test_pipeline_naming_an_undefined_component_with_a_line_break_is_one_line(load_error):
    # Found by the fuzz campaign (tests/fixtures/config/fuzz/): the id was echoed raw.
    error = load_error(
        """\
        receivers: {ebpf: }
        exporters: {debug: }
        service:
          pipelines:
            traces:
              receivers: [ebpf]
              exporters:
                - "deb\\nug"   # <-
        """,
        "service.pipelines.traces.exporters[0]",
    )
    assert "\n" not in str(error)
    assert "'deb\\nug' is not defined under exporters" in str(error)


def test_pipeline_naming_a_component_of_the_wrong_kind(load_error):
    error = load_error(
        """\
        receivers: {ebpf: }
        processors: {batch: }
        exporters: {debug: }
        service:
          pipelines:
            traces:
              receivers: [ebpf]
              processors: [debug]   # <-
              exporters: [debug]
        """,
        "service.pipelines.traces.processors[0]",
    )
    assert "'debug' is one of the exporters, not one of the processors" in str(error)


def test_pipeline_with_a_component_that_does_not_support_its_signal(load_error):
    error = load_error(
        """\
        receivers: {ebpf: }
        exporters: {prometheus: }
        service:
          pipelines:
            traces:
              receivers: [ebpf]
              exporters: [prometheus]   # <-
        """,
        "service.pipelines.traces.exporters[0]",
    )
    assert "exporter 'prometheus' does not support traces (it supports: metrics)" in str(error)


def test_pipeline_signal_must_be_traces_metrics_or_logs(load_error):
    error = load_error(
        """\
        receivers: {ebpf: }
        exporters: {debug: }
        service:
          pipelines:
            spans/main:   # <-
              receivers: [ebpf]
              exporters: [debug]
        """,
        "service.pipelines.spans/main",
    )
    assert "must be named traces, metrics, logs or profiles" in str(error)


def test_pipeline_signal_typo_suggests_the_signal(load_error):
    error = load_error(
        """\
        receivers: {ebpf: }
        exporters: {debug: }
        service:
          pipelines:
            metric:   # <-
              receivers: [ebpf]
              exporters: [debug]
        """,
        "service.pipelines.metric",
    )
    assert "did you mean 'metrics'?" in str(error)


def test_pipeline_needs_an_exporter(load_error):
    error = load_error(
        """\
        receivers: {ebpf: }
        exporters: {debug: }
        service:
          pipelines:
            logs:   # <-
              receivers: [ebpf]
        """,
        "service.pipelines.logs.exporters",
    )
    assert "pipeline 'logs' needs at least one exporter" in str(error)


def test_component_listed_twice_in_a_pipeline(load_error):
    load_error(
        """\
        receivers: {ebpf: }
        exporters: {debug: }
        service:
          pipelines:
            logs:
              receivers: [ebpf]
              exporters:
                - debug
                - debug   # <-
        """,
        "service.pipelines.logs.exporters[1]",
    )


def test_service_extension_must_be_defined(load_error):
    error = load_error(
        """\
        receivers: {ebpf: }
        exporters: {debug: }
        service:
          extensions: [health_check]   # <-
          pipelines: {traces: {receivers: [ebpf], exporters: [debug]}}
        """,
        "service.extensions[0]",
    )
    assert "'health_check' is not defined under extensions (no extensions are defined)" in str(error)


def test_service_section_is_required(load_error):
    error = load_error(
        """\
        receivers: {ebpf: }   # <-
        exporters: {debug: }
        """,
        "service",
    )
    assert "the service section is required" in str(error)


def test_at_least_one_pipeline_is_required(load_error):
    load_error(
        """\
        receivers: {ebpf: }
        exporters: {debug: }
        service:
          pipelines: {}   # <-
        """,
        "service.pipelines",
    )


def test_telemetry_level_must_be_known(load_error):
    error = load_error(
        """\
        receivers: {ebpf: }
        exporters: {debug: }
        service:
          pipelines: {traces: {receivers: [ebpf], exporters: [debug]}}
          telemetry:
            logs:
              level: warning   # <-
        """,
        "service.telemetry.logs.level",
    )
    assert "must be one of debug, info, warn, error; got 'warning' (did you mean 'warn'?)" in str(error)


# --- environment -----------------------------------------------------------------------------


def test_unset_env_var_without_default(load_error):
    error = load_error(
        """\
        receivers: {ebpf: }
        exporters:
          otlp:
            endpoint: ${env:COLLECTOR_ENDPOINT}   # <-
        service: {pipelines: {traces: {receivers: [ebpf], exporters: [otlp]}}}
        """,
        "exporters.otlp.endpoint",
        environ={"OTHER": "x"},
    )
    assert "environment variable 'COLLECTOR_ENDPOINT' is not set" in str(error)


# --- files -----------------------------------------------------------------------------------


def test_unreadable_ca_file_message_is_exactly_as_documented(load_error):
    error = load_error(
        """\
        receivers: {ebpf: }
        exporters:
          otlp/vendor:
            endpoint: otlp.vendor.example:443
            tls:
              ca_file: /nope.pem   # <-
        service: {pipelines: {traces: {receivers: [ebpf], exporters: [otlp/vendor]}}}
        """,
        "exporters.otlp/vendor.tls.ca_file",
    )
    assert str(error) == (
        "config error: exporters.otlp/vendor.tls.ca_file: file '/nope.pem' is not readable (config.yaml:6)"
    )


@pytest.mark.parametrize("key", ["cert_file", "key_file"])
def test_unreadable_client_key_material(load_error, tmp_path, key):
    other = "key_file" if key == "cert_file" else "cert_file"
    (tmp_path / "present.pem").write_text("-----BEGIN-----\n")
    error = load_error(
        f"""\
        receivers: {{ebpf: }}
        exporters:
          otlp:
            tls:
              {other}: present.pem
              {key}: missing.pem   # <-
        service: {{pipelines: {{traces: {{receivers: [ebpf], exporters: [otlp]}}}}}}
        """,
        f"exporters.otlp.tls.{key}",
    )
    assert "file 'missing.pem' is not readable" in str(error)


def test_directory_is_not_a_readable_file(load_error, tmp_path):
    (tmp_path / "key.pem").write_text("-----BEGIN-----\n")
    error = load_error(
        """\
        receivers: {ebpf: }
        exporters:
          prometheus:
            tls:
              cert_file: .   # <-
              key_file: key.pem
        service: {pipelines: {metrics: {receivers: [ebpf], exporters: [prometheus]}}}
        """,
        "exporters.prometheus.tls.cert_file",
    )
    assert "file '.' is not readable: it is a directory" in str(error)


def test_readable_key_material_passes(load, tmp_path):
    for name in ("ca.pem", "cert.pem", "key.pem"):
        (tmp_path / name).write_text("-----BEGIN-----\n")
    config = load(
        """\
        receivers: {ebpf: }
        exporters:
          otlp:
            tls: {ca_file: ca.pem, cert_file: cert.pem, key_file: key.pem}
        service: {pipelines: {traces: {receivers: [ebpf], exporters: [otlp]}}}
        """
    )
    assert config.exporters["otlp"].tls.key_file == "key.pem"


def test_storage_dir_that_cannot_be_created(load_error, tmp_path):
    (tmp_path / "a-file").write_text("")
    error = load_error(
        """\
        receivers: {ebpf: }
        exporters:
          otlp:
            sending_queue:
              storage: a-file/queue   # <-
        service: {pipelines: {traces: {receivers: [ebpf], exporters: [otlp]}}}
        """,
        "exporters.otlp.sending_queue.storage",
    )
    assert "directory 'a-file/queue' cannot be created" in str(error)


def test_storage_dir_that_can_be_created_is_accepted_and_not_created(load, tmp_path):
    config = load(
        """\
        receivers: {ebpf: }
        exporters:
          otlp:
            sending_queue: {storage: queue/otlp}
        service: {pipelines: {traces: {receivers: [ebpf], exporters: [otlp]}}}
        """
    )
    assert config.exporters["otlp"].sending_queue.storage == "queue/otlp"
    assert not (tmp_path / "queue").exists()


def test_storage_dir_under_a_regular_file(load_error, tmp_path):
    # Not creatable even by root (the agent runs as root): its parent is a file.
    (tmp_path / "ro").write_text("not a directory")
    load_error(
        """\
        receivers: {ebpf: }
        exporters:
          otlp:
            sending_queue:
              storage: ro/queue   # <-
        service: {pipelines: {traces: {receivers: [ebpf], exporters: [otlp]}}}
        """,
        "exporters.otlp.sending_queue.storage",
    )


# --- YAML and the file itself ----------------------------------------------------------------


def test_malformed_yaml_names_its_line(load_error):
    error = load_error(
        """\
        receivers:
          ebpf:
            capture_size: 4096
           exclude_ports: [22]   # <-
        """,
        None,
    )
    assert str(error).startswith("config error: malformed YAML: ")


def test_tab_indentation_is_malformed_yaml(write):
    name = write("receivers:\n\tebpf:\n")
    with pytest.raises(ConfigError) as caught:
        load_config([name], {})
    assert str(caught.value) == (
        "config error: malformed YAML: found character '\\t' that cannot start any token (config.yaml:2)"
    )


def test_missing_config_file(write):
    with pytest.raises(ConfigError) as caught:
        load_config(["missing.yaml"], {})
    assert str(caught.value) == "config error: cannot read config file 'missing.yaml': No such file or directory"
    assert caught.value.key_path is None and caught.value.location is None


def test_document_must_be_a_mapping(load_error):
    error = load_error("- receivers   # <-\n", None)
    assert "the document must be a mapping" in str(error)


def test_error_attributes(load_error):
    error = load_error(
        """\
        receivers:
          ebpf:
            capture_size: many   # <-
        exporters: {debug: }
        service: {pipelines: {traces: {receivers: [ebpf], exporters: [debug]}}}
        """,
        "receivers.ebpf.capture_size",
    )
    assert isinstance(error, ConfigError)
    assert error.location.file == "config.yaml" and error.location.line == 3
    assert "invalid size 'many'" in error.message


# --- network metrics --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("block", "key", "message"),
    [
        ("{tc_flow: true}", "tc_flow", None),
        ("{rtt_buckets: [0.01, 0.005]}", "rtt_buckets", "bucket bounds must be strictly increasing"),
        ("{rtt_buckets: [" + ", ".join(str(0.001 * (i + 1)) for i in range(32)) + "]}", "rtt_buckets",
         "at most 31 bucket bounds (the kernel histogram's size), got 32"),
        ("{connect_duration_buckets: [0.0000001]}", "connect_duration_buckets", "counted in microseconds"),
        ("{sample_interval: 0s}", "sample_interval", "must be greater than 0"),
        ("{rtt: maybe}", "rtt", None),
    ],
)
def test_network_metrics_block_is_validated(block, key, message):
    from receiver.config import load_config_text

    text = (
        "receivers:\n  ebpf:\n    network_metrics: " + block + "\n"
        "exporters: {debug: }\nservice: {pipelines: {metrics: {receivers: [ebpf], exporters: [debug]}}}\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_config_text(text)
    assert "network_metrics" in str(caught.value)
    if key == "tc_flow":
        assert "tc_interfaces" in str(caught.value)
    elif message:
        assert message in str(caught.value), str(caught.value)


def test_network_metrics_turn_on_one_by_one():
    from receiver.config import load_config_text
    from receiver.telemetry.network_metrics import network_knobs

    text = (
        "receivers:\n  ebpf:\n    network_metrics: {rtt: true, flow: true, sample_interval: 250ms}\n"
        "exporters: {debug: }\nservice: {pipelines: {metrics: {receivers: [ebpf], exporters: [debug]}}}\n"
    )
    cfg = load_config_text(text).receivers["ebpf"].network_metrics
    knobs = network_knobs(cfg)
    assert knobs.metrics == {"rtt", "flow"} and knobs.sample_interval_s == 0.25
    assert network_knobs(type(cfg)()) is None  # all off: no program of theirs is loaded
