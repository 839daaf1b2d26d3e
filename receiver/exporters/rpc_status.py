"""Decoding ``google.rpc.Status`` (gRPC ``grpc-status-details-bin``, OTLP/HTTP error bodies).

Only what retry classification needs: the code, the message and the delay of a
``google.rpc.RetryInfo`` detail.  Uses the generated classes of googleapis-common-protos when
installed; otherwise a minimal protobuf wire decoder (the three messages involved are tiny).
Never raises on malformed bytes: returns ``None``.
"""

from __future__ import annotations

from dataclasses import dataclass

try:  # googleapis-common-protos (a dependency of many OpenTelemetry packages; not of ours)
    from google.rpc import error_details_pb2, status_pb2
except ImportError:  # pragma: no cover - depends on the environment
    status_pb2 = None
    error_details_pb2 = None

RETRY_INFO_TYPE_URL = "type.googleapis.com/google.rpc.RetryInfo"


@dataclass(frozen=True, slots=True)
class RpcStatus:
    code: int
    message: str
    retry_delay: float | None  # seconds, from a RetryInfo detail; None if there is none


def parse_status(data: bytes) -> RpcStatus | None:
    """Decode a serialized ``google.rpc.Status``; ``None`` if the bytes are not one."""
    if status_pb2 is not None:
        return parse_status_protobuf(data)
    return parse_status_minimal(data)


def parse_status_protobuf(data: bytes) -> RpcStatus | None:
    from google.protobuf.message import DecodeError

    status = status_pb2.Status()
    try:
        status.ParseFromString(data)
    except DecodeError:
        return None
    retry_delay = None
    for detail in status.details:
        if detail.type_url == RETRY_INFO_TYPE_URL:
            info = error_details_pb2.RetryInfo()
            try:
                info.ParseFromString(detail.value)
            except DecodeError:
                continue
            retry_delay = info.retry_delay.seconds + info.retry_delay.nanos / 1e9
    return RpcStatus(status.code, status.message, retry_delay)


def parse_status_minimal(data: bytes) -> RpcStatus | None:
    """The same as :func:`parse_status_protobuf`, from the wire format by hand."""
    try:
        code, message, retry_delay = 0, "", None
        for field, value in _fields(data):
            if field == 1 and type(value) is int:
                code = _int32(value)
            elif field == 2 and type(value) is bytes:
                message = value.decode("utf-8", "replace")
            elif field == 3 and type(value) is bytes:
                type_url, payload = "", b""
                for f, v in _fields(value):  # google.protobuf.Any
                    if f == 1 and type(v) is bytes:
                        type_url = v.decode("utf-8", "replace")
                    elif f == 2 and type(v) is bytes:
                        payload = v
                if type_url == RETRY_INFO_TYPE_URL:
                    retry_delay = _retry_info_delay(payload)
        return RpcStatus(code, message, retry_delay)
    except ValueError:
        return None


def _retry_info_delay(payload: bytes) -> float:
    seconds = nanos = 0
    for f, v in _fields(payload):  # RetryInfo
        if f == 1 and type(v) is bytes:
            for g, w in _fields(v):  # google.protobuf.Duration
                if g == 1 and type(w) is int:
                    seconds = _int64(w)
                elif g == 2 and type(w) is int:
                    nanos = _int32(w)
    return seconds + nanos / 1e9


def _int64(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


def _int32(v: int) -> int:
    return _int64(v)  # negative int32 values are sign-extended to 64 bits on the wire


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise ValueError("truncated varint")
        b = data[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def _fields(data: bytes):
    """Yield ``(field_number, value)``: int for varints, bytes for length-delimited, None otherwise."""
    pos, end = 0, len(data)
    while pos < end:
        key, pos = _varint(data, pos)
        field, wire_type = key >> 3, key & 7
        if field == 0:
            raise ValueError("field number 0")
        if wire_type == 0:
            value, pos = _varint(data, pos)
            yield field, value
        elif wire_type == 2:
            length, pos = _varint(data, pos)
            if pos + length > end:
                raise ValueError("truncated field")
            yield field, data[pos : pos + length]
            pos += length
        elif wire_type == 1:
            pos += 8
            yield field, None
        elif wire_type == 5:
            pos += 4
            yield field, None
        else:
            raise ValueError(f"unsupported wire type {wire_type}")
        if pos > end:
            raise ValueError("truncated field")
