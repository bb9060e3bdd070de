"""The tool registry: typed Python functions the model can call as ``tool`` actions.

>>> registry = ToolRegistry()
>>> @registry.tool
... def add(a: int, b: int) -> int:
...     '''Add two integers.
...
...     Args:
...         a: the first summand
...         b: the second summand
...     '''
...     return a + b
>>> registry.call_sync("add", {"a": 2, "b": 3}).info["result"]
'5'

Names, descriptions and argument schemas come from the signature and the docstring (pydantic).
Arguments are validated before the call; each call has a timeout; whatever happens comes back as
text in an ``Outcome`` — a wrong argument or a crashing tool is information for the model, never
an exception in the agent loop. ``schemas()`` gives the ``(name, parameters)`` pairs that
``action_schema(kind, tools=...)`` turns into constrained-output variants.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, get_type_hints

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model
from pydantic_core import to_jsonable_python

from .._sync import run_sync
from ..actions import Outcome, bounded_string

log = logging.getLogger(__name__)

#: What a tool name may look like (the ``tool`` action allows 64 characters).
NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")
#: The bound given to a string argument that declares none, so constrained output cannot run on
#: (xgrammar compiles a bound of 1000 in about a second here, 2000 in five).
DEFAULT_STRING_MAX = 1000


class ToolError(Exception):
    """Raise this from a tool to report a failure to the model in your own words (no type name)."""


class ToolSchemaError(ValueError):
    """A tool's argument schema cannot be made into one that constrained decoding accepts."""


Validator = Callable[[dict[str, Any]], dict[str, Any]]


