"""The agent never observes itself (bpf/src/lib/self.h, self_tracking.h), and stdout/stderr is a
log only when it goes to a log destination — on the real kernel.

This test process plays the agent (``agent_tgid`` = its pid): its sockets are the agent's.  Small
child processes play the collector that receives the agent's exports, a scraper of the agent's
endpoint, and ordinary services; every assertion has a control that is traced, so it could fail.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import time

import pytest

from receiver.bpf.loader import BpfLoader, LoaderKnobs, default_object_path
from receiver.bpf.self_observation import agent_endpoints, seed_agent_endpoints
from receiver.capture.events import DataEvent, EventDecoder, LogPipeEvent
from receiver.capture.ringbuf import RingBufferReader
from receiver.discovery.log_pipes import LogPipeClassifier

pytestmark = pytest.mark.kernel

# A client: connects to 127.0.0.1:<port>, sends a request, reads the answer, says "done".
CLIENT = textwrap.dedent("""
    import socket, sys
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
    s.sendall(b"GET /probe HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n")
    s.recv(100)
    s.close()
    print("done", flush=True)
""")

# A server: accepts one connection on a port it prints, reads, answers, writes a line to stdout.
SERVER = textwrap.dedent("""
    import socket, sys
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen()
    print(ls.getsockname()[1], flush=True)
    c, _ = ls.accept()
    c.recv(100)
    c.sendall(b"HTTP/1.1 200 OK\\r\\nContent-Length: 0\\r\\n\\r\\n")
    c.close()
    sys.stderr.write("received an export\\n")
    sys.stderr.flush()
""")


class Capture:
    def __init__(self, **knobs) -> None:
        self.loader = BpfLoader(default_object_path(), LoaderKnobs(agent_tgid=os.getpid(), **knobs))

    def start(self, before_attach=None) -> "Capture":
        self.loader.start(before_attach=before_attach)
        self.reader = RingBufferReader(self.loader)
        self.decoder = EventDecoder(self.loader.abi)
        self.events: list = []
        return self

    def poll(self, seconds: float = 0.3) -> list:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.events.extend(e for e in map(self.decoder.decode, self.reader.poll(20)) if e is not None)
        return self.events

    def of(self, pid: int, kind: str) -> list:
        k = self.loader.abi.const(kind)
        return [e for e in self.events if getattr(e, "pid", None) == pid and e.kind == k]

    def close(self) -> None:
        reader, self.reader = getattr(self, "reader", None), None
        if reader is not None:
            reader.close()
        self.loader.close()


@pytest.fixture
def capture_factory():
    made: list[Capture] = []

    def make(**knobs) -> Capture:
        made.append(Capture(**knobs))
        return made[-1]

    yield make
    for c in made:
        c.close()


def serve_once(ls: socket.socket) -> None:
    conn, _ = ls.accept()
    conn.recv(100)
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    conn.close()


def run_client(port: int, server: socket.socket) -> int:
    proc = subprocess.Popen([sys.executable, "-c", CLIENT, str(port)], stdout=subprocess.PIPE)
    serve_once(server)
    assert proc.stdout.readline().strip() == b"done"
    proc.wait(10)
    return proc.pid


def other_server() -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen([sys.executable, "-c", SERVER], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    return proc, int(proc.stdout.readline())


def test_clients_of_the_agents_listeners_are_not_traced(capture_factory):
    """A scraper of the agent's endpoint (listening before attach: seeded from /proc; and after
    attach: registered by the kernel at LISTEN) leaves no record; a client of another server does."""
    early = socket.socket()
    early.bind(("127.0.0.1", 0))
    early.listen()
    assert any(e.port == early.getsockname()[1] and e.listener for e in agent_endpoints())
    cap = capture_factory(capture_size=256).start(before_attach=seed_agent_endpoints)
    late = socket.socket()
    late.bind(("127.0.0.1", 0))
    late.listen()
    try:
        scraper_early = run_client(early.getsockname()[1], early)
        scraper_late = run_client(late.getsockname()[1], late)
        other, port = other_server()
        control = subprocess.run([sys.executable, "-c", CLIENT, str(port)], capture_output=True, timeout=20)
        assert control.stdout.strip() == b"done"
        other.wait(10)
        cap.poll(0.5)
    finally:
        early.close()
        late.close()
    for pid in (scraper_early, scraper_late):
        assert cap.of(pid, "ERX_EV_DATA") == [] and cap.of(pid, "ERX_EV_CONN_OPEN") == []
    control_pid = next(e.pid for e in cap.events if isinstance(e, DataEvent) and e.payload.startswith(b"GET /probe")
                       and e.tuple.remote_port == port)
    assert control_pid not in (scraper_early, scraper_late)
    assert len(cap.of(control_pid, "ERX_EV_DATA")) == 2  # its request and the answer


def test_a_process_the_agent_dials_is_not_traced_and_its_output_is_no_log(capture_factory, tmp_path):
    """The collector side of an export: its connection is not traced and what it prints (the data
    it received) is not captured as a log — while a server nobody from the agent dialled is."""
    cap = capture_factory(capture_size=256, capture_logs=True).start()
    receiver, port = other_server()  # the agent will dial this one (an export)
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        s.recv(100)
    receiver.wait(10)
    bystander, port2 = other_server()  # dialled by another process: traced, its output is a log
    subprocess.run([sys.executable, "-c", CLIENT, str(port2)], capture_output=True, timeout=20, check=True)
    bystander.wait(10)
    cap.poll(0.5)
    assert cap.of(receiver.pid, "ERX_EV_DATA") == []
    assert cap.of(receiver.pid, "ERX_EV_LOG") == []
    assert len(cap.of(bystander.pid, "ERX_EV_DATA")) == 2
    assert [e.payload for e in cap.of(bystander.pid, "ERX_EV_LOG")] == [b"received an export\n"]


# A client that dials from a chosen local port (SO_REUSEADDR: a port the agent's own connection
# uses, as connect() may pick on its own when the destinations differ).
CLIENT_FROM_PORT = textwrap.dedent("""
    import socket, sys
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", int(sys.argv[2])))
    s.connect(("127.0.0.1", int(sys.argv[1])))
    s.sendall(b"GET /probe HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n")
    s.recv(100)
    s.close()
    print("done", flush=True)
