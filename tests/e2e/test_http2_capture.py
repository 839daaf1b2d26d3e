"""HTTP/2 (h2c) and gRPC through the real kernel capture: a real grpcio server and client, and
nginx (``listen ... http2``) with ``curl --http2-prior-knowledge``.

The receiver runs in-process (``EbpfReceiver`` with the default configuration); servers and
clients are child processes, so the kernel does not filter them out.  Each client run is one
connection, checked from the client's side (transactions whose pid is the client's) and from
the server's side (the server's transactions on the same connection: the server's remote port
is the client's local port).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from receiver.model.transaction import TrackedTransaction
from receiver.receivers.ebpf.receiver import EbpfReceiver
from receiver.config import load_config
from receiver.protocols.base import Role
from receiver.protocols.http2 import StreamEnd
from tests.fixtures.record_http2 import GRPC_DIR, grpc_server, nginx_h2c

pytestmark = [pytest.mark.kernel, pytest.mark.e2e]

WAIT_S = 15.0
SERVICE = "fixtures.echo.v1.Echo"


class Collected:
    """Thread-safe sink for the receiver's ``on_transactions`` callback (HTTP/2 only)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: list[TrackedTransaction] = []

    def __call__(self, batch: list[TrackedTransaction]) -> None:
        with self._lock:
            self._items.extend(t for t in batch if t.transaction.protocol == "http2")

    def matching(self, predicate) -> list[TrackedTransaction]:
        with self._lock:
            return [t for t in self._items if predicate(t)]

    def wait_for(self, predicate, count: int) -> list[TrackedTransaction]:
        """Transactions matching ``predicate`` once ``count`` arrived and no more follow (bounded)."""
        deadline = time.monotonic() + WAIT_S
        found: list[TrackedTransaction] = []
        while time.monotonic() < deadline:
            found = self.matching(predicate)
            if len(found) >= count:
                time.sleep(0.3)  # anything extra would show up now
                return self.matching(predicate)
            time.sleep(0.05)
        return found


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="e2e-http2-") as name:
        yield Path(name)


@pytest.fixture(scope="module")
def stubs(workdir: Path) -> Path:
    sys.path.insert(0, str(GRPC_DIR))
    try:
        from stubs import generate  # noqa: PLC0415 - grpc_service is a directory of scripts
    finally:
        sys.path.remove(str(GRPC_DIR))
    return generate(workdir / "stubs")


@pytest.fixture(scope="module")
def capture() -> Iterator[Collected]:
    collected = Collected()
    receiver = EbpfReceiver(load_config(None).receivers["ebpf"], on_transactions=collected)
    receiver.start()
    try:
        yield collected
    finally:
        receiver.shutdown()


@pytest.fixture(scope="module")
def grpc_port(stubs: Path, capture: Collected) -> Iterator[int]:
    with grpc_server(stubs) as port:
        yield port


@pytest.fixture(scope="module")
def nginx_port(workdir: Path, capture: Collected) -> Iterator[int]:
    root = workdir / "nginx"
    root.mkdir()
    with nginx_h2c(root) as port:
        yield port


def same_connection(client_side: TrackedTransaction):
    """The server's transactions on the connection of ``client_side``."""
    port = client_side.tuple.local_port
    return lambda t: t.transaction.role is Role.SERVER and t.tuple.remote_port == port


