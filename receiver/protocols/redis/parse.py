"""RESP2/RESP3 framing: a resumable scanner that turns one direction's bytes into frames.

A :class:`RespReader` is fed the bytes of one direction as they arrive and reports each
complete top-level value as a :class:`~.frames.Frame` (through ``on_frame``) and each loss of
framing (through ``on_loss``).  It is resumable: a frame may arrive one byte at a time.

What it keeps between feeds is bounded and never holds payload:

* bulk payloads (``$``, ``!``, ``=``) are *counted* through, never buffered — a declared length
  larger than ``max_buffer`` costs nothing, and when a capture is truncated the missing bytes
  inside a payload are skipped using the declared length;
* nesting is tracked with one counter per open aggregate, at most ``MAX_DEPTH`` of them;
* only an incomplete header or inline line is carried over, at most ``max_line`` bytes; longer
  simple-string/error lines (``MONITOR`` output can be huge) are skipped up to their end;
* of an aggregate's elements, only the first ``MAX_ITEMS`` top-level ones are noted, and of those
  only what the ``policy`` asks for is copied (a command word, a key — never argument values).

Modes: a *request* stream follows the server's rules (a line not starting with ``*`` is an inline
command, see :mod:`.inline`; arrays hold bulk strings only); a *reply* stream accepts every
RESP2/RESP3 type; an *unknown* stream (direction not yet learnt) accepts both.

States: *in sync* (a frame starts, or continues, right here) and *hunting* (after invalid bytes
or lost bytes, and at the start: looking for a plausible frame start at a line start or at the
start of a feed, see :mod:`.hunt`).  Invalid bytes count in :attr:`RespReader.errors`; framing
lost to a truncated capture counts in :attr:`RespReader.gaps`.  Nothing here raises on wire data.
"""

from __future__ import annotations

import re
from typing import Callable

from .commands import MAX_COMMAND_BYTES, static_plan
from .frames import (
    BANG,
    COLON,
    COMMA,
    CR,
    DOLLAR,
    EQUALS,
    GT,
    HASH,
    INLINE,
    LF,
    LPAREN,
    MAX_TEXT,
    MINUS,
    MODE_REPLY,
    MODE_REQUEST,
    MODE_UNKNOWN,
    PERCENT,
    PIPE,
    PLUS,
    RESP_TYPES,
    STAR,
    TILDE,
    UNDERSCORE,
    CapturePolicy,
    Frame,
)
from .hunt import SUCCESS, find_frame_start
from .inline import split_inline

MAX_DEPTH = 64  # open aggregates (RESP3 attributes included) inside one top-level value
MAX_ITEMS = 16  # top-level elements of an aggregate that are noted in Frame.items
MAX_HEADER = 32  # longest type/length header line ("$1234567890\r\n")
MAX_INLINE = 64 * 1024  # longest inline command line (the server's own limit)
MAX_BULK = 1 << 40  # longest declared bulk length accepted
MAX_COUNT = 1 << 32  # largest declared aggregate count accepted

_BULK_TYPES = frozenset((DOLLAR, BANG, EQUALS))
_AGGREGATE_TYPES = frozenset((STAR, PERCENT, TILDE, GT, PIPE))
_LONG_LINE_TYPES = frozenset((PLUS, MINUS, COMMA, LPAREN))
_FAST_SCALARS = frozenset((PLUS, MINUS, COLON, DOLLAR))

_INTEGER = re.compile(rb"[-+]?[0-9]{1,20}")
_ARRAY_HEADER = re.compile(rb"\*([1-9][0-9]{0,9})\r\n")
_BULK_HEADER = re.compile(rb"\$([0-9]{1,13})\r\n")
_BIG_NUMBER = re.compile(rb"[-+]?[0-9]+")
_DOUBLE = re.compile(rb"[-+]?(?:[0-9]+(?:\.[0-9]*)?(?:[eE][-+]?[0-9]+)?|inf|nan)", re.IGNORECASE)


