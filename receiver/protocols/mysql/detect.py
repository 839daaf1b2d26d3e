"""Protocol inference: do the first bytes of a direction look like MySQL/MariaDB?"""

from __future__ import annotations

from .parse import looks_like_command, looks_like_greeting, looks_like_greeting_payload


def detect(data: bytes) -> bool:
    """True if ``data`` starts with a server greeting or a client command packet.

    A greeting: sequence id 0, protocol version 10, a NUL-terminated version string starting
    ``digits.digits``.  A command (attaching to a connection already in its command phase):
    sequence id 0, a known command byte and a payload that fits it — printable SQL starting
    like a statement for ``COM_QUERY``/``COM_STMT_PREPARE``, a schema name for
    ``COM_INIT_DB``, exact sizes for fixed-size commands.  A greeting's payload alone (its
    header read by a separate read, as mysql-connector-python does) is accepted when whole.
    HTTP, PostgreSQL, Redis, TLS and HTTP/2 first bytes all fail the sequence-id / length /
    command checks.
    """
    try:
        if data[:1] == b"\n":  # a greeting's payload read apart from its header
            return looks_like_greeting_payload(data, 0, len(data))
        if len(data) < 5 or data[3] != 0:
            return False
        if data[4] == 10:
            return looks_like_greeting(data, 0, len(data))
        return looks_like_command(data, 0, len(data))
    except Exception:  # detection must never fail the caller
        return False
