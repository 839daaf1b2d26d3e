"""AMQP 0-9-1 commands as the parser hands them out: frozen, slotted, plain data.

A *command* is a method frame plus, for content-carrying methods (``basic.publish``,
``basic.deliver``, ``basic.get-ok``, ``basic.return``), its content header and body frames.
Message bodies are never kept — only their size; of the content header only the W3C trace
context (``traceparent``/``tracestate`` in the ``headers`` table).  Names, routing keys and
queue names are AMQP short strings (at most 255 bytes).
"""

from __future__ import annotations

from dataclasses import dataclass

PROTOCOL = "amqp"

REPLY_CODE_NAMES = {
    200: "REPLY_SUCCESS", 311: "CONTENT_TOO_LARGE", 312: "NO_ROUTE", 313: "NO_CONSUMERS", 320: "CONNECTION_FORCED",
    402: "INVALID_PATH", 403: "ACCESS_REFUSED", 404: "NOT_FOUND", 405: "RESOURCE_LOCKED",
    406: "PRECONDITION_FAILED", 501: "FRAME_ERROR", 502: "SYNTAX_ERROR", 503: "COMMAND_INVALID",
    504: "CHANNEL_ERROR", 505: "UNEXPECTED_FRAME", 506: "RESOURCE_ERROR", 530: "NOT_ALLOWED",
    540: "NOT_IMPLEMENTED", 541: "INTERNAL_ERROR",
}


def reply_code_name(code: int) -> str:
    return REPLY_CODE_NAMES.get(code, str(code))


@dataclass(frozen=True, slots=True)
class AmqpCommand:
    """One AMQP method (with its content, if it carries one).

    * ``name`` — ``"<class>.<method>"`` as the specification spells it (``"basic.publish"``,
      ``"queue.declare-ok"``), or ``"unknown.<class>.<method>"``;
    * ``channel`` — the channel it was sent on;
    * ``exchange``, ``routing_key``, ``queue``, ``delivery_tag`` — the method's arguments of
      those names, when it has them;
    * ``body_size`` — the content's declared body size (content-carrying methods);
    * ``traceparent`` / ``tracestate`` — from the content header's ``headers`` table;
    * ``reply_code`` / ``reply_text`` — of ``channel.close``, ``connection.close`` and
      ``basic.return`` (text bounded);
    * ``redelivered`` — ``basic.deliver`` / ``basic.get-ok``'s flag;
    * ``wire_size`` — bytes of every frame of the command (method, header, bodies);
      ``truncated`` — some of it was not captured (sizes are still from the wire);
    * ``nowait`` — the request's ``no-wait`` bit: the broker sends no reply.
    """

    name: str
    channel: int
    exchange: str | None = None
    routing_key: str | None = None
    queue: str | None = None
    delivery_tag: int | None = None
    body_size: int | None = None
    traceparent: str | None = None
    tracestate: str | None = None
    reply_code: int | None = None
    reply_text: str | None = None
    redelivered: bool = False
    wire_size: int = 0
    truncated: bool = False
    nowait: bool = False

    @property
    def is_error_close(self) -> bool:
        """A ``channel.close``/``connection.close`` that reports an error (not 200)."""
        return self.name in ("channel.close", "connection.close") and self.reply_code not in (None, 200)
