"""Attach the tc flow classifiers (``erx_tc_ingress``/``erx_tc_egress``) to interfaces with pyroute2.

Each interface gets a ``clsact`` qdisc (created when missing, and then removed again at
detach) and one direct-action ``bpf`` filter per direction at a priority of our own, so filters
of others on the same hook are left alone.  ``detach`` removes exactly what ``attach`` added;
both are idempotent per interface.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from receiver.bpf.privileges import MissingCapability, MissingCapabilityError

INGRESS_PARENT = 0xFFFFFFF2  # TC_H_MAKE(TC_H_CLSACT, TC_H_MIN_INGRESS)
EGRESS_PARENT = 0xFFFFFFF3  # TC_H_MAKE(TC_H_CLSACT, TC_H_MIN_EGRESS)
FILTER_PRIORITY = 49152  # ours: low priority, runs after filters others placed earlier
FILTER_HANDLE = 0xE4C1


class TcAttachError(RuntimeError):
    """An interface could not get the classifiers; the message names it and why."""


@dataclass
class _Attached:
    index: int
    created_qdisc: bool


class TcFlowAttacher:
    """Owns the filters it adds; ``close()`` removes all of them."""

    def __init__(self, ingress_fd: int, egress_fd: int, netns: str | None = None) -> None:
        self._fds = {INGRESS_PARENT: (ingress_fd, "erx_tc_ingress"), EGRESS_PARENT: (egress_fd, "erx_tc_egress")}
        self._netns = netns
        self._attached: dict[str, _Attached] = {}

    def _ipr(self) -> IPRoute:
        return IPRoute(netns=self._netns) if self._netns else IPRoute()

    @property
    def interfaces(self) -> list[str]:
        return list(self._attached)

    def attach(self, ifname: str) -> None:
        if ifname in self._attached:
            return
        with self._ipr() as ipr:
            found = ipr.link_lookup(ifname=ifname)
            if not found:
                raise TcAttachError(f"tc_interfaces: no interface {ifname!r} in this network namespace")
            index = found[0]
            created = False
            try:
                ipr.tc("add", "clsact", index)
                created = True
            except NetlinkError as err:
                if err.code == errno.EPERM:
                    raise MissingCapabilityError(
                        MissingCapability("CAP_NET_ADMIN", f"adding a clsact qdisc to {ifname} was refused")
                    ) from err
                if err.code != errno.EEXIST:
                    raise TcAttachError(f"adding a clsact qdisc to {ifname}: {err}") from err
            try:
                for parent, (fd, name) in self._fds.items():
                    ipr.tc(
                        "add-filter", "bpf", index, FILTER_HANDLE, fd=fd, name=name, parent=parent,
                        prio=FILTER_PRIORITY, protocol=0x0003, direct_action=True,  # ETH_P_ALL
                    )
            except NetlinkError as err:
                self._remove(ipr, index, created)
                if err.code == errno.EPERM:
                    raise MissingCapabilityError(
                        MissingCapability("CAP_NET_ADMIN", f"adding the tc classifiers to {ifname} was refused")
                    ) from err
                raise TcAttachError(f"adding the tc classifiers to {ifname}: {err}") from err
        self._attached[ifname] = _Attached(index, created)

    def detach(self, ifname: str) -> None:
        a = self._attached.pop(ifname, None)
        if a is None:
            return
        with self._ipr() as ipr:
            self._remove(ipr, a.index, a.created_qdisc)

    def close(self) -> None:
        for ifname in list(self._attached):
            self.detach(ifname)

    def _remove(self, ipr: IPRoute, index: int, created_qdisc: bool) -> None:
        """Best effort by design: an interface that vanished took its filters with it."""
        if created_qdisc:
            try:
                ipr.tc("del", "clsact", index)
            except NetlinkError as err:
                if err.code not in (errno.ENOENT, errno.ENODEV, errno.EINVAL):
                    raise
            return
        for parent in self._fds:
            try:
                ipr.tc("del-filter", "bpf", index, FILTER_HANDLE, parent=parent, prio=FILTER_PRIORITY, protocol=0x0003)
            except NetlinkError as err:
                if err.code not in (errno.ENOENT, errno.ENODEV, errno.EINVAL):
                    raise
