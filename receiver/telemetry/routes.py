"""``http.route`` from a path when the application does not tell us: user patterns first,
then a templating heuristic that replaces identifier-like segments with ``{id}`` so metric
cardinality stays bounded."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

_UUID = re.compile(r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$")
_NUMERIC = re.compile(r"^[+-]?\d+([.,]\d+)?$")
_HEX = re.compile(r"^(0x)?[0-9a-fA-F]{8,}$")
_MIXED_TOKEN = re.compile(r"^(?=.*\d)[A-Za-z0-9_\-.~=]{16,}$")


def template_segment(seg: str) -> str:
    if not seg:
        return seg
    if _NUMERIC.match(seg) or _UUID.match(seg) or _HEX.match(seg) or _MIXED_TOKEN.match(seg) or len(seg) > 40:
        return "{id}"
    return seg


@dataclass(frozen=True)
class RouteRule:
    """A user pattern like ``/users/{id}/orders/*``: ``{name}`` and ``*`` match one segment,
    a trailing ``**`` matches the rest."""

    pattern: str

    def matches(self, segments: list[str]) -> bool:
        pat = [s for s in self.pattern.split("/") if s != ""]
        for i, p in enumerate(pat):
            if p == "**":
                return True
            if i >= len(segments):
                return False
            if p == "*" or (p.startswith("{") and p.endswith("}")):
                continue
            if p != segments[i]:
                return False
        return len(pat) == len(segments)


class RouteTemplater:
    def __init__(self, patterns: Sequence[str] = (), ignored: Sequence[str] = (), max_segments: int = 8) -> None:
        self._rules = [RouteRule(p) for p in patterns]
        self._ignored = [RouteRule(p) for p in ignored]
        self._max = max_segments
        self._cache: dict[str, str | None] = {}

    def route(self, path: str) -> str | None:
        """The route for a path, or None when the path is ignored."""
        r = self._cache.get(path, "")
        if r != "":
            return r
        segments = [s for s in path.split("/") if s != ""]
        if any(rule.matches(segments) for rule in self._ignored):
            result = None
        else:
            result = next((rule.pattern for rule in self._rules if rule.matches(segments)), None)
            if result is None:
                segs = [template_segment(s) for s in segments[: self._max]]
                if len(segments) > self._max:
                    segs.append("*")
                result = "/" + "/".join(segs)
        if len(self._cache) > 10000:
            self._cache.clear()
        self._cache[path] = result
        return result

    def is_ignored(self, path: str) -> bool:
        segments = [s for s in path.split("/") if s != ""]
        return any(rule.matches(segments) for rule in self._ignored)
