"""DNS wire format: the 12-byte header and the first question, with name decompression that is
bounded (at most 255 bytes of name, 127 labels, 32 pointer jumps, pointers only backwards) so a
malicious message cannot loop or blow up.  Pure functions over bytes; nothing raises."""

from __future__ import annotations

import struct

from .types import DnsMessage, DnsQuestion

HEADER = 12
MAX_NAME = 255
MAX_JUMPS = 32
MAX_LABELS = 127
_HEADER = struct.Struct("!HHHHHH")
_QTAIL = struct.Struct("!HH")


def read_name(buf: bytes, at: int) -> tuple[str, int] | None:
    """The domain name at ``buf[at:]`` and the offset just after it (after the first pointer when
    it is compressed); ``None`` if it is malformed, loops, or runs past ``buf``."""
    labels: list[str] = []
    size = 0
    end = -1
    jumps = 0
    pos = at
    limit = len(buf)
    while True:
        if pos >= limit:
            return None
        length = buf[pos]
        kind = length & 0xC0
        if kind == 0xC0:
            if pos + 1 >= limit or jumps >= MAX_JUMPS:
                return None
            target = ((length & 0x3F) << 8) | buf[pos + 1]
            if end < 0:
                end = pos + 2
            if target >= pos:  # only backwards: no loops
                return None
            jumps += 1
            pos = target
            continue
        if kind:  # 0x40 / 0x80: extended label types (obsolete)
            return None
        if length == 0:
            return ".".join(labels), (end if end >= 0 else pos + 1)
        if pos + 1 + length > limit or len(labels) >= MAX_LABELS:
            return None
        size += length + 1
        if size > MAX_NAME:
            return None
        labels.append(_escape(buf[pos + 1 : pos + 1 + length]))
        pos += 1 + length


def _escape(label: bytes) -> str:
    if all(0x21 <= b <= 0x7E and b not in (0x2E, 0x5C, 0x22) for b in label):
        return label.decode("ascii")
    out = []
    for b in label:
        if b in (0x2E, 0x5C, 0x22):
            out.append("\\" + chr(b))
        elif 0x21 <= b <= 0x7E:
            out.append(chr(b))
        else:
            out.append(f"\\{b:03d}")
    return "".join(out)


def parse_message(buf: bytes, wire_size: int | None = None) -> DnsMessage | None:
    """Header and first question of the message in ``buf`` (which may be a truncated capture of
    a ``wire_size``-byte message).  ``None`` if even the header is not there."""
    if len(buf) < HEADER:
        return None
    ident, flags, qd, an, ns, ar = _HEADER.unpack_from(buf, 0)
    question = None
    if qd:
        found = read_name(buf, HEADER)
        if found is not None:
            name, after = found
            if after + 4 <= len(buf):
                qtype, qclass = _QTAIL.unpack_from(buf, after)
                question = DnsQuestion(name, qtype, qclass)
    size = wire_size if wire_size is not None else len(buf)
    return DnsMessage(
        id=ident,
        is_response=bool(flags & 0x8000),
        opcode=(flags >> 11) & 0xF,
        rcode=flags & 0xF,
        authoritative=bool(flags & 0x0400),
        truncated_flag=bool(flags & 0x0200),
        recursion_desired=bool(flags & 0x0100),
        question=question,
        question_count=qd,
        answer_count=an,
        authority_count=ns,
        additional_count=ar,
        wire_size=size,
        truncated=size > len(buf),
    )


def plausible(buf: bytes, wire_size: int | None = None) -> bool:
    """Does ``buf`` start like a DNS message: opcode QUERY/NOTIFY/UPDATE/STATUS, at most one...
    a few questions and a sane number of records, and — for a query — a readable question."""
    if len(buf) < HEADER:
        return False
    _, flags, qd, an, ns, ar = _HEADER.unpack_from(buf, 0)
    opcode = (flags >> 11) & 0xF
    if opcode not in (0, 2, 4, 5) or qd > 4 or an + ns + ar > 4096:
        return False
    is_response = bool(flags & 0x8000)
    if not is_response and (qd == 0 and opcode == 0 or an > 16 or flags & 0x000F):
        return False
    if qd:
        found = read_name(buf, HEADER)
        if found is None:
            return len(buf) < (wire_size or len(buf))  # cut inside the name: cannot tell
        if found[1] + 4 > len(buf) and found[1] + 4 <= (wire_size or len(buf)):
            return True
        if found[1] + 4 > len(buf):
            return False
    # Records the header announces must have room: at least 11 bytes each (root name, fixed part).
    size = wire_size or len(buf)
    return HEADER + 5 * qd + 11 * (an + ns + ar) <= size
