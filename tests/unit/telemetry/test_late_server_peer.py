"""A same-host call whose server end is announced only after the client's whole call was read.

An accepted connection has no record of its own: its first data or transaction record announces
it, and that record can come after the client's (a paired request's record is sent once its
response is out, a TLS server's at its library call).  The client's call must still be the
parent of the server span: it is offered under its peer key, and taken when the server side
comes.  Real HTTP/1.1 bytes through the tracker, the protocol stage and the assembler."""

from __future__ import annotations

import socket

from receiver.capture.events import ConnEvent, DataEvent
from receiver.discovery.resources import ProcessResources
from receiver.model.endpoints import Tuple
from receiver.model.telemetry import SpanKind
from receiver.protocols.base import Direction, Role
from receiver.protocols.registry import ProtocolRegistry
from receiver.telemetry.assemble import TelemetryAssembler
from receiver.telemetry.clock import MonotonicToWall
from tests.support.chain import ParsingTracker
from tests.support.netns_fake import FakeResolver

TCP = 1
REQ = b"GET /items HTTP/1.1\r\nHost: shop\r\n\r\n"
RESP = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
MS = 10**6


def tup(local, lport, remote, rport) -> Tuple:
    return Tuple(socket.AF_INET, TCP, local, lport, remote, rport)


def data(conn_id, pid, role, direction, t: Tuple, payload: bytes, ts: int) -> DataEvent:
    return DataEvent(1, direction, role, 2, pid, pid, conn_id, 0, ts, ts, t, len(payload), 3, payload)


def connect(tr: ParsingTracker, conn_id: int, pid: int, t: Tuple, ts: int) -> None:
    tr.on_conn(ConnEvent(2, Role.CLIENT, 0, pid, pid, conn_id, 0, ts, ts, t, 3, 0, 0), False)


def client_call(tr, conn_id, pid, t, ts):
    return (tr.on_data(data(conn_id, pid, Role.CLIENT, Direction.EGRESS, t, REQ, ts))
            + tr.on_data(data(conn_id, pid, Role.CLIENT, Direction.INGRESS, t, RESP, ts + 3)))


def server_call(tr, conn_id, pid, t, ts):
    """The accepted connection's first records: no open record came for it."""
    return (tr.on_data(data(conn_id, pid, Role.SERVER, Direction.INGRESS, t, REQ, ts))
            + tr.on_data(data(conn_id, pid, Role.SERVER, Direction.EGRESS, t, RESP, ts + 1)))


def assembler() -> TelemetryAssembler:
    return TelemetryAssembler(ProcessResources(proc_root="/nonexistent", host_name="h"), MonotonicToWall(), None)


def by_kind(spans):
    return {s.kind: s for s in spans}


def run(client_t: Tuple, server_t: Tuple, batches_apart: bool):
    """The client's call read (and its batch released) before the server's first record."""
    tr = ParsingTracker(ProtocolRegistry(), tls_flag=0x100)
    asm = assembler()
    connect(tr, 1, 10, client_t, 1000)
    (cli,) = client_call(tr, 1, 10, client_t, 1000)
    asm.add(cli, 1 * MS)
    first, _ = asm.take(2 * MS) if batches_apart else ([], [])
    (srv,) = server_call(tr, 2, 20, server_t, 1001)
    asm.add(srv, 3 * MS)
    later, _ = asm.flush()
    return cli, srv, first, later


def test_loopback_client_read_first_is_still_the_server_spans_parent():
    cli, srv, first, later = run(tup("127.0.0.1", 40000, "127.0.0.1", 8080),
                                 tup("127.0.0.1", 8080, "127.0.0.1", 40000), batches_apart=True)
    assert cli.peer_maybe and not cli.peer_local  # nothing known of the server end yet
    assert srv.peer_local  # the client announced itself at connect
    # The client span left with the first batch; the server span found it in the second.
    (c,) = first
    s = by_kind(later)[SpanKind.SERVER]
    assert c.kind == SpanKind.CLIENT
    assert (s.trace_id, s.parent_span_id) == (c.trace_id, c.span_id)


