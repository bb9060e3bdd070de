"""Notices when an agent is stuck: the same action on an unchanged screen again and again, or
going back and forth between two states.

A state is the screenshot the policy saw (its hash) plus the action it chose. The first time a
pattern shows, the detector asks for a nudge (a note to the policy); if the pattern still holds
``grace`` steps later, it says stop (the episode ends with status ``loop``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

Signal = Literal["ok", "nudge", "stop"]


@dataclass
class LoopDetector:
    """``repeats``: how many identical (screen, action) steps in a row count as a loop;
    ``oscillations``: how many A→B round trips do; ``grace``: steps between the nudge and the stop.
    Actions in ``exempt`` are not counted: waiting on an unchanged screen is what waiting is for
    (the time budget bounds it)."""

    repeats: int = 3
    oscillations: int = 3
    grace: int = 2
    exempt: tuple[str, ...] = ("wait",)
    _states: list[tuple[str, str]] = field(default_factory=list)
    _nudged_at: int | None = None

    def fresh(self) -> LoopDetector:
        """A detector with these settings and nothing seen yet: one per episode."""
        return LoopDetector(self.repeats, self.oscillations, self.grace, self.exempt)

    def see(self, screen_sha256: str, action: dict[str, Any]) -> tuple[Signal, str]:
        """Take one executed step; returns the signal and, unless ok, what the policy is told."""
        if action.get("action") in self.exempt:
            return "ok", ""
        self._states.append((screen_sha256, json.dumps(action, sort_keys=True)))
        message = self._pattern()
        if message is None:
            self._nudged_at = None
            return "ok", ""
        if self._nudged_at is None:
            self._nudged_at = len(self._states)
            return "nudge", f"You seem to be stuck: {message}. Try something different."
        if len(self._states) - self._nudged_at >= self.grace:
            return "stop", message
        return "ok", ""

    def _pattern(self) -> str | None:
        s = self._states
        run = 1
        while run < len(s) and s[-run - 1] == s[-1]:
            run += 1
        if run >= self.repeats:
            return f"the same action on an unchanged screen {run} times in a row"
        span = 2 if len(s) >= 2 and s[-1] != s[-2] else 0
        while span and span < len(s) and s[-span - 1] == s[-span + 1]:
            span += 1
        if span // 2 >= self.oscillations:
            return f"going back and forth between two screens {span // 2} times"
        return None
