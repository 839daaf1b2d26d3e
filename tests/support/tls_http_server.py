"""A small HTTPS/1.1 server on the standard library (``http.server`` + ``ssl``), run as a child.

    python tls_http_server.py --cert C --key K [--port N] [--fork] [--import-ssl-on-stdin] [--tag T]

Prints ``READY <port>`` once it accepts TLS connections, then serves until its stdin closes.
``GET /<anything>`` answers 200 with a small body; ``/status/<code>`` answers that code.
``--fork``: each connection is served by a forked child (``ForkingMixIn``), as pre-fork servers
do.  ``--import-ssl-on-stdin``: starts without the ssl module (so without libssl mapped), prints
``WAITING``, and imports it (``dlopen``) when a line arrives on stdin.  ``--tag`` only marks the
command line (for discovery rules).
"""

from __future__ import annotations

import argparse
import sys
import threading


def make_server(port: int, fork: bool):
    """The HTTP server (http.server imports ssl, through http.client: loaded here, not before)."""
    import http.server  # noqa: PLC0415
    import socketserver  # noqa: PLC0415

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):  # noqa: N802 - http.server's naming
            code = 200
            if self.path.startswith("/status/"):
                code = int(self.path.rsplit("/", 1)[1])
            body = f"{self.path} over tls\n".encode()
            self.send_response(code)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    class ForkingServer(socketserver.ForkingMixIn, http.server.HTTPServer):
        pass

    server_cls = ForkingServer if fork else http.server.ThreadingHTTPServer
    return server_cls(("127.0.0.1", port), Handler)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--fork", action="store_true")
    parser.add_argument("--import-ssl-on-stdin", action="store_true")
    parser.add_argument("--tag", default="")
    args = parser.parse_args()
    if args.import_ssl_on_stdin:
        print("WAITING", flush=True)
        if not sys.stdin.readline():
            return 0
    import ssl  # noqa: PLC0415 - loaded late on purpose (dlopen of libssl)

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.cert, args.key)
    server = make_server(args.port, args.fork)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(f"READY {server.server_address[1]}", flush=True)
    sys.stdin.read()  # until the parent closes our stdin (or dies)
    server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
