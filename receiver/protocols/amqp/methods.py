"""The arguments of the AMQP 0-9-1 methods the session reads (exchange, routing key, queue,
delivery tag, reply code and text, the ``no-wait`` bit), and which reply each synchronous
request waits for."""

from __future__ import annotations

from dataclasses import dataclass

from .wire import MAX_TEXT, Reader

# Synchronous requests a client sends → the replies that complete them.
REPLIES: dict[str, frozenset[str]] = {
    name: frozenset(replies.split())
    for name, replies in {
        "connection.open": "connection.open-ok",
        "connection.close": "connection.close-ok",
        "channel.open": "channel.open-ok",
        "channel.flow": "channel.flow-ok",
        "channel.close": "channel.close-ok",
        "exchange.declare": "exchange.declare-ok",
        "exchange.delete": "exchange.delete-ok",
        "exchange.bind": "exchange.bind-ok",
        "exchange.unbind": "exchange.unbind-ok",
        "queue.declare": "queue.declare-ok",
        "queue.bind": "queue.bind-ok",
        "queue.purge": "queue.purge-ok",
        "queue.delete": "queue.delete-ok",
        "queue.unbind": "queue.unbind-ok",
        "basic.qos": "basic.qos-ok",
        "basic.consume": "basic.consume-ok",
        "basic.cancel": "basic.cancel-ok",
        "basic.get": "basic.get-ok basic.get-empty",
        "basic.recover": "basic.recover-ok",
        "confirm.select": "confirm.select-ok",
        "tx.select": "tx.select-ok",
        "tx.commit": "tx.commit-ok",
        "tx.rollback": "tx.rollback-ok",
    }.items()
}


@dataclass(slots=True)
class Arguments:
    exchange: str | None = None
    routing_key: str | None = None
    queue: str | None = None
    delivery_tag: int | None = None
    reply_code: int | None = None
    reply_text: str | None = None
    redelivered: bool = False
    nowait: bool = False
    frame_max: int | None = None  # connection.tune / tune-ok
    ok: bool = True  # every argument read was there


def _bit(value: int | None, n: int) -> bool:
    return value is not None and bool(value >> n & 1)


def read_arguments(name: str, r: Reader) -> Arguments:
    """The arguments of method ``name`` from ``r`` (positioned after class and method ids).
    Missing bytes leave the rest ``None`` and ``ok`` false."""
    a = Arguments()
    if name == "basic.publish":
        r.u16()
        a.exchange, a.routing_key = r.shortstr(), r.shortstr()
        a.ok = a.routing_key is not None
    elif name == "basic.deliver":
        tag = r.shortstr()  # consumer tag
        a.delivery_tag = r.u64() if tag is not None else None
        a.redelivered = _bit(r.u8(), 0)
        a.exchange, a.routing_key = r.shortstr(), r.shortstr()
        a.ok = a.routing_key is not None
    elif name == "basic.get-ok":
        a.delivery_tag = r.u64()
        a.redelivered = _bit(r.u8(), 0)
        a.exchange, a.routing_key = r.shortstr(), r.shortstr()
        a.ok = a.routing_key is not None
    elif name == "basic.get":
        r.u16()
        a.queue = r.shortstr()
    elif name == "basic.return":
        a.reply_code, a.reply_text = r.u16(), r.shortstr()
        a.exchange, a.routing_key = r.shortstr(), r.shortstr()
    elif name in ("basic.ack", "basic.nack", "basic.reject"):
        a.delivery_tag = r.u64()
    elif name == "basic.consume":
        r.u16()
        a.queue = r.shortstr()
        r.shortstr()  # consumer tag
        a.nowait = _bit(r.u8(), 3)
    elif name == "basic.cancel":
        r.shortstr()
        a.nowait = _bit(r.u8(), 0)
    elif name in ("channel.close", "connection.close"):
        a.reply_code, a.reply_text = r.u16(), r.shortstr()
    elif name == "exchange.declare":
        r.u16()
        a.exchange = r.shortstr()
        r.shortstr()  # type
        a.nowait = _bit(r.u8(), 4)
    elif name == "exchange.delete":
        r.u16()
        a.exchange = r.shortstr()
        a.nowait = _bit(r.u8(), 1)
    elif name in ("exchange.bind", "exchange.unbind"):
        r.u16()
        r.shortstr()  # destination
        a.exchange, a.routing_key = r.shortstr(), r.shortstr()
        a.nowait = _bit(r.u8(), 0)
    elif name == "queue.declare":
        r.u16()
        a.queue = r.shortstr()
        a.nowait = _bit(r.u8(), 4)
    elif name == "queue.declare-ok":
        a.queue = r.shortstr()
    elif name in ("queue.bind", "queue.unbind"):
        r.u16()
        a.queue, a.exchange, a.routing_key = r.shortstr(), r.shortstr(), r.shortstr()
        if name == "queue.bind":
            a.nowait = _bit(r.u8(), 0)
    elif name == "queue.purge":
        r.u16()
        a.queue = r.shortstr()
        a.nowait = _bit(r.u8(), 0)
    elif name == "queue.delete":
        r.u16()
        a.queue = r.shortstr()
        a.nowait = _bit(r.u8(), 2)
    elif name in ("connection.tune", "connection.tune-ok"):
        r.u16()
        a.frame_max = r.u32()
    elif name == "confirm.select":
        a.nowait = _bit(r.u8(), 0)
    if a.reply_text is not None:
        a.reply_text = a.reply_text[:MAX_TEXT]
    return a
