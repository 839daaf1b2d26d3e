"""HTTP/1 transactions the kernel aggregated instead of submitting (overload as a state).

When the ring buffer fills past a threshold, or user space sets a shed level, the kernel adds
paired transactions to per-CPU duration histograms in ``erx_http_aggregates`` instead of
submitting ``ERX_EV_HTTP_TX`` records (see bpf/src/lib/http_overload.h), so that RED counts stay
exact at any load.  :class:`OverloadAggregates` drains them: it flips the generation the kernel
adds to (``erx_http_control``), waits until no program adds to the old one any more
(``erx_http_agg_busy`` sums to 0 over the CPUs), then reads and deletes the old generation's
entries, summing the CPUs.  Each transaction is returned once.

What an aggregate carries (all the kernel keeps of a transaction's RED attributes): process id,
role, method (the semantic conventions' known ones, else ``_OTHER``), status code (0: no
response), protocol version, TLS (``https``), and the server's port, with its address for a
client (the socket's remote end, not the Host header).  No route, no Host, no user agent.
Durations are ``end_ns - start_ns`` of the transaction, as a record's; bucket ``i`` counts
durations ``<= bounds_ns[i]``, the last bucket those above.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from dataclasses import dataclass
from typing import Callable

from receiver.bpf.loader import BpfLoader

_METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "QUERY")


@dataclass(frozen=True, slots=True)
class HttpAggregateKey:
    pid: int
    role: int  # ERX_ROLE_*
    method: str  # a known method, or "_OTHER"
    status: int  # 0: no response
    version: str  # "1.1"
    tls: bool  # plaintext read at the TLS library: url.scheme https
    server_port: int  # server role: the local port; client role: the remote one
    server_address: str  # client role: the remote address; server role: ""


@dataclass(frozen=True, slots=True)
class HttpAggregate:
    key: HttpAggregateKey
    count: int
    sum_ns: int
    min_ns: int
    max_ns: int
    buckets: tuple[int, ...]  # len(bounds_ns) + 1


class OverloadError(RuntimeError):
    """The aggregates could not be read (the loader is not started)."""


class OverloadAggregates:
    """Reads the kernel's overload aggregates through a started :class:`BpfLoader` (with
    ``http_pairing``).  ``drain()`` from one thread at a time; ``grace_s`` bounds the wait for
    programs still adding to the retired generation (they take microseconds): past it, the
    generation is drained at the next call instead."""

    def __init__(self, loader: BpfLoader, grace_s: float = 0.1, sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._loader = loader
        self._grace_s = grace_s
        self._sleep = sleep
        self._clock = clock
        abi = loader.abi
        c = abi.const
        self.bounds_ns: tuple[int, ...] = tuple(c(f"ERX_HTTP_BOUND_{i}_NS") for i in range(c("ERX_HTTP_BUCKETS") - 1))
        self._methods = {c(f"ERX_HTTP_{m}"): m for m in _METHODS}
        self._ncpu = loader.libbpf.lib.libbpf_num_possible_cpus()
        self._pending: int | None = None  # a retired generation not drained yet

    # -- control -------------------------------------------------------------------------------

    def _control(self):
        ctl = self._loader.abi.ffi.new("struct erx_http_control *")
        lb = self._loader.libbpf
        if lb.lib.bpf_map_lookup_elem(self._fd("erx_http_control"), lb.ffi.new("uint32_t *", 0),
                                      self._view(ctl)) != 0:
            raise OverloadError("erx_http_control cannot be read")
        return ctl

    def _write_control(self, ctl) -> None:
        lb = self._loader.libbpf
        if lb.lib.bpf_map_update_elem(self._fd("erx_http_control"), lb.ffi.new("uint32_t *", 0),
                                      self._view(ctl), 0) != 0:
            raise OverloadError("erx_http_control cannot be written")

    def _view(self, cdata):
        """An ABI cdata's memory as libbpf's FFI sees it (two FFI instances)."""
        return self._loader.libbpf.ffi.from_buffer(self._loader.abi.ffi.buffer(cdata))

    @property
    def shed_level(self) -> int:
        return self._control().shed_level

    def set_shed_level(self, level: int) -> None:
        """enum erx_shed_level: what the kernel aggregates whatever the ring's fill (the agent over
        its CPU budget): ERX_SHED_NONE, ERX_SHED_SUCCESSES (all but errors), ERX_SHED_ALL."""
        ctl = self._control()
        ctl.shed_level = level
        self._write_control(ctl)

    # -- draining ------------------------------------------------------------------------------

    def drain(self) -> list[HttpAggregate]:
        """The transactions aggregated since the last drain, one aggregate per key."""
        if self._pending is None:
            ctl = self._control()
            self._pending = ctl.generation & 1
            ctl.generation = (ctl.generation + 1) & 1
            self._write_control(ctl)
        deadline = self._clock() + self._grace_s
        while self._busy(self._pending):
            if self._clock() > deadline:
                return []
            self._sleep(0.0005)
        out = self._take(self._pending)
        self._pending = None
        return out

    def _busy(self, generation: int) -> int:
        ffi, lib = self._loader.libbpf.ffi, self._loader.libbpf.lib
        values = ffi.new("int64_t[]", self._ncpu)  # per CPU
        if lib.bpf_map_lookup_elem(self._fd("erx_http_agg_busy"), ffi.new("uint32_t *", generation), values) != 0:
            raise OverloadError("erx_http_agg_busy cannot be read")
        return sum(values[i] for i in range(self._ncpu))

    def _take(self, generation: int) -> list[HttpAggregate]:
        abi = self._loader.abi
        ffi, lib = self._loader.libbpf.ffi, self._loader.libbpf.lib
        fd = self._fd("erx_http_aggregates")
        keys = []
        prev, nxt = ffi.NULL, abi.ffi.new("struct erx_http_agg_key *")
        while lib.bpf_map_get_next_key(fd, prev, self._view(nxt)) == 0:
            keys.append(nxt)
            prev = self._view(nxt)
            nxt = abi.ffi.new("struct erx_http_agg_key *")
        # per-CPU values: one value per possible CPU (the value's size is a multiple of 8)
        values = abi.ffi.new("struct erx_http_agg_value[]", self._ncpu)
        merged: dict[HttpAggregateKey, list] = {}
        for k in keys:
            if k.generation != generation:
                continue
            if lib.bpf_map_lookup_elem(fd, self._view(k), self._view(values)) != 0:
                continue  # gone meanwhile: not ours to count
            lib.bpf_map_delete_elem(fd, self._view(k))
            agg = merged.setdefault(self._key(k), [0, 0, None, 0, [0] * (len(self.bounds_ns) + 1)])
            for cpu in range(self._ncpu):
                v = values[cpu]
                if not v.count:
                    continue
                agg[0] += v.count
                agg[1] += v.sum_ns
                agg[2] = v.min_ns if agg[2] is None else min(agg[2], v.min_ns)
                agg[3] = max(agg[3], v.max_ns)
                for i in range(len(agg[4])):
                    agg[4][i] += v.buckets[i]
        return [HttpAggregate(key, n, s, lo or 0, hi, tuple(b)) for key, (n, s, lo, hi, b) in merged.items() if n]

    def _key(self, k) -> HttpAggregateKey:
        family = k.family
        raw = bytes(k.server_addr)
        if family == socket.AF_INET and any(raw[:4]):
            address = socket.inet_ntop(socket.AF_INET, raw[:4])
        elif family == socket.AF_INET6 and any(raw):
            a = ipaddress.IPv6Address(raw)
            address = str(a.ipv4_mapped) if a.ipv4_mapped else str(a)
        else:
            address = ""
        return HttpAggregateKey(k.pid, k.role, self._methods.get(k.method, "_OTHER"), k.status, f"1.{k.version}",
                                bool(k.tls), k.server_port, address)

    def _fd(self, name: str) -> int:
        try:
            return self._loader.map_fd(name)
        except (KeyError, AttributeError, TypeError) as err:
            raise OverloadError(f"BPF map {name} is not available: start the loader first") from err
