"""What components tell an observer of the running agent (the zPages extension, ``ebpf-receiver
status``): neutral, frozen snapshots, read from any thread, never written back.

A component that has something to show implements the matching method, found by duck typing:

* a receiver that traces processes: ``processes(pids) -> list[ProcessStatus]`` (the processes it
  holds state for, plus those of ``pids``) — the eBPF receiver;
* any component: ``status() -> ComponentStatus`` (queue sizes, retrying, last error).
"""

from __future__ import annotations

from dataclasses import dataclass

from receiver.model.telemetry import Resource

# Whether the plaintext of a process's TLS connections is captured.
TLS_NONE = "no TLS seen"  # no TLS library mapped, no TLS record seen on its sockets
TLS_COVERED = "covered"  # a TLS library it maps is attached, no ciphertext-only connection
TLS_PARTIAL = "partly covered"  # attached, but some connections carry ciphertext only
TLS_NOT_COVERED = "not covered"  # ciphertext on its sockets and no attached library


@dataclass(frozen=True, slots=True)
class ProcessStatus:
    pid: int
    resource: Resource  # of its spans (service.name, container.id, process.*)
    metrics_resource: Resource  # of its metric series (the RED histograms): no process.pid
    connections: int  # connections tracked now
    protocols: tuple[str, ...]  # detected on its connections tracked now
    tls_stack: tuple[str, ...]  # the TLS libraries (or binaries) it maps whose uprobes are attached
    tls_plaintext: str  # one of the TLS_* values above
    tls_ciphertext_connections: int  # connections with TLS records and no plaintext (not covered)

    @property
    def service(self) -> str:
        return self.resource.service_name

    @property
    def container(self) -> str:
        return str(self.resource.get("container.id", "") or "")

    @property
    def executable(self) -> str:
        return str(self.resource.get("process.executable.name", "") or "")


@dataclass(frozen=True, slots=True)
class ComponentStatus:
    """One component's state: ``state`` is a word (``running``, ``retrying``, ``stopped``);
    ``queues`` are (name, used, capacity, unit); ``last_error`` is empty when there was none."""

    state: str
    queues: tuple[tuple[str, int, int, str], ...] = ()
    last_error: str = ""
    last_error_unix: float = 0.0
    details: tuple[tuple[str, str], ...] = ()
