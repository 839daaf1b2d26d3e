"""The BPF object's lifecycle: open -> configure (.rodata, map sizes) -> load -> attach -> close.

One :class:`BpfLoader` owns one ``bpf_object`` and its links.  ``close()`` is idempotent and
leaves no programs, links or maps behind (they are not pinned, so closing the object and
destroying the links frees them).  Failures become :class:`BpfLoadError` naming the cause
and the fix, with the relevant libbpf/verifier log lines.
"""

from __future__ import annotations

import errno
from concurrent.futures import ThreadPoolExecutor
import resource
import threading
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Callable

from receiver.bpf.abi import Abi, load_abi
from receiver.bpf.libbpf import Libbpf, errno_text, open_libbpf
from receiver.bpf.network_knobs import NETWORK_METRIC_BITS, NETWORK_PROGRAMS, NetworkKnobs
from receiver.bpf.loader_knobs import INIT_PIDNS_INO, LoaderKnobs, agent_pid_namespace  # noqa: F401  (where users find them)
from receiver.bpf.privileges import capability_refusal
from receiver.bpf.tls_probes import TlsAttachment, UprobeSpec, go_binary_entry, go_plan, openssl_plan
from receiver.bpf.tracefs import ensure_tracefs_or_refuse

# libbpf's print callback is process-wide; loads are serialised so each gets its own log.
_PRINT_LOCK = threading.Lock()


class BpfLoadError(RuntimeError):
    """Opening, loading or attaching the BPF object failed; the message says why and what to do."""


# Programs reached only by tail calls (prog array map -> program): never attached.
TAIL_CALLS: tuple[tuple[str, str], ...] = (
    ("erx_http_tp_progs", "erx_http_tp"),
    ("erx_http_uprobe_progs", "erx_http_uprobe"),
)
TAIL_CALLED_SECTIONS = ("tracepoint",)  # a section without an attach target


def default_object_path(name: str = "receiver.bpf.o") -> Path:
    return Path(str(resources.files("receiver") / "bpf" / "objects" / name))


def _hint_for(err: int, log_tail: str) -> str:
    if err in (errno.EPERM, errno.EACCES):
        if "invalid" in log_tail or "R" in log_tail and "unbounded" in log_tail:
            return "the verifier rejected a program (see the log lines above)"
        return (
            "permission denied: run as root, or grant CAP_BPF + CAP_PERFMON + CAP_DAC_READ_SEARCH "
            "(+ CAP_NET_ADMIN for tc; docs/security.md)"
        )
    if err == errno.ENOENT:
        return "a tracepoint or kernel type is missing: check `ebpf-receiver check` (BTF, tracefs)"
    if err == errno.E2BIG:
        return "a map or program is larger than this kernel allows (lower capture_size/ring_buffer_size)"
    if err == errno.EINVAL:
        return "the kernel refused the object: it may be too old or lack BTF (/sys/kernel/btf/vmlinux)"
    return "see the libbpf log lines above"


