"""A recording TCP proxy on loopback, shared by the fixture recorders."""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading
import time

HOST = "127.0.0.1"
TIMEOUT = 20.0


class RecordingProxy:
    """TCP proxy on 127.0.0.1 that records each connection's chunks per direction, in order:
    client ↔ proxy ↔ server.  The fixture recorders (tests/fixtures/record_*.py) put it between
    a real client and a real server."""

    def __init__(self, upstream_port: int, timeout: float = TIMEOUT) -> None:
        self.upstream_port = upstream_port
        self.timeout = timeout
        self.listener = socket.create_server((HOST, 0))
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        self._lock = threading.Lock()
        self._finished: list[list[tuple[str, bytes]]] = []
        self._active = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)
        self._thread.start()

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self._active += 1
            threading.Thread(target=self._relay, args=(client,), daemon=True).start()

    def _relay(self, client: socket.socket) -> None:
        chunks: list[tuple[str, bytes]] = []
        upstream = None
        try:
            upstream = socket.create_connection((HOST, self.upstream_port), timeout=5)
            peers = {client: (upstream, "c2s"), upstream: (client, "s2c")}
            selector = selectors.DefaultSelector()
            for sock in peers:
                sock.setblocking(True)
                sock.settimeout(5)
                selector.register(sock, selectors.EVENT_READ)
            open_count = 2
            deadline = time.monotonic() + self.timeout
            while open_count and time.monotonic() < deadline:
                for key, _ in selector.select(timeout=0.5):
                    src = key.fileobj
                    dst, direction = peers[src]  # type: ignore[index]
                    try:
                        data = src.recv(65536)  # type: ignore[union-attr]
                    except OSError:
                        data = b""
                    if data:
                        chunks.append((direction, data))
                        with contextlib.suppress(OSError):
                            dst.sendall(data)
                    else:
                        selector.unregister(src)
                        open_count -= 1
                        with contextlib.suppress(OSError):
                            dst.shutdown(socket.SHUT_WR)
            selector.close()
        finally:
            client.close()
            if upstream is not None:
                upstream.close()
            with self._lock:
                self._finished.append(chunks)
                self._active -= 1

    def take(self, connections: int) -> list[list[tuple[str, bytes]]]:
        """Wait until ``connections`` connections have finished; return and forget them."""
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self._finished) >= connections and self._active == 0:
                    finished, self._finished = self._finished, []
                    break
            time.sleep(0.02)
        else:
            raise RuntimeError("proxy: connections did not finish in time")
        if len(finished) != connections:
            raise RuntimeError(f"expected {connections} connection(s), recorded {len(finished)}")
        return finished

    def take_one(self) -> list[tuple[str, bytes]]:
        """Wait until exactly one connection has finished; return it."""
        return self.take(1)[0]

    def close(self) -> None:
        self._stop.set()
        self.listener.close()
        self._thread.join(timeout=2)


# -- servers ---------------------------------------------------------------------------------


class UdpRecordingProxy:
    """UDP relay on 127.0.0.1 that records each client's datagrams and the server's answers, in
    order, per client address (one "connection" per client socket): client ↔ proxy ↔ server."""

    def __init__(self, upstream_port: int, timeout: float = TIMEOUT) -> None:
        self.upstream_port = upstream_port
        self.timeout = timeout
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((HOST, 0))
        self.port = self.sock.getsockname()[1]
        self._lock = threading.Lock()
        self._flows: dict[tuple, list[tuple[str, bytes]]] = {}  # client address → datagrams
        self._order: list[tuple] = []
        self._upstreams: dict[tuple, socket.socket] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        selector = selectors.DefaultSelector()
        selector.register(self.sock, selectors.EVENT_READ, None)
        while not self._stop.is_set():
            for key, _ in selector.select(timeout=0.2):
                src = key.fileobj
                try:
                    data, addr = src.recvfrom(65535)  # type: ignore[union-attr]
                except OSError:
                    continue
                with self._lock:
                    if key.data is None:  # from a client
                        up = self._upstreams.get(addr)
                        if up is None:
                            up = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                            up.connect((HOST, self.upstream_port))
                            self._upstreams[addr] = up
                            self._flows[addr] = []
                            self._order.append(addr)
                            selector.register(up, selectors.EVENT_READ, addr)
                        self._flows[addr].append(("c2s", data))
                        with contextlib.suppress(OSError):
                            up.send(data)
                    else:  # from the server, for client key.data
                        self._flows[key.data].append(("s2c", data))
                        with contextlib.suppress(OSError):
                            self.sock.sendto(data, key.data)
        selector.close()

    def take(self, flows: int, settle: float = 0.3) -> list[list[tuple[str, bytes]]]:
        """The datagrams of the first ``flows`` client sockets (after ``settle`` seconds of quiet),
        forgotten afterwards."""
        time.sleep(settle)
        with self._lock:
            if len(self._order) != flows:
                raise RuntimeError(f"expected {flows} client socket(s), saw {len(self._order)}")
            out = [list(self._flows[a]) for a in self._order]
            self._order.clear()
            self._flows.clear()
        return out

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()
        for up in self._upstreams.values():
            up.close()
