"""Both ring-buffer consumers on the real kernel: the mapping read by Python (``mmap``, the
default on x86-64) and libbpf's callback.  A small ring (16 KiB) wraps dozens of times under a
paced child process sending numbered UDP datagrams over loopback; every record must come out
once, in order, intact, and a poll must keep to its byte bound."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from receiver.capture.events import DataEvent, EventDecoder
from receiver.capture.ringbuf import RingBufferReader, default_consumer

from .harness import start_loader

pytestmark = pytest.mark.kernel

SENDS, CHUNK, SIZE = 3000, 40, 88  # SIZE + 0..7 bytes: records of every length modulo 8 (padding)

SENDER = f"""
import socket, time
sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); sink.bind(("127.0.0.1", 0))
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.connect(sink.getsockname())
for i in range({SENDS}):
    s.send(b"seq%08d" % i + bytes((i + k) % 251 for k in range({SIZE} + i % 8 - 11)))
    if i % {CHUNK} == {CHUNK} - 1:
        time.sleep(0.01)
"""


def expected_payload(i: int) -> bytes:
    return b"seq%08d" % i + bytes((i + k) % 251 for k in range(SIZE + i % 8 - 11))


@pytest.mark.parametrize("consumer", ["mmap", "libbpf"])
def test_a_small_ring_wraps_and_every_record_comes_out_once_in_order(consumer: str) -> None:
    loader = start_loader(ring_buffer_size=16 << 10, capture_size=128)
    reader = RingBufferReader(loader, max_batch_bytes=2048, consumer=consumer)
    decoder = EventDecoder(loader.abi)
    lost_name = ("ERX_CNT_LOST_RINGBUF_FULL", "ERX_CNT_LOST_NO_SCRATCH")
    c = loader.abi.const
    try:
        assert reader.consumer == consumer
        base = loader.read_counters()
        child = subprocess.Popen([sys.executable, "-c", SENDER])
        seqs: list[int] = []
        biggest_batch = polls = 0
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            done = child.poll() is not None
            batch = reader.poll(0)
            polls += 1
            size = sum(len(r) for r in batch)
            if batch:
                biggest_batch = max(biggest_batch, size - len(batch[-1]))
            for rec in batch:
                ev = decoder.decode(rec)
                if isinstance(ev, DataEvent) and ev.pid == child.pid and ev.payload[:3] == b"seq":
                    i = int(ev.payload[3:11])
                    assert ev.payload == expected_payload(i), f"record {i} corrupted"
                    seqs.append(i)
            if done and not batch:
                break
        assert child.wait(10) == 0
        counters = loader.read_counters()
    finally:
        reader.close()
        loader.close()
    lost = sum(counters[c(n)] - base[c(n)] for n in lost_name)
    assert seqs == sorted(set(seqs)), "a record came out twice or out of order"
    # Every send is a record, taken out or counted lost by the kernel (a consumer held off the
    # CPU for long on a busy machine lets the small ring fill): none is missing unaccounted.
    assert len(seqs) + lost >= SENDS and len(seqs) >= SENDS // 2, (len(seqs), lost)
    assert len(seqs) * (SIZE + 100) > 10 * (16 << 10)  # the ring wrapped many times
    assert biggest_batch < 2048  # a poll stops at its bound (plus the record that crossed it)


def test_the_agent_reads_the_mapping_on_x86_64() -> None:
    assert default_consumer() == ("mmap" if os.uname().machine == "x86_64" else "libbpf")


def test_an_unknown_consumer_is_refused() -> None:
    loader = start_loader()
    try:
        with pytest.raises(ValueError, match="mmap or libbpf"):
            RingBufferReader(loader, consumer="io_uring")
    finally:
        loader.close()
