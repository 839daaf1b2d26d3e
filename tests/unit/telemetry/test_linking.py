"""Trace linking decisions, driven with spans as the assembler hands them over."""

from receiver.telemetry.linking import TraceLinker
from receiver.model.telemetry import LogRecord, Resource, Span, SpanKind
from receiver.telemetry.trace_context import IdGenerator, TraceParent

R = Resource.from_dict({"service.name": "svc"})
S = 10**9


def span(kind: SpanKind) -> Span:
    return Span(b"", IdGenerator(seed=None).span_id(), "op", kind, 0, 1, R)


def linker(**kw) -> TraceLinker:
    return TraceLinker(IdGenerator(seed=7), hold_ns=kw.get("hold_ns", 3 * S))


PEER = ("10.0.0.1", 40000, "10.0.0.2", 8080)


def test_incoming_traceparent_makes_the_server_span_a_child_of_the_caller():
    lk = linker()
    tp = TraceParent(bytes(range(16)), b"\x01" * 8, 1, "k=v")
    s = span(SpanKind.SERVER)
    lk.server_span(s, conn_id=1, peer_key=None, call_index=0, traceparent=tp, now_ns=0)
    [out] = lk.take_ready(0)
    assert out is s and s.trace_id == tp.trace_id and s.parent_span_id == tp.span_id and s.trace_state == "k=v"


def test_same_host_server_first_then_client():
    lk = linker()
    srv, cli = span(SpanKind.SERVER), span(SpanKind.CLIENT)
    lk.server_span(srv, 2, PEER, 0, None, 0)
    assert lk.take_ready(0) == []  # waits for its caller
    assert lk.client_span(cli, pid=10, tid=10, peer_key=PEER, call_index=0, outgoing=None, now_ns=0)
    out = lk.take_ready(0)
    assert {id(x) for x in out} == {id(srv), id(cli)}
    assert srv.trace_id == cli.trace_id != b""
    assert srv.parent_span_id == cli.span_id and cli.parent_span_id == b""


def test_same_host_client_first_then_server():
    lk = linker()
    srv, cli = span(SpanKind.SERVER), span(SpanKind.CLIENT)
    lk.client_span(cli, 10, 10, PEER, 0, None, 0)
    assert lk.take_ready(0) == [cli]
    lk.server_span(srv, 2, PEER, 0, None, 0)
    assert lk.take_ready(0) == [srv]
    assert srv.trace_id == cli.trace_id and srv.parent_span_id == cli.span_id


def test_a_root_calls_offer_keeps_its_sampling_decision_and_is_bounded():
    """A root client call's trace is decided when it is placed; a late server side takes that
    decision (flags included), and offers past the bound go oldest first."""
    lk = TraceLinker(IdGenerator(seed=7), hold_ns=3 * S, max_pending=10)
    first = span(SpanKind.CLIENT)
    lk.client_span(first, 10, 10, PEER, 0, None, 0)
    assert lk.take_ready(0) == [first] and first.trace_id != b""
    srv = span(SpanKind.SERVER)
    lk.server_span(srv, 2, PEER, 0, None, 0)
    assert lk.take_ready(0) == [srv]
    assert (srv.trace_id, srv.parent_span_id, srv.flags) == (first.trace_id, first.span_id, first.flags)
    for i in range(1, 21):
        lk.client_span(span(SpanKind.CLIENT), 10, 10, PEER, i, None, 0)
    assert len(lk.take_ready(0)) == 20  # nothing waits on an offer
    assert lk.links_held == 10
    late = span(SpanKind.SERVER)
    lk.server_span(late, 2, PEER, 1, None, 0)  # its offer was evicted: it waits, then starts a trace
    assert lk.take_ready(0) == [] and lk.take_ready(4 * S) == [late]


