"""The compiled HTTP record decoder (receiver/capture/_http_record.c): built, used, and the same
HttpTxEvent as the Python decoder for any record, malformed ones included."""

from __future__ import annotations

import socket

from hypothesis import given, settings
from hypothesis import strategies as st

from receiver.capture import _http_record
from receiver.capture.events import EventDecoder, HttpTxEvent
from tests.unit.capture.test_events import ABI, C, http_record


def both(rec: bytes):
    """(compiled, python) results for one record: an event, or None for a malformed one."""
    dec = EventDecoder(ABI)
    try:
        expected = dec._decode_http_py(rec)
    except Exception:  # noqa: BLE001 - struct.error: too short for its fields
        expected = None
    return dec._http_decoder(rec), expected


def test_the_extension_is_built_and_decodes_every_http_record():
    dec = EventDecoder(ABI)
    assert isinstance(dec._http_decoder.__self__, _http_record.Decoder)
    ev = dec.decode(http_record())
    assert type(ev) is HttpTxEvent and dec.malformed == 0
    assert ev == dec._decode_http_py(http_record())


def test_endpoints_are_shared_and_texts_match():
    dec = EventDecoder(ABI)
    a, b = dec.decode(http_record(**{"hdr.conn_id": 1})), dec.decode(http_record(**{"hdr.conn_id": 2}))
    assert a.tuple is b.tuple  # one Tuple per endpoint bytes, from the decoder's dict
    v6 = socket.inet_pton(socket.AF_INET6, "2001:db8::1")
    mapped = socket.inet_pton(socket.AF_INET6, "::ffff:10.1.2.3")
    for fields in ({"tuple.family": socket.AF_INET6, "tuple.saddr": v6, "tuple.daddr": mapped},
                   {"tuple.family": socket.AF_UNIX, "tuple.transport": 3}, {"tuple.sport": 65535}):
        got, expected = both(http_record(**fields))
        assert got == expected and got.tuple == expected.tuple and type(got.tuple) is type(expected.tuple)
    assert both(http_record(**{"tuple.family": socket.AF_INET6, "tuple.saddr": v6}))[0].tuple.local_addr == "2001:db8::1"


def test_malformed_records_are_none_and_counted():
    dec = EventDecoder(ABI)
    for rec in (http_record(cut=1), http_record()[:40], http_record(strings_len=200), bytearray(http_record())):
        assert dec.decode(rec) is None  # a record is bytes: anything else is malformed, not raised
    assert dec.malformed == 4


def test_strings_out_of_bounds_are_cut_as_python_slices_cut():
    for fields in ({"host_off": 30, "host_len": 500}, {"target_len": 1000}, {"method_len": 99},
                   {"user_agent_off": 60000, "user_agent_len": 3}, {"n_interim": 200}, {"n_interim": 0},
                   {"traceparent_len": 0}, {"status": 0, "req_version": 0}):
        got, expected = both(http_record(**fields))
        assert got == expected, fields


SIZES = {name: ABI.ffi.sizeof(ctype) for name, _, ctype, n in ABI.flat_fields("erx_http_tx_event") if not n}
field_values = st.fixed_dictionaries({}, optional={
    n: st.integers(0, 2**16 - 1) for n in ("method_len", "target_len", "host_off", "host_len", "user_agent_off",
                                          "user_agent_len", "traceparent_off", "traceparent_len", "tracestate_off",
                                          "tracestate_len", "n_interim", "status", "strings_len")
} | {n: st.integers(0, 2**63) for n in ("start_ns", "end_ns", "resp_body_size", "hdr.cgroup_id")})


@settings(max_examples=300, deadline=None)
@given(field_values, st.binary(max_size=120), st.integers(0, 40))
def test_any_record_decodes_as_in_python(fields, strings, cut):
    fields = {k: v % 2 ** (8 * SIZES[k]) for k, v in fields.items()}  # as the field's type holds it
    rec = http_record(strings, cut=cut, **{"strings_len": len(strings), **fields})
    got, expected = both(rec)
    assert got == expected
    if got is not None:
        assert type(got) is HttpTxEvent and [type(x) for x in got] == [type(x) for x in expected]


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400))
def test_any_bytes_decode_as_in_python(raw):
    rec = bytes([C("ERX_EV_HTTP_TX")]) + raw
    assert both(rec)[0] == both(rec)[1]
