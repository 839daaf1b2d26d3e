"""The drain's bookkeeping, with a stand-in for the kernel maps (the kernel side is proven by
tests/e2e/test_profiling.py): span labels wait for their span, bounded in time; stacks are
deleted once no waiting key needs them; frames are kernel first, then user."""

from __future__ import annotations

from receiver.bpf.abi import load_abi
from receiver.model.profiles import Frame
from receiver.model.serving_spans import ServingSpans
from receiver.profiling.drain import ProfileDrain


class _Maps:
    def __init__(self, abi) -> None:
        self.abi = abi
        self.counts: list[tuple[bytes, int]] = []
        self.stacks = {1: (0x10, 0x20), 2: (0xFFFFFFFF81000000,)}
        self.deleted: list[int] = []
        self._key, _ = abi.struct_format("erx_prof_key")

    def add(self, pid, tid, user, kernel, conn=0, start=0, n=1):
        self.counts.append((self._key.pack(pid, tid, user, kernel, 0, conn, start), n))

    def drain(self):
        out, self.counts = self.counts, []
        return out

    def stack(self, sid):
        return self.stacks.get(sid, ())

    def delete_stacks(self, ids):
        self.deleted += list(ids)

    def python_stack(self, h):
        return (), False

    def delete_python_stacks(self, hashes):
        pass


class _Symbols:
    def begin_drain(self):
        pass

    def kernel_frames(self, ips):
        return [Frame(f"k{ip:x}", kind="kernel") for ip in ips]

    def user_frames(self, pid, ips, python=None, code=()):
        return [Frame(f"u{ip:x}") for ip in ips]


class _Span:
    def __init__(self, trace_id: bytes, span_id: bytes) -> None:
        self.trace_id, self.span_id = trace_id, span_id


def test_samples_wait_for_their_span_then_carry_its_ids():
    maps, spans, now = _Maps(load_abi()), ServingSpans(max_entries=4), [0]
    drain = ProfileDrain(maps, _Symbols(), 19, span_of=spans.span_of, clock=lambda: now[0], span_wait_ns=10)
    maps.add(7, 8, 1, 2, conn=5, start=99, n=3)
    maps.add(7, 9, 1, -14, n=2)
    first = drain.drain(0, 1)
    assert [(s.tid, s.count) for s in first.samples] == [(9, 2)]  # the serving one waits
    assert first.samples[0].frames == (Frame("u10"), Frame("u20"))
    assert 1 not in maps.deleted and 2 not in maps.deleted  # still needed by the waiting key
    span = _Span(b"", bytes.fromhex("00f067aa0ba902b7"))
    spans.record(5, 99, span)
    now[0] = 5
    assert drain.drain(1, 2).samples == ()  # span known, its trace not yet
    span.trace_id = bytes.fromhex("4bf92f3577b34da6a3ce929d0e0e4736")
    second = drain.drain(2, 3)
    (s,) = second.samples
    assert s.count == 3 and s.labels["span_id"] == "00f067aa0ba902b7"
    assert s.labels["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert [f.kind for f in s.frames] == ["kernel", "native", "native"]
    assert drain.stats.spans_labelled == 3 and {1, 2} <= set(maps.deleted)


def test_a_span_never_known_goes_out_unlabelled_after_the_wait_or_at_the_last_drain():
    maps, now = _Maps(load_abi()), [0]
    drain = ProfileDrain(maps, _Symbols(), 19, span_of=lambda c, s: None, clock=lambda: now[0], span_wait_ns=10)
    maps.add(7, 8, 1, -14, conn=5, start=99, n=4)
    assert drain.drain(0, 1).samples == ()
    now[0] = 11
    (s,) = drain.drain(1, 2).samples
    assert "span_id" not in s.labels and drain.stats.spans_unresolved == 4
    maps.add(7, 8, 1, -14, conn=6, start=1, n=1)
    (s,) = drain.drain(2, 3, final=True).samples
    assert s.count == 1 and drain.stats.spans_unresolved == 5


def test_serving_spans_are_bounded():
    spans = ServingSpans(max_entries=2)
    for i in range(3):
        spans.record(i, i, _Span(b"\x01" * 16, bytes([i]) * 8))
    assert spans.span_of(0, 0) is None and spans.span_of(2, 2) == ("01" * 16, "02" * 8)
    assert spans.dropped == 1
