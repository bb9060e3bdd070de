"""The one rule for calling pixelpilot from plain (non-async) code.

pixelpilot is async first. An entry point people call from scripts has a sync twin named
``<name>_sync`` (``Agent.run_sync``, ``collect_sync``, ``ToolRegistry.call_sync`` …) whose body is
``run_sync(<the coroutine>)``: the coroutine runs in an event loop of its own, and calling a twin
inside a running loop is an error that says to await the async version. A class whose whole API is
used from sync code (the pytest ``pilot``) gets a twin class generated from the async one by
:func:`render_sync_twin` (``scripts/generate_sync.py``; a test checks it is current), so the two
cannot drift apart and both keep their static types. Async resources close with ``aclose()`` and support
``async with``; sync ones close with ``close()``.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run_sync(coro: Coroutine[Any, Any, T], awaitable: str | None = None) -> T:
    """Run ``coro`` to completion in a new event loop; refuse (closing it) inside a running loop.

    ``awaitable`` names what to await instead, for that error (default: the coroutine's name).
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    instead = awaitable or f"{getattr(coro, '__qualname__', 'the async version')}()"
    coro.close()
    raise RuntimeError(f"a sync twin was called inside an event loop; use `await {instead}` there")


def render_sync_twin(async_cls: type, twin: str, base: str, *, header: str = "") -> str:
    """Python source of a class ``twin(base)`` with a blocking method for every public coroutine
    method of ``async_cls`` (except ``aclose``: a sync twin has ``close``), in its order.

    Each method has the async one's parameters, annotations and docstring, and its body hands the
    coroutine to ``self._call``, which runs it where the async object lives. ``scripts/generate_sync.py``
    writes such files and a test checks they are current, so the twins cannot drift (Playwright's way).
    """
    out = [header, f"class {twin}({base}):", f'    """The blocking twin of :class:`{async_cls.__name__}`."""']
    for name, fn in vars(async_cls).items():
        if name.startswith("_") or name == "aclose" or not inspect.iscoroutinefunction(fn):
            continue
        sig = inspect.signature(fn)
        params, args = ["self"], []
        star = False
        for p in list(sig.parameters.values())[1:]:
            if p.kind is p.KEYWORD_ONLY and not star:
                params.append("*")
                star = True
            text = p.name + (f": {_annotation(p.annotation)}" if p.annotation is not p.empty else "")
            if p.default is not p.empty:
                text += f" = {_literal(p.default)}" if p.annotation is not p.empty else f"={_literal(p.default)}"
            params.append(text)
            args.append(p.name if p.kind is p.POSITIONAL_OR_KEYWORD else f"{p.name}={p.name}")
        returns = _annotation(sig.return_annotation) if sig.return_annotation is not sig.empty else "None"
        out += ["", f"    def {name}({', '.join(params)}) -> {returns}:"]
        doc = inspect.getdoc(fn)
        if doc:
            doc_lines = doc.splitlines()
            out.append(f'        """{doc_lines[0]}' + ("" if len(doc_lines) > 1 else '"""'))
            if len(doc_lines) > 1:
                out += [f"        {line}".rstrip() for line in doc_lines[1:]] + ['        """']
        out.append(f"        return self._call(self._async.{name}({', '.join(args)}))")
    return "\n".join(out) + "\n"


def _literal(value: Any) -> str:
    """A default value as source text, strings in double quotes (as the formatter writes them)."""
    if isinstance(value, str) and '"' not in value and "\\" not in value:
        return f'"{value}"'
    return repr(value)


def _annotation(annotation: Any) -> str:
    """An annotation as source text (modules using ``from __future__ import annotations`` keep strings)."""
    return annotation if isinstance(annotation, str) else inspect.formatannotation(annotation)
