"""A web app for a browser test, served on loopback: the plumbing every test server needs.

    class Handler(QuietHandler):
        def do_GET(self) -> None:
            respond(self, "<h1>Hello</h1>")

    with LoopbackServer(Handler) as server:
        pilot.goto(server.url)

The server listens on 127.0.0.1 only (a free port unless one is given), runs in a daemon thread, and
stops when the ``with`` block ends, also when the test fails.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class QuietHandler(BaseHTTPRequestHandler):
    """A request handler that keeps the test output clean (no line per request)."""

    def log_message(self, format: str, *args: Any) -> None:
        pass


def respond(
    handler: BaseHTTPRequestHandler,
    body: bytes | str | dict[str, Any] | list[Any],
    status: int = 200,
    *,
    content_type: str | None = None,
    headers: dict[str, str] | None = None,
) -> None:
    """Send a whole response: text as HTML, a dict or list as JSON, bytes as they are."""
    if isinstance(body, dict | list):
        data, default_type = json.dumps(body).encode(), "application/json"
    elif isinstance(body, str):
        data, default_type = body.encode(), "text/html; charset=utf-8"
    else:
        data, default_type = body, "application/octet-stream"
    handler.send_response(status)
    handler.send_header("Content-Type", content_type or default_type)
    handler.send_header("Content-Length", str(len(data)))
    for name, value in (headers or {}).items():
        handler.send_header(name, value)
    handler.end_headers()
    handler.wfile.write(data)


class LoopbackServer:
    """A threading HTTP server on ``host`` (loopback) serving ``handler``, as a context manager."""

    def __init__(self, handler: type[BaseHTTPRequestHandler], *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.server = ThreadingHTTPServer((host, port), handler)
        self.server.daemon_threads = True
        self.host = host
        self.port: int = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, name=f"http-{self.port}", daemon=True)

    @property
    def url(self) -> str:
        """The server's root URL, ``http://127.0.0.1:PORT/``."""
        return f"http://{self.host}:{self.port}/"

    def start(self) -> LoopbackServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and free the port (safe to call twice)."""
        if self._thread.is_alive():
            self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> LoopbackServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
