"""Process discovery on the real kernel: TLS libraries found in processes started after the
agent — a private copy of libssl, libssl loaded later by dlopen, OpenSSL linked statically into
an executable — are attached and their plaintext captured; a server excluded by a discovery rule
(and the children it forks) costs no data events; no uprobe is left after shutdown.

The receiver runs in this process (``EbpfReceiver`` with consumers), configured with include
rules naming the processes under test (the machine may be busy with other traffic) and an
exclude rule that matches only the server tagged for it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from receiver.receivers.ebpf.receiver import EbpfReceiver
from receiver.config import load_config_text
from tests.kernel.harness import bpftool_ids, held_bpf_ids, perf_event_fds
from tests.support.ports import wait_until
from tests.support.tls import Certificate, PythonTlsServer, make_certificate
from tls_support import Sink, pid_of, sink_capture, wait_for

pytestmark = [pytest.mark.kernel, pytest.mark.e2e]

SYSTEM_LIBSSL = Path("/usr/lib/x86_64-linux-gnu/libssl.so.3")
EXCLUDED_TAG = "excluded-by-discovery-rule"
CONFIG = f"""
receivers:
  ebpf:
    poll_interval: 20ms
    discovery:
      # The processes under test only: the machine may be busy with other traffic.
      include:
        - exe: curl
        - exe: static-tls-client
        - cmdline: "*tls_http_server.py*"
      exclude:
        - cmdline: "*--tag {EXCLUDED_TAG}*"
      rescan_interval: 1s
exporters:
  debug: {{}}
service:
  pipelines:
    traces: {{receivers: [ebpf], exporters: [debug]}}
"""


def receiver_config():
    return load_config_text(CONFIG).receivers["ebpf"]


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="e2e-discovery-") as name:
        yield Path(name)


@pytest.fixture(scope="module")
def cert(workdir: Path) -> Certificate:
    return make_certificate(workdir)


@pytest.fixture(scope="module")
def capture() -> Iterator[tuple[EbpfReceiver, Sink]]:
    with sink_capture(receiver_config()) as capture:
        yield capture


def private_libssl(workdir: Path, name: str) -> Path:
    """A copy of the system's libssl in its own directory: a file no process maps yet."""
    if not SYSTEM_LIBSSL.is_file():
        pytest.skip(f"{SYSTEM_LIBSSL} not here")
    d = workdir / name
    d.mkdir()
    shutil.copy2(SYSTEM_LIBSSL, d / SYSTEM_LIBSSL.name)
    return d / SYSTEM_LIBSSL.name


def env_with_library_path(lib: Path) -> dict:
    return {**os.environ, "LD_LIBRARY_PATH": str(lib.parent)}


