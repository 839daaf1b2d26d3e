"""The adversarial corpus (tests/support/adversarial.py) and the fuzzer's saved crashes
(tests/fixtures/<proto>/fuzz/) replayed through the sessions: no exception escapes, buffers
stay within their bound, requests waiting for answers stay within ``max_pending`` (the excess
counted), and the memory a session holds afterwards is bounded in bytes."""

from __future__ import annotations

import tracemalloc

import pytest

from receiver.protocols.base import Direction
from tests.support.adversarial import CASES, PIPELINED
from tests.support.hostile_input import SESSIONS, buffer_bound, feed_script

MAX_HELD = 4 * 1024 * 1024  # bytes a session may still hold after any of these inputs


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.proto}-{c.name}")
def test_adversarial_input_is_survived_with_bounded_state(case):
    feeds = feed_script(case.script())
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        session = SESSIONS[case.proto]()
        bound = buffer_bound(session)
        transactions = 0
        for ts, feed in enumerate(feeds):
            transactions += len(session.feed(feed.direction, feed.data, ts, feed.total_len))
            assert session.internal_errors == 0, "an exception escaped the parser"
            assert getattr(session, "buffered_bytes", 0) <= bound
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert held <= MAX_HELD, f"{held} bytes held by the session"
    pending = getattr(session, "pending_requests", 0)
    assert pending <= getattr(session, "max_pending", pending)
    if case.name.startswith("pipelined") and case.proto != "nats":
        # Unanswered requests are either still waiting (bounded) or dropped and counted.
        dropped = getattr(session, "dropped_requests", 0)
        assert pending + dropped + transactions >= PIPELINED - 1, (pending, dropped, transactions)
    session.close(len(feeds))
    assert session.internal_errors == 0


def test_the_corpus_covers_what_issue_20_names():
    names = {f"{c.proto}-{c.name}" for c in CASES}
    assert {"http2-hpack-bomb", "redis-nested-100000", "http1-pipelined-10000", "postgresql-nul-in-sql",
            "mysql-nul-in-sql", "http1-invalid-utf8"} <= names
    assert sum("huge" in n for n in names) >= 6
    assert {c.proto for c in CASES} >= set(SESSIONS) - {"dns_udp"}
    assert all(Direction.INGRESS in {d for d, _ in c.build()} for c in CASES)
