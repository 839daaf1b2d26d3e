"""Spans of protocols that map themselves (:mod:`receiver.protocols.api`: ``describe`` returns a
:class:`~receiver.protocols.api.SpanDescription`): Memcached, AMQP, DNS and plug-ins such as NATS.

:class:`DescribedProtocols` turns a tracked transaction into a span and its metric observation,
and says how the span is placed in a trace:

* ``server`` spans are placed like HTTP server spans (the serving context of their connection);
* ``consumer`` spans that carry the producer's W3C context (AMQP headers, NATS ``HMSG``) continue
  that trace as its children;
* everything else (``client``, ``producer``, ``internal``, and consumers without context) is placed
  like a client span: under the request the calling thread serves, else a root.  A ``traceparent``
  a client or producer put in its own message means its SDK reports the call: the linker skips it
  like an SDK-made HTTP client span.

Descriptions are fenced (:func:`~receiver.protocols.api.guarded_describe`): a plug-in whose
``describe`` raises or returns something invalid gives no span, counted per protocol.
"""

from __future__ import annotations

from receiver.model.telemetry import Span, SpanKind, StatusCode
from receiver.model.transaction import TrackedTransaction
from receiver.protocols.api import ConnectionFacts, PluginFailures, ProtocolPlugin, SpanDescription, guarded_describe
from receiver.telemetry.trace_context import TraceParent, parse_traceparent

KINDS = {"server": SpanKind.SERVER, "client": SpanKind.CLIENT, "producer": SpanKind.PRODUCER,
         "consumer": SpanKind.CONSUMER, "internal": SpanKind.INTERNAL}


class DescribedProtocols:
    """The ``describe`` mappings of the protocols a registry knows, by protocol name."""

    def __init__(self, plugins: dict[str, ProtocolPlugin], transports: dict[int, str],
                 failures: PluginFailures) -> None:
        self._plugins = plugins
        self._transports = transports
        self._failures = failures
        self.no_span = 0  # transactions whose description was None (by design, or a failed plug-in)

    def __contains__(self, protocol: str) -> bool:
        return protocol in self._plugins

    def facts(self, tt: TrackedTransaction) -> ConnectionFacts:
        t = tt.tuple
        nat = tt.nat_peer
        return ConnectionFacts(
            tt.transaction.role, self._transports.get(t.transport, "tcp"), t.local_addr, t.local_port,
            t.remote_addr, t.remote_port, nat[0] if nat else None, nat[1] if nat else None,
        )

    def describe(self, tt: TrackedTransaction) -> SpanDescription | None:
        plugin = self._plugins[tt.transaction.protocol]
        desc = guarded_describe(plugin, tt.transaction, self.facts(tt), self._failures)
        if desc is None:
            self.no_span += 1
        return desc

    def span(self, desc: SpanDescription, tt: TrackedTransaction, resource, offset_ns: int,
             span_id: bytes) -> tuple[Span, tuple | None, TraceParent | None]:
        """The span, its metric observation (``(name, resource, attrs, seconds or None for a
        count, end)``), and the trace context its message carried."""
        tx = tt.transaction
        start = tx.start_ns + offset_ns
        end = max(tx.end_ns, tx.start_ns) + offset_ns
        span = Span(b"", span_id, desc.name, KINDS[desc.kind], start, end, resource, b"", "", dict(desc.attributes),
                    StatusCode.ERROR if desc.error else StatusCode.UNSET, desc.status_message, 1)
        metric = None
        if desc.metric_name:
            value = (end - start) / 1e9 if desc.metric_kind == "duration" else None
            metric = (desc.metric_name, resource, tuple(desc.metric_attributes), value, end)
        tp = parse_traceparent(desc.traceparent, desc.tracestate) if desc.traceparent else None
        return span, metric, tp


def described_protocols(registry, transports: dict[int, str]) -> DescribedProtocols:
    """The self-mapping protocols of a :class:`~receiver.protocols.registry.ProtocolRegistry`."""
    plugins = {name: spec.plugin for name in registry.names if (spec := registry.spec(name)).plugin is not None}
    return DescribedProtocols(plugins, transports, registry.failures)

