"""Builds the running agent from an :class:`~receiver.config.AgentConfig` and the factories of a
:class:`~receiver.component.ComponentRegistry` (no component is named here).

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

import errno
import logging
import sys
import threading
import time
from typing import TextIO

from prometheus_client import CollectorRegistry

from receiver.component.threads import AgentThread
from receiver.component import ComponentRegistry, CreateSettings, ReceiverConsumers
from receiver.component.backpressure import Backpressure
from receiver.component.ledger import NO_LEDGER, LedgerEntrance, PipelineLedger
from receiver.config import AgentConfig, parse_component_id, pipeline_signal
from receiver.distribution import default_registry
from receiver.telemetry.exemplars import DeferredExemplars
from receiver.model.serving_spans import ServingSpans
from receiver.telemetry.red_metrics import RedMetrics
from receiver.component.self_metrics import SelfMetrics, agent_resource
from receiver.telemetry.service_graph import ServiceGraph

log = logging.getLogger(__name__)

# What a failed bind says, and what the user can do about it.
_LISTEN_ERRORS = {
    errno.EADDRINUSE: "address already in use (another agent running?)",
    errno.EACCES: "permission denied (ports below 1024 need root or CAP_NET_BIND_SERVICE)",
    errno.EADDRNOTAVAIL: "no interface of this host has that address",
}


class ComponentStartError(Exception):
    """A component could not start; ``str()`` is one line naming it (``exporters.prometheus``)
    and, for a server that could not listen, the address.  ``listen``: the address was the
    problem — a configuration matter (exit code 2), like a configuration error."""

    def __init__(self, kind: str, component_id: str, endpoint: str | None, cause: OSError) -> None:
        self.component = f"{kind}.{component_id}"
        self.endpoint = endpoint
        self.cause = cause
        self.listen = endpoint is not None and cause.errno in _LISTEN_ERRORS
        if self.listen:
            reason = _LISTEN_ERRORS[cause.errno]
            message = f"{self.component}: cannot listen on {endpoint}: {reason}"
        else:
            message = f"{self.component}: cannot start: {cause.strerror or cause}"
        super().__init__(message)


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

    def consume_profiles(self, batch) -> None:
        for c in self._consumers:
            c.consume_profiles(batch)


class SpanTap:
    """Shows every batch of spans a receiver emits to the span observers (the zpages extension),
    once, then hands it to the receiver's first consumers: the one place spans are observed, at
    the head of the traces pipelines, before any processor."""

    def __init__(self, observers, consumers) -> None:
        self._observers = observers  # the agent's list: observers added later are seen too
        self._consumers = list(consumers)

    def consume_traces(self, spans) -> None:
        for observe in self._observers:
            try:
                observe(spans)
            except Exception:  # an observer's bug must not stop the spans: logged
                log.exception("span observer %r failed", observe)
        for c in self._consumers:
            c.consume_traces(spans)


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
            self._thread = AgentThread(self._run, "metric-reader")
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
        components: ComponentRegistry | None = None,
    ) -> None:
        self.config = config
        self.registry = registry or CollectorRegistry()
        self.components = components or default_registry()
        self.self_metrics = SelfMetrics(self.registry)
        self.red_metrics = RedMetrics()
        self._self_telemetry = config.service.telemetry.metrics.level != "none"
        self._self_resource = agent_resource()
        self._last_self_metrics: list = []  # taken before capture stops (see shutdown)
        self.service_graph = ServiceGraph()
        self.deferred_exemplars: DeferredExemplars | None = None  # set once a tail sampler exists
        self.slow_threshold_s: float | None = None  # a tail sampler's latency policy: shed slower ones last
        self.backpressure = Backpressure()
        # Server spans by request, written by the ebpf receiver for the profiler: only with a
        # profiles pipeline (it holds up to 16k spans alive, ~25 MB, and costs a lock per span).
        profiles = any(pid.split("/", 1)[0] == "profiles" for pid in config.service.pipelines)
        self.serving_spans = ServingSpans() if profiles else None
        self.debug_stream = debug_stream or sys.stderr
        self._push_interval = metrics_push_interval
        self.exporters: dict[str, object] = {}
        self.processors: list = []
        self.readers: list[PeriodicMetricReader] = []
        self.extensions: dict[str, object] = {}
        self.receivers: dict[str, object] = {}
        self.span_observers: list = []  # callables given every batch of spans receivers emit
        self._pipeline_components: list[tuple[str, str, list[tuple[str, str, object]]]] = []
        self._started = False
        self._stopped = False
        self._build()

    def defer_exemplars(self) -> DeferredExemplars:
        """RED exemplars wait for a tail sampler's decision (called by its factory, before the
        receivers are built)."""
        if self.deferred_exemplars is None:
            self.deferred_exemplars = DeferredExemplars(self.red_metrics)
        return self.deferred_exemplars

    @property
    def receiver(self):
        """The first receiver (most configurations have one: ``ebpf``)."""
        return next(iter(self.receivers.values()), None)

    # -- construction ----------------------------------------------------------------------

    def _create(self, kind: str, component_id: str, *args, ledger: PipelineLedger = NO_LEDGER):
        type_, _ = parse_component_id(component_id)
        factory = self.components.get(kind, type_)
        if factory is None:  # validation rejects unknown types before we get here
            raise ValueError(f"no {kind[:-1]} factory of type {type_!r}")
        settings = CreateSettings(component_id, self.self_metrics, self, ledger)
        return factory.create(settings, getattr(self.config, kind)[component_id], *args)

    def _exporter(self, exporter_id: str):
        if exporter_id not in self.exporters:
            self.exporters[exporter_id] = self._create("exporters", exporter_id)
        return self.exporters[exporter_id]

    def _build(self) -> None:
        # Extensions first: one may observe spans (observe_spans) before the pipelines are wired.
        for ext_id in self.config.service.extensions:
            self.extensions[ext_id] = self._create("extensions", ext_id)
        heads: dict[str, dict[str, list]] = {}  # receiver id -> signal -> first consumers
        processors: dict[str, list] = {}  # pipeline id -> its processors, in order
        for pipeline_id, p in self.config.service.pipelines.items():
            signal = pipeline_signal(pipeline_id)
            for receiver_id in p.receivers:
                heads.setdefault(receiver_id, {})
            exporters = [self._exporter(e) for e in p.exporters]
            before = len(self.processors)
            if signal == "metrics":
                # Metrics derived from traffic are state read on an interval: pull exporters
                # (Prometheus) read it on scrape; push exporters get a periodic reader.
                push = [e for e in exporters if not getattr(e, "pull", False)]
                if push:
                    head = self._chain(p.processors, FanOut(push))
                    self.readers.append(PeriodicMetricReader(self._pushed_metrics, head, self._push_interval))
            else:
                # Persistent queues' crash ledgers: what enters here and what processors drop.
                ledger = PipelineLedger(tuple(e.crash_ledger for e in exporters if getattr(e, "crash_ledger", None)))
                head = self._chain(p.processors, FanOut(exporters), ledger)
                if ledger:
                    head = LedgerEntrance(ledger, head)
                for receiver_id in p.receivers:
                    heads[receiver_id].setdefault(signal, []).append(head)
            processors[pipeline_id] = list(reversed(self.processors[before:]))  # _chain appends downstream first
        for receiver_id, by_signal in heads.items():
            traces = tuple(by_signal.get("traces", ()))
            if traces and self.span_observers:
                traces = (SpanTap(self.span_observers, traces),)
            consumers = ReceiverConsumers(traces=traces, logs=tuple(by_signal.get("logs", ())),
                                          profiles=tuple(by_signal.get("profiles", ())))
            self.receivers[receiver_id] = self._create("receivers", receiver_id, consumers)
        for pipeline_id, p in self.config.service.pipelines.items():
            chain = [("receivers", r, self.receivers[r]) for r in p.receivers]
            chain += [("processors", pid, inst) for pid, inst in zip(p.processors, processors[pipeline_id])]
            chain += [("exporters", e, self.exporters[e]) for e in p.exporters]
            self._pipeline_components.append((pipeline_id, pipeline_signal(pipeline_id), chain))

    # -- what observers of the running agent read (zpages) ------------------------------------

    def observe_spans(self, observer) -> None:
        """``observer(spans)`` is called with every batch of spans a receiver emits, before the
        first processor of its traces pipelines (on the receiver's thread: it must be quick)."""
        self.span_observers.append(observer)

    def pipeline_components(self) -> list[tuple[str, str, list[tuple[str, str, object]]]]:
        """(pipeline id, signal, [(kind, component id, instance)...]) in the order data flows."""
        return list(self._pipeline_components)

    def collect_metrics(self) -> list:
        """Everything the agent derives from traffic: RED histograms, the service graph, and what
        receivers keep themselves (network health)."""
        out = self.red_metrics.collect() + self.service_graph.collect()
        for r in self.receivers.values():
            collect = getattr(r, "collect_metrics", None)
            if collect is not None:
                out += collect()
        return out

    def _pushed_metrics(self) -> list:
        """What a metric reader pushes: :meth:`collect_metrics`, then the agent's own metrics."""
        metrics = self.collect_metrics()
        if self._self_telemetry:
            own = self.self_metrics.snapshot(self._self_resource)
            names = {m.name for m in own}
            metrics = metrics + own + [m for m in self._last_self_metrics if m.name not in names]
        return metrics

    def _chain(self, processor_ids, tail, ledger: PipelineLedger = NO_LEDGER):
        head = tail
        for proc_id in reversed(processor_ids):
            head = self._create("processors", proc_id, head, ledger=ledger)
            self.processors.append(head)
        return head

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        if self._started:
            return
        self._started = True
        for exporter_id, e in self.exporters.items():
            self._start("exporters", exporter_id, e)
        for p in self.processors:  # _chain appends the most downstream first
            p.start()
        for r in self.readers:
            r.start()
        for ext_id, x in self.extensions.items():
            self._start("extensions", ext_id, x)
        # Receivers that use what others loaded (the profiler: the ebpf receiver's kernel state) last.
        ordered = sorted(self.receivers.items(), key=lambda item: bool(getattr(item[1], "starts_after_receivers", False)))
        for receiver_id, r in ordered:
            self._start("receivers", receiver_id, r)
        for x in self.extensions.values():
            x.ready = True

    def _start(self, kind: str, component_id: str, component) -> None:
        """Start one component; an OSError (a port taken) becomes a :class:`ComponentStartError`
        naming the component and the address it was configured to listen on."""
        try:
            component.start()
        except OSError as err:
            endpoint = getattr(getattr(self.config, kind)[component_id], "endpoint", None)
            raise ComponentStartError(kind, component_id, endpoint, err) from err

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
        for r in self.receivers.values():
            r.shutdown(timeout=min(5.0, budget))
        for r in self.readers:
            r.shutdown(max(0.1, deadline - time.monotonic()))
        for p in reversed(self.processors):  # upstream first, so each flushes into a live next
            p.shutdown(max(0.1, deadline - time.monotonic()))
        for e in self.exporters.values():
            e.shutdown(max(0.1, deadline - time.monotonic()))
        for x in self.extensions.values():
            x.shutdown(1.0)
