"""Tools from an MCP server (stdio transport, the official ``mcp`` SDK, 2.x) in a ``ToolRegistry``.

>>> conn = await load_mcp_tools(registry, "python", ["my_server.py"])   # doctest: +SKIP
>>> await registry.call("my_tool", {...})                                # doctest: +SKIP
>>> await registry.aclose()                                              # stops the server

The server runs as long as the connection; one background task owns the SDK's context managers
(anyio needs them entered and left in the same task), and calls from any task go through its
session. Arguments are validated against the tool's own JSON schema before they are sent; the
schema the model is constrained by is the same one rewritten for xgrammar (``constrained_schema``).
Tools whose schema cannot be rewritten (recursive ones) are skipped and listed in ``skipped``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import tempfile
from collections.abc import Iterable
from typing import Any, TypedDict, Unpack

from .registry import NAME_RE, Tool, ToolError, ToolRegistry, ToolSchemaError, constrained_schema

log = logging.getLogger(__name__)


class MCPError(RuntimeError):
    """The MCP server could not be started or listed; the message includes its stderr's tail."""


class MCPConnection:
    """One MCP server process over stdio and the ``Tool``s made from its tools."""

    def __init__(
        self,
        command: str,
        args: Iterable[str] = (),
        *,
        env: dict[str, str] | None = None,
        cwd: str | None = None,
        prefix: str = "",
        timeout: float = 30.0,
    ) -> None:
        self.command = command
        self.args = list(args)
        self.env = env
        self.cwd = cwd
        self.prefix = prefix
        self.timeout = timeout
        self.tools: list[Tool] = []
        #: Tools the server offers that could not be registered: name → why.
        self.skipped: dict[str, str] = {}
        self._session: Any = None
        self._task: asyncio.Task[None] | None = None
        self._closing = asyncio.Event()
        self._errlog = tempfile.TemporaryFile(mode="w+", encoding="utf-8", errors="replace")

    async def start(self) -> list[Tool]:
        """Start the server, list its tools and make ``Tool``s of them."""
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[list[Any]] = loop.create_future()
        self._task = asyncio.create_task(self._serve(ready), name=f"mcp:{self.command}")
        try:
            listed = await asyncio.wait_for(asyncio.shield(ready), self.timeout)
        except Exception as e:
            why = (
                f"did not answer within {self.timeout:g} s"
                if isinstance(e, asyncio.TimeoutError)
                else f"failed to start: {_leaf(e)}"
            )
            tail = self._stderr_tail()
            await self.aclose()
            raise MCPError(f"MCP server `{self._cmdline()}` {why}{tail}") from None
        for spec in listed:
            try:
                self.tools.append(self._make_tool(spec))
            except (ToolSchemaError, ValueError) as e:
                self.skipped[spec.name] = str(e)
                log.warning("MCP tool %s skipped: %s", spec.name, e)
        return self.tools

    async def _serve(self, ready: asyncio.Future[list[Any]]) -> None:
        from mcp import ClientSession, StdioServerParameters, stdio_client

        params = StdioServerParameters(command=self.command, args=self.args, env=self.env, cwd=self.cwd)
        try:
            async with stdio_client(params, errlog=self._errlog) as (read, write):
                async with ClientSession(read, write) as session:
                    await session.initialize()
                    tools: list[Any] = []
                    cursor = None
                    while True:
                        page = await session.list_tools(params=_page(cursor))
                        tools += page.tools
                        cursor = page.next_cursor
                        if not cursor:
                            break
                    self._session = session
                    ready.set_result(tools)
                    await self._closing.wait()
        except BaseException as e:  # noqa: BLE001 — reported to start(), or logged after it
            if not ready.done():
                ready.set_exception(e if isinstance(e, Exception) else MCPError(repr(e)))
            elif not isinstance(e, asyncio.CancelledError):
                log.warning("MCP server `%s` ended: %s", self._cmdline(), e)
        finally:
            self._session = None

    def _make_tool(self, spec: Any) -> Tool:
        import jsonschema

        name = f"{self.prefix}{spec.name}"
        if not NAME_RE.match(name):
            raise ValueError(f"its name {name!r} is not a valid tool name")
        schema = spec.input_schema or {"type": "object", "properties": {}}
        validator = jsonschema.Draft202012Validator(schema)

        def validate(arguments: dict[str, Any]) -> dict[str, Any]:
            error = jsonschema.exceptions.best_match(validator.iter_errors(arguments))
            if error is not None:
                where = ".".join(str(p) for p in error.absolute_path) or "arguments"
                raise ValueError(f"{where}: {error.message}")
            return arguments

        async def call(**arguments: Any) -> str:
            return await self.call(spec.name, arguments)

        return Tool(
            name=name,
            description=(spec.description or spec.title or spec.name).strip(),
            parameters=constrained_schema(schema, where=name),
            fn=call,
            validate=validate,
            timeout=self.timeout,
        )

    async def call(self, name: str, arguments: dict[str, Any]) -> str:
        """Call the server's tool ``name``; its text content comes back, an error as ``ToolError``."""
        session = self._session
        if session is None:
            raise ToolError(f"the MCP server `{self._cmdline()}` is not running{self._stderr_tail()}")
        result = await session.call_tool(name, arguments, read_timeout_seconds=self.timeout)
        text = result_text(result)
        if result.is_error:
            raise ToolError(text or "the MCP tool reported an error")
        return text

    async def aclose(self) -> None:
        """Stop the server and wait for its process to end."""
        self._closing.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, 10)
            except (TimeoutError, asyncio.CancelledError):
                self._task.cancel()
            self._task = None
        self._errlog.close()

    def _cmdline(self) -> str:
        return " ".join([self.command, *self.args])

    def _stderr_tail(self) -> str:
        try:
            self._errlog.seek(0)
            tail = self._errlog.read()[-1500:].strip()
        except (ValueError, OSError):
            return ""
        return f"; its stderr ends with:\n{tail}" if tail else ""


