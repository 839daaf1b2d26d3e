"""The ring buffer reader, compiled (``_ringbuf.c``) and through cffi: the same records, in
order, in batches cut at the same bound, nothing lost; a close during a poll is safe."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest

from receiver.capture import ringbuf
from receiver.capture.events import DataEvent
from receiver.capture.ringbuf import RingBufferReader

from .harness import started_capture

pytestmark = pytest.mark.kernel

DATAGRAMS = 300
SIZE = 1000
SENDER = f"""
import socket, sys, time
sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); sink.bind(("127.0.0.1", 0))
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.connect(sink.getsockname())
sys.stdin.readline()
for i in range({DATAGRAMS}):
    s.send(i.to_bytes(4, "big") + b"x" * {SIZE - 4})
print("sent", flush=True)
time.sleep(30)
"""


def test_the_compiled_reader_is_built_and_used() -> None:
    assert ringbuf._ringbuf is not None, "receiver/capture/_ringbuf.c was not built (pip install -e .)"
    with started_capture() as cap:
        assert cap.reader._compiled is not None


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "cffi"])
def test_records_come_in_order_in_bounded_batches_and_none_is_lost(compiled: bool) -> None:
    with started_capture(capture_size=4096) as cap:
        cap.reader.close()
        reader = cap.reader = RingBufferReader(cap.loader, max_batch_bytes=16 * 1024, compiled=compiled)
        child = subprocess.Popen([sys.executable, "-c", SENDER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 text=True)
        try:
            time.sleep(0.3)
            reader.drain()  # start empty
            child.stdin.write("go\n")
            child.stdin.flush()
            assert child.stdout.readline().strip() == "sent"
            time.sleep(0.2)
            batches, seqs = [], []
            deadline = time.monotonic() + 10
            while len(seqs) < DATAGRAMS and time.monotonic() < deadline:
                batch = reader.poll(50)
                if batch:
                    batches.append(batch)
                for rec in batch:
                    ev = cap.decoder.decode(rec)
                    if isinstance(ev, DataEvent) and ev.pid == child.pid and len(ev.payload) == SIZE:
                        seqs.append(int.from_bytes(ev.payload[:4], "big"))
            assert seqs == list(range(DATAGRAMS))  # every datagram, once, in order
            # A batch stops at the record that reaches the bound: at most one record past it.
            for batch in batches:
                assert sum(map(len, batch[:-1])) < 16 * 1024
            assert reader.full_batches >= DATAGRAMS * SIZE // (16 * 1024) - 1
            assert reader.delivered >= DATAGRAMS
        finally:
            child.kill()
            child.wait()


LATE_SENDER = """
import socket, time
sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); sink.bind(("127.0.0.1", 0))
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.connect(sink.getsockname())
time.sleep(0.6)
for _ in range(20):
    s.send(b"y" * 500)
time.sleep(30)
"""


def test_close_while_another_thread_polls_is_safe() -> None:
    with started_capture() as cap:
        reader = cap.reader
        reader.drain()
        done = threading.Event()
        result: list = []

        def poller() -> None:
            result.append(reader.poll(1500))  # asleep in epoll when the close comes
            done.set()

        child = subprocess.Popen([sys.executable, "-c", LATE_SENDER])
        try:
            t = threading.Thread(target=poller)
            t.start()
            time.sleep(0.3)
            reader.close()  # deferred to the end of the poll, which takes what came meanwhile
            assert done.wait(5)
            t.join()
        finally:
            child.kill()
            child.wait()
        ours = [cap.decoder.decode(rec) for rec in result[0]]
        assert sum(1 for ev in ours if isinstance(ev, DataEvent) and ev.pid == child.pid) == 20
        assert reader.poll(0) == [] and reader.poll(10) == []  # closed: nothing, no crash
        reader.close()  # idempotent
