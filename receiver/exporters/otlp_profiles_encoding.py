"""A :class:`ProfileBatch` as an OTLP ``ExportProfilesServiceRequest`` (profiles signal,
``v1development`` of opentelemetry-proto: its wire format may still change).

One ResourceProfiles per process (``process.pid``, ``process.executable.name``), one Profile each
(``samples``/``count``, period ``cpu``/``nanoseconds``); tables shared in the request's
dictionary, index 0 of each the zero value the spec requires; a sample taken while its thread
served a traced request links to that span (``link_table``); ``thread.id`` is a sample attribute.
"""

from __future__ import annotations

from opentelemetry.proto.collector.profiles.v1development.profiles_service_pb2 import ExportProfilesServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.profiles.v1development import profiles_pb2 as pb
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

from receiver.model.profiles import Frame, ProfileBatch

SCOPE_NAME = "ebpf-receiver/profiling"


class _Tables:
    def __init__(self, d: pb.ProfilesDictionary) -> None:
        self.d = d
        for table in (d.mapping_table, d.location_table, d.function_table, d.link_table, d.attribute_table,
                      d.stack_table):
            table.add()  # index 0: the zero value
        d.string_table.append("")
        self._strings: dict[str, int] = {"": 0}
        self._functions: dict[tuple, int] = {}
        self._mappings: dict[tuple, int] = {}
        self._locations: dict[tuple, int] = {}
        self._stacks: dict[tuple, int] = {}
        self._links: dict[tuple, int] = {}
        self._attrs: dict[tuple, int] = {}

    def string(self, s: str) -> int:
        i = self._strings.get(s)
        if i is None:
            i = self._strings[s] = len(self.d.string_table)
            self.d.string_table.append(s)
        return i

    def location(self, f: Frame) -> int:
        fkey = (f.function, f.filename, f.line)
        fid = self._functions.get(fkey)
        if fid is None:
            fid = self._functions[fkey] = len(self.d.function_table)
            self.d.function_table.add(name_strindex=self.string(f.function), system_name_strindex=self.string(f.function),
                                      filename_strindex=self.string(f.filename), start_line=f.line)
        mid = 0
        if f.module:
            mkey = (f.module, f.build_id)
            mid = self._mappings.get(mkey)
            if mid is None:
                mid = self._mappings[mkey] = len(self.d.mapping_table)
                m = self.d.mapping_table.add(filename_strindex=self.string(f.module))
                if f.build_id:
                    m.attribute_indices.append(self.attribute("process.executable.build_id.gnu", f.build_id))
        lkey = (fid, mid)
        lid = self._locations.get(lkey)
        if lid is None:
            lid = self._locations[lkey] = len(self.d.location_table)
            loc = self.d.location_table.add(mapping_index=mid)
            loc.lines.add(function_index=fid)
        return lid

    def stack(self, frames) -> int:
        key = tuple(self.location(f) for f in frames)
        sid = self._stacks.get(key)
        if sid is None:
            sid = self._stacks[key] = len(self.d.stack_table)
            self.d.stack_table.add().location_indices.extend(key)
        return sid

    def link(self, trace_id: str, span_id: str) -> int:
        key = (trace_id, span_id)
        i = self._links.get(key)
        if i is None:
            i = self._links[key] = len(self.d.link_table)
            self.d.link_table.add(trace_id=bytes.fromhex(trace_id), span_id=bytes.fromhex(span_id))
        return i

    def attribute(self, key: str, value: str) -> int:
        k = (key, value)
        i = self._attrs.get(k)
        if i is None:
            i = self._attrs[k] = len(self.d.attribute_table)
            self.d.attribute_table.add(key_strindex=self.string(key), value=AnyValue(string_value=value))
        return i


def encode_profiles_request(batch: ProfileBatch) -> ExportProfilesServiceRequest:
    req = ExportProfilesServiceRequest()
    t = _Tables(req.dictionary)
    by_pid: dict[int, list] = {}
    for s in batch.samples:
        by_pid.setdefault(s.pid, []).append(s)
    for pid, samples in by_pid.items():
        rp = req.resource_profiles.add()
        attrs = [KeyValue(key="process.pid", value=AnyValue(int_value=pid))]
        name = samples[0].labels.get("process.executable.name", "")
        if name:
            attrs.append(KeyValue(key="process.executable.name", value=AnyValue(string_value=name)))
        rp.resource.CopyFrom(Resource(attributes=attrs))
        sp = rp.scope_profiles.add()
        sp.scope.CopyFrom(InstrumentationScope(name=SCOPE_NAME))
        prof = sp.profiles.add(time_unix_nano=batch.start_ns, duration_nano=batch.duration_ns, period=batch.period_ns)
        prof.sample_type.CopyFrom(pb.ValueType(type_strindex=t.string("samples"), unit_strindex=t.string("count")))
        prof.period_type.CopyFrom(pb.ValueType(type_strindex=t.string("cpu"), unit_strindex=t.string("nanoseconds")))
        for s in samples:
            sample = prof.samples.add(stack_index=t.stack(s.frames))
            sample.values.append(s.count)
            sample.attribute_indices.append(t.attribute("thread.id", s.labels.get("thread.id", str(s.tid))))
            if "span_id" in s.labels and "trace_id" in s.labels:
                sample.link_index = t.link(s.labels["trace_id"], s.labels["span_id"])
    return req
