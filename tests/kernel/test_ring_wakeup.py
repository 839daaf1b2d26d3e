"""The reader is woken early when pending data crosses ``wakeup_bytes`` (and otherwise sleeps its
poll interval): the kernel asks for a wakeup once per ``wakeup_bytes`` of unconsumed data, not on
every record past the threshold (which cost each traced syscall an irq_work under load)."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from .harness import started_capture

pytestmark = pytest.mark.kernel

WAKEUP_BYTES = 64 * 1024
# A traced child: after a pause (the reader is asleep by then), 256 UDP datagrams of 4000 bytes
# (~1 MiB, ~16 × WAKEUP_BYTES) to a socket nobody reads.
SENDER = """
import socket, time
time.sleep(0.5)
sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); sink.bind(("127.0.0.1", 0))
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.connect(sink.getsockname())
for _ in range(256):
    s.send(b"x" * 4000)
time.sleep(30)
"""


def test_pending_data_past_wakeup_bytes_wakes_a_sleeping_reader() -> None:
    with started_capture(wakeup_bytes=WAKEUP_BYTES, capture_size=4096) as cap:
        child = subprocess.Popen([sys.executable, "-c", SENDER])
        try:
            cap.reader.drain()  # start empty
            t0 = time.monotonic()
            ours: list = []
            # Long polls: without a wakeup each would sleep its whole 20 s.
            while len(ours) < WAKEUP_BYTES // 4000 and time.monotonic() - t0 < 20:
                for rec in cap.reader.poll(20_000):
                    ev = cap.decoder.decode(rec)
                    if ev is not None and getattr(ev, "pid", None) == child.pid and getattr(ev, "payload", b""):
                        ours.append(ev)
            waited = time.monotonic() - t0
            assert ours, "no records of the sender"
            assert waited < 10, f"the reader slept {waited:.1f} s: no wakeup past wakeup_bytes"
        finally:
            child.kill()
            child.wait()
