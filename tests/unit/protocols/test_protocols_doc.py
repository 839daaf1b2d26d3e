"""The example plug-in in docs/protocols.md is real code that works: it declares a valid
ProtocolPlugin, parses, stitches, and maps to spans — so the guide cannot drift from the API."""

from __future__ import annotations

import re
from pathlib import Path

from receiver.protocols.api import (
    ConnectionFacts,
    Detection,
    PluginFailures,
    ProtocolPlugin,
    guarded_describe,
    guarded_session,
)
from receiver.protocols.base import Direction, Role

DOC = Path(__file__).resolve().parents[3] / "docs" / "protocols.md"


def example() -> dict:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    [code] = [b for b in blocks if "class AskSession" in b]
    namespace: dict = {}
    exec(compile(code, str(DOC), "exec"), namespace)  # noqa: S102 - our own documentation
    return namespace


def test_the_documented_plugin_works() -> None:
    plugin = example()["PROTOCOL"]
    assert isinstance(plugin, ProtocolPlugin) and plugin.name == "ask"
    assert plugin.detect(b"ASK weather\r\n", Direction.EGRESS) is Detection.YES
    failures = PluginFailures()
    session = guarded_session(plugin, failures, max_buffer=1024, kernel_role=Role.CLIENT, transport="tcp")
    assert session.feed(Direction.EGRESS, b"ASK a\r\nASK b\r\n", 1) == []
    out = session.feed(Direction.INGRESS, b"OK 1\r\nERR nope\r\n", 2)
    out += session.feed(Direction.EGRESS, b"ASK c\r\n", 3) + session.close(4)
    assert [(t.response, t.start_ns, t.end_ns) for t in out] == [("OK", 1, 2), ("ERR", 1, 2), (None, 3, 3)]
    facts = ConnectionFacts(Role.CLIENT, "tcp", "127.0.0.1", 1, "127.0.0.1", 7777)
    spans = [guarded_describe(plugin, t, facts, failures) for t in out]
    assert [(s.name, s.error, s.attributes.get("error.type")) for s in spans] == [
        ("ASK", False, None), ("ASK", True, "ERR"), ("ASK", True, "no_answer")]
    assert failures.total() == 0 and session.parse_errors == 0
