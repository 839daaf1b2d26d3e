"""Traffic for the real-kernel tests, run as a child process.

The agent's own pid is filtered in the kernel, so every byte under test is moved by this
script in a separate process:

    python traffic.py <scenario> '<json params>'

It performs the socket calls of the scenario and prints one JSON report as its last stdout
line: its pid, the sockets it used (fd, local and remote endpoint) and every data syscall it
made (syscall, direction, fd, thread id, the bytes really moved, the peer address when one was
passed), so a test expects exactly those records and no others.  Standard library only.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import select
import socket
import struct
import sys
import tempfile
import threading

# -- sendmmsg/recvmmsg (not exposed by the socket module) -------------------------------------


class _Iovec(ctypes.Structure):
    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]


class _Msghdr(ctypes.Structure):
    _fields_ = [
        ("msg_name", ctypes.c_void_p),
        ("msg_namelen", ctypes.c_uint32),
        ("msg_iov", ctypes.POINTER(_Iovec)),
        ("msg_iovlen", ctypes.c_size_t),
        ("msg_control", ctypes.c_void_p),
        ("msg_controllen", ctypes.c_size_t),
        ("msg_flags", ctypes.c_int),
    ]


class _Mmsghdr(ctypes.Structure):
    _fields_ = [("msg_hdr", _Msghdr), ("msg_len", ctypes.c_uint)]


_LIBC = ctypes.CDLL(None, use_errno=True)
_SOCKADDR_LEN = 128


def _sockaddr_in(addr: tuple[str, int]) -> bytes:
    return struct.pack("<H", socket.AF_INET) + struct.pack(">H", addr[1]) + socket.inet_aton(addr[0]) + bytes(8)


def _parse_sockaddr_in(raw: bytes) -> list:
    return [socket.inet_ntoa(raw[4:8]), struct.unpack(">H", raw[2:4])[0]]


def _mmsg_array(buffers: list[list[bytearray]], name: bytes | None, name_len: int):
    """An mmsghdr array over `buffers` (one iovec list per message), each with its own copy of
    `name` (name_len bytes, or no name); returns it with the ctypes objects it points into."""
    msgs = (_Mmsghdr * len(buffers))()
    keep = []
    for i, bufs in enumerate(buffers):
        iovs = (_Iovec * len(bufs))()
        for j, b in enumerate(bufs):
            cb = (ctypes.c_char * len(b)).from_buffer(b)
            keep.append(cb)
            iovs[j].iov_base = ctypes.addressof(cb)
            iovs[j].iov_len = len(b)
        keep.append(iovs)
        msgs[i].msg_hdr.msg_iov = iovs
        msgs[i].msg_hdr.msg_iovlen = len(bufs)
        if name is not None:
            nb = ctypes.create_string_buffer(name, _SOCKADDR_LEN)
            keep.append(nb)
            msgs[i].msg_hdr.msg_name = ctypes.addressof(nb)
            msgs[i].msg_hdr.msg_namelen = name_len
    return msgs, keep


def sendmmsg(fd: int, messages: list[list[bytes]], peer: tuple[str, int] | None = None) -> list[int]:
    """One sendmmsg call; each message is a list of iovecs.  Returns each message's msg_len."""
    bufs = [[bytearray(part) for part in parts] for parts in messages]
    name = _sockaddr_in(peer) if peer else None
    msgs, _keep = _mmsg_array(bufs, name, len(name) if name else 0)
    n = _LIBC.sendmmsg(fd, msgs, len(bufs), 0)
    if n < 0:
        raise OSError(ctypes.get_errno(), "sendmmsg")
    return [msgs[i].msg_len for i in range(n)]


def recvmmsg(fd: int, sizes: list[int], with_names: bool = False) -> list[tuple[bytes, list | None]]:
    """One recvmmsg call into one buffer per size: [(bytes, sender or None)]."""
    bufs = [[bytearray(s)] for s in sizes]
    msgs, _keep = _mmsg_array(bufs, bytes(_SOCKADDR_LEN) if with_names else None, _SOCKADDR_LEN)
    n = _LIBC.recvmmsg(fd, msgs, len(bufs), 0, None)
    if n < 0:
        raise OSError(ctypes.get_errno(), "recvmmsg")
    out = []
    for i in range(n):
        data = bytes(bufs[i][0][: msgs[i].msg_len])
        peer = None
        if with_names:
            raw = ctypes.string_at(msgs[i].msg_hdr.msg_name, msgs[i].msg_hdr.msg_namelen)
            peer = _parse_sockaddr_in(raw)
        out.append((data, peer))
    return out


