"""Draining the BPF ring buffer: poll on an interval (the kernel side submits without wakeups
except past a byte threshold), copy records out in one bounded batch, hand the batch on.

A batch is at most ``max_batch_bytes`` of records (and at least one record): the records still
in the ring wait for the next poll, which then returns at once.  Everything the stages build
from a batch lives until the batch's end, so this bound is what keeps a full ring (16 MiB of
records, some 80 000 transactions) from becoming hundreds of megabytes of Python objects.

The drain itself is compiled (``_ringbuf.c``, built with the package): libbpf's callback is C,
the interpreter's lock is released for the whole poll, and the batch becomes a list of bytes
once.  ``compiled=False`` (or a source tree nobody built) drains through cffi instead, one
Python callback per record (~0.4 µs each)."""

from __future__ import annotations

from receiver.bpf.loader import BpfLoader

try:
    from receiver.capture import _ringbuf
except ImportError:  # pragma: no cover - the build always has it; tests check it is there
    _ringbuf = None

DEFAULT_MAX_BATCH_BYTES = 1 << 18


class RingBufferReader:
    """Owns the libbpf ``ring_buffer``.  ``poll(timeout_ms)`` returns the raw records that
    arrived (bytes), oldest first, at most ``max_batch_bytes`` of them.  ``close()`` is
    idempotent."""

    def __init__(self, loader: BpfLoader, map_name: str = "erx_events",
                 max_batch_bytes: int = DEFAULT_MAX_BATCH_BYTES, compiled: bool = True) -> None:
        self.max_batch_bytes = max_batch_bytes
        self.delivered = 0
        self.full_batches = 0  # polls that stopped at max_batch_bytes (more was waiting)
        self._more = False
        self._compiled = None
        self._rb = None
        if compiled and _ringbuf is not None:
            self._compiled = _ringbuf.Reader(loader.map_fd(map_name))
            return
        lb = loader.libbpf
        self._ffi, self._lib = lb.ffi, lb.lib
        self._batch: list[bytes] = []
        self._room = [max_batch_bytes]
        batch, room = self._batch, self._room
        buffer = self._ffi.buffer

        @self._ffi.callback("int(void *, void *, size_t)")
        def _on_record(ctx, data, size):
            batch.append(buffer(data, size)[:])
            room[0] -= size
            # Negative: libbpf stores the consumer position past this record and stops.
            return -1 if room[0] <= 0 else 0

        self._cb = _on_record  # keep the callback alive as long as the ring buffer
        self._rb = self._lib.ring_buffer__new(loader.map_fd(map_name), _on_record, self._ffi.NULL, self._ffi.NULL)
        if self._rb == self._ffi.NULL:
            raise OSError(f"ring_buffer__new failed for map {map_name}")

    def poll(self, timeout_ms: int) -> list[bytes]:
        """Wait up to timeout_ms for a forced wakeup (not at all when the last batch was cut at
        its bound), then consume what is pending, up to the batch bound."""
        if self._compiled is not None:
            out, self._more = self._compiled.poll(timeout_ms, self.max_batch_bytes)
        else:
            out = self._poll_cffi(timeout_ms)
        if self._more:
            self.full_batches += 1
        self.delivered += len(out)
        return out

    def _poll_cffi(self, timeout_ms: int) -> list[bytes]:
        if self._rb is None:
            return []
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

    def drain(self) -> list[bytes]:
        """Everything pending, past the batch bound (tools and tests; the agent polls)."""
        out = self.poll(0)
        while self._more:
            out.extend(self.poll(0))
        return out

    def close(self) -> None:
        if self._compiled is not None:
            self._compiled.close()
        elif self._rb is not None:
            self._lib.ring_buffer__free(self._rb)
            self._rb = None
