"""When an X screen has settled after an action, told by the X server rather than by comparing grabs.

The DAMAGE extension reports every drawing on the screen (the root window and all windows in it).
:class:`DamageWatch` holds a connection of its own with a damage object on the root window at the
"non-empty" level: one event when something was drawn, and again only after the watch has read it.
``DesktopEnv.settle`` asks it to wait until nothing has been drawn for ``settle_interval`` since the
action, or since the last drawing. That ends as soon as the screen is still, instead of on the
next tick of a grab-and-compare loop, and tells whether the action drew anything at all: when it
drew nothing, a grab taken as the settle began is still the look.
"""

from __future__ import annotations

import select
import time
from typing import Any

__all__ = ["DamageWatch"]


class DamageWatch:
    """Drawing on one X display, from the DAMAGE extension, on a connection of its own.

    Not thread-safe: one caller at a time (``DesktopEnv`` marks before an action and waits after it).
    """

    def __init__(self, display: str) -> None:
        """Connect to ``display``. Raises ``RuntimeError`` when the server has no DAMAGE extension."""
        from Xlib.display import Display
        from Xlib.ext import damage

        self._d: Any = Display(display)
        try:
            if not self._d.has_extension("DAMAGE"):
                raise RuntimeError(f"X display {display} has no DAMAGE extension")
            self._d.damage_query_version()  # the protocol asks for it before the first request
            self._damage = self._d.screen().root.damage_create(damage.DamageReportNonEmpty)
            self._event = self._d.extension_event.DamageNotify
            self._d.sync()
        except Exception:
            self._d.close()
            raise

    def mark(self) -> None:
        """An action begins: what was drawn before it no longer counts."""
        self._read()

    def wait_quiet(self, quiet: float, timeout: float) -> tuple[bool, bool]:
        """Block until nothing has been drawn for ``quiet`` seconds, counted from this call and again
        from each drawing, or until ``timeout`` seconds passed.

        Returns (quiet reached, anything drawn since :meth:`mark`); (False, True) when the
        connection broke (the display went away, or :meth:`close` was called meanwhile).
        """
        try:
            drawn = self._read()
            last = time.monotonic()
            deadline = last + timeout
            while True:
                now = time.monotonic()
                if now - last >= quiet:
                    return True, drawn
                if now >= deadline:
                    return False, drawn
                select.select([self._d], [], [], min(last + quiet, deadline) - now)
                if self._read():
                    drawn, last = True, time.monotonic()
        except Exception:
            return False, True  # nothing known: the caller grabs the screen anew

    def _read(self) -> bool:
        """Read the events that arrived; whether one said something was drawn (then re-arm the report)."""
        drawn = False
        while self._d.pending_events():
            drawn |= self._d.next_event().type == self._event
        if drawn:
            self._d.damage_subtract(self._damage)  # empty the damage, so the next drawing reports again
            self._d.flush()
        return drawn

    def close(self) -> None:
        try:
            self._d.close()
        except Exception:
            pass  # the server went first
