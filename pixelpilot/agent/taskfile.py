"""YAML task files. Errors name the file, the line and the fix."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..actions import Task, var_refs
from .script import ScriptError, compile_step

TOP_KEYS = set(Task.model_fields)
#: A task file is written by hand; one larger than this is not one (and YAML reads it slowly).
MAX_TASK_FILE_BYTES = 1024 * 1024
#: Nodes a YAML task file may stand for once its aliases are followed: a "billion laughs" file of a
#: few hundred bytes stands for 10^9.
MAX_YAML_NODES = 100_000


class TaskFileError(ValueError):
    """A task file is malformed. ``str(err)`` is ``FILE:LINE: problem``."""

    def __init__(self, path: str | os.PathLike[str], line: int, problem: str) -> None:
        super().__init__(f"{path}:{line}: {problem}")
        self.path, self.line, self.problem = str(path), line, problem


def read_task_text(path: str | os.PathLike[str], limit: int = MAX_TASK_FILE_BYTES) -> str:
    """A task file's text: at most ``limit`` bytes of UTF-8 without NUL bytes, else a TaskFileError
    that says which (a binary file, a device that never ends, a file far too large)."""
    try:
        with open(path, "rb") as f:
            data = f.read(limit + 1)
    except OSError as e:
        raise TaskFileError(path, 0, f"cannot read the file ({e.strerror})") from None
    if len(data) > limit:
        raise TaskFileError(path, 0, f"the file is larger than {limit // 1024} KiB, more than a task file holds")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise TaskFileError(path, 1, "UTF-16 text: save the file as UTF-8")
    if (nul := data.find(b"\0")) >= 0:
        line = data.count(b"\n", 0, nul) + 1
        raise TaskFileError(path, line, "the file holds NUL bytes: it is binary, not a text task file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise TaskFileError(path, line, f"not UTF-8 text (byte {data[e.start]:#04x}): a binary file?") from None


def _children(node: Any) -> list[Any]:
    """A YAML node's children: a mapping's keys and values, a sequence's items, a scalar's none."""
    import yaml

    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return list(node.value) if isinstance(node, yaml.SequenceNode) else []


def _expanded_nodes(root: Any, limit: int) -> int | None:
    """How many nodes ``root`` stands for with every alias followed (an alias repeats its anchor's
    whole subtree), counted up to ``limit + 1``; None when an alias contains itself."""
    sizes: dict[int, int] = {}
    path: set[int] = set()  # the nodes being counted, from the root down
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, counted = stack.pop()
        children = _children(node)
        if counted:
            path.discard(id(node))
            sizes[id(node)] = min(limit + 1, 1 + sum(sizes[id(c)] for c in children))
            continue
        if id(node) in sizes:
            continue
        path.add(id(node))
        stack.append((node, True))
        for child in children:
            if id(child) in path:
                return None
            if id(child) not in sizes:
                stack.append((child, False))
    return sizes[id(root)]


def load_task_file(path: str | os.PathLike[str]) -> Task:
    """Read a YAML task file into a Task (instruction, url, env, steps …)."""
    import yaml

    p = Path(path)
    text = read_task_text(path)
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        if root is not None:
            size = _expanded_nodes(root, MAX_YAML_NODES)
            if size is None or size > MAX_YAML_NODES:
                what = "refers to itself" if size is None else f"expands to more than {MAX_YAML_NODES} values"
                raise TaskFileError(path, 1, f"the file's aliases (*name) make it too large: it {what}")
        data = loader.construct_document(root) if root is not None else None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = mark.line + 1 if mark else 1
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise TaskFileError(path, line, f"not valid YAML: {problem}") from None
    except RecursionError:
        raise TaskFileError(path, 1, "the file nests deeper than a task file can") from None
    finally:
        loader.dispose()
    if not isinstance(data, dict) or root is None:
        raise TaskFileError(path, 1, "a task file is a mapping with at least `instruction:` or `steps:`")

    lines = {k.value: (k.start_mark.line + 1, v) for k, v in root.value}
    for key in data:
        if key not in TOP_KEYS:
            line = lines.get(str(key), (1, None))[0]
            raise TaskFileError(path, line, f"unknown key {key!r}; expected one of {', '.join(sorted(TOP_KEYS))}")

    declared = data.get("vars") or {}
    if not isinstance(declared, dict):
        raise TaskFileError(
            path,
            lines["vars"][0],
            "`vars:` must be a mapping like `user: alice` or `password: {env: TODO_PASSWORD, secret: true}`",
        )
    steps = data.get("steps")
    if steps is not None:
        line, node = lines["steps"]
        if not isinstance(steps, list):
            raise TaskFileError(path, line, "`steps:` must be a list of steps like `- click: Sign in`")
        for step, step_node in zip(steps, node.value, strict=False):
            line = step_node.start_mark.line + 1
            try:
                compile_step(step)
            except ScriptError as e:
                raise TaskFileError(path, line, str(e)) from None
            undeclared = sorted(var_refs(step) - declared.keys())
            if undeclared:
                raise TaskFileError(path, line, f"${{{undeclared[0]}}} is not defined; add it under `vars:`")

    data.setdefault("instruction", data.get("name") or p.stem)
    try:
        return Task.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        key = str(err["loc"][0]) if err["loc"] else ""
        line = lines.get(key, (1, None))[0]
        where = ".".join(str(p) for p in err["loc"][:2]) if key == "vars" else key
        if key == "vars" and len(err["loc"]) > 1:
            # point at the variable itself, and say what a variable may be
            line = next((k.start_mark.line + 1 for k, _ in lines["vars"][1].value if k.value == err["loc"][1]), line)
            raise TaskFileError(
                path, line, f"{where}: a variable is a value (`user: alice`) or `{{env: NAME, secret: true}}`"
            ) from None
        raise TaskFileError(path, line, f"{where or 'task'}: {err['msg']}") from None


def task_to_yaml(task: Task) -> str:
    """A task as YAML text (for writing examples and fixtures)."""
    import yaml

    data: dict[str, Any] = task.model_dump(exclude_defaults=True)
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
