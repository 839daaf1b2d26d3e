"""Components the Collector's way: a factory per type, a config dataclass next to it, and a
lifecycle of idempotent ``start()``/``shutdown()``.

A :class:`Factory` names its kind (``receivers``, ``processors``, ``exporters``, ``extensions``)
and type (the part of a component id before ``/``), the :class:`~receiver.configuration.ConfigSection`
that validates its settings (defaults live there and nowhere else), and how to create an
instance.  ``create`` takes a :class:`CreateSettings` and the validated config, and by kind:

* exporter: ``create(settings, config)`` → an object with ``consume_<signal>`` for the signals
  its config class supports, ``start()`` and ``shutdown(timeout)``;
* processor: ``create(settings, config, next_consumer)`` → the same shape, handing on to
  ``next_consumer``; items it drops are settled on ``settings.ledger``
  (:mod:`receiver.component.ledger`);
* receiver: ``create(settings, config, consumers)`` → ``start()``/``shutdown(timeout)``, feeding
  ``consumers`` (a :class:`ReceiverConsumers`);
* extension: ``create(settings, config)`` → ``start()``/``shutdown(timeout)`` (and ``ready``).

A :class:`ComponentRegistry` holds the factories a run knows: the distribution's built-ins
(:mod:`receiver.distribution`) plus those other installed packages register under the entry-point
group ``ebpf_receiver.components`` (each entry point names a :class:`Factory`), so a third-party
receiver, processor or exporter needs no change to this code base.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from types import MappingProxyType
from typing import Any, Callable, Protocol, TextIO

from receiver.component.ledger import NO_LEDGER
from receiver.configuration.section import ConfigSection

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "ebpf_receiver.components"
KINDS = ("receivers", "processors", "exporters", "extensions")


class Host(Protocol):
    """What the running agent offers its components (the Collector's ``component.Host``)."""

    red_metrics: Any  # receiver.telemetry.red_metrics.RedMetrics: the RED histograms, written by receivers
    service_graph: Any  # receiver.telemetry.service_graph.ServiceGraph
    debug_stream: TextIO  # where the debug exporter prints
    backpressure: Any  # receiver.component.backpressure.Backpressure: refusals downstream, read by receivers
    deferred_exemplars: Any  # receiver.telemetry.exemplars.DeferredExemplars or None: exemplars wait for a tail sampler
    slow_threshold_s: float | None  # set by tail samplers' latency policies: overload sheds slower transactions last

    def defer_exemplars(self) -> Any: ...  # a tail sampler exists: exemplars wait for its decisions
    serving_spans: Any  # receiver.model.serving_spans.ServingSpans: server spans by request, for the profiler
    receivers: Any  # receiver id -> receiver (the profiler finds the ebpf receiver's kernel state there)

    def collect_metrics(self) -> list: ...  # everything derived from traffic, for pull exporters

    # Also offered by the agent, for observers such as the zpages extension (found by duck typing):
    # observe_spans(callback): every batch of spans a receiver emits, before the first processor;
    # pipeline_components(): [(pipeline id, signal, [(kind, id, instance)...])]; receivers: {id: instance}.


@dataclass(frozen=True)
class CreateSettings:
    """Handed to every ``create``: who the component is and what it may use."""

    id: str  # the configured id, "otlp/vendor"
    self_metrics: Any  # receiver.component.self_metrics.SelfMetrics: the agent's own metrics registry
    host: Host
    # Processors: the crash ledgers of their pipeline (receiver.component.ledger.PipelineLedger);
    # a processor that drops items settles them there.
    ledger: Any = NO_LEDGER


@dataclass(frozen=True)
class ReceiverConsumers:
    """The first consumers of each pipeline a receiver is named in."""

    traces: tuple = ()
    logs: tuple = ()
    metrics: tuple = ()
    profiles: tuple = ()


@dataclass(frozen=True)
class Factory:
    kind: str  # one of KINDS
    type: str  # "otlp", "batch", ...
    config_class: type[ConfigSection]
    create: Callable[..., Any]
    description: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"factory {self.type!r}: kind must be one of {', '.join(KINDS)}, not {self.kind!r}")
        if "/" in self.type or not self.type:
            raise ValueError(f"factory type {self.type!r} must be a non-empty name without '/'")


@dataclass
class ComponentRegistry:
    """The factories of one run, by (kind, type)."""

    factories: dict[tuple[str, str], Factory] = field(default_factory=dict)

    @classmethod
    def of(cls, factories: Iterable[Factory]) -> ComponentRegistry:
        registry = cls()
        for f in factories:
            registry.register(f)
        return registry

    def register(self, factory: Factory) -> None:
        key = (factory.kind, factory.type)
        if key in self.factories:
            raise ValueError(f"two factories for {factory.kind[:-1]} type {factory.type!r}")
        self.factories[key] = factory

    def load_entry_points(self, group: str = ENTRY_POINT_GROUP, entry_points=metadata.entry_points) -> list[str]:
        """Register the factories installed packages declare; returns problems, one line each
        (a broken plug-in is reported and skipped, never fatal)."""
        problems = []
        for ep in entry_points(group=group):
            try:
                factory = ep.load()
                if not isinstance(factory, Factory):
                    raise TypeError(f"{ep.value} is a {type(factory).__name__}, not a receiver.component.Factory")
                self.register(factory)
            except Exception as e:  # a plug-in's import error must not stop the agent
                problems.append(f"component plug-in {ep.name!r} ({ep.value}): {e}")
                log.warning("%s", problems[-1])
        return problems

    def get(self, kind: str, type_: str) -> Factory | None:
        return self.factories.get((kind, type_))

    def config_classes(self) -> Mapping[tuple[str, str], type[ConfigSection]]:
        """(kind, type) → config class: what the configuration loader validates against."""
        return MappingProxyType({key: f.config_class for key, f in self.factories.items()})
