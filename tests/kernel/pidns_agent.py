"""An agent in its own pid namespace, for test_pidns.py (run under `unshare --pid --fork`).

    python pidns_agent.py '<json: {"pidns_only": bool}>'

Loads the BPF object with the agent's pid and pid namespace as the receiver does, then moves
marked bytes over loopback TCP from itself ("inner-agent"), from a child in its namespace
("inner-child") and from a child it excluded through erx_excluded_pids by its pid in this
namespace ("inner-excluded").  Prints READY, waits for a line on stdin (the test moves
"outer-child" bytes from the initial namespace meanwhile), polls the ring buffer and prints
one JSON report: the markers it saw and its pid-namespace facts.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

from receiver.bpf.loader import BpfLoader, LoaderKnobs, agent_pid_namespace, default_object_path
from receiver.capture.events import DataEvent, EventDecoder
from receiver.capture.ringbuf import RingBufferReader

MARKERS = (b"inner-agent", b"inner-child", b"inner-excluded", b"outer-child")


def exchange(marker: bytes) -> None:
    """marker bytes over a loopback TCP connection, both ends in this process."""
    lst = socket.create_server(("127.0.0.1", 0))
    with socket.create_connection(lst.getsockname()) as cli:
        srv, _ = lst.accept()
        with srv:
            cli.sendall(marker)
            srv.recv(100)
    lst.close()


def child(marker: str, wait: bool) -> subprocess.Popen:
    code = (
        "import sys; sys.path.insert(0, %r); from pidns_agent import exchange; "
        "%s exchange(%r.encode())" % (os.path.dirname(__file__), "sys.stdin.readline();" if wait else "", marker)
    )
    return subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE if wait else None)


def main() -> int:
    params = json.loads(sys.argv[1])
    dev, ino = agent_pid_namespace()
    knobs = LoaderKnobs(agent_tgid=os.getpid(), agent_pidns=(dev, ino), pidns_only=params["pidns_only"],
                        filter_pids=True)
    loader = BpfLoader(default_object_path(), knobs)
    loader.start()
    reader = RingBufferReader(loader)
    decoder = EventDecoder(loader.abi)
    seen: set[str] = set()

    def poll() -> None:
        for rec in reader.drain():
            ev = decoder.decode(rec)
            if isinstance(ev, DataEvent):
                for m in MARKERS:
                    if m in ev.payload:
                        seen.add(m.decode())

    try:
        excluded = child("inner-excluded", wait=True)
        loader.set_pid_excluded(excluded.pid, True)
        exchange(b"inner-agent")
        child("inner-child", wait=False).wait(30)
        excluded.communicate(b"go\n", timeout=30)
        print("READY", flush=True)
        sys.stdin.readline()
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            poll()
            time.sleep(0.02)
    finally:
        reader.close()
        loader.close()
    print(json.dumps({"pid": os.getpid(), "pidns": [dev, ino], "excluded_pid": excluded.pid, "seen": sorted(seen)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
