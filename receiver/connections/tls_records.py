"""Recognising TLS ciphertext from its record header (RFC 8446 §5.1, RFC 5246 §6.2).

Socket bytes of a TLS connection reach user space only when no TLS library of the process is
attached (a library we could not attach, Go's crypto/tls, a connection older than the
attachment).  Such a connection is not an unknown protocol: it is counted as TLS without
plaintext and switched off in the kernel.
"""

from __future__ import annotations

# ContentType: change_cipher_spec(20), alert(21), handshake(22), application_data(23).
TLS_CONTENT_TYPES = frozenset({20, 21, 22, 23})
# ProtocolVersion of the record layer: TLS 1.0 (0x0301) .. TLS 1.3 (0x0304).
TLS_MINOR_VERSIONS = frozenset({1, 2, 3, 4})
TLS_RECORD_HEADER_LEN = 5
# TLSCiphertext.length is at most 2^14 + 2048 (TLS 1.2; 1.3 allows 2^14 + 256).
TLS_MAX_RECORD_LEN = (1 << 14) + 2048


def is_tls_record(data: bytes) -> bool:
    """Do these bytes start with a TLS record header?"""
    if len(data) < TLS_RECORD_HEADER_LEN:
        return False
    if data[0] not in TLS_CONTENT_TYPES or data[1] != 3 or data[2] not in TLS_MINOR_VERSIONS:
        return False
    length = (data[3] << 8) | data[4]
    return 0 < length <= TLS_MAX_RECORD_LEN
