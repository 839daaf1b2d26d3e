"""Decoding ring-buffer records into small typed events.

Layouts come from the ABI header through :mod:`receiver.bpf.abi`; each record kind is one
``struct.unpack_from`` call.  Malformed records (short, unknown kind) are counted, never raised.
"""

from __future__ import annotations

import errno
import ipaddress
import operator
import socket
import struct
from dataclasses import dataclass
from typing import Callable, NamedTuple

try:
    from _collections import _tuplegetter
except ImportError:  # pragma: no cover - other interpreters
    def _tuplegetter(index, doc):  # type: ignore[no-redef]
        return property(operator.itemgetter(index), doc=doc)

from receiver.bpf.abi import CTYPE_FORMAT, Abi
from receiver.model.endpoints import Tuple

from receiver.capture.http_events import HTTP_SCALARS, HTTP_STRS, HttpTxEvent, compiled_http_decoder  # noqa: F401 - HttpTxEvent: re-exported

AF_INET = socket.AF_INET
AF_INET6 = socket.AF_INET6
AF_UNIX = socket.AF_UNIX
_tuple_new = tuple.__new__




class DataEvent(tuple):  # type: ignore[type-arg]
    """One data record: bytes a process read or wrote (or counted, for sendfile).

    Built once per record on the capture thread, so it is a tuple subclass (immutable, built
    in one step): the constructor takes the fields in ``_fields`` order, and they are stored in
    ``_LAYOUT`` order — the record's scalar fields in the order of ``struct erx_data_event``
    (so a decoded record is its unpacked scalars plus two items), then ``tuple`` and
    ``payload``.  ``captured_len`` is ``len(payload)``."""

    __slots__ = ()
    _fields = ("kind", "direction", "role", "syscall", "pid", "tid", "conn_id", "cgroup_id", "ts_enter_ns",
               "ts_exit_ns", "tuple", "total_len", "fd", "payload", "flags")
    _LAYOUT = ("kind", "direction", "role", "syscall", "pid", "tid", "flags", "conn_id", "cgroup_id", "ts_enter_ns",
               "ts_exit_ns", "total_len", "captured_len", "fd", "tuple", "payload")

    def __new__(
        cls,
        kind: int,
        direction: int,
        role: int,
        syscall: int,
        pid: int,
        tid: int,
        conn_id: int,
        cgroup_id: int,
        ts_enter_ns: int,
        ts_exit_ns: int,
        tuple: Tuple,  # noqa: A002 - the field's name
        total_len: int,
        fd: int,
        payload: bytes,
        flags: int = 0,  # ERX_FLAG_* (ERX_FLAG_TLS: plaintext read at the TLS library)
    ) -> DataEvent:
        return _tuple_new(cls, (kind, direction, role, syscall, pid, tid, flags, conn_id, cgroup_id, ts_enter_ns,
                                ts_exit_ns, total_len, len(payload), fd, tuple, payload))

    kind: int = _tuplegetter(0, "ERX_EV_DATA, ERX_EV_LOG or ERX_EV_SENDFILE")  # type: ignore[assignment]
    direction: int = _tuplegetter(1, "Direction: 0 egress (written), 1 ingress (read)")  # type: ignore[assignment]
    role: int = _tuplegetter(2, "Role the kernel saw (connect/accept side)")  # type: ignore[assignment]
    syscall: int = _tuplegetter(3, "ERX_SYS_*")  # type: ignore[assignment]
    pid: int = _tuplegetter(4, "process id")  # type: ignore[assignment]
    tid: int = _tuplegetter(5, "thread id")  # type: ignore[assignment]
    flags: int = _tuplegetter(6, "ERX_FLAG_*")  # type: ignore[assignment]
    conn_id: int = _tuplegetter(7, "kernel connection id")  # type: ignore[assignment]
    cgroup_id: int = _tuplegetter(8, "cgroup id")  # type: ignore[assignment]
    ts_enter_ns: int = _tuplegetter(9, "syscall entry, monotonic ns")  # type: ignore[assignment]
    ts_exit_ns: int = _tuplegetter(10, "syscall exit, monotonic ns")  # type: ignore[assignment]
    total_len: int = _tuplegetter(11, "bytes the syscall transferred")  # type: ignore[assignment]
    captured_len: int = _tuplegetter(12, "bytes captured: len(payload)")  # type: ignore[assignment]
    fd: int = _tuplegetter(13, "file descriptor")  # type: ignore[assignment]
    payload: bytes = _tuplegetter(15, "captured bytes (at most total_len)")  # type: ignore[assignment]

    def _values(self) -> tuple:
        get = tuple.__getitem__
        return tuple(get(self, self._LAYOUT.index(f)) for f in self._fields)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return tuple.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return tuple.__ne__(self, other)

    __hash__ = None  # type: ignore[assignment]  # as the (mutable) dataclass it replaces

    def __repr__(self) -> str:
        return f"DataEvent({', '.join(f'{n}={v!r}' for n, v in zip(self._fields, self._values()))})"

    def __getnewargs__(self) -> tuple:
        return self._values()

    def __iter__(self):
        raise TypeError("DataEvent is not iterable")

    def __lt__(self, other: object) -> bool:
        return NotImplemented

    __le__ = __gt__ = __ge__ = __lt__

    tuple: Tuple = _tuplegetter(14, "the socket's endpoints")  # type: ignore[assignment,misc]


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


