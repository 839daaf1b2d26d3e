"""Pairing HTTP/1.x requests with responses on one connection.

HTTP/1.x has no request ids: responses come back in request order (RFC 9112 §9.3.2), so the
n-th final response answers the n-th request, pipelined or not.  An *exchange* is opened when
a request head is parsed (a response may arrive before the request body is done, e.g. after
``Expect: 100-continue`` or an early 413) and becomes a :class:`Transaction` once both its
request and its final response are complete.  Transactions leave in request order.

Bounds: at most ``max_pending`` exchanges are kept; opening one more drops the oldest, counted
in :attr:`Http1Stitcher.dropped_requests`.
"""

from __future__ import annotations

from collections import deque

from receiver.protocols.base import Role, Transaction

from .types import Http1Request, Http1Response

PROTOCOL = "http1"


class Exchange:
    """One request and, once it arrives, its response; mutable while the exchange is open."""

    __slots__ = ("method", "start_ns", "request", "response", "end_ns", "interim")

    def __init__(self, method: str, start_ns: int) -> None:
        self.method = method
        self.start_ns = start_ns  # first byte of the request
        self.request: Http1Request | None = None
        self.response: Http1Response | None = None
        self.end_ns = start_ns  # last byte of the response
        self.interim: tuple[int, ...] = ()  # 1xx status codes received so far


class Http1Stitcher:
    """FIFO request/response pairing with a bound on open exchanges."""

    __slots__ = (
        "role",
        "max_pending",
        "dropped_requests",
        "unmatched_responses",
        "interim_responses",
        "_open",
        "_unanswered",
    )

    def __init__(self, max_pending: int = 128) -> None:
        self.role = Role.UNKNOWN
        self.max_pending = max(1, max_pending)
        self.dropped_requests = 0  # exchanges dropped unfinished (bound reached, or lost responses)
        self.unmatched_responses = 0  # final responses with no request to pair with
        self.interim_responses = 0  # 1xx responses seen
        self._open: deque[Exchange] = deque()  # every open exchange, in request order
        self._unanswered: deque[Exchange] = deque()  # those still waiting for a final response

    @property
    def pending(self) -> int:
        """Open exchanges (requests seen whose transaction has not been emitted)."""
        return len(self._open)

    def begin_request(self, method: str, start_ns: int) -> Exchange:
        """A request head was parsed: open its exchange."""
        if len(self._open) >= self.max_pending:
            oldest = self._open.popleft()
            if self._unanswered and self._unanswered[0] is oldest:
                self._unanswered.popleft()
            self.dropped_requests += 1
        exchange = Exchange(method, start_ns)
        self._open.append(exchange)
        self._unanswered.append(exchange)
        return exchange

    def next_unanswered(self, response_start_ns: int, resynced: bool) -> Exchange | None:
        """The exchange the next response answers, without claiming it.

        A response cannot answer a request that started after it, so such a response has no
        exchange.  ``resynced`` says responses may have been lost since the last one: the
        response then answers the newest request that started before it, and older unanswered
        exchanges are dropped (their responses were lost).
        """
        unanswered = self._unanswered
        if not unanswered or unanswered[0].start_ns > response_start_ns:
            return None
        if resynced and len(unanswered) > 1:
            while len(unanswered) > 1 and unanswered[1].start_ns <= response_start_ns:
                lost = unanswered.popleft()
                self._open.remove(lost)
                self.dropped_requests += 1
        return unanswered[0]

    def note_interim(self, exchange: Exchange | None, status_code: int) -> None:
        """A 1xx interim response arrived for ``exchange`` (if known)."""
        self.interim_responses += 1
        if exchange is not None:
            exchange.interim += (status_code,)

    def answer(self, exchange: Exchange | None) -> None:
        """A final response head for ``exchange`` (from :meth:`next_unanswered`) was parsed."""
        if exchange is None:
            self.unmatched_responses += 1
        elif self._unanswered and self._unanswered[0] is exchange:
            self._unanswered.popleft()

    def complete_request(self, exchange: Exchange, request: Http1Request, out: list[Transaction]) -> None:
        """The request of ``exchange`` is complete."""
        exchange.request = request
        if exchange.response is not None:
            self.flush(out)

    def complete_response(
        self, exchange: Exchange | None, response: Http1Response, end_ns: int, out: list[Transaction]
    ) -> None:
        """The final response of ``exchange`` is complete (``None``: it had no request)."""
        if exchange is None:
            return
        exchange.response = response
        exchange.end_ns = end_ns
        if exchange.request is not None:
            self.flush(out)

    def flush(self, out: list[Transaction]) -> None:
        """Emit the exchanges at the head of the queue that are complete (in request order)."""
        open_ = self._open
        role = self.role
        while open_:
            exchange = open_[0]
            request = exchange.request
            response = exchange.response
            if request is None or response is None:
                return
            open_.popleft()
            out.append(
                Transaction(
                    PROTOCOL,
                    role,
                    request,
                    response,
                    exchange.start_ns,
                    exchange.end_ns,
                    request.wire_size,
                    response.wire_size,
                )
            )

    def close(self, ts_ns: int, out: list[Transaction]) -> None:
        """The connection closed: emit every open exchange with a request.

        Requests never answered come out with ``response=None`` and ``end_ns=ts_ns``.
        """
        self.flush(out)
        role = self.role
        for exchange in self._open:
            request = exchange.request
            if request is None:
                self.dropped_requests += 1
                continue
            response = exchange.response
            out.append(
                Transaction(
                    PROTOCOL,
                    role,
                    request,
                    response,
                    exchange.start_ns,
                    exchange.end_ns if response is not None else ts_ns,
                    request.wire_size,
                    response.wire_size if response is not None else 0,
                )
            )
        self._open.clear()
        self._unanswered.clear()
