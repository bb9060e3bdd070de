"""The conversation a model sees at each step.

Layout (OpenAI chat messages)::

    system     the action space, the 0–N grid, the answer format
    user       the task; step 0: url, title, screenshot
    assistant  the model's answer at step 0, verbatim
    user       what step 0 did (ok / error, events, tool results); step 1: url, title, screenshot
    assistant  …

Each request is the previous request plus its answer plus one new user turn, so consecutive
requests share their whole prefix and the server's radix cache reuses it. Screenshots are kept for
the last ``keep_images`` steps at least; older ones are replaced by a short text note, but in
blocks of ``drop_block`` at once (so between 3 and 3+10-1 images with the defaults): the prefix
breaks once per block instead of at every step, as a naive sliding window would. The block of 10
is what bench/prefix_reuse.py needs for a mean prefix share of 0.8 at K=3 (5 gives 0.72, a
sliding window 0.30); the price is up to 12 screenshots (~12k tokens at 1280×800) in context.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from ..actions import ACTION_TYPES, ACTIONS_BY_ENV, DEFAULT_GRID, Grid, Observation, Task
from ..serving.images import ModelImage
from ..trajectories import Step

Mode = Literal["json_schema", "tool_call"]
#: Screenshots dropped together (see the module's docstring).
DROP_BLOCK = 10


def _describe(name: str) -> str:
    """``- click(x, y, button): Click at a point; …`` from the action model and its docstring."""
    model = ACTION_TYPES[name]
    args = ", ".join(f for f in model.model_fields if f != "action")
    doc = model.__doc__.strip().splitlines()[0].replace("``", "") if model.__doc__ else ""
    return f"- {name}({args}){': ' + doc if doc else ''}"


def system_prompt(
    kind: str,
    mode: Mode,
    *,
    grid: Grid = DEFAULT_GRID,
    actions: Sequence[str] | None = None,
    tools: Sequence[tuple[str, dict[str, Any]]] = (),
) -> str:
    """The system prompt: role, grid, action space and answer format for one env kind."""
    n = grid.size
    actions = list(actions if actions is not None else ACTIONS_BY_ENV[kind])
    where = {"browser": "a web browser", "desktop": "a desktop computer", "mobile": "a phone"}[kind]
    head = (
        f"You operate {where} to complete the user's task, one action per turn, by looking at "
        f"screenshots.\nCoordinates are integers on a 0-{n} grid: (0,0) is the top-left corner of "
        f"the screenshot and ({n},{n}) the bottom-right, whatever its size in pixels. Scroll "
        f"amounts use the same units: {n} is one screen; dy > 0 scrolls down.\n"
    )
    if mode == "tool_call":
        return head + _tool_call_section(kind, n, tools)
    lines = [_describe(a) for a in actions if a != "tool"]
    for name, params in tools:
        lines.append(f"- tool(name={name!r}, arguments): arguments follow {json.dumps(params)}")
    return (
        head + "Actions:\n" + "\n".join(lines) + "\n"
        'Answer with one JSON object: {"thought": "<one short sentence>", "action": {"action": "<name>", ...}}. '
        "Finish with answer(text) when the task asks for information, else terminate(status)."
    )


def _tool_call_section(kind: str, n: int, tools: Sequence[tuple[str, dict[str, Any]]]) -> str:
    """Qwen3-VL's own function-calling format with its computer_use / mobile_use tool."""
    functions = [qwen_function(kind, n)] + [
        {"type": "function", "function": {"name": name, "description": f"The {name} tool.", "parameters": params}}
        for name, params in tools
    ]
    return (
        "\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
        "You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n"
        + "\n".join(json.dumps(f) for f in functions)
        + "\n</tools>\n\n"
        "For each function call, return a json object with function name and arguments within "
        "<tool_call></tool_call> XML tags:\n<tool_call>\n"
        '{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>\n'
        "Write one line starting with 'Thought:' before the call."
    )


