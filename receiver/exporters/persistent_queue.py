"""The persistent sending queue: one file per batch, so queued telemetry survives a restart or a crash.

``sending_queue.storage: DIR`` gives each exporter its own directory ``DIR/<exporter>`` (the id
with ``/`` written as ``-``: ``otlp/vendor`` → ``otlp-vendor``) holding::

    .lock                        flock()ed by the agent using the directory (one at a time)
    00000000000000000042.batch   one queued batch; the number orders the queue (oldest first)
    .00000000000000000043.tmp    a batch being written; never read, removed on open

A batch file is a 20-byte little-endian header, then the payload::

    magic "ERXQ" | version u8 = 1 | signal u8 (1 traces, 2 metrics, 3 logs) | 2 zero bytes
    | items u32 | payload length u32 | CRC-32 of the payload u32
    payload: a serialized OTLP ExportTraceServiceRequest / ExportMetricsServiceRequest /
             ExportLogsServiceRequest (protobuf, whatever the exporter's wire encoding)

Writes are atomic: the temporary file is written and fsync()ed, renamed to its final name, and
the directory is fsync()ed, so a batch is either wholly in the queue or not at all — after a
SIGKILL and after a power loss.  The sender removes a file once its batch is settled (sent,
rejected or failed permanently), so a crash re-sends at most the batches that were in flight,
one per consumer thread (at-least-once delivery).  A file whose header or checksum is wrong is reported and removed.

This module does the file work only; :class:`~receiver.exporters.sending_queue.QueuedRetryingSender`
keeps the order, the bounds and the counters.
"""

from __future__ import annotations

import fcntl
import logging
import os
import struct
import threading
import zlib
from dataclasses import dataclass
from urllib.parse import quote

from receiver.model.signals import Signal

log = logging.getLogger(__name__)

MAGIC = b"ERXQ"
VERSION = 1
HEADER = struct.Struct("<4sBB2xIII")
SUFFIX = ".batch"
LOCK_NAME = ".lock"

SIGNAL_CODES = {Signal.TRACES: 1, Signal.METRICS: 2, Signal.LOGS: 3}
_SIGNALS_BY_CODE = {code: signal for signal, code in SIGNAL_CODES.items()}


class StorageError(OSError):
    """The queue directory cannot be used (in use by another process, unreadable, ...)."""


class CorruptBatchError(ValueError):
    """A batch file is not one this module wrote (bad magic, version, length or checksum)."""


@dataclass(frozen=True, slots=True)
class StoredBatch:
    """A batch on disk; the payload stays there until :meth:`BatchStorage.read`."""

    seq: int
    signal: Signal
    items: int
    path: str
    size: int  # payload bytes (the serialized request)


def exporter_directory(storage: str, exporter_id: str) -> str:
    """``storage/<exporter>``: ``otlp`` → ``otlp``, ``otlp/vendor`` → ``otlp-vendor``.

    Component types never contain ``-``, so distinct ids get distinct directories; the name
    part is percent-encoded beyond ``[A-Za-z0-9._~-]`` so it is always one safe path segment.
    """
    type_, _, name = exporter_id.partition("/")
    return os.path.join(storage, f"{type_}-{quote(name, safe='._~-')}" if name else type_)


def encode_batch(signal: Signal, items: int, payload: bytes) -> bytes:
    return HEADER.pack(MAGIC, VERSION, SIGNAL_CODES[signal], items, len(payload), zlib.crc32(payload)) + payload


def decode_header(header: bytes) -> tuple[Signal, int, int, int]:
    """``(signal, items, payload length, crc)``; :class:`CorruptBatchError` if it is not ours."""
    if len(header) < HEADER.size:
        raise CorruptBatchError("truncated header")
    magic, version, code, items, length, crc = HEADER.unpack_from(header)
    if magic != MAGIC:
        raise CorruptBatchError("not a queued batch (bad magic)")
    if version != VERSION:
        raise CorruptBatchError(f"unknown batch format version {version}")
    signal = _SIGNALS_BY_CODE.get(code)
    if signal is None:
        raise CorruptBatchError(f"unknown signal code {code}")
    return signal, items, length, crc


