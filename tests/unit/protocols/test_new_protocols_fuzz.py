"""Property tests shared by the memcached, AMQP, DNS (TCP) and NATS sessions on their recorded
fixtures: any split of the bytes gives the same transactions, and mutated fixtures (flipped
bytes, captures cut short) never raise and never grow a session past its bounds."""

from __future__ import annotations

from ebpf_receiver_nats import NatsSession
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from receiver.protocols.amqp import AmqpSession
from receiver.protocols.base import Role
from receiver.protocols.dns import DnsSession
from receiver.protocols.memcached import MemcachedSession
from tests.support.protocol_fixtures import PERSPECTIVES, feed, fixture_names, load_fixture, whole

SESSIONS = {
    "memcached": MemcachedSession,
    "amqp": AmqpSession,
    "nats": NatsSession,
    "dns": lambda **kw: DnsSession(transport="tcp", **kw),
}
CASES = [
    (proto, name)
    for proto in SESSIONS
    for name in fixture_names(proto)
    if (proto != "dns" or load_fixture(proto, name).raw["transport"] == "tcp")
    and sum(len(d) for _, d in load_fixture(proto, name).chunks) < 50_000
]
FIXTURES = {case: load_fixture(*case) for case in CASES}
SETTINGS = settings(max_examples=200, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.large_base_example])


@SETTINGS
@given(st.sampled_from(CASES), st.sampled_from([Role.CLIENT, Role.SERVER]), st.randoms(use_true_random=False))
def test_any_split_gives_the_same_transactions(case, role, rnd) -> None:
    proto, _ = case
    fixture = FIXTURES[case]
    expected = feed(SESSIONS[proto](), whole(fixture, role), close_ts=10**9)
    dirs = PERSPECTIVES[role]
    pieces = []
    for side, data in fixture.chunks:
        at = 0
        while at < len(data):
            n = rnd.randint(1, max(1, len(data) - at))
            pieces.append((dirs[side], data[at : at + n], len(pieces), None))
            at += n
    session = SESSIONS[proto]()
    out = feed(session, pieces, close_ts=10**9)
    assert [(t.request, t.response) for t in out] == [(t.request, t.response) for t in expected]
    assert session.parse_errors == 0


@SETTINGS
@given(st.sampled_from(CASES), st.sampled_from([Role.CLIENT, Role.SERVER]), st.randoms(use_true_random=False))
def test_mutated_fixtures_never_raise_and_stay_bounded(case, role, rnd) -> None:
    proto, _ = case
    fixture = FIXTURES[case]
    dirs = PERSPECTIVES[role]
    session = SESSIONS[proto](max_buffer=1024)
    for i, (side, data) in enumerate(fixture.chunks):
        data = bytearray(data)
        for _ in range(rnd.randrange(3)):
            if data:
                data[rnd.randrange(len(data))] = rnd.randrange(256)
        total = None
        if len(data) > 2 and rnd.random() < 0.2:
            total = len(data)
            data = data[: rnd.randrange(len(data))]
        session.feed(dirs[side], bytes(data), i, total)
        assert session.internal_errors == 0
        assert session.buffered_bytes <= 2 * session.max_buffer + 2 * 4096
    session.close(len(fixture.chunks))
    assert session.internal_errors == 0
