"""Two network namespaces joined twice: by a clean veth pair, and by an impaired link of our own.

This kernel has no ``sch_netem``, so the impairment is emulated in user space: each namespace
gets a tun device (L3, no packet info), and a thread of the test process moves packets
between the two tun fds — delaying them with a timed queue, dropping a fraction at random, and
dropping every packet to a *black-hole* address (which therefore never answers). All addresses
(10.214.x / 10.215.x) exist only inside these namespaces.

    client ns  tunc 10.214.N.1/24 ──[emulator: delay, loss, black hole .99]── tuns 10.214.N.2/24  server ns
               vethc 10.215.N.1/24 ─────────────── veth (clean) ──────────── veths 10.215.N.2/24

Delay and loss are set per direction (``c2s``: client to server). Cleanup is unconditional,
safe twice and bounded: the thread stops, fds close, namespaces (and with them every device)
go away.
"""

from __future__ import annotations

import fcntl
import heapq
import os
import random
import secrets
import select
import struct
import subprocess
import threading
import time
from dataclasses import dataclass, field

IP = "/usr/sbin/ip"
TUNSETIFF = 0x400454CA
IFF_TUN, IFF_NO_PI = 0x0001, 0x1000
MAX_QUEUED = 20000  # packets in flight inside the emulator; more are dropped and counted


@dataclass
class Impairment:
    delay_s: float = 0.0
    loss: float = 0.0  # fraction of packets dropped


@dataclass
class EmulatorStats:
    forwarded: int = 0
    lost: int = 0
    blackholed: int = 0
    overflow: int = 0


@dataclass
class ImpairedLink:
    c2s: Impairment = field(default_factory=Impairment)
    s2c: Impairment = field(default_factory=Impairment)
    tag: str = field(default_factory=lambda: secrets.token_hex(2))
    seed: int = 1
    stats: EmulatorStats = field(default_factory=EmulatorStats)

    def __post_init__(self) -> None:
        n = 1 + int(self.tag, 16) % 250
        self.client_ns, self.server_ns = f"erx-netc{self.tag}", f"erx-nets{self.tag}"
        self.client_tun_addr, self.server_tun_addr = f"10.214.{n}.1", f"10.214.{n}.2"
        self.blackhole_addr = f"10.214.{n}.99"
        self.client_veth_addr, self.server_veth_addr = f"10.215.{n}.1", f"10.215.{n}.2"
        self.client_veth, self.server_veth = f"erxvc{self.tag}", f"erxvs{self.tag}"
        self._fds: list[int] = []
        self._namespaces: list[str] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._rng = random.Random(self.seed)
        self._lock = threading.Lock()

    # -- building ----------------------------------------------------------------------------

    def start(self) -> "ImpairedLink":
        try:
            self._build()
        except BaseException:
            self.stop()
            raise
        return self

    def _ip(self, *args: str) -> None:
        subprocess.run([IP, *args], check=True, capture_output=True, timeout=10)

    def _build(self) -> None:
        for ns in (self.client_ns, self.server_ns):
            self._ip("netns", "add", ns)
            self._namespaces.append(ns)
            self._ip("-n", ns, "link", "set", "lo", "up")
        tunc, tuns = f"erxtc{self.tag}", f"erxts{self.tag}"
        for name, ns, addr in ((tunc, self.client_ns, self.client_tun_addr), (tuns, self.server_ns, self.server_tun_addr)):
            fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
            self._fds.append(fd)
            fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
            self._ip("link", "set", name, "netns", ns)
            self._ip("-n", ns, "addr", "add", f"{addr}/24", "dev", name)
            self._ip("-n", ns, "link", "set", name, "up")
        vc, vs = self.client_veth, self.server_veth
        self._ip("link", "add", vc, "netns", self.client_ns, "type", "veth", "peer", "name", vs, "netns", self.server_ns)
        for name, ns, addr in ((vc, self.client_ns, self.client_veth_addr), (vs, self.server_ns, self.server_veth_addr)):
            self._ip("-n", ns, "addr", "add", f"{addr}/24", "dev", name)
            self._ip("-n", ns, "link", "set", name, "up")
        # Give up on a silent peer after 1 + 2 s instead of two minutes (this namespace only).
        self.run(self.client_ns, "sh", "-c", "echo 1 > /proc/sys/net/ipv4/tcp_syn_retries")
        self._thread = threading.Thread(target=self._forward, name="impaired-link", daemon=True)
        self._thread.start()

    def set_impairment(self, c2s: Impairment, s2c: Impairment) -> None:
        with self._lock:
            self.c2s, self.s2c = c2s, s2c

    # -- the emulator ------------------------------------------------------------------------

    def _forward(self) -> None:
        client_fd, server_fd = self._fds
        queue: list[tuple[float, int, int, bytes]] = []  # (due, seq, out fd, packet)
        seq = 0
        blackhole = bytes(int(x) for x in self.blackhole_addr.split("."))
        while not self._stop.is_set():
            now = time.monotonic()
            while queue and queue[0][0] <= now:
                _, _, out, pkt = heapq.heappop(queue)
                try:
                    os.write(out, pkt)
                    self.stats.forwarded += 1
                except OSError:
                    self.stats.overflow += 1
            timeout = min(0.05, max(0.0, queue[0][0] - now)) if queue else 0.05
            readable, _, _ = select.select([client_fd, server_fd], [], [], timeout)
            for fd in readable:
                for _ in range(64):  # bounded burst per wakeup
                    try:
                        pkt = os.read(fd, 65536)
                    except BlockingIOError:
                        break
                    with self._lock:
                        imp = self.c2s if fd == client_fd else self.s2c
                    if fd == client_fd and len(pkt) >= 20 and pkt[16:20] == blackhole:
                        self.stats.blackholed += 1
                        continue
                    if imp.loss and self._rng.random() < imp.loss:
                        self.stats.lost += 1
                        continue
                    if len(queue) >= MAX_QUEUED:
                        self.stats.overflow += 1
                        continue
                    out = server_fd if fd == client_fd else client_fd
                    seq += 1
                    heapq.heappush(queue, (time.monotonic() + imp.delay_s, seq, out, pkt))

    # -- running things in the namespaces ----------------------------------------------------

    def run(self, ns: str, *argv: str, timeout: float = 30) -> subprocess.CompletedProcess:
        return subprocess.run([IP, "netns", "exec", ns, *argv], capture_output=True, timeout=timeout, check=True)

    def popen(self, ns: str, *argv: str, **kw) -> subprocess.Popen:
        # `ip netns exec` execs the command: the child's pid is the command's pid.
        return subprocess.Popen([IP, "netns", "exec", ns, *argv], **kw)

    def ping_rtt_s(self, count: int = 10) -> float:
        """Average RTT from the client to the server over the impaired link, measured by ping."""
        out = self.run(self.client_ns, "ping", "-n", "-q", "-c", str(count), "-i", "0.2", "-W", "2",
                       self.server_tun_addr, timeout=30).stdout.decode()
        for line in out.splitlines():
            if line.startswith("rtt") or line.startswith("round-trip"):
                return float(line.split("=")[1].split("/")[1]) / 1000
        raise AssertionError(f"ping printed no RTT summary:\n{out}")

    # -- teardown ----------------------------------------------------------------------------

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        for fd in self._fds:
            os.close(fd)
        self._fds = []
        for ns in self._namespaces:
            subprocess.run([IP, "netns", "del", ns], capture_output=True, timeout=10)
        self._namespaces = []

    def __enter__(self) -> "ImpairedLink":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