# enum erx_net_failure (by name, values from the header) -> error.type of a failed connect.
CONNECT_FAILURE_LABELS = {
    "ERX_NET_FAIL_REFUSED": "refused",
    "ERX_NET_FAIL_TIMEOUT": "timeout",
    "ERX_NET_FAIL_HOST_UNREACHABLE": "host_unreachable",
    "ERX_NET_FAIL_NET_UNREACHABLE": "network_unreachable",
    "ERX_NET_FAIL_RESET": "reset",
    "ERX_NET_FAIL_ABORTED": "aborted",
    "ERX_NET_FAIL_OTHER": "other",
}


def connect_failure_labels(abi: Abi) -> tuple[str, ...]:
    """error.type by enum erx_net_failure value."""
    out = ["other"] * abi.const("ERX_NET_FAIL_MAX")
    for name, label in CONNECT_FAILURE_LABELS.items():
        out[abi.const(name)] = label
    return tuple(out)


@dataclass(slots=True)
class ConnFailureEvent:
    """ERX_EV_CONN_FAILURE: a TCP connect that failed.  Times are kernel CLOCK_MONOTONIC ns."""

    kind: int
    pid: int
    tid: int  # the thread that called connect()
    conn_id: int  # the connection's id when connect() registered it (non-blocking), else 0
    cgroup_id: int
    start_ns: int  # the SYN was about to be sent
    end_ns: int  # the socket gave up
    tuple: Tuple
    error: int  # errno (sk_err), 0 when closed before connecting
    reason: str  # error.type: refused, timeout, host_unreachable, network_unreachable, reset, aborted, other

    @property
    def error_name(self) -> str:
        return errno.errorcode.get(self.error, str(self.error)) if self.error else ""

    @property
    def peer_address(self) -> str:
        return self.tuple.remote_addr

    @property
    def peer_port(self) -> int:
        return self.tuple.remote_port

    @property
    def local_address(self) -> str:
        return self.tuple.local_addr

    @property
    def local_port(self) -> int:
        return self.tuple.local_port


@dataclass(slots=True)
class LogPipeEvent:
    """ERX_EV_LOG_PIPE: process ``pid`` wrote to a stdout/stderr pipe not classified yet."""

    kind: int
    pid: int
    tid: int
    pipe_ino: int
    fd: int


class ServingEvent(NamedTuple):
    """ERX_EV_SERVING: thread ``tid`` of ``pid`` serves the paired request that arrived on server
    connection ``conn_id`` at ``ts_ns`` (sent before the thread acts for it)."""

    kind: int
    pid: int
    tid: int
    conn_id: int
    ts_ns: int
    multiplexed: bool = False  # ERX_FLAG_SERVING_MULTIPLEXED: the thread interleaves requests


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


def _scalars_struct(abi: Abi, name: str, stop_at: str, skip: str, size: int) -> struct.Struct | None:
    """A struct unpacking the fields of ``struct name`` up to ``stop_at`` without those whose name
    starts with ``skip`` (nor padding): None unless they are scalars that come out in
    DataEvent's layout order, and the struct covers ``size`` bytes."""
    fmt = ["<"]
    names = []
    pos = 0
    for fname, off, ctype, length in abi.flat_fields(name):
        if fname == stop_at:
            break
        if off > pos:
            fmt.append(f"{off - pos}x")
            pos = off
        code = CTYPE_FORMAT[ctype]
        width = struct.calcsize(code) * (length or 1)
        if fname.startswith(skip) or fname.split(".")[-1].startswith("_pad"):
            fmt.append(f"{width}x")
        elif length:
            return None
        else:
            fmt.append(code)
            names.append(fname.split(".")[-1])
        pos += width
    end = abi.offsetof(name, stop_at)
    if end > pos:
        fmt.append(f"{end - pos}x")
    s = struct.Struct("".join(fmt))
    if s.size != size or tuple(names) != DataEvent._LAYOUT[:-2]:
        return None
    return s


