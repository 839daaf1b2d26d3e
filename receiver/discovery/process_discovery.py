"""Process discovery: which processes are traced (rules, applied in the kernel) and which TLS
libraries they load (attached for plaintext), following processes as they come and go.

* At start, every process in ``/proc`` is judged by the rules before any BPF program runs
  (:meth:`ProcessDiscovery.prepare`, between load and attach), then the TLS libraries of the
  traced ones are attached (:meth:`ProcessDiscovery.start`).
* A PROC_EXEC event judges the new program at once (the kernel traces it until then) and
  looks at its libraries after ``EXEC_SCAN_DELAY`` (the dynamic loader has mapped them) and
  again after ``EXEC_SECOND_LOOK`` (an interpreter has imported its TLS module).
  PROC_EXIT forgets the process.  Events are queued by the capture thread and handled by the
  discovery thread, so attaching never stalls capture.
* Every ``rescan_interval`` all of ``/proc`` is listed: processes not seen yet (forked without
  exec, or missed) are judged; processes whose mappings changed — their virtual size in
  ``/proc/<pid>/stat`` changed — have their libraries looked at again (``dlopen``); gone
  processes are forgotten; with ``port`` rules every process is judged again.
* A pid is one process for as long as its start time (``/proc/<pid>/stat`` field 22) stays the
  same: a pid reused by a new process is a new process.

Decisions reach the kernel through ``erx_excluded_pids`` (see ``bpf/src/progs/sched.h`` for
what the kernel does on its own at fork, exec and exit).  When the agent runs in its own pid
namespace (a pod), kernel event pids are not this ``/proc``'s: events then only trigger a
listing of ``/proc``.
"""

from __future__ import annotations

import collections
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Protocol

from receiver.component.threads import AgentThread
from receiver.component.cpu_yield import CpuYield, in_steps
from receiver.discovery.metrics import discovery_metric_families
from receiver.discovery.procfs import ProcFs, ProcStat, cgroup_paths, container_id
from receiver.discovery.rules import Decision, DiscoveryRules, ProcessFacts
from receiver.discovery.tls_libraries import FileId, TlsLibraries
from receiver.discovery.tls_stacks import ProcessTls, process_tls, summary_lines
from receiver.discovery.resources import ProcessResources
from receiver.discovery.summary import DiscoverySummary, SummaryThrottle

log = logging.getLogger(__name__)

EXEC_SCAN_DELAY = 0.1  # seconds between an exec and the look at the new program's libraries
EXEC_SECOND_LOOK = 1.0  # and a second look (interpreters load TLS modules after starting)
PORTS_CACHE_SECONDS = 0.5  # a namespace's TCP table is read at most this often


class DiscoveryLoader(Protocol):
    """What discovery needs from the loader (``BpfLoader`` is one)."""

    def set_pid_excluded(self, pid: int, excluded: bool, until_exec: bool = False) -> bool: ...

    def attach_tls_library(self, path: str): ...

    def attach_go_tls(self, path: str, index: int, binary): ...


@dataclass
class TrackedProcess:
    pid: int
    start_time: int
    vsize: int
    decision: Decision | None = None
    libraries: set[FileId] = field(default_factory=set)
    kernel_thread: bool = False
    maps_readable: bool = True
    looked: bool = False  # its libraries were looked at since it was judged traced
    second_look: bool = False  # look again EXEC_SECOND_LOOK after the exec
    exe: str = ""
    parent: int = 0  # forked from this tracked process without exec: shares its decision


