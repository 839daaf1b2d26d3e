"""The tail-sampling engine and its policies, driven with spans and log records as the
assembler hands them over, on an injected clock."""

from __future__ import annotations

import os

from receiver.config import load_config_text
from receiver.model.telemetry import LogRecord, Resource, Span, SpanKind, StatusCode
from receiver.model.footprint import span_bytes
from receiver.processors.tail_sampling import TailSampler
from receiver.processors.tail_sampling_policies import trace_id_ratio
from receiver.telemetry.exemplars import DeferredExemplars
from receiver.telemetry.red_metrics import RedMetrics
from receiver.telemetry.sampling import Sampler

R = Resource.from_dict({"service.name": "shop"})
MS = 1_000_000
S = 1_000_000_000


def config(policies: str, extra: str = ""):
    text = ("receivers: {ebpf: {}}\nprocessors:\n  tail_sampling:\n" + extra + "    policies:\n" + policies +
            "exporters: {debug: }\nservice: {pipelines: {traces: {receivers: [ebpf], processors: [tail_sampling], "
            "exporters: [debug]}}}\n")
    return load_config_text(text).processors["tail_sampling"]


ERRORS_SLOW_5PCT = """\
      - {name: errors, type: status_code, status_code: {status_codes: [ERROR]}}
      - {name: slow, type: latency, latency: {threshold_ms: 200}}
      - {name: five-percent, type: probabilistic, probabilistic: {sampling_percentage: 5}}
"""


class Clock:
    def __init__(self) -> None:
        self.now = 10 * S

    def __call__(self) -> int:
        return self.now


class Sink:
    def __init__(self) -> None:
        self.items: list = []

    def __call__(self, items: list) -> None:
        self.items.extend(items)


def tid(n: int) -> bytes:
    # High ratio bits: never under 5 % (low 8 bytes all ones) unless chosen.
    return n.to_bytes(8, "big") + b"\xff" * 8


def span(trace: bytes, ms: int = 10, status=StatusCode.UNSET, kind=SpanKind.SERVER, flags: int = 1,
         **attrs) -> Span:
    return Span(trace, os.urandom(8), "GET /x", kind, 0, ms * MS, R, attributes=dict(attrs), status_code=status,
                flags=flags)


def engine(policies: str = ERRORS_SLOW_5PCT, extra: str = "", **kw):
    clock = Clock()
    return TailSampler(config(policies, extra), clock_ns=clock, **kw), clock


def test_each_trace_is_decided_once_after_decision_wait_and_kept_whole_with_its_logs():
    ts, clock = engine(extra="    decision_wait: 1s\n")
    spans_out, logs_out = Sink(), Sink()
    err, ok, slow = tid(1), tid(2), tid(3)
    ts.offer_spans([span(err, status=StatusCode.ERROR), span(err, kind=SpanKind.CLIENT), span(ok),
                    span(slow, ms=250)], spans_out)
    ts.offer_logs([LogRecord(1, "boom", R, trace_id=err), LogRecord(1, "fine", R, trace_id=ok),
                   LogRecord(1, "no trace", R)], logs_out)
    assert spans_out.items == [] and [r.body for r in logs_out.items] == ["no trace"]  # nothing decided yet
    clock.now += S // 2
    ts.tick()
    assert spans_out.items == []
    clock.now += S
    ts.tick()
    assert sorted(s.trace_id for s in spans_out.items) == [err, err, slow]
    assert sorted(r.body for r in logs_out.items) == ["boom", "no trace"]
    assert ts.traces == {("errors", "sampled", "decision_wait"): 1, ("slow", "sampled", "decision_wait"): 1,
                         ("", "not_sampled", "decision_wait"): 1}
    assert ts.dropped == {"traces": 1, "logs": 1}
    assert ts.evaluations[("errors", True)] == 1 and ts.evaluations[("errors", False)] == 2
    assert ts.held() == (0, 0)


def test_late_items_follow_the_decision():
    ts, clock = engine()
    out, logs = Sink(), Sink()
    ts.offer_spans([span(tid(1), status=StatusCode.ERROR), span(tid(2))], out)
    clock.now += 3 * S
    ts.tick()
    assert len(out.items) == 1
    ts.offer_spans([span(tid(1), kind=SpanKind.CLIENT), span(tid(2), kind=SpanKind.CLIENT)], out)
    ts.offer_logs([LogRecord(1, "late", R, trace_id=tid(1)), LogRecord(1, "late too", R, trace_id=tid(2))], logs)
    assert len(out.items) == 2 and [r.body for r in logs.items] == ["late"]
    assert ts.late == {("traces", "sampled"): 1, ("traces", "not_sampled"): 1, ("logs", "sampled"): 1,
                       ("logs", "not_sampled"): 1}
    assert ts.dropped == {"traces": 2, "logs": 1}


def test_when_num_traces_is_reached_the_oldest_trace_is_decided_early():
    ts, clock = engine(extra="    num_traces: 3\n")
    out = Sink()
    ts.offer_spans([span(tid(1), status=StatusCode.ERROR)], out)
    for i in range(2, 6):
        clock.now += MS
        ts.offer_spans([span(tid(i))], out)
    assert [s.trace_id for s in out.items] == [tid(1)]  # decided early: an error, kept
    assert ts.traces[("errors", "sampled", "num_traces")] == 1
    assert ts.traces[("", "not_sampled", "num_traces")] == 1
    assert ts.held()[0] == 3


