"""The public parser API (receiver/protocols/api.py): plug-in declarations, discovery through
entry points (the NATS plug-in installed by `make venv`), and the fence that contains a
plug-in that breaks its promises."""

from __future__ import annotations

import ast
import importlib.metadata
from pathlib import Path

import pytest

from receiver.protocols import amqp, dns, memcached
from receiver.protocols.api import (
    API_VERSION,
    ENTRY_POINT_GROUP,
    ConnectionFacts,
    Detection,
    PluginFailures,
    ProtocolPlugin,
    SpanDescription,
    guarded_describe,
    guarded_detect,
    guarded_session,
    load_entry_point_plugins,
    plugin_problems,
)
from receiver.protocols.base import Direction, Role, Transaction

REPO = Path(__file__).resolve().parents[3]
FACTS = ConnectionFacts(Role.CLIENT, "tcp", "127.0.0.1", 1, "127.0.0.1", 2)


def test_the_nats_plugin_is_discoverable_through_entry_points() -> None:
    eps = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
    assert {ep.name: ep.value for ep in eps}.get("nats") == "ebpf_receiver_nats:PROTOCOL"
    plugins, errors = load_entry_point_plugins()
    assert errors == []
    [nats] = [p for p in plugins if p.name == "nats"]
    assert isinstance(nats, ProtocolPlugin) and nats.api_version == API_VERSION
    session = nats.new_session(max_buffer=4096, kernel_role=Role.CLIENT, transport="tcp")
    [t] = session.feed(Direction.EGRESS, b"PUB a 1\r\nx\r\n", 1)
    assert nats.describe(t, FACTS).name == "publish a"


def test_the_nats_plugin_imports_only_the_public_api() -> None:
    package = REPO / "plugins" / "nats" / "ebpf_receiver_nats"
    core = set()
    for path in package.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "receiver":
                core.add(node.module)
            if isinstance(node, ast.Import):
                core |= {a.name for a in node.names if a.name.split(".")[0] == "receiver"}
    assert core == {"receiver.protocols.api", "receiver.protocols.base"}


def test_builtin_protocols_are_valid_plugins() -> None:
    for module in (memcached, dns, amqp):
        plugin = module.PROTOCOL
        assert isinstance(plugin, ProtocolPlugin) and plugin_problems(plugin) == []
        assert plugin.detect(b"", Direction.EGRESS) is Detection.NO
        session = plugin.new_session(max_buffer=1024, kernel_role=Role.UNKNOWN, transport=sorted(plugin.transports)[0])
        assert session.feed(Direction.EGRESS, b"", 1) == [] and session.close(2) == []
        assert session.parse_errors == 0


def _noop_detect(data, direction):
    return Detection.NO


def _describe(t, facts):
    return SpanDescription("op", "client", {})


def test_declarations_are_checked() -> None:
    with pytest.raises(ValueError, match="api_version 2"):
        ProtocolPlugin("x", _noop_detect, object, _describe, api_version=2)
    with pytest.raises(ValueError, match="lower-case identifier"):
        ProtocolPlugin("Bad-Name", _noop_detect, object, _describe)
    with pytest.raises(ValueError, match="transports"):
        ProtocolPlugin("x", _noop_detect, object, _describe, transports=frozenset({"sctp"}))
    with pytest.raises(ValueError, match="default_ports"):
        ProtocolPlugin("x", _noop_detect, object, _describe, default_ports=(70000,))


class _EP:
    """An entry point as importlib.metadata hands it out (name, value, load())."""

    def __init__(self, name: str, value: str, obj=None, exc: Exception | None = None) -> None:
        self.name, self.value, self._obj, self._exc = name, value, obj, exc

    def load(self):
        if self._exc is not None:
            raise self._exc
        return self._obj


