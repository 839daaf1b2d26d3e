"""Redis through the real kernel capture: a real redis-server, real redis-cli and redis-py clients
(child processes: the test process itself is filtered out in the kernel), over TCP and over the
server's unix socket.  Every connection is seen from both ends — the client process (CLIENT
transactions) and redis-server (SERVER transactions) — and both must give exactly the commands
the client sent, paired with the right replies; pub/sub pushes must not become transactions.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from receiver.receivers.ebpf.receiver import EbpfReceiver
from receiver.config import load_config
from receiver.protocols.base import Role
from tests.support.ports import free_port, wait_for_port

pytestmark = [pytest.mark.kernel, pytest.mark.e2e]

REDIS_SERVER = "/usr/bin/redis-server"
REDIS_CLI = "/usr/bin/redis-cli"
WAIT = 10.0
SETINFO = ("CLIENT SETINFO", "error", "ERR")  # redis-py sends it; Redis 7.0 does not know it


class RedisServer:
    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.socket = str(workdir / "redis.sock")
        self.proc = subprocess.Popen(
            [
                REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                "--unixsocket", self.socket, "--unixsocketperm", "700", "--dir", str(workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for_port(self.port)
            deadline = time.monotonic() + WAIT
            while not os.path.exists(self.socket):
                assert time.monotonic() < deadline, "no unix socket"
                time.sleep(0.05)
        except BaseException:
            self.stop()
            raise

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


class Collected:
    """Transactions handed out by the receiver, collected under a lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: list = []

    def __call__(self, batch: list) -> None:
        with self._lock:
            self._items.extend(batch)

    def redis(self, pid: int, since_ns: int = 0) -> list:
        with self._lock:
            return [
                tt for tt in self._items
                if tt.pid == pid and tt.transaction.protocol == "redis" and tt.transaction.start_ns >= since_ns
            ]


@pytest.fixture(scope="module")
def capture():
    collected = Collected()
    receiver = EbpfReceiver(load_config(None).receivers["ebpf"], on_transactions=collected)
    receiver.start()
    try:
        yield collected
    finally:
        receiver.shutdown()


@pytest.fixture(scope="module")
def server(tmp_path_factory, capture):
    srv = RedisServer(tmp_path_factory.mktemp("redis"))
    try:
        yield srv
    finally:
        srv.stop()


