"""A traced server with a slow endpoint: GET /slow burns argv[2] seconds of CPU in
slow_endpoint_work before answering; GET / answers at once. Listens on 127.0.0.1:argv[1]."""

import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def slow_endpoint_work(seconds):
    end = time.thread_time() + seconds
    x = 0
    while time.thread_time() < end:
        for i in range(5000):
            x = (x * 31 + i) & 0xFFFFFFFF
    return x


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):  # noqa: N802 (http.server API)
        if self.path == "/slow":
            slow_endpoint_work(float(sys.argv[2]))
        body = b"ok\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
