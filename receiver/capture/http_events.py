"""Paired HTTP/1 transactions as records (``ERX_EV_HTTP_TX``, ``struct erx_http_tx_event``) and
as events (:class:`HttpTxEvent`), and the compiled decoder between them (``_http_record.c``,
built with the package by ``setup.py``), told where each field lies from the ABI.

:class:`~receiver.capture.events.EventDecoder` owns the decoding: the compiled decoder when it
was built, its own Python one (the reference, ``_decode_http_py``) otherwise."""

from __future__ import annotations

from typing import Callable, NamedTuple

from receiver.bpf.abi import CTYPE_FORMAT, Abi
from receiver.model.endpoints import Tuple

try:
    from receiver.capture import _http_record
except ImportError:  # pragma: no cover - the build always has it; tests check it is there
    _http_record = None


class HttpTxEvent(NamedTuple):
    """One HTTP/1 transaction paired in the kernel (ERX_EV_HTTP_TX): its request and final
    response, no body byte.

    ``start_ns``/``end_ns`` are the ``ts_exit_ns`` of the syscalls that carried the request's
    first byte and the response's last (the close for a body that ran to close, or a request
    that got no response): the payload path's ``Transaction`` times.  ``tid`` (and ``syscall``,
    ``ts_exit_ns``) are those of the syscall that completed the transaction; ``req_tid`` the
    thread that read (server) or wrote (client) the request's first byte.  Strings are the
    request's, cut at the bounds of bpf/src/abi/events.h (``http_flags`` says which were cut);
    a header that was absent is ``""``.  ``status`` is 0 when no final response came.

    A named tuple, built in one step on the capture thread (one per paired transaction)."""

    # The record's scalars first, then what is made of its other bytes: one itemgetter call and
    # one tuple concatenation build it (EventDecoder._decode_http).
    kind: int
    direction: int  # of the requests: egress when the traced process is the client
    role: int
    syscall: int
    pid: int
    tid: int
    flags: int  # ERX_FLAG_* (ERX_FLAG_TLS: plaintext read at the TLS library)
    conn_id: int
    cgroup_id: int
    ts_enter_ns: int
    ts_exit_ns: int
    start_ns: int
    end_ns: int
    req_body_size: int
    req_wire_size: int
    resp_body_size: int
    resp_wire_size: int
    req_tid: int
    http_flags: int  # ERX_HTTP_F_*
    req_head_size: int
    resp_head_size: int
    status: int
    method_code: int  # enum erx_http_method
    target_wire_len: int  # the target's length on the wire (> len(target) when cut)
    req_version: int  # minor version: 1 for "1.1"
    resp_version: int
    n_interim: int
    tuple: Tuple
    interim_status_codes: tuple[int, ...]  # the first ERX_HTTP_MAX_INTERIM of them
    method: str
    target: str
    host: str
    user_agent: str
    traceparent: str
    tracestate: str


# The fields of struct erx_http_tx_event that HttpTxEvent's scalars are, in its order (its
# method_code is the record's method), and the string bounds the strings are cut at.
HTTP_SCALARS = tuple(f"hdr.{n}" for n in (
    "kind", "direction", "role", "syscall", "pid", "tid", "flags", "conn_id", "cgroup_id", "ts_enter_ns",
    "ts_exit_ns")) + (
    "start_ns", "end_ns", "req_body_size", "req_wire_size", "resp_body_size", "resp_wire_size", "req_tid",
    "http_flags", "req_head_size", "resp_head_size", "status", "method", "target_wire_len", "req_version",
    "resp_version", "n_interim")
HTTP_STRS = ("method_len", "target_len", "host_off", "host_len", "user_agent_off", "user_agent_len",
              "traceparent_off", "traceparent_len", "tracestate_off", "tracestate_len", "n_interim")


def compiled_http_decoder(abi: Abi, tuples: dict, addrs: dict, addr_text: Callable[[int, bytes], str], *,
                          key: tuple[int, int], fixed_size: int) -> Callable[[bytes], HttpTxEvent | None] | None:
    """The compiled decoder of HTTP records (None when not built): record → :class:`HttpTxEvent`,
    or None when malformed.  ``tuples`` (record bytes in ``key`` → :class:`Tuple`) and ``addrs``
    (family as 2 little-endian bytes + address bytes → text) are the caller's caches, shared;
    ``addr_text`` writes an address as text."""
    if _http_record is None:
        return None
    # (offset, size, signed) of each scalar field; of an array: of its first item
    fields = {name: (off, abi.ffi.sizeof(ctype), CTYPE_FORMAT[ctype].islower())
              for name, off, ctype, _ in abi.flat_fields("erx_http_tx_event")}
    return _http_record.Decoder(
        event_type=HttpTxEvent, tuple_type=Tuple, scalars=tuple(fields[n] for n in HTTP_SCALARS),
        strs=tuple(fields[n] for n in HTTP_STRS), interim=fields["interim"],
        n_interim_max=abi.const("ERX_HTTP_MAX_INTERIM"), strings_len=fields["strings_len"],
        strings_off=abi.offsetof("erx_http_tx_event", "strings"),
        addresses=(fields["tuple.saddr"][0], fields["tuple.daddr"][0]),
        endpoint=tuple(fields[f"tuple.{n}"] for n in ("sport", "dport", "family", "transport")),
        key=key, fixed_size=fixed_size, tuples=tuples, addrs=addrs, addr_text=addr_text,
    ).decode
