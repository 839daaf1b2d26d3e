"""SQL text made safe to export, and the facts semantic conventions want from it.

:func:`obfuscate` replaces every literal (strings, dollar-quoted strings, numbers, hex/bit
strings, booleans are kept) with ``?`` and drops comments, using a small tokenizer.  If the
text cannot be tokenized (an unterminated quote, say — often a truncated capture) it returns
``None``: callers then export the operation only, never the raw text (fail closed).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<line_comment>--[^\n]*|\#[^\n]*)
  | (?P<block_comment>/\*.*?\*/)
  | (?P<dollar>\$(?P<tag>[A-Za-z_][A-Za-z_0-9]*)?\$.*?\$(?P=tag)?\$)
  | (?P<estring>[EeBbXxNn]'(?:[^'\\]|\\.|'')*')
  | (?P<string>'(?:[^'\\]|\\.|'')*')
  | (?P<dqident>"(?:[^"]|"")*")
  | (?P<btident>`(?:[^`]|``)*`)
  | (?P<hex>0[xX][0-9A-Fa-f]+)
  | (?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<param>\$\d+|\?|:[A-Za-z_]\w*|%s|@[A-Za-z_]\w*)
  | (?P<word>[A-Za-z_][A-Za-z_0-9$]*)
  | (?P<op><>|!=|<=|>=|::|\|\||[-+*/%=<>(),.;\[\]{}!~^&|:])
    """,
    re.X | re.S,
)
_LITERALS = {"dollar", "estring", "string", "hex", "number"}
_OPERATIONS = {
    "SELECT", "INSERT", "UPDATE", "DELETE", "MERGE", "UPSERT", "REPLACE", "CREATE", "DROP", "ALTER", "TRUNCATE",
    "BEGIN", "START", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE", "SET", "SHOW", "USE", "EXPLAIN", "ANALYZE",
    "GRANT", "REVOKE", "CALL", "EXECUTE", "PREPARE", "DEALLOCATE", "COPY", "VACUUM", "LOCK", "LISTEN", "NOTIFY",
    "DESCRIBE", "DESC", "WITH", "VALUES", "DECLARE", "FETCH", "CLOSE", "DISCARD", "RESET", "DO", "LOAD",
}
_COLLECTION_AFTER = {"FROM", "INTO", "UPDATE", "TABLE", "JOIN"}
_SKIP_AFTER_TABLE = {"IF", "NOT", "EXISTS", "ONLY", "LOW_PRIORITY", "IGNORE", "DELAYED", "HIGH_PRIORITY", "TEMPORARY",
                     "TEMP", "UNLOGGED"}


@dataclass(frozen=True, slots=True)
class SqlFacts:
    operation: str | None  # "SELECT", ...
    collection: str | None  # first table named, unquoted (schema kept: "public.users")
    obfuscated: str | None  # literals replaced with "?", or None when not tokenizable


def _tokenize(text: str) -> tuple[list[tuple[str, str]], bool]:
    """(tokens, complete): complete is False when some text could not be tokenized."""
    toks: list[tuple[str, str]] = []
    pos, n = 0, len(text)
    while pos < n:
        m = _TOKEN.match(text, pos)
        if m is None:
            return toks, False  # unterminated quote or stray byte: not safe to export
        kind = m.lastgroup if m.lastgroup != "tag" else "dollar"
        toks.append((kind, m.group()))
        pos = m.end()
    return toks, True


def _unquote(ident: str) -> str:
    if len(ident) >= 2 and ident[0] in "\"`" and ident[-1] == ident[0]:
        return ident[1:-1]
    return ident


def _collection(sig: list[tuple[str, str]]) -> str | None:
    """The first table named after FROM/INTO/UPDATE/TABLE/JOIN, with its schema if given."""
    for i, (kind, tok) in enumerate(sig):
        if kind != "word" or tok.upper() not in _COLLECTION_AFTER:
            continue
        if tok.upper() == "UPDATE" and i > 0 and sig[i - 1][1].upper() == "FOR":
            continue
        j = i + 1
        while j < len(sig) and sig[j][0] == "word" and sig[j][1].upper() in _SKIP_AFTER_TABLE:
            j += 1
        if j >= len(sig) or sig[j][0] not in ("word", "dqident", "btident") or sig[j][1].upper() == "SELECT":
            continue
        name = _unquote(sig[j][1])
        while j + 2 < len(sig) and sig[j + 1][1] == "." and sig[j + 2][0] in ("word", "dqident", "btident"):
            name += "." + _unquote(sig[j + 2][1])
            j += 2
        return name
    return None


def analyze(text: str, max_len: int = 4096, dialect: str = "postgresql") -> SqlFacts:
    """Operation, first collection and obfuscated text of a statement (or the first of several).
    In the ``mysql`` dialect double-quoted text is a string literal (unless ANSI_QUOTES), so it
    is obfuscated too."""
    toks, complete = _tokenize(text)
    literals = _LITERALS | {"dqident"} if dialect == "mysql" else _LITERALS
    out: list[str] = []
    sig: list[tuple[str, str]] = []
    for kind, tok in toks:
        if kind in ("ws", "line_comment", "block_comment"):
            if out and out[-1] != " ":
                out.append(" ")
            continue
        sig.append((kind, tok))
        out.append("?" if kind in literals else tok)
    operation = next((t.upper() for k, t in sig if k == "word" and t.upper() in _OPERATIONS and t.upper() != "WITH"), None)
    obfuscated = "".join(out).strip()[:max_len] if complete else None
    return SqlFacts(operation, _collection(sig), obfuscated)


def obfuscate(text: str, dialect: str = "postgresql") -> str | None:
    return analyze(text, dialect=dialect).obfuscated


# A MySQL/MariaDB syntax error quotes the statement from the error on: "... near '<text>' at line N".
_NEAR = re.compile(r"near '(.*)' at line (\d+)", re.S)
_QUOTED = re.compile(r"'(?:[^'\\]|\\.|'')*'|\"(?:[^\"]|\"\")*\"|`(?:[^`]|``)*`")
_NAME = re.compile(r"[A-Za-z_][A-Za-z_0-9$]*")


def redact_error_message(
    message: str, known: str | None, dialect: str = "postgresql", extra: tuple[str, ...] = ()
) -> str:
    """A server's error message made as safe to export as the obfuscated query.

    Servers quote the values they refuse (``invalid input syntax for type integer: "..."``,
    ``Duplicate entry '...' for key``, Redis ``unknown command '...', with args beginning with``):
    every quoted text becomes ``?`` unless it names something already exported — a name in
    ``known`` (the obfuscated query, or the command) or in ``extra`` (the database, say), each
    dotted part of it.  A MySQL syntax error's quoted statement fragment is obfuscated like a query.
    """
    names = set(_NAME.findall(known or "")) | {e for e in extra if e}

    def fragment(m: re.Match) -> str:
        return f"near '{obfuscate(m.group(1), dialect) or '?'}' at line {m.group(2)}"

    def quoted(m: re.Match) -> str:
        text = m.group()
        parts = text[1:-1].split(".")
        if all(part in names for part in parts):
            return text
        return f"{text[0]}?{text[0]}"

    pieces = []
    at = 0
    for near in _NEAR.finditer(message):
        pieces.append(_QUOTED.sub(quoted, message[at : near.start()]))
        pieces.append(fragment(near))
        at = near.end()
    pieces.append(_QUOTED.sub(quoted, message[at:]))
    return "".join(pieces)
