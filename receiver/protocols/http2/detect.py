"""Protocol inference: do the first bytes of a direction look like HTTP/2?"""

from __future__ import annotations

from .parse import count_chain
from .types import DEFAULT_MAX_FRAME_SIZE, FRAME_HEADER_SIZE, PREFACE

_MIN_PREFACE_PREFIX = 8  # "PRI * HT": a capture shorter than this proves nothing


def detect(data: bytes) -> bool:
    """True if ``data`` starts with the HTTP/2 client connection preface, or — a connection
    joined mid-way, or the server's side — with plausible frames that chain exactly.

    Frames must each have a known type, only defined flags, the reserved bit clear, a stream id
    zero or not as the type requires, the fixed length of their type, a length within the
    default SETTINGS_MAX_FRAME_SIZE (16 KiB); and end exactly at the end of ``data``, or be
    followed by the plausible header of a frame that continues past it (a capture cut short).
    HTTP/1.x, PostgreSQL, MySQL and Redis traffic fails the type, flags or length checks at
    once (their 4th byte is ASCII, or their first 3 bytes make a length far past the data).
    """
    try:
        n = len(data)
        if n >= _MIN_PREFACE_PREFIX and data[: len(PREFACE)] == PREFACE[: min(n, len(PREFACE))]:
            return True
        if n < FRAME_HEADER_SIZE:
            return False
        frames, stop = count_chain(data, 0, n, DEFAULT_MAX_FRAME_SIZE, max_frames=n)
        if frames <= 0:
            return False
        if stop == n:
            return True
        # A frame continues past the capture: its header must be whole and plausible.
        return n - stop >= FRAME_HEADER_SIZE and count_chain(data, stop, stop + FRAME_HEADER_SIZE, DEFAULT_MAX_FRAME_SIZE)[0] == 0
    except Exception:  # detection must never fail the caller
        return False
