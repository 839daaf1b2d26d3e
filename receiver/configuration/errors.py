"""The one exception configuration loading raises, and where in a file a problem is."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Location:
    """A line in a configuration source (a file path as given, or a name like ``<string>``)."""

    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


class ConfigError(Exception):
    """A configuration problem, rendered as one line::

        config error: exporters.otlp/vendor.tls.ca_file: file '/nope.pem' is not readable (config.yaml:12)

    ``key_path`` is the dotted path of the offending key (``None`` for whole-file problems such
    as an unreadable file), ``location`` where it was written (``None`` if nowhere).
    Messages never contain the values of secret settings (header values).
    """

    def __init__(self, message: str, key_path: str | None = None, location: Location | None = None):
        super().__init__(message)
        self.message = message
        self.key_path = key_path
        self.location = location

    def __str__(self) -> str:
        text = "config error: "
        if self.key_path:
            text += f"{self.key_path}: "
        text += self.message
        if self.location is not None:
            text += f" ({self.location})"
        # One line whatever a message quotes from the file (a quoted YAML scalar may hold breaks).
        return text.replace("\r", "\\r").replace("\n", "\\n")
