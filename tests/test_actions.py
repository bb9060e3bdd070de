"""The action space, its JSON schemas, and grid <-> pixel grounding."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from pixelpilot.actions import (
    ACTION_TYPES,
    ACTIONS_BY_ENV,
    Click,
    Grid,
    Scroll,
    action_from_dict,
    bounded_string,
    ground,
)
from pixelpilot.actions.schema import KEY_CHAR
from pixelpilot.profiles import action_schema


def test_every_action_round_trips_through_json():
    samples = {
        "click": {"x": 1, "y": 2, "button": "right"},
        "double_click": {"x": 3, "y": 4},
        "triple_click": {"x": 5, "y": 6},
        "move": {"x": 7, "y": 8},
        "drag": {"x": 1, "y": 2, "x2": 3, "y2": 4},
        "scroll": {"x": 500, "y": 500, "dx": 0, "dy": -300},
        "type": {"text": 'héllo "quoted"'},
        "key": {"keys": ["ctrl", "a"]},
        "wait": {"seconds": 0.5},
        "navigate": {"url": "/login"},
        "back": {},
        "long_press": {"x": 1, "y": 1, "seconds": 2},
        "swipe": {"x": 1, "y": 900, "x2": 1, "y2": 100, "seconds": 0.3},
        "system_button": {"button": "home"},
        "open_app": {"name": "Settings"},
        "window": {"op": "move", "window": "Mousepad", "box": [0, 0, 500, 1000]},
        "set_clipboard": {"text": "copied"},
        "tool": {"name": "calculator", "arguments": {"expression": "1+1"}},
        "answer": {"text": "42"},
        "terminate": {"status": "failure"},
    }
    assert set(samples) == set(ACTION_TYPES)
    for kind, fields in samples.items():
        action = action_from_dict({"action": kind, **fields})
        assert action.action == kind
        assert action_from_dict(json.loads(action.model_dump_json())) == action


@pytest.mark.parametrize(
    "bad",
    [
        {"action": "click", "x": 1001, "y": 5},
        {"action": "click", "x": -1, "y": 5},
        {"action": "click", "x": 5},
        {"action": "click", "x": 5, "y": 5, "button": "side"},
        {"action": "key", "keys": []},
        {"action": "scroll", "dy": 5000},
        {"action": "teleport", "x": 1, "y": 1},
        {"action": "type", "text": "x", "extra": 1},
    ],
)
def test_invalid_actions_are_refused(bad):
    with pytest.raises(ValidationError):
        action_from_dict(bad)


@pytest.mark.parametrize("kind", sorted(ACTIONS_BY_ENV))
def test_schema_lists_exactly_the_env_actions_and_is_inline(kind):
    schema = action_schema(kind)
    assert list(schema["properties"]) == ["thought", "action"]  # thought first
    variants = schema["properties"]["action"]["anyOf"]
    assert [v["properties"]["action"]["const"] for v in variants] == list(ACTIONS_BY_ENV[kind])
    text = json.dumps(schema)
    assert "$ref" not in text and "maxLength" not in text
    for v in variants:
        assert v["additionalProperties"] is False
        for name in ("x", "y", "x2", "y2"):
            if name in v["properties"]:
                assert v["properties"][name] == {"type": "integer", "minimum": 0, "maximum": 1000}


def test_schema_adds_one_variant_per_tool():
    schema = action_schema("browser", tools=[("calculator", {"type": "object", "properties": {}})])
    tool = schema["properties"]["action"]["anyOf"][-1]
    assert tool["properties"]["name"] == {"const": "calculator"}


def test_string_patterns_admit_plain_text_only():
    # xgrammar applies a pattern to the string's value and never emits escapes (checked against the
    # real grammar in tests/test_serving_local.py), so the value excludes quotes, backslashes and
    # control characters; short bounds live in the pattern, long ones are checked on parse.
    rx = re.compile(action_schema("browser")["properties"]["thought"]["pattern"])
    assert rx.match("Click 'Sign in', then type: héllo 日本")
    for bad in ['say "hi"', "a\\b", "line\nbreak"]:
        assert not rx.match(bad), bad
    keys = re.compile(bounded_string(32, 1, char=KEY_CHAR)["pattern"])
    assert keys.match("ArrowDown") and not keys.match("") and not keys.match("a" * 33) and not keys.match("a b")


def test_unknown_env_kind_is_named():
    with pytest.raises(ValueError, match="unknown env kind 'tv'"):
        action_schema("tv")


def test_ground_maps_points_and_scroll_amounts():
    px = ground(Click(x=500, y=1000), 1280, 800)
    assert (px["x"], px["y"]) == (640, 799)
    s = ground(Scroll(x=0, y=0, dx=0, dy=500), 1280, 800)
    assert (s["x"], s["y"], s["dy"]) == (0, 0, 400)


def test_grid_999_matches_qwen_mobile_mapping():
    # Qwen's mobile cookbook maps x/999*W.
    assert Grid(999).to_pixel(999, 1080) == 1079
    assert Grid(999).to_pixel(500, 1080) == round(500 / 999 * 1080)


@settings(max_examples=300, deadline=None)
@given(w=st.integers(320, 3840), grid=st.sampled_from([1000, 999]), data=st.data())
def test_pixel_grid_round_trip_error_is_bounded(w, grid, data):
    g = Grid(grid)
    px = data.draw(st.integers(0, w - 1))
    back = g.to_pixel(g.to_grid(px, w), w)
    # One grid step is w/grid pixels; rounding twice costs at most half a step plus one pixel.
    assert abs(back - px) <= w / grid / 2 + 1
    unit = data.draw(st.integers(0, grid))
    again = g.to_grid(g.to_pixel(unit, w), w)
    assert abs(again - unit) <= grid / w + 1
    assert 0 <= g.to_pixel(unit, w) <= w - 1