@dataclass
class BpfLoader:
    object_path: Path
    knobs: LoaderKnobs = field(default_factory=LoaderKnobs)
    libbpf: Libbpf | None = None
    abi: Abi | None = None

    def __post_init__(self) -> None:
        self.libbpf = self.libbpf or open_libbpf()
        self.abi = self.abi or load_abi()
        self._obj = None
        self._links: list = []
        self._tls_links: dict[str, list] = {}
        # Libraries are attached from the discovery thread: close() waits for an attach in progress.
        self._tls_lock = threading.Lock()
        self._log: list[str] = []
        self._state = "new"  # new -> opened -> loaded -> attached -> closed
        self.mounted_tracefs = False

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def state(self) -> str:
        return self._state

    def open(self) -> None:
        ffi, lib = self.libbpf.ffi, self.libbpf.lib
        if not Path(self.object_path).is_file():
            raise BpfLoadError(f"BPF object {self.object_path} not found: build it with `make -C bpf`")
        self.memlock_unlimited = _raise_memlock()
        obj = self._with_log(lambda: lib.bpf_object__open_file(str(self.object_path).encode(), ffi.NULL))
        err = lib.libbpf_get_error(obj)
        if obj == ffi.NULL or err:
            raise BpfLoadError(self._failure(f"opening {self.object_path}", err or -errno.EINVAL))
        self._obj = obj
        self._state = "opened"

    def configure(self) -> None:
        """Write the knobs into .rodata and size the maps (before load)."""
        ffi, lib = self.libbpf.ffi, self.libbpf.lib
        k = self.knobs
        max_capture = self.abi.const("ERX_MAX_CAPTURE")
        if not 0 < k.capture_size <= max_capture:
            raise BpfLoadError(f"capture_size {k.capture_size} must be between 1 and {max_capture}")
        for name in ("shed_ring_fraction", "shed_error_ring_fraction"):
            if not 0 <= getattr(k, name) <= 1:
                raise BpfLoadError(f"{name} {getattr(k, name)} must be between 0 and 1")
        rodata = self._find_map_suffix(".rodata")
        size = ffi.new("size_t *")
        ptr = lib.bpf_map__initial_value(rodata, size)
        if ptr == ffi.NULL or size[0] < self.abi.sizeof("erx_config"):
            raise BpfLoadError(".rodata of the BPF object does not hold struct erx_config")
        # .rodata holds exactly one struct erx_config at offset 0 (see receiver.bpf.c).
        cfg = self.abi.ffi.new("struct erx_config *")
        cfg.agent_tgid = k.agent_tgid
        cfg.capture_size = k.capture_size
        cfg.wakeup_bytes = k.wakeup_bytes
        cfg.capture_logs = 1 if k.capture_logs else 0
        cfg.filter_ports = 1 if k.excluded_ports else 0
        cfg.filter_pids = 1 if k.excluded_pids or k.filter_pids else 0
        cfg.agent_pidns_dev, cfg.agent_pidns_ino = k.agent_pidns
        cfg.pidns_only = 1 if k.pidns_only and k.agent_pidns[1] else 0
        ring_size = _pow2_at_least(k.ring_buffer_size, 4096)
        cfg.http_pairing = 1 if k.http_pairing else 0
        cfg.shed_ring_bytes = int(ring_size * k.shed_ring_fraction)
        cfg.shed_error_ring_bytes = int(ring_size * k.shed_error_ring_fraction)
        cfg.shed_keep_slower_than_ns = max(0, int(k.shed_keep_slower_than_ns))
        cfg.observe_self = 1 if k.observe_self else 0
        cfg.log_pipes = self.abi.const(f"ERX_LOG_PIPES_{k.log_pipes.upper()}")
        self._configure_network(cfg)
        data = bytearray(ffi.buffer(ptr, size[0]))
        data[: self.abi.sizeof("erx_config")] = bytes(self.abi.ffi.buffer(cfg))
        self._check(lib.bpf_map__set_initial_value(rodata, bytes(data), len(data)), "setting .rodata")
        self._set_max_entries("erx_events", ring_size)
        self._set_max_entries("erx_conns", k.max_connections)
        # The pairing's programs are never reached without it (not loaded), and its tables cost
        # kernel memory only with it.
        for _, prog_name in TAIL_CALLS:
            prog = lib.bpf_object__find_program_by_name(self._obj, prog_name.encode())
            if prog != ffi.NULL:
                lib.bpf_program__set_autoload(prog, bool(k.http_pairing))
        self._set_max_entries("erx_http_conns", max(1, k.http_pairing_connections) if k.http_pairing else 1)
        self._set_max_entries("erx_http_partial", 1024 if k.http_pairing else 1)
        self._set_max_entries("erx_http_aggregates", max(1, k.http_aggregate_keys) if k.http_pairing else 1)
        self._set_max_entries("erx_scratch_buf", max(1, lib.libbpf_num_possible_cpus()))
        self._set_max_entries("erx_tcp_socks", k.max_connections)
        if k.network is not None:
            self._set_max_entries("erx_net_stats", k.network.max_series)
            self._set_max_entries("erx_tc_flows", k.network.max_series)

    def _configure_network(self, cfg) -> None:
        """Network knobs into ``cfg``; programs of metrics that are off are not loaded."""
        ffi, lib = self.libbpf.ffi, self.libbpf.lib
        net = self.knobs.network or NetworkKnobs()
        unknown = set(net.metrics) - set(NETWORK_METRIC_BITS)
        if unknown:
            raise BpfLoadError(f"unknown network metrics {sorted(unknown)}; known: {sorted(NETWORK_METRIC_BITS)}")
        cfg.net_metrics = sum(self.abi.const(NETWORK_METRIC_BITS[m]) for m in net.metrics)
        cfg.net_sample_interval_ns = int(net.sample_interval_s * 1e9)
        n_bounds = self.abi.const("ERX_NET_BOUNDS")
        for name, bounds in (("rtt", net.rtt_bounds_s), ("connect", net.connect_bounds_s)):
            if len(bounds) > n_bounds:
                raise BpfLoadError(f"{name} histogram: at most {n_bounds} bounds, got {len(bounds)}")
            us = [max(1, round(b * 1e6)) for b in bounds]
            if us != sorted(set(us)):
                raise BpfLoadError(f"{name} histogram bounds must increase by at least 1us: {list(bounds)}")
            setattr(cfg, f"net_{name}_bounds", len(us))
            for i, v in enumerate(us):
                getattr(cfg, f"net_{name}_bounds_us")[i] = v
        for prog_name, needs in NETWORK_PROGRAMS.items():
            prog = lib.bpf_object__find_program_by_name(self._obj, prog_name.encode())
            if prog == ffi.NULL:
                if net.metrics & set(needs):
                    raise BpfLoadError(f"BPF object lacks program {prog_name}")
                continue  # an object without them (the benchmark floor): nothing to skip
            if not net.metrics & set(needs):
                self._check(lib.bpf_program__set_autoload(prog, False), f"skipping {prog_name}")

    def load(self) -> None:
        lib = self.libbpf.lib
        self._log.clear()
        rc = self._with_log(lambda: lib.bpf_object__load(self._obj))
        if rc:
            raise BpfLoadError(self._failure("loading the BPF object", rc))
        self._state = "loaded"
        self._fill_filters()
        self._create_overflow_entries()
        self._fill_tail_calls()

    def attach(self) -> None:
        """Attach every tracepoint program (uprobe programs are attached per library by
        :meth:`attach_tls_library`)."""
        ffi, lib = self.libbpf.ffi, self.libbpf.lib
        _, self.mounted_tracefs = ensure_tracefs_or_refuse(BpfLoadError)
        prog = lib.bpf_object__next_program(self._obj, ffi.NULL)
        while prog != ffi.NULL:
            name = ffi.string(lib.bpf_program__name(prog)).decode()
            section = ffi.string(lib.bpf_program__section_name(prog)).decode()
            # uprobes: per library (attach_tls_library); tc: per interface (attach_tc); tail-called
            # programs: through their prog array; programs of features that are off: not loaded.
            if (section.startswith(("uprobe", "uretprobe", "tc")) or section in TAIL_CALLED_SECTIONS
                    or lib.bpf_program__fd(prog) < 0):
                prog = lib.bpf_object__next_program(self._obj, prog)
                continue
            link = self._with_log(lambda p=prog: lib.bpf_program__attach(p))
            err = lib.libbpf_get_error(link)
            if link == ffi.NULL or err:
                section = ffi.string(lib.bpf_program__section_name(prog)).decode()
                raise BpfLoadError(self._failure(f"attaching {name} ({section})", err or -errno.EINVAL))
            self._links.append(link)
            prog = lib.bpf_object__next_program(self._obj, prog)
        self._state = "attached"

    def start(self, before_attach: Callable[["BpfLoader"], None] | None = None) -> None:
        """open + configure + load + attach; on failure everything is released.
        ``before_attach(loader)`` runs once the maps exist and before any program runs (to
        fill filters that must hold from the first event)."""
        try:
            self.open()
            self.configure()
            self.load()
            if before_attach is not None:
                before_attach(self)
            self.attach()
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Detach every link and free the object.  Safe to call twice, and before start."""
        with self._tls_lock:
            if self._state == "closed":
                return
            lib = self.libbpf.lib
            links, self._links = self._links, []
            for tls_links in self._tls_links.values():
                links.extend(tls_links)
            self._tls_links = {}
            _destroy_links(lib, links)
            if self._obj is not None:
                lib.bpf_object__close(self._obj)
                self._obj = None
            self._state = "closed"

    def __enter__(self) -> "BpfLoader":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def attach_tls_library(self, path: str) -> TlsAttachment:
        """Attach the TLS plaintext uprobes to one library or executable file (all processes
        mapping it share the probes).  Raises BpfLoadError when SSL_read/SSL_write cannot be
        attached; optional symbols (the _ex forms, SSL_set_fd) are skipped when absent."""
        with self._tls_lock:
            return self._attach_uprobes(path, openssl_plan())

    def attach_go_tls(self, path: str, index: int, binary) -> TlsAttachment:
        """Attach the Go crypto/tls probes to one Go executable (a covered
        :class:`~receiver.discovery.go_tls.GoBinary`): its offsets go to
        ``erx_go_tls_binaries[index]``, and each uprobe carries ``index`` as cookie."""
        with self._tls_lock:
            if not 0 <= index < self.abi.const("ERX_GO_TLS_BINARIES"):
                raise BpfLoadError(f"no room for another Go executable ({path}): "
                                   f"{self.abi.const('ERX_GO_TLS_BINARIES')} are attached")
            if self._state == "attached" and not self.map_update(
                    "erx_go_tls_binaries", index.to_bytes(4, "little"), go_binary_entry(self.abi, binary)):
                raise BpfLoadError(f"erx_go_tls_binaries[{index}] cannot be written")
            return self._attach_uprobes(path, go_plan(binary, index))

    def _attach_uprobes(self, path: str, plan: list[UprobeSpec]) -> TlsAttachment:
        ffi, lib = self.libbpf.ffi, self.libbpf.lib
        if self._state != "attached":
            raise BpfLoadError("attaching uprobes needs a started loader")
        links = []
        missing = []
        for spec in plan:
            prog = lib.bpf_object__find_program_by_name(self._obj, spec.program.encode())
            if prog == ffi.NULL:
                raise BpfLoadError(f"BPF object lacks program {spec.program}")
            opts = ffi.new("struct bpf_uprobe_opts *")
            opts.sz = ffi.sizeof("struct bpf_uprobe_opts")
            opts.retprobe = spec.retprobe
            opts.bpf_cookie = spec.cookie
            fname = ffi.new("char[]", spec.func_name.encode()) if spec.func_name else ffi.NULL
            opts.func_name = fname
            link = self._with_log(
                lambda: lib.bpf_program__attach_uprobe_opts(prog, -1, path.encode(), spec.offset, opts))
            err = lib.libbpf_get_error(link)
            if link == ffi.NULL or err:
                what = spec.func_name or f"{spec.program} at offset {spec.offset:#x}"
                if spec.required:
                    for done in links:
                        lib.bpf_link__destroy(done)
                    raise BpfLoadError(self._failure(f"attaching {what} in {path}", err or -errno.ENOENT))
                missing.append(what)
                continue
            links.append(link)
        self._tls_links[path] = links
        return TlsAttachment(path=path, probes=len(links), missing=tuple(sorted(set(missing))))

    def detach_tls_library(self, path: str) -> None:
        with self._tls_lock:
            for link in self._tls_links.pop(path, []):
                self.libbpf.lib.bpf_link__destroy(link)

    @property
    def tls_libraries(self) -> list[str]:
        return list(self._tls_links)

    # -- maps ------------------------------------------------------------------------------

    @property
    def link_count(self) -> int:
        """Tracepoint links (TLS uprobe links are counted per library in tls_libraries)."""
        return len(self._links)

    @property
    def program_count(self) -> int:
        """Programs loaded (those of network metrics that are off, and the HTTP pairing's without
        ``http_pairing``, are not)."""
        ffi, lib = self.libbpf.ffi, self.libbpf.lib
        n = 0
        prog = lib.bpf_object__next_program(self._obj, ffi.NULL)
        while prog != ffi.NULL:
            n += lib.bpf_program__fd(prog) >= 0
            prog = lib.bpf_object__next_program(self._obj, prog)
        return n

    def map_fd(self, name: str) -> int:
        m = self.libbpf.lib.bpf_object__find_map_by_name(self._obj, name.encode())
        if m == self.libbpf.ffi.NULL:
            raise KeyError(f"BPF map {name!r} not in the object")
        return self.libbpf.lib.bpf_map__fd(m)

    def read_counters(self) -> list[int]:
        """The per-CPU ``erx_counters`` summed over CPUs, indexed by enum erx_counter."""
        ffi, lib = self.libbpf.ffi, self.libbpf.lib
        fd = self.map_fd("erx_counters")
        ncpu = lib.libbpf_num_possible_cpus()
        n = self.abi.const("ERX_CNT_MAX")
        key = ffi.new("uint32_t *")
        values = ffi.new("uint64_t[]", ncpu)
        out = []
        for i in range(n):
            key[0] = i
            if lib.bpf_map_lookup_elem(fd, key, values) != 0:
                out.append(0)
                continue
            out.append(sum(values[c] for c in range(ncpu)))
        return out

    def program_fd(self, name: str) -> int:
        """The fd of a loaded program (-1 when it was not loaded: its metric is off)."""
        prog = self.libbpf.lib.bpf_object__find_program_by_name(self._obj, name.encode())
        if prog == self.libbpf.ffi.NULL:
            raise KeyError(f"BPF program {name!r} not in the object")
        return self.libbpf.lib.bpf_program__fd(prog)

    def tc_flow_attacher(self, netns: str | None = None):
        """A :class:`~receiver.bpf.tc_attach.TcFlowAttacher` for the tc flow classifiers
        (loaded only when the tc_flow metric is on)."""
        from receiver.bpf.tc_attach import TcFlowAttacher

        ingress, egress = self.program_fd("erx_tc_ingress"), self.program_fd("erx_tc_egress")
        if ingress < 0 or egress < 0:
            raise BpfLoadError("the tc flow classifiers are not loaded: turn network_metrics.tc_flow on")
        return TcFlowAttacher(ingress, egress, netns=netns)

    def map_items(self, name: str, key_size: int, value_size: int) -> list[tuple[bytes, bytes]]:
        """Every (key, value) of a hash map, as raw bytes (an entry deleted meanwhile is skipped)."""
        ffi, lib = self.libbpf.ffi, self.libbpf.lib
        fd = self.map_fd(name)
        out: list[tuple[bytes, bytes]] = []
        cur, nxt = ffi.new("char[]", key_size), ffi.new("char[]", key_size)
        value = ffi.new("char[]", value_size)
        prev = ffi.NULL
        while lib.bpf_map_get_next_key(fd, prev, nxt) == 0:
            if lib.bpf_map_lookup_elem(fd, nxt, value) == 0:
                out.append((ffi.buffer(nxt)[:], ffi.buffer(value)[:]))
            ffi.memmove(cur, nxt, key_size)
            prev = cur
        return out

    def map_update(self, name: str, key: bytes, value: bytes) -> bool:
        """Set one entry of a map (False when the kernel refused, e.g. a full hash map)."""
        ffi = self.libbpf.ffi
        if self._obj is None:
            return False
        return self.libbpf.lib.bpf_map_update_elem(self.map_fd(name), ffi.from_buffer(key), ffi.from_buffer(value), 0) == 0

    def map_delete(self, name: str, key: bytes) -> None:
        ffi = self.libbpf.ffi
        self.libbpf.lib.bpf_map_delete_elem(self.map_fd(name), ffi.from_buffer(key))

    def ignore_connection(self, conn_id: int, socket_only: bool = False) -> None:
        """Tell the kernel side to stop sending data of this connection; ``socket_only``:
        only its socket syscalls' bytes (TLS ciphertext), not TLS library plaintext."""
        ffi, lib = self.libbpf.ffi, self.libbpf.lib
        key = ffi.new("uint64_t *", conn_id)
        val = ffi.new("uint8_t *", self.abi.const("ERX_IGNORE_SOCKET" if socket_only else "ERX_IGNORE_ALL"))
        lib.bpf_map_update_elem(self.map_fd("erx_ignored_conns"), key, val, 0)

    def set_pid_excluded(self, pid: int, excluded: bool, until_exec: bool = False) -> bool:
        """Add pid to (or remove it from) erx_excluded_pids, consulted when the knobs turned
        filter_pids on; ``until_exec``: the kernel drops the entry when the process execs
        (ERX_PID_NOT_INCLUDED).  False when the kernel refused (the map is full)."""
        ffi, lib = self.libbpf.ffi, self.libbpf.lib
        if self._obj is None:  # closed (or not opened): nothing to update
            return False
        fd = self.map_fd("erx_excluded_pids")
        key = ffi.new("uint32_t *", pid)
        if excluded:
            why = self.abi.const("ERX_PID_NOT_INCLUDED" if until_exec else "ERX_PID_EXCLUDED")
            return lib.bpf_map_update_elem(fd, key, ffi.new("uint8_t *", why), 0) == 0
        lib.bpf_map_delete_elem(fd, key)  # ENOENT (not there) is fine
        return True

    def excluded_pids(self) -> dict[int, int]:
        """What erx_excluded_pids holds now: pid -> enum erx_pid_exclusion."""
        ffi, lib = self.libbpf.ffi, self.libbpf.lib
        fd = self.map_fd("erx_excluded_pids")
        out: dict[int, int] = {}
        key, nxt, val = ffi.new("uint32_t *"), ffi.new("uint32_t *"), ffi.new("uint8_t *")
        prev = ffi.NULL
        while lib.bpf_map_get_next_key(fd, prev, nxt) == 0:
            if lib.bpf_map_lookup_elem(fd, nxt, val) == 0:
                out[nxt[0]] = val[0]
            key[0] = nxt[0]
            prev = key
        return out

    # -- internals -------------------------------------------------------------------------

    def _fill_filters(self) -> None:
        ffi, lib = self.libbpf.ffi, self.libbpf.lib
        one = ffi.new("uint8_t *", 1)
        excluded = ffi.new("uint8_t *", self.abi.const("ERX_PID_EXCLUDED"))
        for pid in self.knobs.excluded_pids:
            lib.bpf_map_update_elem(self.map_fd("erx_excluded_pids"), ffi.new("uint32_t *", pid), excluded, 0)
        for port in self.knobs.excluded_ports:
            lib.bpf_map_update_elem(self.map_fd("erx_excluded_ports"), ffi.new("uint16_t *", port), one, 0)

    def _create_overflow_entries(self) -> None:
        """The entry each aggregate map counts into once it is full (key with overflow = 1)."""
        ffi, lib = self.libbpf.ffi, self.libbpf.lib
        for map_name, key_type, value_type in (
            ("erx_net_stats", "erx_net_key", "erx_net_stats"),
            ("erx_tc_flows", "erx_tc_flow_key", "erx_tc_flow_stats"),
        ):
            key = self.abi.ffi.new(f"struct {key_type} *")
            key.overflow = 1
            raw_key = ffi.from_buffer(bytes(self.abi.ffi.buffer(key)))
            value = ffi.new("char[]", self.abi.sizeof(value_type))
            lib.bpf_map_update_elem(self.map_fd(map_name), raw_key, value, 1)  # BPF_NOEXIST: keep counts

    def _fill_tail_calls(self) -> None:
        ffi, lib = self.libbpf.ffi, self.libbpf.lib
        if not self.knobs.http_pairing:
            return
        for map_name, prog_name in TAIL_CALLS:
            prog = lib.bpf_object__find_program_by_name(self._obj, prog_name.encode())
            if prog == ffi.NULL:
                raise BpfLoadError(f"BPF object lacks program {prog_name}")
            key = ffi.new("uint32_t *", 0)
            fd = ffi.new("uint32_t *", lib.bpf_program__fd(prog))
            self._check(lib.bpf_map_update_elem(self.map_fd(map_name), key, fd, 0), f"filling {map_name}")

    def _find_map_suffix(self, suffix: str):
        ffi, lib = self.libbpf.ffi, self.libbpf.lib
        m = lib.bpf_object__next_map(self._obj, ffi.NULL)
        while m != ffi.NULL:
            if ffi.string(lib.bpf_map__name(m)).decode().endswith(suffix):
                return m
            m = lib.bpf_object__next_map(self._obj, m)
        raise BpfLoadError(f"BPF object has no {suffix} map")

    def _set_max_entries(self, name: str, n: int) -> None:
        m = self.libbpf.lib.bpf_object__find_map_by_name(self._obj, name.encode())
        if m == self.libbpf.ffi.NULL:
            raise BpfLoadError(f"BPF object has no map {name!r}")
        self._check(self.libbpf.lib.bpf_map__set_max_entries(m, n), f"sizing map {name}")

    def _check(self, rc: int, what: str) -> None:
        if rc:
            raise BpfLoadError(self._failure(what, rc))

    def _failure(self, what: str, err: int) -> str:
        network = self.knobs.network
        refusal = capability_refusal(what, err, tc_programs=network is not None and "tc_flow" in network.metrics)
        if refusal is not None:  # one line naming the capability, not the libbpf log
            raise refusal
        tail = _relevant_log_lines(self._log)
        text = errno_text(self.libbpf, err)
        msg = f"{what} failed: {text}"
        if tail:
            msg += "\nlibbpf/verifier log (last lines):\n  " + "\n  ".join(tail)
        return msg + f"\nhint: {_hint_for(abs(err), ' '.join(tail))}"

    def _with_log(self, fn):
        """Run a libbpf call with its log captured into self._log."""
        ffi, lib = self.libbpf.ffi, self.libbpf.lib
        log = self._log

        @ffi.callback("int(enum libbpf_print_level, const char *, void *)")
        def _print(level, fmt, ap):
            buf = ffi.new("char[]", 8192)
            lib.vsnprintf(buf, 8192, fmt, ap)
            log.append(ffi.string(buf).decode(errors="replace").rstrip("\n"))
            if len(log) > 4000:
                del log[:1000]
            return 0

        with _PRINT_LOCK:
            old = lib.libbpf_set_print(_print)
            try:
                return fn()
            finally:
                lib.libbpf_set_print(old)


