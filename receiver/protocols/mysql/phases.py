"""The phases of a MySQL/MariaDB connection (:attr:`MysqlSession.phase`, connection-wide).

============ =====================================================================================
UNKNOWN      nothing parsed yet: a feed must start with a server greeting or a client command
GREETING     the server greeting is being read (the first packet after a greeting-first sync)
HANDSHAKE    greeting seen: the client answers with a HandshakeResponse41 or an SSLRequest
AUTH         auth exchange (AuthSwitchRequest, auth more data; client auth packets skipped)
             until the server's OK or ERR — which ends the *connection transaction*
COMMAND      commands and responses, paired in :mod:`.stitch`
OPAQUE       the bytes are no longer plain MySQL packets: TLS after an SSLRequest, the
             compressed protocol (CLIENT_COMPRESS), a replication stream, or closed
============ =====================================================================================

GREETING, HANDSHAKE and AUTH are handled in :mod:`.handshake`, COMMAND in :mod:`.command`;
:mod:`.framing` decides in every phase which packet may come next.
"""

UNKNOWN = "unknown"
GREETING = "greeting"
HANDSHAKE = "handshake"
AUTH = "auth"
COMMAND = "command"
OPAQUE = "opaque"
