"""TLS plaintext read at OpenSSL (the SSL_read/SSL_write uprobes) is paired like socket bytes:
curl over HTTPS (HTTP/1.1, keep-alive) against the standard library's HTTPS server, both ends
traced, one ERX_EV_HTTP_TX record per request on each, flagged TLS; no data record."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.support.tls import PythonTlsServer, make_certificate

from .harness import Capture, started_capture
from .http_support import data_records, describe, kernel_transactions

pytestmark = pytest.mark.kernel

LIBSSL = "/usr/lib/x86_64-linux-gnu/libssl.so.3"


@pytest.fixture(scope="module")
def cap(kernel) -> Capture:
    with started_capture(http_pairing=True) as c:
        c.loader.attach_tls_library(LIBSSL)
        yield c


def test_tls_plaintext_is_paired(cap: Capture) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        cert = make_certificate(Path(tmp))
        with PythonTlsServer(cert) as srv:
            cap.watch(srv.pid)
            paths = ["/a", "/status/404", "/b?x=1"]
            args = ["curl", "-s", "--http1.1", "--cacert", str(cert.cert), "-w", "%{http_code} "]
            for p in paths:
                args += ["-o", "/dev/null", srv.url + p]
            proc = subprocess.Popen(args, stdout=subprocess.PIPE)
            cap.watch(proc.pid)
            out, _ = proc.communicate(timeout=30)
            assert out.split() == [b"200", b"404", b"200"]
            client = cap.events_until(proc.pid, lambda evs: len(kernel_transactions(evs)) >= len(paths))
            server = cap.events_until(srv.pid, lambda evs: len(kernel_transactions(evs)) >= len(paths))
    tls = cap.c("ERX_FLAG_TLS")
    for evs, role in ((client, "ERX_ROLE_CLIENT"), (server, "ERX_ROLE_SERVER")):
        txs = kernel_transactions(evs)
        assert [(e.method, e.target, e.status) for e in txs] == [
            ("GET", "/a", 200), ("GET", "/status/404", 404), ("GET", "/b?x=1", 200)], describe(evs)
        assert all(e.flags & tls and e.role == cap.c(role) for e in txs)
        assert all(e.syscall in (cap.c("ERX_SYS_SSL_READ"), cap.c("ERX_SYS_SSL_WRITE")) for e in txs)
        assert [e.resp_body_size for e in txs] == [len(f"{p} over tls\n") for p in paths]
        assert data_records(cap, evs) == [], describe(evs)  # neither plaintext nor ciphertext
