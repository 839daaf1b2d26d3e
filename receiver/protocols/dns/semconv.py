"""DNS transactions → span descriptions (OTel DNS semantic conventions, development status).

* span name: the query type (``A``, ``AAAA``, ``TXT``...); kind CLIENT for a query the traced
  process sent, SERVER for one it answered;
* ``dns.question.name`` (as sent, without the trailing dot; non-printable bytes as ``\\DDD``),
  ``dns.question.type`` (the type's name), ``dns.response.code`` (the RCODE's name),
  ``dns.answer.count`` (answer records in the response), ``dns.response.truncated=true`` when
  the answer did not fit a UDP datagram (TC);
* errors: an RCODE other than NOERROR → ``error.type`` = its name (``NXDOMAIN``, ``SERVFAIL``,
  ``REFUSED``...); no response (the query timed out, or the socket closed first) →
  ``error.type=timeout``;
* metric ``dns.lookup.duration`` for client spans, with ``dns.question.name`` (required by the
  conventions: a service looks up a bounded set of names; a resolver's own traffic would not be)
  and ``error.type``.
"""

from __future__ import annotations

from receiver.protocols.api import ConnectionFacts, SpanDescription, server_attributes
from receiver.protocols.base import Role, Transaction

from .types import DnsMessage

METRIC = "dns.lookup.duration"


def describe(transaction: Transaction, facts: ConnectionFacts) -> SpanDescription | None:
    query: DnsMessage = transaction.request
    response: DnsMessage | None = transaction.response
    client = transaction.role != Role.SERVER
    question = query.question
    qtype = question.type_name if question is not None else "_OTHER"
    attrs: dict[str, object] = {"dns.question.type": qtype}
    if question is not None:
        attrs["dns.question.name"] = question.name
    metric: list[tuple[str, object]] = []
    if question is not None:
        metric.append(("dns.question.name", question.name))
    if client:
        peer, _ = server_attributes(facts)
        attrs.update(peer)
    else:
        attrs["network.transport"] = facts.transport
        if facts.remote_port:
            attrs["client.address"] = facts.remote_address
            attrs["client.port"] = facts.remote_port
    error = False
    message = ""
    if response is None:
        error, message = True, "no response"
        attrs["error.type"] = "timeout"
    else:
        attrs["dns.response.code"] = response.rcode_name
        attrs["dns.answer.count"] = response.answer_count
        if response.truncated_flag:
            attrs["dns.response.truncated"] = True
        if response.rcode != 0:
            error = True
            attrs["error.type"] = response.rcode_name
            message = response.rcode_name
    if "error.type" in attrs:
        metric.append(("error.type", attrs["error.type"]))
    return SpanDescription(
        name=qtype,
        kind="client" if client else "server",
        attributes=attrs,
        error=error,
        status_message=message,
        metric_name=METRIC if client else None,
        metric_attributes=tuple(sorted(metric)) if client else (),
    )
