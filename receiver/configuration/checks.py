"""Value checks used by :func:`~.section.setting` (``check=``): each returns a problem or None.

Filesystem checks look but never touch: nothing is created, and key files are opened only to
prove they are readable (their contents are never read).
"""

from __future__ import annotations

import difflib
import os
import re
import stat
from urllib.parse import urlsplit

from receiver.configuration.section import PIPELINE_SIGNALS

_HOST_PORT = re.compile(r"(?P<host>\[[0-9A-Fa-f:.]+\]|[^\s:/\[\]]*):(?P<port>[0-9]{1,5})")
_METRIC_NAMESPACE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


def readable_file(path: str) -> str | None:
    """The path names a regular file this process can open for reading."""
    if not path:
        return "must be a file path, not empty"
    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):
            kind = "a directory" if stat.S_ISDIR(info.st_mode) else "not a regular file"
            return f"file '{path}' is not readable: it is {kind}"
        with open(path, "rb"):
            pass
    except FileNotFoundError:
        return f"file '{path}' is not readable"
    except PermissionError:
        return f"file '{path}' is not readable: permission denied"
    except OSError as exc:
        return f"file '{path}' is not readable: {exc.strerror or exc}"
    return None


def creatable_dir(path: str) -> str | None:
    """The path is a writable directory, or one that could be created (checked, not created)."""
    if not path:
        return "must be a directory path, not empty"
    target = os.path.abspath(path)
    existing = target
    while not os.path.exists(existing):
        parent = os.path.dirname(existing)
        if parent == existing:
            break
        existing = parent
    if not os.path.isdir(existing):
        if existing == target:
            return f"'{path}' is not a directory"
        return f"directory '{path}' cannot be created: '{existing}' is not a directory"
    if not os.access(existing, os.W_OK | os.X_OK):
        if existing == target:
            return f"directory '{path}' is not writable"
        return f"directory '{path}' cannot be created: '{existing}' is not writable"
    return None


def host_port(value: str) -> str | None:
    """``host:port`` or ``:port`` (all interfaces) with a port in 1..65535."""
    match = _HOST_PORT.fullmatch(value)
    if match is None or not 1 <= int(match["port"]) <= 65535:
        return f"'{value}' is not host:port (for example 127.0.0.1:9464)"
    return None


def grpc_endpoint(value: str) -> str | None:
    """``host:port``, ``http(s)://host:port``, ``dns:///host:port`` or ``unix:///path``."""
    problem = f"'{value}' is not a gRPC endpoint (for example localhost:4317 or https://otlp.example.com:4317)"
    try:
        parts = urlsplit(value)
    except ValueError:  # an unbalanced '[' or ']' of an IPv6 host (found by the fuzz campaign)
        return problem
    if parts.scheme in ("http", "https") and parts.hostname:
        return None
    if parts.scheme in ("dns", "unix") and (parts.path or parts.netloc):
        return None
    if _HOST_PORT.fullmatch(value) and value.rpartition(":")[0]:
        return None
    return problem


def http_url(value: str) -> str | None:
    """An absolute ``http://`` or ``https://`` URL."""
    problem = f"'{value}' is not an http(s) URL (for example http://localhost:4318)"
    try:
        parts = urlsplit(value)
    except ValueError:  # an unbalanced '[' or ']' of an IPv6 host
        return problem
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return problem
    try:
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        return f"'{value}' has an invalid port"
    return None


def url_path(value: str) -> str | None:
    """A URL path starting with ``/``."""
    if not value.startswith("/"):
        return f"'{value}' must start with '/'"
    return None


def metric_namespace(value: str) -> str | None:
    """Empty, or letters, digits and ``_`` not starting with a digit."""
    if value and not _METRIC_NAMESPACE.fullmatch(value):
        return f"'{value}' is not a valid metric name prefix (letters, digits and '_')"
    return None


def pipeline_id(value: str) -> str | None:
    """``traces``, ``metrics``, ``logs`` or ``profiles``, optionally ``/name``."""
    signal, slash, name = value.partition("/")
    if signal not in PIPELINE_SIGNALS:
        close = difflib.get_close_matches(signal, PIPELINE_SIGNALS, n=1)
        hint = f" (did you mean '{close[0]}{slash}{name}'?)" if close else ""
        return (f"pipeline '{value}' must be named traces, metrics, logs or profiles, optionally followed by "
                f"/name{hint}")
    if slash and not name:
        return f"pipeline '{value}' has an empty name after '/'"
    return None


_CONTAINER_ID_PREFIX = re.compile(r"[0-9a-f]{1,64}")


def container_id_prefix(value: str) -> str | None:
    """A container id, or a prefix of it (lowercase hex, up to 64 digits)."""
    if not _CONTAINER_ID_PREFIX.fullmatch(value):
        return f"must be a container id or a prefix of it (lowercase hex, up to 64 digits), got '{value}'"
    return None


def not_empty(value: str) -> str | None:
    """Not empty."""
    if not value:
        return "must not be empty"
    return None
