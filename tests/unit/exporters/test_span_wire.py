"""The compiled span encoder (receiver/exporters/_span_wire.c): built, used, and byte for byte
the Python encoder it replaces on the agent's spans — which stays the path for anything else."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from receiver.exporters import otlp_wire
from receiver.exporters.otlp_wire import OtlpWireEncoder
from receiver.model.signals import Signal
from receiver.model.telemetry import Span, SpanKind, StatusCode
from tests.unit.exporters.test_otlp_wire import db_span, http_client_span, http_server_span, spans


def test_the_extension_is_built_and_the_encoder_uses_it(monkeypatch):
    assert otlp_wire._span_wire is not None, "receiver/exporters/_span_wire.c was not built (pip install -e .)"
    batch = [http_server_span(i) for i in range(300)] + [http_client_span(1), db_span(2)]
    expected = OtlpWireEncoder(compiled=False).traces(batch)

    def python_path(*args):
        raise AssertionError("a usual span went through the Python encoder")

    monkeypatch.setattr(otlp_wire, "_span_message", python_path)
    assert OtlpWireEncoder().traces(batch) == expected


def usual_batch() -> list[Span]:
    batch = [http_server_span(i) for i in range(40)]
    batch += [http_server_span(50, parent_span_id=b"\x01" * 8), http_client_span(51), db_span(52)]
    batch += [http_server_span(60, status_code=StatusCode.ERROR, status_message="connexion fermée — reset")]
    batch += [http_server_span(61, status_code=StatusCode.OK, flags=0), http_server_span(62, flags=0x301)]
    batch += [http_server_span(63, name="x" * 300, trace_state="k=" + "v" * 200)]  # multi-byte lengths
    batch += [http_server_span(64, attributes={"": "empty key", "e": "", "neg": -5, "big": 2**63 - 1, "t": True,
                                               "f": False, "pi": 3.14, "nan": float("nan"), "-0": -0.0,
                                               "b": b"\x00\xff", "ü": "日本語"})]
    batch += [http_server_span(65, kind=SpanKind.INTERNAL, start_unix_nano=0, end_unix_nano=2**64 - 1)]
    return batch


def test_usual_spans_encode_to_the_same_bytes():
    batch = usual_batch()
    assert None not in otlp_wire._span_wire.encode(batch)
    assert OtlpWireEncoder().traces(batch) == OtlpWireEncoder(compiled=False).traces(batch)


@pytest.mark.parametrize("fields", [
    {"attributes": {"list": ["a", 1]}},  # arrays: Python
    {"attributes": {"none": None}},
    {"attributes": {"huge": 2**64}},  # beyond int64: its decimal string, as the reference
    {"attributes": {1: "non-str key"}},
    {"kind": 2},  # a plain int, not a SpanKind
    {"status_code": 1},
    {"trace_id": bytearray(16)},
    {"name": "lone \udc80 surrogate"},
    {"attributes": {"k": "lone \ud800"}},
    {"start_unix_nano": -1},
    {"end_unix_nano": 2**64},
    {"flags": 2**32},
    {"flags": True},
])
def test_unusual_spans_are_left_to_python_one_by_one(fields):
    batch = [http_server_span(1), http_server_span(2, **fields), http_server_span(3)]
    encoded = otlp_wire._span_wire.encode(batch)
    assert encoded[1] is None and encoded[0] is not None and encoded[2] is not None
    try:
        expected = OtlpWireEncoder(compiled=False).serialize(Signal.TRACES, batch)
    except Exception as e:  # noqa: BLE001 - the same outcome, whatever it is
        with pytest.raises(type(e)):
            OtlpWireEncoder().serialize(Signal.TRACES, batch)
    else:
        assert OtlpWireEncoder().serialize(Signal.TRACES, batch) == expected


def test_a_span_subclass_or_a_dict_subclass_is_left_to_python():
    class Attrs(dict):
        pass

    class MySpan(Span):
        __slots__ = ()

    odd = [http_server_span(1, attributes=Attrs(a=1))]
    base = http_server_span(2)
    odd.append(MySpan(**{f: getattr(base, f) for f in Span.__dataclass_fields__}))
    assert otlp_wire._span_wire.encode(odd) == [None, None]
    assert OtlpWireEncoder().traces(odd) == OtlpWireEncoder(compiled=False).traces(odd)


def test_configure_checks_its_tags():
    with pytest.raises(ValueError):
        otlp_wire._span_wire.configure(Span, SpanKind, StatusCode, (b"\x0a",))
    with pytest.raises(TypeError):
        otlp_wire._span_wire.encode((http_server_span(1),))  # a list, not a tuple


@settings(max_examples=300, deadline=None)
@given(st.lists(spans(), max_size=8))
def test_any_batch_encodes_as_the_python_encoder(batch):
    try:
        expected = OtlpWireEncoder(compiled=False).serialize(Signal.TRACES, batch)
    except Exception as e:  # noqa: BLE001
        with pytest.raises(type(e)):
            OtlpWireEncoder().serialize(Signal.TRACES, batch)
    else:
        assert OtlpWireEncoder().serialize(Signal.TRACES, batch) == expected
