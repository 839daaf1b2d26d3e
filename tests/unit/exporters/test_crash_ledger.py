"""The persistent queue's crash ledger: the file survives a real SIGKILL, the next start counts
the difference once (``agent_killed``), and a clean run through every processor that drops
items (the batch processor's backlog, tail sampling) leaves nothing to count."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from receiver.component import ComponentRegistry
from receiver.config import load_config_text
from receiver.distribution import builtin_factories
from receiver.exporters.crash_ledger import LEDGER_NAME, SIZE, CrashLedger
from receiver.exporters.persistent_queue import SUFFIX, exporter_directory
from receiver.model.signals import Signal
from receiver.model.telemetry import LogRecord, Resource, Span, SpanKind, StatusCode
from receiver.pipeline import Agent
from tests.support.probe_receiver import PROBE_FACTORY
from tests.support.ports import free_port

REPO = Path(__file__).resolve().parents[3]
CHILD_ENV = {**os.environ, "PYTHONPATH": str(REPO)}
T0 = 1_700_000_000 * 10**9


def test_a_fresh_ledger_has_nothing_to_count_and_keeps_counts_in_its_file(tmp_path):
    ledger = CrashLedger(str(tmp_path))
    ledger.enter(Signal.TRACES, 3)  # before open: kept in memory, written at open
    left = ledger.open()
    assert (left.pid, left.lost, left.unreadable) == (0, {}, "")
    ledger.enter(Signal.TRACES, 10)
    ledger.settle(Signal.TRACES, 4)
    ledger.enter(Signal.LOGS, 2)
    ledger.enter(Signal.METRICS, 99)  # not counted: snapshots
    assert ledger.counts(Signal.TRACES) == (13, 4)
    data = (tmp_path / LEDGER_NAME).read_bytes()  # the page cache, as another process sees it
    assert len(data) == SIZE and data[:4] == b"ERXL"
    assert int.from_bytes(data[16:24], "little") == 13 and int.from_bytes(data[24:32], "little") == 4
    assert int.from_bytes(data[32:40], "little") == 2
    assert ledger.close() == {Signal.TRACES: 9, Signal.LOGS: 2}  # entered, never settled
    assert ledger.close() == {Signal.TRACES: 9, Signal.LOGS: 2}  # idempotent
    left = CrashLedger(str(tmp_path)).open()
    assert left.pid == os.getpid() and left.lost == {Signal.TRACES: 9, Signal.LOGS: 2}


def test_a_file_that_is_not_a_ledger_is_reported_and_rewritten(tmp_path):
    (tmp_path / LEDGER_NAME).write_bytes(b"garbage")
    ledger = CrashLedger(str(tmp_path))
    left = ledger.open()
    assert left.lost == {} and "7 bytes" in left.unreadable
    ledger.close()
    assert CrashLedger(str(tmp_path)).open().unreadable == ""


def _child_ledger(directory: str) -> None:
    ledger = CrashLedger(directory)
    ledger.open()
    ledger.enter(Signal.TRACES, 1000)
    ledger.settle(Signal.TRACES, 993)
    os.kill(os.getpid(), signal.SIGKILL)  # no close, no flush, no atexit


def test_the_counters_survive_a_sigkill_without_fsync(tmp_path):
    child = subprocess.run([sys.executable, __file__, "ledger", str(tmp_path)], cwd=REPO, env=CHILD_ENV,
                           timeout=30)
    assert child.returncode == -signal.SIGKILL
    left = CrashLedger(str(tmp_path)).open()
    assert left.lost == {Signal.TRACES: 7}
    assert left.pid not in (0, os.getpid())


# -- through the agent: pipelines, processors, the persistent queue -----------------------------


def make_agent(storage: Path, processors: str, pipeline_processors: str, logs: bool = False) -> Agent:
    registry = ComponentRegistry.of(builtin_factories() + [
        PROBE_FACTORY,
    ])
    config = load_config_text(textwrap.dedent(f"""\
        receivers: {{probe: }}
        processors: {processors}
        exporters:
          otlp:
            endpoint: 127.0.0.1:{free_port()}
            tls: {{insecure: true}}
            sending_queue: {{storage: {storage}, queue_size: 100000, sizer: items}}
        service:
          pipelines:
            traces: {{receivers: [probe], processors: [{pipeline_processors}], exporters: [otlp]}}
            {"logs: {receivers: [probe], processors: [" + pipeline_processors + "], exporters: [otlp]}" if logs else ""}
          shutdown_timeout: 1s
        """), environ={}, components=registry.config_classes())
    return Agent(config, components=registry)


def span(i: int, error: bool = False) -> Span:
    return Span(i.to_bytes(16, "big"), (i + 1).to_bytes(8, "big"), "GET /x", SpanKind.SERVER, T0, T0 + 10**6,
                Resource.from_dict({"service.name": "shop"}), attributes={"url.path": "/x"},
                status_code=StatusCode.ERROR if error else StatusCode.UNSET)


def log_record(i: int) -> LogRecord:
    return LogRecord(T0, f"line {i}", Resource.from_dict({"service.name": "shop"}), trace_id=i.to_bytes(16, "big"))


def stored_items(storage: Path, signal_code: int = 1) -> int:
    """Items in the queue's batch files of one signal (1 traces, 3 logs: the header's code)."""
    directory = exporter_directory(str(storage), "otlp")
    total = 0
    for name in os.listdir(directory):
        if name.endswith(SUFFIX):
            header = (Path(directory) / name).read_bytes()[:12]
            if header[5] == signal_code:
                total += int.from_bytes(header[8:12], "little")
    return total


def killed_count(agent: Agent) -> float:
    return agent.registry.get_sample_value(
        "ebpf_receiver_exporter_dropped_items_total", {"exporter": "otlp", "signal": "traces", "reason": "agent_killed"}
    ) or 0.0


def test_a_clean_run_under_dropping_processors_leaves_nothing_to_count(tmp_path, caplog):
    storage = tmp_path / "queue"
    # Tail sampling keeps error traces only.  The first half is emitted before the agent starts:
    # the batch processor's thread is not running yet, so its backlog (8192 spans) overflows for
    # sure; the second half flows through the running pipeline.
    agent = make_agent(
        storage,
        "{batch: {send_batch_size: 4096, timeout: 1h}, "
        "tail_sampling: {decision_wait: 50ms, num_traces: 1000, policies: [{name: errors, type: status_code, "
        "status_code: {status_codes: [ERROR]}}]}}",
        "tail_sampling, batch",
        logs=True,
    )
    probe = agent.receiver
    sent = 0
    for b in range(60):
        if b == 30:
            agent.start()
        batch = [span(b * 1000 + i, error=i % 2 == 0) for i in range(1000)]
        probe.emit(batch)
        probe.emit_logs([log_record(b * 1000 + i) for i in range(0, 1000, 5)])  # 200 per batch, half kept
        sent += len(batch)
    agent.shutdown()
    ledger = agent.exporters["otlp"].crash_ledger
    entered, settled = ledger.counts(Signal.TRACES)
    sampled_out = agent.processors[-1].engine.dropped["traces"]  # processors: downstream first
    refused = agent.processors[0].refused[Signal.TRACES]
    assert entered == sent == settled
    assert "crash ledger" not in caplog.text  # nothing unsettled at shutdown
    assert sampled_out == sent // 2 and refused > 0  # both processors dropped spans...
    assert stored_items(storage) == sent - sampled_out - refused  # ...which never reached the queue
    logs_sent = sent // 5
    assert ledger.counts(Signal.LOGS) == (logs_sent, logs_sent)
    logs_sampled_out = agent.processors[-1].engine.dropped["logs"]
    assert logs_sampled_out == logs_sent // 2  # the logs of not-sampled traces: settled too
    assert stored_items(storage, 3) == logs_sent - logs_sampled_out

    again = make_agent(storage, "{batch: {}}", "batch")
    again.start()
    try:
        assert killed_count(again) == 0
    finally:
        again.shutdown()


def _child_agent(storage: str, n: str) -> None:
    """An agent whose batch processor holds ``n`` spans (timeout 1 h), then SIGKILLed."""
    agent = make_agent(Path(storage), "{batch: {send_batch_size: 100, send_batch_max_size: 100, timeout: 1h}}", "batch")
    agent.start()
    agent.receiver.emit([span(i) for i in range(int(n))])  # 250: two batches of 100 queued, 50 held
    ledger = agent.exporters["otlp"].crash_ledger
    while ledger.counts(Signal.TRACES)[1] < 200:  # settled once queued: the files are in place
        time.sleep(0.001)
    print("fed", flush=True)
    sys.stdin.read()  # until the test kills us


def test_the_next_start_counts_what_a_killed_agent_held_once(tmp_path, caplog):
    storage = tmp_path / "queue"
    child = subprocess.Popen([sys.executable, __file__, "agent", str(storage), "250"], cwd=REPO, env=CHILD_ENV,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "fed"
    finally:
        child.kill()
        child.wait(10)
        child.stdout.close()
        child.stdin.close()
    assert child.returncode == -signal.SIGKILL
    assert stored_items(storage) == 200

    caplog.set_level(logging.WARNING, logger="receiver.exporters.sending_queue")
    agent = make_agent(storage, "{batch: {}}", "batch")
    agent.start()
    agent.shutdown()
    assert killed_count(agent) == 50
    lines = [r.getMessage() for r in caplog.records if "agent_killed" in r.getMessage()]
    assert len(lines) == 1 and f"pid {child.pid}" in lines[0] and "50 traces" in lines[0]

    agent = make_agent(storage, "{batch: {}}", "batch")  # counted once: the ledger was reset
    agent.start()
    agent.shutdown()
    assert killed_count(agent) == 0


if __name__ == "__main__":
    {"ledger": _child_ledger, "agent": _child_agent}[sys.argv[1]](*sys.argv[2:])
