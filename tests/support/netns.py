"""Two 'hosts' for tests: network namespaces joined by a veth pair (pyroute2), and a DNAT rule
from a virtual IP to the server, living in the client's namespace.

Every address is from 10.213.0.0/16 and exists only inside these namespaces; the virtual IP
is routed only inside the client's namespace.  Nothing here touches the caller's namespace
beyond creating and removing the two namespaces (``/run/netns/<name>``).  Cleanup is
unconditional (processes, rules, namespaces), safe twice, and bounded in time.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import time
from dataclasses import dataclass, field

from pyroute2 import NetNS, netns

IP = "/usr/sbin/ip"
IPTABLES = "/usr/sbin/iptables"


@dataclass
class TwoHosts:
    tag: str = field(default_factory=lambda: secrets.token_hex(3))  # unique names per run
    vip: str = "10.213.99.1"
    vip_port: int = 80
    server_port: int = 8080
    client_ns: str = ""
    server_ns: str = ""
    client_addr: str = ""
    server_addr: str = ""
    _procs: list = field(default_factory=list)
    _rules: list = field(default_factory=list)
    _created: list = field(default_factory=list)

    def __post_init__(self) -> None:
        subnet = 100 + int(self.tag, 16) % 100  # 10.213.100-199.0/30; the VIP is 10.213.99.x
        self.client_ns = self.client_ns or f"erx-nat-c{self.tag}"
        self.server_ns = self.server_ns or f"erx-nat-s{self.tag}"
        self.client_addr = self.client_addr or f"10.213.{subnet}.1"
        self.server_addr = self.server_addr or f"10.213.{subnet}.2"

    # -- building ------------------------------------------------------------------------------

    def start(self) -> "TwoHosts":
        try:
            self._build()
        except BaseException:
            self.stop()
            raise
        return self

    def _build(self) -> None:
        for name in (self.client_ns, self.server_ns):
            netns.create(name)
            self._created.append(name)
        cif, sif = f"erxc{self.tag}", f"erxs{self.tag}"
        # The pair is created inside the client's namespace, its peer moved to the server's.
        with NetNS(self.client_ns) as ns:
            ns.link("add", ifname=cif, kind="veth", peer={"ifname": sif, "net_ns_fd": self.server_ns})
        for name, ifname, addr in ((self.client_ns, cif, self.client_addr), (self.server_ns, sif, self.server_addr)):
            with NetNS(name) as ns:
                idx = ns.link_lookup(ifname=ifname)[0]
                ns.addr("add", index=idx, address=addr, prefixlen=30)
                ns.link("set", index=idx, state="up")
                ns.link("set", index=ns.link_lookup(ifname="lo")[0], state="up")
        with NetNS(self.client_ns) as ns:  # the virtual IP: routed via the veth, client side only
            ns.route("add", dst=f"{self.vip}/32", gateway=self.server_addr)

    def add_dnat(self) -> None:
        """OUTPUT DNAT in the client's namespace: vip:vip_port -> server_addr:server_port."""
        rule = ["-t", "nat", "-A", "OUTPUT", "-d", self.vip, "-p", "tcp", "--dport", str(self.vip_port),
                "-j", "DNAT", "--to-destination", f"{self.server_addr}:{self.server_port}"]
        self.run(self.client_ns, IPTABLES, "-w", "5", *rule, check=True)
        self._rules.append(rule)

    # -- running things ------------------------------------------------------------------------

    def run(self, ns: str, *argv: str, timeout: float = 20, **kw) -> subprocess.CompletedProcess:
        kw.setdefault("capture_output", True)
        kw.setdefault("text", True)
        return subprocess.run([IP, "netns", "exec", ns, *argv], timeout=timeout, **kw)

    def popen(self, ns: str, *argv: str, **kw) -> subprocess.Popen:
        kw.setdefault("stdout", subprocess.DEVNULL)
        kw.setdefault("stderr", subprocess.DEVNULL)
        p = subprocess.Popen([IP, "netns", "exec", ns, *argv], start_new_session=True, **kw)
        self._procs.append(p)
        return p

    def wait_for_server(self, timeout: float = 10.0) -> None:
        """Until the server answers on its real address (from the client's namespace)."""
        deadline = time.monotonic() + timeout
        url = f"http://{self.server_addr}:{self.server_port}/"
        while True:
            r = self.run(self.client_ns, "curl", "-s", "-o", "/dev/null", "-m", "1", "-w", "%{http_code}", url)
            if r.stdout.strip() not in ("", "000"):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing answers at {url} in {self.server_ns}")
            time.sleep(0.1)

    # -- cleanup -------------------------------------------------------------------------------

    def stop(self) -> None:
        for p in self._procs:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                    p.wait(5)
                except (ProcessLookupError, subprocess.TimeoutExpired):
                    try:
                        os.killpg(p.pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                    p.wait(5)
        self._procs = []
        for rule in self._rules:
            delete = ["-D" if a == "-A" else a for a in rule]
            self.run(self.client_ns, IPTABLES, "-w", "5", *delete, timeout=10)
        self._rules = []
        for name in self._created:  # the veth pair and the route go with the namespaces
            try:
                netns.remove(name)
            except OSError:
                pass
        self._created = []

    def __enter__(self) -> "TwoHosts":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
