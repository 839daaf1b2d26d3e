"""Pairing memcached requests with replies, in order, through ``noreply`` and quiet meta commands.

Replies come in request order.  A request the server never answers (``noreply``, ``quit``) is
emitted at once, unanswered.  A quiet meta command (``mg``/``ms``/``md``/``ma`` with ``q``) may or
may not be answered: the server suppresses its common outcome (``mg``: ``EN``; the others:
``HD``).  When a reply arrives and the oldest pending request is quiet, that request was the
silent one if the reply is its suppressed outcome, an ``MN`` (the no-op clients send to flush a
quiet pipeline) or carries another opaque token: it gets an *implied* response and the reply
goes to the next request.  Quiet requests still pending at close get their implied response.
Without opaque tokens a silent quiet command followed by an answered command of the same kind
cannot be told from the reverse; clients that pipeline quiet commands use ``O`` tokens or ``mn``.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from receiver.protocols.base import Role, Transaction

from .parse import END, QUIET_SUPPRESSES, RETRIEVAL, TOUCH_RETRIEVAL, VA
from .types import ERROR_STATUSES, PROTOCOL, MemcachedRequest, MemcachedResponse

DEFAULT_MAX_PENDING = 1024
_RETRIEVALS = RETRIEVAL | TOUCH_RETRIEVAL


@dataclass(slots=True)
class Pending:
    request: MemcachedRequest
    start_ts: int
    end_ts: int


@dataclass(frozen=True, slots=True)
class Reply:
    """A complete reply, before pairing: status, VALUE lines seen, size, timing."""

    status: str
    values: int
    opaque: str | None
    error_message: str | None
    wire_size: int
    start_ts: int
    end_ts: int
    truncated: bool
    flags: str = ""  # meta flag letters the reply carries


class MemcachedStitcher:
    def __init__(self, max_pending: int = DEFAULT_MAX_PENDING) -> None:
        self.max_pending = max(1, max_pending)
        self.role = Role.UNKNOWN
        self.pending: deque[Pending] = deque()
        self.dropped_requests = 0  # over max_pending, or lost with a capture gap
        self.unmatched_replies = 0

    def request(self, pending: Pending, out: list[Transaction]) -> None:
        if pending.request.noreply:
            if not self.pending:  # nothing ahead of it: it is done
                out.append(self._transaction(pending, None))
                return
        if len(self.pending) >= self.max_pending:
            self.pending.popleft()
            self.dropped_requests += 1
        self.pending.append(pending)

    def reply(self, reply: Reply, out: list[Transaction]) -> None:
        queue = self.pending
        while queue:
            head = queue[0]
            if head.request.noreply:
                queue.popleft()
                out.append(self._transaction(head, None))
                continue
            if head.request.quiet and _silent(head.request, reply):
                queue.popleft()
                out.append(self._transaction(head, _implied(head)))
                continue
            break
        if not queue:
            self.unmatched_replies += 1
            return
        head = queue.popleft()
        out.append(self._transaction(head, _response(head.request, reply), reply.end_ts))
        while queue and queue[0].request.noreply:  # the no-reply requests it was waiting for
            out.append(self._transaction(queue.popleft(), None))

    def close(self, out: list[Transaction]) -> None:
        while self.pending:
            head = self.pending.popleft()
            out.append(self._transaction(head, _implied(head) if head.request.quiet else None))

    def _transaction(self, p: Pending, response: MemcachedResponse | None, end_ts: int | None = None) -> Transaction:
        return Transaction(
            protocol=PROTOCOL,
            role=self.role,
            request=p.request,
            response=response,
            start_ns=p.start_ts,
            end_ns=end_ts if end_ts is not None else p.end_ts,
            request_size=p.request.wire_size,
            response_size=response.wire_size if response is not None else 0,
        )


# Meta flags a hit echoes back when asked (cas, client flags, hit-before, key, last access,
# opaque, size, TTL).
_RETURNED = frozenset("cfhklOst")


def _silent(request: MemcachedRequest, reply: Reply) -> bool:
    """Can ``reply`` not be the answer to the quiet ``request``?"""
    if reply.opaque is not None and request.opaque is not None:
        return reply.opaque != request.opaque
    if reply.status == QUIET_SUPPRESSES.get(request.command) or reply.status == "MN":
        return True
    if reply.status in ERROR_STATUSES:
        return False
    asked = set(request.flags)
    shown = set(reply.flags)
    if not shown <= asked:  # a flag it did not ask for
        return True
    # A hit of mg returns every return flag asked for.
    return request.command == "mg" and reply.status in (VA, "HD") and not (asked & _RETURNED) <= shown


def _implied(p: Pending) -> MemcachedResponse:
    status = QUIET_SUPPRESSES.get(p.request.command, "HD")
    hits = misses = None
    if p.request.command == "mg":
        hits, misses = 0, 1
    return MemcachedResponse(status, hits, misses, None, 0, implied=True)


def _response(request: MemcachedRequest, reply: Reply) -> MemcachedResponse:
    hits = misses = None
    status = reply.status
    if request.command in _RETRIEVALS and status == END:
        hits = reply.values
        misses = max(0, request.key_count - reply.values)
    elif request.command == "mg" and status in (VA, "HD", "EN"):
        hits, misses = (0, 1) if status == "EN" else (1, 0)
    return MemcachedResponse(status, hits, misses, reply.error_message, reply.wire_size, reply.truncated)
