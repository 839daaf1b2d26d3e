"""NATS transactions → span descriptions (OTel messaging semantic conventions, ``messaging.system=nats``).

Spans are made for the client side of a connection only (the server is an intermediary: its view
would duplicate every message).

* ``PUB``/``HPUB`` → PRODUCER ``publish <subject>``, ``messaging.operation.type=send``, metric
  ``messaging.client.operation.duration``;
* ``PUB`` with a reply subject answered by a ``MSG`` → CLIENT ``request <subject>`` whose duration
  is the reply's latency; a ``503`` status in the reply's headers (no responders) is
  ``error.type=no_responders``;
* ``MSG``/``HMSG`` → CONSUMER ``receive <subject>``, ``messaging.operation.type=receive``,
  metric ``messaging.client.consumed.messages`` (a count);
* ``-ERR`` → CLIENT ``ERR`` with ``error.type`` from the error text (``permissions_violation``...).

Reply inboxes (``_INBOX.…``) are temporary and unbounded: they are named ``_INBOX`` with
``messaging.destination.temporary=true`` and ``messaging.destination.template=_INBOX.*``.  The
W3C trace context in the message headers is handed on as the span's ``traceparent``.
"""

from __future__ import annotations

from receiver.protocols.api import ConnectionFacts, SpanDescription, server_attributes
from receiver.protocols.base import Role, Transaction

from .types import NatsError, NatsMessage

SYSTEM = "nats"
DURATION = "messaging.client.operation.duration"
CONSUMED = "messaging.client.consumed.messages"
INBOX = "_INBOX"


def describe(transaction: Transaction, facts: ConnectionFacts) -> SpanDescription | None:
    if transaction.role != Role.CLIENT:
        return None
    request = transaction.request
    response = transaction.response
    attrs, metric = _base(facts)
    if isinstance(request, NatsError):
        code = request.code
        attrs.update({"messaging.operation.name": "ERR", "error.type": code})
        return SpanDescription(name="ERR", kind="client", attributes=attrs, error=True,
                               status_message=request.text[:256])
    msg: NatsMessage = request
    if msg.op in ("PUB", "HPUB"):
        if response is None:
            op, op_type, kind, metric_name, metric_kind = "publish", "send", "producer", DURATION, "duration"
        else:
            op, op_type, kind, metric_name, metric_kind = "request", "send", "client", DURATION, "duration"
    else:
        op, op_type, kind, metric_name, metric_kind = "receive", "receive", "consumer", CONSUMED, "count"
    target = _destination(msg.subject, attrs)
    attrs["messaging.operation.name"] = op
    attrs["messaging.operation.type"] = op_type
    attrs["messaging.message.body.size"] = msg.payload_size
    metric += [("messaging.operation.name", op), ("messaging.operation.type", op_type),
               ("messaging.destination.name", target)]
    error = False
    message = ""
    if isinstance(response, NatsMessage) and response.status is not None and response.status >= 400:
        error = True
        attrs["error.type"] = "no_responders" if response.status == 503 else str(response.status)
        message = f"status {response.status}"
        metric.append(("error.type", attrs["error.type"]))
    return SpanDescription(
        name=f"{op} {target}",
        kind=kind,
        attributes=attrs,
        error=error,
        status_message=message,
        metric_name=metric_name,
        metric_attributes=tuple(sorted(metric)),
        metric_kind=metric_kind,
        traceparent=msg.traceparent,
        tracestate=msg.tracestate,
    )


def _base(facts: ConnectionFacts) -> tuple[dict[str, object], list[tuple[str, object]]]:
    attrs: dict[str, object] = {"messaging.system": SYSTEM}
    peer, peer_metric = server_attributes(facts)
    attrs.update(peer)
    return attrs, [("messaging.system", SYSTEM), *peer_metric]


def _destination(subject: str, attrs: dict[str, object]) -> str:
    if subject == INBOX or subject.startswith(INBOX + "."):
        attrs["messaging.destination.name"] = subject
        attrs["messaging.destination.temporary"] = True
        attrs["messaging.destination.template"] = INBOX + ".*"
        return INBOX
    attrs["messaging.destination.name"] = subject
    return subject