def test_a_loopback_client_whose_namespace_is_unknown_is_still_the_server_spans_parent():
    """The client process exited before its connection was read (curl: one short TLS call), so
    its namespace is unknown and its call is offered under scope 0; the server's namespace is
    known, and its span looks the offer up there too."""
    host_ns = 4026531833
    tr = ParsingTracker(ProtocolRegistry(), tls_flag=0x100, netns=FakeResolver({20: host_ns}))  # pid 10 gone
    asm = assembler()
    client_t, server_t = tup("127.0.0.1", 40000, "127.0.0.1", 8080), tup("127.0.0.1", 8080, "127.0.0.1", 40000)
    connect(tr, 1, 10, client_t, 1000)
    (cli,) = client_call(tr, 1, 10, client_t, 1000)
    assert cli.peer_maybe and cli.link_scope == 0
    asm.add(cli, 1 * MS)
    (c,) = asm.take(2 * MS)[0]
    (srv,) = server_call(tr, 2, 20, server_t, 1001)
    assert srv.peer_local and srv.link_scope == host_ns
    asm.add(srv, 3 * MS)
    s = by_kind(asm.flush()[0])[SpanKind.SERVER]
    assert (s.trace_id, s.parent_span_id) == (c.trace_id, c.span_id)
    assert asm.linker.links_held == 0  # the offer was taken, nothing waits


def test_a_local_address_that_is_not_loopback_links_the_same_way():
    cli, srv, first, later = run(tup("10.1.0.5", 40000, "10.1.0.5", 8080),
                                 tup("10.1.0.5", 8080, "10.1.0.5", 40000), batches_apart=False)
    assert cli.peer_maybe
    s = by_kind(later)
    assert (s[SpanKind.SERVER].trace_id, s[SpanKind.SERVER].parent_span_id) == (
        s[SpanKind.CLIENT].trace_id, s[SpanKind.CLIENT].span_id)


def test_a_dnat_destination_read_first_is_still_the_server_spans_parent():
    """The client dialled a virtual address that NAT sent to a server in another namespace:
    nothing says the destination is this host's, and the server end is announced late."""
    tr = ParsingTracker(ProtocolRegistry(), tls_flag=0x100)
    asm = assembler()
    client_t = tup("10.213.0.1", 40000, "10.213.99.1", 80)  # the VIP
    connect(tr, 1, 10, client_t, 1000)
    (cli,) = client_call(tr, 1, 10, client_t, 1000)
    assert cli.peer_maybe and not cli.peer_local
    asm.add(cli, 1 * MS)
    (c,) = asm.take(2 * MS)[0]
    # Without the translation the server's view (client -> VIP) still mirrors the client's.
    (srv,) = server_call(tr, 2, 20, tup("10.213.99.1", 80, "10.213.0.1", 40000), 1001)
    assert srv.peer_local
    asm.add(srv, 3 * MS)
    s = by_kind(asm.flush()[0])[SpanKind.SERVER]
    assert (s.trace_id, s.parent_span_id) == (c.trace_id, c.span_id)


def test_a_client_of_a_known_peer_is_not_a_maybe():
    tr = ParsingTracker(ProtocolRegistry(), tls_flag=0x100)
    server_t, client_t = tup("127.0.0.1", 8080, "127.0.0.1", 40000), tup("127.0.0.1", 40000, "127.0.0.1", 8080)
    server_call(tr, 2, 20, server_t, 900)  # the server end is known first
    connect(tr, 1, 10, client_t, 1000)
    (cli,) = client_call(tr, 1, 10, client_t, 1000)
    assert cli.peer_local and not cli.peer_maybe


def test_an_offer_no_server_takes_is_forgotten_with_the_hold_time():
    """A call to a local server that is not traced (or whose span is skipped) leaves nothing
    behind once a group would have been released: the link table does not grow with calls."""
    tr = ParsingTracker(ProtocolRegistry(), tls_flag=0x100)
    asm = assembler()
    for i in range(50):
        t = tup("127.0.0.1", 41000 + i, "127.0.0.1", 6379)
        connect(tr, 100 + i, 10, t, 1000 + i)
        (cli,) = client_call(tr, 100 + i, 10, t, 1000 + i)
        assert cli.peer_maybe
        asm.add(cli, 1 * MS)
    spans, _ = asm.take(2 * MS)
    assert len(spans) == 50  # nothing waits on the offers
    assert asm.linker.links_held == 50
    asm.take(1 * MS + asm.linker._hold + 1)
    assert asm.linker.links_held == 0
