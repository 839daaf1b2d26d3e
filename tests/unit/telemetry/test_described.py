"""Spans of self-describing protocols (receiver/telemetry/described.py and
``TelemetryAssembler._add_described``), through a test protocol whose ``describe`` says what
each transaction is: kinds, the message-carried trace context, the head sampler, and the two
metric kinds (a duration histogram, a counter)."""

from __future__ import annotations

from dataclasses import dataclass

from receiver.discovery.resources import ProcessResources
from receiver.model.endpoints import Tuple
from receiver.model.telemetry import SpanKind
from receiver.model.transaction import TrackedTransaction
from receiver.protocols.api import Detection, ProtocolPlugin, SpanDescription
from receiver.protocols.base import Role, Transaction
from receiver.protocols.registry import ProtocolRegistry, ProtocolSpec
from receiver.telemetry.assemble import TelemetryAssembler
from receiver.telemetry.clock import MonotonicToWall
from receiver.telemetry.linking import IdGenerator
from receiver.telemetry.red_metrics import RedMetrics
from receiver.telemetry.sampling import Sampler

SAMPLED_TP = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
T = Tuple(2, 1, "127.0.0.1", 40000, "127.0.0.1", 5672)


@dataclass(frozen=True)
class Message:
    """What the test protocol's transactions carry: the span kind and the context, if any."""

    kind: str
    traceparent: str | None = None


def describe(tx: Transaction, facts) -> SpanDescription:
    m: Message = tx.request
    consumer = m.kind == "consumer"
    return SpanDescription(
        name=f"{m.kind} q", kind=m.kind, attributes={"messaging.system": "test"},
        metric_name="messaging.client.consumed.messages" if consumer else "messaging.client.operation.duration",
        metric_attributes=(("messaging.system", "test"),), metric_kind="count" if consumer else "duration",
        traceparent=m.traceparent,
    )


PLUGIN = ProtocolPlugin("msgtest", lambda data, d: Detection.NO, lambda **kw: None, describe)


def assembler(sampler: Sampler = Sampler()) -> tuple[TelemetryAssembler, RedMetrics]:
    red = RedMetrics()
    asm = TelemetryAssembler(ProcessResources(proc_root="/nonexistent"), MonotonicToWall(), red,
                             ids=IdGenerator(seed=7), sampler=sampler)
    asm.use_protocols(ProtocolRegistry([ProtocolSpec.of_plugin(PLUGIN, guarded=False)]))
    return asm, red


def add(asm: TelemetryAssembler, *messages: Message) -> list:
    for i, m in enumerate(messages):
        tx = Transaction("msgtest", Role.CLIENT, m, None, 1000 * i, 1000 * i + 500, 10, 0)
        asm.add(TrackedTransaction(tx, 42, 42, 7, T, 0, i), now_ns=0)
    spans, _ = asm.flush()
    return spans


def test_a_consumer_continues_the_trace_its_message_carried() -> None:
    asm, red = assembler()
    [span] = add(asm, Message("consumer", SAMPLED_TP))
    assert span.kind == SpanKind.CONSUMER
    assert (span.trace_id.hex(), span.parent_span_id.hex(), span.flags) == (
        "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", 0x301)  # sampled, parent remote
    [counter] = [m for m in red.collect() if m.name == "messaging.client.consumed.messages"]
    assert [p.value for p in counter.points] == [1]


def test_the_head_sampler_decides_on_a_message_carried_context() -> None:
    """A consumer span continuing a sampled context was exported whatever the sampler said."""
    asm, red = assembler(Sampler("always_off"))
    assert add(asm, Message("consumer", SAMPLED_TP), Message("consumer")) == []
    assert asm.sampled_out == 2
    # Counted all the same: the counter is not a sampled signal.
    [counter] = [m for m in red.collect() if m.name == "messaging.client.consumed.messages"]
    assert sum(p.value for p in counter.points) == 2
    asm, _ = assembler(Sampler("parentbased_always_off"))
    [span] = add(asm, Message("consumer", SAMPLED_TP))  # the caller's decision, parent-based
    assert span.flags & 1


def test_a_producer_that_put_its_own_context_in_the_message_is_its_sdks_span() -> None:
    asm, red = assembler()
    spans = add(asm, Message("producer", SAMPLED_TP), Message("producer"))
    assert [(s.kind, s.parent_span_id) for s in spans] == [(SpanKind.PRODUCER, b"")]
    assert asm.linker.sdk_spans_skipped == 1
    [histogram] = [m for m in red.collect() if m.name == "messaging.client.operation.duration"]
    assert [p.count for p in histogram.points] == [1]
