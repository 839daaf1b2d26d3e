"""Decoding ring-buffer records into small typed events.

Layouts come from the ABI header through :mod:`receiver.bpf.abi`; each record kind is one
``struct.unpack_from`` call.  Malformed records (short, unknown kind) are counted, never raised.
"""

from __future__ import annotations

import ipaddress
import operator
import socket
from dataclasses import dataclass

from receiver.bpf.abi import Abi

AF_INET = socket.AF_INET
AF_INET6 = socket.AF_INET6
AF_UNIX = socket.AF_UNIX


@dataclass(frozen=True, slots=True)
class Tuple:
    """Local and remote endpoints of a socket (ports in host order)."""

    family: int
    transport: int
    local_addr: str
    local_port: int
    remote_addr: str
    remote_port: int


@dataclass(slots=True)
class DataEvent:
    kind: int
    direction: int
    role: int
    syscall: int
    pid: int
    tid: int
    conn_id: int
    cgroup_id: int
    ts_enter_ns: int
    ts_exit_ns: int
    tuple: Tuple
    total_len: int
    fd: int
    payload: bytes
    flags: int = 0  # ERX_FLAG_* (ERX_FLAG_TLS: plaintext read at the TLS library)


@dataclass(slots=True)
class ConnEvent:
    kind: int
    role: int
    syscall: int
    pid: int
    tid: int
    conn_id: int
    cgroup_id: int
    ts_enter_ns: int
    ts_exit_ns: int
    tuple: Tuple
    fd: int
    bytes_sent: int
    bytes_received: int


@dataclass(slots=True)
class ProcEvent:
    kind: int
    pid: int
    tid: int
    cgroup_id: int
    ts_ns: int
    ppid: int
    exit_code: int
    comm: str


def _addr(family: int, raw: bytes) -> str:
    if family == AF_INET:
        return socket.inet_ntop(AF_INET, raw[:4])
    if family == AF_INET6:
        a = ipaddress.IPv6Address(raw)
        return str(a.ipv4_mapped) if a.ipv4_mapped else str(a)
    return ""


class EventDecoder:
    """Turns raw records into DataEvent / ConnEvent / ProcEvent.  Counts what it cannot decode."""

    def __init__(self, abi: Abi) -> None:
        c = abi.const
        self.EV_DATA = c("ERX_EV_DATA")
        self.EV_LOG = c("ERX_EV_LOG")
        self.EV_SENDFILE = c("ERX_EV_SENDFILE")
        self.EV_CONN_OPEN = c("ERX_EV_CONN_OPEN")
        self.EV_CONN_CLOSE = c("ERX_EV_CONN_CLOSE")
        self.EV_PROC_EXEC = c("ERX_EV_PROC_EXEC")
        self.EV_PROC_EXIT = c("ERX_EV_PROC_EXIT")
        self.FLAG_TLS = c("ERX_FLAG_TLS")
        self._data, names = abi.struct_format("erx_data_event", stop_at="payload")
        self._data_names = names
        self._conn, self._conn_names = abi.struct_format("erx_conn_event")
        self._proc, self._proc_names = abi.struct_format("erx_proc_event")
        self._payload_off = abi.offsetof("erx_data_event", "payload")
        self._tuples: dict[tuple, Tuple] = {}
        self.malformed = 0
        # Field positions in the unpacked tuples, derived from the names (not retyped).
        self._di = {n: i for i, n in enumerate(names)}
        self._ci = {n: i for i, n in enumerate(self._conn_names)}
        self._pi = {n: i for i, n in enumerate(self._proc_names)}
        # Hot path: one itemgetter per group of fields, in the order the event takes them.
        d = self._di
        self._data_head = operator.itemgetter(*(d[f"hdr.{n}"] for n in (
            "direction", "role", "syscall", "pid", "tid", "conn_id", "cgroup_id", "ts_enter_ns", "ts_exit_ns")))
        self._data_tuple = operator.itemgetter(*(d[f"tuple.{n}"] for n in (
            "saddr", "daddr", "sport", "dport", "family", "transport")))
        self._data_tail = operator.itemgetter(d["total_len"], d["fd"])
        self._i_captured = d["captured_len"]
        self._i_flags = d["hdr.flags"]
        self._data_kinds = frozenset((self.EV_DATA, self.EV_LOG, self.EV_SENDFILE))

    def _tuple(self, saddr: bytes, daddr: bytes, sport: int, dport: int, family: int, transport: int) -> Tuple:
        return self._tuple_of((saddr, daddr, sport, dport, family, transport))

    def _tuple_of(self, key: tuple) -> Tuple:
        t = self._tuples.get(key)
        if t is None:
            if len(self._tuples) > 65536:
                self._tuples.clear()
            saddr, daddr, sport, dport, family, transport = key
            t = Tuple(family, transport, _addr(family, saddr), sport, _addr(family, daddr), dport)
            self._tuples[key] = t
        return t

    def decode(self, rec: bytes):
        """One record → event, or None (counted in ``malformed``)."""
        if not rec:
            self.malformed += 1
            return None
        kind = rec[0]
        try:
            if kind in self._data_kinds:
                v = self._data.unpack_from(rec)
                captured = v[self._i_captured]
                off = self._payload_off
                payload = rec[off : off + captured]
                if len(payload) != captured:
                    self.malformed += 1
                    return None
                key = self._data_tuple(v)
                tup = self._tuples.get(key) or self._tuple_of(key)
                total_len, fd = self._data_tail(v)
                return DataEvent(kind, *self._data_head(v), tup, total_len, fd, payload, v[self._i_flags])
            if kind in (self.EV_CONN_OPEN, self.EV_CONN_CLOSE):
                v = self._conn.unpack_from(rec)
                d = self._ci
                return ConnEvent(
                    kind,
                    v[d["hdr.role"]],
                    v[d["hdr.syscall"]],
                    v[d["hdr.pid"]],
                    v[d["hdr.tid"]],
                    v[d["hdr.conn_id"]],
                    v[d["hdr.cgroup_id"]],
                    v[d["hdr.ts_enter_ns"]],
                    v[d["hdr.ts_exit_ns"]],
                    self._tuple(
                        v[d["tuple.saddr"]],
                        v[d["tuple.daddr"]],
                        v[d["tuple.sport"]],
                        v[d["tuple.dport"]],
                        v[d["tuple.family"]],
                        v[d["tuple.transport"]],
                    ),
                    v[d["fd"]],
                    v[d["bytes_sent"]],
                    v[d["bytes_received"]],
                )
            if kind in (self.EV_PROC_EXEC, self.EV_PROC_EXIT):
                v = self._proc.unpack_from(rec)
                d = self._pi
                return ProcEvent(
                    kind,
                    v[d["hdr.pid"]],
                    v[d["hdr.tid"]],
                    v[d["hdr.cgroup_id"]],
                    v[d["hdr.ts_exit_ns"]],
                    v[d["ppid"]],
                    v[d["exit_code"]],
                    v[d["comm"]].split(b"\0", 1)[0].decode(errors="replace"),
                )
        except Exception:  # struct.error on a short record: count it, never raise to the poller
            self.malformed += 1
            return None
        self.malformed += 1
        return None
