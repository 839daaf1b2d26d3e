"""Draining the BPF ring buffer: poll on an interval (the kernel side submits without wakeups
except past a byte threshold), copy records out in one bounded batch, hand the batch on.

A batch is at most ``max_batch_bytes`` of records (and at least one record): the records still
in the ring wait for the next poll, which then returns at once.  Everything the stages build
from a batch lives until the batch's end, so this bound is what keeps a full ring (16 MiB of
records, some 80 000 transactions) from becoming hundreds of megabytes of Python objects.

Two consumers, one behaviour:

* ``mmap`` (x86-64, the default there): the ring's pages are mapped into this process as the
  kernel lays them out (``kernel/bpf/ringbuf.c``: a consumer page we write, then a producer page
  and the data pages, the data mapped twice in a row so a record that wraps is contiguous).  A
  batch is read straight from the mapping — an 8-byte header per record (length, busy and discard
  bits), the record, padding to 8 — and the consumer position is stored once per batch.  No
  call from C into Python per record: libbpf's callback cost about a microsecond each, the
  largest single item of the capture thread's profile at 5k req/s.  x86-64 only because it
  relies on the architecture's ordering of plain loads (the kernel commits a record with a
  release store of its header; on weaker architectures reading the record after its header
  would need an acquire barrier Python cannot issue).
* ``libbpf`` (elsewhere, or asked for): ``ring_buffer__poll``/``__consume`` with a callback.
"""

from __future__ import annotations

import ctypes
import mmap
import platform
import select
import struct

from receiver.bpf.loader import BpfLoader

DEFAULT_MAX_BATCH_BYTES = 1 << 18

_BUSY = 1 << 31  # BPF_RINGBUF_BUSY_BIT: reserved, not committed yet
_DISCARD = 1 << 30  # BPF_RINGBUF_DISCARD_BIT: committed as discarded (skip it)
_LEN_MASK = _DISCARD - 1
_HDR = 8  # BPF_RINGBUF_HDR_SZ


def default_consumer() -> str:
    return "mmap" if platform.machine() in ("x86_64", "AMD64") else "libbpf"


class RingBufferReader:
    """Owns the ring buffer's consumer side.  ``poll(timeout_ms)`` returns the raw records that
    arrived (bytes), oldest first, at most ``max_batch_bytes`` of them.  ``close()`` is
    idempotent."""

    def __init__(self, loader: BpfLoader, map_name: str = "erx_events",
                 max_batch_bytes: int = DEFAULT_MAX_BATCH_BYTES, consumer: str | None = None) -> None:
        self.max_batch_bytes = max_batch_bytes
        self.consumer = consumer or default_consumer()
        if self.consumer not in ("mmap", "libbpf"):
            raise ValueError(f"unknown ring buffer consumer {self.consumer!r} (mmap or libbpf)")
        self.delivered = 0
        self.full_batches = 0  # polls that stopped at max_batch_bytes (more was waiting)
        self._more = False
        self._rb = None
        self._ring: _MappedRing | None = None
        fd = loader.map_fd(map_name)
        if self.consumer == "mmap":
            self._ring = _MappedRing(fd, loader.map_max_entries(map_name))
        else:
            self._open_libbpf(loader, fd, map_name)

    # -- libbpf ------------------------------------------------------------------------------

    def _open_libbpf(self, loader: BpfLoader, fd: int, map_name: str) -> None:
        lb = loader.libbpf
        self._ffi, self._lib = lb.ffi, lb.lib
        self._batch: list[bytes] = []
        self._room = [self.max_batch_bytes]
        batch, room = self._batch, self._room
        buffer = self._ffi.buffer

        @self._ffi.callback("int(void *, void *, size_t)")
        def _on_record(ctx, data, size):
            batch.append(buffer(data, size)[:])
            room[0] -= size
            # Negative: libbpf stores the consumer position past this record and stops.
            return -1 if room[0] <= 0 else 0

        self._cb = _on_record  # keep the callback alive as long as the ring buffer
        self._rb = self._lib.ring_buffer__new(fd, _on_record, self._ffi.NULL, self._ffi.NULL)
        if self._rb == self._ffi.NULL:
            self._rb = None
            raise OSError(f"ring_buffer__new failed for map {map_name}")

    def _poll_libbpf(self, timeout_ms: int) -> list[bytes]:
        self._room[0] = self.max_batch_bytes
        if timeout_ms and not self._more:
            self._lib.ring_buffer__poll(self._rb, timeout_ms)
        # poll only consumes when epoll fired; records submitted without wakeup are taken here.
        if self._room[0] > 0:
            self._lib.ring_buffer__consume(self._rb)
        out = self._batch[:]
        self._batch.clear()
        self._more = self._room[0] <= 0
        return out

    # -- both --------------------------------------------------------------------------------

    def poll(self, timeout_ms: int) -> list[bytes]:
        """Wait up to timeout_ms for a forced wakeup (not at all when the last batch was cut at
        its bound), then consume what is pending, up to the batch bound."""
        ring = self._ring
        if ring is not None:
            if timeout_ms and not self._more:
                ring.wait(timeout_ms)
            out, self._more = ring.take(self.max_batch_bytes)
        elif self._rb is not None:
            out = self._poll_libbpf(timeout_ms)
        else:
            return []
        if self._more:
            self.full_batches += 1
        self.delivered += len(out)
        return out

    def drain(self) -> list[bytes]:
        """Everything pending, past the batch bound (tools and tests; the agent polls)."""
        out = self.poll(0)
        while self._more:
            out.extend(self.poll(0))
        return out

    def close(self) -> None:
        if self._ring is not None:
            self._ring.close()
            self._ring = None
        if self._rb is not None:
            self._lib.ring_buffer__free(self._rb)
            self._rb = None


