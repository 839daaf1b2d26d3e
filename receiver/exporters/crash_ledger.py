"""The crash ledger of a persistent sending queue: what a SIGKILLed agent held in memory is counted
by the next one.

With ``sending_queue.storage`` set, everything queued is on disk and survives a crash; what
the pipelines held before it was queued (the batch processor, a tail sampler's held traces)
does not.  The ledger counts it.  Its file ``DIR/<exporter>/.crash-ledger`` (64 bytes, next to
the queue's batch files and covered by the same ``.lock``) is mapped ``MAP_SHARED`` and holds
cumulative counters per signal (traces, logs)::

    magic "ERXL" | version u32 = 1 | pid u64 (the agent writing it)
    | traces entered u64 | traces settled u64 | logs entered u64 | logs settled u64 | 16 zero bytes

* **entered**: items handed to the head of a pipeline that feeds this exporter (after the
  receiver, before the first processor), added once per batch;
* **settled**: items whose fate is known — queued on disk or counted by this exporter
  (``consume`` returned), or dropped and counted by a processor in between (the batch
  processor's backlog, a tail sampler's not-sampled traces).

A clean shutdown leaves ``entered == settled``.  At start, the difference a previous run left
is what it held in memory when it died: counted once in
``exporter_dropped_items_total{reason="agent_killed"}``, logged in one line, and the counters
start again from zero.

Each counter is one aligned 8-byte store into the mapped page: the page is the file's page in
the page cache, so it outlives the process whatever kills it, with no ``fsync`` and no
``msync``.  A **power loss** (or a kernel crash) before the kernel writes the page back is not
covered: the counters are then as old as the last writeback and may be wrong either way.
Settling comes after the batch file is renamed into place, so a kill between the two counts one
batch both as received (replayed) and as ``agent_killed``, never neither.  Records still in the
kernel's ring buffer and transactions the receiver had not yet turned into spans are not in the
ledger (docs/reliability.md).

Metric data points are not counted: a metrics push is a snapshot of cumulative state, the next
one supersedes it.
"""

from __future__ import annotations

import ctypes
import logging
import mmap
import os
import struct
import threading
from dataclasses import dataclass

from receiver.model.signals import Signal

log = logging.getLogger(__name__)

LEDGER_NAME = ".crash-ledger"
MAGIC = b"ERXL"
VERSION = 1
SIZE = 64
_HEAD = struct.Struct("<4sIQ")  # magic, version, pid
# Offsets of (entered, settled) per counted signal; each 8-byte aligned.
SLOTS = {Signal.TRACES: (16, 24), Signal.LOGS: (32, 40)}


@dataclass(frozen=True, slots=True)
class Leftover:
    """What the previous run's ledger said when this one opened it."""

    pid: int  # the agent that wrote it (0: no ledger before)
    lost: dict  # Signal -> items entered and never settled (only signals with some)
    unreadable: str = ""  # why the file was not a ledger (then nothing is counted)


class CrashLedger:
    """One exporter's ledger.  ``enter``/``settle`` are thread-safe and cost one lock and one
    8-byte store per call (per batch); before :meth:`open` and after :meth:`close` they only
    count in memory."""

    def __init__(self, directory: str) -> None:
        self.path = os.path.join(directory, LEDGER_NAME)
        self._lock = threading.Lock()
        self._counts = {s: [0, 0] for s in SLOTS}  # signal -> [entered, settled]
        self._mm: mmap.mmap | None = None
        self._cells: dict[Signal, tuple[ctypes.c_uint64, ctypes.c_uint64]] = {}

    @property
    def is_open(self) -> bool:
        return self._mm is not None

    def counts(self, signal: Signal) -> tuple[int, int]:
        """(entered, settled) of this run."""
        with self._lock:
            entered, settled = self._counts.get(signal, (0, 0))
            return entered, settled

    def enter(self, signal: Signal, n: int) -> None:
        self._add(signal, 0, n)

    def settle(self, signal: Signal, n: int) -> None:
        self._add(signal, 1, n)

    def _add(self, signal: Signal, which: int, n: int) -> None:
        if n <= 0 or signal not in SLOTS:
            return
        with self._lock:
            c = self._counts[signal]
            c[which] += n
            cells = self._cells.get(signal)
            if cells is not None:
                cells[which].value = c[which]  # one aligned 8-byte store

    def open(self) -> Leftover:
        """Read what the previous run left, then map the file and write this run's counters
        (zero, unless items entered before the exporter started).  The caller holds the queue
        directory's lock.  Raises OSError if the file cannot be created or reserved."""
        previous = self._read_previous()
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            # Blocks reserved now: a store into the mapping must never meet a full disk (SIGBUS).
            os.ftruncate(fd, SIZE)
            os.posix_fallocate(fd, 0, SIZE)
            head = _HEAD.pack(MAGIC, VERSION, os.getpid())
            with self._lock:
                body = bytearray(SIZE)
                body[: _HEAD.size] = head
                for signal, (e_off, s_off) in SLOTS.items():
                    struct.pack_into("<QQ", body, e_off, *self._counts[signal])
                os.pwrite(fd, bytes(body), 0)
                mm = mmap.mmap(fd, SIZE, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
                self._mm = mm
                self._cells = {
                    s: (ctypes.c_uint64.from_buffer(mm, e_off), ctypes.c_uint64.from_buffer(mm, s_off))
                    for s, (e_off, s_off) in SLOTS.items()
                }
        finally:
            os.close(fd)  # the mapping keeps the file
        return previous

    def _read_previous(self) -> Leftover:
        try:
            with open(self.path, "rb") as f:
                data = f.read(SIZE + 1)
        except FileNotFoundError:
            return Leftover(0, {})
        if len(data) != SIZE:
            return Leftover(0, {}, f"{len(data)} bytes, not {SIZE}")
        magic, version, pid = _HEAD.unpack_from(data)
        if magic != MAGIC or version != VERSION:
            return Leftover(0, {}, f"magic {magic!r} version {version}")
        lost = {}
        for signal, (e_off, s_off) in SLOTS.items():
            entered, settled = struct.unpack_from("<Q", data, e_off)[0], struct.unpack_from("<Q", data, s_off)[0]
            if entered > settled:
                lost[signal] = entered - settled
        return Leftover(pid, lost)

    def close(self) -> dict:
        """Unmap (idempotent); the file keeps the last counters.  Returns what entered and was
        never settled (signal -> items): empty after a clean run, else a component lost items
        without counting them (a bug) — the file keeps them, the next start counts them."""
        with self._lock:
            mm, self._mm = self._mm, None
            self._cells = {}  # the ctypes views must go before the mapping can close
            unsettled = {s: c[0] - c[1] for s, c in self._counts.items() if c[0] != c[1]}
        if mm is not None:
            mm.close()
        return unsettled