def test_a_client_of_unknown_namespace_finds_a_loopback_server_waiting_under_its_namespace():
    """The server side came first, its namespace known; the client's process was gone before its
    connection was read (scope 0), and the server end was never entered in the peers (its one
    transaction was its last).  Either order links; the wait is taken once."""
    ns = 4026531833
    loop = ("127.0.0.1", 40000, "127.0.0.1", 8080)
    for client_first in (False, True):
        lk = linker()
        srv, cli = span(SpanKind.SERVER), span(SpanKind.CLIENT)
        if client_first:
            lk.client_span(cli, 10, 10, loop + (0,), 0, None, 0)
        lk.server_span(srv, 2, loop + (ns,), 0, None, 0)
        if not client_first:
            lk.client_span(cli, 10, 10, loop + (0,), 0, None, 0)
        lk.take_ready(0)
        assert (srv.trace_id, srv.parent_span_id) == (cli.trace_id, cli.span_id), client_first
    # The other key of a taken wait is spent: a later call under it does not take it again.
    late = span(SpanKind.CLIENT)
    lk = linker()
    srv, cli = span(SpanKind.SERVER), span(SpanKind.CLIENT)
    lk.server_span(srv, 2, loop + (ns,), 0, None, 0)
    lk.client_span(cli, 10, 10, loop + (ns,), 0, None, 0)
    lk.client_span(late, 11, 11, loop + (0,), 0, None, 0)
    lk.take_ready(0)
    assert srv.parent_span_id == cli.span_id and late.trace_id != srv.trace_id


def test_call_indexes_keep_keep_alive_requests_apart():
    lk = linker()
    s0, s1, c0, c1 = span(SpanKind.SERVER), span(SpanKind.SERVER), span(SpanKind.CLIENT), span(SpanKind.CLIENT)
    lk.server_span(s0, 2, PEER, 0, None, 0)
    lk.server_span(s1, 2, PEER, 1, None, 0)
    lk.client_span(c1, 10, 10, PEER, 1, None, 0)
    lk.client_span(c0, 10, 10, PEER, 0, None, 0)
    lk.take_ready(0)
    assert s0.parent_span_id == c0.span_id and s1.parent_span_id == c1.span_id
    assert s0.trace_id != s1.trace_id


def test_thread_per_request_children_and_logs_join_the_server_span():
    lk = linker()
    lk.on_server_ingress(pid=5, tid=6, conn_id=3, ts_ns=0)
    child = span(SpanKind.CLIENT)
    lk.client_span(child, 5, 6, None, 0, None, 1)
    log = LogRecord(1, "handling", R)
    lk.log_record(log, 5, 6, 1)
    assert lk.take_ready(1) == []  # the server span decides the trace
    tp = TraceParent(b"\xaa" * 16, b"\xbb" * 8, 1)
    srv = span(SpanKind.SERVER)
    lk.server_span(srv, 3, None, 0, tp, 2)
    out = lk.take_ready(2)
    assert len(out) == 3
    assert child.parent_span_id == srv.span_id == log.span_id
    assert child.trace_id == srv.trace_id == log.trace_id == tp.trace_id


def test_chain_of_three_local_services_is_one_trace():
    """curl -> svc1 (thread-per-request) -> svc2, completing in the kernel's order."""
    lk = linker()
    p1 = ("127.0.0.1", 50000, "127.0.0.1", 8001)  # curl -> svc1
    p2 = ("127.0.0.1", 50001, "127.0.0.1", 8002)  # svc1 -> svc2
    lk.on_server_ingress(pid=1, tid=1, conn_id=11, ts_ns=0)  # svc1 reads curl's request
    svc2 = span(SpanKind.SERVER)
    lk.server_span(svc2, 22, p2, 0, None, 1)
    svc1_out = span(SpanKind.CLIENT)
    lk.client_span(svc1_out, 1, 1, p2, 0, None, 2)
    svc1 = span(SpanKind.SERVER)
    lk.server_span(svc1, 11, p1, 0, None, 3)
    assert lk.take_ready(3) == []
    curl = span(SpanKind.CLIENT)
    lk.client_span(curl, 99, 99, p1, 0, None, 4)
    out = lk.take_ready(4)
    assert len(out) == 4
    assert len({s.trace_id for s in out}) == 1
    assert svc1.parent_span_id == curl.span_id
    assert svc1_out.parent_span_id == svc1.span_id
    assert svc2.parent_span_id == svc1_out.span_id


