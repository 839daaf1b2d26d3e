"""TLS libraries found in processes, attached once per file.

A file is known by its identity ``(st_dev, st_ino)``, however many processes map it and
whatever path their mount namespace gives it: uprobes are attached per file with pid -1, so
every process mapping it — now or later — shares them.  A file that exports ``SSL_write`` in
its dynamic symbol table (libssl, BoringSSL, an executable with OpenSSL linked in) is a TLS
library; one that cannot be attached is reported once and never retried.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from typing import Protocol

from receiver.discovery.elf import exported_functions

log = logging.getLogger(__name__)

FileId = tuple[int, int]  # (st_dev, st_ino)
REQUIRED = ("SSL_write", "SSL_read")
MAX_VERDICTS = 65536  # remembered non-TLS files (bounded)


class TlsAttacher(Protocol):
    """What attaching needs from the loader (``BpfLoader`` is one)."""

    def attach_tls_library(self, path: str): ...


@dataclass
class TlsLibrary:
    file_id: FileId
    path: str  # the path it was attached (or tried) by
    attached: bool
    probes: int = 0
    missing: tuple[str, ...] = ()
    error: str = ""  # why it could not be attached
    reason: str = ""  # failure reason label: missing_symbol | attach_error
    attach_seconds: float = 0.0
    pids: set[int] = field(default_factory=set)  # processes mapping it now


class TlsLibraries:
    def __init__(self, attacher: TlsAttacher, clock=time.perf_counter) -> None:
        self._attacher = attacher
        self._clock = clock
        self.by_file: dict[FileId, TlsLibrary] = {}
        # Files that are not TLS libraries: identity -> (size, mtime_ns) when looked at.
        self._not_tls: dict[FileId, tuple[int, int]] = {}
        self.failures: dict[str, int] = {"missing_symbol": 0, "attach_error": 0}

    @property
    def attached(self) -> list[TlsLibrary]:
        return [lib for lib in list(self.by_file.values()) if lib.attached]  # list(): atomic copy

    def lookup(self, real_path: str, plain_path: str) -> TlsLibrary | None:
        """The TLS library at real_path (reachable from here; plain_path is how its process
        names it), attaching it on first sight; None when the file is not a TLS library or
        cannot be read."""
        try:
            st = os.stat(real_path)
        except OSError:
            return None
        fid = (st.st_dev, st.st_ino)
        lib = self.by_file.get(fid)
        if lib is not None:
            return lib
        stamp = (st.st_size, st.st_mtime_ns)
        if self._not_tls.get(fid) == stamp:
            return None
        try:
            exported = exported_functions(real_path, REQUIRED)
        except OSError:
            return None
        if "SSL_write" not in exported:
            if len(self._not_tls) >= MAX_VERDICTS:
                self._not_tls.clear()
            self._not_tls[fid] = stamp
            return None
        lib = self._attach(fid, _attach_path(real_path, plain_path, fid), exported)
        self.by_file[fid] = lib
        return lib

    def _attach(self, fid: FileId, path: str, exported: frozenset[str]) -> TlsLibrary:
        missing = [s for s in REQUIRED if s not in exported]
        if missing:
            return self._failed(fid, path, "missing_symbol", f"it does not export {', '.join(missing)}")
        t0 = self._clock()
        try:
            a = self._attacher.attach_tls_library(path)
        except Exception as err:  # BpfLoadError, or anything libbpf made of the file
            return self._failed(fid, path, "attach_error", str(err).splitlines()[0])
        took = self._clock() - t0
        log.info("TLS library %s attached (%d uprobes, %.1f ms)", path, a.probes, took * 1000)
        return TlsLibrary(fid, path, True, a.probes, tuple(a.missing), attach_seconds=took)

    def _failed(self, fid: FileId, path: str, reason: str, error: str) -> TlsLibrary:
        self.failures[reason] += 1
        log.warning("TLS library %s cannot be attached, its processes' TLS traffic is not captured: %s",
                    path, error)
        return TlsLibrary(fid, path, False, error=error, reason=reason)


def _attach_path(real_path: str, plain_path: str, fid: FileId) -> str:
    """The plain path when it names the same file here (the agent's mount namespace), else the
    path through the process's root."""
    try:
        st = os.stat(plain_path)
    except OSError:
        return real_path
    return plain_path if (st.st_dev, st.st_ino) == fid else real_path
