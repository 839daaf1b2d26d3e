"""Durations (Collector/Go syntax or seconds) and byte sizes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from receiver.config import format_duration, parse_duration, parse_size
from receiver.configuration.units import format_size


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("5s", 5.0),
        ("200ms", 0.2),
        ("1m", 60.0),
        ("1h30m", 5400.0),
        ("1h30m15s", 5415.0),
        ("500us", 0.0005),
        ("500µs", 0.0005),
        ("250ns", 0.00000025),
        ("1.5s", 1.5),
        (".5s", 0.5),
        ("0", 0.0),
        ("-2s", -2.0),
    ],
)
def test_parse_duration(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("5", "needs a unit"),
        ("5 s", "not a duration"),
        ("5sec", "unknown duration unit 'sec'"),
        ("", "empty duration"),
        ("s", "not a duration"),
        ("1d", "unknown duration unit 'd'"),
    ],
)
def test_parse_duration_rejects(text, reason):
    with pytest.raises(ValueError, match=reason):
        parse_duration(text)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (0.2, "200ms"), (0.02, "20ms"), (5, "5s"), (300, "5m"), (5400, "1h30m"), (90.5, "1m30.5s"),
     (0.0005, "500us"), (1e-9, "1ns")],
)
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text


@given(st.integers(min_value=0, max_value=10**15))
def test_format_then_parse_round_trips(nanoseconds):
    seconds = nanoseconds / 1e9
    assert parse_duration(format_duration(seconds)) == pytest.approx(seconds, rel=1e-12, abs=1e-12)


@pytest.mark.parametrize(
    ("text", "size"),
    [("4096", 4096), ("4KiB", 4096), ("16MiB", 16 * 1024 * 1024), ("1GiB", 1024**3), ("1MB", 10**6),
     ("64 B", 64), ("2 KiB", 2048)],
)
def test_parse_size(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["16mb", "1.5MiB", "lots", "-1", "4 TiB"])
def test_parse_size_rejects(text):
    with pytest.raises(ValueError):
        parse_size(text)


def test_format_size():
    assert format_size(16 * 1024 * 1024) == "16MiB"
    assert format_size(4096) == "4KiB"
    assert format_size(1000) == 1000
    assert format_size(0) == 0


def test_durations_in_a_config(load):
    config = load(
        """\
        receivers:
          ebpf:
            poll_interval: 20ms
            connection_idle_timeout: 1h30m
        processors:
          batch: {timeout: 1}
        exporters:
          otlp:
            timeout: 2.5
            retry_on_failure: {initial_interval: 500ms, max_interval: 1m, max_elapsed_time: 0}
        service:
          pipelines: {traces: {receivers: [ebpf], processors: [batch], exporters: [otlp]}}
          shutdown_timeout: 30s
        """
    )
    assert config.receivers["ebpf"].poll_interval == pytest.approx(0.02)
    assert config.receivers["ebpf"].connection_idle_timeout == 5400.0
    assert config.processors["batch"].timeout == 1.0
    retry = config.exporters["otlp"].retry_on_failure
    assert (retry.initial_interval, retry.max_interval, retry.max_elapsed_time) == (0.5, 60.0, 0.0)
    assert config.exporters["otlp"].timeout == 2.5
    assert config.service.shutdown_timeout == 30.0
    assert all(isinstance(value, float) for value in (retry.max_elapsed_time, config.processors["batch"].timeout))


def test_sizes_in_a_config(load):
    config = load(
        """\
        receivers:
          ebpf: {capture_size: 8KiB, ring_buffer_size: 64MiB, wakeup_bytes: 0, max_buffer_per_connection: 131072}
        exporters: {debug: }
        service: {pipelines: {traces: {receivers: [ebpf], exporters: [debug]}}}
        """
    )
    ebpf = config.receivers["ebpf"]
    assert (ebpf.capture_size, ebpf.ring_buffer_size, ebpf.wakeup_bytes) == (8192, 64 * 1024 * 1024, 0)
    assert ebpf.max_buffer_per_connection == 131072