# -- the report ---------------------------------------------------------------------------------


class Report:
    def __init__(self) -> None:
        self.ops: list[dict] = []
        self.sockets: dict[int, dict] = {}
        self._lock = threading.Lock()

    def op(self, sys_name: str, direction: str, fd: int, data: bytes, total: int | None = None, peer=None) -> None:
        with self._lock:
            self.ops.append(
                {
                    "sys": sys_name,
                    "dir": direction,
                    "fd": fd,
                    "tid": threading.get_native_id(),
                    "data": data.hex(),
                    "total": len(data) if total is None else total,
                    "peer": list(peer) if peer else None,
                }
            )

    def sock(self, s: socket.socket, role: str) -> None:
        def endpoint(addr):
            if s.family == socket.AF_UNIX:
                return ["", 0]
            return [addr[0], addr[1]] if addr else None

        try:
            remote = endpoint(s.getpeername())
        except OSError:
            remote = None
        self.sockets[s.fileno()] = {
            "family": int(s.family),
            "type": int(s.type),
            "role": role,
            "local": endpoint(s.getsockname()),
            "remote": remote,
        }

    def emit(self, **extra) -> None:
        out = {"pid": os.getpid(), "tid": threading.get_native_id(), "ops": self.ops, "sockets": self.sockets}
        out.update(extra)
        sys.stdout.write(json.dumps(out) + "\n")
        sys.stdout.flush()


# -- endpoints ----------------------------------------------------------------------------------


def connected_pair(transport: str) -> tuple[socket.socket, socket.socket, list]:
    """(client, server side, to-close) for tcp4 | tcp6 | unix | udp4 (both ends connected)."""
    if transport == "udp4":
        srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        srv.bind(("127.0.0.1", 0))
        cli = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        cli.connect(srv.getsockname())
        srv.connect(cli.getsockname())
        return cli, srv, [cli, srv]
    if transport == "unix":
        family, addr = socket.AF_UNIX, f"\0erx-kernel-test-{os.getpid()}"
    elif transport == "tcp6":
        family, addr = socket.AF_INET6, ("::1", 0)
    else:
        family, addr = socket.AF_INET, ("127.0.0.1", 0)
    lst = socket.socket(family, socket.SOCK_STREAM)
    lst.bind(addr)
    lst.listen(1)
    cli = socket.socket(family, socket.SOCK_STREAM)
    cli.connect(lst.getsockname())
    acc, _ = lst.accept()
    return cli, acc, [cli, acc, lst]


