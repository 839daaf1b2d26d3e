"""What the real-kernel tests share: a started capture (loader + ring-buffer reader + decoder),
traffic children, and the expectations derived from a child's report.

The agent's own pid is filtered in the kernel, so traffic comes from child processes
(``traffic.py``) while the pytest process polls.  A child's last record is its own
PROC_EXIT (sched_process_exit runs after every syscall it made, and the ring buffer keeps
submission order), so "everything the child did has arrived" is waited for, never slept for.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from receiver.bpf.abi import Abi
from receiver.bpf.loader import BpfLoader, LoaderKnobs, default_object_path
from receiver.capture.events import ConnEvent, DataEvent, EventDecoder, ProcEvent
from receiver.capture.ringbuf import RingBufferReader

TRAFFIC = Path(__file__).with_name("traffic.py")
BTF_VMLINUX = Path("/sys/kernel/btf/vmlinux")
BPFTOOL = os.environ.get("BPFTOOL", "/usr/sbin/bpftool")
WAIT_S = 5.0


def kernel_refusal() -> str | None:
    """Why this machine cannot load BPF at all (then the suite skips), or None."""
    if os.geteuid() != 0:
        return "loading BPF needs root (CAP_BPF, CAP_PERFMON, CAP_SYS_ADMIN for tracefs)"
    if not BTF_VMLINUX.is_file():
        return f"the kernel has no BTF ({BTF_VMLINUX}): a CO-RE object cannot load"
    return None


# -- traffic children ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Child:
    """A finished traffic child: its pid, exit status and JSON report."""

    pid: int
    returncode: int
    report: dict
    stdout: bytes
    stderr: bytes

    @property
    def ops(self) -> list[dict]:
        return self.report["ops"]

    def socket(self, fd: int) -> dict:
        return self.report["sockets"][str(fd)]


def traffic_command(scenario: str, params: dict) -> list[str]:
    return [sys.executable, "-I", str(TRAFFIC), scenario, json.dumps(params)]


def run_child(scenario: str, expect_status: int = 0, **params) -> Child:
    """Run one traffic scenario to completion."""
    proc = subprocess.Popen(traffic_command(scenario, params), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = proc.communicate(timeout=30)
    return finished_child(proc, out, err, expect_status)


def finished_child(proc: subprocess.Popen, out: bytes, err: bytes, expect_status: int = 0) -> Child:
    if proc.returncode != expect_status:
        raise AssertionError(f"traffic child exited {proc.returncode}:\n{err.decode(errors='replace')}")
    report = json.loads(out.splitlines()[-1])
    assert report["pid"] == proc.pid
    return Child(proc.pid, proc.returncode, report, out, err)


# -- capture ------------------------------------------------------------------------------------


@dataclass
class Capture:
    """A started loader, its ring-buffer reader and a decoder.  Keeps the decoded records of
    the pids it was asked to watch (records of other processes are read and dropped)."""

    loader: BpfLoader
    reader: RingBufferReader
    decoder: EventDecoder
    records: int = 0
    _watched: dict[int, list] = field(default_factory=dict)

    @property
    def abi(self) -> Abi:
        return self.loader.abi

    def c(self, name: str) -> int:
        return self.loader.abi.const(name)

    def watch(self, pid: int) -> None:
        """Keep records of pid from now on (call before polling once the pid exists)."""
        self._watched.setdefault(pid, [])

    def events(self, pid: int) -> list:
        """The records of a watched pid read so far."""
        return list(self._watched[pid])

    def poll(self) -> int:
        """Drain the ring buffer once; returns how many records were read."""
        recs = self.reader.drain()
        self.records += len(recs)
        for rec in recs:
            ev = self.decoder.decode(rec)
            bucket = self._watched.get(getattr(ev, "pid", None))
            if bucket is not None:
                bucket.append(ev)
        return len(recs)

    def events_until(self, pid: int, done: Callable[[list], bool], timeout: float = WAIT_S) -> list:
        """Poll until done(records of pid) holds; fail after timeout seconds."""
        self.watch(pid)
        deadline = time.monotonic() + timeout
        while True:
            self.poll()
            evs = self._watched[pid]
            if done(evs):
                return list(evs)
            if time.monotonic() > deadline:
                raise AssertionError(f"no complete record set of pid {pid} after {timeout}s: {summarize(evs)}")
            time.sleep(0.005)

    def events_of(self, child: Child, timeout: float = WAIT_S) -> list:
        """Every record of a finished child, up to and including its PROC_EXIT."""
        exit_kind = self.c("ERX_EV_PROC_EXIT")
        return self.events_until(
            child.pid, lambda evs: any(isinstance(e, ProcEvent) and e.kind == exit_kind for e in evs), timeout
        )


def start_loader(**knobs) -> BpfLoader:
    loader = BpfLoader(default_object_path(), LoaderKnobs(agent_tgid=os.getpid(), **knobs))
    loader.start()
    return loader


@contextlib.contextmanager
def started_capture(**knobs) -> Iterator[Capture]:
    """A loader with LoaderKnobs(agent_tgid=<this process>, **knobs), started and attached."""
    loader = start_loader(**knobs)
    reader = None
    try:
        reader = RingBufferReader(loader)
        yield Capture(loader, reader, EventDecoder(loader.abi))
    finally:
        if reader is not None:
            reader.close()
        loader.close()


# -- expectations -------------------------------------------------------------------------------


def data_events(evs: list, kinds: tuple[int, ...]) -> list[DataEvent]:
    return [e for e in evs if isinstance(e, DataEvent) and e.kind in kinds]


def conn_events(evs: list, kind: int) -> list[ConnEvent]:
    return [e for e in evs if isinstance(e, ConnEvent) and e.kind == kind]


def summarize(evs: list) -> list[str]:
    out = []
    for e in evs:
        if isinstance(e, DataEvent):
            out.append(f"data(kind={e.kind} sys={e.syscall} fd={e.fd} tid={e.tid} {e.total_len}/{len(e.payload)}B)")
        elif isinstance(e, ConnEvent):
            out.append(f"conn(kind={e.kind} sys={e.syscall} fd={e.fd} id={e.conn_id})")
        else:
            out.append(f"{type(e).__name__}(kind={getattr(e, 'kind', '?')})")
    return out


def endpoint(ep: list | None) -> tuple[str, int]:
    return (ep[0], ep[1]) if ep else ("0.0.0.0", 0)


def event_view(e: DataEvent) -> dict:
    """The facts of a data record a test compares, as plain values (readable diffs)."""
    t = e.tuple
    return {
        "kind": e.kind,
        "syscall": e.syscall,
        "direction": e.direction,
        "fd": e.fd,
        "tid": e.tid,
        "total_len": e.total_len,
        "payload": e.payload.hex(),
        "family": t.family,
        "transport": t.transport,
        "local": (t.local_addr, t.local_port),
        "remote": (t.remote_addr, t.remote_port),
    }


def expected_view(cap: Capture, child: Child, op: dict, capture_size: int, kind: str = "ERX_EV_DATA") -> dict:
    """What event_view() of the record of one child op must be."""
    sock = child.socket(op["fd"])
    data = bytes.fromhex(op["data"])
    transport = {1: "TCP", 2: "UDP"}[sock["type"]] if sock["family"] != 1 else "UNIX_STREAM"
    if op["sys"] == "sendfile":
        kind = "ERX_EV_SENDFILE"
    unix = sock["family"] == 1
    return {
        "kind": cap.c(kind),
        "syscall": cap.c(f"ERX_SYS_{op['sys'].upper()}"),
        "direction": cap.c("ERX_DIR_EGRESS" if op["dir"] == "egress" else "ERX_DIR_INGRESS"),
        "fd": op["fd"],
        "tid": op["tid"],
        "total_len": op["total"],
        "payload": data[:capture_size].hex(),
        "family": sock["family"],
        "transport": cap.c(f"ERX_TRANSPORT_{transport}"),
        "local": ("", 0) if unix else endpoint(sock["local"]),
        "remote": ("", 0) if unix else endpoint(op["peer"] or sock["remote"]),
    }


def cgroup_id(pid: int) -> int | None:
    """The cgroup v2 id (inode of its directory) of pid, or None without a cgroup2 mount."""
    path = None
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        if line.startswith("0::"):
            path = line[3:]
    if path is None:
        return None
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        pre, _, post = line.partition(" - ")
        if post.split()[:1] == ["cgroup2"]:
            return os.stat(pre.split()[4] + path).st_ino
    return None


# -- BPF objects held by a process --------------------------------------------------------------


def held_bpf_ids(pid: int | None = None) -> dict[str, set[int]]:
    """Ids of the BPF programs, maps and links whose fds pid holds (from /proc/<pid>/fdinfo)."""
    pid = pid or os.getpid()
    out: dict[str, set[int]] = {"prog": set(), "map": set(), "link": set()}
    keys = {"prog_id:": "prog", "map_id:": "map", "link_id:": "link"}
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            if not target.startswith("anon_inode:bpf"):
                continue
            info = Path(f"/proc/{pid}/fdinfo/{fd}").read_text()
        except OSError:
            continue
        for line in info.splitlines():
            key = line.split("\t")[0].split(" ")[0]
            if key in keys:
                # A link's fdinfo also names its prog_id: only the object's own id counts.
                kind = keys[key]
                if kind == "prog" and "link_id:" in info:
                    continue
                out[kind].add(int(line.split()[-1]))
    return out


def perf_event_fds(pid: int | None = None) -> int:
    """How many perf-event fds pid holds (each tracepoint link owns one)."""
    pid = pid or os.getpid()
    n = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            n += os.readlink(f"/proc/{pid}/fd/{fd}") == "anon_inode:[perf_event]"
        except OSError:
            continue
    return n


def bpftool_ids(what: str) -> set[int]:
    """Ids of every BPF `what` (prog | map | link) in the kernel, per `bpftool <what> show -j`."""
    res = subprocess.run([BPFTOOL, what, "show", "-j"], capture_output=True, text=True, check=True)
    return {o["id"] for o in json.loads(res.stdout or "[]")}
