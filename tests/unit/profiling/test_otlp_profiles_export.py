"""The OTLP profiles signal (development): a batch exported over gRPC to a ProfilesService of
the test's own (no collector here accepts profiles), decoded with opentelemetry-proto's
bindings; and the flag it needs."""

from __future__ import annotations

from concurrent import futures
from types import MappingProxyType

import grpc
import pytest
from opentelemetry.proto.collector.profiles.v1development import profiles_service_pb2 as svc
from opentelemetry.proto.collector.profiles.v1development import profiles_service_pb2_grpc as svc_grpc

from receiver.config import ConfigError, load_config_text
from receiver.exporters.config import OtlpProfilesExporterConfig
from receiver.exporters.otlp_profiles import OtlpProfilesExporter
from receiver.model.profiles import Frame, ProfileBatch, ProfileSample

TRACE, SPAN = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"


class _Profiles(svc_grpc.ProfilesServiceServicer):
    def __init__(self) -> None:
        self.requests: list[svc.ExportProfilesServiceRequest] = []

    def Export(self, request, context):  # noqa: N802 (gRPC API)
        self.requests.append(request)
        return svc.ExportProfilesServiceResponse()


def test_export_reaches_a_profiles_service():
    servicer = _Profiles()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    svc_grpc.add_ProfilesServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        exp = OtlpProfilesExporter("otlpprofiles", OtlpProfilesExporterConfig(
            enable_development_signal=True, endpoint=f"http://127.0.0.1:{port}"))
        exp.start()
        handler = Frame("handler", kind="python", filename="/srv/app.py", line=7)
        leaf = Frame("leaf_fn", module="/usr/bin/app", build_id="ab" * 20)
        exp.consume_profiles(ProfileBatch(10**18, 10**10, 19, (
            ProfileSample((leaf, handler), 12, 41, 42, MappingProxyType(
                {"thread.id": "42", "process.executable.name": "app", "trace_id": TRACE, "span_id": SPAN})),
            ProfileSample((leaf,), 3, 50, 50, MappingProxyType({"thread.id": "50"})),
        )))
        exp.shutdown()
    finally:
        server.stop(None)
    assert exp.exports == 1
    (req,) = servicer.requests
    d = req.dictionary
    strings = list(d.string_table)
    by_pid = {}
    for rp in req.resource_profiles:
        attrs = {kv.key: kv.value for kv in rp.resource.attributes}
        by_pid[attrs["process.pid"].int_value] = rp
    assert set(by_pid) == {41, 50}
    (prof,) = by_pid[41].scope_profiles[0].profiles
    assert prof.period == 10**9 // 19 and strings[prof.sample_type.type_strindex] == "samples"
    (sample,) = prof.samples
    assert list(sample.values) == [12]
    names = [strings[d.function_table[d.location_table[i].lines[0].function_index].name_strindex]
             for i in d.stack_table[sample.stack_index].location_indices]
    assert names == ["leaf_fn", "handler"]
    link = d.link_table[sample.link_index]
    assert link.trace_id.hex() == TRACE and link.span_id.hex() == SPAN
    assert d.link_table[0].trace_id == b"" and d.stack_table[0].location_indices == []  # zero values at 0
    (other,) = by_pid[50].scope_profiles[0].profiles[0].samples
    assert other.link_index == 0


def test_the_development_signal_needs_its_flag():
    text = """
receivers: {profiling: {}}
exporters: {otlpprofiles: {endpoint: "localhost:4317"}}
service: {pipelines: {profiles: {receivers: [profiling], exporters: [otlpprofiles]}}}
"""
    with pytest.raises(ConfigError, match="enable_development_signal"):
        load_config_text(text)
    ok = load_config_text(text.replace('endpoint: "localhost:4317"', 'endpoint: "localhost:4317", enable_development_signal: true'))
    assert ok.exporters["otlpprofiles"].enable_development_signal


def test_profiles_pipelines_take_only_profile_components():
    with pytest.raises(ConfigError, match="does not support profiles"):
        load_config_text("""
receivers: {profiling: {}}
exporters: {debug: {}}
service: {pipelines: {profiles: {receivers: [profiling], exporters: [debug]}}}
""")
    with pytest.raises(ConfigError, match="does not support traces"):
        load_config_text("""
receivers: {profiling: {}}
exporters: {debug: {}}
service: {pipelines: {traces: {receivers: [profiling], exporters: [debug]}}}
""")
