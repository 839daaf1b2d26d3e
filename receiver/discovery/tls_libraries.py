"""TLS libraries found in processes, attached once per file.

A file is known by its identity ``(st_dev, st_ino)``, however many processes map it and
whatever path their mount namespace gives it: uprobes are attached per file with pid -1, so
every process mapping it — now or later — shares them.  Two kinds of files carry TLS:

* ``openssl``: a file that exports ``SSL_write`` in its dynamic symbol table (libssl,
  BoringSSL, an executable with OpenSSL linked in), or an executable that defines it in its
  static symbol table (linked with libssl.a, not stripped);
* ``go``: a Go executable with ``crypto/tls`` (``go_tls.py``; looked for in executables only).

One that cannot be attached (or a Go binary whose crypto/tls cannot be followed: stripped, an
old ABI) is reported once and never retried.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from typing import Protocol

from receiver.discovery.elf import exported_functions
from receiver.discovery.go_tls import GoBinary, inspect_go_binary

log = logging.getLogger(__name__)

FileId = tuple[int, int]  # (st_dev, st_ino)
REQUIRED = ("SSL_write", "SSL_read")
MAX_VERDICTS = 65536  # remembered non-TLS files (bounded)


class TlsAttacher(Protocol):
    """What attaching needs from the loader (``BpfLoader`` is one)."""

    def attach_tls_library(self, path: str): ...

    def attach_go_tls(self, path: str, index: int, binary: GoBinary): ...


@dataclass
class TlsLibrary:
    file_id: FileId
    path: str  # the path it was attached (or tried) by
    attached: bool
    probes: int = 0
    missing: tuple[str, ...] = ()
    error: str = ""  # why it could not be attached
    reason: str = ""  # failure reason label: missing_symbol | attach_error | go_unsupported
    attach_seconds: float = 0.0
    pids: set[int] = field(default_factory=set)  # processes mapping it now
    kind: str = "openssl"  # openssl | go
    version: str = ""  # Go: the toolchain version (go1.19.8)


class TlsLibraries:
    def __init__(self, attacher: TlsAttacher, clock=time.perf_counter) -> None:
        self._attacher = attacher
        self._clock = clock
        self.by_file: dict[FileId, TlsLibrary] = {}
        # Files that are not TLS libraries: identity -> (size, mtime_ns) when looked at, and
        # whether it was looked at as an executable (for Go's crypto/tls) too.
        self._not_tls: dict[FileId, tuple[int, int, bool]] = {}
        self.failures: dict[str, int] = {"missing_symbol": 0, "attach_error": 0, "go_unsupported": 0}
        self._go_indexes = 0  # erx_go_tls_binaries entries handed out (never reused; the loader
        # refuses one past ERX_GO_TLS_BINARIES: an attach_error)

    @property
    def attached(self) -> list[TlsLibrary]:
        return [lib for lib in list(self.by_file.values()) if lib.attached]  # list(): atomic copy

    def lookup(self, real_path: str, plain_path: str, is_exe: bool = False) -> TlsLibrary | None:
        """The TLS library at real_path (reachable from here; plain_path is how its process
        names it), attaching it on first sight; None when the file is not a TLS library or
        cannot be read.  ``is_exe``: the process's executable (a Go binary is looked for)."""
        try:
            st = os.stat(real_path)
        except OSError:
            return None
        fid = (st.st_dev, st.st_ino)
        lib = self.by_file.get(fid)
        if lib is not None:
            return lib
        stamp = (st.st_size, st.st_mtime_ns)
        verdict = self._not_tls.get(fid)
        if verdict is not None and verdict[:2] == stamp and (verdict[2] or not is_exe):
            return None  # not TLS (and, for an executable, not Go with crypto/tls either)
        try:
            exported = exported_functions(real_path, REQUIRED, include_symtab=is_exe)
        except OSError:
            return None
        if "SSL_write" not in exported:
            go = _go_binary(real_path) if is_exe else None
            if go is not None and go.uses_tls:
                lib = self._attach_go(fid, _attach_path(real_path, plain_path, fid), go)
                self.by_file[fid] = lib
                return lib
            if len(self._not_tls) >= MAX_VERDICTS:
                self._not_tls.clear()
            self._not_tls[fid] = (*stamp, is_exe)
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

    def _attach_go(self, fid: FileId, path: str, go: GoBinary) -> TlsLibrary:
        if not go.covered:
            lib = self._failed(fid, path, "go_unsupported", f"Go {go.version or '(version unknown)'} "
                               f"crypto/tls cannot be followed: {go.reason}")
            return _as_go(lib, go)
        t0 = self._clock()
        try:
            a = self._attacher.attach_go_tls(path, self._go_indexes, go)
        except Exception as err:  # BpfLoadError, or anything libbpf made of the file
            return _as_go(self._failed(fid, path, "attach_error", str(err).splitlines()[0]), go)
        self._go_indexes += 1
        took = self._clock() - t0
        log.info("Go crypto/tls in %s (%s, offsets from %s) attached (%d uprobes, %.1f ms)", path, go.version,
                 go.offsets.source, a.probes, took * 1000)
        return TlsLibrary(fid, path, True, a.probes, attach_seconds=took, kind="go", version=go.version)

    def _failed(self, fid: FileId, path: str, reason: str, error: str) -> TlsLibrary:
        self.failures[reason] += 1
        log.warning("TLS library %s cannot be attached, its processes' TLS traffic is not captured: %s",
                    path, error)
        return TlsLibrary(fid, path, False, error=error, reason=reason)


def _as_go(lib: TlsLibrary, go: GoBinary) -> TlsLibrary:
    lib.kind, lib.version = "go", go.version
    return lib


def _go_binary(path: str) -> GoBinary | None:
    try:
        return inspect_go_binary(path)
    except OSError:
        return None


def _attach_path(real_path: str, plain_path: str, fid: FileId) -> str:
    """The plain path when it names the same file here (the agent's mount namespace), else the
    path through the process's root."""
    try:
        st = os.stat(plain_path)
    except OSError:
        return real_path
    return plain_path if (st.st_dev, st.st_ino) == fid else real_path
