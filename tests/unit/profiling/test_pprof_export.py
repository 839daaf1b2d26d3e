"""pprof as a real consumer reads it (`go tool pprof` from Debian's golang-go), the directory
bound, and the Pyroscope ingest URL."""

from __future__ import annotations

import gzip
import shutil
import subprocess
import urllib.parse
from types import MappingProxyType

from receiver.exporters.config import PprofExporterConfig
from receiver.exporters.pprof import PprofExporter
from receiver.exporters.pprof_encoding import encode_pprof
from receiver.model.profiles import Frame, ProfileBatch, ProfileSample

GO = shutil.which("go") or "/usr/bin/go"


def _batch(start_ns: int = 1_700_000_000_000_000_000) -> ProfileBatch:
    leaf = Frame("leaf_fn", module="/usr/bin/app", build_id="ab" * 20, address=0x1234)
    mid = Frame("handler", kind="python", filename="/srv/app.py", line=42)
    kernel = Frame("do_syscall_64", kind="kernel", module="[kernel]")
    return ProfileBatch(start_ns, 10 * 10**9, 19, (
        ProfileSample((leaf, mid), 30, 100, 101, MappingProxyType({"process.pid": "100", "span_id": "00f067aa0ba902b7"})),
        ProfileSample((kernel, leaf, mid), 10, 100, 102, MappingProxyType({"process.pid": "100"})),
        ProfileSample((Frame("other", module="/lib/libc.so.6"),), 5, 200, 200, MappingProxyType({"process.pid": "200"})),
    ))


def _pprof(*args, path) -> str:
    res = subprocess.run([GO, "tool", "pprof", *args, str(path)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    return res.stdout


def test_go_pprof_reads_samples_values_and_labels(tmp_path):
    path = tmp_path / "p.pb.gz"
    path.write_bytes(encode_pprof(_batch()))
    top = _pprof("-top", "-unit=ms", path=path)
    period_ms = 1000 / 19
    assert f"{30 * period_ms:.2f}ms" in top and "leaf_fn" in top  # flat: samples x period
    assert "Type: cpu" in top and "Duration: 10s" in top
    traces = _pprof("-traces", path=path)
    assert "span_id:  00f067aa0ba902b7" in traces
    assert traces.index("leaf_fn") < traces.index("handler")  # leaf first
    focused = _pprof("-top", "-tagfocus=span_id=^00f067aa0ba902b7$", "-unit=ms", path=path)
    assert "other" not in focused.split("flat%")[1] and "do_syscall_64" not in focused.split("flat%")[1]
    raw = _pprof("-raw", path=path)
    assert "abababab" in raw  # the mapping's build id
    assert "samples/count cpu/nanoseconds" in raw


def test_exporter_keeps_a_bounded_directory(tmp_path):
    exp = PprofExporter("pprof", PprofExporterConfig(directory=str(tmp_path / "d"), max_files=2))
    exp.start()
    for i in range(4):
        exp.consume_profiles(_batch(1_700_000_000_000_000_000 + i * 10**9))
    files = sorted(p.name for p in (tmp_path / "d").iterdir())
    assert files == ["cpu-1700000002000.pb.gz", "cpu-1700000003000.pb.gz"]
    assert gzip.decompress((tmp_path / "d" / files[0]).read_bytes())


def test_ingest_url_and_a_failing_push_is_counted(tmp_path):
    exp = PprofExporter("pprof", PprofExporterConfig(endpoint="http://127.0.0.1:9", application_name="node-a",
                                                     timeout=1.0))
    q = urllib.parse.parse_qs(urllib.parse.urlsplit(exp.ingest_url(_batch())).query)
    assert q == {"name": ["node-a.cpu{}"], "from": ["1700000000"], "until": ["1700000010"], "format": ["pprof"],
                 "sampleRate": ["19"], "spyName": ["ebpf-receiver"]}
    exp.consume_profiles(_batch())  # nothing listens on port 9 (discard): refused
    assert exp.push_failures == 1 and exp.pushes == 0
