"""The sending queue's own metrics, and the per-signal counter children it updates.

Items are counted in :class:`~receiver.component.self_metrics.SelfMetrics`' exporter counters
(``exporter_sent_items``, ``exporter_failed_items{reason}``, ``exporter_dropped_items{reason}``,
``exporter_retries``); every item a sender accepts ends up in exactly one of the first three.
:class:`ExporterMetrics` adds what the per-signal queues and request splitting need:

* ``ebpf_receiver_exporter_signal_queue_size{exporter,signal}`` — what one signal's queue
  holds, in the unit of ``sending_queue.sizer`` (requests, items or bytes);
* ``ebpf_receiver_exporter_signal_queue_capacity{exporter,signal}`` — its bound
  (``sending_queue.queue_size``; 0 when the queue is disabled);
* ``ebpf_receiver_exporter_request_splits_total{exporter,signal,trigger}`` — requests split
  in parts: ``trigger="max_size"`` before sending (over ``sending_queue.batch.max_size``),
  ``trigger="too_large"`` after the backend refused one as too large.

They are registered once per :class:`SelfMetrics` (through ``add_collector``, so they are also
pushed with the agent's own metrics): the pipeline makes one :class:`ExporterMetrics` and hands
it to every exporter.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import Counter, Gauge

from receiver.model.signals import Signal

if TYPE_CHECKING:
    from receiver.component.self_metrics import SelfMetrics

_PREFIX = "ebpf_receiver_"

FAILED_REASONS = ("permanent", "retries_exhausted", "rejected", "too_large")
DROPPED_REASONS = ("queue_full", "shutdown", "storage_error", "agent_killed")
SPLIT_TRIGGERS = ("max_size", "too_large")


class ExporterMetrics:
    """The sending-queue metric families, registered on one :class:`SelfMetrics`."""

    def __init__(self, self_metrics: SelfMetrics) -> None:
        self.self_metrics = self_metrics
        self.signal_queue_size = Gauge(
            _PREFIX + "exporter_signal_queue_size",
            "What one signal's sending queue holds, in the unit of sending_queue.sizer (requests, items or bytes).",
            ["exporter", "signal"],
            registry=None,
        )
        self.signal_queue_capacity = Gauge(
            _PREFIX + "exporter_signal_queue_capacity",
            "Capacity of one signal's sending queue, in the unit of sending_queue.sizer (0: queue disabled).",
            ["exporter", "signal"],
            registry=None,
        )
        self.request_splits = Counter(
            _PREFIX + "exporter_request_splits",
            "Export requests split in parts: over sending_queue.batch.max_size (max_size), refused as too large (too_large).",
            ["exporter", "signal", "trigger"],
            registry=None,
        )
        for collector in (self.signal_queue_size, self.signal_queue_capacity, self.request_splits):
            self_metrics.add_collector(collector)


class SignalCounters:
    """The label children of one (exporter, signal), resolved once."""

    __slots__ = ("sent", "retries", "failed", "dropped", "splits")

    def __init__(self, metrics: ExporterMetrics, exporter_id: str, signal: Signal) -> None:
        m, s = metrics.self_metrics, signal.value
        self.sent = m.exporter_sent_items.labels(exporter_id, s)
        self.retries = m.exporter_retries.labels(exporter_id, s)
        self.failed = {r: m.exporter_failed_items.labels(exporter_id, s, r) for r in FAILED_REASONS}
        self.dropped = {r: m.exporter_dropped_items.labels(exporter_id, s, r) for r in DROPPED_REASONS}
        self.splits = {t: metrics.request_splits.labels(exporter_id, s, t) for t in SPLIT_TRIGGERS}
