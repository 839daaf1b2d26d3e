"""Which processes are traced: ``receivers.ebpf.discovery.include`` / ``exclude`` rules.

A rule names facts of a process — ``exe`` (glob on the executable path; a pattern without
``/`` is matched against the file name), ``cmdline`` (glob on the arguments joined by
spaces), ``port`` (a local TCP port of a socket it holds: listening or connected), ``pid``,
``container_id`` (the id or a prefix of it), ``cgroup`` (glob on a cgroup path) — and matches
a process when every fact it names matches.  A process is traced when it matches an include
rule (or there are none), matches no exclude rule and is not in ``exclude_pids``.  Processes
are judged when they start a program (exec) or are first seen; one forked without exec from a
judged process shares that process's decision (see ``process_discovery``).
"""

from __future__ import annotations

import enum
import fnmatch
import os
from dataclasses import dataclass
from typing import Callable, Protocol, Sequence


class RuleLike(Protocol):
    """What a rule holds (``receiver.config.DiscoveryRule`` is one)."""

    exe: str | None
    cmdline: str | None
    port: int | None
    pid: int | None
    container_id: str | None
    cgroup: str | None


@dataclass(frozen=True, slots=True)
class ProcessFacts:
    pid: int
    exe: str
    cmdline: str  # arguments joined by spaces
    cgroups: tuple[str, ...]
    container_id: str | None


class Decision(enum.Enum):
    TRACED = "traced"
    EXCLUDED = "excluded"  # exclude_pids or an exclude rule
    NOT_INCLUDED = "not_included"  # include rules exist and none matches


def _glob(pattern: str, value: str) -> bool:
    return fnmatch.fnmatchcase(value, pattern)


def rule_matches(rule: RuleLike, facts: ProcessFacts, ports: Callable[[], frozenset[int]]) -> bool:
    """Does every fact the rule names match?  ``ports()`` is called only when needed."""
    if rule.pid is not None and rule.pid != facts.pid:
        return False
    if rule.exe is not None:
        target = facts.exe if "/" in rule.exe else os.path.basename(facts.exe)
        if not facts.exe or not _glob(rule.exe, target):
            return False
    if rule.cmdline is not None and not _glob(rule.cmdline, facts.cmdline):
        return False
    if rule.container_id is not None and not (facts.container_id or "").startswith(rule.container_id):
        return False
    if rule.cgroup is not None and not any(_glob(rule.cgroup, c) for c in facts.cgroups):
        return False
    if rule.port is not None and rule.port not in ports():
        return False
    return True


class DiscoveryRules:
    def __init__(self, include: Sequence[RuleLike] = (), exclude: Sequence[RuleLike] = (),
                 exclude_pids: Sequence[int] = ()) -> None:
        self.include = tuple(include)
        self.exclude = tuple(exclude)
        self.exclude_pids = frozenset(exclude_pids)
        self.ports = frozenset(r.port for r in self.include + self.exclude if r.port is not None)  # the ports named

    @property
    def active(self) -> bool:
        """Do the rules exclude anything (so the kernel must consult erx_excluded_pids)?"""
        return bool(self.include or self.exclude or self.exclude_pids)

    @property
    def need_ports(self) -> bool:
        """Do decisions depend on sockets (and so change while a process runs)?"""
        return bool(self.ports)


    def decide(self, facts: ProcessFacts, ports: Callable[[], frozenset[int]]) -> Decision:
        if facts.pid in self.exclude_pids:
            return Decision.EXCLUDED
        if any(rule_matches(r, facts, ports) for r in self.exclude):
            return Decision.EXCLUDED
        if self.include and not any(rule_matches(r, facts, ports) for r in self.include):
            return Decision.NOT_INCLUDED
        return Decision.TRACED
