"""A real OTLP collector for tests: rotel (PyPI) with its debug log, parsed back into spans."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import rotel

from tests.support.ports import free_port, wait_for_port

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_ATTR = re.compile(r"^\s*-> ([^:]+): (\w+)\((.*)\)\s*$")


def rotel_binary() -> str:
    return os.path.join(os.path.dirname(rotel.__file__), "rotel-agent")


@dataclass
class ReceivedSpan:
    trace_id: str
    parent_id: str
    span_id: str
    name: str
    kind: str
    status_code: str = ""
    attributes: dict = field(default_factory=dict)
    resource: dict = field(default_factory=dict)


def _value(kind: str, text: str):
    if kind == "Int":
        return int(text)
    if kind == "Double":
        return float(text)
    if kind == "Bool":
        return text == "true"
    return text


def parse_spans(text: str) -> list[ReceivedSpan]:
    """Spans from rotel's detailed traces debug log."""
    spans: list[ReceivedSpan] = []
    resource: dict = {}
    section = None
    cur: ReceivedSpan | None = None
    for raw in _ANSI.sub("", text).splitlines():
        line = raw.rstrip()
        if line.startswith("ResourceSpans #"):
            resource = {}
            section = "resource_wait"
            cur = None
            continue
        if line.startswith("Resource attributes:"):
            section = "resource"
            continue
        if line.startswith("Span #"):
            cur = ReceivedSpan("", "", "", "", "", resource=dict(resource))
            spans.append(cur)
            section = "span"
            continue
        if line.startswith("Attributes:") and cur is not None:
            section = "attrs"
            continue
        if line.startswith(("ScopeSpans", "InstrumentationScope", "ResourceMetric", "ResourceLog", "Metric #",
                            "LogRecord #")):
            section = None if not line.startswith("ScopeSpans") else section
            if line.startswith(("ResourceMetric", "ResourceLog", "Metric #", "LogRecord #")):
                cur = None
            continue
        m = _ATTR.match(line)
        if m:
            key, kind, val = m.group(1).strip(), m.group(2), m.group(3)
            if section == "resource":
                resource[key] = _value(kind, val)
            elif section == "attrs" and cur is not None:
                cur.attributes[key] = _value(kind, val)
            continue
        if cur is not None and ":" in line:
            key, _, val = line.partition(":")
            key, val = key.strip(), val.strip()
            if key == "Trace ID":
                cur.trace_id = val
            elif key == "Parent ID":
                cur.parent_id = val
            elif key == "ID":
                cur.span_id = val
            elif key == "Name":
                cur.name = val
            elif key == "Kind":
                cur.kind = val
            elif key == "Status code":
                cur.status_code = val
    return spans


@dataclass
class ReceivedLog:
    body: str
    severity_text: str = ""
    trace_id: str = ""
    span_id: str = ""
    attributes: dict = field(default_factory=dict)
    resource: dict = field(default_factory=dict)


def parse_logs(text: str) -> list[ReceivedLog]:
    """Log records from rotel's detailed logs debug log."""
    logs: list[ReceivedLog] = []
    resource: dict = {}
    section = None
    cur: ReceivedLog | None = None
    for raw in _ANSI.sub("", text).splitlines():
        line = raw.rstrip()
        if line.startswith(("ResourceLog", "ResourceSpans", "ResourceMetric")):
            resource, section, cur = {}, None, None
            continue
        if line.startswith("Resource attributes:"):
            section = "resource"
            continue
        if line.startswith("LogRecord #"):
            cur = ReceivedLog("", resource=dict(resource))
            logs.append(cur)
            section = "log"
            continue
        if line.startswith("Span #"):
            cur, section = None, None
            continue
        if line.startswith("Attributes:") and cur is not None:
            section = "attrs"
            continue
        m = _ATTR.match(line)
        if m:
            key, kind, val = m.group(1).strip(), m.group(2), m.group(3)
            if section == "resource":
                resource[key] = _value(kind, val)
            elif section == "attrs" and cur is not None:
                cur.attributes[key] = _value(kind, val)
            continue
        if cur is not None and ":" in line:
            key, _, val = line.partition(":")
            key, val = key.strip(), val.strip()
            if key == "Body":
                cur.body = val[4:-1] if val.startswith("Str(") else val
            elif key == "SeverityText":
                cur.severity_text = val
            elif key == "Trace ID":
                cur.trace_id = val
            elif key == "Span ID":
                cur.span_id = val
    return logs


class RotelCollector:
    """rotel-agent on free loopback ports, blackhole exporter, detailed debug log to a file."""

    def __init__(self, workdir: Path, signals=("traces", "metrics", "logs"), extra_args: tuple[str, ...] = ()) -> None:
        self.grpc_port = free_port()
        self.http_port = free_port()
        self.log_path = Path(workdir) / "rotel.log"
        self._signals = signals
        self._extra_args = tuple(extra_args)  # e.g. ("--otlp-grpc-max-recv-msg-size-mib", "1")
        self._proc: subprocess.Popen | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def grpc_endpoint(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def http_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def start(self) -> "RotelCollector":
        args = [
            rotel_binary(), "start",
            "--otlp-grpc-endpoint", self.grpc_endpoint,
            "--otlp-http-endpoint", f"127.0.0.1:{self.http_port}",
            "--exporter", "blackhole",
            "--debug-log-verbosity", "detailed",
        ]
        for s in self._signals:
            args += ["--debug-log", s]
        args += self._extra_args
        self._log = open(self.log_path, "wb")
        self._proc = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_for_port(self.grpc_port)
        wait_for_port(self.http_port)
        return self

    def text(self) -> str:
        return _ANSI.sub("", self.log_path.read_text(errors="replace"))

    def raw_bytes(self) -> bytes:
        return self.log_path.read_bytes()

    def spans(self) -> list[ReceivedSpan]:
        return parse_spans(self.text())

    def logs(self) -> list[ReceivedLog]:
        return parse_logs(self.text())

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            os.killpg(self._proc.pid, signal.SIGTERM)
            try:
                self._proc.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(self._proc.pid, signal.SIGKILL)
                self._proc.wait(5)
        if self._proc is not None:
            self._log.close()
            self._proc = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
