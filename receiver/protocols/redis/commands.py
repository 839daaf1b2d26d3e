"""The Redis command table: names, container subcommands, and where each command's first key is.

Taken from ``COMMAND`` of Redis 7.0 (key positions from ``first-key`` and, for commands with
movable keys, from their key specs), plus commands added in later releases.  The table only
ever *points at* arguments; the parser copies nothing but the command word, the subcommand
word and the first key out of a request.

Key rules:

* ``KEY_AT[name] = i`` — the first key is argument ``i`` (the command name is argument 0);
* ``NUMKEYS_AT[name] = i`` — argument ``i`` is ``numkeys``; when it is positive the first key
  follows it (``EVAL script numkeys key ...``);
* ``STREAMS_KEY`` — the first key follows the ``STREAMS`` keyword (``XREAD``, ``XREADGROUP``);
* ``SUBCOMMAND_KEY_AT`` — for ``"OBJECT ENCODING"`` and friends the key is argument 2;
* anything else has no key (``PING``, ``AUTH``, ``PUBLISH``, ``KEYS``, ``SCAN``...).
"""

from __future__ import annotations

import re

_KEY_AT_1 = """
APPEND BITCOUNT BITFIELD BITFIELD_RO BITPOS BLMOVE BLPOP BRPOP BRPOPLPUSH BZPOPMAX BZPOPMIN COPY
DECR DECRBY DEL DUMP EXISTS EXPIRE EXPIREAT EXPIRETIME GEOADD GEODIST GEOHASH GEOPOS GEORADIUS
GEORADIUSBYMEMBER GEORADIUSBYMEMBER_RO GEORADIUS_RO GEOSEARCH GEOSEARCHSTORE GET GETBIT GETDEL
GETEX GETRANGE GETSET HDEL HEXISTS HGET HGETALL HINCRBY HINCRBYFLOAT HKEYS HLEN HMGET HMSET
HRANDFIELD HSCAN HSET HSETNX HSTRLEN HVALS INCR INCRBY INCRBYFLOAT LCS LINDEX LINSERT LLEN LMOVE
LPOP LPOS LPUSH LPUSHX LRANGE LREM LSET LTRIM MGET MOVE MSET MSETNX PERSIST PEXPIRE PEXPIREAT
PEXPIRETIME PFADD PFCOUNT PFMERGE PSETEX PTTL RENAME RENAMENX RESTORE RESTORE-ASKING RPOP
RPOPLPUSH RPUSH RPUSHX SADD SCARD SDIFF SDIFFSTORE SET SETBIT SETEX SETNX SETRANGE SINTER
SINTERSTORE SISMEMBER SMEMBERS SMISMEMBER SMOVE SORT SORT_RO SPOP SPUBLISH SRANDMEMBER SREM SSCAN
SSUBSCRIBE STRLEN SUBSTR SUNION SUNIONSTORE SUNSUBSCRIBE TOUCH TTL TYPE UNLINK WATCH XACK XADD
XAUTOCLAIM XCLAIM XDEL XLEN XPENDING XRANGE XREVRANGE XSETID XTRIM ZADD ZCARD ZCOUNT ZDIFFSTORE
ZINCRBY ZINTERSTORE ZLEXCOUNT ZMSCORE ZPOPMAX ZPOPMIN ZRANDMEMBER ZRANGE ZRANGEBYLEX
ZRANGEBYSCORE ZRANGESTORE ZRANK ZREM ZREMRANGEBYLEX ZREMRANGEBYRANK ZREMRANGEBYSCORE ZREVRANGE
ZREVRANGEBYLEX ZREVRANGEBYSCORE ZREVRANK ZSCAN ZSCORE ZUNIONSTORE
HEXPIRE HPEXPIRE HEXPIREAT HPEXPIREAT HTTL HPTTL HEXPIRETIME HPEXPIRETIME HPERSIST HGETDEL HGETEX
HSETEX VADD VCARD VDIM VEMB VGETATTR VINFO VLINKS VRANDMEMBER VREM VSETATTR VSIM
"""

_NO_KEY = """
ASKING AUTH BGREWRITEAOF BGSAVE DBSIZE DEBUG DISCARD ECHO EXEC FAILOVER FLUSHALL FLUSHDB HELLO
INFO KEYS LASTSAVE LOLWUT MONITOR MULTI PFSELFTEST PING PSUBSCRIBE PSYNC PUBLISH PUNSUBSCRIBE
QUIT RANDOMKEY READONLY READWRITE REPLCONF REPLICAOF RESET ROLE SAVE SCAN SELECT SHUTDOWN
SLAVEOF SUBSCRIBE SWAPDB SYNC TIME UNSUBSCRIBE UNWATCH WAIT WAITAOF
"""

