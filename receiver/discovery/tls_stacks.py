"""Which TLS stack each traced process uses, and whether its plaintext is read: what a user
needs to see at once when an HTTPS service has no spans (start-up log, ``ebpf-receiver
check --config``).

Stacks, from what discovery found in the process's executable mappings
(:class:`~receiver.discovery.tls_libraries.TlsLibrary`):

* ``openssl (shared)``: a mapped library exports ``SSL_write`` (libssl, BoringSSL);
* ``openssl (static)``: the executable itself exports it (OpenSSL linked in);
* ``go crypto/tls``: a Go executable with ``crypto/tls`` (``go_tls.py``);
* ``none``: nothing of the above.  Its TLS, if any, is not covered: a library linked without
  its symbols (grpcio's BoringSSL, a static OpenSSL whose symbols are not exported), a TLS
  implementation this agent does not know (rustls, Java's JSSE, Node's bundled OpenSSL
  without exported symbols).  Such connections are counted
  (``ebpf_receiver_tls_unattached_total{reason="no_library"}``) when they end.

Covered means the uprobes are attached (or, in ``check``, would be).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from receiver.discovery.tls_libraries import TlsLibrary

NONE = "none"


@dataclass(frozen=True)
class ProcessTls:
    pid: int
    name: str  # service name, or the executable
    stack: str  # openssl (shared) | openssl (static) | go crypto/tls | none | unknown
    path: str = ""  # the library or executable carrying it
    covered: bool = False
    detail: str = ""  # the Go version; why it is not covered

    def line(self) -> str:
        if self.stack == NONE:
            return f"pid {self.pid} {self.name}: no TLS library found"
        state = "plaintext covered" if self.covered else f"plaintext NOT covered ({self.detail or 'not attached'})"
        version = f" {self.detail}" if self.covered and self.detail else ""
        return f"pid {self.pid} {self.name}: {self.stack}{version} {self.path}: {state}"


def process_tls(pid: int, name: str, exe: str, libraries: Iterable[TlsLibrary], maps_readable: bool = True
                ) -> ProcessTls:
    """The TLS stack of one process from the TLS files it maps (a covered one first)."""
    if not maps_readable:
        return ProcessTls(pid, name, "unknown", covered=False, detail="its memory maps cannot be read")
    libs = sorted(libraries, key=lambda lib: (not lib.attached, lib.path))
    if not libs:
        return ProcessTls(pid, name, NONE)
    lib = libs[0]
    if lib.kind == "go":
        stack = "go crypto/tls"
    elif exe and (lib.path == exe or lib.path.endswith("/root" + exe)):
        stack = "openssl (static)"
    else:
        stack = "openssl (shared)"
    detail = lib.version if lib.attached else (lib.error or lib.reason)
    return ProcessTls(pid, name, stack, lib.path, lib.attached, detail)


def summary_lines(items: list[ProcessTls], limit: int = 30) -> list[str]:
    """Log lines: one per process with a TLS stack (at most limit), then how many have none."""
    with_tls = [i for i in items if i.stack != NONE]
    lines = [i.line() for i in sorted(with_tls, key=lambda i: (i.covered, i.pid))[:limit]]
    if len(with_tls) > limit:
        lines.append(f"... and {len(with_tls) - limit} more processes with a TLS stack")
    without = len(items) - len(with_tls)
    if without:
        lines.append(f"{without} traced processes with no TLS library found (their TLS, if any, is not covered)")
    return lines


def format_tls_table(items: list[ProcessTls]) -> str:
    """``ebpf-receiver check``: every traced process, its stack and coverage."""
    if not items:
        return "TLS: no traced process"
    w = max(len(f"{i.pid} {i.name}") for i in items)
    lines = [f"{'process':<{w}}  {'tls stack':<16}  plaintext"]
    for i in sorted(items, key=lambda i: (i.stack == NONE, i.pid)):
        if i.stack == NONE:
            state = "-"
        elif i.covered:
            state = f"covered {i.detail} {i.path}".replace("  ", " ")
        else:
            state = f"NOT covered: {i.detail or 'not attached'} ({i.path})"
        lines.append(f"{f'{i.pid} {i.name}':<{w}}  {i.stack:<16}  {state}")
    return "\n".join(lines)
