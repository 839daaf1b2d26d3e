"""Client and server of the network-metrics test, run inside the test's namespaces.

    net_peer.py server PORT NCONNS   # serve NCONNS connections, then print totals as JSON
    net_peer.py client JSON          # the traffic and the failing connects, then a JSON report

Protocol: the client sends ``req`` bytes, the server answers ``resp`` bytes, ``rounds`` times per
connection; then the client shuts its side down and the server closes. Both count the bytes
their syscalls moved, which is what the agent's flow metrics are compared with.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time


def recv_exactly(sock: socket.socket, n: int) -> int:
    got = 0
    while got < n:
        chunk = sock.recv(min(65536, n - got))
        if not chunk:
            break
        got += len(chunk)
    return got


def serve(port: int, nconns: int) -> None:
    lst = socket.socket()
    lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lst.bind(("0.0.0.0", port))
    lst.listen(64)
    print("ready", flush=True)
    totals: dict[str, dict[str, int]] = {}
    lock = threading.Lock()

    def handle(conn: socket.socket) -> None:
        local = conn.getsockname()[0]
        sent = received = 0
        with conn:
            while True:
                head = conn.recv(8)  # request: 4 bytes req length, 4 bytes resp length
                if len(head) < 8:
                    received += len(head)
                    break
                received += 8
                req, resp = int.from_bytes(head[:4], "big"), int.from_bytes(head[4:], "big")
                received += recv_exactly(conn, req)
                conn.sendall(b"s" * resp)
                sent += resp
        with lock:
            t = totals.setdefault(local, {"sent": 0, "received": 0, "conns": 0})
            t["sent"] += sent
            t["received"] += received
            t["conns"] += 1

    threads = []
    lst.settimeout(60)
    for _ in range(nconns):
        conn, _ = lst.accept()
        th = threading.Thread(target=handle, args=(conn,))
        th.start()
        threads.append(th)
    for th in threads:
        th.join(60)
    print(json.dumps({"pid": os.getpid(), "totals": totals}), flush=True)


def client(params: dict) -> None:
    report: dict = {"pid": os.getpid(), "targets": []}

    def one_conn(t: dict, out: dict) -> None:
        s = socket.create_connection((t["addr"], t["port"]), timeout=30)
        sent = received = 0
        with s:
            for _ in range(t["rounds"]):
                s.sendall(t["req"].to_bytes(4, "big") + t["resp"].to_bytes(4, "big") + b"c" * t["req"])
                sent += 8 + t["req"]
                received += recv_exactly(s, t["resp"])
                time.sleep(t.get("pause_s", 0))
            s.shutdown(socket.SHUT_WR)
            while True:  # until the server's FIN: everything it sent was received
                chunk = s.recv(65536)
                if not chunk:
                    break
                received += len(chunk)
        out["sent"] += sent
        out["received"] += received

    for t in params.get("targets", []):
        out = {"addr": t["addr"], "port": t["port"], "sent": 0, "received": 0}
        threads = [threading.Thread(target=one_conn, args=(t, out)) for _ in range(t["conns"])]
        for th in threads:
            th.start()
        for th in threads:
            th.join(120)
        report["targets"].append(out)
    for name in ("refused", "timeout"):
        if name not in params:
            continue
        addr, port = params[name]
        s = socket.socket()
        start = time.monotonic()
        err = s.connect_ex((addr, port))  # blocking: returns the errno
        report[name] = {"errno": err, "seconds": time.monotonic() - start}
        s.close()
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "server":
        serve(int(sys.argv[2]), int(sys.argv[3]))
    else:
        client(json.loads(sys.argv[2]))
