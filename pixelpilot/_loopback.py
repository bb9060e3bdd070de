"""An HTTP server on 127.0.0.1 in a thread of its own, as a context manager: what a test app and a
benchmark's pages (``pixelpilot.evals.miniwob``) are served with.

    with LoopbackServer(Handler) as server:
        ...  # server.url is http://127.0.0.1:PORT/

It listens on loopback only (a free port unless one is given), runs in a daemon thread, and stops
when the ``with`` block ends, also on an exception.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class QuietHandler(BaseHTTPRequestHandler):
    """A request handler that keeps the output clean (no line per request)."""

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A browser that closes its connection mid-response (a context closed with the page
        # loading) is routine, not an error worth a traceback.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class LoopbackServer:
    """A threading HTTP server on ``host`` (loopback) serving ``handler``, as a context manager.

    ``handler`` is a request handler class, or any callable that builds one the way
    ``http.server`` does (``functools.partial(SimpleHTTPRequestHandler, directory=…)``).
    """

    def __init__(
        self, handler: Callable[..., BaseHTTPRequestHandler], *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.server = _Server((host, port), handler)
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
