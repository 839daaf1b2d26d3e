"""Which protocols exist, how each is detected, and per-port overrides from the config."""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

from receiver.protocols.base import Direction, ProtocolSession, Role


@dataclass(frozen=True)
class ProtocolSpec:
    name: str  # as in config: receivers.ebpf.protocols.<name>
    detect: Callable[[bytes], bool]
    new_session: Callable[..., ProtocolSession]  # called with max_buffer=


def builtin_protocols() -> list[ProtocolSpec]:
    """Every protocol the agent ships, in detection order (most specific first)."""
    from receiver.protocols import http1, http2, mysql, postgresql, redis

    return [
        ProtocolSpec("http2", http2.detect, http2.Http2Session),
        ProtocolSpec("mysql", mysql.detect, mysql.MysqlSession),
        ProtocolSpec("postgresql", postgresql.detect, postgresql.PostgresSession),
        ProtocolSpec("redis", redis.detect, redis.RedisSession),
        ProtocolSpec("http", http1.detect, http1.Http1Session),
    ]


class ProtocolRegistry:
    def __init__(
        self,
        specs: Sequence[ProtocolSpec] | None = None,
        port_overrides: Mapping[str, Sequence[int]] | None = None,
        disabled: Sequence[str] = (),
        max_buffer: int = 65536,
    ) -> None:
        specs = list(specs if specs is not None else builtin_protocols())
        self._specs = [s for s in specs if s.name not in disabled]
        self._by_name = {s.name: s for s in self._specs}
        self._ports: dict[int, str] = {}
        for name, ports in (port_overrides or {}).items():
            if name not in self._by_name:
                continue
            for p in ports:
                self._ports[int(p)] = name
        self._max_buffer = max_buffer
        self._takes_role: dict[str, bool] = {}

    @property
    def names(self) -> list[str]:
        return [s.name for s in self._specs]

    def detect(self, data: bytes, tuple_=None, direction: Direction | None = None) -> str | None:
        if not data:
            return None
        for s in self._specs:
            if s.detect(data):
                return s.name
        return None

    def protocol_for_ports(self, local_port: int, remote_port: int) -> str | None:
        if not self._ports:
            return None
        return self._ports.get(remote_port) or self._ports.get(local_port)

    def new_session(self, name: str, kernel_role: Role = Role.UNKNOWN) -> ProtocolSession:
        """A session for one connection; sessions that accept a ``kernel_role`` hint (which
        side called connect/accept) get it."""
        factory = self._by_name[name].new_session
        takes_role = self._takes_role.get(name)
        if takes_role is None:
            try:
                takes_role = "kernel_role" in inspect.signature(factory).parameters
            except (TypeError, ValueError):  # builtins without a signature: no hint
                takes_role = False
            self._takes_role[name] = takes_role
        if takes_role:
            return factory(max_buffer=self._max_buffer, kernel_role=kernel_role)
        return factory(max_buffer=self._max_buffer)
