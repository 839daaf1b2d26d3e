"""Real DNS exchanges (tests/fixtures/dns, see record_dns.py) through DnsSession: UDP datagrams one
per feed, TCP streams whole, byte by byte, with trailing data and cut short; both sides."""

from __future__ import annotations

from typing import Any

import pytest

from receiver.protocols.base import Role, Transaction
from receiver.protocols.dns import DnsSession
from tests.support.protocol_fixtures import PERSPECTIVES, Fixture, byte_by_byte, cut, feed, fixture_names, load_fixture, run, whole

NAMES = fixture_names("dns")
ROLES = [Role.CLIENT, Role.SERVER]


def summary(t: Transaction) -> dict[str, Any]:
    q, r = t.request, t.response
    return {
        "id": q.id, "name": q.question.name, "type": q.question.type_name,
        "rcode": r.rcode_name if r else None, "answer_count": r.answer_count if r else None,
        "tc": r.truncated_flag if r else None,
    }


def session_for(fixture: Fixture):
    return lambda: DnsSession(transport=fixture.raw["transport"])


@pytest.fixture(scope="module", params=NAMES)
def fixture(request: pytest.FixtureRequest) -> Fixture:
    return load_fixture("dns", request.param)


def test_fixtures_exist() -> None:
    assert len(NAMES) >= 3 and {load_fixture("dns", n).raw["transport"] for n in NAMES} == {"udp", "tcp"}


@pytest.mark.parametrize("role", ROLES, ids=["client", "server"])
def test_whole(fixture: Fixture, role: Role) -> None:
    session, out = run(fixture, role, session_for(fixture))
    by_id = {t.request.id: t for t in out}
    assert len(out) == len(fixture.transactions)
    assert [summary(by_id[e["id"]]) for e in fixture.transactions] == fixture.transactions
    assert all(t.role is role for t in out)
    assert session.parse_errors == 0 and session.capture_gaps == 0 and session.unmatched_responses == 0
    assert session.pending_queries == 0 and session.buffered_bytes == 0
    framing = 2 if fixture.raw["transport"] == "tcp" else 0
    assert sum(t.request_size + framing for t in out) == fixture.total("c2s")
    assert sum(t.response_size + framing for t in out) == fixture.total("s2c")


TCP_NAMES = [n for n in NAMES if load_fixture("dns", n).raw["transport"] == "tcp"]


@pytest.mark.parametrize("name", TCP_NAMES)
@pytest.mark.parametrize("role", ROLES, ids=["client", "server"])
def test_tcp_byte_by_byte(name: str, role: Role) -> None:
    """Over TCP a message may arrive in any pieces (UDP: one datagram per feed, never split)."""
    fixture = load_fixture("dns", name)
    _, expected = run(fixture, role, session_for(fixture))
    session, out = run(fixture, role, session_for(fixture), byte_by_byte)
    assert [(t.request, t.response) for t in out] == [(t.request, t.response) for t in expected]
    assert session.parse_errors == 0


@pytest.mark.parametrize("role", ROLES, ids=["client", "server"])
def test_trailing_data(fixture: Fixture, role: Role) -> None:
    dirs = PERSPECTIVES[role]
    expected = feed(session_for(fixture)(), whole(fixture, role))
    session = session_for(fixture)()
    out = feed(session, whole(fixture, role))
    if fixture.raw["transport"] == "tcp":
        out += session.feed(dirs["c2s"], b"\x00\x28\x12\x34\x01\x00", 10**6)  # a query cut short
    assert [(t.request, t.response) for t in out] == [(t.request, t.response) for t in expected]
    assert session.buffered_bytes <= 2 * session.max_buffer and session.parse_errors == 0


@pytest.mark.parametrize("limit", [4096, 64, 30])
@pytest.mark.parametrize("role", ROLES, ids=["client", "server"])
def test_capture_cut(fixture: Fixture, role: Role, limit: int) -> None:
    """Captures cut at ``limit`` bytes: the header and question are at the start of a message,
    so every transaction keeps its summary; sizes are the real ones."""
    _, expected = run(fixture, role, session_for(fixture))
    session, out = run(fixture, role, session_for(fixture), lambda f, r: cut(f, r, limit))
    assert [summary(t) for t in out] == [summary(t) for t in expected]
    assert [(t.request_size, t.response_size) for t in out] == [(t.request_size, t.response_size) for t in expected]
    assert session.parse_errors == 0 and session.capture_gaps == 0


def test_udp_fixture_has_the_truncated_answer() -> None:
    f = load_fixture("dns", "dnspython_udp")
    assert [t["tc"] for t in f.transactions].count(True) == 1
