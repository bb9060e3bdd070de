"""Task variables: ``vars:`` in a task file and ``${NAME}`` in its steps.

A variable is a literal (``user: alice``) or read from the environment when the task runs
(``password: {env: TODO_PASSWORD, secret: true}``). A task keeps only these specs, never the
values read from the environment, so ``task.json`` cannot leak them; secret values are replaced by
``${NAME}`` wherever an episode is recorded (see ``pixelpilot.trajectories.redact``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

#: ``${NAME}``; ``$${`` escapes a literal ``${``.
VAR_REF = re.compile(r"\$(\$?)\{([A-Za-z_][A-Za-z0-9_]*)\}")


class VarError(ValueError):
    """A variable is undefined, or its environment variable is not set."""


class EnvVar(BaseModel):
    """A variable read from the environment when the task runs."""

    model_config = ConfigDict(extra="forbid")

    env: str = Field(min_length=1, description="The environment variable to read.")
    secret: bool = Field(False, description="Mask the value wherever the episode is recorded.")
    default: str | None = Field(None, description="Used when the environment variable is unset.")


VarSpec = str | int | float | bool | EnvVar


def var_refs(value: Any) -> set[str]:
    """The names ``${NAME}`` refers to anywhere in ``value`` (strings inside dicts and lists too)."""
    if isinstance(value, str):
        return {m.group(2) for m in VAR_REF.finditer(value) if not m.group(1)}
    if isinstance(value, dict):
        return set().union(*(var_refs(v) for v in value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*(var_refs(v) for v in value)) if value else set()
    return set()


def substitute(value: Any, values: Mapping[str, str]) -> Any:
    """``value`` with every ``${NAME}`` replaced (recursively); raises VarError for an unknown name."""
    if isinstance(value, str):

        def repl(m: re.Match[str]) -> str:
            if m.group(1):
                return m.group(0)[1:]
            if m.group(2) not in values:
                raise VarError(f"${{{m.group(2)}}} is not defined; add it under `vars:`")
            return values[m.group(2)]

        return VAR_REF.sub(repl, value)
    if isinstance(value, dict):
        return {k: substitute(v, values) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, values) for v in value]
    return value


def resolve_vars(
    specs: Mapping[str, VarSpec], environ: Mapping[str, str] | None = None
) -> tuple[dict[str, str], dict[str, str]]:
    """Read the variables' values: ``(values, secrets)``, both name → value.

    Raises VarError naming the variable and the environment variable to set.
    """
    environ = os.environ if environ is None else environ
    values: dict[str, str] = {}
    secrets: dict[str, str] = {}
    for name, spec in specs.items():
        if isinstance(spec, EnvVar):
            value = environ.get(spec.env, spec.default)
            if value is None:
                raise VarError(
                    f"vars.{name}: the environment variable {spec.env} is not set; export {spec.env}=… before running"
                )
            if spec.secret:
                secrets[name] = value
        else:
            value = str(spec).lower() if isinstance(spec, bool) else str(spec)
        values[name] = value
    return values, secrets


def secret_values(specs: Mapping[str, VarSpec], environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The secret variables' values that are set (name → value); unset ones are skipped."""
    environ = os.environ if environ is None else environ
    out: dict[str, str] = {}
    for name, spec in specs.items():
        if isinstance(spec, EnvVar) and spec.secret:
            value = environ.get(spec.env, spec.default)
            if value:
                out[name] = value
    return out
