"""Pairing Redis requests with replies on one connection.

Redis has no request ids: the server answers commands in the order it reads them, so replies
pair with requests first-in first-out, pipelined or not.  What is *not* a reply:

* pushes — RESP3 ``>`` frames (pub/sub messages, client-tracking invalidations...), and in RESP2
  the ``message``/``pmessage``/``smessage`` arrays a subscribed connection receives.  They are
  counted in :attr:`RedisStitcher.push_messages` and never paired;
* ``MONITOR`` output (filtered out by the session before it gets here).

The subscribe family (``SUBSCRIBE``, ``PSUBSCRIBE``, ``SSUBSCRIBE`` and their ``UN`` forms) is
answered by one confirmation per channel (RESP2 arrays, RESP3 pushes): such a request completes
after as many confirmations as it named channels; without channels (unsubscribe from all) after
as many as there were subscriptions of that class, tracked from the counts the confirmations
carry.  ``MULTI``/``EXEC`` need nothing special: each command, ``MULTI`` and ``EXEC`` included, is
one transaction (queued commands are answered ``+QUEUED``; ``EXEC`` by an array).

Losses (the session reports them):

* requests lost (:meth:`request_lost`): a *gap* marker joins the queue.  Replies reaching it are
  taken as answers to the lost requests and dropped, until one starts after the first request
  queued behind the gap; pairing resumes there.  (A client pipelining across the loss may be
  mispaired for a while: which replies belong to the lost requests is unknowable.)
* replies lost (:meth:`reply_lost`): every request sent before the loss is dropped — its reply
  may have been among the lost ones.

And always: a reply never pairs with a request that started after the reply did.

Bounds: at most ``max_pending`` requests wait; one more drops the oldest (counted in
:attr:`dropped_requests`) and the reply it is still owed is discarded when it arrives.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Callable, NamedTuple

from receiver.protocols.base import Role, Transaction

from .types import RedisRequest, RedisResponse, RespType

PROTOCOL = "redis"

CONFIRMATIONS = frozenset({"subscribe", "unsubscribe", "psubscribe", "punsubscribe", "ssubscribe", "sunsubscribe"})
MESSAGES = {"message": 3, "pmessage": 4, "smessage": 3}  # RESP2 push kind → array length

_PUSH = RespType.PUSH


class Reply(NamedTuple):
    """One reply frame, summarised by the session (values already dropped)."""

    kind: RespType
    error_prefix: str | None
    error_message: str | None
    status: str | None
    element_count: int | None
    protocol_version: int
    size: int
    start_ts: int
    truncated: bool
    attributes: bool
    pubsub: str | None = None  # pub/sub-shaped frames: "message", "subscribe"...; pushes: their kind
    pubsub_count: int | None = None  # confirmations: subscriptions left after this one


class Pending:
    """A request waiting for its reply (or replies); mutable while it waits."""

    __slots__ = (
        "request", "start_ns", "family", "expected", "note", "first", "replies", "size", "end_ns", "truncated",
        "attributes",
    )

    def __init__(self, request: RedisRequest, start_ns: int, family: str | None, expected: int, note: Any) -> None:
        self.request = request
        self.start_ns = start_ns  # first byte of the request
        self.family = family  # subscribe family: the confirmation kind expected ("subscribe"...)
        self.expected = expected  # replies expected: 1; 0 (CLIENT REPLY OFF/SKIP); -1 unknown
        self.note = note  # the session's own data about the request (HELLO version, SELECT db)
        self.first: Reply | None = None
        self.replies = 0
        self.size = 0
        self.end_ns = start_ns  # last byte of the last reply
        self.truncated = False
        self.attributes = False

    def add(self, reply: Reply, end_ns: int) -> None:
        if self.first is None:
            self.first = reply
        self.replies += 1
        self.size += reply.size
        self.end_ns = end_ns
        self.truncated = self.truncated or reply.truncated
        self.attributes = self.attributes or reply.attributes


_GAP = None  # marker in the queue: requests were lost here


class RedisStitcher:
    """FIFO request/reply pairing with pub/sub awareness and a bound on waiting requests."""

    __slots__ = (
        "role", "max_pending", "on_answered", "dropped_requests", "unmatched_replies", "push_messages",
        "_queue", "_owed", "_channels", "_patterns", "_shard",
    )

    def __init__(self, max_pending: int = 1024, on_answered: Callable[[Pending], None] | None = None) -> None:
        self.role = Role.UNKNOWN
        self.max_pending = max(1, max_pending)
        self.on_answered = on_answered  # called for answered requests that carry a note
        self.dropped_requests = 0  # requests never paired: over max_pending, or replies lost
        self.unmatched_replies = 0  # replies with no request to pair with
        self.push_messages = 0  # pushes (pub/sub messages...) — never paired
        self._queue: deque[Pending | None] = deque()  # waiting requests, and gap markers
        self._owed = 0  # replies still owed to requests dropped over max_pending
        self._channels = 0  # subscriptions, as the confirmations count them
        self._patterns = 0
        self._shard = 0

    @property
    def pending(self) -> int:
        """Requests waiting for replies."""
        return sum(1 for p in self._queue if p is not _GAP)

    @property
    def subscriptions(self) -> int:
        """Channels + patterns + shard channels subscribed, per the last confirmations."""
        return self._channels + self._patterns + self._shard

    def reset_subscriptions(self) -> None:
        self._channels = self._patterns = self._shard = 0

    # -- requests --------------------------------------------------------------------------

    def request(
        self, request: RedisRequest, start_ns: int, family: str | None, expected: int, note: Any, out: list[Transaction]
    ) -> None:
        """A complete request was parsed."""
        queue = self._queue
        while len(queue) >= self.max_pending:  # (a gap marker may have made it one longer)
            oldest = queue.popleft()
            if oldest is not _GAP:
                self.dropped_requests += 1
                if oldest.family is None and oldest.expected > oldest.replies:
                    self._owed += oldest.expected - oldest.replies
        queue.append(Pending(request, start_ns, family, expected, note))
        if expected == 0 and len(queue) == 1:
            self._flush_unanswerable(out)

    def request_lost(self) -> None:
        """Requests were lost (capture gap or invalid bytes) after those queued so far."""
        queue = self._queue
        if not queue or queue[-1] is not _GAP:
            queue.append(_GAP)

    # -- replies ---------------------------------------------------------------------------

    def reply(self, reply: Reply, end_ns: int, out: list[Transaction]) -> None:
        """A complete reply frame was parsed (its last byte in the feed at ``end_ns``)."""
        kind = reply.pubsub
        if kind is not None:
            if kind in CONFIRMATIONS:
                if self._confirm(reply, kind, end_ns, out):
                    return
                if reply.kind is _PUSH:  # unsolicited (e.g. sunsubscribe after a slot moved)
                    self.push_messages += 1
                    return
            elif reply.kind is _PUSH or (reply.protocol_version == 2 and (self.subscriptions or not self._queue)):
                # A RESP2 message array: a push while subscribed (or when nothing waits for a
                # reply); in RESP3 pushes are ">" frames, so an array is always a reply.
                self.push_messages += 1
                return
        elif reply.kind is _PUSH:
            self.push_messages += 1
            return
        self._answer(reply, end_ns, out)

    def reply_lost(self, ts: int) -> None:
        """Replies were lost at ``ts``: drop the requests sent until then."""
        self._owed = 0
        queue = self._queue
        while queue:
            head = queue[0]
            if head is _GAP:
                queue.popleft()
                continue
            if head.start_ns > ts:
                break
            queue.popleft()
            self.dropped_requests += 1

    def close(self, ts: int, out: list[Transaction]) -> None:
        """The connection closed: emit every waiting request, answered or not (``response=None``,
        ``end_ns=ts`` when no reply came)."""
        for p in self._queue:
            if p is _GAP:
                continue
            if p.first is None:
                p.end_ns = ts
            self._emit(p, out)
        self._queue.clear()

    # -- internals -------------------------------------------------------------------------

    def _answer(self, reply: Reply, end_ns: int, out: list[Transaction]) -> None:
        queue = self._queue
        while True:
            if self._owed:
                self._owed -= 1
                self.unmatched_replies += 1
                return
            if not queue:
                self.unmatched_replies += 1
                return
            head = queue[0]
            if head is _GAP:
                after = queue[1] if len(queue) > 1 else _GAP
                if after is not _GAP and after.start_ns <= reply.start_ts:
                    queue.popleft()  # the lost requests are answered: resume pairing here
                    continue
                self.unmatched_replies += 1  # an answer to a lost request
                return
            if head.start_ns > reply.start_ts:
                self.unmatched_replies += 1
                return
            if head.family is not None and head.replies:
                # A subscribe-family request already confirmed: this reply is the next request's.
                queue.popleft()
                self._emit(head, out)
                continue
            queue.popleft()
            head.add(reply, end_ns)
            self._emit(head, out)
            self._flush_unanswerable(out)
            return

    def _confirm(self, reply: Reply, kind: str, end_ns: int, out: list[Transaction]) -> bool:
        before = self._track(kind, reply.pubsub_count)
        queue = self._queue
        if not queue:
            return False
        head = queue[0]
        if head is _GAP or head.family != kind or head.start_ns > reply.start_ts:
            return False
        if head.expected < 0:
            head.expected = before if before > 1 else 1
        head.add(reply, end_ns)
        if head.replies >= head.expected:
            queue.popleft()
            self._emit(head, out)
            self._flush_unanswerable(out)
        return True

    def _track(self, kind: str, count: int | None) -> int:
        """Update the subscription counts from a confirmation; return the class count before."""
        if count is None or count < 0:
            count = 0
        if kind == "ssubscribe" or kind == "sunsubscribe":
            before = self._shard
            self._shard = count
            return before
        total = self._channels + self._patterns
        if kind == "subscribe":
            before = self._channels
            self._channels = max(0, before + count - total)
        elif kind == "psubscribe":
            before = self._patterns
            self._patterns = max(0, before + count - total)
        elif kind == "unsubscribe":
            before = self._channels
            self._channels = max(0, before - (total - count))
            if self._channels + self._patterns != count:  # counts were off (attached late)
                self._channels = max(0, count - self._patterns)
        else:  # punsubscribe
            before = self._patterns
            self._patterns = max(0, before - (total - count))
            if self._channels + self._patterns != count:
                self._patterns = max(0, count - self._channels)
        return before

    def _flush_unanswerable(self, out: list[Transaction]) -> None:
        """Emit requests at the head that get no reply (``CLIENT REPLY OFF``/``SKIP``)."""
        queue = self._queue
        while queue:
            head = queue[0]
            if head is _GAP or head.expected != 0:
                return
            queue.popleft()
            self._emit(head, out)

    def _emit(self, p: Pending, out: list[Transaction]) -> None:
        request = p.request
        first = p.first
        if first is None:
            response = None
        else:
            response = RedisResponse(
                first.kind,
                first.error_prefix,
                first.error_message,
                first.status,
                first.element_count,
                p.replies,
                first.protocol_version,
                p.size,
                p.truncated,
                p.attributes,
            )
            if p.note is not None and self.on_answered is not None:
                self.on_answered(p)
        out.append(
            Transaction(
                PROTOCOL,
                self.role,
                request,
                response,
                p.start_ns,
                p.end_ns,
                request.wire_size,
                p.size,
            )
        )