def _leaf(e: BaseException) -> str:
    """The first real error inside anyio's exception groups."""
    while isinstance(e, BaseExceptionGroup) and e.exceptions:
        e = e.exceptions[0]
    return f"{type(e).__name__}: {e}"


def _page(cursor: str | None) -> Any:
    if cursor is None:
        return None
    from mcp.types import PaginatedRequestParams

    return PaginatedRequestParams(cursor=cursor)


def result_text(result: Any) -> str:
    """The text of an MCP ``CallToolResult``: text blocks joined, other blocks named, else structured content."""
    parts = []
    for block in result.content or []:
        kind = getattr(block, "type", "")
        if kind == "text":
            parts.append(block.text)
        elif kind == "resource" and hasattr(block.resource, "text"):
            parts.append(block.resource.text)
        elif kind == "resource_link":
            parts.append(f"[resource: {block.uri}]")
        else:
            parts.append(f"[{kind or 'content'}: {getattr(block, 'mime_type', '') or ''}]".replace(": ]", "]"))
    if not parts and result.structured_content is not None:
        parts.append(json.dumps(result.structured_content, ensure_ascii=False))
    return "\n".join(parts)


class MCPOptions(TypedDict, total=False):
    """How :class:`MCPConnection` starts its server (its keyword arguments)."""

    env: dict[str, str] | None
    cwd: str | None
    prefix: str
    timeout: float


async def load_mcp_tools(
    registry: ToolRegistry, command: str, args: Iterable[str] = (), **options: Unpack[MCPOptions]
) -> MCPConnection:
    """Start an MCP stdio server and register its tools (named ``prefix + name``) in ``registry``.

    ``registry.aclose()`` stops the server; so does ``await connection.aclose()``.
    """
    conn = MCPConnection(command, args, **options)
    tools = await conn.start()
    try:
        for t in tools:
            registry.add(t)
    except ValueError:
        await conn.aclose()
        raise
    registry.on_close(conn.aclose)
    return conn
