"""Strings UTF-8 cannot encode (lone surrogates: U+D800–U+DFFF on their own), repaired before
export instead of failing the whole request.

OTLP strings are UTF-8, and a Python ``str`` can hold a lone surrogate (from ``os`` calls that
decode with ``surrogateescape``, or text decoded with ``surrogatepass``).  One such string in
one span used to make the whole batch unencodable — hundreds of spans dropped as a permanent
error.  The encoders call :func:`repaired` only when encoding failed: each lone surrogate
becomes U+FFFD, and every item (span, log record) that changed is counted by the caller.
"""

from __future__ import annotations

import re
from dataclasses import replace

from receiver.model.telemetry import LogRecord, Resource, Span

_SURROGATE = re.compile("[\ud800-\udfff]")
_REPLACEMENT = "\ufffd"


def _text(s):
    return _SURROGATE.sub(_REPLACEMENT, s) if type(s) is str else s


def _value(v):
    if type(v) is str:
        return _text(v)
    if isinstance(v, (tuple, list)):
        return type(v)(_value(x) for x in v)
    if isinstance(v, dict):
        return {_text(k): _value(x) for k, x in v.items()}
    return v


def _attributes(attrs):
    if not isinstance(attrs, dict):
        return attrs
    fixed = {_text(k): _value(v) for k, v in attrs.items()}
    return attrs if fixed == attrs else fixed


def _resource(resource):
    if not isinstance(resource, Resource):
        return resource
    fixed = tuple((_text(k), _value(v)) for k, v in resource.attributes)
    return resource if fixed == resource.attributes else Resource(fixed)


def repaired(item):
    """``item`` itself when it holds no lone surrogate, else a copy in which each is U+FFFD."""
    if isinstance(item, Span):
        fixed = replace(item, name=_text(item.name), trace_state=_text(item.trace_state),
                        status_message=_text(item.status_message), attributes=_attributes(item.attributes),
                        resource=_resource(item.resource))
    elif isinstance(item, LogRecord):
        fixed = replace(item, body=_text(item.body), severity_text=_text(item.severity_text),
                        attributes=_attributes(item.attributes), resource=_resource(item.resource))
    else:
        return item
    return item if fixed == item else fixed
