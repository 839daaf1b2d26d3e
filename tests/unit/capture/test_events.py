"""Decoding ring-buffer records: data records through the decoder's fast path, every other
kind and every malformed record as before (counted, never raised)."""

from __future__ import annotations

import socket

import pytest

from receiver.bpf.abi import load_abi
from receiver.capture.events import DataEvent, EventDecoder, HttpTxEvent
from receiver.model.endpoints import Tuple

ABI = load_abi()
C = ABI.const
DATA, NAMES = ABI.struct_format("erx_data_event", stop_at="payload")
CONN, CONN_NAMES = ABI.struct_format("erx_conn_event")


def v4(addr: str) -> bytes:
    return socket.inet_aton(addr) + b"\0" * 12


def data_record(payload: bytes, kind: int = C("ERX_EV_DATA"), captured: int | None = None, **over) -> bytes:
    values = {
        "hdr.kind": kind, "hdr.direction": 1, "hdr.role": 2, "hdr.syscall": 3, "hdr.pid": 41, "hdr.tid": 42,
        "hdr.flags": 0, "hdr.conn_id": 7, "hdr.cgroup_id": 9, "hdr.ts_enter_ns": 100, "hdr.ts_exit_ns": 200,
        "tuple.saddr": v4("127.0.0.1"), "tuple.daddr": v4("10.0.0.2"), "tuple.sport": 8080, "tuple.dport": 40000,
        "tuple.family": socket.AF_INET, "tuple.transport": 1, "total_len": len(payload) + 5,
        "captured_len": len(payload) if captured is None else captured, "fd": 12,
    }
    values.update(over)
    return DATA.pack(*(values[n] for n in NAMES)) + payload


def test_a_data_record_decodes_to_its_fields() -> None:
    dec = EventDecoder(ABI)
    ev = dec.decode(data_record(b"GET / HTTP/1.1\r\n\r\n", **{"hdr.flags": C("ERX_FLAG_TLS")}))
    assert ev == DataEvent(C("ERX_EV_DATA"), 1, 2, 3, 41, 42, 7, 9, 100, 200,
                           Tuple(socket.AF_INET, 1, "127.0.0.1", 8080, "10.0.0.2", 40000), 23, 12,
                           b"GET / HTTP/1.1\r\n\r\n", C("ERX_FLAG_TLS"))
    assert (ev.kind, ev.direction, ev.role, ev.syscall, ev.pid, ev.tid, ev.conn_id, ev.cgroup_id) == (
        C("ERX_EV_DATA"), 1, 2, 3, 41, 42, 7, 9)
    assert (ev.ts_enter_ns, ev.ts_exit_ns, ev.total_len, ev.fd, ev.flags) == (100, 200, 23, 12, C("ERX_FLAG_TLS"))
    assert ev.payload == b"GET / HTTP/1.1\r\n\r\n" and ev.captured_len == len(ev.payload)
    assert dec.malformed == 0
    assert "conn_id=7" in repr(ev)


def test_endpoints_are_shared_between_records_and_follow_their_bytes() -> None:
    dec = EventDecoder(ABI)
    a, b = dec.decode(data_record(b"x")), dec.decode(data_record(b"y", **{"hdr.conn_id": 8}))
    assert a.tuple is b.tuple
    v6 = dec.decode(data_record(b"z", **{"tuple.family": socket.AF_INET6, "tuple.saddr": socket.inet_pton(
        socket.AF_INET6, "::ffff:10.1.2.3"), "tuple.daddr": socket.inet_pton(socket.AF_INET6, "fe80::1")}))
    assert (v6.tuple.local_addr, v6.tuple.remote_addr) == ("10.1.2.3", "fe80::1")
    assert hash(a.tuple) == hash(Tuple(socket.AF_INET, 1, "127.0.0.1", 8080, "10.0.0.2", 40000))


@pytest.mark.parametrize("kind", ["ERX_EV_LOG", "ERX_EV_SENDFILE"])
def test_other_data_kinds(kind: str) -> None:
    ev = EventDecoder(ABI).decode(data_record(b"", kind=C(kind)))
    assert isinstance(ev, DataEvent) and ev.kind == C(kind) and ev.payload == b"" and ev.total_len == 5


@pytest.mark.parametrize(
    "record",
    [
        b"",
        bytes([C("ERX_EV_DATA")]),
        data_record(b"abc")[:40],  # short header
        data_record(b"abc", captured=4),  # payload shorter than captured_len
        bytes([200]) + b"\0" * 200,  # unknown kind
        bytes([C("ERX_EV_CONN_OPEN")]) + b"\0" * 10,  # short conn record
    ],
)
def test_malformed_records_are_counted(record: bytes) -> None:
    dec = EventDecoder(ABI)
    assert dec.decode(record) is None and dec.malformed == 1


