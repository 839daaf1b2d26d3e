"""AMQP 0-9-1 transactions → span descriptions (OTel messaging semantic conventions, RabbitMQ).

Only the client side gets spans (the broker's view would duplicate them).

* ``basic.publish`` → PRODUCER span ``publish <exchange>`` (``amq.default`` for the default
  exchange ``""``), ``messaging.operation.type=send``, metric ``messaging.client.operation.duration``;
* ``basic.deliver`` → CONSUMER span ``receive <exchange>``, ``messaging.operation.type=receive``
  (pushed to a consumer; the agent sees the delivery, not the processing), metric
  ``messaging.client.consumed.messages`` (a count);
* ``basic.get`` → CLIENT span ``receive <exchange>`` with the reply's latency (``get-empty``:
  ``messaging.batch.message_count=0``), metric ``messaging.client.operation.duration``;
* ``basic.nack`` / ``basic.reject`` → CLIENT span ``nack``/``reject``, ``settle``;
* any other request the broker refused (``channel.close``/``connection.close`` with a code other
  than 200) → CLIENT span named after the method (``queue.declare``) with ``error.type`` = the
  reply code's name (``NOT_FOUND``, ``PRECONDITION_FAILED``, ``ACCESS_REFUSED``...); successful
  management methods (declare, bind, qos, channel open...) make no span.

Attributes: ``messaging.system=rabbitmq``, ``messaging.operation.name``,
``messaging.destination.name`` (the exchange), ``messaging.rabbitmq.destination.routing_key``
(when not empty), ``messaging.rabbitmq.message.delivery_tag``, ``messaging.message.body.size``,
``server.address``/``server.port``, ``network.peer.*``.  The W3C trace context of the message
headers is handed on as the span's ``traceparent``.  Bodies are never read.
"""

from __future__ import annotations

from receiver.protocols.api import ConnectionFacts, SpanDescription, server_attributes
from receiver.protocols.base import Role, Transaction

from .types import AmqpCommand, reply_code_name

SYSTEM = "rabbitmq"
DURATION = "messaging.client.operation.duration"
CONSUMED = "messaging.client.consumed.messages"
DEFAULT_EXCHANGE = "amq.default"


def describe(transaction: Transaction, facts: ConnectionFacts) -> SpanDescription | None:
    if transaction.role != Role.CLIENT:
        return None
    request: AmqpCommand = transaction.request
    response: AmqpCommand | None = transaction.response
    name = request.name
    if name == "basic.publish":
        return _message_span(request, facts, "publish", "send", "producer", DURATION, "duration", None)
    if name == "basic.deliver":
        return _message_span(request, facts, "receive", "receive", "consumer", CONSUMED, "count", None)
    if name == "basic.get":
        if response is not None and response.name == "basic.get-ok":
            return _message_span(response, facts, "receive", "receive", "client", DURATION, "duration", 1)
        if response is not None and response.name == "basic.get-empty":
            return _plain_span(request, facts, "receive", "receive", None, batch=0)
        return _plain_span(request, facts, "receive", "receive", response)
    if name in ("basic.nack", "basic.reject"):
        return _plain_span(request, facts, name.split(".")[1], "settle", None)
    if response is not None and response.is_error_close or response is None and request.name != "connection.close":
        return _plain_span(request, facts, name, None, response)
    return None


def _base(facts: ConnectionFacts, op: str, op_type: str | None) -> tuple[dict[str, object], list[tuple[str, object]]]:
    attrs: dict[str, object] = {"messaging.system": SYSTEM, "messaging.operation.name": op}
    metric: list[tuple[str, object]] = [("messaging.system", SYSTEM), ("messaging.operation.name", op)]
    if op_type is not None:
        attrs["messaging.operation.type"] = op_type
        metric.append(("messaging.operation.type", op_type))
    peer, peer_metric = server_attributes(facts)
    attrs.update(peer)
    return attrs, metric + peer_metric


def _message_span(cmd: AmqpCommand, facts: ConnectionFacts, op: str, op_type: str, kind: str, metric_name: str,
                  metric_kind: str, batch: int | None) -> SpanDescription:
    attrs, metric = _base(facts, op, op_type)
    exchange = cmd.exchange or ""
    attrs["messaging.destination.name"] = exchange
    metric.append(("messaging.destination.name", exchange))
    if cmd.routing_key:
        attrs["messaging.rabbitmq.destination.routing_key"] = cmd.routing_key
    if cmd.delivery_tag is not None:
        attrs["messaging.rabbitmq.message.delivery_tag"] = cmd.delivery_tag
    if cmd.body_size is not None:
        attrs["messaging.message.body.size"] = cmd.body_size
    if batch is not None:
        attrs["messaging.batch.message_count"] = batch
    return SpanDescription(
        name=f"{op} {exchange or DEFAULT_EXCHANGE}",
        kind=kind,
        attributes=attrs,
        metric_name=metric_name,
        metric_attributes=tuple(sorted(metric)),
        metric_kind=metric_kind,
        traceparent=cmd.traceparent,
        tracestate=cmd.tracestate,
    )


def _plain_span(request: AmqpCommand, facts: ConnectionFacts, op: str, op_type: str | None,
                response: AmqpCommand | None, batch: int | None = None) -> SpanDescription:
    attrs, metric = _base(facts, op, op_type)
    if request.queue:
        attrs["messaging.destination.subscription.name"] = request.queue
    if request.exchange:
        attrs["messaging.destination.name"] = request.exchange
    if request.delivery_tag is not None:
        attrs["messaging.rabbitmq.message.delivery_tag"] = request.delivery_tag
    if batch is not None:
        attrs["messaging.batch.message_count"] = batch
    error = False
    message = ""
    if response is not None and response.is_error_close:
        error = True
        attrs["error.type"] = reply_code_name(response.reply_code or 0)
        message = response.reply_text or attrs["error.type"]  # type: ignore[assignment]
    elif response is None and op_type != "settle" and batch is None:
        error, message = True, "connection closed before the reply"
        attrs["error.type"] = "_OTHER"
    if error:
        metric.append(("error.type", attrs["error.type"]))
    return SpanDescription(
        name=op,
        kind="client",
        attributes=attrs,
        error=error,
        status_message=str(message)[:256],
        metric_name=DURATION,
        metric_attributes=tuple(sorted(metric)),
    )
