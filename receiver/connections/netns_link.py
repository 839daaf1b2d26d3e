"""Netlink into one network namespace, for :mod:`receiver.connections.netns`: the interface its
resolver uses (:class:`NamespaceLink`: unit tests give fakes) and the pyroute2 one."""

from __future__ import annotations

import errno
import logging
import os
import socket
from typing import Protocol

log = logging.getLogger(__name__)


class NamespaceLink(Protocol):
    """Netlink access to one namespace (pyroute2 by default; fakes in unit tests)."""

    def interfaces(self) -> dict[str, tuple[str, ...]]: ...

    def reply_tuple(self, family: int, proto: int, saddr: str, sport: int, daddr: str,
                    dport: int) -> tuple[str, int, str, int] | None: ...

    def close(self) -> None: ...


class Pyroute2Link:
    """Netlink into one namespace (``path`` None: the agent's own).  Addresses are read rarely,
    through an IPRoute socket opened for the read; Conntrack sockets (one per address family)
    are opened on first use and kept until :meth:`close`."""

    OPEN_TIMEOUT = 1.0  # seconds pyroute2 may retry the setns child (each try waits <= 2 s)

    def __init__(self, path: str | None, libc=None) -> None:
        self._path = path
        self._libc = libc
        self._ct: dict[int, object] = {}

    def _open(self, cls, proto: int, **kwargs):
        """A pyroute2 socket of ``cls``; in another namespace, on a netlink socket made there by
        pyroute2's ``netns.create_socket`` (``flags=0``: a vanished path is never created; a
        short retry time instead of the 10 s default), handed over as ``fileno``."""
        if self._path is None:
            return cls(**kwargs)
        from pyroute2 import netns

        fd = netns.create_socket(netns=self._path, family=socket.AF_NETLINK, socket_type=socket.SOCK_DGRAM,
                                 proto=proto, flags=0, libc=self._libc, timeout=self.OPEN_TIMEOUT).detach()
        try:
            return cls(fileno=fd, **kwargs)
        except BaseException:
            os.close(fd)
            raise

    def interfaces(self) -> dict[str, tuple[str, ...]]:
        from pyroute2 import IPRoute
        from pyroute2.netlink import NETLINK_ROUTE

        with self._open(IPRoute, NETLINK_ROUTE) as ipr:
            names = {link["index"]: link.get_attr("IFLA_IFNAME") or str(link["index"]) for link in ipr.get_links()}
            out: dict[str, list[str]] = {name: [] for name in names.values()}
            for msg in ipr.get_addr():
                addr = msg.get_attr("IFA_LOCAL") or msg.get_attr("IFA_ADDRESS")
                if addr:
                    out.setdefault(names.get(msg["index"], str(msg["index"])), []).append(addr)
        return {k: tuple(v) for k, v in out.items()}

    def reply_tuple(self, family, proto, saddr, sport, daddr, dport):
        from pyroute2 import Conntrack
        from pyroute2.netlink import NETLINK_NETFILTER
        from pyroute2.netlink.exceptions import NetlinkError
        from pyroute2.netlink.nfnetlink.nfctsocket import NFCTAttrTuple

        ct = self._ct.get(family)
        if ct is None:
            ct = self._ct[family] = self._open(Conntrack, NETLINK_NETFILTER, nfgen_family=family)
        orig = NFCTAttrTuple(family=family, saddr=saddr, daddr=daddr, proto=proto, sport=sport, dport=dport)
        try:
            msg = ct.entry("get", tuple_orig=orig)
        except NetlinkError as err:
            if err.code == errno.ENOENT:
                return None
            raise
        if msg is None:
            return None
        reply = NFCTAttrTuple.from_netlink(family, msg.get_attr("CTA_TUPLE_REPLY"))
        return reply.saddr, reply.sport, reply.daddr, reply.dport

    def close(self) -> None:
        socks = list(self._ct.values())
        self._ct = {}
        for s in socks:
            try:
                s.close()
            except Exception:  # closing must never fail the caller
                log.debug("closing a netlink socket failed", exc_info=True)
