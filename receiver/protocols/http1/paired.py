"""HTTP/1 transactions the kernel paired (``ERX_EV_HTTP_TX``) as the parser's own types.

The kernel keeps what a span needs of a request — method, target, version, ``Host``,
``User-Agent``, ``traceparent``/``tracestate`` — and the response's status and sizes; this turns
one such record into the :class:`~receiver.protocols.base.Transaction` the payload path's parser
makes of the same bytes (tests/kernel/test_http_oracle.py holds the two to each other), so one
mapping serves both.  The headers become the raw field section the parser's messages keep
(:mod:`.types`), with the fields the kernel kept, in a fixed order.
"""

from __future__ import annotations

from collections.abc import Sequence
from operator import itemgetter

from receiver.protocols.base import Role, Transaction

from .stitch import PROTOCOL
from .types import Http1Request, Http1Response

_tuple_new = tuple.__new__
_VERSIONS = tuple(f"1.{d}" for d in range(10))
_SPELLED = {"host": "Host", "user-agent": "User-Agent", "traceparent": "traceparent", "tracestate": "tracestate"}


class PairedRequest(Http1Request):
    """A request the kernel paired: what it kept of the headers, looked up without parsing.  The
    headers cell holds ``[None, known]``: ``known`` maps the lower-case names the kernel keeps
    to their values, and the ``(name, value)`` pairs are made from it on first access of
    :attr:`headers` (the spans read headers through :meth:`header` only)."""

    __slots__ = ()

    @property
    def headers(self):
        cell = self[3]
        h = cell[0]
        if h is None:
            h = cell[0] = tuple((_SPELLED[k], v) for k, v in cell[1].items())
        return h

    def header(self, name: str) -> str | None:
        known = self[3][1]
        value = known.get(name)
        if value is None and not name.islower():
            value = known.get(name.lower())
        return value


# The fields of a paired record (capture.events.HttpTxEvent) a transaction is made of, read
# with one itemgetter call.
_USED = ("http_flags", "method", "target", "req_version", "req_body_size", "req_head_size", "req_wire_size",
         "status", "resp_version", "resp_body_size", "resp_head_size", "resp_wire_size", "interim_status_codes",
         "start_ns", "end_ns", "host", "user_agent", "traceparent", "tracestate")


class PairedHttp1:
    """Record → Transaction.  ``flags`` are the ``ERX_HTTP_F_*`` bits by name (from the ABI);
    ``event_fields`` the record's field names in order (``HttpTxEvent._fields``)."""

    def __init__(self, flags: dict[str, int], event_fields: Sequence[str]) -> None:
        self._req_chunked = flags["ERX_HTTP_F_REQ_CHUNKED"]
        self._resp_chunked = flags["ERX_HTTP_F_RESP_CHUNKED"]
        self._close_delimited = flags["ERX_HTTP_F_CLOSE_DELIMITED"]
        self._resp_truncated = flags["ERX_HTTP_F_RESP_TRUNCATED"]
        self._req_truncated = flags["ERX_HTTP_F_REQ_TRUNCATED"]
        self._no_response = flags["ERX_HTTP_F_NO_RESPONSE"]
        fields = list(event_fields)
        self._used = itemgetter(*(fields.index(name) for name in _USED))

    def transaction(self, ev, role: Role) -> Transaction:
        (f, method, target, req_v, req_body, req_head, req_wire, status, resp_v, resp_body, resp_head, resp_wire,
         interim, start, end, host, ua, tp, ts) = self._used(ev)
        # The kernel's fields, in the order it keeps them (the payload path's parser keeps wire
        # order; a paired request has at most these four).
        known = {}
        if host:
            known["host"] = host
        if ua:
            known["user-agent"] = ua
        if tp:
            known["traceparent"] = tp
        if ts:
            known["tracestate"] = ts
        request = _tuple_new(PairedRequest, (
            method, target, _VERSIONS[req_v] if req_v < 10 else f"1.{req_v}", [None, known],
            req_body, req_head, req_wire, f & self._req_chunked != 0, (), f & self._req_truncated != 0,
        ))
        if f & self._no_response or not status:
            return Transaction(PROTOCOL, role, request, None, start, max(end, start), req_wire, 0)
        response = _tuple_new(Http1Response, (
            _VERSIONS[resp_v] if resp_v < 10 else f"1.{resp_v}", status, "", [b"", None], resp_body, resp_head,
            resp_wire, f & self._resp_chunked != 0, (), f & self._resp_truncated != 0,
            f & self._close_delimited != 0, interim,
        ))
        return Transaction(PROTOCOL, role, request, response, start, max(end, start), req_wire, resp_wire)
