"""Detection across protocols, on the first bytes real clients and servers sent (the recorded
fixtures): each connection is detected as its own protocol and never as another one, in both
directions — memcached text, NATS and Redis inline commands in particular."""

from __future__ import annotations

import pytest
from ebpf_receiver_nats import detect as nats_detect

from receiver.protocols import http1, http2, mysql, postgresql
from receiver.protocols.amqp import detect as amqp_detect
from receiver.protocols.api import Detection
from receiver.protocols.base import Direction
from receiver.protocols.dns import detect as dns_detect
from receiver.protocols.memcached import detect as memcached_detect
from receiver.protocols.redis import detect as redis_bool
from receiver.protocols.redis.detect import detection as redis_detect
from tests.support.protocol_fixtures import fixture_names, load_fixture

DETECTORS = {
    "memcached": memcached_detect,
    "nats": nats_detect,
    "amqp": amqp_detect,
    "dns": dns_detect,
    "redis": redis_detect,
}
LEGACY = {"http": http1.detect, "http2": http2.detect, "mysql": mysql.detect, "postgresql": postgresql.detect}
# Connections that begin with bytes no detector may claim, by design of the recording.
UNDETECTABLE_SIDES = {("memcached", "raw_errors"): {"c2s", "s2c"}}  # "bogus command" → "ERROR"
SIDE_DIRECTION = {"c2s": Direction.EGRESS, "s2c": Direction.INGRESS}

CASES = [(proto, name) for proto in DETECTORS for name in fixture_names(proto)]


@pytest.mark.parametrize(("proto", "name"), CASES, ids=[f"{p}-{n}" for p, n in CASES])
def test_first_bytes_are_their_own_protocol_and_no_other(proto: str, name: str) -> None:
    fixture = load_fixture(proto, name)
    table = {}
    for side, direction in SIDE_DIRECTION.items():
        first = fixture.first(side)
        for other, detect in DETECTORS.items():
            table[other, side] = detect(first, direction)
    verdicts = {side: table[proto, side] for side in SIDE_DIRECTION}
    for (other, side), verdict in table.items():
        if other == proto:
            continue
        # Never YES for another protocol; MAYBE only where this protocol is unsure on that side
        # too (memcached "touch k 10" vs Redis TOUCH) and the other side decides.
        assert verdict is not Detection.YES, (other, side)
        if verdict is Detection.MAYBE:
            opposite = "s2c" if side == "c2s" else "c2s"
            assert table[proto, side] is Detection.MAYBE, (other, side)
            assert table[proto, opposite] is Detection.YES and table[other, opposite] is Detection.NO, (other, side)
    for side, direction in SIDE_DIRECTION.items():
        first = fixture.first(side)
        for other, detect in LEGACY.items():
            assert not detect(first), (other, side, first[:40])
        if proto != "redis":
            assert not redis_bool(first), (side, first[:40])
    skip = UNDETECTABLE_SIDES.get((proto, name), set())
    seen = [v for side, v in verdicts.items() if side not in skip]
    if len(skip) < 2:
        # At least one side says YES (the other may be MAYBE, or NO for a reply as short as "OK").
        assert Detection.YES in seen, verdicts


@pytest.mark.parametrize(
    ("line", "memcached", "redis"),
    [
        (b"get user:1\r\n", Detection.MAYBE, Detection.MAYBE),  # the reply decides
        (b"GET user:1\r\n", Detection.NO, Detection.YES),  # memcached has no upper-case commands
        (b"get a b c\r\n", Detection.YES, Detection.NO),  # Redis GET takes one key
        (b"set k 0 0 5\r\nhello\r\n", Detection.YES, Detection.NO),
        (b"set k 0 0 5 noreply\r\nhello\r\n", Detection.YES, Detection.NO),
        (b"SET k v\r\n", Detection.NO, Detection.YES),
        (b"incr counter 1\r\n", Detection.YES, Detection.NO),
        (b"incr counter\r\n", Detection.MAYBE, Detection.MAYBE),
        (b"touch k 10\r\n", Detection.MAYBE, Detection.MAYBE),
        (b"delete k\r\n", Detection.YES, Detection.NO),
        (b"mg k v\r\n", Detection.YES, Detection.NO),
        (b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n", Detection.NO, Detection.YES),
        (b"VALUE k 0 5\r\nhello\r\nEND\r\n", Detection.YES, Detection.NO),
        (b"END\r\n", Detection.YES, Detection.NO),
        (b"+OK\r\n", Detection.NO, Detection.YES),
        (b"PING\r\n", Detection.NO, Detection.YES),
        (b'INFO {"server_id":"x"}\r\n', Detection.NO, Detection.NO),  # NATS
        (b"INFO server\r\n", Detection.NO, Detection.YES),
        # What Redis answers an inline get/incr/touch: a MAYBE that names Redis among the candidates.
        (b"$-1\r\n", Detection.NO, Detection.MAYBE),
        (b"$5\r\nhello\r\n", Detection.NO, Detection.MAYBE),
        (b":12\r\n", Detection.NO, Detection.MAYBE),
        (b"_\r\n", Detection.NO, Detection.MAYBE),
        (b"$x\r\n", Detection.NO, Detection.NO),
        (b"2\r\n", Detection.NO, Detection.NO),  # memcached's incr reply: the first candidate decides
    ],
)
def test_ambiguous_lines(line: bytes, memcached: Detection, redis: Detection) -> None:
    assert memcached_detect(line, Direction.EGRESS) is memcached
    assert redis_detect(line, Direction.EGRESS) is redis
    assert redis_bool(line) is (redis is Detection.YES)


def test_nats_lines() -> None:
    assert nats_detect(b'INFO {"server_id":"x"}\r\n', Direction.INGRESS) is Detection.YES
    assert nats_detect(b'CONNECT {"verbose":false}\r\n', Direction.EGRESS) is Detection.YES
    for line in (b"INFO server\r\n", b"PING\r\n", b"*1\r\n$4\r\nPING\r\n", b"get k\r\n"):
        assert nats_detect(line, Direction.EGRESS) is Detection.NO