def test_grpc_unary_streaming_and_not_found(stubs: Path, grpc_port: int, capture: Collected) -> None:
    """Three unary calls, a server-streaming call (5 replies) and a NOT_FOUND, on one connection.

    Each side reads its peer's frames whole, but the capture keeps only the first 8 iovecs of
    a sendmsg (ERX_MAX_IOVECS), and grpcio writes its first header block (which fills the HPACK
    table the later blocks refer to) with more: so what a side *sent* may be cut, its own
    header blocks then unknown.  Hence request facts are checked where the server read them,
    response facts where the client read them, counts and pairing on both sides — and any
    header a side did decode must agree.
    """
    proc = subprocess.Popen(
        [sys.executable, str(GRPC_DIR / "client.py"), "--stubs", str(stubs), "--target", f"127.0.0.1:{grpc_port}",
         "--scenario", "e2e"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    expected = json.loads(out)
    methods = ["Say", "Say", "Say", "Count", "Lookup"]
    assert [e["grpc_method"] for e in expected] == methods

    # Exactly one transaction per call on each side, paired by stream id.
    client = capture.wait_for(lambda t: t.pid == proc.pid, len(expected))
    assert len(client) == len(expected)
    served = capture.wait_for(same_connection(client[0]), len(expected))
    assert len(served) == len(expected)
    assert {t.pid for t in served} == {served[0].pid} and served[0].pid != proc.pid
    ctxs = sorted((t.transaction for t in client), key=lambda t: t.request.stream_id)
    stxs = sorted((t.transaction for t in served), key=lambda t: t.request.stream_id)
    assert all(t.role is Role.CLIENT for t in ctxs) and all(t.role is Role.SERVER for t in stxs)
    assert [t.request.stream_id for t in ctxs] == [t.request.stream_id for t in stxs] == [1, 3, 5, 7, 9]
    assert all(t.start_ns <= t.end_ns for t in ctxs + stxs)
    assert all(t.response.end is StreamEnd.END_STREAM and t.response.error_code is None for t in ctxs)
    # A response whose write was cut may have lost its END_STREAM: it ends with the connection.
    assert all(t.response.end is StreamEnd.END_STREAM or t.response.truncated for t in stxs)

    # Requests, as the server read them: method, path, gRPC service/method, body sizes.
    assert [(t.request.method, t.request.path) for t in stxs] == [("POST", e["path"]) for e in expected]
    assert all(t.request.is_grpc and t.request.grpc_service == SERVICE for t in stxs)
    assert [t.request.grpc_method for t in stxs] == methods
    assert [t.request.body_size for t in stxs] == [e["request_body_size"] for e in expected]

    # Responses, as the client read them: status, grpc-status and message, body sizes; the
    # streaming call is one transaction with the total size of its five replies.
    assert [t.response.status for t in ctxs] == [200] * 5
    assert [t.response.grpc_status for t in ctxs] == [0, 0, 0, 0, 5]
    assert ctxs[-1].response.grpc_message == "no such key: missing" == expected[-1]["grpc_message"]
    assert [t.response.body_size for t in ctxs] == [e["response_body_size"] for e in expected]
    assert ctxs[3].response.body_size > 5 * (5 + 100)
    for t, e in zip(stxs, expected):
        if not t.response.truncated:
            assert t.response.body_size == e["response_body_size"]

    # Whatever a side decoded of the headers it sent agrees with the other side.
    for c, s in zip(ctxs, stxs):
        if c.request.headers_known:
            assert (c.request.path, c.request.grpc_method) == (s.request.path, s.request.grpc_method)
        if s.response.headers_known and s.response.status is not None:
            assert s.response.status == c.response.status
        if s.response.headers_known and not s.response.truncated:
            assert s.response.grpc_status == c.response.grpc_status


@pytest.mark.parametrize(
    "path,options,method,status",
    [
        ("/index.html", [], "GET", 200),
        ("/missing", [], "GET", 404),
        ("/echo", ["--data-binary", "posted body=1"], "POST", 200),
    ],
    ids=["get-200", "get-404", "post-200"],
)
def test_curl_prior_knowledge_against_nginx(nginx_port: int, capture: Collected, path, options, method, status) -> None:
    proc = subprocess.Popen(
        ["curl", "-sS", "--noproxy", "*", "--max-time", "10", "--http2-prior-knowledge", *options, "-o", "/dev/null",
         "-w", "%{http_code} %{http_version} %{size_upload} %{size_download}", f"http://127.0.0.1:{nginx_port}{path}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    code, version, upload, download = out.split()
    assert (int(code), version) == (status, "2")

    (tt,) = capture.wait_for(lambda t: t.pid == proc.pid, 1)
    t = tt.transaction
    assert t.role is Role.CLIENT
    assert (t.request.method, t.request.path, t.response.status) == (method, path, status)
    assert (t.request.body_size, t.response.body_size) == (int(upload), int(download))
    assert not t.request.is_grpc and t.response.grpc_status is None

    (served,) = capture.wait_for(same_connection(tt), 1)
    s = served.transaction
    assert (s.request.method, s.request.path, s.response.status) == (method, path, status)
    assert s.response.body_size == int(download)
