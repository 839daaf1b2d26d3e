"""Real memcached, nats-server, rabbitmq-server and dnsmasq (Debian packages) started on loopback
on free ports, each in its own temporary directory, and stopped — for the fixture recorders and
the end-to-end drivers (:mod:`tests.support.protocol_drivers`).

Each server is a context manager: ``with MemcachedServer(tmp) as server: server.port``.  Start-up
waits until the server answers (bounded); stop terminates it, then kills it after a grace period.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

from tests.support.ports import free_port, wait_for_port

HOST = "127.0.0.1"
MEMCACHED = shutil.which("memcached") or "/usr/bin/memcached"
NATS_SERVER = shutil.which("nats-server") or "/usr/sbin/nats-server"
RABBITMQ_BIN = Path("/usr/lib/rabbitmq/bin")
DNSMASQ = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"


def _stop(proc: subprocess.Popen | None, grace: float = 10.0) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


class _Server:
    def __init__(self, workdir: Path) -> None:
        self.workdir = Path(workdir)
        self.port = 0
        self.proc: subprocess.Popen | None = None

    def __enter__(self):
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        _stop(self.proc)
        self.proc = None

    def _check_alive(self, what: str) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {self.proc.returncode}; see {self.workdir}")


class MemcachedServer(_Server):
    """memcached on 127.0.0.1 (TCP only, 64 MiB, items up to ``item_size_max``)."""

    def __init__(self, workdir: Path, item_size_max_kb: int = 1024) -> None:
        super().__init__(workdir)
        self.item_size_max_kb = item_size_max_kb

    def start(self) -> None:
        self.port = free_port()
        log = open(self.workdir / "memcached.log", "wb")
        self.proc = subprocess.Popen(
            [MEMCACHED, "-l", HOST, "-p", str(self.port), "-U", "0", "-m", "64", "-u", "nobody", "-t", "2",
             "-I", f"{self.item_size_max_kb}k"],
            stdout=log, stderr=subprocess.STDOUT,
        )
        log.close()
        _wait_for(self, "memcached")

    @property
    def version(self) -> str:
        out = subprocess.run([MEMCACHED, "-V"], capture_output=True, text=True, timeout=10).stdout
        return out.strip()


class NatsServer(_Server):
    """nats-server on 127.0.0.1, no monitoring port, a config file in the work dir
    (``extra_config`` is appended to it: accounts, authorization...)."""

    def __init__(self, workdir: Path, extra_config: str = "") -> None:
        super().__init__(workdir)
        self.extra_config = extra_config

    def start(self) -> None:
        self.port = free_port()
        conf = self.workdir / "nats.conf"
        conf.write_text(f'listen: "{HOST}:{self.port}"\nmax_payload: 1048576\n{self.extra_config}\n')
        log = open(self.workdir / "nats.log", "wb")
        self.proc = subprocess.Popen([NATS_SERVER, "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT)
        log.close()
        _wait_for(self, "nats-server")

    @property
    def version(self) -> str:
        return subprocess.run([NATS_SERVER, "--version"], capture_output=True, text=True, timeout=10).stdout.strip()


class RabbitMqServer(_Server):
    """rabbitmq-server as a node of its own (own node name, AMQP, distribution and epmd ports, data
    and log dirs, Erlang cookie) listening on 127.0.0.1; user ``guest``/``guest``.  Starting takes a
    few seconds (the Erlang VM boots)."""

    START_TIMEOUT = 90.0

    def start(self) -> None:
        self.port = free_port()
        dist_port = free_port()
        self.epmd_port = free_port()  # an epmd of its own, stopped with the node
        self.node = f"erx{self.port}@localhost"
        base = self.workdir / "rabbitmq"
        for d in ("mnesia", "log", "home"):
            (base / d).mkdir(parents=True, exist_ok=True)
        conf = base / "rabbitmq.conf"
        conf.write_text(
            f"listeners.tcp.1 = {HOST}:{self.port}\nloopback_users = none\n"
            "management.tcp.port = 0\nlog.console = false\nlog.file.level = warning\n"
        )
        (base / "enabled_plugins").write_text("[].\n")
        cookie = base / "home" / ".erlang.cookie"
        cookie.write_text("ERXTESTCOOKIE" + str(self.port))
        cookie.chmod(0o400)
        self.env = {
            **os.environ,
            "HOME": str(base / "home"),
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": HOST,
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(dist_port),
            "RABBITMQ_CONFIG_FILE": str(conf),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(base / "log"),
            "RABBITMQ_PID_FILE": str(base / "rabbitmq.pid"),
            "ERL_EPMD_ADDRESS": HOST,
            "ERL_EPMD_PORT": str(self.epmd_port),
        }
        log = open(base / "server.out", "wb")
        self.proc = subprocess.Popen(
            [str(RABBITMQ_BIN / "rabbitmq-server")], env=self.env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + self.START_TIMEOUT
        while True:
            self._check_alive("rabbitmq-server")
            try:
                with socket.create_connection((HOST, self.port), timeout=1) as s:
                    s.sendall(b"AMQP\x00\x00\x09\x01")
                    s.settimeout(5)
                    if s.recv(1)[:1] == b"\x01":  # Connection.Start: the broker is ready
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"rabbitmq-server did not start in {self.START_TIMEOUT}s; see {base}")
            time.sleep(0.5)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            subprocess.run([str(RABBITMQ_BIN / "rabbitmqctl"), "-n", self.node, "stop"], env=self.env,
                           capture_output=True, timeout=60)
        _stop(self.proc, grace=30)
        self.proc = None
        if getattr(self, "epmd_port", None):
            epmd = shutil.which("epmd") or "/usr/bin/epmd"
            subprocess.run([epmd, "-port", str(self.epmd_port), "-kill"], env=self.env, capture_output=True,
                           timeout=10)

    @property
    def version(self) -> str:
        out = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "rabbitmq-server"], capture_output=True,
                             text=True, timeout=10).stdout
        return f"rabbitmq-server {out.strip()}"


class DnsmasqServer(_Server):
    """dnsmasq as an authoritative-only resolver on 127.0.0.1 (UDP and TCP on one free port): no
    upstream, no /etc/hosts, no resolv.conf.  ``records`` maps names to IPv4 addresses (A), and
    every name also gets ``::1`` (AAAA) and a TXT record; ``txt_records`` adds TXT records; names
    under ``.test`` it does not know are NXDOMAIN (``local=/test/``), others REFUSED (no
    upstream)."""

    def __init__(
        self, workdir: Path, records: dict[str, str] | None = None, txt_records: dict[str, list[str]] | None = None
    ) -> None:
        super().__init__(workdir)
        self.records = records or {"alpha.test": "10.1.0.1", "beta.test": "10.1.0.2", "gamma.test": "10.1.0.3"}
        self.txt_records = txt_records or {}

    def start(self) -> None:
        self.port = _free_udp_and_tcp_port()
        conf = self.workdir / "dnsmasq.conf"
        lines = [
            f"port={self.port}", f"listen-address={HOST}", "bind-interfaces", "no-resolv", "no-hosts",
            "no-poll", "local=/test/", "log-facility=-", "cache-size=0", "user=root",
            f"pid-file={self.workdir / 'dnsmasq.pid'}",
        ]
        for name, address in self.records.items():
            lines += [f"address=/{name}/{address}", f"address=/{name}/::1", f'txt-record={name},"erx"']
        for name, texts in self.txt_records.items():
            lines += [f'txt-record={name},"{text}"' for text in texts]
        conf.write_text("\n".join(lines) + "\n")
        log = open(self.workdir / "dnsmasq.log", "wb")
        self.proc = subprocess.Popen([DNSMASQ, "-k", "-C", str(conf)], stdout=log, stderr=subprocess.STDOUT)
        log.close()
        _wait_for(self, "dnsmasq")

    @property
    def version(self) -> str:
        return subprocess.run([DNSMASQ, "--version"], capture_output=True, text=True, timeout=10).stdout.split("\n")[0]


def _wait_for(server: _Server, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        server._check_alive(what)
        try:
            wait_for_port(server.port, timeout=0.5)
            return
        except TimeoutError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what} does not listen on {HOST}:{server.port}; see {server.workdir}") from None


def _free_udp_and_tcp_port() -> int:
    for _ in range(50):
        port = free_port()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            try:
                u.bind((HOST, port))
            except OSError:
                continue
        return port
    raise RuntimeError("no loopback port free for both UDP and TCP")
