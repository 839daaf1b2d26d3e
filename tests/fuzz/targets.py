"""Fuzz targets: one function per thing that reads input it does not control, ``bytes -> None``.

A target returns normally for any input it handles as designed (a parse error counted, a
ConfigError, a PermanentExportError) and raises for anything else — that is a crash, which the
fuzzer (tests/fuzz/__main__.py, ``make fuzz``) minimises and saves under
``tests/fixtures/<target's folder>/fuzz/`` and ``make test`` replays
(tests/unit/test_fuzz_regressions.py).

* every protocol session (tests/support/hostile_input.py: the input is a feed script — which
  direction, where writes are cut, where the capture lost bytes);
* ``records``: the ring-buffer record decoder (``capture/events.py``);
* ``config``: the configuration loader, any bytes as a YAML file (only ConfigError may come out);
* ``otlp``: the OTLP wire encoder, for spans and log records built from the input, checked
  field by field against the reference protobuf decoder;
* ``prometheus``: the Prometheus translation and text exposition, parsed back by
  prometheus_client's own parser.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Callable

from receiver.bpf.abi import load_abi
from receiver.capture.events import EventDecoder
from receiver.config import ConfigError, load_config_text
from receiver.distribution import default_registry
from receiver.exporters.errors import PermanentExportError
from receiver.exporters.otlp_wire import OtlpWireEncoder
from receiver.exporters.text_repair import repaired
from receiver.exporters.prometheus import translate
from receiver.model.signals import Signal
from receiver.model.telemetry import (
    LogRecord,
    Metric,
    MetricKind,
    Resource,
    SeverityNumber,
    Span,
    SpanKind,
    StatusCode,
    SumPoint,
)
from tests.support.hostile_input import SESSIONS, feed_script, run_session

_ABI = load_abi()
# Built once per process, not per input (building them was most of the work of those targets):
# the decoder's tables come from the ABI alone (its only state between records, the endpoint
# cache and the malformed count, is reset or read per input), and the loader's component
# classes (built-ins and installed plug-ins, found by scanning package metadata) are a
# read-only mapping.
_DECODER = EventDecoder(_ABI)
_COMPONENTS = default_registry().config_classes()


def protocol_target(proto: str) -> Callable[[bytes], None]:
    def target(data: bytes) -> None:
        run_session(proto, feed_script(data))

    return target


def records_target(data: bytes) -> None:
    decoder = _DECODER
    decoder._tuples.clear()  # as fresh as a new decoder: no endpoints cached by an earlier input
    before = decoder.malformed
    event = decoder.decode(data)
    assert event is not None or decoder.malformed >= before  # refused records are counted


def config_target(data: bytes) -> None:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return  # refused before YAML by the file reader (tested in tests/unit/config)
    try:
        load_config_text(text, "fuzz.yaml", environ={}, components=_COMPONENTS)
    except ConfigError as err:
        assert "\n" not in str(err), "a config error is one line"


class _Reader:
    """Values taken from the fuzzer's bytes (a small FuzzedDataProvider that replays the same
    everywhere, atheris or not)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.at = 0

    def byte(self) -> int:
        if self.at >= len(self.data):
            return 0
        self.at += 1
        return self.data[self.at - 1]

    def int(self, size: int = 8) -> int:
        chunk = self.data[self.at : self.at + size].ljust(size, b"\0")
        self.at += size
        return int.from_bytes(chunk, "little")

    def raw(self, limit: int = 64) -> bytes:
        n = min(self.byte(), limit)
        chunk = self.data[self.at : self.at + n]
        self.at += n
        return chunk

    def text(self) -> str:
        # Any code point, surrogates included (they cannot be encoded: the encoder must say so).
        raw = self.raw()
        if self.byte() & 1:
            return raw[: len(raw) // 2 * 2].decode("utf-16-le", "surrogatepass")
        return raw.decode("latin-1")

    def value(self) -> object:
        kind = self.byte() % 6
        if kind == 0:
            return self.text()
        if kind == 1:
            return bool(self.byte() & 1)
        if kind == 2:
            return self.int() - (1 << 63)
        if kind == 3:
            return struct.unpack("<d", self.int().to_bytes(8, "little"))[0]
        if kind == 4:
            return self.raw()
        return tuple(self.text() for _ in range(self.byte() % 4))

    def attributes(self) -> dict[str, object]:
        return {self.text(): self.value() for _ in range(self.byte() % 6)}


def _span(r: _Reader) -> Span:
    return Span(
        trace_id=r.raw(16).ljust(16, b"\1"),
        span_id=r.raw(8).ljust(8, b"\1"),
        name=r.text(),
        kind=list(SpanKind)[r.byte() % len(SpanKind)],
        start_unix_nano=r.int(),
        end_unix_nano=r.int(),
        resource=Resource.from_dict(r.attributes()),
        parent_span_id=r.raw(8),
        attributes=r.attributes(),
        status_code=list(StatusCode)[r.byte() % len(StatusCode)],
        status_message=r.text(),
    )


def _log(r: _Reader) -> LogRecord:
    return LogRecord(
        time_unix_nano=r.int(),
        body=r.text(),
        resource=Resource.from_dict(r.attributes()),
        severity_number=SeverityNumber.ERROR if r.byte() & 1 else SeverityNumber.INFO,
        severity_text=r.text(),
        attributes=r.attributes(),
        trace_id=r.raw(16),
        span_id=r.raw(8),
    )


def _encodable(value: object) -> bool:
    """No string inside ``value`` holds a lone surrogate (UTF-8 cannot encode those)."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
            return True
        except UnicodeEncodeError:
            return False
    if isinstance(value, dict):
        return all(_encodable(k) and _encodable(v) for k, v in value.items())
    if isinstance(value, tuple | list):
        return all(_encodable(v) for v in value)
    if isinstance(value, Resource):
        return _encodable(value.attributes)
    return True


# The repaired-text warning (one per encoder) would print once per input.
logging.getLogger("receiver.exporters.otlp_wire").setLevel(logging.ERROR)


def otlp_target(data: bytes) -> None:
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    r = _Reader(data)
    spans = [_span(r) for _ in range(1 + r.byte() % 3)]
    logs = [_log(r) for _ in range(1 + r.byte() % 3)]
    encoder = OtlpWireEncoder(max_entries=8)
    for signal, batch, message in ((Signal.TRACES, spans, ExportTraceServiceRequest),
                                   (Signal.LOGS, logs, ExportLogsServiceRequest)):
        try:
            wire = encoder.serialize(signal, batch)
        except PermanentExportError:
            assert not all(_encodable(vars_of(item)) for item in batch), "refused an encodable batch"
            continue
        decoded = message.FromString(wire)  # the reference decoder must accept it
        # lone surrogates arrive as U+FFFD (receiver/exporters/text_repair.py), the rest as given
        spans, logs = [repaired(s) for s in spans], [repaired(rec) for rec in logs]
        if signal is Signal.TRACES:
            got = [s for rs in decoded.resource_spans for ss in rs.scope_spans for s in ss.spans]  # by resource
            assert sorted((s.span_id, s.name) for s in got) == sorted((s.span_id, s.name) for s in spans)
            for span in spans:
                keys = [{a.key for a in d.attributes} for d in got if d.span_id == span.span_id and d.name == span.name]
                assert set(span.attributes) in keys
        else:
            got = [rec for rl in decoded.resource_logs for sl in rl.scope_logs for rec in sl.log_records]
            assert sorted(rec.body.string_value for rec in got) == sorted(rec.body for rec in logs)


def vars_of(item: object) -> tuple:
    return tuple(getattr(item, name) for name in item.__slots__)  # type: ignore[attr-defined]


class _Families:
    """A prometheus_client collector of fixed metric families."""

    def __init__(self, families: list) -> None:
        self.families = families

    def collect(self):
        return self.families


def prometheus_target(data: bytes) -> None:
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    r = _Reader(data)
    metrics = []
    for _ in range(1 + r.byte() % 3):
        value = r.value()
        number = float(value) if isinstance(value, int | float) and not isinstance(value, bool) else float(r.int(2))
        metrics.append(Metric(
            name=r.text() or "m",
            description=r.text(),
            unit=r.text(),
            kind=MetricKind.SUM if r.byte() & 1 else MetricKind.GAUGE,
            points=[SumPoint(tuple(r.attributes().items()), 0, 1, number)],
            resource=Resource.from_dict(r.attributes()),
            monotonic=bool(r.byte() & 1),
        ))
    families = translate(metrics)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(families))
    try:
        text = generate_latest(registry).decode("utf-8")
    except UnicodeEncodeError:
        return  # a surrogate in a label: prometheus_client refuses it (the scrape answers 500)
    parsed = {(sample.name, tuple(sorted(sample.labels.items())))
              for family in text_string_to_metric_families(text) for sample in family.samples}  # it must parse
    for family in families:  # and give back every sample with its labels
        for sample in family.samples:
            assert (sample.name, tuple(sorted(sample.labels.items()))) in parsed, sample


TARGETS: dict[str, Callable[[bytes], None]] = {
    **{proto: protocol_target(proto) for proto in SESSIONS},
    "records": records_target,
    "config": config_target,
    "otlp": otlp_target,
    "prometheus": prometheus_target,
}