# Container commands and their subcommands (unknown subcommands are not reported).
CONTAINERS: dict[str, frozenset[str]] = {
    name: frozenset(subs.split())
    for name, subs in {
        "ACL": "CAT DELUSER DRYRUN GENPASS GETUSER HELP LIST LOAD LOG SAVE SETUSER USERS WHOAMI",
        "CLIENT": "CACHING GETNAME GETREDIR HELP ID INFO KILL LIST MAINT_NOTIFICATIONS NO-EVICT NO-TOUCH PAUSE "
        "REPLY SETINFO SETNAME TRACKING TRACKINGINFO UNBLOCK UNPAUSE",
        "CLUSTER": "ADDSLOTS ADDSLOTSRANGE BUMPEPOCH COUNT-FAILURE-REPORTS COUNTKEYSINSLOT DELSLOTS "
        "DELSLOTSRANGE FAILOVER FLUSHSLOTS FORGET GETKEYSINSLOT HELP INFO KEYSLOT LINKS MEET MYID "
        "MYSHARDID NODES REPLICAS REPLICATE RESET SAVECONFIG SET-CONFIG-EPOCH SETSLOT SHARDS SLAVES SLOTS",
        "COMMAND": "COUNT DOCS GETKEYS GETKEYSANDFLAGS HELP INFO LIST",
        "CONFIG": "GET HELP RESETSTAT REWRITE SET",
        "FUNCTION": "DELETE DUMP FLUSH HELP KILL LIST LOAD RESTORE STATS",
        "LATENCY": "DOCTOR GRAPH HELP HISTOGRAM HISTORY LATEST RESET",
        "MEMORY": "DOCTOR HELP MALLOC-STATS PURGE STATS USAGE",
        "MODULE": "HELP LIST LOAD LOADEX UNLOAD",
        "OBJECT": "ENCODING FREQ HELP IDLETIME REFCOUNT",
        "PUBSUB": "CHANNELS HELP NUMPAT NUMSUB SHARDCHANNELS SHARDNUMSUB",
        "SCRIPT": "DEBUG EXISTS FLUSH HELP KILL LOAD",
        "SLOWLOG": "GET HELP LEN RESET",
        "XGROUP": "CREATE CREATECONSUMER DELCONSUMER DESTROY HELP SETID",
        "XINFO": "CONSUMERS GROUPS HELP STREAM",
    }.items()
}

SUBCOMMAND_KEY_AT: dict[str, int] = {
    pair: 2
    for pair in (
        "MEMORY USAGE", "OBJECT ENCODING", "OBJECT FREQ", "OBJECT IDLETIME", "OBJECT REFCOUNT",
        "XINFO CONSUMERS", "XINFO GROUPS", "XINFO STREAM", "XGROUP CREATE", "XGROUP CREATECONSUMER",
        "XGROUP DELCONSUMER", "XGROUP DESTROY", "XGROUP SETID",
    )
}

KEY_AT: dict[str, int] = {name: 1 for name in _KEY_AT_1.split()}
KEY_AT.update({"BITOP": 2, "PFDEBUG": 2, "MIGRATE": 3})

NUMKEYS_AT: dict[str, int] = {
    "EVAL": 2, "EVALSHA": 2, "EVAL_RO": 2, "EVALSHA_RO": 2, "FCALL": 2, "FCALL_RO": 2,
    "ZUNION": 1, "ZINTER": 1, "ZDIFF": 1, "SINTERCARD": 1, "ZINTERCARD": 1, "LMPOP": 1, "ZMPOP": 1,
    "BLMPOP": 2, "BZMPOP": 2,
}

STREAMS_KEY = frozenset({"XREAD", "XREADGROUP"})

KNOWN_COMMANDS: frozenset[str] = frozenset(
    set(KEY_AT) | set(_NO_KEY.split()) | set(CONTAINERS) | set(NUMKEYS_AT) | STREAMS_KEY
)

# The subscribe family: requests answered by one confirmation per channel/pattern.
SUBSCRIBE_FAMILY = frozenset(
    {"SUBSCRIBE", "UNSUBSCRIBE", "PSUBSCRIBE", "PUNSUBSCRIBE", "SSUBSCRIBE", "SUNSUBSCRIBE"}
)

MAX_KEY_BYTES = 256  # longest key kept in a request (longer ones are cut)
MAX_COMMAND_BYTES = 64  # longest command word considered
_SUBCOMMAND_CAP = 40
_NUMBER_CAP = 20
_STREAMS_WORD_CAP = 8

COMMAND_WORD = re.compile(rb"[A-Za-z][A-Za-z0-9_.:|-]{0,63}")
_DIGITS = re.compile(rb"[0-9]{1,18}")


def command_name(word: bytes | bytearray) -> str | None:
    """The upper-cased command name for a command word, or ``None`` if it is not a word."""
    known = _KNOWN_WORDS.get(word if type(word) is bytes else bytes(word))
    if known is not None:
        return known
    if len(word) > MAX_COMMAND_BYTES or COMMAND_WORD.fullmatch(word) is None:
        return None
    return bytes(word).upper().decode("ascii")


def small_int(arg: object) -> int | None:
    """A non-negative decimal argument (``numkeys``, ``SELECT`` index, ``HELLO`` version)."""
    if isinstance(arg, bytes | bytearray) and _DIGITS.fullmatch(arg):
        return int(arg)
    return None


