"""Builds the running agent from an :class:`~receiver.config.AgentConfig`.

Collector semantics: each pipeline is receivers → processors (in order) → fan-out to
exporters.  Exporters are shared between pipelines that name them; processors are one
instance per pipeline.  Start order is downstream first (exporters, processors, extensions,
then receivers); shutdown is the reverse and idempotent.

Metrics pipelines with push exporters get a :class:`PeriodicMetricReader` that pushes the
metrics derived from traffic (RED, service graph) and — unless
``service.telemetry.metrics.level`` is ``none`` — the agent's own ``ebpf_receiver_*`` metrics
(the same ones the Prometheus exporter serves), with a last push at shutdown.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from typing import TextIO

from prometheus_client import CollectorRegistry

from receiver.capture.ebpf_receiver import EbpfReceiver
from receiver.capture.metrics import CaptureMetricsCollector
from receiver.config import AgentConfig, parse_component_id, pipeline_signal
from receiver.exporters.debug import DebugExporter
from receiver.exporters.exporter_metrics import ExporterMetrics
from receiver.exporters.otlp_grpc import OtlpGrpcExporter
from receiver.exporters.otlp_http import OtlpHttpExporter
from receiver.exporters.prometheus import PrometheusExporter
from receiver.extensions.health_check import HealthCheckExtension
from receiver.processors.batch import BatchProcessor
from receiver.telemetry.red_metrics import RedMetrics
from receiver.telemetry.self_metrics import SelfMetrics, agent_resource
from receiver.telemetry.service_graph import ServiceGraph

log = logging.getLogger(__name__)


class FanOut:
    """Hands every batch to each consumer."""

    def __init__(self, consumers) -> None:
        self._consumers = list(consumers)

    def consume_traces(self, spans) -> None:
        for c in self._consumers:
            c.consume_traces(spans)

    def consume_metrics(self, metrics) -> None:
        for c in self._consumers:
            c.consume_metrics(metrics)

    def consume_logs(self, records) -> None:
        for c in self._consumers:
            c.consume_logs(records)


class PeriodicMetricReader:
    """Pushes a snapshot of ``source()`` (traffic metrics, self metrics) to push exporters
    every ``interval`` seconds (pull exporters like Prometheus read on scrape instead)."""

    def __init__(self, source, consumer, interval: float) -> None:
        self._source = source
        self._consumer = consumer
        self._interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="metric-reader", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.flush()

    def flush(self) -> None:
        try:
            metrics = self._source()
        except Exception:
            log.exception("metric reader: cannot collect metrics")
            return
        if metrics:
            self._consumer.consume_metrics(metrics)

    def shutdown(self, timeout: float = 5.0) -> None:
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join(timeout)
        self._thread = None
        self.flush()  # the last values reach the exporters before they drain


class Agent:
    def __init__(
        self,
        config: AgentConfig,
        registry: CollectorRegistry | None = None,
        debug_stream: TextIO | None = None,
        metrics_push_interval: float = 15.0,
    ) -> None:
        self.config = config
        self.registry = registry or CollectorRegistry()
        self.self_metrics = SelfMetrics(self.registry)
        self.exporter_metrics = ExporterMetrics(self.self_metrics)  # shared by the OTLP exporters' queues
        self.red_metrics = RedMetrics()
        self._self_telemetry = config.service.telemetry.metrics.level != "none"
        self._self_resource = agent_resource()
        self._last_self_metrics: list = []  # taken before capture stops (see shutdown)
        self.service_graph = ServiceGraph()
        self._debug_stream = debug_stream or sys.stderr
        self._push_interval = metrics_push_interval
        self.exporters: dict[str, object] = {}
        self.processors: list = []
        self.readers: list[PeriodicMetricReader] = []
        self.extensions: dict[str, object] = {}
        self.receiver: EbpfReceiver | None = None
        self._started = False
        self._stopped = False
        self._build()

    # -- construction ----------------------------------------------------------------------

    def _exporter(self, exporter_id: str):
        if exporter_id in self.exporters:
            return self.exporters[exporter_id]
        cfg = self.config.exporters[exporter_id]
        type_, _ = parse_component_id(exporter_id)
        if type_ == "debug":
            exp = DebugExporter(exporter_id, cfg, self.self_metrics, stream=self._debug_stream)
        elif type_ == "otlp":
            exp = OtlpGrpcExporter(exporter_id, cfg, self.self_metrics, exporter_metrics=self.exporter_metrics)
        elif type_ == "otlphttp":
            exp = OtlpHttpExporter(exporter_id, cfg, self.self_metrics, exporter_metrics=self.exporter_metrics)
        elif type_ == "prometheus":
            exp = PrometheusExporter(cfg, self.collect_metrics, self.registry)
        else:  # validation rejects unknown types before we get here
            raise ValueError(f"no exporter of type {type_!r}")
        self.exporters[exporter_id] = exp
        return exp

    def _build(self) -> None:
        trace_heads = []
        log_heads = []
        for pipeline_id, p in self.config.service.pipelines.items():
            signal = pipeline_signal(pipeline_id)
            exporters = [self._exporter(e) for e in p.exporters]
            if signal == "metrics":
                push = [e for e in exporters if not isinstance(e, PrometheusExporter)]
                if push:
                    head = self._chain(p.processors, FanOut(push))
                    self.readers.append(PeriodicMetricReader(self._pushed_metrics, head, self._push_interval))
                continue
            head = self._chain(p.processors, FanOut(exporters))
            if signal == "traces":
                trace_heads.append(head)
            elif signal == "logs":
                log_heads.append(head)
        for ext_id in self.config.service.extensions:
            type_, _ = parse_component_id(ext_id)
            if type_ == "health_check":
                self.extensions[ext_id] = HealthCheckExtension(self.config.extensions[ext_id])
        ebpf_ids = [r for r in self.config.receivers if parse_component_id(r)[0] == "ebpf"]
        if ebpf_ids:
            self.receiver = EbpfReceiver(
                self.config.receivers[ebpf_ids[0]],
                traces=trace_heads,
                logs=log_heads,
                red_metrics=self.red_metrics,
                service_graph=self.service_graph,
            )
            self.self_metrics.add_collector(CaptureMetricsCollector(self.receiver))

    def collect_metrics(self) -> list:
        """Everything the agent derives from traffic: RED histograms and the service graph."""
        return self.red_metrics.collect() + self.service_graph.collect()

    def _pushed_metrics(self) -> list:
        """What a metric reader pushes: :meth:`collect_metrics`, then the agent's own metrics."""
        metrics = self.collect_metrics()
        if self._self_telemetry:
            own = self.self_metrics.snapshot(self._self_resource)
            names = {m.name for m in own}
            metrics = metrics + own + [m for m in self._last_self_metrics if m.name not in names]
        return metrics

    def _chain(self, processor_ids, tail):
        head = tail
        for proc_id in reversed(processor_ids):
            type_, _ = parse_component_id(proc_id)
            if type_ == "batch":
                proc = BatchProcessor(self.config.processors[proc_id], [head], self.self_metrics)
            else:
                raise ValueError(f"no processor of type {type_!r}")
            self.processors.append(proc)
            head = proc
        return head

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        if self._started:
            return
        self._started = True
        for e in self.exporters.values():
            e.start()
        for p in self.processors:  # _chain appends the most downstream first
            p.start()
        for r in self.readers:
            r.start()
        for x in self.extensions.values():
            x.start()
        if self.receiver is not None:
            self.receiver.start()
        for x in self.extensions.values():
            x.ready = True

    def shutdown(self, timeout: float | None = None) -> None:
        if self._stopped:
            return
        self._stopped = True
        budget = self.config.service.shutdown_timeout if timeout is None else timeout
        deadline = time.monotonic() + budget
        for x in self.extensions.values():
            x.ready = False
        if self.readers and self._self_telemetry:
            # The kernel counters can be read only while the BPF objects are loaded: keep them
            # for the readers' last push, which comes after capture has stopped.
            self._last_self_metrics = self.self_metrics.snapshot(self._self_resource)
        if self.receiver is not None:
            self.receiver.shutdown(timeout=min(5.0, budget))
        for r in self.readers:
            r.shutdown(max(0.1, deadline - time.monotonic()))
        for p in reversed(self.processors):  # upstream first, so each flushes into a live next
            p.shutdown(max(0.1, deadline - time.monotonic()))
        for e in self.exporters.values():
            e.shutdown(max(0.1, deadline - time.monotonic()))
        for x in self.extensions.values():
            x.shutdown(1.0)
