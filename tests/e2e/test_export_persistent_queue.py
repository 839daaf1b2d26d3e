"""The persistent sending queue, end to end: data queued while the collector is down survives a
SIGKILL and reaches a real collector (rotel) after a restart with the same storage directory.

Two proofs:

* an exporter in a subprocess (this file run as a script: ``feed`` then ``drain``), configured
  from YAML exactly as the agent configures it, fed a known set of spans — every span id
  arrives exactly once;
* the real agent (``ebpf-receiver run``) capturing nginx traffic — every span found in the
  queue files when the agent was killed arrives after the restart.
"""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
if __name__ == "__main__":  # run as a script: make the repository importable
    sys.path.insert(0, str(REPO))

from receiver.config import load_config  # noqa: E402
from receiver.exporters.persistent_queue import SUFFIX, decode_batch, exporter_directory  # noqa: E402

SPANS_PER_BATCH = 3


def span_ids(tag: str, batch: int) -> list[bytes]:
    """Deterministic, unique span ids for (run tag, batch number)."""
    return [uuid.uuid5(uuid.NAMESPACE_URL, f"{tag}/{batch}/{i}").bytes[:8] for i in range(SPANS_PER_BATCH)]


def exporter_from_config(config_path: str, exporter_id: str):
    """The exporter the agent would build for ``exporter_id`` (see receiver/pipeline.py)."""
    from prometheus_client import CollectorRegistry

    from receiver.exporters.otlp_grpc import OtlpGrpcExporter
    from receiver.exporters.otlp_http import OtlpHttpExporter
    from receiver.component.self_metrics import SelfMetrics

    config = load_config([config_path])
    metrics = SelfMetrics(CollectorRegistry())
    cls = OtlpGrpcExporter if exporter_id.split("/")[0] == "otlp" else OtlpHttpExporter
    return cls(exporter_id, config.exporters[exporter_id], metrics), metrics


def feed(config_path: str, exporter_id: str, tag: str, batches: int) -> None:
    """Queue ``batches`` batches, say so on stdout, then wait to be killed."""
    from receiver.model.telemetry import Resource, Span, SpanKind

    exporter, _ = exporter_from_config(config_path, exporter_id)
    exporter.start()
    resource = Resource.from_dict({"service.name": "persistent-queue-e2e"})
    now = time.time_ns()
    for b in range(batches):
        exporter.consume_traces(
            [
                Span(uuid.uuid4().bytes, sid, f"pq {tag} {b}.{i}", SpanKind.SERVER, now, now + 1000, resource)
                for i, sid in enumerate(span_ids(tag, b))
            ]
        )
    print("queued", flush=True)
    time.sleep(600)


def drain(config_path: str, exporter_id: str, timeout: float) -> None:
    """Start on the existing queue, wait until it is empty, shut down, report the counters."""
    exporter, metrics = exporter_from_config(config_path, exporter_id)
    exporter.start()
    directory = exporter_directory(load_config([config_path]).exporters[exporter_id].sending_queue.storage, exporter_id)
    deadline = time.monotonic() + timeout
    while any(n.endswith(SUFFIX) for n in os.listdir(directory)) and time.monotonic() < deadline:
        time.sleep(0.05)
    exporter.shutdown(5)
    reg = metrics.registry
    print(json.dumps({
        "sent": reg.get_sample_value("ebpf_receiver_exporter_sent_items_total", {"exporter": exporter_id, "signal": "traces"}) or 0,
        "left": sorted(n for n in os.listdir(directory) if n.endswith(SUFFIX)),
    }), flush=True)


if __name__ == "__main__":
    import logging

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    command, *args = sys.argv[1:]
    if command == "feed":
        feed(args[0], args[1], args[2], int(args[3]))
    else:
        drain(args[0], args[1], float(args[2]))
    sys.exit(0)


# --- the tests -------------------------------------------------------------------------------------

from tests.support.agent import AgentProcess  # noqa: E402
from tests.support.ports import wait_until  # noqa: E402
from tests.support.rotel import RotelCollector  # noqa: E402
from tests.support.servers import NginxServer  # noqa: E402

pytestmark = pytest.mark.e2e

RETRY = "retry_on_failure: {initial_interval: 100ms, max_interval: 500ms, max_elapsed_time: 0}"


def script(*args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, __file__, *args], cwd=REPO, text=True, start_new_session=True, **kw)


def queued_files(directory: str) -> list[str]:
    return sorted(n for n in os.listdir(directory) if n.endswith(SUFFIX)) if os.path.isdir(directory) else []