def qwen_function(kind: str, n: int = 1000) -> dict[str, Any]:
    """The ``computer_use`` (browser, desktop) or ``mobile_use`` function as Qwen3-VL's cookbooks declare it."""
    coord = {"description": f"(x, y) on the {n}x{n} screen grid", "type": "array"}
    if kind == "mobile":
        name, actions = (
            "mobile_use",
            ["key", "click", "long_press", "swipe", "type", "system_button", "open", "wait", "answer", "terminate"],
        )
        props: dict[str, Any] = {
            "coordinate": coord,
            "coordinate2": {**coord, "description": "swipe end point"},
            "text": {"type": "string"},
            "time": {"type": "number"},
            "button": {"type": "string", "enum": ["Back", "Home", "Menu", "Enter"]},
            "status": {"type": "string", "enum": ["success", "failure"]},
        }
        desc = f"Use a touchscreen to interact with a mobile device. The screen's resolution is {n}x{n}."
    else:
        name, actions = (
            "computer_use",
            [
                "key",
                "type",
                "mouse_move",
                "left_click",
                "left_click_drag",
                "right_click",
                "middle_click",
                "double_click",
                "triple_click",
                "scroll",
                "hscroll",
                "wait",
                "terminate",
                "answer",
            ],
        )
        props = {
            "keys": {"type": "array"},
            "text": {"type": "string"},
            "coordinate": coord,
            "pixels": {"type": "number", "description": "scroll amount; positive scrolls up"},
            "time": {"type": "number"},
            "status": {"type": "string", "enum": ["success", "failure"]},
        }
        desc = f"Use a mouse and keyboard to interact with a computer. The screen's resolution is {n}x{n}."
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": desc,
            "parameters": {
                "type": "object",
                "required": ["action"],
                "properties": {"action": {"type": "string", "enum": actions}, **props},
            },
        },
    }


@dataclass
class PromptBuilder:
    """Builds the messages for a step from the task, the recorded history and the current screen.

    ``images`` maps a screenshot's ``screenshot_key`` to the resized image the model was shown for
    it (the policy fills it as it goes); a past step whose image is unknown is described in text only.
    """

    kind: str = "browser"
    mode: Mode = "json_schema"
    keep_images: int = 3
    drop_block: int = DROP_BLOCK
    grid: Grid = DEFAULT_GRID
    actions: Sequence[str] | None = None
    tools: Sequence[tuple[str, dict[str, Any]]] = ()
    images: dict[str, ModelImage] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.keep_images < 1 or self.drop_block < 1:
            raise ValueError("keep_images and drop_block must be at least 1")

    def first_image_step(self, n_observations: int) -> int:
        """The first step that still shows its screenshot when ``n_observations`` have been seen."""
        over = max(0, n_observations - self.keep_images)
        return (over // self.drop_block) * self.drop_block

    def messages(
        self, task: Task, history: Sequence[Step], current: tuple[Observation, ModelImage], notes: Sequence[str] = ()
    ) -> list[dict[str, Any]]:
        obs, image = current
        first = self.first_image_step(len(history) + 1)
        out: list[dict[str, Any]] = [
            {
                "role": "system",
                "content": system_prompt(self.kind, self.mode, grid=self.grid, actions=self.actions, tools=self.tools),
            },
        ]
        intro = f"Task: {task.instruction}\n"
        for step in history:
            key = step.screenshot.rsplit("/", 1)[-1].removesuffix(".png")
            shown = self.images.get(key) if step.index >= first else None
            out.append(_user(intro + _observation_text(step.index, step.observation), shown))
            out.append({"role": "assistant", "content": self._answer_text(step)})
            intro = _outcome_text(step)
        text = intro + "".join(f"{n}\n" for n in notes) + _observation_text(len(history), obs.meta())
        out.append(_user(text, image))
        return out

    def _answer_text(self, step: Step) -> str:
        """The step's answer as the model gave it (verbatim, so the prefix matches what it saw)."""
        if step.raw_output is not None and "model" in step.extra:  # a ModelPolicy step
            return step.raw_output
        return json.dumps({"thought": step.thought, "action": step.action}, ensure_ascii=False, separators=(",", ":"))


def screenshot_key(obs: Observation) -> str:
    """The key of a screenshot: the recorder's file name for it (``screenshots/<key>.png``)."""
    return obs.sha256[:24]


def _observation_text(index: int, meta: dict[str, Any]) -> str:
    parts = [f"Step {index}."]
    if meta.get("url"):
        parts.append(f"URL: {meta['url']}")
    if meta.get("title"):
        parts.append(f"Title: {meta['title']}")
    for event in meta.get("events") or []:
        parts.append(f"Event: {event}")
    if meta.get("text"):
        parts.append(str(meta["text"]))
    return "\n".join(parts)


def _outcome_text(step: Step) -> str:
    outcome = step.outcome or {}
    if outcome.get("ok", True):
        return "Result: ok.\n"
    return f"Result: error: {outcome.get('error')}\n"


def _user(text: str, image: ModelImage | None) -> dict[str, Any]:
    if image is None:
        return {"role": "user", "content": text + "\n(screenshot no longer shown)"}
    return {
        "role": "user",
        "content": [
            {"type": "text", "text": text},
            {"type": "image_url", "image_url": {"url": image.data_url()}},
        ],
    }
