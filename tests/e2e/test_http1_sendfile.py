"""nginx serving files with sendfile (the Debian default): the body bytes never pass through a
read/write buffer, the kernel reports their count, and the HTTP parser skips them by length.
(The payload path's parser: HTTP/1 pairing in the kernel is off here; it follows sendfile bodies
itself, tests/kernel/test_http_pairing.py.)"""

from __future__ import annotations

import subprocess
import time

import pytest

from receiver.bpf.abi import load_abi
from receiver.receivers.ebpf.receiver import EbpfReceiver
from receiver.config import load_config_text
from tests.support.ports import wait_until
from tests.support.servers import NginxServer

SYS_SENDFILE = load_abi().const("ERX_SYS_SENDFILE")

pytestmark = [pytest.mark.kernel, pytest.mark.e2e]


def test_sendfile_bodies_are_skipped_by_length_not_parse_errors(tmp_path):
    got = []
    sendfile_bytes = []

    def on_event(ev):
        if getattr(ev, "syscall", 0) == SYS_SENDFILE:
            sendfile_bytes.append(ev.total_len)

    config = load_config_text("receivers: {ebpf: {http_pairing: {enabled: false}}}\n"
                              "exporters: {debug: }\nservice: {pipelines: {traces: {receivers: [ebpf], exporters: [debug]}}}")
    r = EbpfReceiver(config.receivers["ebpf"], on_transactions=got.extend, on_event=on_event)
    r.start()
    try:
        with NginxServer(tmp_path, extra_locations="sendfile on;") as nginx:
            urls = [f"{nginx.url}/big.bin", f"{nginx.url}/index.html", f"{nginx.url}/big.bin"]
            subprocess.run(["curl", "-s", *[a for u in urls for a in ("-o", "/dev/null", u)]], check=True, timeout=20)

            def server_side():
                return [t for t in got if t.tuple.local_port == nginx.port]

            txs = wait_until(lambda: len(server_side()) >= 3 and server_side(), timeout=20, what="3 transactions")
            time.sleep(0.2)
    finally:
        r.shutdown()
    assert [t.transaction.request.target for t in txs] == ["/big.bin", "/index.html", "/big.bin"]
    assert [t.transaction.response.status_code for t in txs] == [200, 200, 200]
    assert txs[0].transaction.response.body_size == 100_000
    assert r.protocols.parse_errors_by_protocol.get("http", 0) == 0
    assert sum(sendfile_bytes) >= 200_000, "nginx did not use sendfile: the test proves nothing"