@dataclass
class Tool:
    """A callable tool: what the model sees (name, description, parameters) and how to run it.

    ``fn`` is called with the validated arguments as keywords and may be sync or async;
    ``validate`` turns the model's raw arguments into those keywords or raises ``ValueError``
    (``pydantic.ValidationError`` is one) with a message for the model.
    """

    name: str
    description: str
    parameters: dict[str, Any]
    fn: Callable[..., Any]
    validate: Validator
    timeout: float | None = None

    def __post_init__(self) -> None:
        if not NAME_RE.match(self.name):
            raise ValueError(
                f"tool name {self.name!r} is not allowed: use 1-64 letters, digits, '_', '.' or '-', "
                "starting with a letter or '_'"
            )

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Call the underlying function directly (no validation, no timeout)."""
        return self.fn(*args, **kwargs)


def tool(
    fn: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    description: str | None = None,
    timeout: float | None = None,
) -> Any:
    """Make a ``Tool`` from a typed function; usable as ``@tool`` or ``@tool(name=..., timeout=...)``.

    Every parameter needs a type hint; ``Annotated[str, Field(max_length=...)]`` and friends become
    constraints in the schema and in validation. The description is the docstring's text before an
    ``Args:`` section; each ``name: text`` line in that section describes that parameter.
    """

    def make(f: Callable[..., Any]) -> Tool:
        return function_tool(f, name=name, description=description, timeout=timeout)

    return make(fn) if fn is not None else make


def function_tool(
    fn: Callable[..., Any],
    *,
    name: str | None = None,
    description: str | None = None,
    timeout: float | None = None,
) -> Tool:
    """The ``Tool`` for a plain function (what ``@tool`` does)."""
    if isinstance(fn, Tool):
        changes: dict[str, Any] = {
            k: v for k, v in (("name", name), ("description", description), ("timeout", timeout)) if v
        }
        return dataclasses.replace(fn, **changes) if changes else fn
    tool_name = name or fn.__name__
    summary, arg_docs = _parse_docstring(inspect.getdoc(fn) or "")
    try:
        hints = get_type_hints(fn, include_extras=True)
    except Exception as e:  # a forward reference that does not resolve, typically
        raise TypeError(f"tool {tool_name!r}: cannot read its type hints ({e})") from None
    fields: dict[str, Any] = {}
    for p in inspect.signature(fn).parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            raise TypeError(
                f"tool {tool_name!r}: *{p.name} / **{p.name} cannot be described to a model; name every parameter"
            )
        if p.name not in hints:
            raise TypeError(f"tool {tool_name!r}: parameter {p.name!r} needs a type hint")
        default = ... if p.default is p.empty else p.default
        # Fields get private names and the parameter's name as alias, so a parameter may be called
        # `json` or `schema` without shadowing BaseModel's attributes.
        fields[f"arg_{p.name}"] = (hints[p.name], Field(default, alias=p.name, description=arg_docs.get(p.name)))
    model = create_model(
        f"{tool_name.replace('.', '_').replace('-', '_')}_arguments",
        __config__=ConfigDict(extra="forbid"),
        **fields,
    )

    def validate(arguments: dict[str, Any]) -> dict[str, Any]:
        m = model.model_validate(arguments)
        return {k[4:]: getattr(m, k) for k in fields}

    return Tool(
        name=tool_name,
        description=description or summary or tool_name,
        parameters=constrained_schema(model.model_json_schema(), where=tool_name),
        fn=fn,
        validate=validate,
        timeout=timeout,
    )


def _parse_docstring(doc: str) -> tuple[str, dict[str, str]]:
    """The summary (text before ``Args:``) and per-argument descriptions of a Google-style docstring."""
    parts = re.split(r"^\s*(?:Args|Arguments|Parameters):\s*$", doc, maxsplit=1, flags=re.M)
    summary = " ".join(parts[0].split())
    args: dict[str, str] = {}
    if len(parts) == 2:
        current = None
        for line in parts[1].splitlines():
            m = re.match(r"^\s*(\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$", line)
            if m:
                current = m.group(1)
                args[current] = m.group(2).strip()
            elif re.match(r"^\S", line):  # a new section (Returns:, …) ends the arguments
                break
            elif current and line.strip():
                args[current] += " " + line.strip()
    return summary, args


# Keys that say nothing constrained decoding needs and only cost prompt tokens.
_DROP = {"title", "$schema", "$id", "examples", "default"}


def constrained_schema(schema: dict[str, Any], *, where: str = "tool") -> dict[str, Any]:
    """Rewrite a JSON schema for xgrammar: ``$ref`` inlined, objects closed, strings bounded.

    Every object gets ``additionalProperties: false``; every string gets a bounded ``pattern``
    (``bounded_string``) from its ``maxLength``/``minLength``, or ``DEFAULT_STRING_MAX`` when it has
    none, in place of any ``format`` — unless it already carries a ``pattern``, enum or const. Recursive schemas cannot be
    inlined and raise ``ToolSchemaError``.
    """
    defs = dict(schema.get("$defs") or schema.get("definitions") or {})

    def walk(node: Any, seen: tuple[str, ...]) -> Any:
        if isinstance(node, list):
            return [walk(n, seen) for n in node]
        if not isinstance(node, dict):
            return node
        if "$ref" in node:
            ref = node["$ref"]
            key = ref.rsplit("/", 1)[-1]
            if not ref.startswith(("#/$defs/", "#/definitions/")) or key not in defs:
                raise ToolSchemaError(f"{where}: cannot resolve schema reference {ref!r}")
            if key in seen:
                raise ToolSchemaError(
                    f"{where}: the schema is recursive through {key!r}; constrained decoding needs a finite schema"
                )
            rest = {k: v for k, v in node.items() if k != "$ref"}
            return walk({**defs[key], **rest}, seen + (key,))
        out = {k: walk(v, seen) for k, v in node.items() if k not in _DROP and k not in ("$defs", "definitions")}
        if "properties" in node:  # a property *named* like a dropped key must survive
            out["properties"] = {k: walk(v, seen) for k, v in node["properties"].items()}
        types = out.get("type")
        if types == "object" or (types is None and "properties" in out):
            out.setdefault("type", "object")
            out.setdefault("properties", {})
            out["additionalProperties"] = False
        if types == "string" and not ({"pattern", "enum", "const"} & out.keys()):
            out.pop("format", None)  # xgrammar knows few formats; the tool's own validation still checks it
            lo = out.pop("minLength", 0)
            hi = out.pop("maxLength", DEFAULT_STRING_MAX)
            out.update(bounded_string(hi, lo))
        return out

    return walk(schema, ())


@dataclass
class _Stats:
    calls: int = 0
    errors: int = 0
    seconds: float = 0.0


class ToolRegistry:
    """A set of tools with validated, time-limited calls that never raise into the agent loop.

    It implements the agent's ``ToolRunner``: ``await registry.call(name, arguments)`` returns an
    ``Outcome`` whose ``info["result"]`` is the text for the model (also on errors, prefixed
    ``error:``). ``timeout`` is the default per-call limit in seconds; a tool's own wins.
    ``max_result_chars`` cuts long results so one call cannot flood the prompt.
    """

    def __init__(
        self, tools: Iterable[Tool | Callable[..., Any]] = (), *, timeout: float = 30.0, max_result_chars: int = 8000
    ) -> None:
        self.timeout = timeout
        self.max_result_chars = max_result_chars
        self._tools: dict[str, Tool] = {}
        self._closers: list[Callable[[], Awaitable[None]]] = []
        self.stats: dict[str, _Stats] = {}
        for t in tools:
            self.add(t)

    # -- building ---------------------------------------------------------------------------------
    def add(
        self,
        fn: Tool | Callable[..., Any],
        *,
        name: str | None = None,
        description: str | None = None,
        timeout: float | None = None,
        replace: bool = False,
    ) -> Tool:
        """Register a function (or a ready ``Tool``) and return its ``Tool``."""
        t = function_tool(fn, name=name, description=description, timeout=timeout)
        if t.name in self._tools and not replace:
            raise ValueError(f"a tool named {t.name!r} is already registered; pass replace=True or rename it")
        self._tools[t.name] = t
        self.stats.setdefault(t.name, _Stats())
        return t

    def tool(
        self,
        fn: Callable[..., Any] | None = None,
        *,
        name: str | None = None,
        description: str | None = None,
        timeout: float | None = None,
    ) -> Any:
        """Decorator: ``@registry.tool`` or ``@registry.tool(timeout=5)``; returns the ``Tool``."""

        def register(f: Callable[..., Any]) -> Tool:
            return self.add(f, name=name, description=description, timeout=timeout)

        return register(fn) if fn is not None else register

    def remove(self, name: str) -> None:
        self._tools.pop(name, None)

    def on_close(self, closer: Callable[[], Awaitable[None]]) -> None:
        """Run ``closer`` in ``aclose()`` (an MCP connection registers its shutdown here)."""
        self._closers.append(closer)

    async def aclose(self) -> None:
        """Release what tools hold (MCP server processes, …); newest first."""
        while self._closers:
            await self._closers.pop()()

    async def __aenter__(self) -> ToolRegistry:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

    # -- looking --------------------------------------------------------------------------------
    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def __iter__(self) -> Iterator[Tool]:
        return iter(self._tools.values())

    def __len__(self) -> int:
        return len(self._tools)

    def __getitem__(self, name: str) -> Tool:
        return self._tools[name]

    @property
    def names(self) -> list[str]:
        return list(self._tools)

    def schemas(self) -> list[tuple[str, dict[str, Any]]]:
        """``(name, parameters_schema)`` pairs for ``action_schema(kind, tools=...)``."""
        return [(t.name, t.parameters) for t in self._tools.values()]

    def describe(self) -> str:
        """The tools as prompt text: one block per tool with its description and argument schema."""
        return "\n".join(
            f"- {t.name}: {t.description}\n  arguments: {json.dumps(t.parameters, separators=(',', ':'))}"
            for t in self._tools.values()
        )

    # -- calling --------------------------------------------------------------------------------
    async def call(self, name: str, arguments: dict[str, Any] | None = None) -> Outcome:
        """Run one tool call; never raises (except cancellation). The result text is in ``info["result"]``."""
        t0 = time.perf_counter()
        info: dict[str, Any] = {"tool": name, "arguments": arguments or {}}
        tool_ = self._tools.get(name)
        if tool_ is None:
            known = ", ".join(self._tools) or "none"
            return self._fail(info, t0, f"unknown tool {name!r}; the tools are: {known}")
        if arguments is None:
            arguments = {}
        if not isinstance(arguments, dict):
            return self._fail(info, t0, f"{name}: arguments must be a JSON object, got {type(arguments).__name__}")
        try:
            kwargs = tool_.validate(arguments)
        except ValidationError as e:
            return self._fail(info, t0, f"{name}: invalid arguments: {_validation_text(e)}", name)
        except ValueError as e:
            return self._fail(info, t0, f"{name}: invalid arguments: {e}", name)
        limit = tool_.timeout if tool_.timeout is not None else self.timeout
        try:
            if inspect.iscoroutinefunction(tool_.fn):
                value = await asyncio.wait_for(tool_.fn(**kwargs), limit)
            else:
                # A blocking function runs in a thread; on timeout the thread is abandoned (Python
                # cannot kill it), so long-running work belongs in async tools that can be cancelled.
                value = await asyncio.wait_for(asyncio.to_thread(tool_.fn, **kwargs), limit)
        except TimeoutError:
            return self._fail(info, t0, f"{name}: timed out after {limit:g} s", name)
        except ToolError as e:
            return self._fail(info, t0, f"{name}: {e}", name)
        except Exception as e:  # noqa: BLE001 — a tool's crash is information for the model
            log.debug("tool %s raised", name, exc_info=True)
            return self._fail(info, t0, f"{name} failed: {type(e).__name__}: {e}", name)
        text = self._cut(_as_text(value))
        info.update(result=text, seconds=round(time.perf_counter() - t0, 4))
        self._count(name, t0, error=False)
        return Outcome(ok=True, info=info)

    def call_sync(self, name: str, arguments: dict[str, Any] | None = None) -> Outcome:
        """``call`` from plain (non-async) code."""
        return run_sync(self.call(name, arguments), "registry.call(name, arguments)")

    def _fail(self, info: dict[str, Any], t0: float, message: str, name: str | None = None) -> Outcome:
        message = self._cut(message)
        info.update(result=f"error: {message}", seconds=round(time.perf_counter() - t0, 4))
        if name is not None:
            self._count(name, t0, error=True)
        return Outcome(ok=False, error=message, info=info)

    def _count(self, name: str, t0: float, *, error: bool) -> None:
        s = self.stats.setdefault(name, _Stats())
        s.calls += 1
        s.errors += error
        s.seconds += time.perf_counter() - t0

    def _cut(self, text: str) -> str:
        if len(text) <= self.max_result_chars:
            return text
        return text[: self.max_result_chars] + f"\n… [cut: {len(text) - self.max_result_chars} more characters]"


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, BaseModel):
        return value.model_dump_json()
    return json.dumps(to_jsonable_python(value, fallback=repr), ensure_ascii=False)


def _validation_text(e: ValidationError) -> str:
    parts = []
    for err in e.errors(include_url=False)[:5]:
        where = ".".join(str(p) for p in err["loc"]) or "arguments"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)