def _addr(family: int, raw: bytes) -> str:
    if family == AF_INET:
        return socket.inet_ntop(AF_INET, raw[:4])
    if family == AF_INET6:
        a = ipaddress.IPv6Address(raw)
        return str(a.ipv4_mapped) if a.ipv4_mapped else str(a)
    return ""


class EventDecoder:
    """Turns raw records into DataEvent / ConnEvent / ProcEvent / HttpTxEvent.  Counts what it
    cannot decode."""

    def __init__(self, abi: Abi) -> None:
        c = abi.const
        self.EV_DATA = c("ERX_EV_DATA")
        self.EV_LOG = c("ERX_EV_LOG")
        self.EV_SENDFILE = c("ERX_EV_SENDFILE")
        self.EV_CONN_OPEN = c("ERX_EV_CONN_OPEN")
        self.EV_CONN_CLOSE = c("ERX_EV_CONN_CLOSE")
        self.EV_PROC_EXEC = c("ERX_EV_PROC_EXEC")
        self.EV_PROC_EXIT = c("ERX_EV_PROC_EXIT")
        self.EV_CONN_FAILURE = c("ERX_EV_CONN_FAILURE")
        self.EV_LOG_PIPE = c("ERX_EV_LOG_PIPE")
        self.EV_HTTP_TX = c("ERX_EV_HTTP_TX")
        self.EV_SERVING = c("ERX_EV_SERVING")
        self._serving, serving_names = abi.struct_format("erx_serving_event")
        self._serving_fields = operator.itemgetter(*(serving_names.index(f"hdr.{n}")
                                                     for n in ("pid", "tid", "conn_id", "ts_exit_ns")))
        self._serving_flags = serving_names.index("hdr.flags")
        self.FLAG_SERVING_MULTIPLEXED = c("ERX_FLAG_SERVING_MULTIPLEXED")
        self.FLAG_TLS = c("ERX_FLAG_TLS")
        self._data, names = abi.struct_format("erx_data_event", stop_at="payload")
        self._data_names = names
        self._conn, self._conn_names = abi.struct_format("erx_conn_event")
        self._proc, self._proc_names = abi.struct_format("erx_proc_event")
        self._fail, self._fail_names = abi.struct_format("erx_conn_failure_event")
        self._fi = {n: i for i, n in enumerate(self._fail_names)}
        self._pipe, pipe_names = abi.struct_format("erx_log_pipe_event")
        self._pipe_fields = operator.itemgetter(*(pipe_names.index(n) for n in ("hdr.pid", "hdr.tid", "pipe_ino", "fd")))
        self._failure_labels = connect_failure_labels(abi)
        self._http, http_names = abi.struct_format("erx_http_tx_event", stop_at="strings")
        self._http_strings_off = abi.offsetof("erx_http_tx_event", "strings")
        self._hi = hi = {n: i for i, n in enumerate(http_names)}
        self._hi_strings_len = hi["strings_len"]
        # HttpTxEvent in one step: its scalar fields picked from the unpacked record in its order.
        self._http_scalars = operator.itemgetter(*(hi[n] for n in HTTP_SCALARS))
        self._http_strs = operator.itemgetter(*(hi[n] for n in HTTP_STRS))
        self._http_interim = operator.itemgetter(*(hi[f"interim[{i}]"] for i in range(c("ERX_HTTP_MAX_INTERIM"))))
        tuple_offsets = [(o, ct, n) for name, o, ct, n in abi.flat_fields("erx_http_tx_event") if name.startswith("tuple.")]
        self._http_t0 = min(o for o, _, _ in tuple_offsets)
        self._http_t1 = max(o + abi.ffi.sizeof(ct) * (n or 1) for o, ct, n in tuple_offsets)
        self._max_interim = c("ERX_HTTP_MAX_INTERIM")
        self._payload_off = abi.offsetof("erx_data_event", "payload")
        self._tuples: dict[tuple | bytes, Tuple] = {}  # endpoints (data: their record bytes) -> Tuple
        self._addrs: dict[bytes, str] = {}  # family (2 bytes, little-endian) + address bytes -> text
        # An HTTP record → HttpTxEvent, or None when malformed: compiled (the same result, 0.4 against 1.5 µs), or Python.
        self._http_decoder = compiled_http_decoder(
            abi, self._tuples, self._addrs, _addr, key=(self._http_t0, self._http_t1), fixed_size=self._http.size,
        ) or self._decode_http_py
        self.malformed = 0
        # Field positions in the unpacked tuples, derived from the names (not retyped).
        self._di = {n: i for i, n in enumerate(names)}
        self._ci = {n: i for i, n in enumerate(self._conn_names)}
        self._pi = {n: i for i, n in enumerate(self._proc_names)}
        # Hot path: the record's scalar fields in DataEvent's layout.  That is the order of the
        # record, so one unpack of the scalars alone gives them (_fast_decode; the endpoints are
        # only unpacked for endpoint bytes not seen lately); were it not, one itemgetter would
        # reorder the full unpack (decode).
        d = self._di
        self._data_fields = operator.itemgetter(*(
            d[n if n in ("total_len", "captured_len", "fd") else f"hdr.{n}"] for n in DataEvent._LAYOUT[:-2]))
        self._data_tuple = operator.itemgetter(*(d[f"tuple.{n}"] for n in (
            "saddr", "daddr", "sport", "dport", "family", "transport")))
        self._i_captured = d["captured_len"]
        self._data_kinds = frozenset((self.EV_DATA, self.EV_LOG, self.EV_SENDFILE))
        # The endpoint bytes of a data record key the Tuple cache (no unpacking needed to look up).
        tuple_fields = [(off, ctype, n) for name, off, ctype, n in abi.flat_fields("erx_data_event")
                        if name.startswith("tuple.")]
        self._tuple_start = min(off for off, _, _ in tuple_fields)
        self._tuple_end = max(off + abi.ffi.sizeof(ctype) * (n or 1) for off, ctype, n in tuple_fields)
        self._scalars = _scalars_struct(abi, "erx_data_event", "payload", "tuple.", self._data.size)
        if self._scalars is not None:
            self.decode = self._fast_decode()  # type: ignore[method-assign]

    def _fast_decode(self) -> Callable[[bytes], DataEvent | ConnEvent | ProcEvent | None]:
        """:meth:`decode` for a record layout in DataEvent's order, with everything it uses bound
        in a closure: paired HTTP/1 transactions go straight to their decoder, data records take
        one unpack of their scalars and no attribute lookup; other records go through
        :meth:`decode` itself."""
        data_kinds = self._data_kinds
        scalars = self._scalars.unpack_from  # type: ignore[union-attr]
        i_captured = DataEvent._LAYOUT.index("captured_len")
        off = self._payload_off
        t0, t1 = self._tuple_start, self._tuple_end
        tuples_get = self._tuples.get  # the dict is only ever cleared, never replaced
        tuple_of = self._data_tuple_of
        generic = EventDecoder.decode.__get__(self)
        new = _tuple_new
        ev_http, decode_http = self.EV_HTTP_TX, self._http_decoder

        def decode(rec: bytes) -> DataEvent | ConnEvent | ProcEvent | HttpTxEvent | None:
            """One record → event, or None (counted in ``malformed``)."""
            kind = rec[0] if rec else -1
            if kind == ev_http:  # a transaction paired in the kernel (the usual record)
                try:
                    ev = decode_http(rec)
                except Exception:  # struct.error on a short record: count it, never raise to the poller
                    ev = None
                if ev is None:
                    self.malformed += 1
                return ev
            if kind in data_kinds:
                try:
                    v = scalars(rec)
                    end = off + v[i_captured]
                    if len(rec) >= end:
                        key = rec[t0:t1]
                        return new(DataEvent, v + (tuples_get(key) or tuple_of(key, rec), rec[off:end]))
                except Exception:  # struct.error on a short record: count it, never raise to the poller
                    pass
                self.malformed += 1
                return None
            return generic(rec)

        return decode

    def _addr(self, family: int, raw: bytes) -> str:
        """An address as text, cached: a connection per request makes a new Tuple each time (its
        client port is new), between the same few addresses."""
        key = family.to_bytes(2, "little") + raw  # the compiled HTTP decoder's key: one cache for both
        text = self._addrs.get(key)
        if text is None:
            if len(self._addrs) >= 4096:
                self._addrs.clear()
            text = self._addrs[key] = _addr(family, raw)
        return text

    def _tuple(self, saddr: bytes, daddr: bytes, sport: int, dport: int, family: int, transport: int) -> Tuple:
        return self._tuple_of((saddr, daddr, sport, dport, family, transport))

    def _tuple_of(self, key: tuple) -> Tuple:
        t = self._tuples.get(key)
        if t is None:
            if len(self._tuples) > 65536:
                self._tuples.clear()
            saddr, daddr, sport, dport, family, transport = key
            t = Tuple(family, transport, self._addr(family, saddr), sport, self._addr(family, daddr), dport)
            self._tuples[key] = t
        return t

    def _data_tuple_of(self, key: bytes, rec: bytes) -> Tuple:
        """The endpoints of a data record whose endpoint bytes (``key``) are not cached."""
        saddr, daddr, sport, dport, family, transport = self._data_tuple(self._data.unpack_from(rec))
        t = Tuple(family, transport, self._addr(family, saddr), sport, self._addr(family, daddr), dport)
        if len(self._tuples) > 65536:
            self._tuples.clear()
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
                off = self._payload_off
                end = off + v[self._i_captured]
                if len(rec) < end:
                    self.malformed += 1
                    return None
                key = rec[self._tuple_start : self._tuple_end]
                tup = self._tuples.get(key) or self._data_tuple_of(key, rec)
                return _tuple_new(DataEvent, self._data_fields(v) + (tup, rec[off:end]))
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
            if kind == self.EV_LOG_PIPE:
                return LogPipeEvent(kind, *self._pipe_fields(self._pipe.unpack_from(rec)))
            if kind == self.EV_CONN_FAILURE:
                v = self._fail.unpack_from(rec)
                d = self._fi
                reason = v[d["reason"]]
                return ConnFailureEvent(
                    kind, v[d["hdr.pid"]], v[d["hdr.tid"]], v[d["hdr.conn_id"]], v[d["hdr.cgroup_id"]],
                    v[d["hdr.ts_enter_ns"]], v[d["hdr.ts_exit_ns"]],
                    self._tuple(v[d["tuple.saddr"]], v[d["tuple.daddr"]], v[d["tuple.sport"]], v[d["tuple.dport"]],
                                v[d["tuple.family"]], v[d["tuple.transport"]]),
                    v[d["error"]],
                    self._failure_labels[reason] if reason < len(self._failure_labels) else "other",
                )
            if kind == self.EV_HTTP_TX:
                ev = self._http_decoder(rec)
                if ev is None:
                    self.malformed += 1
                return ev
            if kind == self.EV_SERVING:
                v = self._serving.unpack_from(rec)
                return ServingEvent(kind, *self._serving_fields(v),
                                    bool(v[self._serving_flags] & self.FLAG_SERVING_MULTIPLEXED))
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

    def _decode_http_py(self, rec: bytes) -> HttpTxEvent | None:
        """The Python decoder of an HTTP record (the reference of the compiled one); None when
        its strings run past its end, ``struct.error`` when it is shorter than its fields."""
        v = self._http.unpack_from(rec)
        off = self._http_strings_off
        end = off + v[self._hi_strings_len]
        if len(rec) < end:
            return None
        s = rec[off:end]
        (method_len, target_len, host_off, host_len, ua_off, ua_len, tp_off, tp_len, ts_off, ts_len,
         n_interim) = self._http_strs(v)
        key = rec[self._http_t0:self._http_t1]
        tup = self._tuples.get(key) or self._http_tuple_of(key, v)
        return _tuple_new(HttpTxEvent, self._http_scalars(v) + (
            tup, self._http_interim(v)[:n_interim] if n_interim else (),
            s[:method_len].decode("latin-1"), s[method_len:method_len + target_len].decode("latin-1"),
            s[host_off:host_off + host_len].decode("latin-1") if host_len else "",
            s[ua_off:ua_off + ua_len].decode("latin-1") if ua_len else "",
            s[tp_off:tp_off + tp_len].decode("latin-1") if tp_len else "",
            s[ts_off:ts_off + ts_len].decode("latin-1") if ts_len else "",
        ))

    def _http_tuple_of(self, key: bytes, v: tuple) -> Tuple:
        d = self._hi
        t = self._tuple(v[d["tuple.saddr"]], v[d["tuple.daddr"]], v[d["tuple.sport"]], v[d["tuple.dport"]],
                        v[d["tuple.family"]], v[d["tuple.transport"]])
        if len(self._tuples) > 65536:
            self._tuples.clear()
        self._tuples[key] = t
        return t
