"""The crash ledgers one pipeline writes to: items entering it, and items its processors drop.

An exporter with a persistent queue keeps a crash ledger
(:class:`~receiver.exporters.crash_ledger.CrashLedger`): items *entered* into the pipelines that
feed it, and items *settled* — queued on disk or counted by it, or dropped and counted by a
processor in between.  The host builds one :class:`PipelineLedger` per pipeline from the ledgers
of that pipeline's exporters, counts what enters at the pipeline's head (:class:`LedgerEntrance`)
and hands the pipeline ledger to its processors (``CreateSettings.ledger``).

**The processor contract:** a processor that drops items (filters, samples, refuses) calls
``settings.ledger.settle(signal, n)`` for them, once per batch, besides counting them in its own
metrics.  One that does not would make the next start of the agent count them as lost in a
crash (``agent_killed``) after a clean shutdown.
"""

from __future__ import annotations

from typing import Protocol

from receiver.model.signals import Signal


class Ledger(Protocol):
    def enter(self, signal: Signal, n: int) -> None: ...

    def settle(self, signal: Signal, n: int) -> None: ...


class PipelineLedger:
    """The ledgers of one pipeline's exporters (none: every call does nothing)."""

    __slots__ = ("_ledgers",)

    def __init__(self, ledgers: tuple[Ledger, ...] = ()) -> None:
        self._ledgers = tuple(ledgers)

    def __bool__(self) -> bool:
        return bool(self._ledgers)

    def enter(self, signal: Signal, n: int) -> None:
        for ledger in self._ledgers:
            ledger.enter(signal, n)

    def settle(self, signal: Signal, n: int) -> None:
        for ledger in self._ledgers:
            ledger.settle(signal, n)


NO_LEDGER = PipelineLedger()


class LedgerEntrance:
    """The head of a traces or logs pipeline: counts each batch as entered, then hands it on."""

    def __init__(self, ledger: PipelineLedger, head) -> None:
        self._ledger = ledger
        self._head = head

    def consume_traces(self, spans: list) -> None:
        self._ledger.enter(Signal.TRACES, len(spans))
        self._head.consume_traces(spans)

    def consume_logs(self, records: list) -> None:
        self._ledger.enter(Signal.LOGS, len(records))
        self._head.consume_logs(records)

    def consume_metrics(self, metrics: list) -> None:  # not counted (snapshots of cumulative state)
        self._head.consume_metrics(metrics)
