"""YAML task files. Errors name the file, the line and the fix."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..actions import Task, var_refs
from .script import ScriptError, compile_step

TOP_KEYS = set(Task.model_fields)


class TaskFileError(ValueError):
    """A task file is malformed. ``str(err)`` is ``FILE:LINE: problem``."""

    def __init__(self, path: str | os.PathLike[str], line: int, problem: str) -> None:
        super().__init__(f"{path}:{line}: {problem}")
        self.path, self.line, self.problem = str(path), line, problem


def load_task_file(path: str | os.PathLike[str]) -> Task:
    """Read a YAML task file into a Task (instruction, url, env, steps …)."""
    import yaml

    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise TaskFileError(path, 0, f"cannot read the file ({e.strerror})") from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = mark.line + 1 if mark else 1
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise TaskFileError(path, line, f"not valid YAML: {problem}") from None
    if not isinstance(data, dict) or root is None:
        raise TaskFileError(path, 1, "a task file is a mapping with at least `instruction:` or `steps:`")

    lines = {k.value: (k.start_mark.line + 1, v) for k, v in root.value}
    for key in data:
        if key not in TOP_KEYS:
            raise TaskFileError(
                path, lines[key][0], f"unknown key {key!r}; expected one of {', '.join(sorted(TOP_KEYS))}"
            )

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
