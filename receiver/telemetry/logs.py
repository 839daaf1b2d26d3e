"""stdout/stderr writes of traced processes → log lines → OTel log records.

Partial writes are joined per (pid, fd) until a newline; a line that never ends is cut at
``max_line`` bytes or released after ``idle_ns``.  Severity comes from a JSON ``level``-like
field, else from a common level word near the start of the line.
"""

from __future__ import annotations

import json
import re
from collections import OrderedDict
from dataclasses import dataclass

from receiver.model.telemetry import LogRecord, Resource, SeverityNumber

_WORDS = {
    "TRACE": SeverityNumber.TRACE,
    "DEBUG": SeverityNumber.DEBUG,
    "INFO": SeverityNumber.INFO,
    "NOTICE": SeverityNumber.INFO,
    "WARN": SeverityNumber.WARN,
    "WARNING": SeverityNumber.WARN,
    "ERROR": SeverityNumber.ERROR,
    "ERR": SeverityNumber.ERROR,
    "CRITICAL": SeverityNumber.FATAL,
    "CRIT": SeverityNumber.FATAL,
    "FATAL": SeverityNumber.FATAL,
    "PANIC": SeverityNumber.FATAL,
    "EMERG": SeverityNumber.FATAL,
    "ALERT": SeverityNumber.FATAL,
}
_WORD_RE = re.compile(r"\b(" + "|".join(sorted(_WORDS, key=len, reverse=True)) + r")\b", re.IGNORECASE)
# Secrets applications print (request lines with tokens, dumped headers) are scrubbed from
# captured log lines before they leave the host.
_SECRET_QUERY = re.compile(
    r"(?i)\b(access_token|refresh_token|id_token|token|password|passwd|pwd|secret|client_secret|api_key|apikey|"
    r"key|sig|signature|auth)=([^&\s\"',;]+)"
)
_SECRET_HEADER = re.compile(
    r"(?i)\b(authorization|proxy-authorization|cookie|set-cookie|x-api-key)(\"?\s*[:=]\s*\"?)"
    r"((?:bearer|basic|digest)\s+)?[^\s\",;]+"
)


_SECRET_JSON = re.compile(
    r"(?i)(\"(?:access_token|refresh_token|token|password|passwd|secret|client_secret|api_key|apikey|authorization|"
    r"cookie)\"\s*:\s*\")([^\"]*)(\")"
)


def scrub_secrets(line: str) -> str:
    """Replace values of sensitive query keys, JSON fields and credential headers with REDACTED."""
    if '"' in line and ":" in line:
        line = _SECRET_JSON.sub(lambda m: f"{m.group(1)}REDACTED{m.group(3)}", line)
    if "=" in line:
        line = _SECRET_QUERY.sub(lambda m: f"{m.group(1)}=REDACTED", line)
    if ":" in line or "=" in line:
        line = _SECRET_HEADER.sub(lambda m: f"{m.group(1)}{m.group(2)}{m.group(3) or ''}REDACTED", line)
    return line


_JSON_KEYS = ("level", "severity", "lvl", "loglevel", "log.level", "levelname", "severity_text")


def severity_of(line: str) -> tuple[SeverityNumber, str]:
    """(severity number, severity text) of one log line; UNSPECIFIED when nothing says."""
    s = line.lstrip()
    if s.startswith("{"):
        try:
            obj = json.loads(s)
        except ValueError:
            obj = None
        if isinstance(obj, dict):
            for k in _JSON_KEYS:
                v = obj.get(k)
                if isinstance(v, str) and v.upper() in _WORDS:
                    return _WORDS[v.upper()], v
                if isinstance(v, int) and k in ("level", "lvl"):  # pino/bunyan numeric levels
                    return _numeric_level(v), str(v)
            return SeverityNumber.UNSPECIFIED, ""
    m = _WORD_RE.search(s[:64])
    if m:
        word = m.group(1)
        return _WORDS[word.upper()], word
    return SeverityNumber.UNSPECIFIED, ""