def test_sdk_client_span_is_not_duplicated_but_a_forwarded_header_is_kept():
    lk = linker()
    sdk = TraceParent(b"\x01" * 16, b"\x02" * 8, 1)
    c = span(SpanKind.CLIENT)
    assert lk.client_span(c, 1, 1, None, 0, sdk, 0) is False
    assert lk.sdk_spans_skipped == 1
    # A proxy forwarding the header it received keeps its client span (child of its server span).
    lk.on_server_ingress(2, 2, 7, 0)
    fwd = span(SpanKind.CLIENT)
    lk.client_span(fwd, 2, 2, None, 0, sdk, 1)
    srv = span(SpanKind.SERVER)
    lk.server_span(srv, 7, None, 0, sdk, 2)
    out = lk.take_ready(2)
    assert fwd in out and fwd.trace_id == sdk.trace_id and fwd.parent_span_id == srv.span_id


def test_async_runtime_is_detected_and_not_thread_linked():
    lk = linker()
    lk.on_server_ingress(3, 3, conn_id=1, ts_ns=0)
    lk.on_server_ingress(3, 3, conn_id=2, ts_ns=1)  # second request before the first answer
    assert lk.multiplexed_processes == 1
    c = span(SpanKind.CLIENT)
    lk.client_span(c, 3, 3, None, 0, None, 2)
    assert lk.take_ready(2) == [c] and c.parent_span_id == b""


def test_unresolved_groups_are_released_after_the_hold_time():
    lk = linker(hold_ns=100)
    srv = span(SpanKind.SERVER)
    lk.server_span(srv, 2, PEER, 0, None, 0)  # its caller never shows up
    assert lk.take_ready(50) == []
    assert lk.take_ready(101) == [srv] and srv.trace_id != b""
    assert lk.released_unlinked == 1


def test_ids_are_never_reused():
    ids = IdGenerator(seed=1)
    assert len({ids.span_id() for _ in range(10000)}) == 10000


def _batch_of_two_requests(lk, conn_a: int, conn_b: int):
    """Two requests served one after the other by thread 6 of pid 5, announced by the kernel,
    their spans linked at the end of one batch (the markers arrived first)."""
    lk.on_server_ingress(5, 6, conn_a, 100, announced=True)
    lk.on_server_ingress(5, 6, conn_b, 200, announced=True)
    c1, c2 = span(SpanKind.CLIENT), span(SpanKind.CLIENT)
    s1, s2 = span(SpanKind.SERVER), span(SpanKind.SERVER)
    lk.client_span(c1, 5, 6, None, 0, None, 300, start_ns=110)
    lk.server_span(s1, conn_a, None, 0, None, 300, end_ns=150)
    lk.client_span(c2, 5, 6, None, 0, None, 300, start_ns=210)
    lk.server_span(s2, conn_b, None, 0, None, 300, end_ns=250)
    lk.take_ready(300)
    return c1, s1, c2, s2


def test_keepalive_requests_of_one_thread_in_one_batch_each_parent_their_own_calls():
    """issue 18: the second request of a keep-alive connection, in the batch of the first."""
    lk = linker()
    c1, s1, c2, s2 = _batch_of_two_requests(lk, 3, 3)
    assert c1.parent_span_id == s1.span_id and c1.trace_id == s1.trace_id
    assert c2.parent_span_id == s2.span_id and c2.trace_id == s2.trace_id
    assert s1.trace_id != s2.trace_id
    assert lk.multiplexed_processes == 0


def test_a_pool_thread_serving_two_connections_in_one_batch_is_not_multiplexed():
    lk = linker()
    c1, s1, c2, s2 = _batch_of_two_requests(lk, 3, 4)
    assert lk.multiplexed_processes == 0
    assert c1.parent_span_id == s1.span_id and c2.parent_span_id == s2.span_id


