"""A namespace resolver standing for /proc and conntrack in unit tests: pid → namespace inode
(0: unknown, as for a process gone before its connection was read), and NAT translations."""

from __future__ import annotations


class FakeResolver:
    def __init__(self, pids: dict[int, int], nat: dict[tuple, tuple[str, int]] | None = None) -> None:
        self.pids, self.nat = pids, nat or {}
        self.forgotten: list[int] = []
        self.maintained = 0

    def netns_of(self, pid):
        return self.pids.get(pid, 0)

    def connection_netns(self, pid, local_addr):
        return self.pids.get(pid, 0)

    def nat_destination(self, ns, t):
        return self.nat.get((ns, t.local_addr, t.local_port, t.remote_addr, t.remote_port))

    def forget_pid(self, pid):
        self.forgotten.append(pid)

    def maintain(self):
        self.maintained += 1
