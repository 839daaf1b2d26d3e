"""Settings of process discovery (``receivers.ebpf.discovery``): which processes are traced."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from receiver.configuration.checks import container_id_prefix, not_empty
from receiver.configuration.section import ConfigSection, setting


@dataclass(frozen=True, slots=True)
class DiscoveryRule(ConfigSection):
    """Matches a process when every fact it names matches."""

    exe: str | None = setting(
        None, "Glob on the executable's path; without '/', on its file name (nginx, python3*).", check=not_empty
    )
    cmdline: str | None = setting(None, "Glob on the command line, arguments joined by spaces.", check=not_empty)
    port: int | None = setting(
        None, "A local TCP port the process has a socket on (listening or connected).", minimum=1, maximum=65535
    )
    pid: int | None = setting(None, "The process id.", minimum=1, maximum=4194304)
    container_id: str | None = setting(
        None, "The process's container id, or a prefix of it (12 digits as docker ps shows).",
        check=container_id_prefix,
    )
    cgroup: str | None = setting(None, "Glob on a cgroup path of the process (/proc/<pid>/cgroup).", check=not_empty)

    def cross_field_problems(self) -> Iterator[tuple[str, str]]:
        if all(getattr(self, name) is None for name in ("exe", "cmdline", "port", "pid", "container_id", "cgroup")):
            yield "exe", "a rule needs at least one of exe, cmdline, port, pid, container_id, cgroup"


@dataclass(frozen=True, slots=True)
class DiscoveryConfig(ConfigSection):
    """Which processes are traced, and TLS plaintext from the libraries they load."""

    include: tuple[DiscoveryRule, ...] = setting(
        (), "Trace only processes that match one of these rules (a process forked without exec follows its "
        "parent); empty: every process (but the agent)."
    )
    exclude: tuple[DiscoveryRule, ...] = setting(
        (), "Never trace processes that match one of these rules (wins over include)."
    )
    tls: bool = setting(
        True, "Attach uprobes to the TLS libraries (OpenSSL, BoringSSL) processes load, for plaintext."
    )
    rescan_interval: float = setting(
        2.0, "How often all processes are looked at again (new libraries, forks, port rules).",
        kind="duration", above=0,
    )