class _MappedRing:
    """The consumer side of a BPF ring buffer map, read through its own mapping."""

    def __init__(self, fd: int, size: int) -> None:
        if size <= 0 or size & (size - 1):
            raise ValueError(f"ring buffer size {size} is not a power of two")
        page = mmap.PAGESIZE
        self._page = page
        self._mask = size - 1
        self._consumer_page = mmap.mmap(fd, page, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE, offset=0)
        # The producer page, then the data pages twice (a wrapping record reads contiguously).
        self._data = mmap.mmap(fd, page + 2 * size, mmap.MAP_SHARED, mmap.PROT_READ, offset=page)
        # One aligned 8-byte load/store each (a ctypes scalar), never a byte-wise copy the
        # kernel could see half-written.
        self._consumer = ctypes.c_uint64.from_buffer(self._consumer_page)
        self._epoll = select.epoll(1)
        self._epoll.register(fd, select.EPOLLIN)
        self._u64 = struct.Struct("<Q").unpack_from
        self._u32 = struct.Struct("<I").unpack_from

    def wait(self, timeout_ms: int) -> None:
        """Until the kernel forces a wakeup (a record past the byte threshold) or time is up."""
        self._epoll.poll(timeout_ms / 1000.0, 1)

    def take(self, max_bytes: int) -> tuple[list[bytes], bool]:
        """The committed records from the consumer position on, up to ``max_bytes`` of them (at
        least one); the consumer position is moved past them.  Also says whether the bound cut
        the batch (more is waiting)."""
        data, u32, mask, base = self._data, self._u32, self._mask, self._page + _HDR
        out: list[bytes] = []
        append = out.append
        cons = self._consumer.value
        room = max_bytes
        cut = False
        while True:
            prod = self._u64(data, 0)[0]
            if cons >= prod:
                break
            busy = False
            while cons < prod:
                off = base + (cons & mask)
                hdr = u32(data, off - _HDR)[0]
                if hdr & _BUSY:  # reserved, not committed yet: the next poll takes it
                    busy = True
                    break
                n = hdr & _LEN_MASK
                cons += (n + _HDR + 7) & ~7
                if not hdr & _DISCARD:
                    append(data[off:off + n])
                    room -= n
                    if room <= 0:
                        cut = True
                        break
            if cut or busy:
                break
        self._consumer.value = cons
        return out, cut

    def close(self) -> None:
        self._epoll.close()
        del self._consumer  # the ctypes view exports the mapping's buffer: release it first
        self._consumer_page.close()
        self._data.close()
