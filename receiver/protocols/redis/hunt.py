"""Hunting: where a RESP reader that is out of sync may start reading again.

A reader hunts at the start of a stream (the agent may attach mid-connection), after invalid
bytes and after bytes lost to a truncated capture.  A frame may start at the start of a feed,
at the start of the bytes carried over from the last one, or at a line start, and only where
the bytes there look like the start of a frame of the stream's kind (:func:`plausible_start`).
"""

from __future__ import annotations

import re

from receiver.protocols.base import ParseState

from .frames import MAX_TEXT, MODE_REPLY, MODE_REQUEST, MODE_UNKNOWN
from .inline import inline_command_at

SUCCESS = ParseState.SUCCESS
NEEDS_MORE_DATA = ParseState.NEEDS_MORE_DATA
INVALID = ParseState.INVALID

# Plausible frame starts, for hunting.  Requests: a RESP array of bulk strings, or (only at the
# start of a feed or of the carried bytes) an inline command word that names a known command.
# Replies: any RESP header line.
_REQUEST_START = rb"\*[1-9][0-9]{0,9}\r\n\$[0-9]{1,12}\r\n"
_REPLY_START = (
    rb"(?:[+\-][^\r\n]{0,%d}|:[-+]?[0-9]{1,20}|[$*!=%%~>|](?:-1|[0-9]{1,12})"
    rb"|_|#[tf]|,[^\r\n]{1,64}|\([-+]?[0-9]{1,64})\r\n" % MAX_TEXT
)
_REQUEST_AT = re.compile(_REQUEST_START)
_REPLY_AT = re.compile(_REPLY_START)
_STARTS_AFTER_LF = {
    MODE_REQUEST: re.compile(rb"(?<=\n)" + _REQUEST_START),
    MODE_REPLY: re.compile(rb"(?<=\n)" + _REPLY_START),
    MODE_UNKNOWN: re.compile(rb"(?<=\n)" + _REPLY_START),
}
_MAX_KEPT_TAIL = 64  # bytes of a possible (incomplete) frame start kept while hunting


def plausible_start(view: bytes | bytearray, i: int, end: int, mode: int) -> bool:
    """Could a frame start at ``view[i]`` (a feed start or a line start)?"""
    if mode != MODE_REQUEST and _REPLY_AT.match(view, i, end):
        return True
    if mode == MODE_REPLY:
        return False
    if _REQUEST_AT.match(view, i, end):
        return True
    return inline_command_at(view, i, end)


def find_frame_start(
    view: bytes | bytearray, pos: int, end: int, carried: int, mode: int
) -> tuple[ParseState, int]:
    """Find the next plausible frame start at or after ``pos`` in ``view[:end]``.

    Candidates are the start of the view (a feed start, or carried bytes that began at a line
    start), the start of this feed's bytes (``carried``), and every line start.  Returns
    ``(SUCCESS, p)`` for the start found; ``(NEEDS_MORE_DATA, p)`` when there is none, but
    ``view[p:end]`` (a short tail, maybe empty) may still become one: keep it; ``(INVALID,
    end)`` when the tail is too long to be worth keeping.
    """
    found = -1
    if pos == 0 and plausible_start(view, 0, end, mode):
        found = 0
    elif pos <= carried < end and plausible_start(view, carried, end, mode):
        found = carried
    if found < 0:
        m = _STARTS_AFTER_LF[mode].search(view, pos, end)
        if m is not None:
            found = m.start()
            if pos <= carried < found and plausible_start(view, carried, end, mode):
                found = carried  # the start of this feed comes first
    if found >= 0:
        return SUCCESS, found
    # Keep a short tail that may be an incomplete frame start.
    last_lf = view.rfind(b"\n", pos, end)
    tail = last_lf + 1 if last_lf >= 0 else (pos if pos == 0 else (carried if pos <= carried else end))
    if end - tail > _MAX_KEPT_TAIL:
        return INVALID, end
    return NEEDS_MORE_DATA, tail
