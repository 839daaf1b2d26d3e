"""Real RabbitMQ connections (tests/fixtures/amqp, see record_amqp.py) through AmqpSession: whole,
byte by byte, with trailing data and cut as the kernel capture cuts large writes; both sides."""

from __future__ import annotations

from typing import Any

import pytest

from receiver.protocols.amqp import AmqpSession
from receiver.protocols.base import Role, Transaction
from tests.support.protocol_fixtures import PERSPECTIVES, Fixture, byte_by_byte, cut, feed, fixture_names, load_fixture, run, whole

NAMES = fixture_names("amqp")
ROLES = [Role.CLIENT, Role.SERVER]


def summary(t: Transaction) -> dict[str, Any]:
    q, r = t.request, t.response
    return {"name": q.name, "channel": q.channel, "exchange": q.exchange if q.name != "queue.declare" else None,
            "routing_key": q.routing_key, "body_size": q.body_size, "traceparent": q.traceparent,
            "reply": r.name if r else None, "reply_code": r.reply_code if r else None}


@pytest.fixture(scope="module", params=NAMES)
def fixture(request: pytest.FixtureRequest) -> Fixture:
    return load_fixture("amqp", request.param)


def test_fixtures_exist() -> None:
    assert NAMES == ["pika_consumer", "pika_publisher"]


@pytest.mark.parametrize("role", ROLES, ids=["client", "server"])
def test_whole(fixture: Fixture, role: Role) -> None:
    session, out = run(fixture, role, AmqpSession)
    assert [summary(t) for t in out] == fixture.transactions
    assert session.role is role and all(t.role is role for t in out)
    assert session.parse_errors == 0 and session.capture_gaps == 0 and session.unmatched_replies == 0
    assert (session.acks, session.confirms) == (fixture.raw["acks"], fixture.raw["confirms"])
    assert session.pending_requests == 0 and session.buffered_bytes == 0
    text = repr([(t.request, t.response) for t in out])
    for secret in fixture.raw["secrets"]:
        assert secret not in text


@pytest.mark.parametrize("role", ROLES, ids=["client", "server"])
def test_byte_by_byte(fixture: Fixture, role: Role) -> None:
    _, expected = run(fixture, role, AmqpSession)
    session, out = run(fixture, role, AmqpSession, byte_by_byte)
    assert [(t.request, t.response) for t in out] == [(t.request, t.response) for t in expected]
    assert session.parse_errors == 0


@pytest.mark.parametrize("role", ROLES, ids=["client", "server"])
def test_trailing_data(fixture: Fixture, role: Role) -> None:
    dirs = PERSPECTIVES[role]
    expected = feed(AmqpSession(), whole(fixture, role))
    session = AmqpSession()
    out = feed(session, whole(fixture, role))
    out += session.feed(dirs["c2s"], b"\x01\x00\x01\x00\x00\x00\x30\x00\x3c\x00\x28", 10**6)  # a publish cut short
    out += session.feed(dirs["s2c"], b"\x03\x00\x01\x00\x01\x00\x00abc", 10**6 + 1)
    assert [(t.request, t.response) for t in out] == [(t.request, t.response) for t in expected]
    assert session.buffered_bytes <= 2 * session.max_buffer and session.parse_errors == 0


@pytest.mark.parametrize("role", ROLES, ids=["client", "server"])
def test_capture_cut_at_4096_bytes(fixture: Fixture, role: Role) -> None:
    """Body frames are skipped by their length across the missing bytes.  Where the missing
    bytes run past a frame's end (inside the 300 KiB publish) framing is lost: that message is
    finished truncated — its size known from its header — and the stream finds the next frame
    again.  Every transaction keeps its summary."""
    _, expected = run(fixture, role, AmqpSession)
    session, out = run(fixture, role, AmqpSession, cut)
    assert [summary(t) for t in out] == [summary(t) for t in expected]
    for got, want in zip(out, expected):
        if not got.request.truncated:
            assert (got.request_size, got.response_size, got.start_ns, got.end_ns) == (
                want.request_size, want.response_size, want.start_ns, want.end_ns)
    assert session.parse_errors == 0
    truncated = [t.request.name for t in out if t.request.truncated]
    assert session.capture_gaps == len(truncated) and truncated in ([], ["basic.publish"])


def test_the_big_body_is_cut() -> None:
    f = load_fixture("amqp", "pika_publisher")
    assert sum(max(0, len(d) - 4096) for s, d in f.chunks if s == "c2s") > 200_000
