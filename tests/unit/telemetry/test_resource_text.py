"""A process whose executable's path is not UTF-8 still gets a resource every exporter can
encode: the invalid bytes become U+FFFD (as for argv and the environment).  Before, the path
came back from readlink with lone surrogates, and every export batch holding one of that
process's spans failed as permanently unencodable."""

from __future__ import annotations

import os
import shutil
import subprocess

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from receiver.discovery.resources import ProcessResources
from receiver.exporters.otlp_encoding import Signal
from receiver.exporters.otlp_wire import OtlpWireEncoder
from receiver.model.telemetry import Span, SpanKind


def test_non_utf8_executable_path_gives_an_encodable_resource(tmp_path):
    odd_dir = os.path.join(os.fsencode(tmp_path), b"app-\xff\xfe")
    os.mkdir(odd_dir)
    exe = os.path.join(odd_dir, b"sleeper")
    shutil.copy(shutil.which("sleep"), exe)
    proc = subprocess.Popen([exe, "30"])
    try:
        resource = ProcessResources(host_name="h").get(proc.pid)
        path = resource.get("process.executable.path")
        assert path == os.fsdecode(tmp_path) + "/app-\ufffd\ufffd/sleeper"
        assert resource.get("process.executable.name") == "sleeper"
        span = Span(b"\1" * 16, b"\2" * 8, "GET", SpanKind.SERVER, 1, 2, resource)
        body = OtlpWireEncoder().serialize(Signal.TRACES, [span])
        req = ExportTraceServiceRequest.FromString(body)
        attrs = {kv.key: kv.value.string_value for kv in req.resource_spans[0].resource.attributes}
        assert attrs["process.executable.path"] == path
    finally:
        proc.kill()
        proc.wait()