def test_the_kernel_says_when_a_thread_interleaves_requests():
    lk = linker()
    lk.on_server_ingress(3, 3, 1, 0, announced=True)
    lk.on_server_ingress(3, 3, 2, 1, announced=True, multiplexed=True)
    assert lk.multiplexed_processes == 1
    c = span(SpanKind.CLIENT)
    lk.client_span(c, 3, 3, None, 0, None, 2, start_ns=2)
    assert lk.take_ready(2) == [c] and c.parent_span_id == b""


def test_a_request_without_a_marker_does_not_take_the_next_requests_context():
    """Only requests whose thread acts are announced: the first request of the connection did
    nothing, the second called out; the first's server span must not take the second's id."""
    lk = linker()
    lk.on_server_ingress(5, 6, 3, 200, announced=True)  # request 2's marker
    assert lk.take_solo_server(3, end_ns=150) is not None  # request 1: [100, 150]
    c2, s2 = span(SpanKind.CLIENT), span(SpanKind.SERVER)
    lk.client_span(c2, 5, 6, None, 0, None, 300, start_ns=210)
    assert lk.take_solo_server(3, end_ns=250) is None  # request 2 has a child
    lk.server_span(s2, 3, None, 0, None, 300, end_ns=250)
    lk.take_ready(300)
    assert c2.parent_span_id == s2.span_id and c2.trace_id == s2.trace_id


def test_payload_path_keepalive_requests_in_one_batch_each_parent_their_own_calls():
    lk = linker()
    lk.on_server_ingress(5, 6, 3, 100)
    lk.on_server_ingress(5, 6, 3, 120)  # more bytes of request 1
    lk.on_server_ingress(5, 6, 3, 200, new_request=True)  # after the response: request 2
    c1, c2, s1, s2 = span(SpanKind.CLIENT), span(SpanKind.CLIENT), span(SpanKind.SERVER), span(SpanKind.SERVER)
    lk.client_span(c1, 5, 6, None, 0, None, 300, start_ns=130)
    lk.server_span(s1, 3, None, 0, None, 300, end_ns=150)
    lk.client_span(c2, 5, 6, None, 0, None, 300, start_ns=210)
    lk.server_span(s2, 3, None, 0, None, 300, end_ns=250)
    lk.take_ready(300)
    assert c1.parent_span_id == s1.span_id and c2.parent_span_id == s2.span_id
    assert lk.multiplexed_processes == 0


def test_a_busy_batch_of_one_proxy_thread_links_every_call():
    """An nginx worker proxying: every request it started in one batch is announced before the
    batch's calls are linked.  The zPages demo's nginx started 29 in one batch (the agent had
    yielded its CPU) and 13 of its upstream calls lost their parent when a thread kept 16."""
    lk = linker()
    n = 300
    for i in range(n):  # markers first, as the batch's records come
        lk.on_server_ingress(5, 5, 100 + i, 1000 * i, announced=True)
    clients = [span(SpanKind.CLIENT) for _ in range(n)]
    servers = [span(SpanKind.SERVER) for _ in range(n)]
    for i in range(n):
        lk.client_span(clients[i], 5, 5, None, 0, None, 10**6, start_ns=1000 * i + 10)
        lk.server_span(servers[i], 100 + i, None, 0, None, 10**6, end_ns=1000 * i + 500)
    lk.take_ready(10**6)
    assert all(c.parent_span_id == s.span_id and c.trace_id == s.trace_id for c, s in zip(clients, servers))


def test_a_marker_that_comes_late_is_still_found_by_start_time():
    """Contexts are looked up by start time (bisect): one announced out of order is placed."""
    lk = linker()
    lk.on_server_ingress(5, 5, 1, 100, announced=True)
    lk.on_server_ingress(5, 5, 3, 300, announced=True)
    lk.on_server_ingress(5, 5, 2, 200, announced=True)
    c = span(SpanKind.CLIENT)
    lk.client_span(c, 5, 5, None, 0, None, 400, start_ns=250)
    s = span(SpanKind.SERVER)
    lk.server_span(s, 2, None, 0, None, 400, end_ns=280)
    lk.take_ready(400)
    assert c.parent_span_id == s.span_id
