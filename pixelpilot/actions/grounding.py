"""Normalized grid <-> input-space pixels.

Qwen3-VL answers on a 0..1000 grid (its mobile cookbook declares 999). ``px = round(x * W / N)``
clamped to ``[0, W - 1]``, where W is the width of the environment's *input* space (CSS pixels in
a browser, screen pixels on a desktop, physical pixels on a phone) and N the grid size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from .models import GRID_MAX

#: The fields of an action that are points, as (x, y) pairs.
POINT_FIELDS = (("x", "y"), ("x2", "y2"))
#: The fields that are amounts along an axis (scroll deltas), as (dx, dy).
DELTA_FIELDS = ("dx", "dy")
#: The fields that are rectangles, as [x1, y1, x2, y2] (a window's new place).
BOX_FIELDS = ("box",)


@dataclass(frozen=True)
class Grid:
    """A normalized coordinate grid of ``size`` units per axis (1000 for Qwen3-VL, 999 for its mobile prompt)."""

    size: int = GRID_MAX

    def __post_init__(self) -> None:
        if not 1 <= self.size <= GRID_MAX:
            raise ValueError(f"grid size must be between 1 and {GRID_MAX}, got {self.size}")

    def to_pixel(self, v: float, extent: int) -> int:
        """One normalized coordinate to a pixel index in ``[0, extent - 1]``."""
        if extent <= 0:
            raise ValueError(f"input extent must be positive, got {extent}")
        return min(max(round(v * extent / self.size), 0), extent - 1)

    def to_grid(self, px: float, extent: int) -> int:
        """One pixel coordinate to the nearest grid unit in ``[0, size]``."""
        if extent <= 0:
            raise ValueError(f"input extent must be positive, got {extent}")
        return min(max(round(px * self.size / extent), 0), self.size)

    def point_to_pixels(self, x: float, y: float, width: int, height: int) -> tuple[int, int]:
        return self.to_pixel(x, width), self.to_pixel(y, height)

    def point_to_grid(self, px: float, py: float, width: int, height: int) -> tuple[int, int]:
        return self.to_grid(px, width), self.to_grid(py, height)

    def delta_to_pixels(self, d: float, extent: int) -> int:
        """A scroll amount in grid units (size = one screen) to pixels; not clamped."""
        return round(d * extent / self.size)


DEFAULT_GRID = Grid()


def ground(action: BaseModel, width: int, height: int, grid: Grid = DEFAULT_GRID) -> dict[str, Any]:
    """The action as a dict with its points and scroll amounts in input-space pixels.

    Actions without coordinates come back unchanged (as dicts). The result is what the
    environment executes and what the trajectory records as the pixel action.
    """
    data = action.model_dump(mode="json")
    for fx, fy in POINT_FIELDS:
        if fx in data:
            data[fx], data[fy] = grid.point_to_pixels(data[fx], data[fy], width, height)
    if "dx" in data:
        data["dx"] = grid.delta_to_pixels(data["dx"], width)
        data["dy"] = grid.delta_to_pixels(data["dy"], height)
    for f in BOX_FIELDS:
        if data.get(f) is not None:
            # Edges, not pixels: 1000 is the screen's far edge (W), not its last pixel (W - 1).
            x1, y1, x2, y2 = data[f]
            data[f] = [
                min(max(grid.delta_to_pixels(v, extent), 0), extent)
                for v, extent in ((x1, width), (y1, height), (x2, width), (y2, height))
            ]
    return data
