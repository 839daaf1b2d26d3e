"""Per-process OTel Resource, read from /proc (the path is injectable for tests).

Two views of one process:

* :meth:`ProcessResources.get` — for spans and log records: the process as it is, with
  ``process.pid``, its executable's path and name (the OTel ``process`` resource attributes).
* :meth:`ProcessResources.for_metrics` — for the RED and network metrics: the *service
  instance*, without the per-process ``process.*`` attributes (``process.runtime.*`` stays).
  Ten short-lived ``curl`` runs are ten processes but one series per attribute set and one
  ``target_info`` row, not ten.

``service.instance.id`` is the same in both and stable: a UUID v5 (the semantic conventions'
namespace ``4d63009a-8d0f-11ee-aad7-4c796ed8e320``) of host name, container id, service
namespace, service name and executable name — never the pid.  Processes of one executable and
service on one host (or in one container) are one instance; a process that sets
``service.instance.id`` in its ``OTEL_RESOURCE_ATTRIBUTES`` keeps its own.

service.name: the process's own OTEL_SERVICE_NAME, else service.name in its
OTEL_RESOURCE_ATTRIBUTES, else derived from the command line
(:func:`~receiver.discovery.service_name.derive_service_name`), else the kernel's comm of a
process gone before /proc could be read.  Kubernetes attributes need Kubernetes evidence
(:mod:`receiver.discovery.kubernetes`).
"""

from __future__ import annotations

import os
import re
import socket
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable
from urllib.parse import unquote

from receiver import __version__
from receiver.discovery.kubernetes import SERVICE_ACCOUNT_DIRS, kubernetes_attributes
from receiver.discovery.service_name import derive_service_name
from receiver.model.telemetry import Resource

__all__ = [
    "EXITED_GRACE_SECONDS",
    "SERVICE_INSTANCE_NAMESPACE",
    "ProcessInfo",
    "ProcessResources",
    "derive_service_name",
    "metrics_view",
    "parse_resource_attributes",
    "service_instance_id",
]

# The semantic conventions' UUID v5 namespace for service.instance.id.
SERVICE_INSTANCE_NAMESPACE = uuid.UUID("4d63009a-8d0f-11ee-aad7-4c796ed8e320")
# How long the resource of an exited process is kept: its last spans are assembled after its exit.
EXITED_GRACE_SECONDS = 10.0
# The kernel's comm is the executable's base name cut to 15 bytes (TASK_COMM_LEN - 1): the
# executable part of the instance id uses the same cut, so a process read from /proc and one
# known only by its comm (gone too fast) get the same id.
COMM_LENGTH = 15

_RUNTIMES = (
    (re.compile(r"^(python|pypy)"), "cpython"),
    (re.compile(r"^(node|nodejs)$"), "nodejs"),
    (re.compile(r"^java$"), "java"),
    (re.compile(r"^ruby"), "ruby"),
    (re.compile(r"^dotnet$"), "dotnet"),
)
_CONTAINER_ID = re.compile(r"([0-9a-f]{64})")
# Attributes a child shares with its parent (same cgroup, same pod): used for a process known
# only by its comm.
_INHERITED = ("container.id", "k8s.pod.name", "k8s.namespace.name", "k8s.pod.uid", "k8s.container.name", "k8s.node.name")


@dataclass(frozen=True)
class ProcessInfo:
    pid: int
    exe: str
    argv: tuple[str, ...]
    environ: dict[str, str]
    cgroup: str


def service_instance_id(host: str, container: str, namespace: str, service: str, executable: str) -> str:
    """The stable ``service.instance.id``: a UUID v5 of what makes an instance, pid excluded."""
    name = "\n".join((host, container, namespace, service, executable[:COMM_LENGTH]))
    return str(uuid.uuid5(SERVICE_INSTANCE_NAMESPACE, name))