def split3(data: bytes) -> list[bytes]:
    """Three iovecs of unequal sizes, in order."""
    a, b = max(1, len(data) // 7), max(2, len(data) // 3)
    return [data[:a], data[a : a + b], data[a + b :]]


def send(rep: Report, s: socket.socket, how: str, messages: list[bytes], peer=None) -> None:
    fd = s.fileno()
    if how == "sendmmsg":
        lens = sendmmsg(fd, [split3(m) for m in messages], tuple(peer) if peer else None)
        assert lens == [len(m) for m in messages], lens
        for m in messages:
            rep.op("sendmmsg", "egress", fd, m, peer=peer)
        return
    for m in messages:
        if how == "write":
            n = os.write(fd, m)
        elif how == "writev":
            n = os.writev(fd, split3(m))
        elif how == "sendto":
            n = s.sendto(m, tuple(peer)) if peer else s.send(m)
        elif how == "sendmsg":
            n = s.sendmsg(split3(m), [], 0, tuple(peer)) if peer else s.sendmsg(split3(m))
        elif how == "sendfile":
            with tempfile.TemporaryFile() as f:
                f.write(m)
                f.flush()
                n = os.sendfile(fd, f.fileno(), 0, len(m))
            assert n == len(m), (n, len(m))
            rep.op("sendfile", "egress", fd, b"", total=n)
            continue
        else:
            raise ValueError(how)
        assert n == len(m), (how, n, len(m))
        rep.op(how, "egress", fd, m, peer=peer)


def receive(rep: Report, s: socket.socket, how: str, sizes: list[int], stream: bool, want_peer: bool = False) -> None:
    """Receive the messages of `sizes` (datagrams) or their byte total (streams)."""
    fd = s.fileno()
    if how == "recvmmsg":
        # On a stream each message gets exactly the size it was sent with.
        for data, peer in recvmmsg(fd, sizes if stream else [65536] * len(sizes), with_names=want_peer):
            rep.op("recvmmsg", "ingress", fd, data, peer=peer)
        return
    left = sum(sizes) if stream else None
    count = len(sizes)
    while (left > 0) if stream else (count > 0):
        peer = None
        if how == "read":
            data = os.read(fd, 65536)
        elif how == "readv":
            bufs = [bytearray(3), bytearray(5), bytearray(65536)]
            n = os.readv(fd, bufs)
            data = b"".join(bufs)[:n]
        elif how == "recvfrom":
            data, addr = s.recvfrom(65536)
            peer = [addr[0], addr[1]] if want_peer else None
        elif how == "recvmsg":
            bufs = [bytearray(3), bytearray(5), bytearray(65536)]
            n, _, _, addr = s.recvmsg_into(bufs)
            data = b"".join(bufs)[:n]
            peer = [addr[0], addr[1]] if want_peer else None
        else:
            raise ValueError(how)
        if not data:
            raise EOFError(f"{how}: peer closed early")
        rep.op(how, "ingress", fd, data, peer=peer)
        if stream:
            left -= len(data)
        else:
            count -= 1


def message(tag: str, n: int) -> bytes:
    """n bytes starting with tag, then every byte value (non-ASCII included)."""
    head = tag.encode()
    return (head + bytes(range(256)) * (n // 256 + 1))[:n]


# -- scenarios ----------------------------------------------------------------------------------


def scenario_pair(rep: Report, p: dict) -> None:
    """One sender syscall and one receiver syscall over a connected pair.  The sender runs in
    its own thread, so its records carry a tid different from the pid."""
    transport, how_send, how_recv = p["transport"], p["send"], p["recv"]
    sizes = p.get("sizes") or ([7, 300, 1000] if how_send == "sendmmsg" else [300])
    messages = [message(f"{transport}:{how_send}:{i}:", n) for i, n in enumerate(sizes)]
    cli, srv, to_close = connected_pair(transport)
    rep.sock(cli, "client")
    rep.sock(srv, "server")
    t = threading.Thread(target=send, args=(rep, cli, how_send, messages))
    t.start()
    t.join()
    stream = transport != "udp4"
    receive(rep, srv, how_recv, sizes, stream)
    for s in to_close:
        s.close()


def scenario_udp_unconnected(rep: Report, p: dict) -> None:
    """Unconnected UDP: the remote endpoint of every record comes from the sockaddr passed to
    (or filled in by) sendto/recvfrom, sendmsg/recvmsg and sendmmsg/recvmmsg."""
    a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    a.bind(("127.0.0.1", 0))
    b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    b.bind(("127.0.0.1", 0))
    rep.sock(a, "a")
    rep.sock(b, "b")
    pa, pb = list(a.getsockname()), list(b.getsockname())
    send(rep, a, "sendto", [message("udp:sendto:", 200)], peer=pb)
    receive(rep, b, "recvfrom", [200], stream=False, want_peer=True)
    send(rep, b, "sendmsg", [message("udp:sendmsg:", 150)], peer=pa)
    receive(rep, a, "recvmsg", [150], stream=False, want_peer=True)
    sizes = [5, 60, 700]
    send(rep, a, "sendmmsg", [message(f"udp:mmsg:{i}:", n) for i, n in enumerate(sizes)], peer=pb)
    receive(rep, b, "recvmmsg", sizes, stream=False, want_peer=True)
    a.close()
    b.close()


def scenario_nonblocking_accept(rep: Report, p: dict) -> None:
    """A non-blocking connect (EINPROGRESS) accepted with accept(2), not accept4(2)."""
    lst = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lst.bind(("127.0.0.1", 0))
    lst.listen(1)
    cli = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    cli.setblocking(False)
    rc = cli.connect_ex(lst.getsockname())
    assert rc == errno.EINPROGRESS, rc
    fd = _LIBC.accept(lst.fileno(), None, None)
    if fd < 0:
        raise OSError(ctypes.get_errno(), "accept")
    srv = socket.socket(fileno=fd)
    select.select([], [cli], [], 5)
    cli.setblocking(True)
    rep.sock(cli, "client")
    rep.sock(srv, "server")
    send(rep, cli, "write", [message("nonblocking:", 50)])
    receive(rep, srv, "read", [50], stream=True)
    for s in (cli, srv, lst):
        s.close()


def scenario_large(rep: Report, p: dict) -> None:
    """One write and one writev far larger than the capture size, over TCP."""
    n = p["size"]
    cli, srv, to_close = connected_pair("tcp4")
    rep.sock(cli, "client")
    rep.sock(srv, "server")
    data = message("large:write:", n)
    send(rep, cli, "write", [data])
    receive(rep, srv, "read", [n], stream=True)
    vdata = message("large:writev:", n)
    parts = [vdata[:100], vdata[100:200], vdata[200:]]  # the capture crosses iovec boundaries
    assert os.writev(cli.fileno(), parts) == n
    rep.op("writev", "egress", cli.fileno(), vdata)
    receive(rep, srv, "read", [n], stream=True)
    for s in to_close:
        s.close()


def scenario_nonsocket(rep: Report, p: dict) -> None:
    """Reads and writes on a regular file, a pipe, stdout and stderr: not sockets."""
    with tempfile.TemporaryFile() as f:
        os.write(f.fileno(), b"regular file bytes")
        os.lseek(f.fileno(), 0, os.SEEK_SET)
        os.read(f.fileno(), 100)
        os.writev(f.fileno(), [b"a", b"b"])
    r, w = os.pipe()
    os.write(w, b"pipe bytes")
    os.read(r, 100)
    os.close(r)
    os.close(w)
    logs = [(1, "write", b"a line on stdout\n"), (2, "write", b"a line on stderr\n")]
    for fd, how, data in logs:
        os.write(fd, data)
        rep.op(how, "egress", fd, data)
    parts = [b"stdout ", b"in ", b"three iovecs\n"]
    os.writev(1, parts)
    rep.op("writev", "egress", 1, b"".join(parts))
    big = message("a long stderr line:", p.get("long", 1000))
    os.write(2, big)
    rep.op("write", "egress", 2, big)


def scenario_preexisting(rep: Report, p: dict) -> None:
    """Open a TCP connection, say so, wait for a line on stdin (the test starts the loader in
    between), then move bytes both ways."""
    cli, srv, to_close = connected_pair("tcp4")
    rep.sock(cli, "client")
    rep.sock(srv, "server")
    sys.stdout.write(json.dumps({"pid": os.getpid(), "sockets": rep.sockets}) + "\n")
    sys.stdout.flush()
    sys.stdin.readline()
    send(rep, cli, "write", [message("preexisting:request:", 120)])
    receive(rep, srv, "read", [120], stream=True)
    send(rep, srv, "sendto", [message("preexisting:response:", 80)])
    receive(rep, cli, "recvfrom", [80], stream=True)
    for s in to_close:
        s.close()


def scenario_burst(rep: Report, p: dict) -> dict:
    """`count` small sends on a connected UDP socket nobody reads (no blocking, no backpressure)."""
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.connect(sink.getsockname())
    payload = b"x" * p.get("size", 16)
    sent = 0
    for _ in range(p["count"]):
        sent += s.send(payload) > 0
    s.close()
    sink.close()
    return {"sent": sent}


def scenario_idle(rep: Report, p: dict) -> None:
    """No traffic at all (main() exits with params["exit_status"])."""


SCENARIOS = {
    "pair": scenario_pair,
    "udp_unconnected": scenario_udp_unconnected,
    "nonblocking_accept": scenario_nonblocking_accept,
    "large": scenario_large,
    "nonsocket": scenario_nonsocket,
    "preexisting": scenario_preexisting,
    "burst": scenario_burst,
    "idle": scenario_idle,
}


def main(argv: list[str]) -> int:
    name = argv[1]
    params = json.loads(argv[2]) if len(argv) > 2 else {}
    rep = Report()
    extra = SCENARIOS[name](rep, params) or {}
    rep.emit(**extra)
    return params.get("exit_status", 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
