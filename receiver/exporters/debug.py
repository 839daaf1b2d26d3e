"""The debug exporter: prints what reaches it to a text stream, like the Collector's.

Verbosity:

* ``basic`` — one summary line per batch: ``TracesExporter #spans: 3``;
* ``normal`` — the summary, then one line per span / data point / log record, e.g.
  ``GET /users SERVER 4bf9…4736 00f0…02b7 parent=- 12.345ms ERROR http.request.method=GET …``;
* ``detailed`` — every field, grouped by resource, in the Collector's layout.

Synchronous (no queue): each batch is formatted into one string and written under a lock, so
concurrent batches never interleave.  Writing to a slow stream blocks the caller.
"""

from __future__ import annotations

import sys
import threading
from typing import TYPE_CHECKING, Callable, TextIO

from receiver.model.signals import Signal, count_items
from receiver.model.telemetry import LogRecord, Metric, MetricKind, Span

if TYPE_CHECKING:
    from receiver.component.self_metrics import SelfMetrics
    from receiver.exporters.config import DebugExporterConfig

VERBOSITIES = ("basic", "normal", "detailed")


def _attrs_inline(items) -> str:
    return " ".join(f"{k}={v}" for k, v in items)


def _hex_or_dash(b: bytes) -> str:
    return b.hex() if b else "-"


def _summary(signal: Signal, batch: list) -> str:
    if signal is Signal.TRACES:
        return f"TracesExporter #spans: {len(batch)}\n"
    if signal is Signal.METRICS:
        return f"MetricsExporter #metrics: {len(batch)} #data points: {count_items(signal, batch)}\n"
    return f"LogsExporter #logs: {len(batch)}\n"


# -- normal: one line per item ---------------------------------------------------------------


def _span_line(s: Span) -> str:
    duration_ms = (s.end_unix_nano - s.start_unix_nano) / 1e6
    line = (
        f"{s.name} {s.kind.name} {s.trace_id.hex()} {s.span_id.hex()} parent={_hex_or_dash(s.parent_span_id)} "
        f"{duration_ms:.3f}ms {s.status_code.name}"
    )
    if s.attributes:
        line += " " + _attrs_inline(s.attributes.items())
    return line + "\n"


def _metric_lines(m: Metric) -> str:
    out = []
    for p in m.points:
        labels = "{" + ",".join(f"{k}={v}" for k, v in p.attributes) + "}"
        if m.kind is MetricKind.HISTOGRAM:
            out.append(f"{m.name}{labels} count={p.count} sum={p.sum:g} {m.unit}\n")
        else:
            out.append(f"{m.name}{labels} {p.value:g} {m.unit}\n")
    return "".join(out)


def _log_line(r: LogRecord) -> str:
    line = f"{r.time_unix_nano} {r.severity_text or r.severity_number.name} {r.body!r}"
    if r.trace_id:
        line += f" trace_id={r.trace_id.hex()} span_id={_hex_or_dash(r.span_id)}"
    if r.attributes:
        line += " " + _attrs_inline(r.attributes.items())
    return line + "\n"


# -- detailed: the Collector's layout -------------------------------------------------------


def _value(v) -> str:
    t = type(v)
    if t is bool:
        return f"Bool({str(v).lower()})"
    if isinstance(v, int):
        return f"Int({int(v)})"
    if isinstance(v, float):
        return f"Double({v})"
    if isinstance(v, bytes):
        return f"Bytes({v.hex()})"
    if isinstance(v, (tuple, list)):
        return "Slice([" + ", ".join(_value(x) for x in v) + "])"
    return f"Str({v})"


def _attr_block(title: str, items, indent: str = "") -> list[str]:
    lines = [f"{indent}{title}:\n"]
    lines.extend(f"{indent}     -> {k}: {_value(v)}\n" for k, v in items)
    return lines


def _detailed(signal: Signal, batch: list) -> str:
    out: list[str] = []
    groups: dict = {}
    for item in batch:
        groups.setdefault(item.resource, []).append(item)
    for i, (resource, items) in enumerate(groups.items()):
        out.append(f"Resource #{i}\n")
        out.extend(_attr_block("Resource attributes", resource.attributes))
        for j, item in enumerate(items):
            if signal is Signal.TRACES:
                out.extend(_span_detailed(j, item))
            elif signal is Signal.METRICS:
                out.extend(_metric_detailed(j, item))
            else:
                out.extend(_log_detailed(j, item))
    return "".join(out)


