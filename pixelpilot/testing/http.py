"""A web app for a browser test, served on loopback: the plumbing every test server needs.

    class Handler(QuietHandler):
        def do_GET(self) -> None:
            respond(self, "<h1>Hello</h1>")

    with LoopbackServer(Handler) as server:
        pilot.goto(server.url)

The server listens on 127.0.0.1 only (a free port unless one is given), runs in a daemon thread, and
stops when the ``with`` block ends, also when the test fails. The server itself lives in
``pixelpilot._loopback`` (the product serves benchmark pages with it too); this module adds ``respond``.
"""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler
from typing import Any

from .._loopback import LoopbackServer, QuietHandler

__all__ = ["LoopbackServer", "QuietHandler", "respond"]


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
