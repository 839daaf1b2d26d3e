"""TLS stacks beyond an ``SSL*`` bound to its socket, end to end: real servers, real clients,
the real kernel.

* memory BIOs: an asyncio HTTPS server (``asyncio.start_server(ssl=...)``) and an aiohttp one,
  whose TLS runs in ``ssl.MemoryBIO`` (the event loop moves the ciphertext): 50 concurrent
  keep-alive connections each, every request one SERVER span with its path, status,
  ``url.scheme=https`` and the client port of the connection it was sent on.

The receiver runs in this process (``EbpfReceiver`` with consumers); servers and clients are
child processes (the agent's own pid is never traced).
"""

from __future__ import annotations

import collections
import json
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from receiver.config import load_config_text
from receiver.receivers.ebpf.receiver import EbpfReceiver
from tests.support.ports import wait_until
from tests.support.tls import MEMORY_BIO_SERVER, Certificate, PythonTlsServer, make_certificate
from tls_support import Sink, pid_of, wait_for

pytestmark = [pytest.mark.kernel, pytest.mark.e2e]

CONFIG = """
receivers:
  ebpf:
    poll_interval: 20ms
    discovery:
      include:
        - cmdline: "*memory_bio_server.py*"
exporters:
  debug: {}
service:
  pipelines:
    traces: {receivers: [ebpf], exporters: [debug]}
"""


@pytest.fixture(scope="module")
def cert() -> Iterator[Certificate]:
    with tempfile.TemporaryDirectory(prefix="e2e-tls-stacks-") as name:
        yield make_certificate(Path(name))


@pytest.fixture(scope="module")
def capture() -> Iterator[tuple[EbpfReceiver, Sink]]:
    sink = Sink()
    receiver = EbpfReceiver(load_config_text(CONFIG).receivers["ebpf"], traces=[sink],
                            on_transactions=sink.on_transactions, on_event=sink.on_event)
    receiver.start()
    try:
        yield receiver, sink
    finally:
        receiver.shutdown()


# Opens every connection (TLS handshake done) before any request, then sends REQUESTS requests
# on each, keep-alive; prints [[local port, [[path, status], ...]], ...] per connection.
KEEPALIVE_CLIENT = textwrap.dedent(
    """
    import http.client, json, ssl, sys, threading
    port, ca, conns, per = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    ctx = ssl.create_default_context(cafile=ca)
    ready = threading.Barrier(conns)
    out = [None] * conns

    def run(i):
        c = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=30)
        c.connect()
        ready.wait(60)
        got = []
        for j in range(per):
            path = f"/c{i}/r{j}" + ("/status/404" if j == per - 1 else "")
            c.request("GET", path)
            r = c.getresponse()
            r.read()
            got.append([path, r.status])
        out[i] = [c.sock.getsockname()[1], got]
        c.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(conns)]
    for t in threads: t.start()
    for t in threads: t.join()
    print(json.dumps(out))
    """
)
CONNECTIONS = 50
REQUESTS = 4


@pytest.mark.parametrize("kind", ["asyncio", "aiohttp"])
def test_memory_bio_servers_over_many_keepalive_connections(capture, cert: Certificate, kind: str) -> None:
    receiver, sink = capture
    bound = receiver.kernel_counters()[receiver.loader.abi.const("ERX_CNT_TLS_BIO_BOUND")]
    with PythonTlsServer(cert, "--kind", kind, script=MEMORY_BIO_SERVER) as server:
        # Requests made before libssl is attached have no plaintext to show: wait for it.
        wait_until(lambda: any(server.pid in lib.pids for lib in receiver.discovery.libraries.attached),
                   timeout=20, what="libssl attached for the server")
        proc = subprocess.run([sys.executable, "-c", KEEPALIVE_CLIENT, str(server.port), str(cert.cert),
                               str(CONNECTIONS), str(REQUESTS)], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        per_conn = json.loads(proc.stdout)
        expected = collections.Counter(
            (path, status, "https", port) for port, got in per_conn for path, status in got)
        assert len(expected) == CONNECTIONS * REQUESTS
        assert all(status == (404 if path.endswith("/404") else 200) for path, status, _, _ in expected)

        def served():
            return sink.spans(lambda s: s.kind.name == "SERVER" and pid_of(s) == server.pid)

        spans = wait_for(served, CONNECTIONS * REQUESTS, f"{kind} SERVER spans", timeout=60)
    got = collections.Counter((s.attributes["url.path"], s.attributes.get("http.response.status_code"),
                               s.attributes["url.scheme"], s.attributes.get("client.port")) for s in spans)
    # Exactly one span per request, each on the connection it was sent on.
    assert got == expected
    assert receiver.kernel_counters()[receiver.loader.abi.const("ERX_CNT_TLS_BIO_BOUND")] >= bound + CONNECTIONS