def _span_detailed(j: int, s: Span) -> list[str]:
    lines = [
        f"Span #{j}\n",
        f"    Trace ID       : {s.trace_id.hex()}\n",
        f"    Parent ID      : {s.parent_span_id.hex()}\n",
        f"    ID             : {s.span_id.hex()}\n",
        f"    Name           : {s.name}\n",
        f"    Kind           : {s.kind.name}\n",
        f"    TraceState     : {s.trace_state}\n",
        f"    Start time     : {s.start_unix_nano}\n",
        f"    End time       : {s.end_unix_nano}\n",
        f"    Status code    : {s.status_code.name}\n",
        f"    Status message : {s.status_message}\n",
        f"    Flags          : {s.flags}\n",
    ]
    lines.extend(_attr_block("Attributes", s.attributes.items()))
    return lines


def _metric_detailed(j: int, m: Metric) -> list[str]:
    lines = [
        f"Metric #{j}\n",
        "Descriptor:\n",
        f"     -> Name: {m.name}\n",
        f"     -> Description: {m.description}\n",
        f"     -> Unit: {m.unit}\n",
        f"     -> DataType: {m.kind.name}\n",
    ]
    for k, p in enumerate(m.points):
        lines.append(f"DataPoint #{k}\n")
        lines.extend(_attr_block("Data point attributes", p.attributes))
        lines.append(f"StartTimestamp: {p.start_time_unix_nano}\n")
        lines.append(f"Timestamp: {p.time_unix_nano}\n")
        if m.kind is MetricKind.HISTOGRAM:
            lines.append(f"Count: {p.count}\nSum: {p.sum}\nMin: {p.min}\nMax: {p.max}\n")
            lines.extend(f"ExplicitBounds #{b}: {bound}\n" for b, bound in enumerate(p.explicit_bounds))
            lines.extend(f"Buckets #{b}, Count: {c}\n" for b, c in enumerate(p.bucket_counts))
            for e, ex in enumerate(p.exemplars):
                lines.append(
                    f"Exemplar #{e}\n     -> Trace ID: {ex.trace_id.hex()}\n     -> Span ID: {ex.span_id.hex()}\n"
                    f"     -> Timestamp: {ex.time_unix_nano}\n     -> Value: {ex.value}\n"
                )
        else:
            lines.append(f"Value: {p.value}\n")
    return lines


def _log_detailed(j: int, r: LogRecord) -> list[str]:
    lines = [
        f"LogRecord #{j}\n",
        f"ObservedTimestamp: {r.observed_time_unix_nano}\n",
        f"Timestamp: {r.time_unix_nano}\n",
        f"SeverityText: {r.severity_text}\n",
        f"SeverityNumber: {r.severity_number.name}({int(r.severity_number)})\n",
        f"Body: Str({r.body})\n",
    ]
    lines.extend(_attr_block("Attributes", r.attributes.items()))
    lines.append(f"Trace ID: {r.trace_id.hex()}\nSpan ID: {r.span_id.hex()}\n")
    return lines


_LINES: dict[Signal, Callable] = {Signal.TRACES: _span_line, Signal.METRICS: _metric_lines, Signal.LOGS: _log_line}


class DebugExporter:
    """Writes batches to ``stream`` (default: ``sys.stdout`` at write time)."""

    def __init__(
        self,
        exporter_id: str,
        config: DebugExporterConfig,
        self_metrics: SelfMetrics | None = None,
        stream: TextIO | None = None,
    ) -> None:
        if config.verbosity not in VERBOSITIES:
            raise ValueError(f"unknown verbosity {config.verbosity!r} ({', '.join(VERBOSITIES)})")
        self.exporter_id = exporter_id
        self._verbosity = config.verbosity
        self._stream = stream
        self._lock = threading.Lock()
        self._sent = (
            {s: self_metrics.exporter_sent_items.labels(exporter_id, s.value) for s in Signal}
            if self_metrics is not None
            else None
        )

    def consume_traces(self, spans: list[Span]) -> None:
        self.consume(Signal.TRACES, spans)

    def consume_metrics(self, metrics: list[Metric]) -> None:
        self.consume(Signal.METRICS, metrics)

    def consume_logs(self, records: list[LogRecord]) -> None:
        self.consume(Signal.LOGS, records)

    def consume(self, signal: Signal, batch: list) -> None:
        if not batch:
            return
        text = _summary(signal, batch)
        if self._verbosity == "normal":
            text += "".join(map(_LINES[signal], batch))
        elif self._verbosity == "detailed":
            text += _detailed(signal, batch)
        stream = self._stream or sys.stdout
        with self._lock:
            stream.write(text)
            stream.flush()
        if self._sent is not None:
            self._sent[signal].inc(count_items(signal, batch))

    def start(self) -> None:
        pass

    def shutdown(self, timeout: float = 5.0) -> None:
        pass
