"""Transactions: what protocol parsers hand to telemetry (a neutral type both import)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from receiver.model.endpoints import Role, Tuple

@dataclass(slots=True)
class Transaction:
    """One request paired with its response, as seen from one process.

    ``role`` says which side the traced process played: CLIENT if it sent the request.
    ``request``/``response`` are the protocol's own frozen message dataclasses.
    Timestamps are kernel monotonic nanoseconds: request start = first byte of the request seen,
    response end = last byte of the response seen.  Sizes are wire sizes (from lengths on the
    wire, not from the number of bytes captured).
    """

    protocol: str
    role: Role
    request: Any
    response: Any | None
    start_ns: int
    end_ns: int
    request_size: int = 0
    response_size: int = 0
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class TrackedTransaction:
    """A transaction with the connection facts telemetry needs."""

    transaction: Transaction
    pid: int
    tid: int  # thread that handled the request (server: read it; client: wrote it)
    conn_id: int
    tuple: Tuple
    cgroup_id: int
    call_index: int = 0  # position of this transaction on its connection (0, 1, ...)
    peer_local: bool = False  # the other end of the connection is a traced local socket
    tls: bool = False  # the bytes were TLS plaintext (read at the TLS library)
    nat_peer: tuple[str, int] | None = None  # client: the backend a DNAT'd destination reached
    link_scope: int = 0  # loopback peer: the namespace both ends share (0: not loopback / unknown)
    peer_maybe: bool = False  # client, no known peer: its server end may be local, not announced yet
