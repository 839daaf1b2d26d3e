"""A readable ``service.name`` from a command line, for processes that do not name themselves.

* An ordinary program is its own name: ``argv[0]``'s base name, or the executable's when
  ``argv[0]`` was rewritten into a title (``nginx: worker process``).
* Java: the jar of ``-jar`` (``java -jar shop.jar`` → ``shop``), else the main class's simple name.
* Interpreters and shells run a script: its name without the extension (``python3 app.py`` →
  ``app``, ``python -m mod`` → ``mod``, ``node server.js`` → ``server``, ``bash script.sh`` →
  ``script``). Options are skipped with the values they take (``python3 -X dev app.py``).
* Code given on the command line (``-c``, ``-e``...), a script read from a descriptor or standard
  input (``bash /dev/fd/3``, ``bash <(...)``, ``python3 -``) and a bare interpreter name no
  script: the interpreter's own name (``bash``, ``python3``) — never a descriptor number.

Pure functions of ``(exe, argv)``: no /proc, no I/O.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

UNKNOWN_SERVICE = "unknown_service"


@dataclass(frozen=True, slots=True)
class InterpreterOptions:
    """How one interpreter family's command line names its script."""

    code: frozenset[str]  # the program is the option's value, not a file: no script name
    takes_value: frozenset[str]  # options followed by a value that is not the script
    module: frozenset[str] = frozenset()  # the value names a module: its name is the service's
    script: frozenset[str] = frozenset()  # the value is the script file (php -f)


_PYTHON = InterpreterOptions(
    code=frozenset({"-c"}), takes_value=frozenset({"-W", "-X", "-Q", "--check-hash-based-pycs"}),
    module=frozenset({"-m"}),
)
_NODE = InterpreterOptions(
    code=frozenset({"-e", "--eval", "-p", "--print"}),
    takes_value=frozenset({"-r", "--require", "--import", "--loader", "--experimental-loader", "-C", "--conditions",
                           "--inspect-port", "--title", "--env-file", "--input-type"}),
)
_RUBY = InterpreterOptions(code=frozenset({"-e"}), takes_value=frozenset({"-I", "-r", "-C", "-E", "-F"}))
_PERL = InterpreterOptions(code=frozenset({"-e", "-E"}), takes_value=frozenset({"-I", "-M", "-m", "-x"}))
_PHP = InterpreterOptions(
    code=frozenset({"-r", "-S"}), takes_value=frozenset({"-c", "-d", "-t", "-z"}), script=frozenset({"-f"}),
)
_SHELL = InterpreterOptions(
    code=frozenset({"-c"}), takes_value=frozenset({"-o", "+o", "-O", "+O", "--rcfile", "--init-file"}),
)
_DOTNET = InterpreterOptions(code=frozenset(), takes_value=frozenset({"--additionalprobingpath", "--depsfile",
                                                                    "--runtimeconfig", "--fx-version"}))

_FAMILIES: tuple[tuple[re.Pattern[str], InterpreterOptions], ...] = (
    (re.compile(r"^(python|pypy)[0-9.]*$"), _PYTHON),
    (re.compile(r"^(node|nodejs)$"), _NODE),
    (re.compile(r"^ruby[0-9.]*$"), _RUBY),
    (re.compile(r"^perl[0-9.]*$"), _PERL),
    (re.compile(r"^php[0-9.]*(-cli)?$"), _PHP),
    (re.compile(r"^(bash|sh|dash|zsh|ksh|mksh|ash)$"), _SHELL),
    (re.compile(r"^dotnet$"), _DOTNET),
)
_EXTENSIONS = (".py", ".pyz", ".jar", ".js", ".mjs", ".cjs", ".ts", ".rb", ".pl", ".php", ".sh", ".bash", ".dll")
# Paths that name an open descriptor or a stream rather than a script file.
_NOT_A_SCRIPT = re.compile(r"^(/dev/(fd/\d+|stdin)|/proc/(self|\d+)/fd/\d+)$")