def queued_span_ids(directory: str) -> dict[str, str]:
    """span id (hex) → url.path of every span in the queue files."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    out = {}
    for name in queued_files(directory):
        try:
            with open(os.path.join(directory, name), "rb") as f:
                _, _, payload = decode_batch(f.read())
        except FileNotFoundError:
            continue
        request = ExportTraceServiceRequest.FromString(payload)
        for rs in request.resource_spans:
            for ss in rs.scope_spans:
                for s in ss.spans:
                    attrs = {a.key: a.value.string_value for a in s.attributes}
                    out[s.span_id.hex()] = attrs.get("url.path", "")
    return out


@pytest.mark.parametrize(
    ("exporter_id", "settings"),
    [
        ("otlp", "endpoint: {grpc}\n    tls: {{insecure: true}}"),
        ("otlphttp/json", "endpoint: {http}\n    encoding: json"),
    ],
    ids=["grpc", "http-json"],
)
def test_queued_batches_survive_sigkill_and_arrive_exactly_once(tmp_path, exporter_id, settings):
    batches = 6
    collector = RotelCollector(tmp_path, signals=("traces",))  # ports chosen; down for now
    storage = tmp_path / "queue"
    config = tmp_path / "exporter.yaml"
    config.write_text(
        f"""
receivers: {{ebpf: }}
exporters:
  {exporter_id}:
    {settings.format(grpc=collector.grpc_endpoint, http=collector.http_endpoint)}
    timeout: 1s
    sending_queue: {{sizer: requests, queue_size: 100, storage: {storage}}}
    {RETRY}
service:
  pipelines:
    traces: {{receivers: [ebpf], exporters: [{exporter_id}]}}
"""
    )
    directory = exporter_directory(str(storage), exporter_id)
    tag = uuid.uuid4().hex

    feeder = script("feed", str(config), exporter_id, tag, str(batches), stdout=subprocess.PIPE)
    try:
        assert feeder.stdout.readline().strip() == "queued"
        assert len(queued_files(directory)) == batches  # on disk before consume returned
    finally:
        os.killpg(feeder.pid, signal.SIGKILL)
        feeder.wait(10)
        feeder.stdout.close()
    assert feeder.returncode == -signal.SIGKILL
    assert len(queued_files(directory)) == batches  # the kill lost nothing

    with collector:
        drained = subprocess.run(
            [sys.executable, __file__, "drain", str(config), exporter_id, "20"],
            cwd=REPO, capture_output=True, text=True, timeout=60,
        )
        assert drained.returncode == 0, drained.stderr
        report = json.loads(drained.stdout)
        assert report == {"sent": batches * SPANS_PER_BATCH, "left": []}, drained.stderr
        expected = {sid.hex() for b in range(batches) for sid in span_ids(tag, b)}

        def arrived():
            counts = collections.Counter(s.span_id for s in collector.spans() if s.span_id in expected)
            return counts if set(counts) == expected else None

        counts = wait_until(arrived, timeout=10, interval=0.1, what="every queued span at rotel")
    assert set(counts.values()) == {1}, "a span arrived twice"
    assert "found in" in drained.stderr and "sending them first" in drained.stderr


def agent_config(endpoint: str, grpc_port: int, storage: Path) -> str:
    return f"""
receivers:
  ebpf:
    poll_interval: 20ms
    exclude_ports: [{grpc_port}]
processors:
  batch:
    timeout: 100ms
exporters:
  otlp:
    endpoint: {endpoint}
    tls: {{insecure: true}}
    timeout: 1s
    sending_queue: {{storage: {storage}}}
    {RETRY}
service:
  pipelines:
    traces: {{receivers: [ebpf], processors: [batch], exporters: [otlp]}}
  shutdown_timeout: 5s
"""


@pytest.mark.kernel
def test_the_agent_keeps_its_queue_across_a_sigkill(tmp_path):
    collector = RotelCollector(tmp_path, signals=("traces",))  # down while the agent captures
    storage = tmp_path / "queue"
    directory = exporter_directory(str(storage), "otlp")
    run_dir = tmp_path / "run1"
    run_dir.mkdir()
    paths = [f"/status/pq-{uuid.uuid4().hex[:12]}-{i}" for i in range(5)]
    with NginxServer(tmp_path) as nginx:
        agent = AgentProcess(run_dir, agent_config(collector.grpc_endpoint, collector.grpc_port, storage)).start()
        try:
            for path in paths:
                subprocess.run(["curl", "-s", "-o", "/dev/null", nginx.url + path], check=True, timeout=10)

            def all_queued():
                queued = queued_span_ids(str(directory))
                return queued if set(paths) <= set(queued.values()) else None

            queued = wait_until(all_queued, timeout=20, interval=0.1, what="the requests' spans in the queue files")
        finally:
            os.killpg(agent.pid, signal.SIGKILL)
            agent.proc.wait(10)
            agent.stop()
    queued = queued_span_ids(str(directory))  # what the killed agent left, in flight included
    assert set(paths) <= set(queued.values())

    run_dir = tmp_path / "run2"
    run_dir.mkdir()
    with collector:
        agent = AgentProcess(run_dir, agent_config(collector.grpc_endpoint, collector.grpc_port, storage)).start()
        try:
            def arrived():
                got = {s.span_id for s in collector.spans()}
                return set(queued) <= got

            wait_until(arrived, timeout=20, interval=0.1, what="every queued span at rotel")
            received = collections.Counter(s.span_id for s in collector.spans() if s.span_id in queued)
            assert max(received.values()) == 1
            assert {s.attributes.get("url.path") for s in collector.spans() if s.span_id in queued} >= set(paths)
        finally:
            assert agent.stop() == 0
    assert "from a previous run found in" in agent.stderr()
