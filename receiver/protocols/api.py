"""The public protocol-parser API (version 1): what a protocol, built in or a plug-in from another
installed package, gives the agent, and how the agent keeps a faulty one contained.

A protocol is one :class:`ProtocolPlugin` value:

* ``detect(first_bytes, direction) -> Detection`` — do the first bytes one side of a connection
  sent look like this protocol (``YES``), might they (``MAYBE``: plausible, more bytes or the
  other direction would tell), or not (``NO``);
* ``new_session(max_buffer=, kernel_role=, transport=) -> ProtocolSession`` — one sans-I/O parser
  and stitcher per connection (:class:`receiver.protocols.base.ProtocolSession`), fed the bytes
  of both directions and returning finished :class:`~receiver.protocols.base.Transaction` values;
* ``describe(transaction, facts) -> SpanDescription | None`` — the semantic-convention mapping of
  one transaction (``None``: no span for it, e.g. the server side of a database call).

Built-in protocols expose a module-level ``PROTOCOL`` in their package; plug-ins register theirs
under the entry-point group :data:`ENTRY_POINT_GROUP` (``ebpf_receiver.protocols``).  A plug-in
imports only this module and :mod:`receiver.protocols.base` from the agent.  See
``docs/protocols.md`` for the guarantees a protocol gives (never raise on wire data, bounded
buffers, no I/O, clocks or logging) and what the agent does when one breaks them
(:func:`guarded_session`, :func:`guarded_describe`, :func:`guarded_detect`).
"""

from __future__ import annotations

import enum
import importlib.metadata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from receiver.protocols.base import Direction, ProtocolSession, Role, Transaction

API_VERSION = 1
ENTRY_POINT_GROUP = "ebpf_receiver.protocols"
TRANSPORTS = frozenset({"tcp", "udp", "unix"})
SPAN_KINDS = frozenset({"client", "server", "producer", "consumer", "internal"})
METRIC_KINDS = frozenset({"duration", "count"})


class Detection(enum.Enum):
    """A detector's verdict on the first bytes of one direction."""

    NO = 0
    MAYBE = 1  # plausible: more bytes, or the other direction's, would tell
    YES = 2


@dataclass(frozen=True, slots=True)
class ConnectionFacts:
    """What the agent knows of a connection, handed to ``describe``.

    ``local_*`` is the traced process's end, ``remote_*`` the other end as addressed (what a
    client dialled); ``peer_*`` is the real backend when the destination was NAT'd (DNAT, a
    Service), else ``None``.  For ``transport="unix"`` the addresses are ``""`` and ports 0.
    """

    role: Role
    transport: str  # "tcp" | "udp" | "unix"
    local_address: str
    local_port: int
    remote_address: str
    remote_port: int
    peer_address: str | None = None
    peer_port: int | None = None


@dataclass(frozen=True, slots=True)
class SpanDescription:
    """The semantic-convention mapping of one transaction.

    ``attributes`` are the span's; ``error`` sets the span status to ERROR (with
    ``status_message``).  ``metric_name`` names the metric the transaction is recorded in, with
    ``metric_attributes`` (low cardinality, sorted): ``metric_kind="duration"`` records the
    span's duration in seconds in a histogram (``db.client.operation.duration``),
    ``metric_kind="count"`` adds 1 to a counter (``messaging.client.consumed.messages``).
    ``traceparent`` is a W3C trace context the message itself carried (AMQP or NATS headers):
    the span's parent.
    """

    name: str
    kind: str  # "client" | "server" | "producer" | "consumer" | "internal"
    attributes: Mapping[str, object]
    error: bool = False
    status_message: str = ""
    metric_name: str | None = None
    metric_attributes: tuple[tuple[str, object], ...] = ()
    metric_kind: str = "duration"  # "duration" | "count"
    traceparent: str | None = None
    tracestate: str | None = None


@dataclass(frozen=True)
class ProtocolPlugin:
    """One protocol, as the agent loads it (see the module docstring)."""

    name: str  # config name: receivers.ebpf.protocols.<name>
    detect: Callable[[bytes, Direction], Detection]
    new_session: Callable[..., ProtocolSession]  # keywords: max_buffer=int, kernel_role=Role, transport=str
    describe: Callable[[Transaction, ConnectionFacts], SpanDescription | None]
    api_version: int = API_VERSION
    default_ports: tuple[int, ...] = ()
    transports: frozenset[str] = frozenset({"tcp"})

    def __post_init__(self) -> None:
        problems = plugin_problems(self)
        if problems:
            raise ValueError(f"protocol plug-in {self.name!r}: " + "; ".join(problems))


