"""The connection tracker with namespaces and NAT: real HTTP/1.1 bytes through the tracker and
the assembler, a fake resolver standing for /proc and conntrack."""

from __future__ import annotations

import socket

from tests.support.chain import ParsingTracker
from receiver.capture.events import ConnEvent, DataEvent
from receiver.model.endpoints import Tuple
from receiver.protocols.base import Direction, Role
from receiver.protocols.registry import ProtocolRegistry
from receiver.telemetry.assemble import TelemetryAssembler
from receiver.telemetry.clock import MonotonicToWall
from receiver.model.telemetry import SpanKind
from receiver.discovery.resources import ProcessResources
from tests.support.netns_fake import FakeResolver

TCP = 1
REQ = b"GET /items HTTP/1.1\r\nHost: 10.213.99.1\r\nUser-Agent: curl\r\n\r\n"
RESP = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


def tracker(resolver) -> ParsingTracker:
    return ParsingTracker(ProtocolRegistry(), tls_flag=0x100, netns=resolver)


def ev(conn_id, pid, role, direction, t: Tuple, payload: bytes, ts: int) -> DataEvent:
    return DataEvent(1, direction, role, 2, pid, pid, conn_id, 0, ts, ts, t, len(payload), 3, payload)


def call(tr: ParsingTracker, client: tuple, server: tuple, ts: int = 1000) -> list:
    """One request/response: client = (conn_id, pid, tuple), server likewise; the events in the
    order the kernel reports them."""
    cid, cpid, ct = client
    sid, spid, st = server
    out = []
    out += tr.on_data(ev(cid, cpid, Role.CLIENT, Direction.EGRESS, ct, REQ, ts))
    out += tr.on_data(ev(sid, spid, Role.SERVER, Direction.INGRESS, st, REQ, ts + 1))
    out += tr.on_data(ev(sid, spid, Role.SERVER, Direction.EGRESS, st, RESP, ts + 2))
    out += tr.on_data(ev(cid, cpid, Role.CLIENT, Direction.INGRESS, ct, RESP, ts + 3))
    return out


def tup(local, lport, remote, rport) -> Tuple:
    return Tuple(socket.AF_INET, TCP, local, lport, remote, rport)


def spans(tts):
    asm = TelemetryAssembler(ProcessResources(proc_root="/nonexistent", host_name="h"), MonotonicToWall(), None)
    for tt in tts:
        asm.add(tt, 0)
    got, _ = asm.flush()
    return {s.kind: s for s in got}


def test_dnat_client_and_backend_server_are_one_trace_with_both_addresses():
    nat = {(7, "10.213.0.1", 40000, "10.213.99.1", 80): ("10.213.0.2", 8080)}
    tr = tracker(FakeResolver({10: 7, 20: 8}, nat))
    client = (1, 10, tup("10.213.0.1", 40000, "10.213.99.1", 80))
    server = (2, 20, tup("10.213.0.2", 8080, "10.213.0.1", 40000))
    tts = call(tr, client, server)
    srv_tt = next(t for t in tts if t.transaction.role == Role.SERVER)
    cli_tt = next(t for t in tts if t.transaction.role == Role.CLIENT)
    assert srv_tt.peer_local and cli_tt.peer_local
    assert cli_tt.nat_peer == ("10.213.0.2", 8080) and srv_tt.nat_peer is None
    s = spans(tts)
    cli, srv = s[SpanKind.CLIENT], s[SpanKind.SERVER]
    assert srv.trace_id == cli.trace_id and srv.parent_span_id == cli.span_id
    assert cli.attributes["server.address"] == "10.213.99.1" and cli.attributes["server.port"] == 80
    assert cli.attributes["network.peer.address"] == "10.213.0.2"
    assert cli.attributes["network.peer.port"] == 8080
    assert srv.attributes["client.address"] == "10.213.0.1"


def test_without_the_translation_the_dnat_call_is_not_linked():
    tr = tracker(FakeResolver({10: 7, 20: 8}))
    tts = call(tr, (1, 10, tup("10.213.0.1", 40000, "10.213.99.1", 80)),
               (2, 20, tup("10.213.0.2", 8080, "10.213.0.1", 40000)))
    assert not any(t.peer_local for t in tts)


def lo(lport, rport) -> Tuple:
    return tup("127.0.0.1", lport, "127.0.0.1", rport)


