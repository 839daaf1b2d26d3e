"""MySQL/MariaDB client/server protocol messages as the parser hands them out: frozen, slotted.

Sizes are *wire* sizes: every packet header and payload byte the message occupied, worked out
from the lengths on the wire (a capture cut short still reports the real size).

Auth plugin data — scrambles, password hashes, public keys, anything an auth plugin exchanges —
is never kept in any message (or anywhere else once the packet carrying it is parsed).

Constants follow the protocol documentation (MySQL ``include/mysql_com.h``, MariaDB
``include/mysql_com.h``); MariaDB's extended capabilities are folded into bits 32..63 of a
capability set, where MariaDB's own code keeps them.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass


class Command(enum.IntEnum):
    """The first byte of a command-phase packet from the client."""

    COM_SLEEP = 0x00
    COM_QUIT = 0x01
    COM_INIT_DB = 0x02
    COM_QUERY = 0x03
    COM_FIELD_LIST = 0x04
    COM_CREATE_DB = 0x05
    COM_DROP_DB = 0x06
    COM_REFRESH = 0x07
    COM_SHUTDOWN = 0x08
    COM_STATISTICS = 0x09
    COM_PROCESS_INFO = 0x0A
    COM_CONNECT = 0x0B
    COM_PROCESS_KILL = 0x0C
    COM_DEBUG = 0x0D
    COM_PING = 0x0E
    COM_TIME = 0x0F
    COM_DELAYED_INSERT = 0x10
    COM_CHANGE_USER = 0x11
    COM_BINLOG_DUMP = 0x12
    COM_TABLE_DUMP = 0x13
    COM_CONNECT_OUT = 0x14
    COM_REGISTER_SLAVE = 0x15
    COM_STMT_PREPARE = 0x16
    COM_STMT_EXECUTE = 0x17
    COM_STMT_SEND_LONG_DATA = 0x18
    COM_STMT_CLOSE = 0x19
    COM_STMT_RESET = 0x1A
    COM_SET_OPTION = 0x1B
    COM_STMT_FETCH = 0x1C
    COM_DAEMON = 0x1D
    COM_BINLOG_DUMP_GTID = 0x1E
    COM_RESET_CONNECTION = 0x1F
    COM_STMT_BULK_EXECUTE = 0xFA  # MariaDB


class ResponseKind(enum.Enum):
    """How a response ended."""

    OK = "ok"  # an OK packet (possibly after earlier results of a multi-result response)
    ERROR = "error"  # an ERR packet (possibly after earlier results)
    RESULT_SET = "result_set"  # the last result was a result set (rows + terminator)
    STATEMENT_PREPARED = "statement_prepared"  # COM_STMT_PREPARE_OK (+ parameter/column definitions)
    EOF = "eof"  # an EOF packet alone (COM_SET_OPTION, COM_DEBUG, COM_FIELD_LIST)
    TEXT = "text"  # a human-readable string packet (COM_STATISTICS)


# -- capability flags (client and server) ------------------------------------------------------
CLIENT_LONG_PASSWORD = 1 << 0  # MariaDB reads a *cleared* bit 0 as "MariaDB extended caps in the filler"
CLIENT_MYSQL = CLIENT_LONG_PASSWORD
CLIENT_FOUND_ROWS = 1 << 1
CLIENT_LONG_FLAG = 1 << 2
CLIENT_CONNECT_WITH_DB = 1 << 3
CLIENT_NO_SCHEMA = 1 << 4
CLIENT_COMPRESS = 1 << 5
CLIENT_ODBC = 1 << 6
CLIENT_LOCAL_FILES = 1 << 7
CLIENT_IGNORE_SPACE = 1 << 8
CLIENT_PROTOCOL_41 = 1 << 9
CLIENT_INTERACTIVE = 1 << 10
CLIENT_SSL = 1 << 11
CLIENT_IGNORE_SIGPIPE = 1 << 12
CLIENT_TRANSACTIONS = 1 << 13
CLIENT_RESERVED = 1 << 14
CLIENT_SECURE_CONNECTION = 1 << 15
CLIENT_MULTI_STATEMENTS = 1 << 16
CLIENT_MULTI_RESULTS = 1 << 17
CLIENT_PS_MULTI_RESULTS = 1 << 18
CLIENT_PLUGIN_AUTH = 1 << 19
CLIENT_CONNECT_ATTRS = 1 << 20
CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA = 1 << 21
CLIENT_CAN_HANDLE_EXPIRED_PASSWORDS = 1 << 22
CLIENT_SESSION_TRACK = 1 << 23
CLIENT_DEPRECATE_EOF = 1 << 24
CLIENT_OPTIONAL_RESULTSET_METADATA = 1 << 25
CLIENT_ZSTD_COMPRESSION_ALGORITHM = 1 << 26
CLIENT_QUERY_ATTRIBUTES = 1 << 27  # MySQL 8.0.23+
MARIADB_CLIENT_PROGRESS = 1 << 32
MARIADB_CLIENT_COM_MULTI = 1 << 33
MARIADB_CLIENT_STMT_BULK_OPERATIONS = 1 << 34
MARIADB_CLIENT_EXTENDED_METADATA = 1 << 35
MARIADB_CLIENT_CACHE_METADATA = 1 << 36

# -- server status flags (OK/EOF packets) -------------------------------------------------------
SERVER_STATUS_IN_TRANS = 0x0001
SERVER_STATUS_AUTOCOMMIT = 0x0002
SERVER_MORE_RESULTS_EXISTS = 0x0008
SERVER_STATUS_NO_GOOD_INDEX_USED = 0x0010
SERVER_STATUS_NO_INDEX_USED = 0x0020
SERVER_STATUS_CURSOR_EXISTS = 0x0040
SERVER_STATUS_LAST_ROW_SENT = 0x0080
SERVER_STATUS_DB_DROPPED = 0x0100
SERVER_STATUS_NO_BACKSLASH_ESCAPES = 0x0200
SERVER_STATUS_METADATA_CHANGED = 0x0400
SERVER_QUERY_WAS_SLOW = 0x0800
SERVER_PS_OUT_PARAMS = 0x1000
SERVER_STATUS_IN_TRANS_READONLY = 0x2000
SERVER_SESSION_STATE_CHANGED = 0x4000

NO_STATEMENT = -1  # MysqlCommand.statement_id of commands that name no prepared statement

_SQL_KEYWORD = re.compile(r"(?:\s|/\*.*?\*/|--[^\n]*(?:\n|$)|#[^\n]*(?:\n|$))*\(*\s*([A-Za-z]+)", re.DOTALL)


@dataclass(frozen=True, slots=True)
class MysqlServerGreeting:
    """The server's initial handshake packet (protocol version 10).

    ``server_version`` drops the ``5.5.5-`` prefix MariaDB puts in front of its real version
    for old replication clients.  ``capabilities`` holds MariaDB's extended capabilities in
    bits 32..63.  The scramble (auth plugin data) is not kept.
    """

    protocol_version: int
    server_version: str
    connection_id: int
    capabilities: int
    character_set: int
    status_flags: int
    auth_plugin: str
    wire_size: int

    @property
    def is_mariadb(self) -> bool:
        return "mariadb" in self.server_version.lower()


@dataclass(frozen=True, slots=True)
class MysqlHandshake:
    """The request of the connection-phase transaction: the client's HandshakeResponse41.

    Its response is the OK or ERR that ended authentication.  ``user`` and ``schema`` (the
    database asked for with ``CLIENT_CONNECT_WITH_DB``, ``""`` if none) become the session's.
    ``auth_plugin`` is the plugin the client answered with; ``auth_switched_to`` the plugin an
    AuthSwitchRequest asked for (``""`` if none).  ``connect_attributes`` are the client's
    ``CLIENT_CONNECT_ATTRS`` key/value pairs (``_client_name``, ``program_name``...), bounded.
    ``wire_size`` counts the HandshakeResponse and every auth packet the client sent after it.
    Passwords, scrambles and other auth data are never kept.
    """

    user: str
    schema: str
    capabilities: int
    max_packet_size: int
    character_set: int
    auth_plugin: str
    auth_switched_to: str
    connect_attributes: tuple[tuple[str, str], ...]
    server: MysqlServerGreeting | None
    wire_size: int

    # Read like a MysqlCommand, so consumers can treat every request alike: the connection
    # phase is MySQL's COM_CONNECT, with no SQL and no statement.
    @property
    def command(self) -> Command:
        return Command.COM_CONNECT

    @property
    def name(self) -> str:
        return "COM_CONNECT"

    @property
    def operation(self) -> str:
        return "CONNECT"

    @property
    def query(self) -> str:
        return ""

    @property
    def statement_id(self) -> int:
        return NO_STATEMENT

    @property
    def new_schema(self) -> str:
        return ""

    @property
    def new_user(self) -> str:
        return ""

    @property
    def query_truncated(self) -> bool:
        return False

    @property
    def server_version(self) -> str:
        return self.server.server_version if self.server is not None else ""

    @property
    def connection_id(self) -> int:
        return self.server.connection_id if self.server is not None else 0


@dataclass(frozen=True, slots=True)
class MysqlCommand:
    """One command-phase request.

    ``query`` is the SQL text of ``COM_QUERY`` and ``COM_STMT_PREPARE``, and for the commands
    that name a prepared statement (``COM_STMT_EXECUTE``, ``COM_STMT_RESET``, ``COM_STMT_FETCH``,
    ``COM_STMT_BULK_EXECUTE``, ``COM_STMT_SEND_LONG_DATA``) the text it was prepared from,
    resolved through ``statement_id`` (``""`` when the PREPARE was not seen).  At most
    ``max_query`` bytes of text are kept (``query_truncated`` then says so).

    ``user`` and ``schema`` are the session's at the time the command was sent (``""`` when
    unknown, e.g. attached mid-connection); ``schema`` maps to ``db.namespace``.
    ``new_schema`` is the schema a ``COM_INIT_DB`` or ``COM_CHANGE_USER`` asks for (and a
    ``USE`` statement names); ``new_user`` the user of a ``COM_CHANGE_USER``.
    ``server_version``/``connection_id`` come from the server greeting (``""``/0 if unseen).
    ``wire_size`` counts the command packet(s) and any data the client sent within the same
    exchange (``LOAD DATA LOCAL INFILE`` contents, ``COM_CHANGE_USER`` auth packets).
    """

    command: Command
    query: str = ""
    statement_id: int = NO_STATEMENT
    user: str = ""
    schema: str = ""
    new_schema: str = ""
    new_user: str = ""
    server_version: str = ""
    connection_id: int = 0
    wire_size: int = 0
    query_truncated: bool = False

    @property
    def name(self) -> str:
        """``"COM_QUERY"``, ``"COM_STMT_EXECUTE"``..."""
        return self.command.name

    @property
    def operation(self) -> str:
        """The SQL statement's first keyword, upper-cased (``"SELECT"``), when there is SQL;
        otherwise the command name without ``COM_`` (``"PING"``, ``"INIT_DB"``)."""
        if self.query:
            m = _SQL_KEYWORD.match(self.query)
            if m is not None:
                return m.group(1).upper()
        return self.command.name[4:]


@dataclass(frozen=True, slots=True)
class MysqlResponse:
    """Everything the server sent back for one request, summarised.

    A response may hold several results (``SERVER_MORE_RESULTS_EXISTS``: multi-statement
    queries, stored procedures): ``results`` counts them, ``result_sets`` those that were result
    sets; ``row_count`` adds up the rows of every result set (text and binary rows alike),
    ``affected_rows`` and ``warnings`` add up over the results; ``last_insert_id``, ``info``
    and ``status_flags`` are the last ones seen.  ``column_count`` is the last result set's.

    ``error_code``/``sql_state``/``error_message`` come from the ERR packet that ended the
    response (0/""/"" otherwise).  ``statement_id``/``param_count`` are set by a
    ``COM_STMT_PREPARE_OK`` (``column_count`` then is the statement's).  ``local_infile`` is the
    file name a ``LOAD DATA LOCAL INFILE`` request asked the client for (``""`` if none).
    ``truncated``: part of the response was never seen (capture gap, connection closed, parse
    error) — the counts are then lower bounds.
    """

    kind: ResponseKind
    results: int = 0
    result_sets: int = 0
    column_count: int = 0
    row_count: int = 0
    affected_rows: int = 0
    last_insert_id: int = 0
    warnings: int = 0
    status_flags: int = 0
    info: str = ""
    error_code: int = 0
    sql_state: str = ""
    error_message: str = ""
    statement_id: int = NO_STATEMENT
    param_count: int = 0
    local_infile: str = ""
    wire_size: int = 0
    truncated: bool = False

    @property
    def is_error(self) -> bool:
        return self.kind is ResponseKind.ERROR
