"""The agent's own sockets, for the kernel's ``erx_agent_endpoints`` (bpf/src/lib/self.h).

Connections of other processes whose remote end is one of the agent's sockets — the collector's
side of an export, a scraper of ``/metrics``, a health check — are not traced, and a process that
accepted a connection from the agent does not have its stdout/stderr captured as logs.  The kernel
registers the agent's TCP sockets as they connect or listen; the ones opened before the programs
were attached (the exporters start before the receiver) are seeded from ``/proc`` here: the
socket inodes among ``/proc/<agent>/fd`` and their local endpoints in
``/proc/<agent>/net/tcp{,6}``.
"""

from __future__ import annotations

import os
import socket
import struct
from dataclasses import dataclass
from typing import Protocol

TCP_LISTEN = 0x0A  # /proc/net/tcp "st" column
TCP_CLOSE = 0x07


@dataclass(frozen=True)
class Endpoint:
    family: int  # AF_INET, AF_INET6
    addr: bytes  # 4 or 16 bytes, network order
    port: int
    listener: bool


class MapWriter(Protocol):
    abi: object

    def map_update(self, name: str, key: bytes, value: bytes) -> bool: ...


def _hex_addr(text: str) -> bytes:
    """/proc/net/tcp address: 32-bit words in host byte order, as hex."""
    raw = bytes.fromhex(text)
    return b"".join(struct.pack("=I", struct.unpack(">I", raw[i : i + 4])[0]) for i in range(0, len(raw), 4))


def agent_endpoints(pid: int | str = "self", proc_root: str = "/proc") -> list[Endpoint]:
    """The local endpoints of the TCP sockets process ``pid`` holds."""
    inodes: set[str] = set()
    fd_dir = f"{proc_root}/{pid}/fd"
    try:
        names = os.listdir(fd_dir)
    except OSError:
        return []
    for name in names:
        try:
            link = os.readlink(f"{fd_dir}/{name}")
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    out: list[Endpoint] = []
    for table, family in (("tcp", socket.AF_INET), ("tcp6", socket.AF_INET6)):
        try:
            with open(f"{proc_root}/{pid}/net/{table}") as f:
                lines = f.read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            if len(cols) < 10 or cols[9] not in inodes:
                continue
            addr_hex, port_hex = cols[1].split(":")
            state = int(cols[3], 16)
            if state == TCP_CLOSE:
                continue
            out.append(Endpoint(family, _hex_addr(addr_hex), int(port_hex, 16), state == TCP_LISTEN))
    return out


def endpoint_key(abi, ep: Endpoint, netns: int) -> bytes:
    """``struct erx_endpoint_key`` as the kernel builds it (IPv4-mapped IPv6 keyed as IPv4)."""
    family, addr = ep.family, ep.addr
    if family == socket.AF_INET6 and addr[:10] == bytes(10) and addr[10:12] == b"\xff\xff":
        family, addr = socket.AF_INET, addr[12:]
    k = abi.ffi.new("struct erx_endpoint_key *")
    padded = addr + bytes(16 - len(addr))
    for i in range(16):
        k.addr[i] = padded[i]
    k.netns = netns
    k.port = ep.port
    k.family = family
    return bytes(abi.ffi.buffer(k))


def seed_agent_endpoints(loader: MapWriter, pid: int | str = "self", proc_root: str = "/proc") -> int:
    """Register the agent's existing TCP sockets in ``erx_agent_endpoints``; returns how many."""
    abi = loader.abi
    try:
        netns = os.stat(f"{proc_root}/{pid}/ns/net").st_ino
    except OSError:
        return 0
    n = 0
    for ep in agent_endpoints(pid, proc_root):
        # a client found here has no recorded peer: matched by its local endpoint alone
        kind = abi.const("ERX_AGENT_LISTENER" if ep.listener else "ERX_AGENT_CLIENT_SEEDED")
        if loader.map_update("erx_agent_endpoints", endpoint_key(abi, ep, netns), bytes([kind])):
            n += 1
    return n