class RespReader:
    """Resumable RESP scanner for one direction (see the module docstring)."""

    __slots__ = (
        "mode", "policy", "max_line", "max_inline", "on_frame", "on_loss", "errors", "gaps",
        "buf", "buf_ts", "hunting", "seen",
        "in_frame", "f_ts", "f_size", "f_top", "f_count", "f_line", "f_items", "f_all_bulk",
        "f_attr", "f_elems", "stack", "bulk_left", "cap_left", "capture", "line_skip",
    )

    def __init__(
        self,
        max_buffer: int,
        on_frame: Callable[[Frame, int], None],
        on_loss: Callable[[int], None],
        mode: int = MODE_UNKNOWN,
        policy: CapturePolicy | None = None,
    ) -> None:
        self.mode = mode
        self.policy = policy
        self.max_line = max(MAX_HEADER, min(max_buffer, MAX_INLINE))
        self.max_inline = self.max_line
        self.on_frame = on_frame
        self.on_loss = on_loss
        self.errors = 0  # invalid bytes met while in sync (each one starts a hunt)
        self.gaps = 0  # framing lost to missing (uncaptured) bytes
        self.buf = bytearray()  # an incomplete line; never holds a line feed
        self.buf_ts = 0  # ts of the feed that carried buf[0]
        self.hunting = True  # the stream may begin mid-frame (the agent attached late)
        self.seen = False  # any byte fed yet
        self.stack: list[int] = []
        self._reset_frame()

    # -- state -----------------------------------------------------------------------------

    def _reset_frame(self) -> None:
        self.in_frame = False
        self.f_ts = 0
        self.f_size = 0
        self.f_top = -1  # type of the top-level value; -1 until its header is parsed
        self.f_count = 0
        self.f_line: bytes | bytearray = b""
        self.f_items: list = []
        self.f_all_bulk = True
        self.f_attr = False
        self.f_elems = 0  # elements the top-level aggregate holds (2 per map entry)
        self.stack.clear()
        self.bulk_left = 0  # payload + CRLF bytes of the current bulk still to come
        self.cap_left = 0  # payload bytes still to copy into ``capture``
        self.capture: bytearray | None = None
        self.line_skip = False  # skipping the rest of an over-long simple line

    def lose_sync(self) -> None:
        """Drop the frame in progress and any carried bytes; hunt for the next frame start."""
        self._reset_frame()
        self.buf.clear()
        self.hunting = True

    @property
    def buffered(self) -> int:
        return len(self.buf)

    # -- feeding ---------------------------------------------------------------------------

    def feed(self, data: bytes | bytearray | memoryview, ts: int, missing: int = 0) -> None:
        """Parse ``data``; ``missing`` more bytes followed it on the wire but were not captured."""
        if data:
            self.seen = True
            buf = self.buf
            carried = len(buf)
            if carried:
                buf += data
                view: bytes | bytearray = buf
            elif isinstance(data, bytes | bytearray):
                view = data
            else:
                view = bytes(data)
            end = len(view)
            pos = self._scan(view, end, ts, carried)
            if view is buf:
                del buf[:pos]
                if pos >= carried:
                    self.buf_ts = ts
            elif pos < end:
                buf += memoryview(view)[pos:end]
                self.buf_ts = ts
        if missing > 0:
            self._skip_missing(missing, ts)

    def close(self, ts: int, report_partial: bool = True) -> None:
        """End of stream: a value cut short is reported as truncated if ``report_partial``."""
        if report_partial and self.in_frame and self.f_top >= 0 and not self.hunting:
            self._emit(ts, truncated=True)
        self.lose_sync()

    def _skip_missing(self, missing: int, ts: int) -> None:
        if self.hunting:
            self.buf.clear()  # a possible frame start kept while hunting was continued by lost bytes
            return
        if self.bulk_left and not self.buf:
            skipped = missing if missing < self.bulk_left else self.bulk_left
            self.bulk_left -= skipped
            self.f_size += skipped
            self.cap_left = 0
            missing -= skipped
            if not self.bulk_left:
                self.capture = None
                self._element_done(ts)
            if not missing:
                return
        # The lost bytes hold framing we cannot skip: the rest of the value in progress (its
        # size is counted up to the end of the lost bytes), and maybe whole other values.
        self.gaps += 1
        if self.in_frame and self.f_top >= 0:
            self.f_size += len(self.buf) + missing  # carried bytes of an unfinished header, too
            self._emit(ts, truncated=True)
        self.lose_sync()
        self.on_loss(ts)

    def _fail(self, ts: int) -> None:
        """Invalid bytes while in sync (the caller goes on hunting from the next byte)."""
        self.errors += 1
        self._reset_frame()  # not the buffer: it may be the view being scanned
        self.hunting = True
        self.on_loss(ts)

    # -- the scanner -----------------------------------------------------------------------

    def _scan(self, view: bytes | bytearray, end: int, ts: int, carried: int) -> int:
        """Consume frames from ``view[0:end]``; return the index of the first byte not consumed."""
        pos = 0
        stack = self.stack
        while pos < end:
            if self.hunting:
                pos = self._hunt(view, pos, end, carried)
                if self.hunting:
                    return pos
                continue

            left = self.bulk_left
            if left:  # inside a bulk payload (and its CRLF)
                take = end - pos
                if take > left:
                    take = left
                cap = self.cap_left
                if cap:
                    copy = left - 2
                    if copy > take:
                        copy = take
                    if copy > cap:
                        copy = cap
                    if copy > 0:
                        self.capture += view[pos : pos + copy]  # type: ignore[operator]
                        self.cap_left = cap - copy
                pos += take
                left -= take
                self.bulk_left = left
                self.f_size += take
                if left:
                    return pos
                if view[pos - 1] != LF or (take >= 2 and view[pos - 2] != CR):
                    self._fail(ts)
                    continue
                self.cap_left = 0
                self.capture = None
                self._element_done(ts)
                continue

            if self.line_skip:  # the rest of an over-long simple line
                nl = view.find(b"\n", pos, end)
                if nl < 0:
                    self.f_size += end - pos
                    return end
                self.f_size += nl + 1 - pos
                pos = nl + 1
                self.line_skip = False
                self._element_done(ts)
                continue

            t = view[pos]
            depth = len(stack)
            if not self.in_frame:
                # Fast paths: a whole request array, or a whole scalar reply, in the view.
                mode = self.mode
                if mode == MODE_REQUEST:
                    if t == STAR:
                        done = self._whole_request(view, pos, end, ts, carried)
                        if done > 0:
                            pos = done
                            continue
                elif mode == MODE_REPLY and t in _FAST_SCALARS:
                    done = self._whole_scalar(view, pos, end, ts, carried, t)
                    if done > 0:
                        pos = done
                        continue
                self.in_frame = True
                self.f_ts = self.buf_ts if pos < carried else ts
                mode = self.mode
                if mode != MODE_REPLY and t != STAR and (mode == MODE_REQUEST or t not in RESP_TYPES):
                    pos = self._inline(view, pos, end, ts, carried)
                    if pos < 0:  # incomplete line: keep it
                        self.in_frame = False
                        return -pos - 1
                    continue

            nl = view.find(b"\n", carried if pos < carried else pos, end)
            if nl < 0:
                if end - pos > MAX_HEADER:
                    if t in _LONG_LINE_TYPES and end - pos > self.max_line:
                        self._start_line_skip(view, pos, end, depth, t)
                        return end
                    if t not in _LONG_LINE_TYPES:
                        self._fail(ts)
                        pos += 1
                        continue
                if not self.f_size:  # nothing of this value consumed yet
                    self.in_frame = False
                return pos  # the line is incomplete: carry it
            if nl == pos or view[nl - 1] != CR:
                self._fail(ts)
                pos += 1
                continue
            header = view[pos + 1 : nl - 1]
            used = nl + 1 - pos

            # Index of this element in the top-level aggregate, -1 if it is not a direct element.
            index = self.f_elems - stack[0] if depth == 1 and stack[0] > 0 else -1
            request_mode = self.mode == MODE_REQUEST

            if t in _BULK_TYPES:
                if t == DOLLAR and header == b"-1":
                    if request_mode:
                        self._fail(ts)
                        pos += 1
                        continue
                    pos += used
                    self.f_size += used
                    self._scalar(depth, index, DOLLAR, b"", -1)
                    self._element_done(ts)
                    continue
                if not header.isdigit() or len(header) > 13 or (n := int(header)) > MAX_BULK:
                    self._fail(ts)
                    pos += 1
                    continue
                if request_mode and (depth != 1 or t != DOLLAR):
                    self._fail(ts)
                    pos += 1
                    continue
                pos += used
                self.f_size += used
                self.bulk_left = n + 2
                if index >= 0:
                    if t != DOLLAR:
                        self.f_all_bulk = False
                    items = self.f_items
                    if len(items) < MAX_ITEMS:
                        cap = self.policy(items, index) if self.policy is not None else 0
                        if cap:
                            capture = bytearray()
                            self.capture = capture
                            self.cap_left = cap if cap < n else n
                            items.append(capture)
                        else:
                            items.append(None)
                elif depth == 0:
                    self.f_top = t
                    self.f_count = n
                    if t == BANG:
                        capture = bytearray()
                        self.capture = capture
                        self.cap_left = MAX_TEXT if MAX_TEXT < n else n
                        self.f_line = capture
                continue

            if t in _AGGREGATE_TYPES:
                if t == STAR and header == b"-1":
                    if request_mode:
                        self._fail(ts)
                        pos += 1
                        continue
                    pos += used
                    self.f_size += used
                    self._scalar(depth, index, STAR, b"", -1)
                    self._element_done(ts)
                    continue
                if not header.isdigit() or len(header) > 10 or (n := int(header)) > MAX_COUNT:
                    self._fail(ts)
                    pos += 1
                    continue
                if request_mode and (depth != 0 or t != STAR):
                    self._fail(ts)
                    pos += 1
                    continue
                if n and depth >= MAX_DEPTH:
                    self._fail(ts)
                    pos += 1
                    continue
                pos += used
                self.f_size += used
                elements = 2 * n if t == PERCENT or t == PIPE else n
                if t == PIPE:
                    self.f_attr = True
                    if elements:
                        stack.append(-elements)
                    continue
                if index >= 0:
                    self.f_all_bulk = False
                    if len(self.f_items) < MAX_ITEMS:
                        self.f_items.append(None)
                elif depth == 0:
                    self.f_top = t
                    self.f_count = n
                    self.f_elems = elements
                if elements:
                    stack.append(elements)
                else:
                    self._element_done(ts)
                continue

            # Line types.
            if t == PLUS or t == MINUS:
                ok = True
            elif t == COLON:
                ok = _INTEGER.fullmatch(header) is not None
            elif t == UNDERSCORE:
                ok = not header
            elif t == HASH:
                ok = header == b"t" or header == b"f"
            elif t == COMMA:
                ok = _DOUBLE.fullmatch(header) is not None
            elif t == LPAREN:
                ok = _BIG_NUMBER.fullmatch(header) is not None
            else:
                ok = False
            if not ok or request_mode:
                self._fail(ts)
                pos += 1
                continue
            pos += used
            self.f_size += used
            self._scalar(depth, index, t, header, 0)
            self._element_done(ts)
        return pos

    def _whole_request(self, view: bytes | bytearray, pos: int, end: int, ts: int, carried: int) -> int:
        """A complete array of bulk strings at ``pos``: emit it and return the index after it.
        Returns 0 (nothing consumed) when it is incomplete or unusual: the general path decides."""
        m = _ARRAY_HEADER.match(view, pos, end)
        if m is None:
            return 0
        n = int(m.group(1))
        p = m.end()
        items: list = []
        policy = self.policy
        plan: tuple[int, ...] | None = ()
        match = _BULK_HEADER.match
        for i in range(n):
            m = match(view, p, end)
            if m is None:
                return 0
            start = m.end()
            stop = start + int(m.group(1))
            if stop + 2 > end or view[stop] != CR or view[stop + 1] != LF:
                return 0
            if i == 0:
                items.append(bytes(view[start : min(stop, start + MAX_COMMAND_BYTES)]))
                plan = static_plan(items[0]) if policy is not None else ()
            elif plan is None:  # a command whose interesting arguments depend on others
                if i < MAX_ITEMS:
                    cap = policy(items, i)  # type: ignore[misc]
                    items.append(bytes(view[start : min(stop, start + cap)]) if cap else None)
            elif i <= len(plan):
                cap = plan[i - 1]
                items.append(bytes(view[start : min(stop, start + cap)]) if cap else None)
            p = stop + 2
        self.on_frame(
            Frame(STAR, n, b"", items, True, p - pos, self.buf_ts if pos < carried else ts, False, False), ts
        )
        return p

    def _whole_scalar(self, view: bytes | bytearray, pos: int, end: int, ts: int, carried: int, t: int) -> int:
        """A complete ``+``/``-``/``:``/``$`` reply at ``pos``: emit it; else 0 (see above)."""
        if t == DOLLAR:
            nl = view.find(b"\r\n", pos, pos + MAX_HEADER)
            if nl < 0:
                return 0
            header = view[pos + 1 : nl]
            if header == b"-1":
                count = -1
                stop = nl + 2
            elif header.isdigit() and len(header) <= 13:
                count = int(header)
                stop = nl + 4 + count
                if stop > end or view[stop - 2] != CR or view[stop - 1] != LF:
                    return 0
            else:
                return 0
            line = b""
        else:
            nl = view.find(b"\r\n", pos, end)
            if nl < 0 or nl - pos > self.max_line:
                return 0
            line = view[pos + 1 : nl]
            if LF in line or (t == COLON and _INTEGER.fullmatch(line) is None):
                return 0
            line = bytes(line[:MAX_TEXT])
            count = 0
            stop = nl + 2
        self.on_frame(
            Frame(t, count, line, [], False, stop - pos, self.buf_ts if pos < carried else ts, False, False), ts
        )
        return stop

    def _scalar(self, depth: int, index: int, t: int, header: bytes | bytearray, count: int) -> None:
        """Note a scalar (or null) element that is complete with its header line."""
        if index >= 0:
            self.f_all_bulk = False
            items = self.f_items
            if len(items) < MAX_ITEMS:
                items.append(int(header) if t == COLON else None)
        elif depth == 0:
            self.f_top = t
            self.f_count = count
            self.f_line = bytes(header[:MAX_TEXT])

    def _start_line_skip(self, view: bytes | bytearray, pos: int, end: int, depth: int, t: int) -> None:
        if depth == 0:
            self.f_top = t
            self.f_line = bytes(view[pos + 1 : pos + 1 + MAX_TEXT])
        elif depth == 1 and self.stack[0] > 0:
            self.f_all_bulk = False
            if len(self.f_items) < MAX_ITEMS:
                self.f_items.append(None)
        self.f_size += end - pos
        self.line_skip = True

    def _element_done(self, ts: int) -> None:
        """An element ended: close the aggregates it completes; emit a finished top-level value."""
        stack = self.stack
        while stack:
            left = stack[-1]
            if left > 0:
                left -= 1
                if left:
                    stack[-1] = left
                    return
                stack.pop()  # the aggregate is complete: it is an element of its parent
            else:  # an attribute: not an element of its parent; a value follows it
                left += 1
                if left:
                    stack[-1] = left
                else:
                    stack.pop()
                return
        self._emit(ts, truncated=False)

    def _emit(self, ts: int, truncated: bool) -> None:
        line = self.f_line
        frame = Frame(
            self.f_top,
            self.f_count,
            line if isinstance(line, bytes) else bytes(line),
            self.f_items,
            self.f_all_bulk and self.f_top == STAR,
            self.f_size,
            self.f_ts,
            truncated,
            self.f_attr,
        )
        self._reset_frame()
        self.f_items = []
        self.on_frame(frame, ts)

    def _inline(self, view: bytes | bytearray, pos: int, end: int, ts: int, carried: int) -> int:
        """An inline command line at ``pos``; returns the position after it, or ``-pos - 1`` if
        the line is incomplete."""
        nl = view.find(b"\n", carried if pos < carried else pos, end)
        if nl < 0:
            if end - pos > self.max_inline:
                self._fail(ts)
                return pos + 1
            return -pos - 1
        if nl - pos > self.max_inline:
            self._fail(ts)
            return pos + 1
        line = view[pos : nl - 1] if nl > pos and view[nl - 1] == CR else view[pos:nl]
        words = split_inline(bytes(line))
        size = nl + 1 - pos
        if not words:  # an empty line: the server ignores it
            self.in_frame = False
            return nl + 1
        self.f_top = INLINE
        self.f_count = len(words)
        self.f_items = words[:MAX_ITEMS]
        self.f_all_bulk = False
        self.f_size = size
        self._emit(ts, truncated=False)
        return nl + 1

    def _hunt(self, view: bytes | bytearray, pos: int, end: int, carried: int) -> int:
        """Find the next plausible frame start at or after ``pos`` (:func:`~.hunt.find_frame_start`).

        Returns the start found (and stops hunting), or the index from which to keep bytes that
        may still become a frame start.
        """
        state, p = find_frame_start(view, pos, end, carried, self.mode)
        if state is SUCCESS:
            self.hunting = False
        return p
