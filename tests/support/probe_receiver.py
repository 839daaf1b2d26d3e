"""A receiver of the test's own, registered as ``probe``: it hands the spans and log records a
test gives it to its pipelines' consumers (for tests of processors, exporters and extensions
through a real :class:`~receiver.pipeline.Agent`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from receiver.component import Factory
from receiver.configuration.section import ConfigSection


@dataclass(frozen=True, slots=True)
class ProbeReceiverConfig(ConfigSection):
    signals: ClassVar[frozenset[str]] = frozenset({"traces", "logs"})


class ProbeReceiver:
    def __init__(self, consumers) -> None:
        self.consumers = consumers

    def emit(self, spans) -> None:
        for c in self.consumers.traces:
            c.consume_traces(spans)

    def emit_logs(self, records) -> None:
        for c in self.consumers.logs:
            c.consume_logs(records)

    def start(self) -> None:
        return None

    def shutdown(self, timeout: float = 5.0) -> None:
        return None


PROBE_FACTORY = Factory("receivers", "probe", ProbeReceiverConfig, lambda s, cfg, consumers: ProbeReceiver(consumers))