""")


def test_a_client_sharing_the_local_port_of_an_agent_connection_is_traced(capture_factory):
    """Linux gives one ephemeral port to several connect()ed sockets whose destinations differ: a
    client of an ordinary server may dial from the local port of the agent's export connection.
    Only a connection whose both ends are the agent's connection's is left out."""
    cap = capture_factory(capture_size=256).start()
    collector = socket.socket()
    collector.bind(("127.0.0.1", 0))
    collector.listen()
    export = socket.socket()
    export.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    export.bind(("127.0.0.1", 0))
    export.connect(collector.getsockname())
    shared_port = export.getsockname()[1]
    try:
        server, port = other_server()
        client = subprocess.run([sys.executable, "-c", CLIENT_FROM_PORT, str(port), str(shared_port)],
                                capture_output=True, timeout=20)
        assert client.stdout.strip() == b"done", client.stderr
        server.wait(10)
        cap.poll(0.5)
    finally:
        export.close()
        collector.close()
    assert [e.tuple.remote_port for e in cap.of(server.pid, "ERX_EV_DATA")] == [shared_port, shared_port]


def test_observe_self_traces_the_agents_peers(capture_factory):
    cap = capture_factory(capture_size=256, observe_self=True).start(before_attach=seed_agent_endpoints)
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen()
    try:
        scraper = run_client(ls.getsockname()[1], ls)
        cap.poll(0.5)
    finally:
        ls.close()
    assert len(cap.of(scraper, "ERX_EV_DATA")) == 2


WRITER = textwrap.dedent("""
    import sys, time
    for i in range(int(sys.argv[1])):
        sys.stdout.write(f"line {i}\\n")
        sys.stdout.flush()
        time.sleep(0.05)
""")
# Reads its stdin to the end under a given process name (what the classifier looks at).
READER = textwrap.dedent("""
    import ctypes, sys
    ctypes.CDLL(None).prctl(15, sys.argv[1].encode(), 0, 0, 0)  # PR_SET_NAME
    sys.stdin.buffer.read()
""")


def pipeline(reader_name: str, lines: int) -> tuple[int, int]:
    """``writer | reader``: the writer's pid and the pipe's inode."""
    reader = subprocess.Popen([sys.executable, "-c", READER, reader_name], stdin=subprocess.PIPE)
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(lines)], stdout=reader.stdin)
    ino = os.stat(f"/proc/{writer.pid}/fd/1").st_ino
    reader.stdin.close()
    return writer, reader, ino


@pytest.mark.parametrize(("reader_name", "is_log"), [("conmon", True), ("grep", False)])
def test_pipes_are_logs_only_when_their_reader_is_a_log_destination(capture_factory, reader_name, is_log):
    """First write to a pipe → ERX_EV_LOG_PIPE; the classifier's verdict (a container runtime's
    pipe, or a pipe into another process) decides whether the following writes are logs."""
    cap = capture_factory(capture_size=256, capture_logs=True).start()
    classifier = LogPipeClassifier()
    writer, reader, ino = pipeline(reader_name, 40)
    try:
        deadline = time.monotonic() + 10
        asked = []
        while not asked and time.monotonic() < deadline:
            cap.poll(0.05)
            asked = [e for e in cap.of(writer.pid, "ERX_EV_LOG_PIPE") if isinstance(e, LogPipeEvent)]
        assert [e.pipe_ino for e in asked] == [ino]
        verdict = classifier.classify(ino, writer.pid)
        assert (verdict.is_log, verdict.reader) == (is_log, reader_name)
        value = cap.loader.abi.const("ERX_PIPE_LOG" if verdict.is_log else "ERX_PIPE_NOT_LOG")
        assert cap.loader.map_update("erx_log_pipes", ino.to_bytes(8, "little"), bytes([value]))
        writer.wait(20)
        reader.wait(20)
        cap.poll(0.3)
    finally:
        for p in (writer, reader):
            if p.poll() is None:
                p.kill()
    logs = cap.of(writer.pid, "ERX_EV_LOG")
    assert len(cap.of(writer.pid, "ERX_EV_LOG_PIPE")) == 1  # asked once per pipe
    if is_log:
        assert 30 <= len(logs) < 40  # the lines written before the verdict are not logs
        assert all(e.payload.startswith(b"line ") for e in logs)
    else:
        assert logs == []


def test_log_pipes_all_and_none(capture_factory):
    for mode, expect in (("all", 10), ("none", 0)):
        cap = capture_factory(capture_size=256, capture_logs=True, log_pipes=mode).start()
        writer, reader, _ = pipeline("grep", 10)
        writer.wait(20)
        reader.wait(20)
        cap.poll(0.3)
        assert len(cap.of(writer.pid, "ERX_EV_LOG")) == expect, mode
        assert cap.of(writer.pid, "ERX_EV_LOG_PIPE") == []
        cap.close()
