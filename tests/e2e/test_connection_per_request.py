"""A connection per request, end to end: nginx and a traced Python client whose every request
says ``Connection: close`` (urllib's), HTTP/1 paired in the kernel, the real kernel.

A server connection whose first paired transaction is also its last is handled without an entry
in the connection table or the local peers, and the kernel sends no close record for it.  What must not
change: every request gives its server span and its client span, and the server span is the
child of the client span (same-host linking, by the client's offer).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from receiver.config import load_config_text
from receiver.receivers.ebpf.receiver import EbpfReceiver
from tests.support.servers import NginxServer
from tls_support import Sink, pid_of, sink_capture, wait_for

pytestmark = [pytest.mark.kernel, pytest.mark.e2e]

REQUESTS = 20

CONFIG = """
receivers:
  ebpf:
    poll_interval: 20ms
    discovery:
      include:
        - cmdline: "*conn-per-request-nginx*"
        - cmdline: "*conn-per-request-client*"
exporters:
  debug: {}
service:
  pipelines:
    traces: {receivers: [ebpf], exporters: [debug]}
"""

CLIENT = textwrap.dedent(
    """
    import sys, urllib.request  # conn-per-request-client
    url, n = sys.argv[1], int(sys.argv[2])
    for i in range(n):
        path = "/status/404" if i % 4 == 3 else "/index.html"
        try:
            with urllib.request.urlopen(url + path + "?i=%d" % i, timeout=10) as r:
                r.read()
                print(r.status)
        except urllib.error.HTTPError as e:
            print(e.code)
    """
)


@pytest.fixture(scope="module")
def capture() -> Iterator[tuple[EbpfReceiver, Sink]]:
    with sink_capture(load_config_text(CONFIG).receivers["ebpf"]) as capture:
        yield capture


@pytest.fixture(scope="module")
def nginx(capture) -> Iterator[NginxServer]:
    with tempfile.TemporaryDirectory(prefix="conn-per-request-nginx-") as tmp, NginxServer(Path(tmp)) as n:
        yield n


def test_every_request_on_its_own_connection_is_linked_and_leaves_no_table_entry(capture, nginx) -> None:
    receiver, sink = capture
    single_before = receiver.tracker.single_transaction
    unannounced = receiver.loader.abi.const("ERX_CNT_CLOSE_UNANNOUNCED")
    closes_before = receiver.kernel_counters()[unannounced]
    proc = subprocess.run([sys.executable, "-c", CLIENT, nginx.url, str(REQUESTS)], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    statuses = proc.stdout.split()
    assert statuses.count("200") == REQUESTS - REQUESTS // 4 and statuses.count("404") == REQUESTS // 4

    client = wait_for(lambda: sink.spans(lambda s: s.kind.name == "CLIENT" and s.attributes.get("server.port") == nginx.port),
                      REQUESTS, "client spans")
    nginx_pids = set(nginx.pids())
    ports = {s.attributes["network.local.port"] for s in client}
    assert len(client) == REQUESTS and len(ports) == REQUESTS  # a connection each
    server = wait_for(lambda: sink.spans(lambda s: s.kind.name == "SERVER" and pid_of(s) in nginx_pids
                                         and s.attributes.get("client.port") in ports),
                      REQUESTS, "nginx server spans")
    assert len(server) == REQUESTS
    by_port = {s.attributes["network.local.port"]: s for s in client}
    for s in server:
        c = by_port[s.attributes["client.port"]]
        assert s.attributes["url.query"] == c.attributes["url.query"]
        assert s.attributes["http.response.status_code"] == c.attributes["http.response.status_code"]
        # the server span is the child of the client span that made the request
        assert (s.trace_id, s.parent_span_id) == (c.trace_id, c.span_id)

    # nginx's connections were handled without a table entry, and the kernel sent no close for
    # them (the client's connections are kept: they were announced at connect).
    assert receiver.tracker.single_transaction - single_before >= REQUESTS
    assert wait_for(lambda: [1] * (receiver.kernel_counters()[unannounced] - closes_before), REQUESTS,
                    "closes not sent")
    held = receiver.tracker.by_process()
    assert not any(pid in held for pid in nginx_pids), held
