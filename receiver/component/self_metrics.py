"""The agent's own telemetry: counters and gauges about what each stage did with its data.

:class:`SelfMetrics` holds plain ``prometheus_client`` metric objects registered on the
registry it is given (never the global default one), so tests use a fresh registry and the
Prometheus exporter serves them next to the RED metrics.  A stage that needs a new counter adds
an attribute here; callers resolve ``.labels(...)`` children once, outside their hot loops.

Item units: spans for traces, log records for logs, *data points* for metrics (as the
OpenTelemetry Collector counts them).

The same numbers can be pushed over OTLP: :meth:`SelfMetrics.snapshot` converts the samples of
the agent's own metric families (these counters and gauges, plus collectors added with
:meth:`SelfMetrics.add_collector`, such as the capture layer's) into :class:`Metric` objects —
counters become cumulative monotonic sums named like the Prometheus family (without
``_total``), gauges become gauges — under one :func:`agent_resource`.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from typing import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.metrics_core import Metric as PromMetric

from receiver import __version__
from receiver.model.telemetry import Metric, MetricKind, Resource, SumPoint

_PREFIX = "ebpf_receiver_"
AGENT_SERVICE_NAME = "ebpf-receiver"


def agent_resource(instance_id: str | None = None) -> Resource:
    """The resource of the agent's own telemetry (the Collector's convention for its own)."""
    return Resource.from_dict(
        {
            "service.name": AGENT_SERVICE_NAME,
            "service.version": __version__,
            "service.instance.id": instance_id or str(uuid.uuid4()),
            "host.name": socket.gethostname(),
            "process.pid": os.getpid(),
        }
    )


def families_to_metrics(
    families: Iterable[PromMetric], resource: Resource, start_time_unix_nano: int, time_unix_nano: int
) -> list[Metric]:
    """prometheus_client metric families → our cumulative :class:`Metric` model.

    Counters → monotonic sums (the ``_total`` samples; ``_created`` is replaced by
    ``start_time_unix_nano``), gauges → gauges; other types are skipped.  Label pairs become
    point attributes.
    """
    out: list[Metric] = []
    for family in families:
        if family.type == "counter":
            wanted, kind, start = family.name + "_total", MetricKind.SUM, start_time_unix_nano
        elif family.type == "gauge":
            wanted, kind, start = family.name, MetricKind.GAUGE, 0
        else:
            continue
        points = [
            SumPoint(tuple(sorted(sample.labels.items())), start, time_unix_nano, sample.value)
            for sample in family.samples
            if sample.name == wanted
        ]
        if points:
            out.append(Metric(family.name, family.documentation, family.unit or "", kind, points, resource))
    return out


class SelfMetrics:
    """Counters and gauges of the agent itself, on one ``CollectorRegistry``.

    Exporter metrics (labels: ``exporter`` = the configured exporter id, ``signal`` =
    ``traces``/``metrics``/``logs``):

    * ``exporter_sent_items_total`` — items the backend accepted;
    * ``exporter_failed_items_total{reason}`` — items an export attempt was made for and that
      did not arrive: ``permanent`` (non-retryable error), ``retries_exhausted`` (retryable
      error, but retrying was disabled or ``max_elapsed_time`` passed), ``rejected`` (the
      backend answered with a partial success rejecting them), ``too_large`` (one item larger
      than the backend accepts in a request, even alone);
    * ``exporter_dropped_items_total{reason}`` — items never (fully) attempted:
      ``queue_full`` (evicted from a full sending queue), ``shutdown`` (still queued or
      backing off when shutdown ran out of time, or offered after shutdown; a persistent
      queue keeps such batches on disk instead), ``storage_error`` (the persistent queue
      could not write or read the batch), ``agent_killed`` (held in memory by a previous run
      that was killed, counted at start from the persistent queue's crash ledger,
      :mod:`receiver.exporters.crash_ledger`);
    * ``exporter_retries_total`` — retry attempts (one per re-send of a batch);
    * ``exporter_queue_size`` / ``exporter_queue_capacity`` — what the signal queues of an
      exporter hold together / their bound, in the unit of ``sending_queue.sizer`` (per signal:
      ``exporter_signal_queue_size``/``_capacity``, :mod:`receiver.exporters.exporter_metrics`).

    Batch processor: ``processor_batch_sends_total{signal,trigger}`` with trigger ``size``,
    ``timeout`` or ``shutdown``.

    Processors: ``processor_dropped_items_total{processor,signal,reason}`` — items a processor
    refused (``backlog``: the batch processor's bound, its thread behind).
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.start_time_unix_nano = time.time_ns()
        self._extra_collectors: list = []
        self._shared: dict[str, object] = {}
        r = self.registry
        self.exporter_sent_items = Counter(
            _PREFIX + "exporter_sent_items",
            "Items (spans, metric data points, log records) the backend accepted.",
            ["exporter", "signal"],
            registry=r,
        )
        self.exporter_failed_items = Counter(
            _PREFIX + "exporter_failed_items",
            "Items whose export was attempted and failed (permanent, retries_exhausted, rejected, too_large).",
            ["exporter", "signal", "reason"],
            registry=r,
        )
        self.exporter_dropped_items = Counter(
            _PREFIX + "exporter_dropped_items",
            "Items dropped before export completed (queue_full, shutdown, storage_error, agent_killed).",
            ["exporter", "signal", "reason"],
            registry=r,
        )
        self.exporter_retries = Counter(
            _PREFIX + "exporter_retries",
            "Retry attempts of export requests.",
            ["exporter", "signal"],
            registry=r,
        )
        self.exporter_queue_size = Gauge(
            _PREFIX + "exporter_queue_size",
            "What the exporter's signal queues hold together, in the unit of sending_queue.sizer.",
            ["exporter"],
            registry=r,
        )
        self.exporter_queue_capacity = Gauge(
            _PREFIX + "exporter_queue_capacity",
            "Capacity of the exporter's signal queues together, in the unit of sending_queue.sizer.",
            ["exporter"],
            registry=r,
        )
        self.processor_batch_sends = Counter(
            _PREFIX + "processor_batch_sends",
            "Batches the batch processor sent on, by what triggered the send.",
            ["signal", "trigger"],
            registry=r,
        )
        self.processor_dropped_items = Counter(
            _PREFIX + "processor_dropped_items",
            "Items a processor refused (backlog: the batch processor's bound reached, its thread behind).",
            ["processor", "signal", "reason"],
            registry=r,
        )

    def shared(self, key: str, make):
        """One object per registry, made by ``make(self)`` on first use: metric families several
        components update (e.g. every exporter's sending-queue metrics) are registered once."""
        obj = self._shared.get(key)
        if obj is None:
            obj = self._shared[key] = make(self)
        return obj

    def add_collector(self, collector) -> None:
        """Register another collector of the agent's own metrics (served and snapshotted)."""
        self.registry.register(collector)
        self._extra_collectors.append(collector)

    def families(self) -> list[PromMetric]:
        """The current samples of every self metric, as prometheus_client families."""
        own = (
            self.exporter_sent_items,
            self.exporter_failed_items,
            self.exporter_dropped_items,
            self.exporter_retries,
            self.exporter_queue_size,
            self.exporter_queue_capacity,
            self.processor_batch_sends,
            self.processor_dropped_items,
        )
        out: list[PromMetric] = []
        for collector in (*own, *self._extra_collectors):
            out.extend(collector.collect())
        return out

    def snapshot(self, resource: Resource, time_unix_nano: int | None = None) -> list[Metric]:
        """The self metrics as OTLP-ready :class:`Metric` objects (for push exporters)."""
        now = time.time_ns() if time_unix_nano is None else time_unix_nano
        return families_to_metrics(self.families(), resource, self.start_time_unix_nano, now)
