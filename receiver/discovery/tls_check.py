"""``ebpf-receiver check --config``: which TLS stack each process the configuration would trace
uses, and whether its plaintext would be covered — discovery run once, dry (no BPF program,
no uprobe: the loader it is given only says what attaching would give)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from receiver.discovery.process_discovery import ProcessDiscovery
from receiver.discovery.procfs import ProcFs
from receiver.discovery.tls_stacks import ProcessTls


@dataclass(frozen=True)
class _WouldAttach:
    path: str
    probes: int
    missing: tuple[str, ...] = ()


class DryLoader:
    """Discovery's loader for a dry run: excluding a pid and attaching always succeed."""

    def set_pid_excluded(self, pid: int, excluded: bool, until_exec: bool = False) -> bool:
        return True

    def attach_tls_library(self, path: str) -> _WouldAttach:
        return _WouldAttach(path, 0)

    def attach_go_tls(self, path: str, index: int, binary) -> _WouldAttach:
        return _WouldAttach(path, 2 + len(binary.read.returns) + len(binary.write.returns))


def tls_check(discovery_config, uprobes: bool = True, procfs: ProcFs | None = None) -> list[ProcessTls]:
    """The TLS stacks of the processes discovery_config traces now (``uprobes``: the kernel
    offers them; without, nothing is covered)."""
    discovery = ProcessDiscovery(discovery_config, procfs=procfs)
    loader = DryLoader()
    discovery.prepare(loader)
    discovery.start(loader, follow=False)
    report = discovery.tls_report()
    if not uprobes:
        report = [replace(r, covered=False, detail="the kernel has no uprobes") if r.covered else r for r in report]
    return report
