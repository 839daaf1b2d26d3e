"""Head sampling: the OTel SDK's decisions, one per trace, and what it does to spans and metrics."""

import os

import pytest

from receiver.telemetry.assemble import SpanWork, TelemetryAssembler
from receiver.telemetry.clock import MonotonicToWall
from receiver.telemetry.linking import TraceLinker
from receiver.model.telemetry import Resource, Span, SpanKind
from receiver.telemetry.red_metrics import RedMetrics
from receiver.discovery.resources import ProcessResources
from receiver.telemetry.sampling import SAMPLED, SAMPLER_NAMES, Sampler
from receiver.telemetry.trace_context import IdGenerator, TraceParent

R = Resource.from_dict({"service.name": "svc"})
PEER = ("10.0.0.1", 40000, "10.0.0.2", 8080)


def tid(low: int) -> bytes:
    return b"\xab" * 8 + low.to_bytes(8, "big")


def test_traceidratio_uses_the_low_eight_bytes_like_the_sdks():
    s = Sampler("traceidratio", 0.25)
    bound = round(0.25 * 2**64)
    assert s.root(tid(bound - 1)) == SAMPLED
    assert s.root(tid(bound)) == 0
    # The high 8 bytes do not matter.
    assert Sampler("traceidratio", 0.25).root(b"\xff" * 8 + (0).to_bytes(8, "big")) == SAMPLED


def test_ratio_keeps_that_fraction_of_random_trace_ids():
    s = Sampler("traceidratio", 0.1)
    kept = sum(bool(s.root(os.urandom(16))) for _ in range(20000))
    assert 1700 < kept < 2300, kept


@pytest.mark.parametrize("name,incoming,expected", [
    ("parentbased_always_on", 0x00, 0),  # the caller decided not to sample
    ("parentbased_always_on", 0x01, SAMPLED),
    ("parentbased_always_off", 0x01, SAMPLED),  # parent-based: the caller's decision wins
    ("parentbased_traceidratio", 0x01, SAMPLED),
    ("always_on", 0x00, SAMPLED),  # not parent-based: own decision
    ("always_off", 0x01, 0),
])
def test_remote_context(name, incoming, expected):
    s = Sampler(name, 0.0)
    assert s.remote(tid(5), incoming) & SAMPLED == expected


def test_remote_keeps_other_flag_bits():
    assert Sampler("always_off").remote(tid(1), 0x03) == 0x02


def test_root_decisions():
    assert Sampler("parentbased_always_on").root(tid(2**63)) == SAMPLED
    assert Sampler("parentbased_always_off").root(tid(0)) == 0
    assert Sampler("always_off").root(tid(0)) == 0
    assert Sampler("parentbased_traceidratio", 1.0).root(tid(2**64 - 1)) == SAMPLED
    assert Sampler("traceidratio", 0.0).root(tid(0)) == 0


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="unknown sampler"):
        Sampler("sometimes")
    with pytest.raises(ValueError, match="0..1"):
        Sampler("traceidratio", 1.5)
    assert "parentbased_traceidratio" in SAMPLER_NAMES


def span(kind: SpanKind) -> Span:
    return Span(b"", IdGenerator(seed=None).span_id(), "op", kind, 0, 1, R)


def test_same_host_peers_share_one_decision():
    """Client and server of one same-host call are one trace: both kept or both dropped."""
    for seed in range(40):
        lk = TraceLinker(IdGenerator(seed=seed), sampler=Sampler("traceidratio", 0.5))
        srv, cli = span(SpanKind.SERVER), span(SpanKind.CLIENT)
        lk.server_span(srv, 2, PEER, 0, None, 0)
        lk.client_span(cli, 10, 10, PEER, 0, None, 0)
        lk.take_ready(0)
        assert srv.trace_id == cli.trace_id
        assert srv.flags & SAMPLED == cli.flags & SAMPLED == Sampler("traceidratio", 0.5).root(srv.trace_id)


def test_incoming_unsampled_context_is_followed():
    lk = TraceLinker(IdGenerator(seed=1))  # default: parentbased_always_on
    s = span(SpanKind.SERVER)
    lk.server_span(s, 1, None, 0, TraceParent(tid(9), b"\x01" * 8, 0, ""), 0)
    [out] = lk.take_ready(0)
    assert out is s and s.flags & SAMPLED == 0


def _assembler(sampler: Sampler) -> tuple[TelemetryAssembler, RedMetrics]:
    red = RedMetrics()
    asm = TelemetryAssembler(ProcessResources(), MonotonicToWall(), red, ids=IdGenerator(seed=3), sampler=sampler)
    return asm, red


def _release(asm: TelemetryAssembler, n: int) -> list[Span]:
    for i in range(n):
        s = span(SpanKind.SERVER)
        work = SpanWork(s, ("http.server.request.duration", R, (("http.request.method", "GET"),), 0.001 * (i + 1), 5))
        asm.linker.server_span(work, conn_id=i, peer_key=None, call_index=0, traceparent=None, now_ns=0)
    spans, _ = asm.take(0)
    return spans


def test_sampled_out_spans_are_not_exported_but_counted_in_red_metrics():
    asm, red = _assembler(Sampler("traceidratio", 0.2))
    spans = _release(asm, 1000)
    assert 120 < len(spans) < 280, len(spans)
    assert asm.sampled_out == 1000 - len(spans)
    [metric] = red.collect()
    [point] = metric.points
    assert point.count == 1000  # every request, sampled or not
    exported = {s.trace_id for s in spans}
    assert point.exemplars and all(e.trace_id in exported for e in point.exemplars)


def test_always_on_exports_everything():
    asm, red = _assembler(Sampler())
    assert len(_release(asm, 50)) == 50 and asm.sampled_out == 0
