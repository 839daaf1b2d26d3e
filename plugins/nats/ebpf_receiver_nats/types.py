"""NATS client-protocol messages as the parser hands them out: frozen, slotted, plain data.

Payloads are never kept — only their sizes.  Of a header block (``HPUB``/``HMSG``, ``NATS/1.0``)
only the W3C trace context and the status code are kept.  Subjects are bounded (``MAX_SUBJECT``)."""

from __future__ import annotations

from dataclasses import dataclass

PROTOCOL = "nats"
MAX_SUBJECT = 256
MAX_TEXT = 256


@dataclass(frozen=True, slots=True)
class NatsMessage:
    """A message on the wire: ``op`` is ``"PUB"``/``"HPUB"`` (client → server) or ``"MSG"``/``"HMSG"``
    (server → client).

    * ``subject``, ``reply_to`` (``None`` without one), ``sid`` (MSG/HMSG: the subscription id);
    * ``payload_size`` — bytes of payload (without the header block); ``header_size`` — bytes of
      the header block (0 without one);
    * ``traceparent`` / ``tracestate`` — from the header block;
    * ``status`` — the header block's status (``NATS/1.0 503`` → 503: no responders), else ``None``;
    * ``wire_size`` — the line, header block, payload and line ends; ``truncated`` — part of it
      was not captured (sizes come from the line).
    """

    op: str
    subject: str
    reply_to: str | None
    sid: str | None
    payload_size: int
    header_size: int
    traceparent: str | None
    tracestate: str | None
    status: int | None
    wire_size: int
    truncated: bool = False


@dataclass(frozen=True, slots=True)
class NatsError:
    """A ``-ERR '<text>'`` the server sent (text without quotes, bounded)."""

    text: str
    wire_size: int

    @property
    def code(self) -> str:
        """A low-cardinality name for the error: ``permissions_violation``,
        ``authorization_violation``, ``maximum_payload_violation``, ``unknown_protocol_operation``...
        (the text up to its first quote or ``for``/``:``, lower-cased, spaces as ``_``)."""
        text = self.text
        for stop in (" for ", ":", " '", ' "', " ("):
            cut = text.find(stop)
            if cut > 0:
                text = text[:cut]
        words = "".join(c if c.isalnum() else " " for c in text.lower()).split()
        return "_".join(words[:6]) or "unknown"