def test_broken_entry_points_are_reported_not_raised() -> None:
    good = ProtocolPlugin("good", _noop_detect, object, _describe)
    eps = [
        _EP("a", "missing.module:PROTOCOL", exc=ModuleNotFoundError("No module named 'missing'")),
        _EP("b", "pkg:NOT_A_PLUGIN", obj=object()),
        _EP("c", "pkg:PROTOCOL", obj=good),
        _EP("d", "other:PROTOCOL", obj=good),  # the same name again
    ]
    plugins, errors = load_entry_point_plugins(entry_points=lambda group: eps)
    assert plugins == [good]
    assert [(e.entry_point, e.reason.split(":")[0]) for e in errors] == [
        ("a = missing.module:PROTOCOL", "import failed"),
        ("b = pkg:NOT_A_PLUGIN", "not a ProtocolPlugin but object"),
        ("d = other:PROTOCOL", "protocol name 'good' already registered"),
    ]


class _Exploding:
    """A plug-in session that breaks the contract on its third feed."""

    protocol = "boom"

    def __init__(self, max_buffer: int, kernel_role: Role, transport: str) -> None:
        self.calls = 0
        self.parse_errors = 0

    def feed(self, direction, data, ts_ns, total_len=None):
        self.calls += 1
        if self.calls == 3:
            raise IndexError("parser bug")
        self.parse_errors += 1
        return [Transaction("boom", Role.CLIENT, data, None, ts_ns, ts_ns)]

    def close(self, ts_ns):
        raise AssertionError("never called once failed")


def test_a_session_that_raises_is_contained_and_dropped() -> None:
    plugin = ProtocolPlugin("boom", _noop_detect, _Exploding, _describe)
    failures = PluginFailures()
    s = guarded_session(plugin, failures, max_buffer=1024, kernel_role=Role.CLIENT, transport="tcp")
    assert len(s.feed(Direction.EGRESS, b"a", 1)) == 1
    assert len(s.feed(Direction.EGRESS, b"b", 2)) == 1 and s.parse_errors == 2
    assert s.feed(Direction.EGRESS, b"c", 3) == []  # raised: contained
    assert s.failed and failures.counts == {("boom", "feed"): 1}
    assert "IndexError: parser bug" in failures.last_error["boom"]
    assert s.feed(Direction.EGRESS, b"d", 4) == [] and s.close(5) == []  # dropped from parsing
    assert failures.total("boom") == 1 and s.parse_errors == 2


def test_bad_results_factories_detectors_and_describers_are_contained() -> None:
    failures = PluginFailures()

    class Liar(_Exploding):
        def feed(self, direction, data, ts_ns, total_len=None):
            return "not a list"

    def raising_factory(**kw):
        raise RuntimeError("cannot start")

    def raising_detect(data, direction):
        raise ValueError("bad")

    def raising_describe(t, facts):
        raise KeyError("x")

    s = guarded_session(ProtocolPlugin("liar", _noop_detect, Liar, _describe), failures, max_buffer=1)
    assert s.feed(Direction.INGRESS, b"x", 1) == [] and s.failed
    s = guarded_session(ProtocolPlugin("nostart", _noop_detect, raising_factory, _describe), failures, max_buffer=1)
    assert s.failed and s.feed(Direction.INGRESS, b"x", 1) == []
    p = ProtocolPlugin("det", raising_detect, Liar, raising_describe)
    assert guarded_detect(p, b"x", Direction.EGRESS, failures) is Detection.NO
    assert guarded_describe(p, Transaction("det", Role.CLIENT, None, None, 0, 0), FACTS, failures) is None
    wrong = ProtocolPlugin("wrong", lambda d, r: True, Liar, lambda t, f: SpanDescription("n", "sideways", {}))
    assert guarded_detect(wrong, b"x", Direction.EGRESS, failures) is Detection.NO
    assert guarded_describe(wrong, Transaction("w", Role.CLIENT, None, None, 0, 0), FACTS, failures) is None
    assert failures.counts == {
        ("liar", "feed"): 1, ("nostart", "session"): 1, ("det", "detect"): 1, ("det", "describe"): 1,
        ("wrong", "detect"): 1, ("wrong", "describe"): 1,
    }