def _destroy_links(lib, links: list) -> None:
    """Detach links concurrently: each detach waits for an RCU grace period in the kernel
    (~50-100 ms), so one after another they made shutdown take seconds; cffi releases the GIL
    during the call, so the waits overlap."""
    if len(links) <= 1:
        for link in links:
            lib.bpf_link__destroy(link)
        return
    with ThreadPoolExecutor(max_workers=min(32, len(links)), thread_name_prefix="bpf-detach") as pool:
        list(pool.map(lib.bpf_link__destroy, links))


def _relevant_log_lines(log: list[str], n: int = 25) -> list[str]:
    lines = [ln for chunk in log for ln in chunk.splitlines() if ln.strip()]
    # Prefer the verifier's own explanation when there is one.
    for i in range(len(lines) - 1, -1, -1):
        if "-- BEGIN PROG LOAD LOG --" in lines[i]:
            return lines[i:][-n:]
    return lines[-n:]


def _pow2_at_least(n: int, minimum: int) -> int:
    v = minimum
    while v < n:
        v <<= 1
    return v


def _raise_memlock() -> bool:
    """Pre-5.11 kernels charge BPF memory to RLIMIT_MEMLOCK; lift it (harmless elsewhere).
    Returns False when not allowed: newer kernels account BPF memory to the cgroup instead,
    so the load may still succeed; if it does not, the load error says so."""
    try:
        resource.setrlimit(resource.RLIMIT_MEMLOCK, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    except (ValueError, OSError):
        return False
    return True
