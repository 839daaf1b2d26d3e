"""The ``profiling`` receiver: loads the profiler's BPF object (:mod:`receiver.bpf.profile_loader`),
registers CPython processes for frame walking, and every ``report_interval`` drains the kernel's
counts into a :class:`~receiver.model.profiles.ProfileBatch` (:mod:`receiver.profiling.drain`)
handed to the profiles pipelines.

With the ``ebpf`` receiver in the same agent (HTTP pairing on), the profiler reuses its
per-thread record of the request each thread serves, and labels samples with that request's
span (``host.serving_spans``); the agent starts this receiver after the others for that."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from receiver.component.threads import AgentThread
from receiver.bpf.profile_loader import ProfileLoader, ProfilerKnobs
from receiver.profiling.cpython import CPythonFinder, CPythonProcess
from receiver.profiling.drain import ProfileDrain
from receiver.profiling.proc_maps import ProcessMaps, parse_maps
from receiver.profiling.symbolizer import Symbolizer
from receiver.receivers.profiling.config import ProfilingReceiverConfig

log = logging.getLogger(__name__)


class ProfilingReceiver:
    starts_after_receivers = True  # reuses what the ebpf receiver loaded (Agent.start)

    def __init__(self, config: ProfilingReceiverConfig, profiles: Sequence = (), host=None,
                 proc_root: str = "/proc", agent_pid: int | None = None) -> None:
        self._cfg = config
        self._consumers = list(profiles)
        self._host = host
        self._proc = proc_root
        self._agent_pid = agent_pid if agent_pid is not None else os.getpid()
        self._loader: ProfileLoader | None = None
        self._drain: ProfileDrain | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()  # one drain at a time (thread, flush, shutdown)
        self._started = False
        self._python: dict[int, tuple[int, CPythonProcess | None]] = {}  # pid -> (start time, process)
        self._comm: dict[int, str] = {}
        self._last_report_ns = time.time_ns()
        self.symbolizer = Symbolizer(proc_root, max_files=config.symbol_cache_files)
        self._finder = CPythonFinder(proc_root)
        self.batches = 0
        self.consumer_errors = 0
        self.serving_linked = False

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        if self._started:
            return
        self._started = True
        serving_fd, span_of = self._serving_from_host()
        self.serving_linked = serving_fd is not None
        knobs = ProfilerKnobs(
            frequency_hz=self._cfg.frequency, max_stacks=self._cfg.max_stacks, max_keys=self._cfg.max_keys,
            python_processes=self._cfg.python_processes, python=self._cfg.python,
            agent_tgid=self._agent_pid, skip_agent=not self._cfg.include_agent, serving_map_fd=serving_fd,
        )
        self._loader = ProfileLoader(profile_knobs=knobs)
        self._loader.start()
        self._drain = ProfileDrain(self._loader, self.symbolizer, self._cfg.frequency, span_of=span_of,
                                   python_of=self._python_of, comm_of=self._comm_of)
        self.rescan()
        self._last_report_ns = time.time_ns()
        self._thread = AgentThread(self._run, "profiler")
        self._thread.start()

    def shutdown(self, timeout: float = 5.0) -> None:
        if not self._started or self._loader is None:
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self.flush(final=True)
        self._loader.close()
        self._started = False

    def _serving_from_host(self):
        receivers = getattr(self._host, "receivers", {}) or {}
        fd = None
        for r in receivers.values():
            get_fd = getattr(r, "serving_state_fd", None)
            if get_fd is not None:
                fd = get_fd()
                if fd is not None:
                    break
        spans = getattr(self._host, "serving_spans", None)
        return fd, (spans.span_of if spans is not None else None)

    # -- the loop --------------------------------------------------------------------------

    def _run(self) -> None:
        next_scan = time.monotonic() + self._cfg.rescan_interval
        next_report = time.monotonic() + self._cfg.report_interval
        while not self._stop.wait(min(0.5, self._cfg.rescan_interval)):
            now = time.monotonic()
            try:
                if now >= next_scan:
                    self.rescan()
                    next_scan = now + self._cfg.rescan_interval
                if now >= next_report:
                    self.flush()
                    next_report = now + self._cfg.report_interval
            except Exception:  # a bug here must not stop profiling: logged and counted
                self.consumer_errors += 1
                log.exception("profiler: report failed")

    def flush(self, final: bool = False) -> None:
        """Drain the kernel's counts now and hand the profile to the pipelines (``final``: the
        last one, samples waiting for their span go out without it)."""
        if self._drain is None:
            return
        with self._lock:
            end = time.time_ns()
            batch = self._drain.drain(self._last_report_ns, end, final=final)
            self._last_report_ns = end
            self._comm.clear()
        self.batches += 1
        for c in self._consumers:
            c.consume_profiles(batch)

    # -- processes -------------------------------------------------------------------------

    def rescan(self) -> None:
        """New processes: their mappings kept for symbols, CPython ones registered with the kernel
        (with ``python``); exited ones forgotten."""
        if self._loader is None:
            return
        seen = set()
        for entry in os.scandir(self._proc):
            if not entry.name.isdigit():
                continue
            pid = int(entry.name)
            seen.add(pid)
            known = self._python.get(pid)
            # A known pid is looked at again only if it is a registered CPython whose start time
            # changed (pid reuse: its kernel entry would describe another process).
            if known is not None and (known[1] is None or known[0] == _start_time(self._proc, pid)):
                continue
            start = _start_time(self._proc, pid)
            if len(self._python) >= 4 * self._cfg.python_processes + 4096:
                break  # bound the bookkeeping; the next scans pick up the rest
            proc = self._cpython(pid)
            self._python[pid] = (start, proc)
            if proc is not None:
                self._loader.set_python_process(pid, proc.kernel_entry(self._loader.abi))
            elif known is not None and known[1] is not None:
                self._loader.set_python_process(pid, None)
        for pid in [p for p in self._python if p not in seen]:
            _, proc = self._python.pop(pid)
            if proc is not None:
                self._loader.set_python_process(pid, None)
            self.symbolizer.forget(pid)

    def _cpython(self, pid: int) -> CPythonProcess | None:
        if pid == self._agent_pid and not self._cfg.include_agent:
            return None
        try:
            maps = ProcessMaps(parse_maps(Path(self._proc, str(pid), "maps").read_text()))
        except OSError:
            return None
        self.symbolizer.remember_maps(pid, maps)  # resolvable even if it exits before the report
        if not self._cfg.python or not any("python3." in m.path for m in maps.mappings):
            return None
        return self._finder.find(pid, maps)

    def _python_of(self, pid: int) -> CPythonProcess | None:
        known = self._python.get(pid)
        return known[1] if known is not None else None

    def _comm_of(self, pid: int) -> str:
        name = self._comm.get(pid)
        if name is None:
            try:
                name = Path(self._proc, str(pid), "comm").read_text().strip()
            except OSError:
                name = ""
            self._comm[pid] = name
        return name

    # -- self-metrics ----------------------------------------------------------------------

    def collect(self):
        if self._loader is not None and self._loader.state == "attached":
            counters = self._loader.read_profile_counters()
            c = CounterMetricFamily("ebpf_receiver_profiler_kernel_events",
                                    "The profiler's kernel counters (enum erx_prof_counter).", labels=["counter"])
            names = {v: k for k, v in self._loader.abi.constants.items() if k.startswith("ERX_PROF_CNT_")}
            for i, v in enumerate(counters):
                c.add_metric([names.get(i, str(i))[len("ERX_PROF_CNT_"):].lower()], v)
            yield c
        if self._drain is not None:
            s = self._drain.stats
            c = CounterMetricFamily("ebpf_receiver_profiler_samples", "Samples drained, by span label outcome.",
                                    labels=["span"])
            c.add_metric(["labelled"], s.spans_labelled)
            c.add_metric(["unresolved"], s.spans_unresolved)
            c.add_metric(["none"], max(0, s.samples - s.spans_labelled - s.spans_unresolved))
            yield c
        g = GaugeMetricFamily("ebpf_receiver_profiler_python_processes", "CPython processes walked.")
        g.add_metric([], sum(1 for _, p in self._python.values() if p is not None))
        yield g

    def describe(self):
        return []


def _start_time(proc_root: str, pid: int) -> int:
    try:
        stat = Path(proc_root, str(pid), "stat").read_text()
        return int(stat.rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return 0
