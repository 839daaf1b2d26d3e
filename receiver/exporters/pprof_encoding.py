"""A :class:`ProfileBatch` as pprof: ``perftools.profiles.Profile`` (github.com/google/pprof,
proto/profile.proto, Apache-2.0) written straight to protobuf wire format, gzipped as the
format requires on disk and on the wire.

Sample types ``samples/count`` and ``cpu/nanoseconds`` (samples x period); one Location per
distinct (function, file, module) with one Line, one Function per distinct (name, file, first
line), one Mapping per module (its build id); labels as string labels.
"""

from __future__ import annotations

import gzip

from receiver.exporters.otlp_wire import varint
from receiver.model.profiles import Frame, ProfileBatch

_LEN, _VARINT = 2, 0


def _tag(number: int, wire: int) -> bytes:
    return varint(number << 3 | wire)


def _msg(number: int, payload: bytes) -> bytes:
    return _tag(number, _LEN) + varint(len(payload)) + payload


def _int(number: int, value: int) -> bytes:
    if not value:
        return b""
    return _tag(number, _VARINT) + varint(value & ((1 << 64) - 1))


def _packed(number: int, values) -> bytes:
    body = b"".join(varint(v & ((1 << 64) - 1)) for v in values)
    return _msg(number, body) if body else b""


class _Strings:
    def __init__(self) -> None:
        self.table: list[str] = [""]
        self._index: dict[str, int] = {"": 0}

    def __call__(self, s: str) -> int:
        if not isinstance(s, str):  # never a reason to lose a profile
            s = s.decode("utf-8", errors="replace") if isinstance(s, bytes) else str(s)
        i = self._index.get(s)
        if i is None:
            i = self._index[s] = len(self.table)
            self.table.append(s)
        return i


def encode_profile(batch: ProfileBatch) -> bytes:
    """The uncompressed ``Profile`` message of one batch."""
    strings = _Strings()
    functions: dict[tuple[str, str, int], int] = {}
    mappings: dict[tuple[str, str], int] = {}
    locations: dict[tuple[int, int], int] = {}
    parts: list[bytes] = []
    samples: list[bytes] = []
    period = batch.period_ns

    def location_of(frame: Frame) -> int:
        fkey = (frame.function, frame.filename, frame.line)
        fid = functions.get(fkey)
        if fid is None:
            fid = functions[fkey] = len(functions) + 1
        mid = 0
        if frame.module:
            mkey = (frame.module, frame.build_id)
            mid = mappings.get(mkey)
            if mid is None:
                mid = mappings[mkey] = len(mappings) + 1
        lkey = (fid, mid)
        lid = locations.get(lkey)
        if lid is None:
            lid = locations[lkey] = len(locations) + 1
        return lid

    for s in batch.samples:
        ids = [location_of(f) for f in s.frames]
        labels = b"".join(_msg(3, _int(1, strings(k)) + _int(2, strings(v))) for k, v in sorted(s.labels.items()))
        samples.append(_msg(2, _packed(1, ids) + _packed(2, [s.count, s.count * period]) + labels))
    parts.append(_msg(1, _int(1, strings("samples")) + _int(2, strings("count"))))
    parts.append(_msg(1, _int(1, strings("cpu")) + _int(2, strings("nanoseconds"))))
    parts.extend(samples)
    for (module, build_id), mid in mappings.items():
        parts.append(_msg(3, _int(1, mid) + _int(5, strings(module)) + _int(6, strings(build_id)) + _int(7, 1)))
    for (fid, mid), lid in locations.items():
        parts.append(_msg(4, _int(1, lid) + _int(2, mid) + _msg(4, _int(1, fid))))
    for (name, filename, line), fid in functions.items():
        parts.append(_msg(5, _int(1, fid) + _int(2, strings(name)) + _int(3, strings(name))
                          + _int(4, strings(filename)) + _int(5, line)))
    period_type = _msg(11, _int(1, strings("cpu")) + _int(2, strings("nanoseconds")))
    tail = _int(9, batch.start_ns) + _int(10, batch.duration_ns) + period_type + _int(12, period)
    table = b"".join(_msg(6, s.encode("utf-8", errors="replace")) for s in strings.table)
    return b"".join(parts) + table + tail


def encode_pprof(batch: ProfileBatch) -> bytes:
    """The gzipped pprof file of one batch."""
    return gzip.compress(encode_profile(batch), compresslevel=6)
