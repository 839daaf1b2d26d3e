"""The tracker with TLS: plaintext read at the TLS library (ERX_FLAG_TLS) switches a connection
to plaintext; ciphertext is recognised by its record header and never counted as an unknown
protocol or a parse error."""

from __future__ import annotations

import pytest

from receiver.bpf.abi import load_abi
from tests.support.chain import ParsingTracker
from receiver.capture.events import DataEvent
from receiver.model.endpoints import Tuple
from receiver.connections.tls_records import is_tls_record
from receiver.protocols.base import Direction, Role
from receiver.protocols.registry import ProtocolRegistry
from receiver.telemetry.assemble import TelemetryAssembler
from receiver.telemetry.clock import MonotonicToWall
from receiver.discovery.resources import ProcessResources

ABI = load_abi()
TLS = ABI.const("ERX_FLAG_TLS")
SSL_READ, SSL_WRITE, READ, WRITE = (ABI.const(n) for n in ("ERX_SYS_SSL_READ", "ERX_SYS_SSL_WRITE", "ERX_SYS_READ",
                                                           "ERX_SYS_WRITE"))
T = Tuple(2, 1, "127.0.0.1", 8443, "127.0.0.1", 50000)
REQ = b"GET /secret HTTP/1.1\r\nHost: localhost:8443\r\nUser-Agent: curl\r\n\r\n"
RESP = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
CLIENT_HELLO = bytes.fromhex("160301020001") + b"\x01" * 40  # handshake record, TLS 1.0 record version
APP_DATA = bytes.fromhex("1703030045") + b"\x9a" * 69  # application_data record, TLS 1.2 record version


def ev(direction, payload: bytes, tls: bool, ts: int, conn_id: int = 7) -> DataEvent:
    sys_ = (SSL_READ if direction == Direction.INGRESS else SSL_WRITE) if tls else (
        READ if direction == Direction.INGRESS else WRITE)
    return DataEvent(ABI.const("ERX_EV_DATA"), direction, Role.SERVER, sys_, 100, 100, conn_id, 0, ts, ts, T,
                     len(payload), 5, payload, TLS if tls else 0)


class Kernel:
    def __init__(self) -> None:
        self.ignored: list[int] = []
        self.ciphertext_only: list[int] = []


def tracker(kernel: Kernel, **registry) -> ParsingTracker:
    return ParsingTracker(
        ProtocolRegistry(**registry),
        tls_flag=ABI.const("ERX_FLAG_TLS"),
        on_uninteresting=kernel.ignored.append,
        on_tls_ciphertext=kernel.ciphertext_only.append,
    )


def serve(tr: ParsingTracker, ts: int = 1000) -> list:
    out = tr.on_data(ev(Direction.INGRESS, REQ, True, ts))
    return out + tr.on_data(ev(Direction.EGRESS, RESP, True, ts + 1))


def test_plaintext_from_the_library_becomes_a_tls_transaction():
    k = Kernel()
    tr = tracker(k)
    (tt,) = serve(tr)
    assert tt.tls and tt.transaction.protocol == "http1" and tt.transaction.request.target == "/secret"
    assert (tr.tls_plaintext, tr.tls_unattached, tr.undetected) == (1, 0, 0)
    assert k.ignored == k.ciphertext_only == []


def test_ciphertext_before_the_library_was_attached_is_tls_not_an_unknown_protocol():
    k = Kernel()
    tr = tracker(k)
    assert tr.on_data(ev(Direction.INGRESS, CLIENT_HELLO, False, 1)) == []
    assert tr.on_data(ev(Direction.EGRESS, APP_DATA, False, 2)) == []
    assert (tr.tls_unattached_open, tr.undetected, tr.parse_errors_by_protocol) == (1, 0, {})
    assert k.ciphertext_only == [7] and k.ignored == []  # only the socket bytes are switched off
    # The library gets attached: its plaintext on the same connection is parsed.
    (tt,) = serve(tr, ts=10)
    assert tt.tls and tt.transaction.response.status_code == 200
    assert tr.tls_plaintext == 1
    # Plaintext came: the connection is not unattached, now or when it ends.
    tr.drop_pid(100)
    assert (tr.tls_unattached_open, tr.tls_unattached) == (0, 0)


