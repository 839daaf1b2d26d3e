"""Process discovery: which processes are traced (``receivers.ebpf.discovery`` rules, applied
in the kernel) and which TLS libraries they load (attached with uprobes for plaintext).

``procfs`` reads ``/proc`` (root injectable), ``elf`` reads exported symbols, ``go_tls`` finds
Go's crypto/tls in an executable (symbols, .gopclntab, DWARF, RET instructions), ``rules``
judges processes, ``tls_libraries`` attaches each TLS library file once, ``process_discovery``
follows processes as they come and go, ``tls_stacks`` says which TLS stack each traced process
uses and whether it is covered (``tls_check``: the same, dry, for ``ebpf-receiver check``),
``summary`` says what it found (and when that is worth a log line), ``metrics`` exposes it.  ``resources`` builds each process's OTel resource
(``service_name`` names it from its command line, ``kubernetes`` adds ``k8s.*`` on evidence).
"""

from receiver.discovery.process_discovery import ProcessDiscovery
from receiver.discovery.rules import Decision, DiscoveryRules, ProcessFacts
from receiver.discovery.summary import DiscoverySummary

__all__ = ["Decision", "DiscoveryRules", "DiscoverySummary", "ProcessDiscovery", "ProcessFacts"]
