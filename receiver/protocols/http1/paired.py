"""HTTP/1 transactions the kernel paired (``ERX_EV_HTTP_TX``) as the parser's own types.

The kernel keeps what a span needs of a request — method, target, version, ``Host``,
``User-Agent``, ``traceparent``/``tracestate`` — and the response's status and sizes; this turns
one such record into the :class:`~receiver.protocols.base.Transaction` the payload path's parser
makes of the same bytes (tests/kernel/test_http_oracle.py holds the two to each other), so one
mapping serves both.  The headers become the raw field section the parser's messages keep
(:mod:`.types`), with the fields the kernel kept, in a fixed order.
"""

from __future__ import annotations

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


class PairedHttp1:
    """Record → Transaction.  ``flags`` are the ``ERX_HTTP_F_*`` bits by name (from the ABI)."""

    def __init__(self, flags: dict[str, int]) -> None:
        self._req_chunked = flags["ERX_HTTP_F_REQ_CHUNKED"]
        self._resp_chunked = flags["ERX_HTTP_F_RESP_CHUNKED"]
        self._close_delimited = flags["ERX_HTTP_F_CLOSE_DELIMITED"]
        self._resp_truncated = flags["ERX_HTTP_F_RESP_TRUNCATED"]
        self._req_truncated = flags["ERX_HTTP_F_REQ_TRUNCATED"]
        self._no_response = flags["ERX_HTTP_F_NO_RESPONSE"]

    def transaction(self, ev, role: Role) -> Transaction:
        f = ev.http_flags
        # The kernel's fields, in the order it keeps them (the payload path's parser keeps wire
        # order; a paired request has at most these four).
        known = {}
        if ev.host:
            known["host"] = ev.host
        if ev.user_agent:
            known["user-agent"] = ev.user_agent
        if ev.traceparent:
            known["traceparent"] = ev.traceparent
        if ev.tracestate:
            known["tracestate"] = ev.tracestate
        v = ev.req_version
        request = _tuple_new(PairedRequest, (
            ev.method, ev.target, _VERSIONS[v] if v < 10 else f"1.{v}", [None, known],
            ev.req_body_size, ev.req_head_size, ev.req_wire_size, bool(f & self._req_chunked), (),
            bool(f & self._req_truncated),
        ))
        response = None
        if not f & self._no_response and ev.status:
            v = ev.resp_version
            response = _tuple_new(Http1Response, (
                _VERSIONS[v] if v < 10 else f"1.{v}", ev.status, "", [b"", None], ev.resp_body_size,
                ev.resp_head_size, ev.resp_wire_size, bool(f & self._resp_chunked), (),
                bool(f & self._resp_truncated), bool(f & self._close_delimited), ev.interim_status_codes,
            ))
        return Transaction(PROTOCOL, role, request, response, ev.start_ns, max(ev.end_ns, ev.start_ns),
                           ev.req_wire_size, ev.resp_wire_size if response is not None else 0)
