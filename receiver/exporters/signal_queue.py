"""One signal's bounded queue of export requests, and the threads that consume it.

Sizes are in the unit of ``sending_queue.sizer`` (requests, items or bytes), fixed per entry
when it is queued.  When a new entry does not fit, the **oldest** entries are evicted to make
room (an entry larger than the whole capacity is refused): the caller counts what comes back.
Thread-safe; :class:`~receiver.exporters.sending_queue.QueuedRetryingSender` keeps one per signal.

Lifecycle: consumers :meth:`take` until the queue is given up (:meth:`give_up`, at once) or
drained (:meth:`drain`, once it is empty); :meth:`close` gives up and hands back what is left,
and refuses whatever is offered afterwards.
"""

from __future__ import annotations

import collections
import threading
from typing import TYPE_CHECKING, Callable, Iterable

from receiver.component.threads import AgentThread

if TYPE_CHECKING:
    from receiver.exporters.persistent_queue import StoredBatch
    from receiver.model.signals import Signal


class QueueEntry:
    """One queued request: a batch (``batch``), its serialized form (``payload``) or a file (``stored``)."""

    __slots__ = ("signal", "items", "size", "batch", "payload", "stored")

    def __init__(
        self,
        signal: Signal,
        items: int,
        size: int,
        batch: list | None = None,
        payload: bytes | None = None,
        stored: StoredBatch | None = None,
    ) -> None:
        self.signal = signal
        self.items = items
        self.size = size  # in the queue's sizer unit
        self.batch = batch
        self.payload = payload
        self.stored = stored


class SignalQueue:
    """A bounded FIFO of :class:`QueueEntry` with its consumer threads."""

    def __init__(self, signal: Signal, capacity: int) -> None:
        self.signal = signal
        self.capacity = capacity
        self.used = 0  # sum of the queued entries' sizes (read without the lock by gauges)
        self.abort = threading.Event()  # given up: consumers stop, backoffs wake
        self._entries: collections.deque[QueueEntry] = collections.deque()
        self._cond = threading.Condition()
        self._draining = False  # consumers return once the queue is empty
        self._closed = False  # close() took what was left: nothing more is queued
        self._threads: list[threading.Thread] = []

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def threads(self) -> tuple[threading.Thread, ...]:
        with self._cond:
            return tuple(self._threads)

    def put(self, entry: QueueEntry) -> tuple[list[QueueEntry], str]:
        """Queue ``entry``; returns what was not kept and why: ``queue_full`` (the oldest entries,
        evicted, or ``entry`` itself if it can never fit) or ``shutdown`` (closed)."""
        with self._cond:
            if self._closed:
                return [entry], "shutdown"
            if entry.size > self.capacity:
                return [entry], "queue_full"
            evicted = []
            while self.used + entry.size > self.capacity:
                evicted.append(self._pop())
            self._entries.append(entry)
            self.used += entry.size
            self._cond.notify()
            return evicted, "queue_full"

    def put_front(self, entries: Iterable[QueueEntry]) -> list[QueueEntry]:
        """Queue ``entries`` (oldest first) ahead of everything; returns the oldest evicted to fit."""
        entries = list(entries)
        with self._cond:
            self._entries.extendleft(reversed(entries))
            self.used += sum(e.size for e in entries)
            evicted = []
            while self.used > self.capacity:
                evicted.append(self._pop())
            self._cond.notify_all()
            return evicted

    def take(self) -> QueueEntry | None:
        """The oldest entry, waiting for one; None once the queue is given up, or drained and empty."""
        with self._cond:
            while True:
                if self.abort.is_set():
                    return None
                if self._entries:
                    return self._pop()
                if self._draining:
                    return None
                self._cond.wait()

    def _pop(self) -> QueueEntry:
        entry = self._entries.popleft()
        self.used -= entry.size
        return entry

    def start_consumers(self, target: Callable[[SignalQueue], None], count: int, name: str, only_if_queued: bool) -> None:
        """Start ``count`` threads running ``target(self)`` — once per queue, and not after close;
        with ``only_if_queued``, only if something is queued."""
        with self._cond:
            if self._threads or self._closed or (only_if_queued and not self._entries):
                return
            for i in range(count):
                thread = AgentThread(target, f"{name}-{i}", args=(self,))
                self._threads.append(thread)
                thread.start()

    def drain(self) -> None:
        """Consumers finish what is queued, then return."""
        with self._cond:
            self._draining = True
            self._cond.notify_all()

    def give_up(self) -> None:
        """Consumers return at once (an entry being sent is theirs to account for)."""
        self.abort.set()
        with self._cond:
            self._cond.notify_all()

    def close(self) -> list[QueueEntry]:
        """Give up, and return what is still queued; later :meth:`put` calls are refused."""
        self.abort.set()
        with self._cond:
            self._closed = True
            left = list(self._entries)
            self._entries.clear()
            self.used = 0
            self._cond.notify_all()
            return left
