"""The crash ledger with the real agent: nginx traced by the real kernel, spans exported to the
fault matrix's OTLP server through a persistent queue; the agent is SIGKILLed while its batch
processor holds spans (timeout 1 h), and the restarted agent counts exactly the spans that never
reached the server as ``exporter_dropped_items_total{reason="agent_killed"}``."""

from __future__ import annotations

import shutil
import time
import urllib.request

import pytest

from bench.reliability.agent_run import AgentRun, AgentSettings
from bench.reliability.collector_rows import queued_span_paths
from bench.reliability.fault_sink import FaultSink
from bench.services import INDEX_HTML, Nginx, Workdir
from receiver.exporters.persistent_queue import exporter_directory

pytestmark = [pytest.mark.e2e, pytest.mark.kernel]

NAME = "erx-crash-ledger-nginx"  # its own service name: RED series told apart from other nginx
REQUESTS = 23  # batches of 10: 20 spans exported, 3 held by the batch processor


def killed(m) -> float:
    return m.sum("ebpf_receiver_exporter_dropped_items_total", signal="traces", reason="agent_killed")


def test_the_restarted_agent_counts_the_spans_a_sigkill_lost(tmp_path):
    workdir = Workdir()
    binary = workdir.file(NAME)
    shutil.copy(shutil.which("nginx"), binary)
    nginx = Nginx(workdir, binary=str(binary)).start()
    (nginx.dir / "www" / "crash.html").write_text(INDEX_HTML)
    sink = FaultSink(pids=frozenset(nginx.pids)).start()
    storage = tmp_path / "queue"
    agent = AgentRun(tmp_path, "agent",
                     AgentSettings("otlp", queue={"storage": str(storage)},
                                   batch={"send_batch_size": 10, "send_batch_max_size": 10, "timeout": "1h"}),
                     f"127.0.0.1:{sink.grpc_port}", nginx.proc.pid, [sink.grpc_port, sink.http_port])
    try:
        agent.start()
        for _ in range(REQUESTS):
            with urllib.request.urlopen(f"http://127.0.0.1:{nginx.port}/crash.html", timeout=10) as r:
                assert r.status == 200
        # Every request read from the kernel and turned into a span (counted in the RED metrics),
        # the full batches delivered: what is left is in the batch processor.
        deadline = time.monotonic() + 30
        while True:
            m = agent.metrics()
            queued = queued_span_paths(exporter_directory(str(storage), "otlp"))
            if m.red_server_count(NAME) == REQUESTS and not queued and sink.idle_seconds() > 1.0:
                break
            assert time.monotonic() < deadline, f"RED {m.red_server_count(NAME)}, queued {len(queued)}"
            time.sleep(0.2)
        foreign = m.red_other_count(NAME)  # other processes traced meanwhile: their spans are held too
        foreign_delivered = sum(sink.counts().foreign.values())
        agent.kill()
        received = sink.counts().received_unique
        assert 0 < received < REQUESTS

        agent.start()
        time.sleep(2.0)  # the restarted agent would have replayed anything left on disk by now
        after = agent.metrics()
        assert sink.counts().received_unique == received  # the held spans are gone for good...
        lost = REQUESTS - received
        assert killed(after) >= lost  # ...and counted, exactly, unless other processes' spans were held too
        assert killed(after) - lost <= max(0.0, foreign - foreign_delivered)
        assert "died holding" in agent.log_path.read_text() and "agent_killed" in agent.log_path.read_text()
        assert agent.stop() == 0

        agent.start()  # counted once: the ledger starts again from zero
        assert killed(agent.metrics()) == 0
        assert agent.stop() == 0
    finally:
        agent.stop()
        sink.stop()
        nginx.stop()
