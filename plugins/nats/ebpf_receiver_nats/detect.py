"""Protocol inference: do the first bytes of a direction look like the NATS client protocol?

The server speaks first, ``INFO {...}``, and the client's first line is ``CONNECT {...}``: both YES
(Redis knows an ``INFO`` command, but never with a JSON argument).  A ``PUB``/``HPUB``/``SUB``/
``MSG``/``HMSG`` line of the right shape (attached mid-connection) is MAYBE."""

from __future__ import annotations

import re

from receiver.protocols.api import Detection
from receiver.protocols.base import Direction

_OPENING = re.compile(rb"(?:INFO|CONNECT)[ \t]+\{")
_MIDSTREAM = re.compile(
    rb"(?:PUB [!-~]{1,256}(?: [!-~]{1,256})? [0-9]{1,10}"
    rb"|HPUB [!-~]{1,256}(?: [!-~]{1,256})? [0-9]{1,10} [0-9]{1,10}"
    rb"|SUB [!-~]{1,256}(?: [!-~]{1,256})? [!-~]{1,64}"
    rb"|MSG [!-~]{1,256} [!-~]{1,64}(?: [!-~]{1,256})? [0-9]{1,10}"
    rb"|HMSG [!-~]{1,256} [!-~]{1,64}(?: [!-~]{1,256})? [0-9]{1,10} [0-9]{1,10})\r\n",
    re.IGNORECASE,
)


def detect(data: bytes, direction: Direction | None = None) -> Detection:
    try:
        head = bytes(data[:1024])
        if _OPENING.match(head):
            return Detection.YES
        if _MIDSTREAM.match(head):
            return Detection.MAYBE
        return Detection.NO
    except Exception:  # detection must never fail the caller
        return Detection.NO
