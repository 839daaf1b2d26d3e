"""HTTPS/1.1 servers whose TLS runs on memory BIOs (``ssl.MemoryBIO`` through asyncio's
``sslproto``: the event loop reads and writes the sockets, OpenSSL only sees buffers), run as a
child.

    python memory_bio_server.py --cert C --key K --kind asyncio|aiohttp [--plain-too]

``asyncio``: ``asyncio.start_server(ssl=...)`` with a keep-alive HTTP/1.1 handler of its own;
``aiohttp``: an ``aiohttp.web`` application.  Both answer ``GET .../status/<code>`` with that code
(the path may start with anything) and any other path with 200.  Prints ``READY <port>``, serves until its stdin closes.
``--plain-too`` (asyncio): the same loop also serves plain HTTP on a second port
(``READY <tls port> <plain port>``): one thread, TLS and plain connections interleaved.
"""

from __future__ import annotations

import argparse
import asyncio
import ssl
import sys


def _status_of(path: str) -> int:
    if "/status/" in path:
        return int(path.rsplit("/", 1)[1])
    return 200


async def _asyncio_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            _method, path, _version = lines[0].split(" ", 2)
            length = 0
            for line in lines[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            if length:
                await reader.readexactly(length)
            code = _status_of(path)
            body = f"{path} over memory bio\n".encode()
            writer.write(f"HTTP/1.1 {code} X\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\n\r\n"
                         .encode() + body)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def _serve_asyncio(ctx: ssl.SSLContext, plain_too: bool) -> None:
    server = await asyncio.start_server(_asyncio_connection, "127.0.0.1", 0, ssl=ctx, backlog=256)
    ports = [server.sockets[0].getsockname()[1]]
    if plain_too:
        plain = await asyncio.start_server(_asyncio_connection, "127.0.0.1", 0, backlog=256)
        ports.append(plain.sockets[0].getsockname()[1])
    await _until_stdin_closes(*ports)
    server.close()


async def _serve_aiohttp(ctx: ssl.SSLContext) -> None:
    from aiohttp import web  # noqa: PLC0415 - only this kind needs it

    async def handle(request: web.Request) -> web.Response:
        return web.Response(status=_status_of(request.path), text=f"{request.path} over memory bio\n")

    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ctx, backlog=256)
    await site.start()
    await _until_stdin_closes(runner.addresses[0][1])
    await runner.cleanup()


async def _until_stdin_closes(*ports: int) -> None:
    print("READY", *ports, flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--kind", choices=("asyncio", "aiohttp"), required=True)
    parser.add_argument("--plain-too", action="store_true")
    args = parser.parse_args()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.cert, args.key)
    asyncio.run(_serve_asyncio(ctx, args.plain_too) if args.kind == "asyncio" else _serve_aiohttp(ctx))
    return 0


if __name__ == "__main__":
    sys.exit(main())
