"""SignalQueue: eviction by size, refusal, replay in front, and how consumers are let go."""

from __future__ import annotations

import threading

from receiver.exporters.signal_queue import QueueEntry, SignalQueue
from receiver.model.signals import Signal


def entry(size: int, items: int = 1) -> QueueEntry:
    return QueueEntry(Signal.LOGS, items, size)


def test_the_oldest_entries_make_room_and_a_too_large_one_is_refused():
    q = SignalQueue(Signal.LOGS, capacity=10)
    a, b, c = entry(4), entry(4), entry(5)
    assert q.put(a) == ([], "queue_full") and q.put(b) == ([], "queue_full")
    assert q.put(c) == ([a], "queue_full")  # 4 + 5 fit once a is gone
    assert q.used == 9 and len(q) == 2
    big = entry(11)
    assert q.put(big) == ([big], "queue_full")  # never fits: refused, nothing evicted
    assert q.used == 9


def test_replayed_entries_go_first_and_the_oldest_are_evicted_to_fit():
    q = SignalQueue(Signal.LOGS, capacity=3)
    new = entry(1)
    q.put(new)
    old = [entry(1) for _ in range(4)]
    assert q.put_front(old) == old[:2]
    assert [q.take() for _ in range(3)] == [old[2], old[3], new]


def test_drain_lets_consumers_finish_the_queue_give_up_stops_them_at_once():
    q = SignalQueue(Signal.LOGS, capacity=10)
    taken = []
    q.put(entry(1))
    q.start_consumers(lambda queue: taken.extend(iter(queue.take, None)), 1, "t", only_if_queued=True)
    q.start_consumers(lambda queue: None, 1, "again", only_if_queued=False)  # once per queue
    assert len(q.threads) == 1
    q.put(entry(1))
    q.drain()
    q.threads[0].join(2)
    assert len(taken) == 2 and not q.threads[0].is_alive()

    q2 = SignalQueue(Signal.LOGS, capacity=10)
    q2.put(entry(1))
    q2.give_up()
    assert q2.take() is None and len(q2) == 1


def test_close_returns_what_is_left_and_refuses_what_comes_later():
    q = SignalQueue(Signal.LOGS, capacity=10)
    a = entry(2)
    q.put(a)
    waiting = threading.Thread(target=q.take)  # returns the entry or None; either way it ends
    assert q.close() == [a] and q.used == 0
    late = entry(1)
    assert q.put(late) == ([late], "shutdown")
    waiting.start()
    waiting.join(2)
    assert not waiting.is_alive()
    q.start_consumers(lambda queue: None, 2, "t", only_if_queued=False)
    assert q.threads == ()
