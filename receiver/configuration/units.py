"""Durations and byte sizes as written in configuration files.

Durations use the Collector's (Go's ``time.ParseDuration``) syntax — ``"5s"``, ``"200ms"``,
``"1h30m"``, ``"500us"`` — or a plain number of seconds, and are stored as float seconds.
Sizes are integers of bytes, or a string with a unit: ``"16MiB"``, ``"4KiB"``, ``"1MB"``.
"""

from __future__ import annotations

import re

_DURATION_UNITS_NS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,  # U+00B5 micro sign
    "μs": 1_000,  # U+03BC greek mu
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
_DURATION_PART = re.compile(r"([0-9]*(?:\.[0-9]*)?)([a-zµμ]+)")
_SIZE = re.compile(r"([0-9]+)\s*([A-Za-z]*)")
_SIZE_UNITS = {
    "": 1,
    "B": 1,
    "KB": 1000,
    "MB": 1000**2,
    "GB": 1000**3,
    "KiB": 1024,
    "MiB": 1024**2,
    "GiB": 1024**3,
}


def parse_duration(text: str) -> float:
    """Seconds in a Go duration string; raises ``ValueError`` with a readable reason."""
    body = text.strip()
    sign = 1
    if body[:1] in ("+", "-"):
        sign = -1 if body[0] == "-" else 1
        body = body[1:]
    if body == "0":
        return 0.0
    if not body:
        raise ValueError("empty duration")
    total_ns = 0.0
    position = 0
    while position < len(body):
        match = _DURATION_PART.match(body, position)
        if match is None or match.group(1) in ("", "."):
            if re.fullmatch(r"[0-9.]+", body):
                raise ValueError("a duration needs a unit, e.g. '5s' or '200ms' (or write a plain number of seconds)")
            raise ValueError("not a duration (examples: '5s', '200ms', '1m', '1h30m', '500us')")
        number, unit = match.groups()
        if unit not in _DURATION_UNITS_NS:
            raise ValueError(f"unknown duration unit '{unit}' (use ns, us, ms, s, m or h)")
        total_ns += float(number) * _DURATION_UNITS_NS[unit]
        position = match.end()
    return sign * total_ns / 1e9


def format_duration(seconds: float) -> str:
    """The shortest Go-style string for ``seconds`` (``0.2`` → ``"200ms"``, ``5400`` → ``"1h30m"``)."""
    total_ns = round(seconds * 1e9)
    if total_ns == 0:
        return "0s"
    sign = "-" if total_ns < 0 else ""
    total_ns = abs(total_ns)
    if total_ns < 1_000_000_000:
        for unit, size in (("ms", 1_000_000), ("us", 1_000)):
            if total_ns % size == 0:
                return f"{sign}{total_ns // size}{unit}"
        return f"{sign}{total_ns}ns"
    hours, rest = divmod(total_ns, 3_600_000_000_000)
    minutes, rest = divmod(rest, 60_000_000_000)
    text = sign
    if hours:
        text += f"{hours}h"
    if minutes:
        text += f"{minutes}m"
    if rest:
        whole, fraction = divmod(rest, 1_000_000_000)
        text += f"{whole}.{fraction:09d}".rstrip("0").rstrip(".") + "s"
    return text


def parse_size(text: str) -> int:
    """Bytes in ``"16MiB"``-style text; raises ``ValueError`` with a readable reason."""
    match = _SIZE.fullmatch(text.strip())
    if match is None:
        raise ValueError("not a size (examples: 4096, '4KiB', '16MiB', '1MB')")
    number, unit = match.groups()
    if unit not in _SIZE_UNITS:
        raise ValueError(f"unknown size unit '{unit}' (use B, KiB, MiB, GiB, KB, MB or GB)")
    return int(number) * _SIZE_UNITS[unit]


def format_size(size: int) -> str | int:
    """``16777216`` → ``"16MiB"``; sizes that are not whole KiB/MiB/GiB stay integers."""
    for unit in ("GiB", "MiB", "KiB"):
        if size and size % _SIZE_UNITS[unit] == 0:
            return f"{size // _SIZE_UNITS[unit]}{unit}"
    return size