def curl(cert: Certificate, url: str) -> subprocess.CompletedProcess:
    done = subprocess.run(["curl", "-sS", "--cacert", str(cert.cert), "-o", "/dev/null", "-w", "%{http_code}", url],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    return done


def server_spans(sink: Sink, server: PythonTlsServer, path: str) -> list:
    return sink.spans(lambda s: s.kind.name == "SERVER" and pid_of(s) == server.pid
                      and s.attributes.get("url.path") == path)


def test_a_tls_server_started_after_the_agent_with_its_own_libssl(capture, cert: Certificate, workdir: Path) -> None:
    receiver, sink = capture
    lib = private_libssl(workdir, "lib-started-later")
    assert str(lib) not in receiver.discovery.attached_libraries()
    t0 = time.monotonic()
    with PythonTlsServer(cert, env=env_with_library_path(lib)) as server:
        # Found from its PROC_EXEC event (not a periodic scan): attached within a moment.
        wait_until(lambda: str(lib) in receiver.discovery.attached_libraries(), timeout=10, interval=0.02,
                   what="the private libssl to be attached")
        found_after = time.monotonic() - t0
        assert curl(cert, server.url + "/late").stdout == "200"
        (span,) = wait_for(lambda: server_spans(sink, server, "/late"), 1, "a span of the late server")
    assert span.attributes["url.scheme"] == "https"
    assert span.attributes["http.response.status_code"] == 200
    assert found_after < 5.0
    (attached,) = [x for x in receiver.discovery.libraries.attached if x.path == str(lib)]
    assert attached.probes >= 4 and attached.attach_seconds < 2.0


def test_libssl_loaded_later_by_dlopen(capture, cert: Certificate, workdir: Path) -> None:
    receiver, sink = capture
    lib = private_libssl(workdir, "lib-dlopen")
    server = PythonTlsServer(cert, "--import-ssl-on-stdin", env=env_with_library_path(lib)).start()
    try:
        time.sleep(1.5)  # a rescan passes while it has no libssl mapped
        assert str(lib) not in receiver.discovery.attached_libraries()
        server.import_ssl()  # dlopen(_ssl) -> libssl: only a rescan can see it
        wait_until(lambda: str(lib) in receiver.discovery.attached_libraries(), timeout=10,
                   what="the dlopen'ed libssl to be attached")
        assert curl(cert, server.url + "/dlopen").stdout == "200"
        (span,) = wait_for(lambda: server_spans(sink, server, "/dlopen"), 1, "a span of the dlopen server")
    finally:
        server.stop()
    assert span.attributes["url.scheme"] == "https"


STATIC_CLIENT = textwrap.dedent(
    r"""
    /* A TLS client with OpenSSL linked in statically and its symbols exported (-rdynamic):
     * client <port> <path> <delay_ms>. Prints the response's status line. */
    #include <arpa/inet.h>
    #include <openssl/ssl.h>
    #include <stdio.h>
    #include <stdlib.h>
    #include <string.h>
    #include <sys/socket.h>
    #include <unistd.h>

    int main(int argc, char **argv)
    {
        int port = atoi(argv[1]), fd, n;
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
        char req[512], buf[4096];
        SSL_CTX *ctx;
        SSL *ssl;

        usleep(atoi(argv[3]) * 1000);
        inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
        ctx = SSL_CTX_new(TLS_client_method());
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
        fd = socket(AF_INET, SOCK_STREAM, 0);
        if (connect(fd, (struct sockaddr *)&a, sizeof(a)))
            return 2;
        ssl = SSL_new(ctx);
        SSL_set_fd(ssl, fd);
        if (SSL_connect(ssl) != 1)
            return 3;
        snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                 "User-Agent: static-tls-client\r\nConnection: close\r\n\r\n", argv[2], port);
        SSL_write(ssl, req, strlen(req));
        n = SSL_read(ssl, buf, sizeof(buf) - 1);
        if (n <= 0)
            return 4;
        buf[n] = 0;
        *strchr(buf, '\r') = 0;
        puts(buf);
        while (SSL_read(ssl, buf, sizeof(buf)) > 0)
            ;
        SSL_shutdown(ssl);
        close(fd);
        return 0;
    }
    """
)


def build_static_client(workdir: Path) -> Path:
    gcc = shutil.which("gcc")
    if gcc is None or not Path("/usr/lib/x86_64-linux-gnu/libssl.a").is_file():
        pytest.skip("needs gcc and the static OpenSSL libraries (libssl-dev)")
    src, exe = workdir / "static_tls_client.c", workdir / "static-tls-client"
    src.write_text(STATIC_CLIENT)
    subprocess.run([gcc, "-O1", "-o", str(exe), str(src), "-Wl,--export-dynamic", "-Wl,-Bstatic", "-lssl", "-lcrypto",
                    "-Wl,-Bdynamic", "-ldl", "-lpthread"], check=True, capture_output=True, timeout=120)
    return exe


def test_an_executable_with_openssl_linked_in_statically(capture, cert: Certificate, workdir: Path) -> None:
    receiver, sink = capture
    exe = build_static_client(workdir)
    with PythonTlsServer(cert) as server:
        # It waits a second before connecting: discovery looks at a new program 0.1 s after exec.
        proc = subprocess.run([str(exe), str(server.port), "/static", "1000"], capture_output=True, text=True,
                              timeout=30)
        assert proc.returncode == 0 and proc.stdout.strip() == "HTTP/1.1 200 OK", proc.stderr
        assert str(exe) in receiver.discovery.attached_libraries()
        client = wait_for(lambda: sink.spans(lambda s: s.kind.name == "CLIENT" and s.attributes.get("url.path") == "/static"),
                          1, "the static client's span")
        wait_for(lambda: server_spans(sink, server, "/static"), 1, "the server's span")
    (span,) = client
    assert span.attributes["url.scheme"] == "https"
    assert span.attributes["user_agent.original"] == "static-tls-client"


def test_a_server_excluded_by_a_rule_costs_no_data_events(capture, cert: Certificate) -> None:
    """Started after the agent, judged at its exec: its pid goes into the kernel's map; the
    children it forks per connection inherit the exclusion in the kernel."""
    receiver, sink = capture
    abi = receiver.loader.abi
    c = abi.const
    lost_before = [receiver.kernel_counters()[c(n)] for n in ("ERX_CNT_LOST_RINGBUF_FULL", "ERX_CNT_LOST_NO_SCRATCH")]
    with PythonTlsServer(cert, "--fork", "--tag", EXCLUDED_TAG) as server:
        wait_until(lambda: receiver.loader.excluded_pids().get(server.pid) == c("ERX_PID_EXCLUDED"), timeout=10,
                   interval=0.02, what="the excluded server in erx_excluded_pids")
        for i in range(3):
            assert curl(cert, f"{server.url}/excluded/{i}").stdout == "200"
        # The clients were traced: their spans prove the traffic happened while we captured.
        clients = wait_for(lambda: sink.spans(lambda s: s.kind.name == "CLIENT"
                                              and s.attributes.get("server.port") == server.port), 3, "curl spans")
        assert {s.attributes["url.scheme"] for s in clients} == {"https"}
        time.sleep(0.5)
        # Nothing of the server's side: no event of its pid, none on its port's server side
        # (the forked children), no server span; and none was lost either.
        assert sink.data_events(lambda pid, f, p: pid == server.pid or p == server.port) == []
        assert sink.transactions(lambda t: t.tuple.local_port == server.port) == []
        assert sink.spans(lambda s: s.kind.name == "SERVER" and s.attributes.get("server.port") == server.port) == []
        assert server.pid in {p.pid for p in list(receiver.discovery.processes.values())
                              if p.decision and p.decision.name == "EXCLUDED"}
    lost_after = [receiver.kernel_counters()[c(n)] for n in ("ERX_CNT_LOST_RINGBUF_FULL", "ERX_CNT_LOST_NO_SCRATCH")]
    assert lost_after == lost_before
    # At exit the kernel drops the entry: the pid can be reused by a traced process.
    wait_until(lambda: server.pid not in receiver.loader.excluded_pids(), timeout=10, what="the entry to go")


def test_no_uprobe_is_left_after_shutdown(cert: Certificate) -> None:
    held_before, perf_before = held_bpf_ids(), perf_event_fds()
    with PythonTlsServer(cert):  # a process mapping libssl, so there is at least one library
        receiver = EbpfReceiver(receiver_config())
        receiver.start()
        try:
            attached = receiver.discovery.libraries.attached
            probes = sum(lib.probes for lib in attached)
            assert attached and probes >= 4
            held = {k: held_bpf_ids()[k] - held_before[k] for k in ("prog", "map", "link")}
            assert len(held["link"]) == receiver.loader.link_count + probes
            assert perf_event_fds() - perf_before == receiver.loader.link_count + probes
        finally:
            receiver.shutdown()
    assert held_bpf_ids() == held_before and perf_event_fds() == perf_before
    wait_until(lambda: not (held["link"] & bpftool_ids("link")), timeout=10, what="the links to be released")
