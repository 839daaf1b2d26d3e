"""One reporting interval: the kernel's aggregated samples -> a :class:`ProfileBatch`.

``ProfileDrain.drain()`` reads and deletes every ``erx_prof_counts`` entry, symbolises the
stacks it names (then deletes the stacks no key references any more: the stack map is bounded),
and labels samples taken while their thread served a request with that request's span, through
``span_of(conn_id, start_ns) -> (trace_id, span_id) | None``.  A request still open at the drain
has no span yet, and a span's trace may be decided seconds after it ends (same-host linking
holds it): its samples wait up to ``span_wait_ns`` over the next drains (then go out without
the label, counted), at most ``max_waiting`` keys.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from types import MappingProxyType
from typing import Callable

from receiver.model.profiles import ProfileBatch, ProfileSample
from receiver.profiling.cpython import CPythonProcess
from receiver.profiling.symbolizer import Symbolizer


@dataclass
class DrainStats:
    drains: int = 0
    samples: int = 0
    missing_stacks: int = 0  # a key whose stack id was gone (deleted between sample and drain)
    spans_labelled: int = 0
    spans_unresolved: int = 0  # serving samples whose span never appeared


class ProfileDrain:
    def __init__(self, loader, symbolizer: Symbolizer, frequency_hz: int,
                 span_of: Callable[[int, int], tuple[str, str] | None] | None = None,
                 python_of: Callable[[int], CPythonProcess | None] | None = None,
                 comm_of: Callable[[int], str] | None = None, span_wait_ns: int = 10 * 10**9,
                 max_waiting: int = 65536, clock: Callable[[], int] = time.monotonic_ns) -> None:
        self._loader = loader
        self._sym = symbolizer
        self._freq = frequency_hz
        self._span_of = span_of or (lambda conn_id, start_ns: None)
        self._python_of = python_of or (lambda pid: None)
        self._comm_of = comm_of or (lambda pid: "")
        self._key, _ = loader.abi.struct_format("erx_prof_key")
        self._span_wait_ns = span_wait_ns
        self._max_waiting = max_waiting
        self._clock = clock
        # Serving samples whose span is not known yet: (key, samples, first drain that saw them).
        self._waiting: list[tuple[tuple, int, int]] = []
        self.stats = DrainStats()

    def drain(self, start_ns: int, end_ns: int, final: bool = False) -> ProfileBatch:
        """``final``: the last drain (shutdown): nothing waits for a span any more."""
        self.stats.drains += 1
        self._sym.begin_drain()
        now = self._clock()
        entries = [(self._unpack(raw), n, now) for raw, n in self._loader.drain()]
        waiting, self._waiting = self._waiting, []
        stacks: dict[int, tuple[int, ...]] = {}
        py_stacks: dict[int, tuple[int, ...]] = {}
        samples: list[ProfileSample] = []
        for key, n, seen in waiting + entries:
            pid, tid, ustack, kstack, py, conn_id, start = key
            labels = {"process.pid": str(pid), "thread.id": str(tid)}
            comm = self._comm_of(pid)
            if comm:
                labels["process.executable.name"] = comm
            if conn_id:
                span = self._span_of(conn_id, start)
                if (span is None and not final and now - seen < self._span_wait_ns
                        and len(self._waiting) < self._max_waiting):
                    self._waiting.append((key, n, seen))
                    continue
                if span is None:
                    self.stats.spans_unresolved += n
                else:
                    labels["trace_id"], labels["span_id"] = span
                    self.stats.spans_labelled += n
            for sid in (ustack, kstack):
                if sid >= 0 and sid not in stacks:
                    stacks[sid] = self._loader.stack(sid)
                    if not stacks[sid]:
                        self.stats.missing_stacks += 1
            if py and py not in py_stacks:
                py_stacks[py] = self._loader.python_stack(py)[0]
            frames = []
            if kstack >= 0:
                frames += self._sym.kernel_frames(stacks[kstack])
            python = self._python_of(pid) if py else None
            user = stacks.get(ustack, ()) if ustack >= 0 else ()
            frames += self._sym.user_frames(pid, user, python, py_stacks.get(py, ()) if python else ())
            samples.append(ProfileSample(tuple(frames), n, pid, tid, MappingProxyType(labels)))
            self.stats.samples += n
        # Stacks of keys still waiting stay; the others can go (the map is bounded).
        keep = {k[2] for k, _, _ in self._waiting} | {k[3] for k, _, _ in self._waiting}
        self._loader.delete_stacks([s for s in stacks if s not in keep])
        keep_py = {k[4] for k, _, _ in self._waiting}
        self._loader.delete_python_stacks([h for h in py_stacks if h not in keep_py])
        return ProfileBatch(start_ns, max(0, end_ns - start_ns), self._freq, tuple(samples))

    def _unpack(self, raw: bytes) -> tuple:
        return self._key.unpack_from(raw)