def metrics_view(resource: Resource) -> Resource:
    """The resource without its per-process attributes (``process.*`` but ``process.runtime.*``)."""
    kept = tuple((k, v) for k, v in resource.attributes
                 if not k.startswith("process.") or k.startswith("process.runtime."))
    return resource if len(kept) == len(resource.attributes) else Resource(kept)


def parse_resource_attributes(text: str) -> dict[str, str]:
    """OTEL_RESOURCE_ATTRIBUTES: comma-separated key=value, values percent-decoded."""
    out: dict[str, str] = {}
    for part in text.split(","):
        if "=" not in part:
            continue
        k, v = part.split("=", 1)
        k = k.strip()
        if k:
            out[k] = unquote(v.strip())
    return out


@dataclass(frozen=True, slots=True)
class _Entry:
    resource: Resource  # spans, logs
    metrics: Resource  # metrics (interned: one object per distinct value)
    expires: float | None = None  # the process exited: rebuilt after this (monotonic) time


class ProcessResources:
    """Resource per pid, cached (bounded), dropped at exec and kept a grace period after exit.

    ``get``/``for_metrics`` are called by the capture thread; ``forget``/``exited`` also by the
    discovery thread: reads are plain dict lookups, changes are made under a lock.
    """

    def __init__(
        self,
        proc_root: str = "/proc",
        host_name: str | None = None,
        max_entries: int = 8192,
        clock: Callable[[], float] = time.monotonic,
        exited_grace: float = EXITED_GRACE_SECONDS,
    ) -> None:
        self._proc = Path(proc_root)
        self._host = host_name or socket.gethostname()
        self._cache: OrderedDict[int, _Entry] = OrderedDict()
        self._known: OrderedDict[int, tuple[str, int]] = OrderedDict()  # pid -> (comm, ppid) from kernel events
        self._interned: OrderedDict[Resource, Resource] = OrderedDict()
        self._max = max_entries
        self._clock = clock
        self._grace = exited_grace
        self._lock = threading.Lock()

    # -- lookups ---------------------------------------------------------------------------

    def get(self, pid: int) -> Resource:
        """The resource of spans and logs (with ``process.pid``)."""
        return self._entry(pid).resource

    def entry(self, pid: int) -> _Entry:
        """Both at once: ``.resource`` (:meth:`get`) and ``.metrics`` (:meth:`for_metrics`)."""
        return self._entry(pid)

    def for_metrics(self, pid: int) -> Resource:
        """The resource of metric series: the service instance (see the module's docstring)."""
        return self._entry(pid).metrics

    def host(self) -> Resource:
        """The resource of what belongs to no process (the kernel's own packets, forwarded flows)."""
        name = "unknown_service:kernel"
        return Resource.from_dict({
            "service.name": name,
            "service.instance.id": service_instance_id(self._host, "", "", name, ""),
            "host.name": self._host,
        })

    # -- process events --------------------------------------------------------------------

    def forget(self, pid: int) -> None:
        """The pid runs another program (exec) or is another process (pid reuse): read it again."""
        with self._lock:
            self._cache.pop(pid, None)

    def exited(self, pid: int) -> None:
        """The process exited: its resource stays for the spans still to be assembled, then goes."""
        with self._lock:
            e = self._cache.get(pid)
            if e is not None and e.expires is None:
                self._cache[pid] = _Entry(e.resource, e.metrics, self._clock() + self._grace)

    def remember(self, pid: int, comm: str, ppid: int = 0) -> None:
        """The kernel's name for a process and its parent (from exec/exit events): what a
        process gone before its /proc entry could be read (curl and other short-lived clients)
        is named and placed by."""
        if comm:
            with self._lock:
                if not ppid:  # an exit event: the parent seen at exec stays (it may have been reparented since)
                    ppid = self._known.get(pid, ("", 0))[1]
                self._known[pid] = (comm, ppid)
                if len(self._known) > self._max:
                    self._known.popitem(last=False)

    def remember_comm(self, pid: int, comm: str) -> None:
        self.remember(pid, comm)

    # -- reading /proc ---------------------------------------------------------------------

    def read_process(self, pid: int) -> ProcessInfo:
        base = self._proc / str(pid)
        try:  # bytes: a path need not be UTF-8, and a lone surrogate would make every export
            # holding this resource unencodable (OTLP strings and Prometheus labels are UTF-8)
            exe = os.readlink(os.fsencode(base / "exe")).decode(errors="replace")
        except OSError:
            exe = ""
        argv = tuple(a.decode(errors="replace") for a in _read(base / "cmdline").split(b"\0") if a)
        env: dict[str, str] = {}
        for item in _read(base / "environ").split(b"\0"):
            if b"=" in item:
                k, v = item.split(b"=", 1)
                env[k.decode(errors="replace")] = v.decode(errors="replace")
        cgroup = _read(base / "cgroup").decode(errors="replace")
        return ProcessInfo(pid, exe, argv, env, cgroup)

    def _has_service_account(self, pid: int) -> bool:
        root = self._proc / str(pid) / "root"
        return any(os.path.isdir(str(root) + d) for d in SERVICE_ACCOUNT_DIRS)

    # -- building --------------------------------------------------------------------------

    def _entry(self, pid: int) -> _Entry:
        e = self._cache.get(pid)
        if e is not None and (e.expires is None or e.expires > self._clock()):
            return e
        resource = self._build(pid, inherit=True)
        with self._lock:
            metrics = metrics_view(resource)
            metrics = self._interned.setdefault(metrics, metrics)
            if len(self._interned) > self._max:
                self._interned.popitem(last=False)
            e = self._cache[pid] = _Entry(resource, metrics)
            if len(self._cache) > self._max:
                self._cache.popitem(last=False)
        return e

    def _build(self, pid: int, inherit: bool) -> Resource:
        info = self.read_process(pid)
        attrs: dict[str, object] = {}
        from_env = parse_resource_attributes(info.environ.get("OTEL_RESOURCE_ATTRIBUTES", ""))
        attrs.update(from_env)
        name = info.environ.get("OTEL_SERVICE_NAME") or from_env.get("service.name")
        known = self._known.get(pid)
        gone = not (info.exe or info.argv)
        if not name:
            if not gone:
                name = derive_service_name(info.exe, info.argv)
            else:
                name = known[0] if known else "unknown_service"  # never the pid: one series, not one per process
        attrs["service.name"] = name
        attrs["process.pid"] = pid
        executable = os.path.basename(info.exe)
        if gone and known:
            attrs["process.command"] = known[0]
            executable = known[0]
        if info.exe:
            attrs["process.executable.path"] = info.exe
            attrs["process.executable.name"] = executable
        for rx, runtime in _RUNTIMES:
            if executable and rx.match(executable):
                attrs["process.runtime.name"] = runtime
                break
        attrs["host.name"] = self._host
        m = _CONTAINER_ID.search(info.cgroup)
        if m:
            attrs["container.id"] = m.group(1)
        for key, value in kubernetes_attributes(info.environ, info.cgroup, lambda: self._has_service_account(pid)).items():
            attrs.setdefault(key, value)
        if gone and inherit and known and known[1] > 0:
            cached = self._cache.get(known[1])
            parent = cached.resource if cached is not None else self._build(known[1], inherit=False)
            for key in _INHERITED:
                value = parent.get(key)
                if value is not None:
                    attrs.setdefault(key, value)
        attrs.setdefault("service.instance.id", service_instance_id(
            self._host, str(attrs.get("container.id", "")), str(attrs.get("service.namespace", "")), name, executable,
        ))
        attrs["telemetry.sdk.name"] = "ebpf-receiver"
        attrs["telemetry.sdk.language"] = "python"
        attrs["telemetry.sdk.version"] = __version__
        return Resource.from_dict(attrs)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:  # process gone or not ours to read: the resource is built from what is left
        return b""
