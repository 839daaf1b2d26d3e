"""Drivers for end-to-end tests of the memcached, NATS, AMQP and DNS parsers: each drives a known
number of operations against a real server with the real client library, checks every result the
client got, and reports exact counts of what went over the wire.

They run in a child process (the agent filters the test process itself out in the kernel):
``run_driver("memcached", port, count=20)`` starts ``python -m tests.support.protocol_drivers
memcached --port ... --count 20``, waits (bounded) and returns a :class:`DriverResult` with the
child's pid and its report.  Start the servers with :mod:`tests.support.broker_servers`.

Reports (``counts``), per protocol — what an agent tracing the driver's process must see:

* memcached (pymemcache, one connection): ``set`` (STORED, ``count``), ``get`` hits (``count``) and
  misses (``misses``, the first of them before anything else: ``get k`` is also what a Redis
  inline command looks like), one 3-key ``get_many`` (2 hits, 1 miss), one ``incr`` answered
  ``CLIENT_ERROR``; pymemcache then opens a second connection for one ``delete`` (DELETED);
* nats (nats-py, two connections: ``client`` and ``responder``): ``publish`` messages on
  ``erx.e2e.events`` (the first ``traced`` of them, all by default, with a W3C ``traceparent``
  header: ``HPUB``; the others ``PUB``) that the same client also ``receive``s, ``requests``
  answered by the responder (request–reply), one ``no_responders`` request;
* amqp (pika, one connection): ``publish`` messages (the first ``traced``, all by default, with a
  W3C ``traceparent`` header) to a fresh queue through the default exchange, then as many
  ``deliver``ies consumed and acked, one ``get_empty``;
* dns (dnspython): ``udp`` A queries on one socket (NOERROR, one answer each), ``nxdomain`` queries
  for unknown ``.test`` names, ``tcp`` queries on one TCP connection; with ``silent_port``, also
  ``timeouts`` A queries to that UDP port (nobody answers: each on a socket of its own, given up
  after ``SILENT_TIMEOUT_S`` and closed).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
SILENT_TIMEOUT_S = 0.5
REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class DriverResult:
    pid: int
    counts: dict[str, Any]


def run_driver(protocol: str, port: int, count: int = 10, timeout: float = 60.0, **options: Any) -> DriverResult:
    """Run one driver in a child process; its exit status and report are checked."""
    args = [sys.executable, "-m", "tests.support.protocol_drivers", protocol, "--port", str(port), "--count", str(count)]
    for key, value in options.items():
        args += [f"--{key.replace('_', '-')}", str(value)]
    proc = subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate(timeout=5)
        raise
    if proc.returncode != 0:
        raise RuntimeError(f"{protocol} driver failed ({proc.returncode}): {err.strip()[-2000:]}")
    report = json.loads(out.strip().splitlines()[-1])
    assert report["pid"] == proc.pid
    return DriverResult(proc.pid, report["counts"])


# -- the drivers (run in the child) ----------------------------------------------------------


def drive_memcached(port: int, count: int, misses: int = 3) -> dict[str, Any]:
    from pymemcache.client.base import Client
    from pymemcache.exceptions import MemcacheClientError

    assert misses >= 1
    c = Client((HOST, port), default_noreply=False, timeout=5, connect_timeout=5)
    # The first command is a miss: "get k" is also a Redis inline command, so the reply decides.
    assert c.get("e2e:missing:0") is None
    for i in range(count):
        assert c.set(f"e2e:{i}", f"value-{i}".encode()) is True
    for i in range(count):
        assert c.get(f"e2e:{i}") == f"value-{i}".encode()
    for i in range(1, misses):
        assert c.get(f"e2e:missing:{i}") is None
    assert c.get_many(["e2e:0", "e2e:1", "e2e:nope"]) == {"e2e:0": b"value-0", "e2e:1": b"value-1"}
    try:
        c.incr("e2e:0", 1)
        raise AssertionError("incr on a non-numeric value succeeded")
    except MemcacheClientError:
        pass
    assert c.delete("e2e:0") is True  # on a new connection: pymemcache closed the first after the error
    c.close()
    return {"connections": 2, "set": count, "get": count + misses + 1, "hits": count + 2, "misses": misses + 1,
            "incr": 1, "errors": {"CLIENT_ERROR": 1}, "delete": 1}


def drive_nats(port: int, count: int, requests: int = 3, traced: int | None = None) -> dict[str, Any]:
    import nats
    import nats.errors

    traced = count if traced is None else traced

    async def main() -> None:
        responder = await nats.connect(f"nats://{HOST}:{port}", allow_reconnect=False, connect_timeout=5)

        async def echo(msg) -> None:
            await msg.respond(b"re:" + msg.data)

        await responder.subscribe("erx.e2e.svc", cb=echo)
        await responder.flush()
        client = await nats.connect(f"nats://{HOST}:{port}", allow_reconnect=False, connect_timeout=5)
        sub = await client.subscribe("erx.e2e.events")
        await client.flush()
        for i in range(count):
            headers = {"traceparent": TRACEPARENT} if i < traced else None
            await client.publish("erx.e2e.events", b"event-%d" % i, headers=headers)
        for i in range(count):
            msg = await sub.next_msg(timeout=5)
            assert msg.data == b"event-%d" % i
        for i in range(requests):
            reply = await client.request("erx.e2e.svc", b"q%d" % i, timeout=5)
            assert reply.data == b"re:q%d" % i
        try:
            await client.request("erx.e2e.nobody", b"?", timeout=5)
            raise AssertionError("a request with no responders was answered")
        except nats.errors.NoRespondersError:
            pass
        await client.close()
        await responder.close()

    asyncio.run(main())
    return {"connections": 2, "publish": count, "traced": traced, "receive": count, "requests": requests,
            "no_responders": 1, "responder_receive": requests, "responder_publish": requests}


def drive_amqp(port: int, count: int, traced: int | None = None) -> dict[str, Any]:
    import pika

    traced = count if traced is None else traced
    params = pika.ConnectionParameters(host=HOST, port=port, heartbeat=0, socket_timeout=10,
                                       credentials=pika.PlainCredentials("guest", "guest"))
    conn = pika.BlockingConnection(params)
    ch = conn.channel()
    queue = ch.queue_declare("", exclusive=True).method.queue
    props = pika.BasicProperties(headers={"traceparent": TRACEPARENT})
    for i in range(count):
        ch.basic_publish("", queue, b"message-%d" % i, props if i < traced else None)
    got = 0
    for method, _, body in ch.consume(queue, inactivity_timeout=5):
        assert method is not None and body == b"message-%d" % got, (method, body)
        ch.basic_ack(method.delivery_tag)
        got += 1
        if got == count:
            break
    ch.cancel()
    method, _, _ = ch.basic_get(queue)
    assert method is None
    conn.close()
    return {"connections": 1, "publish": count, "traced": traced, "deliver": count, "ack": count, "get_empty": 1}


def drive_dns(port: int, count: int, nxdomain: int = 2, tcp: int = 2, silent_port: int = 0,
              timeouts: int = 1) -> dict[str, Any]:
    import dns.exception
    import dns.message
    import dns.query
    import dns.rcode

    names = ["alpha.test", "beta.test", "gamma.test"]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for i in range(count):
            r = dns.query.udp(dns.message.make_query(names[i % 3], "A"), HOST, port=port, timeout=5, sock=sock)
            assert r.rcode() == dns.rcode.NOERROR and len(r.answer) == 1, r
        for i in range(nxdomain):
            r = dns.query.udp(dns.message.make_query(f"nothing-{i}.test", "A"), HOST, port=port, timeout=5, sock=sock)
            assert r.rcode() == dns.rcode.NXDOMAIN, r
    with socket.create_connection((HOST, port), timeout=5) as sock:
        for i in range(tcp):
            r = dns.query.tcp(dns.message.make_query(names[i % 3], "AAAA"), HOST, timeout=5, sock=sock)
            assert r.rcode() == dns.rcode.NOERROR and len(r.answer) == 1, r
    report = {"udp": count, "nxdomain": nxdomain, "tcp": tcp, "udp_sockets": 1, "tcp_connections": 1}
    if silent_port:
        for i in range(timeouts):  # dnspython opens a socket per query and closes it when it gives up
            try:
                dns.query.udp(dns.message.make_query(f"silent-{i}.test", "A"), HOST, port=silent_port,
                              timeout=SILENT_TIMEOUT_S)
                raise AssertionError("the silent port answered")
            except dns.exception.Timeout:
                pass
        report["timeouts"] = timeouts
    return report


DRIVERS = {"memcached": drive_memcached, "nats": drive_nats, "amqp": drive_amqp, "dns": drive_dns}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="drive a real server with its real client; print a JSON report")
    parser.add_argument("protocol", choices=sorted(DRIVERS))
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--count", type=int, default=10)
    parser.add_argument("--misses", type=int)
    parser.add_argument("--requests", type=int)
    parser.add_argument("--nxdomain", type=int)
    parser.add_argument("--tcp", type=int)
    parser.add_argument("--traced", type=int)
    parser.add_argument("--silent-port", type=int)
    parser.add_argument("--timeouts", type=int)
    args = parser.parse_args(argv)
    options = ("misses", "requests", "nxdomain", "tcp", "traced", "silent_port", "timeouts")
    extra = {k: v for k in options if (v := getattr(args, k)) is not None}
    counts = DRIVERS[args.protocol](args.port, args.count, **extra)
    print(json.dumps({"pid": os.getpid(), "counts": counts}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
