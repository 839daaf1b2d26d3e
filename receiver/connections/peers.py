"""Local peers: is the other end of a connection a socket this agent also traces (same host)?

Every tracked connection with a local port registers its endpoints here; a transaction's
connection then finds its mirror (the peer's endpoints, swapped).  Keys are (local addr, local
port, remote addr, remote port, scope): remote is the NAT'd destination when there is one, scope
the network namespace inode for loopback addresses (0: not loopback, or namespace unknown), so
two namespaces' ``127.0.0.1`` connections never match.  Endpoints of connections closed lately
stay known for a grace period: a peer often closes before the other side's last bytes are
processed (same batch), and must still count as local then.  Bounded by ``max_entries``.

A connecting client is known from its connect, but an accepted connection only from its first
record, which can come after the client's whole call was read (a paired request's record is sent
once its response is out; a TLS server's at its library call).  So a client whose other end is
not known (yet) gets a *maybe* scope — its namespace's on loopback, else 0 — and its call is
offered, keyed like a known peer's, to a server side that may come (see
``receiver.telemetry.linking``, where such an offer ends with the groups' hold time).  Whether an
address is this host's cannot be told for sure (NAT, namespaces created since), so every such
client is offered: one link entry per call for the hold time, within the links' bound.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING

from receiver.connections.netns import is_loopback
from receiver.model.endpoints import Role, Tuple

_CLIENT = int(Role.CLIENT)

if TYPE_CHECKING:
    from receiver.connections.tracker import Connection


class LocalPeers:
    def __init__(self, max_entries: int = 65536, closed_grace_ns: int = 5 * 10**9) -> None:
        self._max = max_entries
        self._by_endpoints: dict[tuple, int] = {}
        self._loopback_scopes: OrderedDict[int, None] = OrderedDict()  # namespaces seen on loopback
        self._closed_endpoints: OrderedDict[tuple, int] = OrderedDict()
        self._closed_grace_ns = closed_grace_ns
        self._version = 0  # bumped whenever the tables may change: cached scopes are stale

    def add(self, c: Connection, scope: int) -> None:
        """Register the endpoints of a new connection (``scope``: its namespace, if loopback)."""
        self._version += 1
        t = c.tuple
        addr, port = c.nat_peer or (t.remote_addr, t.remote_port)
        key = c.endpoint_key = (t.local_addr, t.local_port, addr, port, scope)
        self._by_endpoints[key] = c.conn_id
        self._closed_endpoints.pop(key, None)
        if scope:
            self._loopback_scopes[scope] = None
            self._loopback_scopes.move_to_end(scope)
            if len(self._loopback_scopes) > 256:
                self._loopback_scopes.popitem(last=False)

    def remove(self, c: Connection) -> None:
        """The connection is gone: its endpoints stay known for the grace period."""
        self._version += 1
        key = c.endpoint_key
        if self._by_endpoints.get(key) == c.conn_id:
            del self._by_endpoints[key]
            closed = self._closed_endpoints
            closed[key] = c.last_seen_ns
            closed.move_to_end(key)
            while closed and (
                len(closed) > self._max or next(iter(closed.values())) < c.last_seen_ns - self._closed_grace_ns
            ):
                closed.popitem(last=False)

    def has_local_peer(self, t: Tuple, netns: int = 0, nat_peer: tuple[str, int] | None = None) -> bool:
        """Is the other end of this connection a socket we also trace (same host)?"""
        return self._peer_scope(t, netns, nat_peer) is not None

    def _peer_scope(self, t: Tuple, netns: int, nat_peer: tuple[str, int] | None) -> int | None:
        """None: no traced local peer; else the scope both ends share (see ``_by_endpoints``)."""
        if not t.remote_port:
            return None
        addr, port = nat_peer or (t.remote_addr, t.remote_port)
        mirror = (addr, port, t.local_addr, t.local_port)
        known = self._known_endpoint
        if not is_loopback(t.local_addr):
            return 0 if known(mirror + (0,)) else None
        if netns:
            return netns if known(mirror + (netns,)) or known(mirror + (0,)) else None
        if known(mirror + (0,)):
            return 0
        for scope in reversed(self._loopback_scopes):  # our namespace unknown: the peer's
            if known(mirror + (scope,)):
                return scope
        return None

    def _known_endpoint(self, key: tuple) -> bool:
        return key in self._by_endpoints or key in self._closed_endpoints

    def scope_of(self, c: Connection) -> int | None:
        """None: the other end of ``c`` is no traced local socket; else the scope both ends share
        (0, or the namespace of loopback peers).  Kept per connection until the endpoint tables
        change.  When None, ``c.peer_maybe_scope`` is the scope a client would share with a local
        server end not announced yet (None: no remote port, or not a client)."""
        if c.peer_scope_version == self._version:
            return c.peer_scope
        return self._scope_of(c)

    def _scope_of(self, c: Connection) -> int | None:
        """``_peer_scope`` of a connection, worked out with the keys it looks up first made once
        (``_new``), and kept (``scope_of`` reuses it until the endpoint tables change)."""
        version = self._version
        mirror = c.mirror
        by, closed = self._by_endpoints, self._closed_endpoints
        if mirror is None:  # no remote port: no peer
            scope = None
        elif not c.loopback:
            scope = 0 if mirror in by or mirror in closed else None
        elif c.mirror_ns is not None:
            mirror_ns = c.mirror_ns
            scope = c.netns if (mirror_ns in by or mirror_ns in closed or mirror in by or mirror in closed) else None
        else:
            scope = self._peer_scope(c.tuple, c.netns, c.nat_peer)
        maybe = None
        if scope is None and mirror is not None and c.kernel_role == _CLIENT:
            # The server end may be local and not announced yet: the scope it would share.
            # Any address may be local — a NAT'd destination, another namespace's veth
            # address seen for the first time — so every such client is offered; an offer
            # costs one link entry for the hold time.
            maybe = c.netns if c.loopback else 0
        c.peer_maybe_scope = maybe
        c.peer_scope = scope
        c.peer_scope_version = version
        return scope