def test_a_connection_that_ends_with_only_ciphertext_is_counted_unattached():
    k = Kernel()
    tr = tracker(k)
    tr.on_data(ev(Direction.INGRESS, CLIENT_HELLO, False, 1))
    tr.on_data(ev(Direction.INGRESS, CLIENT_HELLO, False, 2, conn_id=8))
    tr.on_data(ev(Direction.INGRESS, REQ, True, 3, conn_id=8))  # a memory BIO's plaintext came late
    assert (tr.tls_unattached_open, tr.tls_unattached) == (1, 0)
    tr.expire(10**15)
    assert (tr.tls_unattached_open, tr.tls_unattached) == (0, 1)
    families = {f.name: f for f in tr.tracker.collect()}
    assert [(s.labels, s.value) for s in families["ebpf_receiver_tls_unattached"].samples
            if s.name.endswith("_total")] == [({"reason": "no_library"}, 1)]


def test_once_plaintext_flows_socket_bytes_are_ignored_not_parse_errors():
    k = Kernel()
    tr = tracker(k)
    assert tr.on_data(ev(Direction.INGRESS, REQ, True, 1)) == []
    for i in range(5):
        assert tr.on_data(ev(Direction.INGRESS, APP_DATA, False, 2 + i)) == []
        assert tr.on_data(ev(Direction.EGRESS, bytes(range(256)) * 8, False, 3 + i)) == []
    (tt,) = tr.on_data(ev(Direction.EGRESS, RESP, True, 20))
    assert tt.transaction.request.target == "/secret"
    assert tr.tls_ciphertext_ignored == 10 and tr.parse_errors_by_protocol == {} and tr.undetected == 0


def test_detection_made_on_ciphertext_is_dropped_at_the_first_plaintext():
    """Ciphertext that no detector recognised (the middle of a stream) counts as undetected and
    switches the connection off; plaintext from a library attached later starts afresh."""
    k = Kernel()
    tr = tracker(k)
    for i in range(3):
        tr.on_data(ev(Direction.INGRESS, b"\x9a" * 2000, False, i))
    assert tr.undetected == 1 and k.ignored == [7]
    (tt,) = serve(tr, ts=10)
    assert tt.tls and tt.transaction.protocol == "http1"


def test_a_port_override_session_never_sees_ciphertext():
    k = Kernel()
    tr = tracker(k, port_overrides={"http": [8443]})
    assert tr.on_data(ev(Direction.INGRESS, CLIENT_HELLO, False, 1)) == []
    assert tr.parse_errors_by_protocol == {} and tr.tls_unattached_open == 1
    (tt,) = serve(tr, ts=5)
    assert tt.tls and tt.transaction.protocol == "http1"


def test_an_empty_first_payload_does_not_use_up_the_inspection():
    k = Kernel()
    tr = tracker(k)
    tr.on_data(ev(Direction.INGRESS, b"", False, 1))
    tr.on_data(ev(Direction.INGRESS, CLIENT_HELLO, False, 2))
    assert tr.tls_unattached_open == 1


def test_https_scheme_on_spans_of_tls_transactions():
    k = Kernel()
    tr = tracker(k)
    (tt,) = serve(tr)
    asm = TelemetryAssembler(ProcessResources("/nonexistent", host_name="h"), MonotonicToWall(), None, hold_ns=0)
    asm.add(tt, 10**12)
    spans, _ = asm.flush()
    (span,) = spans
    assert span.attributes["url.scheme"] == "https"


@pytest.mark.parametrize(
    "data,tls",
    [
        (CLIENT_HELLO, True),
        (APP_DATA, True),
        (bytes.fromhex("1503030002") + b"\x02\x28", True),  # alert
        (bytes.fromhex("1403030001") + b"\x01", True),  # change_cipher_spec
        (bytes.fromhex("1603000020"), False),  # SSL 3.0 record version
        (bytes.fromhex("1603050020"), False),  # no such version
        (bytes.fromhex("1803030020"), False),  # heartbeat: not a content type we accept
        (bytes.fromhex("1703030000"), False),  # empty record
        (bytes.fromhex("17030348ff"), False),  # longer than a record can be
        (bytes.fromhex("160301"), False),  # too short to tell
        (REQ, False),
        (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", False),
        (bytes.fromhex("0000000804d2162f"), False),  # PostgreSQL SSLRequest
        (bytes.fromhex("4a0000000a382e302e3333"), False),  # MySQL server greeting
        (b"*1\r\n$4\r\nPING\r\n", False),
    ],
)
def test_tls_record_header(data, tls):
    assert is_tls_record(data) is tls


def test_by_process_counts_connections_protocols_and_what_tls_left_uncovered():
    k = Kernel()
    tr = tracker(k)
    serve(tr)  # conn 7: plaintext at the library, HTTP
    tr.on_data(ev(Direction.INGRESS, APP_DATA, False, 2000, conn_id=8))  # conn 8: ciphertext only
    (p,) = tr.by_process().values()
    assert p.connections == 2 and p.protocols == {"http"} and p.tls_plaintext == 1 and p.tls_ciphertext_only == 1
