"""Memcached transactions → span descriptions (OTel database semantic conventions).

* span name: the command as memcached names it (``get``, ``set``, ``mg``); kind CLIENT; only the
  client side gets a span (the server's view of the same call would duplicate it);
* ``db.system.name=memcached``, ``db.operation.name`` = the command;
* keys are never exported; a multi-key retrieval says how many keys in ``db.operation.batch.size``;
* ``db.memcached.hits`` / ``db.memcached.misses`` for retrievals (``get``, ``gets``, ``gat``,
  ``gats``, ``mg``); ``db.memcached.noreply=true`` for requests the server does not answer;
* errors: ``ERROR``, ``CLIENT_ERROR``, ``SERVER_ERROR`` → ``error.type`` (and
  ``db.response.status_code``), status ERROR with the server's message; a request left
  unanswered by a closed connection → ``error.type=_OTHER``;
* metric ``db.client.operation.duration``.
"""

from __future__ import annotations

from receiver.protocols.api import ConnectionFacts, SpanDescription, server_attributes
from receiver.protocols.base import Role, Transaction

from .types import MemcachedRequest, MemcachedResponse

DB_METRIC = "db.client.operation.duration"
SYSTEM = "memcached"


def describe(transaction: Transaction, facts: ConnectionFacts) -> SpanDescription | None:
    if transaction.role != Role.CLIENT:
        return None
    request: MemcachedRequest = transaction.request
    response: MemcachedResponse | None = transaction.response
    op = request.command
    attrs: dict[str, object] = {"db.system.name": SYSTEM, "db.operation.name": op}
    metric: list[tuple[str, object]] = [("db.system.name", SYSTEM), ("db.operation.name", op)]
    peer, peer_metric = server_attributes(facts)
    attrs.update(peer)
    metric += peer_metric
    if request.key_count > 1:
        attrs["db.operation.batch.size"] = request.key_count
    error = False
    message = ""
    if response is None:
        if request.noreply:
            attrs["db.memcached.noreply"] = True
        else:
            error, message = True, "connection closed before the reply"
            attrs["error.type"] = "_OTHER"
            metric.append(("error.type", "_OTHER"))
    else:
        if response.hits is not None:
            attrs["db.memcached.hits"] = response.hits
            attrs["db.memcached.misses"] = response.misses or 0
        if response.is_error:
            error = True
            message = response.error_message or response.status
            attrs["error.type"] = response.status
            attrs["db.response.status_code"] = response.status
            metric += [("error.type", response.status), ("db.response.status_code", response.status)]
    return SpanDescription(
        name=op,
        kind="client",
        attributes=attrs,
        error=error,
        status_message=message[:256],
        metric_name=DB_METRIC,
        metric_attributes=tuple(sorted(metric)),
    )