def test_loopback_in_two_namespaces_is_never_mirrored():
    tr = tracker(FakeResolver({10: 7, 20: 8}))  # client in netns 7, server in netns 8
    tts = call(tr, (1, 10, lo(40000, 8080)), (2, 20, lo(8080, 40000)))
    assert len(tts) == 2 and not any(t.peer_local for t in tts)


def test_loopback_in_one_namespace_is_mirrored_and_scoped():
    tr = tracker(FakeResolver({10: 7, 20: 7}))
    tts = call(tr, (1, 10, lo(40000, 8080)), (2, 20, lo(8080, 40000)))
    assert all(t.peer_local and t.link_scope == 7 for t in tts)
    s = spans(tts)
    assert s[SpanKind.SERVER].parent_span_id == s[SpanKind.CLIENT].span_id


def test_a_side_whose_namespace_is_unknown_takes_its_peers():
    """curl gone before its events are read: its namespace is unknown (0); it links with the
    server of whatever namespace, and both sides agree on the scope."""
    tr = tracker(FakeResolver({20: 8}))
    tts = call(tr, (1, 10, lo(40000, 8080)), (2, 20, lo(8080, 40000)))
    assert all(t.peer_local and t.link_scope == 8 for t in tts)
    s = spans(tts)
    assert s[SpanKind.SERVER].parent_span_id == s[SpanKind.CLIENT].span_id


def test_same_loopback_tuple_in_two_namespaces_at_once_stays_apart():
    tr = tracker(FakeResolver({10: 7, 20: 7, 30: 8, 40: 8}))
    a = call(tr, (1, 10, lo(40000, 8080)), (2, 20, lo(8080, 40000)))
    b = call(tr, (3, 30, lo(40000, 8080)), (4, 40, lo(8080, 40000)))
    assert {t.link_scope for t in a} == {7} and {t.link_scope for t in b} == {8}
    sa, sb = spans(a), spans(b)
    assert sa[SpanKind.SERVER].parent_span_id == sa[SpanKind.CLIENT].span_id
    assert sb[SpanKind.SERVER].parent_span_id == sb[SpanKind.CLIENT].span_id


def test_without_a_resolver_nothing_changes():
    tr = ParsingTracker(ProtocolRegistry(), tls_flag=0x100)
    tts = call(tr, (1, 10, lo(40000, 8080)), (2, 20, lo(8080, 40000)))
    assert all(t.peer_local and t.link_scope == 0 and t.nat_peer is None for t in tts)
    assert tr.has_local_peer(lo(8080, 40000))


def test_process_exit_and_expiry_reach_the_resolver():
    r = FakeResolver({10: 7})
    tr = tracker(r)
    tr.drop_pid(10)
    tr.expire(10**12)
    assert r.forgotten == [10] and r.maintained == 1


def test_a_peer_seen_later_is_found_and_one_gone_for_long_is_forgotten():
    """Whether a connection has a local peer is worked out again whenever connections come or
    go: not once and for all."""
    tr = tracker(FakeResolver({20: 7}))
    server = (2, 20, lo(8080, 40000))
    sid, spid, st = server

    def served(ts):
        tr.on_data(ev(sid, spid, Role.SERVER, Direction.INGRESS, st, REQ, ts))
        (tt,) = tr.on_data(ev(sid, spid, Role.SERVER, Direction.EGRESS, st, RESP, ts + 1))
        return tt

    assert not served(1000).peer_local  # the client is not traced (yet)
    tts = call(tr, (1, 10, lo(40000, 8080)), server, 2000)
    assert all(t.peer_local for t in tts)
    tr.on_conn(ConnEvent(3, Role.CLIENT, 0, 10, 10, 1, 0, 3000, 3000, lo(40000, 8080), 3, 0, 0), True)
    assert served(3000).peer_local  # closed lately: its last bytes may still come
    tr.on_conn(ConnEvent(2, Role.UNKNOWN, 0, 30, 30, 9, 0, 10**12, 10**12, lo(1, 2), 3, 0, 0), False)
    tr.on_conn(ConnEvent(3, Role.UNKNOWN, 0, 30, 30, 9, 0, 10**12, 10**12, lo(1, 2), 3, 0, 0), True)
    assert not served(10**12).peer_local  # closed long ago
