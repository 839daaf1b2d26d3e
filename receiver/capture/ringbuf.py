"""Draining the BPF ring buffer: poll on an interval (the kernel side submits without wakeups
except past a byte threshold), copy records out in one batch, hand the batch on."""

from __future__ import annotations

from receiver.bpf.loader import BpfLoader


class RingBufferReader:
    """Owns the libbpf ``ring_buffer``.  ``poll(timeout_ms)`` returns the raw records that
    arrived (bytes), oldest first.  ``close()`` is idempotent."""

    def __init__(self, loader: BpfLoader, map_name: str = "erx_events") -> None:
        lb = loader.libbpf
        self._ffi, self._lib = lb.ffi, lb.lib
        self._batch: list[bytes] = []
        batch = self._batch
        buffer = self._ffi.buffer

        @self._ffi.callback("int(void *, void *, size_t)")
        def _on_record(ctx, data, size):
            batch.append(buffer(data, size)[:])
            return 0

        self._cb = _on_record  # keep the callback alive as long as the ring buffer
        self._rb = self._lib.ring_buffer__new(loader.map_fd(map_name), _on_record, self._ffi.NULL, self._ffi.NULL)
        if self._rb == self._ffi.NULL:
            raise OSError(f"ring_buffer__new failed for map {map_name}")
        self.delivered = 0

    def poll(self, timeout_ms: int) -> list[bytes]:
        """Wait up to timeout_ms for a forced wakeup, then consume everything pending."""
        if self._rb is None:
            return []
        self._lib.ring_buffer__poll(self._rb, timeout_ms)
        # poll only consumes when epoll fired; records submitted without wakeup are taken here.
        self._lib.ring_buffer__consume(self._rb)
        out = self._batch[:]
        self._batch.clear()
        self.delivered += len(out)
        return out

    def close(self) -> None:
        if self._rb is not None:
            self._lib.ring_buffer__free(self._rb)
            self._rb = None
