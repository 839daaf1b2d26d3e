"""Which protocols exist, how each is detected, and per-port overrides from the config.

Built-in protocols come in two forms: the original ones (HTTP/1, HTTP/2 + gRPC, PostgreSQL, MySQL,
Redis) whose span mappings live in :mod:`receiver.telemetry`, and those written against the public
API (:mod:`receiver.protocols.api`: Memcached, AMQP, DNS) that map themselves (``describe``).
Plug-ins from installed packages (entry-point group ``ebpf_receiver.protocols``, e.g. NATS) come
after the built-ins; their sessions run behind :func:`~receiver.protocols.api.guarded_session`,
so one that raises drops its connection from parsing (counted), never the agent.

Detection (:meth:`ProtocolRegistry.classify`) asks every protocol that serves the connection's
transport about the first bytes of a direction: the first ``YES`` wins; otherwise the ``MAYBE``
candidates are returned so the caller can wait for more evidence (the other direction's first
bytes) — a candidate whose default port the connection uses is taken at once.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

from receiver.protocols.api import (
    Detection,
    PluginFailures,
    PluginLoadError,
    ProtocolPlugin,
    guarded_detect,
    guarded_session,
    load_entry_point_plugins,
)
from receiver.protocols.base import Direction, ProtocolSession, Role

_YES, _MAYBE = Detection.YES, Detection.MAYBE


def _from_bool(detect: Callable[[bytes], bool]) -> Callable[[bytes, Direction], Detection]:
    def detection(data: bytes, direction: Direction | None = None) -> Detection:
        return _YES if detect(data) else Detection.NO

    return detection


@dataclass(frozen=True)
class ProtocolSpec:
    name: str  # as in config: receivers.ebpf.protocols.<name>
    detect: Callable[[bytes, Direction], Detection]
    new_session: Callable[..., ProtocolSession]  # keywords: max_buffer=, and kernel_role=/transport= if it takes them
    plugin: ProtocolPlugin | None = None  # written against receiver.protocols.api: describe() is its mapping
    guarded: bool = False  # a third-party plug-in: sessions and describe() are fenced
    transports: frozenset[str] = frozenset({"tcp", "unix"})
    default_ports: tuple[int, ...] = ()

    @classmethod
    def of_plugin(cls, plugin: ProtocolPlugin, guarded: bool) -> ProtocolSpec:
        return cls(plugin.name, plugin.detect, plugin.new_session, plugin, guarded, frozenset(plugin.transports),
                   plugin.default_ports)


def builtin_protocols() -> list[ProtocolSpec]:
    """Every protocol the agent ships, in detection order (most specific first)."""
    from receiver.protocols import amqp, dns, http1, http2, memcached, mysql, postgresql, redis
    from receiver.protocols.redis.detect import detection as redis_detection

    return [
        ProtocolSpec("http2", _from_bool(http2.detect), http2.Http2Session),
        ProtocolSpec("mysql", _from_bool(mysql.detect), mysql.MysqlSession),
        ProtocolSpec("postgresql", _from_bool(postgresql.detect), postgresql.PostgresSession),
        ProtocolSpec.of_plugin(amqp.PROTOCOL, guarded=False),
        ProtocolSpec.of_plugin(memcached.PROTOCOL, guarded=False),
        ProtocolSpec("redis", redis_detection, redis.RedisSession),
        ProtocolSpec.of_plugin(dns.PROTOCOL, guarded=False),
        ProtocolSpec("http", _from_bool(http1.detect), http1.Http1Session),
    ]


def installed_plugins(builtin_names: Sequence[str]) -> tuple[list[ProtocolSpec], list[PluginLoadError]]:
    """Plug-ins of installed packages (names taken by built-ins are refused)."""
    plugins, errors = load_entry_point_plugins()
    specs = []
    for plugin in plugins:
        if plugin.name in builtin_names:
            errors.append(PluginLoadError(plugin.name, f"protocol name {plugin.name!r} is a built-in protocol"))
        else:
            specs.append(ProtocolSpec.of_plugin(plugin, guarded=True))
    return specs, errors


@dataclass
class Classification:
    """What the first bytes of a direction said: a protocol, or candidates that need more."""

    protocol: str | None
    maybe: tuple[str, ...] = ()


@dataclass
class ProtocolRegistry:
    specs: Sequence[ProtocolSpec] | None = None
    port_overrides: Mapping[str, Sequence[int]] | None = None
    disabled: Sequence[str] = ()
    max_buffer: int = 65536
    failures: PluginFailures = field(default_factory=PluginFailures)

    def __post_init__(self) -> None:
        specs = list(self.specs if self.specs is not None else builtin_protocols())
        self._specs = [s for s in specs if s.name not in self.disabled]
        self._by_name = {s.name: s for s in self._specs}
        self._by_transport: dict[str, list[ProtocolSpec]] = {}
        for s in self._specs:
            for t in s.transports:
                self._by_transport.setdefault(t, []).append(s)
        self._ports: dict[int, str] = {}
        for name, ports in (self.port_overrides or {}).items():
            if name not in self._by_name:
                continue
            for p in ports:
                self._ports[int(p)] = name
        self._takes: dict[str, tuple[bool, bool]] = {}

    @property
    def names(self) -> list[str]:
        return [s.name for s in self._specs]

    def spec(self, name: str) -> ProtocolSpec | None:
        return self._by_name.get(name)

    def classify(self, data: bytes, direction: Direction, transport: str = "tcp", ports: tuple[int, int] = (0, 0)
                 ) -> Classification:
        """The protocol the first bytes of one direction belong to; see the module docstring."""
        if not data:
            return Classification(None)
        maybe: list[str] = []
        failures = self.failures
        for s in self._by_transport.get(transport, ()):
            verdict = guarded_detect(s.plugin, data, direction, failures) if s.guarded else s.detect(data, direction)
            if verdict is _YES:
                return Classification(s.name)
            if verdict is _MAYBE:
                if s.default_ports and (ports[0] in s.default_ports or ports[1] in s.default_ports):
                    return Classification(s.name)
                maybe.append(s.name)
        return Classification(None, tuple(maybe))

    def detect(self, data: bytes, tuple_=None, direction: Direction | None = None) -> str | None:
        """The protocol these first bytes surely belong to (``YES``), or None."""
        return self.classify(data, direction if direction is not None else Direction.EGRESS).protocol

    def protocol_for_ports(self, local_port: int, remote_port: int) -> str | None:
        if not self._ports:
            return None
        return self._ports.get(remote_port) or self._ports.get(local_port)

    def new_session(self, name: str, kernel_role: Role = Role.UNKNOWN, transport: str = "tcp") -> ProtocolSession:
        """A session for one connection; the hints (which side called connect/accept, the
        transport) go to factories that take them."""
        s = self._by_name[name]
        if s.guarded:
            return guarded_session(s.plugin, self.failures, max_buffer=self.max_buffer, kernel_role=kernel_role,
                                   transport=transport)
        takes = self._takes.get(name)
        if takes is None:
            try:
                params = inspect.signature(s.new_session).parameters
                takes = ("kernel_role" in params, "transport" in params)
            except (TypeError, ValueError):  # builtins without a signature: no hints
                takes = (False, False)
            self._takes[name] = takes
        kwargs: dict = {"max_buffer": self.max_buffer}
        if takes[0]:
            kwargs["kernel_role"] = kernel_role
        if takes[1]:
            kwargs["transport"] = transport
        return s.new_session(**kwargs)
