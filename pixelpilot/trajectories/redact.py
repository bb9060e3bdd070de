"""Secrets never reach disk: every string an episode records passes through one Redactor.

The writer redacts each Step, ``task.json`` and ``episode.json`` as they are written, so whatever
path a secret took (a typed action, the model's raw output, a locator's target, a failure message)
it lands as ``${NAME}``. Screenshots are pixels and are not touched: type secrets into password
fields, which the page masks.
"""

from __future__ import annotations

from typing import Any


class Redactor:
    """Replaces secret values by placeholders in JSON-like data (strings, dicts, lists; tuples become lists).

    ``parent`` is consulted too (at call time), so secrets added to a recorder-wide redactor
    after an episode started are still masked in it.
    """

    def __init__(self, secrets: dict[str, str] | None = None, *, parent: Redactor | None = None) -> None:
        self._secrets: dict[str, str] = {}  # value -> placeholder
        self.parent = parent
        for name, value in (secrets or {}).items():
            self.add(name, value)

    def add(self, name: str, value: str) -> None:
        """Mask ``value`` as ``${name}`` from now on (empty values are ignored: they match everywhere)."""
        if value:
            self._secrets[value] = f"${{{name}}}"

    def _pairs(self) -> list[tuple[str, str]]:
        pairs = dict(self.parent._pairs()) if self.parent else {}
        pairs.update(self._secrets)
        # Longest first, so a secret that contains another is masked whole.
        return sorted(pairs.items(), key=lambda kv: -len(kv[0]))

    def __bool__(self) -> bool:
        return bool(self._secrets) or bool(self.parent)

    def redact(self, value: Any) -> Any:
        """``value`` with every secret replaced (recursively; other types pass through)."""
        pairs = self._pairs()
        return _apply(value, pairs) if pairs else value


def _apply(value: Any, pairs: list[tuple[str, str]]) -> Any:
    if isinstance(value, str):
        for secret, placeholder in pairs:
            if secret in value:
                value = value.replace(secret, placeholder)
        return value
    if isinstance(value, dict):
        return {_apply(k, pairs): _apply(v, pairs) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_apply(v, pairs) for v in value]
    return value
