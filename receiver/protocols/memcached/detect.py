"""Protocol inference: do the first bytes of a direction look like memcached's text protocol?

Commands are lower-case and case-sensitive (``GET k`` is an ``ERROR`` to memcached), replies
upper-case.  Most first lines are unmistakable — a storage command's numeric fields
(``set k 0 0 5``), a meta command (``mg k v``), ``VALUE k 0 5``, ``STORED``.  A few are also
what a Redis user could type inline (``get k``, ``incr k``, ``touch k 10``): ``MAYBE``, and the
reply (``END``/``VALUE`` vs RESP) decides.
"""

from __future__ import annotations

import re

from receiver.protocols.api import Detection
from receiver.protocols.base import Direction

_KEY = rb"[!-~]{1,250}"
_NUM = rb"[0-9]{1,20}"
_SNUM = rb"-?[0-9]{1,20}"
_END = rb"(?:\r\n|\n)"
_YES_REQUEST = re.compile(
    rb"(?:(?:set|add|replace|append|prepend) " + _KEY + rb" " + _NUM + rb" " + _SNUM + rb" " + _NUM
    + rb"(?: noreply)?"
    + rb"|cas " + _KEY + rb" " + _NUM + rb" " + _SNUM + rb" " + _NUM + rb" " + _NUM + rb"(?: noreply)?"
    + rb"|gets(?: " + _KEY + rb")+"
    + rb"|gats? " + _SNUM + rb"(?: " + _KEY + rb")+"
    + rb"|get " + _KEY + rb"(?: " + _KEY + rb")+"
    + rb"|(?:incr|decr) " + _KEY + rb" " + _NUM + rb"(?: noreply)?"
    + rb"|delete " + _KEY + rb"(?: 0)?(?: noreply)?"
    + rb"|touch " + _KEY + rb" " + _SNUM + rb" noreply"
    + rb"|m[gdae] " + _KEY + rb"(?: [A-Za-z][!-~]{0,64})*"
    + rb"|ms " + _KEY + rb" " + _NUM + rb"(?: [A-Za-z][!-~]{0,64})*"
    + rb"|mn|version|stats(?: [a-z_ ]{1,64})?|flush_all(?: [0-9]{1,10})?(?: noreply)?"
    + rb"|verbosity [0-9]{1,3}(?: noreply)?"
    + rb")" + _END
)
# Also a Redis inline command (GET, INCR, TOUCH take these shapes).
_MAYBE_REQUEST = re.compile(rb"(?:get " + _KEY + rb"|(?:incr|decr) " + _KEY + rb"|touch " + _KEY + rb" " + _SNUM
                            + rb")" + _END)
# A first line cut short: a command word and a space.
_PARTIAL_REQUEST = re.compile(rb"(?:set|add|replace|append|prepend|cas|gets?|gats?|delete|incr|decr|touch|m[gsdae]) [!-~]")
_YES_REPLY = re.compile(
    rb"(?:VALUE " + _KEY + rb" " + _NUM + rb" " + _NUM + rb"(?: " + _NUM + rb")?"
    + rb"|STORED|NOT_STORED|EXISTS|NOT_FOUND|DELETED|TOUCHED|END"
    + rb"|STAT [!-~]{1,64} [^\r\n]{0,256}|VERSION [0-9][!-~]{0,64}"
    + rb"|VA " + _NUM + rb"(?: [A-Za-z][!-~]{0,64})*|(?:HD|EN|NF|NS|EX|MN)(?: [A-Za-z][!-~]{0,64})*"
    + rb"|(?:CLIENT|SERVER)_ERROR [^\r\n]{1,256}"
    + rb")" + _END
)


def detect(data: bytes, direction: Direction | None = None) -> Detection:
    """How much ``data`` — the first bytes one side sent — looks like memcached text/meta."""
    try:
        head = bytes(data[:4096])
        if _YES_REQUEST.match(head) or _YES_REPLY.match(head):
            return Detection.YES
        if _MAYBE_REQUEST.match(head):
            return Detection.MAYBE
        if b"\n" not in head and _PARTIAL_REQUEST.match(head):
            return Detection.MAYBE
        return Detection.NO
    except Exception:  # detection must never fail the caller
        return Detection.NO
