"""Real NATS connections (tests/fixtures/nats, see record_nats.py) through the NATS plug-in's
session: whole, byte by byte, with trailing data, cut short; both sides."""

from __future__ import annotations

from typing import Any

import pytest
from ebpf_receiver_nats import NatsError, NatsSession

from receiver.protocols.base import Role, Transaction
from tests.support.protocol_fixtures import PERSPECTIVES, Fixture, byte_by_byte, cut, feed, fixture_names, load_fixture, run, whole

NAMES = fixture_names("nats")
ROLES = [Role.CLIENT, Role.SERVER]


def summary(t: Transaction) -> dict[str, Any]:
    q, r = t.request, t.response
    if isinstance(q, NatsError):
        return {"op": "-ERR", "subject": "", "has_reply_to": False, "payload_size": 0, "traceparent": None,
                "reply_op": None, "reply_status": None}
    subject = "_INBOX" if q.subject.startswith("_INBOX.") else q.subject
    return {"op": q.op, "subject": subject, "has_reply_to": q.reply_to is not None, "payload_size": q.payload_size,
            "traceparent": q.traceparent, "reply_op": r.op if r else None, "reply_status": r.status if r else None}


@pytest.fixture(scope="module", params=NAMES)
def fixture(request: pytest.FixtureRequest) -> Fixture:
    return load_fixture("nats", request.param)


def test_fixtures_exist() -> None:
    assert NAMES == ["natspy_errors", "natspy_pubsub", "natspy_requester", "natspy_responder"]


@pytest.mark.parametrize("role", ROLES, ids=["client", "server"])
def test_whole(fixture: Fixture, role: Role) -> None:
    session, out = run(fixture, role, NatsSession)
    assert [summary(t) for t in out] == fixture.transactions
    assert session.role is role and all(t.role is role for t in out)
    assert session.parse_errors == 0 and session.capture_gaps == 0
    assert session.server_errors == fixture.raw.get("server_errors", 0)
    assert session.pings >= 1 and session.pongs >= 1  # nats-py flushes with PING/PONG
    assert session.pending_requests == 0 and session.buffered_bytes == 0
    text = repr([(t.request, t.response) for t in out])
    for secret in fixture.raw["secrets"]:
        assert secret not in text


@pytest.mark.parametrize("role", ROLES, ids=["client", "server"])
def test_byte_by_byte(fixture: Fixture, role: Role) -> None:
    _, expected = run(fixture, role, NatsSession)
    session, out = run(fixture, role, NatsSession, byte_by_byte)
    assert [(t.request, t.response) for t in out] == [(t.request, t.response) for t in expected]
    assert session.parse_errors == 0


@pytest.mark.parametrize("role", ROLES, ids=["client", "server"])
def test_trailing_data(fixture: Fixture, role: Role) -> None:
    dirs = PERSPECTIVES[role]
    expected = feed(NatsSession(), whole(fixture, role))
    session = NatsSession()
    out = feed(session, whole(fixture, role))
    out += session.feed(dirs["c2s"], b"PUB tail 100\r\npartial", 10**6)
    out += session.feed(dirs["s2c"], b"MSG tail 1 5\r\nhe", 10**6 + 1)
    assert [(t.request, t.response) for t in out] == [(t.request, t.response) for t in expected]
    assert session.buffered_bytes <= 2 * session.max_buffer and session.parse_errors == 0


@pytest.mark.parametrize("role", ROLES, ids=["client", "server"])
def test_capture_cut_at_4096_bytes(fixture: Fixture, role: Role) -> None:
    _, expected = run(fixture, role, NatsSession)
    session, out = run(fixture, role, NatsSession, cut)
    assert [summary(t) for t in out] == [summary(t) for t in expected]
    assert session.parse_errors == 0 and session.capture_gaps == 0
    assert [(t.request_size, t.response_size) for t in out] == [(t.request_size, t.response_size) for t in expected]


@pytest.mark.parametrize("role", ROLES, ids=["client", "server"])
def test_capture_cut_at_300_bytes(fixture: Fixture, role: Role) -> None:
    """Cut inside the INFO line (and inside pipelined operations): framing is lost and found
    again on the next write; what is reported is a subsequence of the whole, never garbage."""
    _, expected = run(fixture, role, NatsSession)
    session, out = run(fixture, role, NatsSession, lambda f, r: cut(f, r, 300))
    def same(got: dict, want: dict) -> bool:  # a header block cut short loses the trace context
        return got == want or (got["traceparent"] is None and got == {**want, "traceparent": None})

    want = iter([summary(t) for t in expected])
    for got in (summary(t) for t in out):
        assert any(same(got, w) for w in want), got
    assert session.parse_errors == 0
