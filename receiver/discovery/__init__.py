"""Process discovery: which processes are traced (``receivers.ebpf.discovery`` rules, applied
in the kernel) and which TLS libraries they load (attached with uprobes for plaintext).

``procfs`` reads ``/proc`` (root injectable), ``elf`` reads exported symbols, ``rules`` judges
processes, ``tls_libraries`` attaches each TLS library file once, ``process_discovery``
follows processes as they come and go, ``metrics`` exposes what it did.
"""

from receiver.discovery.process_discovery import DiscoverySummary, ProcessDiscovery
from receiver.discovery.rules import Decision, DiscoveryRules, ProcessFacts

__all__ = ["Decision", "DiscoveryRules", "DiscoverySummary", "ProcessDiscovery", "ProcessFacts"]