def run(argv: list[str], stdin: bytes | None = None, returncode: int = 0) -> tuple[int, bytes]:
    """Run a client to completion; return its pid and stdout."""
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = proc.communicate(stdin, timeout=WAIT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == returncode, err
    return proc.pid, out


def wait_for(capture: Collected, pid: int, count: int, since_ns: int = 0) -> list:
    """Wait (bounded) for ``count`` transactions of ``pid``; then a little longer for extras."""
    deadline = time.monotonic() + WAIT
    while len(capture.redis(pid, since_ns)) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # anything more would show up now
    return sorted(capture.redis(pid, since_ns), key=lambda tt: tt.transaction.start_ns)


def shape(tts: list) -> list[tuple]:
    """(command, reply kind, error code or status) per transaction."""
    out = []
    for tt in tts:
        t = tt.transaction
        r = t.response
        if r is None:
            out.append((t.request.command, None, None))
        else:
            out.append((t.request.command, r.kind.value, r.error_prefix if r.is_error else r.status))
    return out


def both_sides(
    capture: Collected, server: RedisServer, client_pid: int, since_ns: int, count: int
) -> tuple[list, list]:
    client = wait_for(capture, client_pid, count)
    served = wait_for(capture, server.pid, count, since_ns)
    assert all(tt.transaction.role is Role.CLIENT for tt in client)
    assert all(tt.transaction.role is Role.SERVER for tt in served)
    return client, served


def cli_commands(*lines: str) -> bytes:
    return "".join(line + "\n" for line in lines).encode()


# -- redis-cli ---------------------------------------------------------------------------------


def test_redis_cli_over_tcp_commands_and_errors(capture, server) -> None:
    t0 = time.monotonic_ns()
    pid, out = run(
        [REDIS_CLI, "-p", str(server.port), "--no-raw"],
        cli_commands("SET e2e:s text", "GET e2e:s", "INCR e2e:s", "HGETALL e2e:s", "AUTH s3cr3t-e2e", "DEL e2e:s"),
    )
    assert b"(error) ERR value is not an integer or out of range" in out
    assert b"(error) WRONGTYPE Operation against a key holding the wrong kind of value" in out
    expected = [
        ("COMMAND DOCS", "array", None),  # redis-cli asks for its hints; the reply is ~170 KiB
        ("SET", "simple_string", "OK"),
        ("GET", "bulk_string", None),
        ("INCR", "error", "ERR"),
        ("HGETALL", "error", "WRONGTYPE"),
        ("AUTH", "error", "ERR"),
        ("DEL", "integer", None),
    ]
    client, served = both_sides(capture, server, pid, t0, len(expected))
    for side in (client, served):
        assert shape(side) == expected
        assert [tt.transaction.request.key for tt in side] == [None, "e2e:s", "e2e:s", "e2e:s", "e2e:s", None, "e2e:s"]
        incr = side[3].transaction.response
        assert incr.error_message == "value is not an integer or out of range"
        assert side[4].transaction.response.error_message == "Operation against a key holding the wrong kind of value"
        # The capture keeps 4096 bytes of each syscall: the big reply is cut, counted by its header.
        docs = side[0].transaction.response
        assert docs.truncated and docs.element_count > 200
        assert "s3cr3t-e2e" not in repr([tt.transaction for tt in side])
    assert all(tt.tuple.remote_port == server.port for tt in client)


def test_redis_cli_resp3_over_the_unix_socket(capture, server) -> None:
    t0 = time.monotonic_ns()
    pid, out = run(
        [REDIS_CLI, "-3", "-s", server.socket, "--no-raw"],
        cli_commands("HSET e2e:h f1 v1 f2 v2", "HGETALL e2e:h", "ZADD e2e:z 1.5 m", "ZSCORE e2e:z m", "GET e2e:none",
                     "DEL e2e:h e2e:z"),
    )
    assert b"(double) 1.5" in out
    expected = [
        ("HELLO", "map", None),
        ("COMMAND DOCS", "map", None),
        ("HSET", "integer", None),
        ("HGETALL", "map", None),
        ("ZADD", "integer", None),
        ("ZSCORE", "double", None),
        ("GET", "null", None),
        ("DEL", "integer", None),
    ]
    client, served = both_sides(capture, server, pid, t0, len(expected))
    for side in (client, served):
        assert shape(side) == expected
        assert side[3].transaction.response.element_count == 2
        assert all(tt.transaction.response.protocol_version == 3 for tt in side)
    assert all(tt.tuple.family == 1 for tt in client + served)  # AF_UNIX


def test_redis_cli_pipe_pairs_every_pipelined_reply(capture, server) -> None:
    n = 30
    payload = b"".join(b"*3\r\n$3\r\nSET\r\n$%d\r\ne2e:p%d\r\n$1\r\nv\r\n" % (len(b"e2e:p%d" % i), i) for i in range(n))
    payload += b"*2\r\n$4\r\nINCR\r\n$6\r\ne2e:p0\r\n"
    t0 = time.monotonic_ns()
    pid, out = run([REDIS_CLI, "-p", str(server.port), "--pipe"], payload, returncode=1)  # 1: an error reply
    assert b"errors: 1, replies: 31" in out
    expected = [("SET", "simple_string", "OK")] * n + [("INCR", "error", "ERR"), ("ECHO", "bulk_string", None)]
    client, served = both_sides(capture, server, pid, t0, len(expected))
    for side in (client, served):
        assert shape(side) == expected
        assert [tt.transaction.request.key for tt in side[:n]] == [f"e2e:p{i}" for i in range(n)]


# -- redis-py ----------------------------------------------------------------------------------

PIPELINE = """
import json, sys, redis
kw = {"unix_socket_path": sys.argv[2]} if sys.argv[1] == "unix" else {"port": int(sys.argv[2])}
r = redis.Redis(protocol=2, max_connections=1, **kw)
pipe = r.pipeline(transaction=False)
for i in range(10):
    pipe.set(f"e2e:py{i}", i)
pipe.get("e2e:py3").incr("e2e:py3").execute_command("INCR", "e2e:str-not-int")
pipe.hgetall("e2e:py4").lrange("e2e:nolist", 0, -1).delete(*[f"e2e:py{i}" for i in range(10)])
res = pipe.execute(raise_on_error=False)
print(json.dumps([type(x).__name__ for x in res]))
"""


def test_redis_py_pipeline_over_tcp(capture, server) -> None:
    run([sys.executable, "-c", "import redis; redis.Redis(port=%d, protocol=2).set('e2e:str-not-int', 'x')"
         % server.port])
    t0 = time.monotonic_ns()
    pid, out = run([sys.executable, "-c", PIPELINE, "tcp", str(server.port)])
    assert b"ResponseError" in out
    expected = [
        SETINFO,
        SETINFO,
        *[("SET", "simple_string", "OK")] * 10,
        ("GET", "bulk_string", None),
        ("INCRBY", "integer", None),  # redis-py's incr
        ("INCR", "error", "ERR"),
        ("HGETALL", "error", "WRONGTYPE"),
        ("LRANGE", "array", None),
        ("DEL", "integer", None),
    ]
    client, served = both_sides(capture, server, pid, t0, len(expected))
    for side in (client, served):
        assert shape(side) == expected
        assert [tt.transaction.request.key for tt in side[2:12]] == [f"e2e:py{i}" for i in range(10)]
    # Pipelined: every request went out before the first reply came back.
    assert max(tt.transaction.start_ns for tt in client[2:]) < min(tt.transaction.end_ns for tt in client[2:])


MULTI = """
import sys, redis
r = redis.Redis(unix_socket_path=sys.argv[1], protocol=2, max_connections=1)
pipe = r.pipeline()
pipe.set("e2e:tx", 1).incr("e2e:tx").lpush("e2e:txl", "a", "b").get("e2e:tx")
assert pipe.execute() == [True, 2, 2, b"2"]
r.delete("e2e:tx", "e2e:txl")
"""


def test_redis_py_multi_exec_over_the_unix_socket(capture, server) -> None:
    t0 = time.monotonic_ns()
    pid, _ = run([sys.executable, "-c", MULTI, server.socket])
    expected = [
        SETINFO,
        SETINFO,
        ("MULTI", "simple_string", "OK"),
        ("SET", "simple_string", "QUEUED"),
        ("INCRBY", "simple_string", "QUEUED"),
        ("LPUSH", "simple_string", "QUEUED"),
        ("GET", "simple_string", "QUEUED"),
        ("EXEC", "array", None),
        ("DEL", "integer", None),
    ]
    client, served = both_sides(capture, server, pid, t0, len(expected))
    for side in (client, served):
        assert shape(side) == expected
        assert side[7].transaction.response.element_count == 4


RESP3 = """
import sys, redis
r = redis.Redis(port=int(sys.argv[1]), protocol=3, max_connections=1)
r.hset("e2e:r3", mapping={"a": 1, "b": 2})
assert r.hgetall("e2e:r3") == {b"a": b"1", b"b": b"2"}
r.sadd("e2e:r3s", "x", "y")
assert r.smembers("e2e:r3s") == {b"x", b"y"}
assert r.get("e2e:r3none") is None
r.delete("e2e:r3", "e2e:r3s")
"""


def test_redis_py_resp3_over_tcp(capture, server) -> None:
    t0 = time.monotonic_ns()
    pid, _ = run([sys.executable, "-c", RESP3, str(server.port)])
    expected = [
        ("HELLO", "map", None),
        ("CLIENT MAINT_NOTIFICATIONS", "error", "ERR"),
        SETINFO,
        SETINFO,
        ("HSET", "integer", None),
        ("HGETALL", "map", None),
        ("SADD", "integer", None),
        ("SMEMBERS", "set", None),
        ("GET", "null", None),
        ("DEL", "integer", None),
    ]
    client, served = both_sides(capture, server, pid, t0, len(expected))
    for side in (client, served):
        assert shape(side) == expected


SUBSCRIBER = """
import sys, redis
kw = {"unix_socket_path": sys.argv[2]} if sys.argv[1] == "unix" else {"port": int(sys.argv[2])}
r = redis.Redis(protocol=int(sys.argv[3]), max_connections=1, **kw)
p = r.pubsub()
p.subscribe("e2e:news", "e2e:sports")
p.psubscribe("e2e:w*")
for _ in range(3):
    assert p.get_message(timeout=5)["type"] in ("subscribe", "psubscribe")
print("ready", flush=True)
got = 0
while got < int(sys.argv[4]):
    m = p.get_message(timeout=5)
    assert m is not None, got
    if m["type"] in ("message", "pmessage"):
        got += 1
p.unsubscribe()
p.punsubscribe()
for _ in range(3):
    assert p.get_message(timeout=5)["type"] in ("unsubscribe", "punsubscribe")
p.close()
print("done", got, flush=True)
"""

PUBLISHER = """
import sys, redis
r = redis.Redis(port=int(sys.argv[1]), protocol=2, max_connections=1)
for i in range(int(sys.argv[2])):
    r.publish(("e2e:news", "e2e:sports", "e2e:weather")[i % 3], f"m{i}")
"""


@pytest.mark.parametrize(("transport", "protocol"), [("tcp", 2), ("unix", 3), ("tcp", 3)])
def test_redis_py_pubsub_pushes_are_not_transactions(capture, server, transport: str, protocol: int) -> None:
    messages = 12
    t0 = time.monotonic_ns()
    where = server.socket if transport == "unix" else str(server.port)
    sub = subprocess.Popen(
        [sys.executable, "-c", SUBSCRIBER, transport, where, str(protocol), str(messages)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        assert sub.stdout.readline().strip() == b"ready"
        pub_pid, _ = run([sys.executable, "-c", PUBLISHER, str(server.port), str(messages)])
        out, err = sub.communicate(timeout=WAIT)
    finally:
        if sub.poll() is None:
            sub.kill()
            sub.wait()
    assert sub.returncode == 0 and out.split() == [b"done", b"%d" % messages], err
    confirmation = "push" if protocol == 3 else "array"
    handshake = [("HELLO", "map", None)] if protocol == 3 else []
    if protocol == 3 and transport == "tcp":  # redis-py asks for them on TCP connections only
        handshake.append(("CLIENT MAINT_NOTIFICATIONS", "error", "ERR"))
    expected_sub = [
        *handshake,
        SETINFO,
        SETINFO,
        ("SUBSCRIBE", confirmation, None),
        ("PSUBSCRIBE", confirmation, None),
        ("UNSUBSCRIBE", confirmation, None),
        ("PUNSUBSCRIBE", confirmation, None),
    ]
    subscriber = wait_for(capture, sub.pid, len(expected_sub))
    assert shape(subscriber) == expected_sub
    assert [tt.transaction.response.reply_count for tt in subscriber[-4:]] == [2, 1, 2, 1]
    expected_pub = [SETINFO, SETINFO] + [("PUBLISH", "integer", None)] * messages
    publisher = wait_for(capture, pub_pid, len(expected_pub))
    assert shape(publisher) == expected_pub
    # The server side: both connections' commands, the 12 messages it pushed are not replies.
    served = wait_for(capture, server.pid, len(expected_sub) + len(expected_pub), t0)
    assert len(served) == len(expected_sub) + len(expected_pub)
    assert sorted(shape(served)) == sorted(expected_sub + expected_pub)