def derive_service_name(exe: str, argv: tuple[str, ...]) -> str:
    """A readable service name from the command line (see the module's docstring)."""
    exe_name = os.path.basename(exe)
    first = argv[0] if argv else ""
    prog = os.path.basename(first) or exe_name
    if exe_name and (" " in first or ":" in first):
        # argv[0] rewritten into a title ("nginx: worker process", "nginx: master process
        # /usr/sbin/nginx -e /var/log/error.log"): the executable is truer.
        prog = exe_name
    args = argv[1:]
    if prog == "java" or exe_name == "java":
        return _java_name(args)
    login_shell = prog.lstrip("-")
    for names in (login_shell, exe_name):
        for pattern, options in _FAMILIES:
            if names and pattern.match(names):
                return _script_name(args, options) or login_shell or exe_name
    return prog or exe_name or UNKNOWN_SERVICE


def _java_name(args: tuple[str, ...]) -> str:
    for i, a in enumerate(args):
        if a == "-jar" and i + 1 < len(args):
            return _stem(args[i + 1]) or "java"
    skip = False
    for a in args:  # main class: the first argument that is not an option (nor an option's value)
        if skip:
            skip = False
            continue
        if a in ("-cp", "-classpath", "--class-path", "-p", "--module-path"):
            skip = True
            continue
        if not a.startswith("-") and "." in a:
            return a.rsplit(".", 1)[-1]
    return "java"


def _script_name(args: tuple[str, ...], options: InterpreterOptions) -> str | None:
    """The script's (or module's) name, or None when the command line names none."""
    i = 0
    while i < len(args):
        a = args[i]
        nxt = args[i + 1] if i + 1 < len(args) else None
        if a == "--":
            return _script_stem(nxt) if nxt is not None else None
        if a == "-":
            return None  # the script comes from standard input
        if not a.startswith(("-", "+")):
            if options is _DOTNET and a in ("exec", "run"):
                i += 1
                continue
            return _script_stem(a)
        flag, eq, inline = a.partition("=")
        if flag in options.code:
            return None
        if flag in options.module or flag in options.script:
            value = inline if eq else nxt
            if value is None:
                return None
            return (value if flag in options.module else _script_stem(value)) or None
        if flag in options.takes_value:
            i += 1 if eq else 2
            continue
        if flag.startswith("-") and not flag.startswith("--") and len(flag) > 2:
            # A group of short options ("-uc", "-Wignore", "-mhttp.server").
            verdict, takes_next = _short_group(flag, nxt, options)
            if verdict is not _CONTINUE:
                return verdict
            if takes_next:
                i += 1
        i += 1
    return None


_CONTINUE = object()


def _short_group(group: str, nxt: str | None, options: InterpreterOptions) -> tuple[object, bool]:
    """Reads ``-abc``: a code, module or script letter decides the name (None: no script); a
    letter that takes a value takes the rest of the group, or the next argument when it is
    last.  Returns (name, None or _CONTINUE; whether the next argument was consumed)."""
    for pos, letter in enumerate(group[1:], start=1):
        rest = group[pos + 1:]
        short = "-" + letter
        value = rest or nxt
        if short in options.code:
            return None, False
        if short in options.module:
            return (value or None), False
        if short in options.script:
            return (_script_stem(value) if value else None), False
        if short in options.takes_value:
            return _CONTINUE, not rest
    return _CONTINUE, False


def _script_stem(path: str | None) -> str | None:
    if not path or _NOT_A_SCRIPT.match(path):
        return None
    stem = _stem(path)
    if not stem or stem.isdigit():
        return None
    return stem


def _stem(path: str) -> str:
    base = os.path.basename(path.rstrip("/"))
    for ext in _EXTENSIONS:
        if base.endswith(ext) and len(base) > len(ext):
            return base[: -len(ext)]
    return base