def capture_cap(items: list, index: int) -> int:
    """How many bytes of request argument ``index`` to copy, given arguments ``items[:index]``.

    Argument 0 is the command word.  Beyond it only what names the command (a subcommand word),
    what locates the key (``numkeys``, the ``STREAMS`` keyword), the key itself, and the few
    arguments the session tracks (``SELECT`` index, ``HELLO`` version, ``CLIENT REPLY`` mode) are
    copied; argument values never are.
    """
    if index == 0:
        return MAX_COMMAND_BYTES
    first = items[0]
    if not isinstance(first, bytes | bytearray) or len(first) > 16:
        return 0
    name = bytes(first).upper()
    if index == 1:
        if name in _CONTAINERS_B:
            return _SUBCOMMAND_CAP
        if name in _NUMBER_AT_1:
            return _NUMBER_CAP
        if name in _STREAMS_B:
            return _STREAMS_WORD_CAP
        return MAX_KEY_BYTES if _KEY_AT_B.get(name) == 1 else 0
    cmd = name.decode("ascii", "replace")
    if cmd in STREAMS_KEY:
        prev = items[index - 1]
        if isinstance(prev, bytes | bytearray) and bytes(prev).upper() == b"STREAMS":
            return MAX_KEY_BYTES
        return _STREAMS_WORD_CAP
    if cmd in CONTAINERS:
        sub = items[1]
        if not isinstance(sub, bytes | bytearray):
            return 0
        pair = cmd + " " + bytes(sub).upper().decode("ascii", "replace")
        if index == 2:
            if SUBCOMMAND_KEY_AT.get(pair) == 2:
                return MAX_KEY_BYTES
            if pair == "CLIENT REPLY":
                return _STREAMS_WORD_CAP
        return 0
    at = KEY_AT.get(cmd)
    if at is not None:
        return MAX_KEY_BYTES if at == index else 0
    numkeys_at = NUMKEYS_AT.get(cmd)
    if numkeys_at is not None:
        if index == numkeys_at:
            return _NUMBER_CAP
        if index == numkeys_at + 1:
            n = small_int(items[numkeys_at])
            return MAX_KEY_BYTES if n else 0
    return 0


def static_plan(word: bytes | bytearray) -> tuple[int, ...] | None:
    """What :func:`capture_cap` answers for arguments 1, 2, ... of a command that names its key
    by position alone (most commands): ``()`` copies nothing, ``(256,)`` copies argument 1.
    ``None`` when the answer depends on other arguments (containers, ``numkeys``, ``STREAMS``,
    ``SELECT``/``HELLO``): then ask :func:`capture_cap` argument by argument."""
    if len(word) > 16:
        return ()
    return _STATIC_PLANS.get(bytes(word).upper(), ())


def first_key_index(command: str, items: list, count: int) -> int | None:
    """Index of the first key among ``count`` arguments whose first ones are ``items``."""
    at = KEY_AT.get(command)
    if at is None:
        at = SUBCOMMAND_KEY_AT.get(command)
    if at is not None:
        return at if at < count else None
    numkeys_at = NUMKEYS_AT.get(command)
    if numkeys_at is not None:
        if numkeys_at < len(items) and small_int(items[numkeys_at]):
            return numkeys_at + 1 if numkeys_at + 1 < count else None
        return None
    if command in STREAMS_KEY:
        for i in range(2, min(len(items), count)):
            prev = items[i - 1]
            if isinstance(prev, bytes | bytearray) and bytes(prev).upper() == b"STREAMS":
                return i
    return None


def decode_key(raw: bytes | bytearray) -> str:
    """A key as text: UTF-8, undecodable bytes as backslash escapes, cut to ``MAX_KEY_BYTES``."""
    return bytes(raw[:MAX_KEY_BYTES]).decode("utf-8", "backslashreplace")


_CONTAINERS_B = frozenset(name.encode() for name in CONTAINERS)
_STREAMS_B = frozenset(name.encode() for name in STREAMS_KEY)
_NUMBER_AT_1 = frozenset({b"SELECT", b"HELLO"} | {n.encode() for n, i in NUMKEYS_AT.items() if i == 1})
_KEY_AT_B = {name.encode(): i for name, i in KEY_AT.items()}

_DYNAMIC = _CONTAINERS_B | _STREAMS_B | _NUMBER_AT_1 | {name.encode() for name in NUMKEYS_AT}
_STATIC_PLANS: dict[bytes, tuple[int, ...] | None] = {
    name.encode(): (
        None
        if name.encode() in _DYNAMIC
        else tuple(MAX_KEY_BYTES if KEY_AT.get(name) == i else 0 for i in range(1, KEY_AT.get(name, 0) + 1))
    )
    for name in KNOWN_COMMANDS
}
_KNOWN_WORDS: dict[bytes, str] = {
    spelling: name
    for name in KNOWN_COMMANDS | {sub for subs in CONTAINERS.values() for sub in subs}
    for spelling in (name.encode(), name.lower().encode())
}