class ProcessDiscovery:
    def __init__(
        self,
        config,
        exclude_pids=(),
        agent_pid: int | None = None,
        procfs: ProcFs | None = None,
        resources: ProcessResources | None = None,
        events_in_our_pid_namespace: bool = True,
        clock=time.monotonic,
    ) -> None:
        """``config``: a ``DiscoveryConfig`` (include, exclude, tls, rescan_interval)."""
        self._cfg = config
        self.rules = DiscoveryRules(config.include, config.exclude, exclude_pids)
        self._yield = CpuYield()  # the discovery thread's (receiver/component/cpu_yield.py)
        self._agent_pid = os.getpid() if agent_pid is None else agent_pid
        self._proc = procfs or ProcFs()
        self._resources = resources or ProcessResources(str(self._proc.root))
        self._own_pids = events_in_our_pid_namespace
        self._clock = clock
        self._loader: DiscoveryLoader | None = None
        self.libraries: TlsLibraries | None = None
        self.processes: dict[int, TrackedProcess] = {}
        self.map_full = 0  # exclusions the kernel map refused
        self._lock = threading.Lock()  # guards the inbox
        self._inbox: collections.deque = collections.deque()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._due: dict[int, float] = {}  # pid -> when to look at its libraries
        self._list_due: float | None = None  # when to list /proc for new pids (pod mode)
        self._next_rescan = 0.0
        self._tcp_cache: dict = {}  # network namespace -> {socket inode: port} of the rules' ports
        self._tcp_cache_at = float("-inf")
        self._summary_throttle = SummaryThrottle()
        self.summary: DiscoverySummary | None = None

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def filters_pids(self) -> bool:
        """Must the kernel consult erx_excluded_pids (knob filter_pids)?"""
        return self.rules.active

    def prepare(self, loader: DiscoveryLoader) -> None:
        """Judge every process now (before any program is attached): the kernel map holds the
        exclusions from the first event on."""
        self._loader = loader
        for pid in self._proc.pids():
            self._judge_new(pid, forked=True)

    def start(self, loader: DiscoveryLoader, follow: bool = True) -> None:
        """Attach the TLS libraries of the traced processes, log the summary, and follow
        processes from now on: in a daemon thread, or (``follow=False``) by calling
        :meth:`step`."""
        if self._thread is not None:
            return
        self._loader = loader
        if self._cfg.tls:
            self.libraries = TlsLibraries(loader)
        self._rescan()
        for p in list(self.processes.values()):
            if not p.looked:
                self._look_at_libraries(p.pid)
        self._log_summary(force=True)
        if self.libraries is not None:
            for line in summary_lines(self.tls_report()):
                log.info("TLS: %s", line)
        self._next_rescan = self._clock() + self._cfg.rescan_interval
        if follow:
            self._thread = AgentThread(self._run, "ebpf-discovery")
            self._thread.start()

    def shutdown(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    # -- inputs (capture thread) -----------------------------------------------------------

    def on_proc_event(self, pid: int, is_exec: bool) -> None:
        """A PROC_EXEC / PROC_EXIT record: queued, handled by the discovery thread."""
        with self._lock:
            self._inbox.append((pid, is_exec))
        self._wake.set()

    # -- views -----------------------------------------------------------------------------

    def attach_failures(self) -> dict[str, int]:
        return dict(self.libraries.failures) if self.libraries else {"missing_symbol": 0, "attach_error": 0,
                                                                      "go_unsupported": 0}

    def tls_report(self) -> list[ProcessTls]:
        """Per traced process (not kernel threads), the TLS stack found and whether its
        plaintext is covered (``tls_stacks.py``)."""
        by_file = self.libraries.by_file if self.libraries else {}
        out = []
        for p in list(self.processes.values()):
            if p.decision is not Decision.TRACED or p.kernel_thread:
                continue
            libs = [by_file[fid] for fid in p.libraries if fid in by_file]
            name = self._resources.get(p.pid).service_name
            out.append(process_tls(p.pid, name, p.exe, libs, p.maps_readable))
        return out

    def tls_libraries_of(self, pid: int) -> tuple[str, ...]:
        """Paths of the attached TLS libraries (or binaries) process ``pid`` maps (any thread)."""
        if self.libraries is None:
            return ()
        return tuple(sorted(lib.path for lib in self.libraries.attached if pid in lib.pids))

    def traced_pids(self) -> list[int]:
        """The processes the rules trace now (any thread: a copy of the table is read)."""
        return [pid for pid, p in list(self.processes.items()) if p.decision is Decision.TRACED and not p.kernel_thread]

    def attached_libraries(self) -> list[str]:
        return [lib.path for lib in self.libraries.attached] if self.libraries else []

    # -- the discovery thread --------------------------------------------------------------

    def step(self) -> float:
        """One round: queued events, due looks at libraries, the periodic rescan.  Returns
        the clock time the next round is due."""
        self._drain_inbox()
        now = self._clock()
        for pid in [p for p, t in self._due.items() if t <= now]:
            del self._due[pid]
            self._look_at_libraries(pid)
            p = self.processes.get(pid)
            if p is not None and p.second_look:
                p.second_look = False
                self._due[pid] = now + EXEC_SECOND_LOOK - EXEC_SCAN_DELAY
        if self._list_due is not None and self._list_due <= now:
            self._list_due = None
            self._rescan(only_new=True)
        if now >= self._next_rescan:
            self._rescan()
            self._next_rescan = now + self._cfg.rescan_interval
            self._log_summary()
        waits = [self._next_rescan, *self._due.values()]
        if self._list_due is not None:
            waits.append(self._list_due)
        return min(waits)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()  # before the round: an event queued during it wakes the next one
            try:
                wake_at = self.step()
            except Exception:  # never let discovery die: capture goes on without it
                log.exception("process discovery failed; retrying at the next scan")
                self._next_rescan = wake_at = self._clock() + self._cfg.rescan_interval
            self._wake.wait(max(0.0, wake_at - self._clock()))

    def _drain_inbox(self) -> None:
        while True:
            with self._lock:
                if not self._inbox:
                    return
                pid, is_exec = self._inbox.popleft()
            if not self._own_pids:
                # Kernel pids are not ours (a pod): look for new processes in our /proc.
                if self._list_due is None:
                    self._list_due = self._clock() + EXEC_SCAN_DELAY
                continue
            if is_exec:
                self._on_exec(pid)
            else:
                self._forget(pid)

    def _on_exec(self, pid: int) -> None:
        st = self._proc.stat(pid)
        if st is None:
            self._forget(pid)
            return
        p = self.processes.get(pid)
        if p is None or p.start_time != st.start_time:
            self._judge_new(pid, st)
        else:
            p.vsize = st.vsize
            p.parent = 0
            p.exe = self._proc.exe(pid)
            self._judge(p)  # a new program: the rules may say otherwise
            self._set_libraries(p, set())
        p = self.processes.get(pid)
        if p is not None and not p.kernel_thread:
            self._due[pid] = self._clock() + EXEC_SCAN_DELAY
            p.second_look = True

    def _rescan(self, only_new: bool = False) -> None:
        seen = set(self._proc.pids())
        for pid in [p for p in self.processes if p not in seen]:
            self._forget(pid)
        for pid in in_steps(list(seen), self._yield, step=4):  # /proc reads: a long stretch on a busy host
            if pid == self._agent_pid:
                continue
            p = self.processes.get(pid)
            if p is not None and only_new:
                continue
            st = self._proc.stat(pid)
            if st is None or st.exited:  # gone, or exiting: judged no more (its exit is queued)
                if p is not None:
                    self._forget(pid)
                continue
            if p is None or p.start_time != st.start_time:
                if p is not None:
                    self._forget(pid, reused=True)
                p = self._judge_new(pid, st, forked=True)
                if p is not None and not p.kernel_thread:
                    self._look_at_libraries(pid)
                continue
            if p.kernel_thread:
                continue
            if self.rules.need_ports or p.parent:
                self._judge(p)
            if st.vsize != p.vsize:
                p.vsize = st.vsize
                self._look_at_libraries(pid)

    # -- judging ---------------------------------------------------------------------------

    def _judge_new(self, pid: int, st: ProcStat | None = None, forked: bool = False) -> TrackedProcess | None:
        """A process seen for the first time.  ``forked``: found in a listing of /proc rather
        than by its exec; if it still runs its parent's program image it was forked without
        exec (a pre-fork server's worker, whose command line is often rewritten) and shares
        its parent's decision, as the kernel does between the fork and this moment.  The same
        executable is not enough: a Python process starting ``python3 server.py`` runs its
        parent's executable too, but exec gave it a new image (see :meth:`_forked_from`)."""
        if pid == self._agent_pid:
            return None
        st = st or self._proc.stat(pid)
        if st is None:
            return None
        p = TrackedProcess(pid, st.start_time, st.vsize, kernel_thread=st.kernel_thread)
        self.processes[pid] = p
        if not p.kernel_thread:
            p.exe = self._proc.exe(pid)
            parent = self.processes.get(st.ppid) if forked else None
            if parent is not None and parent.decision is not None and self._forked_from(p, st, parent):
                p.parent = parent.pid
            self._judge(p)
        return p

    def _forked_from(self, p: TrackedProcess, st: ProcStat, parent: TrackedProcess) -> bool:
        """Does p still run its parent's program image (forked, no exec since)?  The same
        executable and the same address-space layout (a fork copies it, an exec draws a new
        one); unknown layouts (not readable) say no: p is judged by its own facts."""
        if not p.exe or parent.exe != p.exe:
            return False
        pst = self._proc.stat(parent.pid)
        return pst is not None and pst.start_time == parent.start_time and st.same_image_as(pst)

    def _judge(self, p: TrackedProcess) -> None:
        if not self.rules.active:
            p.decision = Decision.TRACED
            return
        pid = p.pid
        parent = self.processes.get(p.parent) if p.parent else None
        if parent is not None and parent.decision is not None:
            decision = parent.decision
        elif p.parent and p.decision is not None:
            decision = p.decision  # the parent is gone: the program and its decision stay
        else:
            cgroup = self._proc.cgroup(pid)
            facts = ProcessFacts(
                pid=pid,
                exe=p.exe or self._proc.exe(pid),
                cmdline=" ".join(self._proc.cmdline(pid)),
                cgroups=cgroup_paths(cgroup),
                container_id=container_id(cgroup),
            )
            decision = self.rules.decide(facts, lambda: self._ports_of(pid))
        previous, p.decision = p.decision, decision
        if decision == previous:
            return
        loader = self._loader
        if loader is None:
            return
        if decision is Decision.TRACED:
            # Also undoes an exclusion the kernel passed on at fork.
            loader.set_pid_excluded(pid, False)
        elif not loader.set_pid_excluded(pid, True, until_exec=decision is Decision.NOT_INCLUDED):
            self.map_full += 1
            if self.map_full == 1:
                log.warning("the kernel's table of excluded processes is full: pid %d (and later ones) "
                            "stays traced despite the discovery rules", pid)
        if decision is not Decision.TRACED and p.libraries:
            self._set_libraries(p, set())
        if decision is Decision.TRACED and previous is not None:
            self._due[pid] = self._clock()  # newly traced: look at its libraries

    def _ports_of(self, pid: int) -> frozenset[int]:
        """The rules' ports among the local TCP ports of pid's sockets.  The TCP table is read
        once per network namespace and scan; fds are listed only when a socket of a wanted
        port exists in that namespace."""
        ns = self._proc.net_namespace(pid)
        now = self._clock()
        if now - self._tcp_cache_at > PORTS_CACHE_SECONDS:
            self._tcp_cache, self._tcp_cache_at = {}, now
        wanted = self._tcp_cache.get(ns)
        if wanted is None:
            ports = self.rules.ports
            wanted = {inode: port for inode, port in self._proc.tcp_ports(pid).items() if port in ports}
            if ns is not None:
                self._tcp_cache[ns] = wanted
        if not wanted:
            return frozenset()
        return frozenset(wanted[i] for i in self._proc.socket_inodes(pid) if i in wanted)

    # -- libraries -------------------------------------------------------------------------

    def _look_at_libraries(self, pid: int) -> None:
        p = self.processes.get(pid)
        if p is None or self.libraries is None or p.decision is not Decision.TRACED:
            return
        p.looked = True
        files = self._proc.maps(pid)
        if files is None:
            p.maps_readable = False
            return
        p.maps_readable = True
        found: set[FileId] = set()
        for mf in files:
            lib = self.libraries.lookup(self._proc.in_root(pid, mf.path), mf.path, is_exe=mf.path == p.exe)
            if lib is not None:
                found.add(lib.file_id)
        self._set_libraries(p, found)

    def _set_libraries(self, p: TrackedProcess, found: set[FileId]) -> None:
        if self.libraries is None:
            return
        by_file = self.libraries.by_file
        for fid in p.libraries - found:
            if fid in by_file:
                by_file[fid].pids.discard(p.pid)
        for fid in found:
            by_file[fid].pids.add(p.pid)
        p.libraries = found

    def _forget(self, pid: int, reused: bool = False) -> None:
        """The process is gone (``reused``: its pid is another process's now).  Its kernel
        exclusion went with it (sched_process_exit)."""
        self._due.pop(pid, None)
        if reused:
            self._resources.forget(pid)
        else:
            self._resources.exited(pid)
        p = self.processes.pop(pid, None)
        if p is not None:
            self._set_libraries(p, set())

    # -- summary ---------------------------------------------------------------------------

    def _log_summary(self, force: bool = False) -> None:
        """Recompute the summary; log it at start and when it changes meaningfully (services
        that settled or left, libraries; at most once a minute: see discovery/summary.py)."""
        traced = [p for p in self.processes.values() if p.decision is Decision.TRACED]
        excluded = sum(1 for p in self.processes.values() if p.decision not in (None, Decision.TRACED))
        names = collections.Counter(self._resources.get(p.pid).service_name for p in traced)
        attached = self.libraries.attached if self.libraries else []
        tls_pids = {pid for lib in attached for pid in lib.pids}
        now = self._clock()
        settled = self._summary_throttle.settled(names, now, at_start=force)
        self.summary = DiscoverySummary(
            traced=len(traced),
            excluded=excluded,
            tls_processes=len(tls_pids),
            libraries=tuple(sorted(lib.path for lib in attached)),
            services=tuple(sorted(((n, c) for n, c in names.items() if n in settled), key=lambda kv: (-kv[1], kv[0]))),
        )
        if self._summary_throttle.should_log(settled, self.summary.libraries, now, force=force):
            log.info("discovery: %s", self.summary.line())

    # -- self-metrics ------------------------------------------------------------------------

    def collect(self):
        return discovery_metric_families(self)

    def describe(self) -> list:
        return []