def test_the_byte_cap_decides_the_oldest_early():
    one = span_bytes(span(tid(0), path="/p" * 2000))
    ts, clock = engine(extra=f"    max_held_bytes: {3 * one + one // 2}\n")
    out = Sink()
    for i in range(1, 6):
        ts.offer_spans([span(tid(i), ms=300, path="/p" * 2000)], out)
    assert ts.traces[("slow", "sampled", "max_held_bytes")] == 2
    assert ts.held()[1] <= 3 * one + one // 2 and len(out.items) == 2


def test_a_caller_sampled_context_keeps_the_trace_when_configured():
    remote = 0x301  # sampled by the caller, parent remote (set by the linker on a traceparent)
    for keep, expected in ((True, 1), (False, 0)):
        ts, clock = engine(extra=f"    keep_if_caller_sampled: {str(keep).lower()}\n")
        out = Sink()
        ts.offer_spans([span(tid(1), flags=remote), span(tid(2), flags=1)], out)
        ts.flush()
        assert len(out.items) == expected
        if keep:
            assert ts.traces[("keep_if_caller_sampled", "sampled", "shutdown")] == 1


def test_probabilistic_is_the_sdk_trace_id_ratio_rule_and_holds_its_rate():
    ts, _ = engine("      - {name: p, type: probabilistic, probabilistic: {sampling_percentage: 5}}\n")
    out = Sink()
    ids = [os.urandom(16) for _ in range(4000)]
    ts.offer_spans([span(t) for t in ids], out)
    ts.flush()
    head = Sampler("traceidratio", 0.05)
    kept = {s.trace_id for s in out.items}
    assert kept == {t for t in ids if head.root(t) & 1} == {t for t in ids if trace_id_ratio(t, 0.05)}
    assert 130 <= len(kept) <= 270  # 4000 × 5 % = 200, ± 5 σ


def test_attribute_span_count_and_composite_policies():
    policies = """\
      - {name: vip, type: string_attribute, string_attribute: {key: user.tier, values: [gold, plat.*],
         enabled_regex_matching: true}}
      - {name: big, type: numeric_attribute, numeric_attribute: {key: http.response.body.size, min_value: 1000}}
      - {name: flagged, type: boolean_attribute, boolean_attribute: {key: debug, value: true}}
      - {name: fan-out, type: span_count, span_count: {min_spans: 3}}
      - {name: both, type: and, and: {and_sub_policy: [
          {name: b1, type: string_attribute, string_attribute: {key: region, values: [eu]}},
          {name: b2, type: latency, latency: {threshold_ms: 50}}]}}
"""
    ts, _ = engine(policies)
    out = Sink()
    ts.offer_spans([span(tid(1), **{"user.tier": "platinum"}), span(tid(2), **{"user.tier": "bronze"}),
                    span(tid(3), **{"http.response.body.size": 4096}), span(tid(4), debug=True),
                    span(tid(5)), span(tid(5)), span(tid(5)), span(tid(6), ms=60, region="eu"),
                    span(tid(7), ms=10, region="eu")], out)
    ts.flush()
    assert sorted({s.trace_id for s in out.items}) == [tid(1), tid(3), tid(4), tid(5), tid(6)]


def test_rate_limiting_and_composite_share_the_span_rate():
    ts, clock = engine("      - {name: r, type: rate_limiting, rate_limiting: {spans_per_second: 3}}\n")
    out = Sink()
    ts.offer_spans([span(tid(i)) for i in range(10)], out)
    ts.flush()
    assert len(out.items) == 3
    comp = """\
      - {name: c, type: composite, composite: {max_total_spans_per_second: 10, policy_order: [errs, rest],
         composite_sub_policy: [{name: errs, type: status_code, status_code: {status_codes: [ERROR]}},
                                {name: rest, type: always_sample}],
         rate_allocation: [{policy: errs, percent: 50}, {policy: rest, percent: 20}]}}
"""
    ts, clock = engine(comp)
    out = Sink()
    ts.offer_spans([span(tid(i), status=StatusCode.ERROR) for i in range(8)] +
                   [span(tid(100 + i)) for i in range(8)], out)
    ts.flush()
    errors = [s for s in out.items if s.status_code == StatusCode.ERROR]
    assert len(errors) == 5 + 2 and len(out.items) == 7  # 5 on errs' share, then 2 on rest's


def test_exemplars_point_only_at_kept_traces():
    red = RedMetrics()
    ex = DeferredExemplars(red)
    ts, _ = engine(on_decision=ex.decided)
    for t, value in ((tid(1), 0.3), (tid(2), 0.004)):
        red.record("http.server.request.duration", R, (), value, 1)
        ex.offer(t, "http.server.request.duration", R, (), value, 1, b"\x01" * 8)
    assert all(not p.exemplars for m in red.collect() for p in m.points)  # undecided: none yet
    ts.offer_spans([span(tid(1), ms=300), span(tid(2), ms=4)], Sink())
    ts.flush()
    [m] = red.collect()
    [point] = m.points
    assert point.count == 2  # both counted (100 %), one exemplar: the kept, slow trace
    assert [e.trace_id for e in point.exemplars] == [tid(1)]
    assert ex.attached == 1 and ex.discarded == 1
