"""The zpages extension as the agent builds it: configuration, the span tap at the head of the
traces pipelines, and the pages served over a real loopback socket."""

from __future__ import annotations

import json
import logging
import textwrap
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import ClassVar

import pytest

from receiver.component import ComponentRegistry, Factory
from receiver.config import ConfigError, ZPagesExtensionConfig, load_config_text
from receiver.configuration.section import ConfigSection
from receiver.distribution import builtin_factories
from receiver.extensions.zpages import ZPagesExtension
from receiver.extensions.zpages.config import bind_address
from receiver.model.telemetry import Resource, Span, SpanKind, StatusCode
from receiver.pipeline import Agent
from tests.support.probe_receiver import PROBE_FACTORY
from tests.support.ports import free_port, wait_until

T0 = 1_700_000_000 * 10**9


class Collected:
    def __init__(self) -> None:
        self.spans: list = []

    def consume_traces(self, spans) -> None:
        self.spans += spans

    def start(self) -> None:
        return None

    def shutdown(self, timeout: float = 5.0) -> None:
        return None


@dataclass(frozen=True, slots=True)
class CollectedConfig(ConfigSection):
    signals: ClassVar[frozenset[str]] = frozenset({"traces"})


def agent(port: int, extra: str = "") -> Agent:
    sinks: dict[str, Collected] = {}
    registry = ComponentRegistry.of(builtin_factories() + [
        PROBE_FACTORY,
        Factory("exporters", "collected", CollectedConfig, lambda s, cfg: sinks.setdefault(s.id, Collected())),
    ])
    config = load_config_text(textwrap.dedent(f"""\
        receivers: {{probe: }}
        processors: {{batch: {{timeout: 10ms}}}}
        exporters: {{collected: , collected/2: }}
        extensions: {{zpages: {{endpoint: "127.0.0.1:{port}"{extra}}}}}
        service:
          extensions: [zpages]
          pipelines:
            traces: {{receivers: [probe], processors: [batch], exporters: [collected]}}
            traces/2: {{receivers: [probe], exporters: [collected/2]}}
        """), environ={}, components=registry.config_classes())
    a = Agent(config, components=registry)
    a.sinks = sinks
    return a


def error_span(i: int) -> Span:
    return Span(bytes([2]) * 16, i.to_bytes(8, "big"), "GET /fail", SpanKind.SERVER, T0, T0 + 10**6,
                Resource.from_dict({"service.name": "shop", "process.pid": 4242}),
                attributes={"url.path": "/fail", "http.response.status_code": 500, "http.request.method": "GET"},
                status_code=StatusCode.ERROR)


def get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.headers["Content-Type"], r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers["Content-Type"], e.read().decode()


def test_defaults_follow_the_collector_and_bind_loopback():
    cfg = ZPagesExtensionConfig()
    assert cfg.endpoint == "localhost:55679"
    assert bind_address(cfg.endpoint) == ("127.0.0.1", 55679)  # never what else "localhost" resolves to


def test_a_bad_endpoint_is_a_config_error_naming_the_key():
    with pytest.raises(ConfigError) as err:
        load_config_text("extensions:\n  zpages:\n    endpoint: nowhere\n", environ={})
    assert "extensions.zpages.endpoint" in str(err.value) and ":3" in str(err.value)


def test_spans_are_observed_once_per_receiver_batch_before_the_processors():
    port = free_port()
    a = agent(port)
    (ext,) = a.extensions.values()
    a.start()
    try:
        a.receivers["probe"].emit([error_span(1), error_span(2)])
        # two traces pipelines, one tap: each span counted once, and both pipelines still get them
        (row,) = ext.spans.summary()
        assert row.errors == 2 and row.total == 2
        assert len(a.sinks["collected/2"].spans) == 2
        pipelines = [(p, [(k, c) for k, c, _ in comps]) for p, _, comps in a.pipeline_components()]
        assert pipelines == [("traces", [("receivers", "probe"), ("processors", "batch"), ("exporters", "collected")]),
                             ("traces/2", [("receivers", "probe"), ("exporters", "collected/2")])]
    finally:
        a.shutdown(1.0)