def plugin_problems(plugin: ProtocolPlugin) -> list[str]:
    """What is wrong with a plug-in's declaration (empty when it can be loaded)."""
    problems = []
    if not isinstance(plugin.name, str) or not plugin.name.isidentifier() or plugin.name != plugin.name.lower():
        problems.append("name must be a lower-case identifier (it is a config key)")
    if plugin.api_version != API_VERSION:
        problems.append(f"api_version {plugin.api_version!r} is not supported (this agent speaks {API_VERSION})")
    for attr in ("detect", "new_session", "describe"):
        if not callable(getattr(plugin, attr)):
            problems.append(f"{attr} is not callable")
    if not plugin.transports or not set(plugin.transports) <= TRANSPORTS:
        problems.append(f"transports must be a non-empty subset of {sorted(TRANSPORTS)}")
    if any(not isinstance(p, int) or not 0 < p < 65536 for p in plugin.default_ports):
        problems.append("default_ports must be TCP/UDP port numbers")
    return problems


# -- loading plug-ins ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PluginLoadError:
    """An entry point that did not yield a usable :class:`ProtocolPlugin`."""

    entry_point: str  # "name = module:attr"
    reason: str


def load_entry_point_plugins(
    group: str = ENTRY_POINT_GROUP,
    entry_points: Callable[..., Iterable[importlib.metadata.EntryPoint]] = importlib.metadata.entry_points,
) -> tuple[list[ProtocolPlugin], list[PluginLoadError]]:
    """Import every plug-in registered under ``group``.  A plug-in that fails to import, is not
    a :class:`ProtocolPlugin`, or speaks another API version is returned as an error, never
    raised; two plug-ins with one name: the first (by entry-point name) wins."""
    plugins: list[ProtocolPlugin] = []
    errors: list[PluginLoadError] = []
    seen: set[str] = set()
    for ep in sorted(entry_points(group=group), key=lambda e: (e.name, e.value)):
        where = f"{ep.name} = {ep.value}"
        try:
            obj = ep.load()
        except Exception as exc:  # a broken plug-in must not stop the agent
            errors.append(PluginLoadError(where, f"import failed: {type(exc).__name__}: {exc}"))
            continue
        if not isinstance(obj, ProtocolPlugin):
            errors.append(PluginLoadError(where, f"not a ProtocolPlugin but {type(obj).__name__}"))
            continue
        if obj.name in seen:
            errors.append(PluginLoadError(where, f"protocol name {obj.name!r} already registered"))
            continue
        seen.add(obj.name)
        plugins.append(obj)
    return plugins, errors


# -- containment -----------------------------------------------------------------------------


@dataclass
class PluginFailures:
    """Exceptions protocols raised where they must not, per ``(protocol, stage)``; stage is
    ``"detect"``, ``"session"``, ``"feed"``, ``"close"`` or ``"describe"``.  One per agent (or per
    test): nothing here is module-level."""

    counts: dict[tuple[str, str], int] = field(default_factory=dict)
    last_error: dict[str, str] = field(default_factory=dict)  # protocol → "ExcType: message" (bounded)

    def record(self, protocol: str, stage: str, exc: BaseException) -> None:
        key = (protocol, stage)
        self.counts[key] = self.counts.get(key, 0) + 1
        self.last_error[protocol] = f"{stage}: {type(exc).__name__}: {exc}"[:256]

    def total(self, protocol: str | None = None) -> int:
        return sum(n for (p, _), n in self.counts.items() if protocol is None or p == protocol)


def guarded_detect(plugin: ProtocolPlugin, data: bytes, direction: Direction, failures: PluginFailures) -> Detection:
    """``plugin.detect``; an exception or a verdict that is not a :class:`Detection` is ``NO``
    (counted)."""
    try:
        verdict = plugin.detect(data, direction)
    except Exception as exc:
        failures.record(plugin.name, "detect", exc)
        return Detection.NO
    if not isinstance(verdict, Detection):
        failures.record(plugin.name, "detect", TypeError(f"detect returned {type(verdict).__name__}"))
        return Detection.NO
    return verdict