def decode_batch(data: bytes) -> tuple[Signal, int, bytes]:
    """``(signal, items, payload)`` of a whole batch file's bytes."""
    signal, items, length, crc = decode_header(data)
    payload = data[HEADER.size :]
    if len(payload) != length:
        raise CorruptBatchError(f"payload is {len(payload)} bytes, the header says {length}")
    if zlib.crc32(payload) != crc:
        raise CorruptBatchError("payload checksum mismatch")
    return signal, items, payload


class BatchStorage:
    """The files of one exporter's persistent queue.

    ``open()`` creates and locks the directory and returns the batches already there (oldest
    first); ``write``/``read``/``remove`` are thread-safe; ``close()`` releases the lock and is
    idempotent.
    """

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self._lock = threading.Lock()
        self._next_seq = 0
        self._lock_fd: int | None = None
        self._dir_fd: int | None = None

    @property
    def is_open(self) -> bool:
        return self._lock_fd is not None

    def open(self) -> tuple[list[StoredBatch], int]:
        """Lock the directory; ``(batches found, files discarded as unreadable)``."""
        os.makedirs(self.directory, mode=0o700, exist_ok=True)
        lock_path = os.path.join(self.directory, LOCK_NAME)
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "?"
            os.close(fd)
            raise StorageError(
                f"sending queue directory {self.directory} is in use by another process (pid {holder})"
            ) from None
        except OSError:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._lock_fd = fd
        self._dir_fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            return self._scan()
        except BaseException:
            self.close()
            raise

    def _scan(self) -> tuple[list[StoredBatch], int]:
        found: list[StoredBatch] = []
        discarded = 0
        for name in os.listdir(self.directory):
            path = os.path.join(self.directory, name)
            if name.startswith(".") and name.endswith(".tmp"):
                self._unlink(path)  # a write that never completed: it was never queued
                continue
            stem = name[: -len(SUFFIX)]
            if not name.endswith(SUFFIX) or not stem.isdigit():
                continue
            try:
                with open(path, "rb") as f:
                    signal, items, size, _ = decode_header(f.read(HEADER.size))
            except (OSError, CorruptBatchError) as e:
                log.warning("persistent queue: discarding unreadable batch %s: %s", path, e)
                self._unlink(path)
                discarded += 1
                continue
            found.append(StoredBatch(int(stem), signal, items, path, size))
        found.sort(key=lambda b: b.seq)
        self._next_seq = found[-1].seq + 1 if found else 0
        return found, discarded

    def write(self, signal: Signal, items: int, payload: bytes) -> StoredBatch:
        """Store one batch durably; returns it once it is safely on disk."""
        with self._lock:
            if self._dir_fd is None:
                raise StorageError(f"sending queue directory {self.directory} is not open")
            seq = self._next_seq
            self._next_seq += 1
        name = f"{seq:020d}{SUFFIX}"
        tmp = os.path.join(self.directory, f".{seq:020d}.tmp")
        path = os.path.join(self.directory, name)
        data = encode_batch(signal, items, payload)
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.rename(tmp, path)
            os.fsync(self._dir_fd)
        except BaseException:
            self._unlink(tmp)
            raise
        return StoredBatch(seq, signal, items, path, len(payload))

    def read(self, batch: StoredBatch) -> bytes:
        """The payload of a stored batch (checked against the header's length and CRC)."""
        with open(batch.path, "rb") as f:
            data = f.read()
        signal, _, payload = decode_batch(data)
        if signal is not batch.signal:
            raise CorruptBatchError(f"signal changed from {batch.signal.value} to {signal.value}")
        return payload

    def remove(self, batch: StoredBatch) -> None:
        self._unlink(batch.path)

    def close(self) -> None:
        with self._lock:
            dir_fd, lock_fd = self._dir_fd, self._lock_fd
            self._dir_fd = self._lock_fd = None
        if dir_fd is not None:
            os.close(dir_fd)
        if lock_fd is not None:
            os.close(lock_fd)  # releases the flock

    @staticmethod
    def _unlink(path: str) -> None:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        except OSError as e:
            log.warning("persistent queue: cannot remove %s: %s", path, e)
