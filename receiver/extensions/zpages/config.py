"""``zpages`` extension configuration (the Collector's name and default port)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from receiver.configuration.checks import host_port
from receiver.configuration.section import ConfigSection, setting

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})


@dataclass(frozen=True, slots=True)
class ZPagesExtensionConfig(ConfigSection):
    """``zpages``: live pages of what the agent sees — /debug/servicez, /debug/servicemap,
    /debug/tracez, /debug/pipelinez — served as HTML with nothing fetched from elsewhere."""

    signals: ClassVar[frozenset[str]] = frozenset()

    endpoint: str = setting(
        "localhost:55679",
        "Address the pages are served on. Loopback unless set otherwise: the pages show process names, "
        "command-line derived service names and span attributes; ':55679' (all interfaces) must be written out.",
        check=host_port,
    )
    refresh_interval: float = setting(5.0, "How often an open page refreshes itself (0: never).", kind="duration",
                                      minimum=0)
    rate_window: float = setting(30.0, "Requests per second are averaged over this window.", kind="duration",
                                 above=0)
    samples_per_bucket: int = setting(4, "tracez: the most recent spans kept per span name and latency bucket "
                                      "(and per name for errors).", minimum=1, maximum=100)
    max_span_names: int = setting(200, "tracez: span names kept; spans of further names are only counted.",
                                  minimum=1, maximum=10000)


def bind_address(endpoint: str) -> tuple[str, int]:
    """``(host, port)`` to bind: ``localhost`` is 127.0.0.1 (never whatever else the name resolves to)."""
    host, _, port = endpoint.rpartition(":")
    host = host.strip("[]")
    if host == "localhost":
        host = "127.0.0.1"
    return host, int(port)


def is_loopback(host: str) -> bool:
    return host in LOOPBACK_NAMES or host.startswith("127.")