def _numeric_level(v: int) -> SeverityNumber:
    for limit, sev in ((10, SeverityNumber.TRACE), (20, SeverityNumber.DEBUG), (30, SeverityNumber.INFO),
                       (40, SeverityNumber.WARN), (50, SeverityNumber.ERROR)):
        if v <= limit:
            return sev
    return SeverityNumber.FATAL


@dataclass(slots=True)
class LogLine:
    pid: int
    tid: int
    fd: int
    text: str
    mono_ns: int


class LogLineAssembler:
    def __init__(self, max_line: int = 16384, idle_ns: int = 10**9, max_streams: int = 4096) -> None:
        self._buf: OrderedDict[tuple[int, int], tuple[bytearray, int, int]] = OrderedDict()
        self._max_line = max_line
        self._idle = idle_ns
        self._max_streams = max_streams
        self.truncated_lines = 0  # lines cut at max_line
        self.evicted_partials = 0  # partial lines dropped because too many streams were open

    def feed(self, pid: int, tid: int, fd: int, data: bytes, mono_ns: int) -> list[LogLine]:
        key = (pid, fd)
        entry = self._buf.pop(key, None)
        buf = entry[0] if entry else bytearray()
        buf += data
        out: list[LogLine] = []
        while True:
            nl = buf.find(b"\n")
            if nl < 0:
                break
            line = bytes(buf[:nl]).rstrip(b"\r")
            del buf[: nl + 1]
            if line.strip():
                out.append(LogLine(pid, tid, fd, line.decode(errors="replace"), mono_ns))
        if len(buf) > self._max_line:
            self.truncated_lines += 1
            out.append(LogLine(pid, tid, fd, bytes(buf[: self._max_line]).decode(errors="replace"), mono_ns))
            buf.clear()
        if buf:
            self._buf[key] = (buf, tid, mono_ns)
            if len(self._buf) > self._max_streams:
                self._buf.popitem(last=False)
                self.evicted_partials += 1
        return out

    def flush_idle(self, now_ns: int, everything: bool = False) -> list[LogLine]:
        out = []
        for key in list(self._buf):
            buf, tid, ts = self._buf[key]
            if everything or now_ns - ts > self._idle:
                del self._buf[key]
                if buf.strip():
                    out.append(LogLine(key[0], tid, key[1], bytes(buf).decode(errors="replace"), ts))
        return out


def log_record(line: LogLine, resource: Resource, unix_ns: int, observed_ns: int) -> LogRecord:
    sev, text = severity_of(line.text)
    return LogRecord(
        time_unix_nano=unix_ns,
        observed_time_unix_nano=observed_ns,
        body=scrub_secrets(line.text),
        resource=resource,
        severity_number=sev,
        severity_text=text,
        attributes={"log.iostream": "stderr" if line.fd == 2 else "stdout", "thread.id": line.tid},
    )


class LogCapture:
    """Log capture: writes to stdout/stderr → lines → log records, stamped with the span the
    writing thread serves (by ``add_log`` of the telemetry assembler).  ``resource_of`` and
    ``to_unix_ns`` give the writer's resource and wall-clock time."""

    def __init__(self, add_log, resource_of, to_unix_ns, monotonic_ns, lines: LogLineAssembler | None = None) -> None:
        self._add_log = add_log
        self._resource_of = resource_of
        self._to_unix_ns = to_unix_ns
        self._monotonic_ns = monotonic_ns
        self._lines = lines or LogLineAssembler()

    def on_write(self, ev) -> None:
        """One captured write (a data event of kind ERX_EV_LOG)."""
        self._emit(self._lines.feed(ev.pid, ev.tid, ev.fd, ev.payload, ev.ts_exit_ns))

    def flush_idle(self, now_ns: int, everything: bool = False) -> None:
        self._emit(self._lines.flush_idle(now_ns, everything=everything))

    def _emit(self, lines: list[LogLine]) -> None:
        if not lines:
            return
        now = self._monotonic_ns()
        to_unix = self._to_unix_ns
        observed = to_unix(now)
        for line in lines:
            rec = log_record(line, self._resource_of(line.pid), to_unix(line.mono_ns), observed)
            self._add_log(rec, line.pid, line.tid, now)
