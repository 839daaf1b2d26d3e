"""Per-process OTel Resource, read from /proc (the path is injectable for tests).

service.name: the process's own OTEL_SERVICE_NAME, else service.name in its
OTEL_RESOURCE_ATTRIBUTES, else derived from the command line (``python3 app.py`` → ``app``,
``java -jar shop.jar`` → ``shop``), else the executable name.
"""

from __future__ import annotations

import os
import re
import socket
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from receiver import __version__
from receiver.model.telemetry import Resource

_INTERPRETERS = re.compile(r"^(python[0-9.]*|pypy[0-9.]*|node|nodejs|ruby[0-9.]*|perl[0-9.]*|php[0-9.]*|bash|sh|dotnet)$")
_RUNTIMES = (
    (re.compile(r"^(python|pypy)"), "cpython"),
    (re.compile(r"^(node|nodejs)$"), "nodejs"),
    (re.compile(r"^java$"), "java"),
    (re.compile(r"^ruby"), "ruby"),
    (re.compile(r"^dotnet$"), "dotnet"),
)
_CONTAINER_ID = re.compile(r"([0-9a-f]{64})")
_K8S_ENV = {
    "k8s.pod.name": ("K8S_POD_NAME", "POD_NAME", "OTEL_K8S_POD_NAME"),
    "k8s.namespace.name": ("K8S_NAMESPACE_NAME", "POD_NAMESPACE", "K8S_NAMESPACE", "OTEL_K8S_NAMESPACE"),
    "k8s.pod.uid": ("K8S_POD_UID", "POD_UID", "OTEL_K8S_POD_UID"),
    "k8s.container.name": ("K8S_CONTAINER_NAME", "CONTAINER_NAME", "OTEL_K8S_CONTAINER_NAME"),
}


@dataclass(frozen=True)
class ProcessInfo:
    pid: int
    exe: str
    argv: tuple[str, ...]
    environ: dict[str, str]
    cgroup: str


def derive_service_name(exe: str, argv: tuple[str, ...]) -> str:
    """A readable service name from the command line when the process does not name itself."""
    prog = os.path.basename(argv[0]) if argv else os.path.basename(exe)
    if exe and (not prog or " " in prog or ":" in prog):
        # argv[0] rewritten into a title ("nginx: worker process"): the executable is truer.
        prog = os.path.basename(exe)
    args = list(argv[1:])
    if prog == "java" or os.path.basename(exe) == "java":
        for i, a in enumerate(args):
            if a == "-jar" and i + 1 < len(args):
                return _stem(args[i + 1])
        for a in args:  # main class: the first argument that is not an option
            if not a.startswith("-") and "." in a:
                return a.rsplit(".", 1)[-1]
        return "java"
    if _INTERPRETERS.match(prog) or _INTERPRETERS.match(os.path.basename(exe)):
        skip_next = False
        for a in args:
            if skip_next:
                skip_next = False
                continue
            if a in ("-m",):
                skip_next = False
                continue
            if a in ("-c", "-e"):
                break
            if a.startswith("-"):
                continue
            return _stem(a)
        return prog
    return prog or os.path.basename(exe) or "unknown_service"


def _stem(path: str) -> str:
    base = os.path.basename(path.rstrip("/"))
    for ext in (".py", ".jar", ".js", ".mjs", ".rb", ".pl", ".php", ".sh", ".dll"):
        if base.endswith(ext):
            return base[: -len(ext)]
    return base


def parse_resource_attributes(text: str) -> dict[str, str]:
    """OTEL_RESOURCE_ATTRIBUTES: comma-separated key=value, values percent-decoded."""
    from urllib.parse import unquote

    out: dict[str, str] = {}
    for part in text.split(","):
        if "=" not in part:
            continue
        k, v = part.split("=", 1)
        k = k.strip()
        if k:
            out[k] = unquote(v.strip())
    return out


class ProcessResources:
    """Resource per pid, cached (bounded) and dropped on exec/exit."""

    def __init__(self, proc_root: str = "/proc", host_name: str | None = None, max_entries: int = 8192) -> None:
        self._proc = Path(proc_root)
        self._host = host_name or socket.gethostname()
        self._cache: OrderedDict[int, Resource] = OrderedDict()
        self._comms: OrderedDict[int, str] = OrderedDict()
        self._max = max_entries

    def get(self, pid: int) -> Resource:
        r = self._cache.get(pid)
        if r is not None:
            return r
        r = self._build(pid)
        self._cache[pid] = r
        if len(self._cache) > self._max:
            self._cache.popitem(last=False)
        return r

    def forget(self, pid: int) -> None:
        self._cache.pop(pid, None)

    def host(self) -> Resource:
        """The resource of what belongs to no process (the kernel's own packets, forwarded flows)."""
        return Resource.from_dict({"service.name": "unknown_service:kernel", "host.name": self._host})

    def remember_comm(self, pid: int, comm: str) -> None:
        """The kernel's name for a process (from exec/exit events): the fallback service name
        when the process is gone before its /proc entry could be read (curl and other
        short-lived clients)."""
        if comm:
            self._comms[pid] = comm
            if len(self._comms) > self._max:
                self._comms.popitem(last=False)

    def read_process(self, pid: int) -> ProcessInfo:
        base = self._proc / str(pid)
        try:
            exe = os.readlink(base / "exe")
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

    def _build(self, pid: int) -> Resource:
        info = self.read_process(pid)
        attrs: dict[str, object] = {}
        from_env = parse_resource_attributes(info.environ.get("OTEL_RESOURCE_ATTRIBUTES", ""))
        attrs.update(from_env)
        name = info.environ.get("OTEL_SERVICE_NAME") or from_env.get("service.name")
        if not name:
            if info.exe or info.argv:
                name = derive_service_name(info.exe, info.argv)
            else:
                name = self._comms.get(pid) or f"pid-{pid}"
                attrs["process.command"] = name
        attrs["service.name"] = name
        attrs.setdefault("service.instance.id", f"{self._host}-{pid}")
        attrs["process.pid"] = pid
        if info.exe:
            attrs["process.executable.path"] = info.exe
            attrs["process.executable.name"] = os.path.basename(info.exe)
            for rx, runtime in _RUNTIMES:
                if rx.match(os.path.basename(info.exe)):
                    attrs["process.runtime.name"] = runtime
                    break
        attrs["host.name"] = self._host
        m = _CONTAINER_ID.search(info.cgroup)
        if m:
            attrs["container.id"] = m.group(1)
        for key, names in _K8S_ENV.items():
            if key in attrs:
                continue
            for n in names:
                if info.environ.get(n):
                    attrs[key] = info.environ[n]
                    break
        attrs["telemetry.sdk.name"] = "ebpf-receiver"
        attrs["telemetry.sdk.language"] = "python"
        attrs["telemetry.sdk.version"] = __version__
        return Resource.from_dict(attrs)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:  # process gone or not ours to read: the resource is built from what is left
        return b""
