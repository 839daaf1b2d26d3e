"""The connections → protocols stages wired as the ebpf receiver wires them, for unit tests that
feed events and look at the transactions each one finished."""

from __future__ import annotations

from receiver.connections.peers import LocalPeers
from receiver.connections.tracker import ConnectionTracker, TrackerLimits
from receiver.protocols.registry import ProtocolRegistry
from receiver.protocols.stage import ProtocolStage


class Collected:
    """The telemetry end of the chain: keeps what the protocol stage hands on."""

    def __init__(self) -> None:
        self.transactions: list = []

    def on_transactions(self, txs, now_ns: int) -> None:
        self.transactions.extend(txs)

    def end_batch(self, now_ns: int, flush: bool = False) -> None:
        pass


class ParsingTracker:
    """A tracker feeding a protocol stage; ``on_data``/``on_conn``/``expire`` return the
    transactions that call finished.  Other attributes are the tracker's, then the stage's."""

    def __init__(self, registry: ProtocolRegistry | None = None, tls_flag: int = 0x100, netns=None,
                 limits: TrackerLimits = TrackerLimits(), on_uninteresting=None, on_tls_ciphertext=None,
                 on_server_ingress=None) -> None:
        self.sink = Collected()
        self.peers = LocalPeers(limits.max_connections)
        self.stage = ProtocolStage(registry or ProtocolRegistry(), self.sink, self.peers.scope_of,
                                   detect_limit_bytes=limits.detect_limit_bytes, on_uninteresting=on_uninteresting)
        self.tracker = ConnectionTracker(self.stage, tls_flag, limits, on_tls_ciphertext=on_tls_ciphertext,
                                         on_server_ingress=on_server_ingress, netns=netns, peers=self.peers)

    def _drain(self) -> list:
        self.stage.end_batch(0)
        out, self.sink.transactions = self.sink.transactions, []
        return out

    def on_data(self, ev) -> list:
        self.tracker.on_data(ev)
        return self._drain()

    def on_conn(self, ev, is_close: bool) -> list:
        self.tracker.on_conn(ev, is_close)
        return self._drain()

    def expire(self, now_ns: int) -> list:
        self.tracker.expire(now_ns)
        return self._drain()

    def has_local_peer(self, *args, **kwargs) -> bool:
        return self.peers.has_local_peer(*args, **kwargs)

    def __len__(self) -> int:
        return len(self.tracker)

    def __getattr__(self, name):
        try:
            return getattr(self.tracker, name)
        except AttributeError:
            return getattr(self.stage, name)