class GuardedSession:
    """A plug-in's session behind a fence (implements ``ProtocolSession``).

    The first exception out of ``feed``/``close`` (or a result that is not a list of
    :class:`Transaction`) is counted in ``failures`` and turns the session *failed*: the
    connection is dropped from parsing — every later call returns ``[]`` without touching the
    plug-in, and :attr:`failed` tells the caller it may switch the connection off in the kernel.
    """

    __slots__ = ("_inner", "_plugin", "_failures", "protocol", "failed", "_parse_errors")

    def __init__(self, plugin: ProtocolPlugin, inner: ProtocolSession | None, failures: PluginFailures) -> None:
        self._inner = inner
        self._plugin = plugin
        self._failures = failures
        self.protocol = plugin.name
        self.failed = inner is None
        self._parse_errors = 0

    @property
    def parse_errors(self) -> int:
        """The plug-in's count while it works; frozen at its last good value once it failed."""
        if self.failed or self._inner is None:
            return self._parse_errors
        try:
            value = self._inner.parse_errors
            if isinstance(value, int):
                self._parse_errors = value
        except Exception as exc:
            self._fail("feed", exc)
        return self._parse_errors

    def feed(self, direction: Direction, data: bytes, ts_ns: int, total_len: int | None = None) -> list[Transaction]:
        if self.failed:
            return []
        try:
            out = self._inner.feed(direction, data, ts_ns, total_len)  # type: ignore[union-attr]
        except Exception as exc:
            self._fail("feed", exc)
            return []
        return self._checked("feed", out)

    def close(self, ts_ns: int) -> list[Transaction]:
        if self.failed:
            return []
        try:
            out = self._inner.close(ts_ns)  # type: ignore[union-attr]
        except Exception as exc:
            self._fail("close", exc)
            return []
        return self._checked("close", out)

    def _checked(self, stage: str, out: object) -> list[Transaction]:
        if isinstance(out, list) and all(isinstance(t, Transaction) for t in out):
            return out
        self._fail(stage, TypeError(f"{stage} returned {type(out).__name__}, not a list of Transaction"))
        return []

    def _fail(self, stage: str, exc: BaseException) -> None:
        self._failures.record(self._plugin.name, stage, exc)
        self.failed = True
        self._inner = None  # release what the plug-in buffered


def guarded_session(
    plugin: ProtocolPlugin,
    failures: PluginFailures,
    *,
    max_buffer: int,
    kernel_role: Role = Role.UNKNOWN,
    transport: str = "tcp",
) -> GuardedSession:
    """A new session of ``plugin`` behind a :class:`GuardedSession`; a factory that raises gives
    a session that is failed from the start (counted under stage ``"session"``)."""
    try:
        inner = plugin.new_session(max_buffer=max_buffer, kernel_role=kernel_role, transport=transport)
    except Exception as exc:
        failures.record(plugin.name, "session", exc)
        inner = None
    return GuardedSession(plugin, inner, failures)


def guarded_describe(
    plugin: ProtocolPlugin, transaction: Transaction, facts: ConnectionFacts, failures: PluginFailures
) -> SpanDescription | None:
    """``plugin.describe``; an exception or a result that is not a valid
    :class:`SpanDescription` is ``None`` (no span; counted)."""
    try:
        described = plugin.describe(transaction, facts)
    except Exception as exc:
        failures.record(plugin.name, "describe", exc)
        return None
    if described is None:
        return None
    if (
        not isinstance(described, SpanDescription)
        or described.kind not in SPAN_KINDS
        or described.metric_kind not in METRIC_KINDS
        or not isinstance(described.name, str)
    ):
        failures.record(plugin.name, "describe", TypeError(f"describe returned an invalid {type(described).__name__}"))
        return None
    return described


# -- helpers for describe() ------------------------------------------------------------------


def server_attributes(facts: ConnectionFacts) -> tuple[dict[str, object], list[tuple[str, object]]]:
    """``server.*``/``network.*`` attributes of a client-side span, and the metric attributes
    among them.  The server is the remote end as dialled; ``network.peer.*`` is the real backend
    behind NAT when known."""
    attrs: dict[str, object] = {"network.transport": facts.transport}
    metric: list[tuple[str, object]] = []
    if facts.transport == "unix" or not facts.remote_port:
        return attrs, metric
    attrs["server.address"] = facts.remote_address
    attrs["server.port"] = facts.remote_port
    attrs["network.peer.address"] = facts.peer_address or facts.remote_address
    attrs["network.peer.port"] = facts.peer_port or facts.remote_port
    metric += [("server.address", facts.remote_address), ("server.port", facts.remote_port)]
    return attrs, metric
