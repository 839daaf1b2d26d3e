"""The drivers the end-to-end tests of the memcached, NATS, AMQP and DNS parsers use
(tests/support/protocol_drivers.py), each run against its real server
(tests/support/broker_servers.py): they complete, and report exactly the operations asked for —
and, through a recording proxy, the parsers make exactly those transactions of the bytes.
(No kernel here: that the agent sees these operations is for the capture tests.)"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from ebpf_receiver_nats import NatsSession

from receiver.protocols.amqp import AmqpSession
from receiver.protocols.base import Direction
from receiver.protocols.memcached import MemcachedSession
from tests.support.broker_servers import DnsmasqServer, MemcachedServer, NatsServer, RabbitMqServer
from tests.support.protocol_drivers import run_driver
from tests.support.recording_proxy import RecordingProxy

pytestmark = [pytest.mark.e2e]
SIDES = {"c2s": Direction.EGRESS, "s2c": Direction.INGRESS}


def parse(connections, new_session) -> list:
    """Every recorded connection through a fresh session, as its client sees it."""
    out = []
    for chunks in connections:
        session = new_session()
        for i, (side, data) in enumerate(chunks):
            out += session.feed(SIDES[side], data, i)
        out += session.close(len(chunks))
        assert session.parse_errors == 0
    return out


def test_memcached_driver(tmp_path: Path) -> None:
    with MemcachedServer(tmp_path) as server:
        proxy = RecordingProxy(server.port)
        try:
            result = run_driver("memcached", proxy.port, count=12, misses=4)
            connections = proxy.take(2)
        finally:
            proxy.close()
    assert result.counts == {"connections": 2, "set": 12, "get": 17, "hits": 14, "misses": 5, "incr": 1,
                             "errors": {"CLIENT_ERROR": 1}, "delete": 1}
    txs = parse(connections, MemcachedSession)
    ops = Counter(t.request.command for t in txs)
    assert ops == Counter({"set": 12, "get": 17, "incr": 1, "delete": 1})
    assert sum(t.response.hits or 0 for t in txs) == 14 and sum(t.response.misses or 0 for t in txs) == 5
    assert [t.response.status for t in txs if t.response.is_error] == ["CLIENT_ERROR"]


def test_nats_driver(tmp_path: Path) -> None:
    with NatsServer(tmp_path) as server:
        proxy = RecordingProxy(server.port)
        try:
            result = run_driver("nats", proxy.port, count=7, requests=2)
            connections = proxy.take(2)
        finally:
            proxy.close()
    assert result.counts == {"connections": 2, "publish": 7, "traced": 7, "receive": 7, "requests": 2,
                             "no_responders": 1, "responder_receive": 2, "responder_publish": 2}
    kinds = Counter()
    for t in parse(connections, NatsSession):
        q, r = t.request, t.response
        if q.op in ("PUB", "HPUB"):
            kinds["request" if r is not None else "publish"] += 1
            if r is not None and r.status == 503:
                kinds["no_responders"] += 1
        else:
            kinds["receive"] += 1
    # client: 7 publish + 7 receive + 2 requests + 1 no-responders request; responder: 2 + 2.
    assert kinds == Counter({"publish": 7 + 2, "receive": 7 + 2, "request": 3, "no_responders": 1})


def test_amqp_driver(tmp_path: Path) -> None:
    with RabbitMqServer(tmp_path) as server:
        proxy = RecordingProxy(server.port)
        try:
            result = run_driver("amqp", proxy.port, count=9)
            connections = proxy.take(1)
        finally:
            proxy.close()
    assert result.counts == {"connections": 1, "publish": 9, "traced": 9, "deliver": 9, "ack": 9, "get_empty": 1}
    txs = parse(connections, AmqpSession)
    names = Counter(t.request.name for t in txs)
    assert names["basic.publish"] == 9 and names["basic.deliver"] == 9
    assert [t.response.name for t in txs if t.request.name == "basic.get"] == ["basic.get-empty"]
    assert all(t.request.traceparent for t in txs if t.request.name in ("basic.publish", "basic.deliver"))


def test_dns_driver(tmp_path: Path) -> None:
    with DnsmasqServer(tmp_path) as server:
        result = run_driver("dns", server.port, count=5, nxdomain=3, tcp=2)
    assert result.counts == {"udp": 5, "nxdomain": 3, "tcp": 2, "udp_sockets": 1, "tcp_connections": 1}
