"""Decoding ring-buffer records: data records through the decoder's fast path, every other
kind and every malformed record as before (counted, never raised)."""

from __future__ import annotations

import socket

import pytest

from receiver.bpf.abi import load_abi
from receiver.capture.events import DataEvent, EventDecoder
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
