"""Inline commands: a request line that is not RESP (``PING``, ``SET k "a b"`` typed into telnet).

The server splits an inline line into words at spaces and tabs; a word may be quoted with
``"..."`` or ``'...'`` (with backslash escapes) and then holds spaces.  Nothing here copies
argument values beyond what the caller asks for.
"""

from __future__ import annotations

import re

from .commands import KNOWN_COMMANDS

_INLINE_ARG = re.compile(rb'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|[^ \t\r\n\'"][^ \t\r\n]*|["\'][^ \t\r\n]*')
# An inline command line naming a command (the word is checked against the command table).
_INLINE_AT = re.compile(rb"([A-Za-z][A-Za-z0-9_.:-]{0,63})(?:[ \t][^\r\n]*)?\r?\n")


def split_inline(line: bytes) -> list[bytes]:
    """Split an inline command line into arguments (quotes kept; see :func:`unquote`)."""
    return _INLINE_ARG.findall(line)


def unquote(arg: bytes) -> bytes:
    """An inline argument without its quotes (``"a b"`` → ``a b``; simple escapes only)."""
    if len(arg) >= 2 and arg[0] == arg[-1] and arg[0] in b"\"'":
        body = arg[1:-1]
        if b"\\" in body:
            body = re.sub(rb"\\(.)", rb"\1", body)
        return body
    return arg


def inline_command_at(view: bytes | bytearray, i: int, end: int) -> bool:
    """Does a whole inline line naming a known command start at ``view[i]``?"""
    m = _INLINE_AT.match(view, i, end)
    return m is not None and m.group(1).upper().decode() in KNOWN_COMMANDS