def test_conn_records_still_decode() -> None:
    values = {n: 0 for n in CONN_NAMES}
    values.update({"hdr.kind": C("ERX_EV_CONN_OPEN"), "hdr.conn_id": 7, "tuple.saddr": v4("10.0.0.1"),
                   "tuple.daddr": v4("10.0.0.2"), "tuple.family": socket.AF_INET, "tuple.sport": 1, "tuple.dport": 2})
    ev = EventDecoder(ABI).decode(CONN.pack(*(values[n] for n in CONN_NAMES)))
    assert ev.conn_id == 7 and ev.tuple == Tuple(socket.AF_INET, 0, "10.0.0.1", 1, "10.0.0.2", 2)


def test_data_events_are_immutable_values() -> None:
    t = Tuple(socket.AF_INET, 1, "a", 1, "b", 2)
    ev = DataEvent(1, 0, 1, 2, 3, 4, 5, 6, 7, 8, t, 9, 10, b"p")
    assert ev.flags == 0 and ev.captured_len == 1
    with pytest.raises(AttributeError):
        ev.pid = 1  # type: ignore[misc]
    assert ev == DataEvent(1, 0, 1, 2, 3, 4, 5, 6, 7, 8, t, 9, 10, b"p", 0)
    assert ev != DataEvent(1, 0, 1, 2, 3, 4, 5, 6, 7, 8, t, 9, 10, b"q")


HTTP, HTTP_NAMES = ABI.struct_format("erx_http_tx_event", stop_at="strings")


def http_record(strings: bytes = b"GET/a?b=1example:80curl/800-x-y-01", cut: int = 0, **over) -> bytes:
    """An ERX_EV_HTTP_TX record: method "GET", target "/a?b=1", Host "example:80", User-Agent
    "curl/8", traceparent "00-x-y-01", no tracestate."""
    values = {n: 0 for n in HTTP_NAMES}
    values.update({
        "hdr.kind": C("ERX_EV_HTTP_TX"), "hdr.direction": 1, "hdr.role": 2, "hdr.syscall": 4, "hdr.pid": 41,
        "hdr.tid": 43, "hdr.conn_id": 7, "hdr.ts_exit_ns": 900, "tuple.saddr": v4("127.0.0.1"),
        "tuple.daddr": v4("127.0.0.2"), "tuple.sport": 80, "tuple.dport": 5000, "tuple.family": socket.AF_INET,
        "tuple.transport": 1, "start_ns": 100, "end_ns": 900, "req_body_size": 0, "req_wire_size": 60,
        "resp_body_size": 30, "resp_wire_size": 130, "req_tid": 42, "req_head_size": 60, "resp_head_size": 100,
        "status": 200, "method": C("ERX_HTTP_GET"), "method_len": 3, "target_len": 6, "target_wire_len": 6,
        "host_off": 9, "host_len": 10, "user_agent_off": 19, "user_agent_len": 6, "traceparent_off": 25,
        "traceparent_len": 9, "tracestate_off": 34, "tracestate_len": 0, "strings_len": len(strings),
        "req_version": 1, "resp_version": 1, "n_interim": 2, "interim[0]": 100, "interim[1]": 103,
    })
    values.update(over)
    record = HTTP.pack(*(values[n] for n in HTTP_NAMES)) + strings
    return record[: len(record) - cut]


def test_an_http_transaction_record_decodes_to_its_fields() -> None:
    dec = EventDecoder(ABI)
    ev = dec.decode(http_record())
    assert isinstance(ev, HttpTxEvent) and dec.malformed == 0
    assert (ev.method, ev.target, ev.host, ev.user_agent, ev.traceparent, ev.tracestate) == (
        "GET", "/a?b=1", "example:80", "curl/8", "00-x-y-01", "")
    assert (ev.status, ev.req_version, ev.resp_version, ev.interim_status_codes, ev.n_interim) == (
        200, 1, 1, (100, 103), 2)
    assert (ev.start_ns, ev.end_ns, ev.req_wire_size, ev.resp_body_size, ev.resp_wire_size) == (100, 900, 60, 30, 130)
    assert (ev.pid, ev.tid, ev.req_tid, ev.conn_id, ev.role, ev.direction) == (41, 43, 42, 7, 2, 1)
    assert ev.tuple == Tuple(socket.AF_INET, 1, "127.0.0.1", 80, "127.0.0.2", 5000)
    assert ev.method_code == C("ERX_HTTP_GET")


def test_http_record_strings_are_latin1_and_interim_codes_bounded() -> None:
    ev = EventDecoder(ABI).decode(http_record(b"GET/\xe9", target_len=2, host_len=0, user_agent_len=0,
                                              traceparent_len=0, n_interim=9, **{"interim[2]": 102, "interim[3]": 101}))
    assert ev.target == "/\xe9" and ev.interim_status_codes == (100, 103, 102, 101) and ev.n_interim == 9


def test_short_http_record_is_counted() -> None:
    dec = EventDecoder(ABI)
    assert dec.decode(http_record(cut=1)) is None and dec.malformed == 1
    assert dec.decode(http_record()[:100]) is None and dec.malformed == 2
