"""DNS messages as the parser hands them out: frozen, slotted, plain data (RFC 1035 §4.1).

Only the header and the first question are kept: the queried name (decompressed, bounded), its
type and class.  Answers are counted from the header, never decoded — their addresses are not
kept.  Sizes are wire sizes: for TCP without the 2-byte length prefix.
"""

from __future__ import annotations

from dataclasses import dataclass

PROTOCOL = "dns"

QTYPE_NAMES = {
    1: "A", 2: "NS", 5: "CNAME", 6: "SOA", 12: "PTR", 13: "HINFO", 15: "MX", 16: "TXT", 17: "RP", 18: "AFSDB",
    24: "SIG", 25: "KEY", 28: "AAAA", 29: "LOC", 33: "SRV", 35: "NAPTR", 36: "KX", 37: "CERT", 39: "DNAME",
    41: "OPT", 42: "APL", 43: "DS", 44: "SSHFP", 45: "IPSECKEY", 46: "RRSIG", 47: "NSEC", 48: "DNSKEY",
    49: "DHCID", 50: "NSEC3", 51: "NSEC3PARAM", 52: "TLSA", 53: "SMIMEA", 55: "HIP", 59: "CDS", 60: "CDNSKEY",
    61: "OPENPGPKEY", 62: "CSYNC", 63: "ZONEMD", 64: "SVCB", 65: "HTTPS", 99: "SPF", 108: "EUI48",
    109: "EUI64", 249: "TKEY", 250: "TSIG", 251: "IXFR", 252: "AXFR", 255: "ANY", 256: "URI", 257: "CAA",
}
RCODE_NAMES = {
    0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED", 6: "YXDOMAIN",
    7: "YXRRSET", 8: "NXRRSET", 9: "NOTAUTH", 10: "NOTZONE",
}
OPCODE_NAMES = {0: "QUERY", 1: "IQUERY", 2: "STATUS", 4: "NOTIFY", 5: "UPDATE"}


def qtype_name(qtype: int | None) -> str:
    if qtype is None:
        return "_OTHER"
    return QTYPE_NAMES.get(qtype, f"TYPE{qtype}")


def rcode_name(rcode: int) -> str:
    return RCODE_NAMES.get(rcode, f"RCODE{rcode}")


@dataclass(frozen=True, slots=True)
class DnsQuestion:
    """The first question of a message: ``name`` without the trailing dot, lower-case letters
    kept as sent; non-printable bytes escaped as ``\\DDD`` (semantic conventions)."""

    name: str
    qtype: int
    qclass: int

    @property
    def type_name(self) -> str:
        return qtype_name(self.qtype)


@dataclass(frozen=True, slots=True)
class DnsMessage:
    """One DNS message: a query (``is_response`` false) or a response.

    * ``id``, ``opcode``, ``rcode`` (the 4-bit header RCODE; an EDNS extended RCODE is not
      combined), ``authoritative``, ``truncated_flag`` (TC: the answer did not fit a UDP
      datagram), ``recursion_desired``;
    * ``question`` — the first question, or ``None`` (none, or it could not be read);
    * ``question_count``, ``answer_count``, ``authority_count``, ``additional_count`` — from the
      header;
    * ``wire_size`` — the message's size; ``truncated`` — the capture held only part of it.
    """

    id: int
    is_response: bool
    opcode: int
    rcode: int
    authoritative: bool
    truncated_flag: bool
    recursion_desired: bool
    question: DnsQuestion | None
    question_count: int
    answer_count: int
    authority_count: int
    additional_count: int
    wire_size: int
    truncated: bool = False

    @property
    def rcode_name(self) -> str:
        return rcode_name(self.rcode)
