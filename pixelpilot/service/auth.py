"""Who may call a service: anyone on this machine when it listens on loopback, else only a client
that sends the API token (``Authorization: Bearer <token>``)."""

from __future__ import annotations

import ipaddress
import json
import secrets
from typing import Any

#: The environment variable a token may come from instead of the command line.
TOKEN_ENV = "PIXELPILOT_API_TOKEN"


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address to listen on) is reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a hostname: it may resolve to anything


def check_binding(host: str, token: str | None) -> None:
    """Refuse (ValueError) to listen beyond loopback without a token."""
    if not is_loopback(host) and not token:
        raise ValueError(
            f"listening on {host} lets other machines in: set an API token (--token or ${TOKEN_ENV}), "
            "or listen on 127.0.0.1"
        )


class BearerToken:
    """ASGI middleware: every HTTP request but those to ``open_paths`` must carry the token, else it
    is answered 401 with a JSON error. Lifespan events pass through."""

    def __init__(self, app: Any, token: str, *, open_paths: tuple[str, ...] = ("/health",)) -> None:
        self.app = app
        self._expected = f"Bearer {token}".encode()
        self.open_paths = open_paths

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] not in self.open_paths:
            given = dict(scope["headers"]).get(b"authorization", b"")
            if not secrets.compare_digest(given, self._expected):
                body = json.dumps({"error": "missing or wrong API token (Authorization: Bearer <token>)"}).encode()
                await send(
                    {
                        "type": "http.response.start",
                        "status": 401,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                            (b"www-authenticate", b"Bearer"),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)
