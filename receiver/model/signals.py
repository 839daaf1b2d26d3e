"""The three signals, how their items are counted, and what the pipeline calls on a consumer."""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Protocol, Sequence

if TYPE_CHECKING:
    from receiver.model.telemetry import LogRecord, Metric, Span


class Signal(enum.Enum):
    TRACES = "traces"
    METRICS = "metrics"
    LOGS = "logs"


def count_items(signal: Signal, batch: Sequence) -> int:
    """Items in a batch as the self metrics count them: spans, log records, metric data points."""
    if signal is Signal.METRICS:
        return sum(len(m.points) for m in batch)
    return len(batch)


class TelemetryConsumer(Protocol):
    """What the pipeline calls on every exporter and processor."""

    def consume_traces(self, spans: list[Span]) -> None: ...

    def consume_metrics(self, metrics: list[Metric]) -> None: ...

    def consume_logs(self, records: list[LogRecord]) -> None: ...

    def start(self) -> None: ...

    def shutdown(self, timeout: float = 5.0) -> None: ...
