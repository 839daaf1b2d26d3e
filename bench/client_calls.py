"""User-space CPU per client call: HTTP/1 calls a traced process makes to another host, through
the connection tracker, the protocol stage and the telemetry assembler (trace linking included),
on one core (``time.thread_time``), with the agent's garbage-collector settings.  A keep-alive
connection per 100 calls.  Compare two trees in one run with ``PYTHONPATH=<tree>``:

    python -m bench.client_calls [--calls 100000] [--rounds 3]
"""
import argparse
import socket
import time

from receiver.capture.events import ConnEvent, DataEvent
from receiver.connections.peers import LocalPeers
from receiver.connections.tracker import ConnectionTracker, TrackerLimits
from receiver.discovery.resources import ProcessResources
from receiver.model.endpoints import Tuple
from receiver.protocols.base import Direction, Role
from receiver.protocols.registry import ProtocolRegistry
from receiver.protocols.stage import ProtocolStage
from receiver.telemetry.assemble import TelemetryAssembler
from receiver.telemetry.clock import MonotonicToWall

REQ = b"GET /items HTTP/1.1\r\nHost: shop\r\n\r\n"
RESP = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

class AssemblerSink:
    """The protocol stage's next stage, as the receiver wires it: transactions to the assembler,
    whose released spans are taken at the end of each batch."""

    def __init__(self, asm: TelemetryAssembler) -> None:
        self.asm = asm
        self.n = 0

    def on_transactions(self, txs, now_ns: int) -> None:
        for t in txs:
            self.asm.add(t, now_ns)
        self.n += len(txs)

    def end_batch(self, now_ns: int, flush: bool = False) -> None:
        self.asm.take(now_ns)

def run(n_calls: int, remote: str, per_conn: int = 100) -> tuple[float, int]:
    """CPU µs per call, and the transactions made."""
    asm = TelemetryAssembler(ProcessResources(proc_root="/nonexistent", host_name="h"), MonotonicToWall(), None)
    sink = AssemblerSink(asm)
    peers = LocalPeers(TrackerLimits().max_connections)
    stage = ProtocolStage(ProtocolRegistry(), sink, peers.scope_of, detect_limit_bytes=TrackerLimits().detect_limit_bytes)
    tr = ConnectionTracker(stage, 0x100, TrackerLimits(), peers=peers)
    ts = 10**9
    conn = 0
    t0 = time.thread_time()
    for i in range(n_calls):
        if i % per_conn == 0:
            conn += 1
            t = Tuple(socket.AF_INET, 1, "10.0.0.5", 30000 + conn % 30000, remote, 5432)
            tr.on_conn(ConnEvent(2, Role.CLIENT, 0, 10, 10, conn, 0, ts, ts, t, 3, 0, 0), False)
        ts += 200_000
        tr.on_data(DataEvent(1, Direction.EGRESS, Role.CLIENT, 2, 10, 10, conn, 0, ts, ts, t, len(REQ), 3, REQ))
        tr.on_data(DataEvent(1, Direction.INGRESS, Role.CLIENT, 2, 10, 10, conn, 0, ts + 50, ts + 50, t, len(RESP), 3, RESP))
        if i % 64 == 63:
            stage.end_batch(ts)
    stage.end_batch(ts)
    return (time.thread_time() - t0) / n_calls * 1e6, sink.n

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args(argv)
    from receiver.cli import tune_garbage_collector
    tune_garbage_collector()
    for _ in range(args.rounds):
        us, done = run(args.calls, "10.9.9.9")
        print(f"client call to another host: {us:.2f} us/call ({done} transactions)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