def test_the_pages_are_served_with_no_external_asset():
    port = free_port()
    a = agent(port)
    a.start()
    try:
        a.receivers["probe"].emit([error_span(1)])
        base = f"http://127.0.0.1:{port}"
        for page in ("servicez", "servicemap", "tracez", "pipelinez"):
            status, ctype, html = get(f"{base}/debug/{page}")
            assert status == 200 and ctype.startswith("text/html"), page
            assert "<script>" in html and "src=" not in html and "<link" not in html and "http://" not in html, page
        _, _, tracez = get(f"{base}/debug/tracez")
        assert 'data-name="GET /fail" data-errors="1"' in tracez
        _, _, samples = get(f"{base}/debug/tracez?name=GET%20%2Ffail&bucket=9")
        assert "url.path = /fail" in samples and "shop (4242)" in samples
        wait_until(lambda: a.sinks["collected"].spans, timeout=5, what="the batch sent")
        _, _, pipelinez = get(f"{base}/debug/pipelinez")
        assert 'data-component="processors/batch"' in pipelinez
        assert "traces: 0 / " in pipelinez
        status, ctype, body = get(f"{base}/debug/servicez?format=json")
        assert ctype.startswith("application/json") and json.loads(body)["processes"] == []  # no process-tracing receiver
        _, _, fragment = get(f"{base}/debug/servicemap?fragment=1")
        assert fragment.startswith("<h1>") and "<html" not in fragment
        assert get(f"{base}/nope")[0] == 404
    finally:
        a.shutdown(1.0)


def test_a_non_loopback_address_is_served_only_when_configured_and_then_warned_about(caplog):
    ext = ZPagesExtension(ZPagesExtensionConfig(endpoint=f"0.0.0.0:{free_port()}"), host=None)
    with caplog.at_level(logging.WARNING):
        ext.start()
    try:
        assert "not a loopback address" in caplog.text
    finally:
        ext.shutdown()
    quiet = ZPagesExtension(ZPagesExtensionConfig(endpoint=f"localhost:{free_port()}"), host=None)
    caplog.clear()
    quiet.start()
    try:
        assert quiet._serving.server.server_address[0] == "127.0.0.1" and "loopback" not in caplog.text
    finally:
        quiet.shutdown()
        quiet.shutdown()  # idempotent


PIPELINE = "receivers: {ebpf: }\nexporters: {debug: }\n"


def test_status_finds_the_endpoint_in_the_config_and_says_why_it_cannot(tmp_path, capsys):
    from receiver.cli import main

    port = free_port()
    ext = ZPagesExtension(ZPagesExtensionConfig(endpoint=f"127.0.0.1:{port}"), host=None)
    ext.start()
    try:
        config = tmp_path / "agent.yaml"
        config.write_text(PIPELINE + f"extensions:\n  zpages: {{endpoint: '127.0.0.1:{port}'}}\nservice:\n"
                          "  extensions: [zpages]\n  pipelines: {traces: {receivers: [ebpf], exporters: [debug]}}\n")
        assert main(["status", "--config", str(config)]) == 0
        out = capsys.readouterr().out.splitlines()
        assert out[0].split()[:2] == ["SERVICE", "PID"] and out[1] == "(no traced process has been seen yet)"
        bare = tmp_path / "bare.yaml"
        bare.write_text(PIPELINE + "extensions:\n  health_check: {}\nservice:\n  extensions: [health_check]\n"
                        "  pipelines: {traces: {receivers: [ebpf], exporters: [debug]}}\n")
        assert main(["status", "--config", str(bare)]) == 2
        assert "has no zpages extension" in capsys.readouterr().err
    finally:
        ext.shutdown()
    assert main(["status", "--endpoint", f"127.0.0.1:{port}"]) == 1  # nobody listens any more
    assert "cannot reach the agent's zpages" in capsys.readouterr().err
