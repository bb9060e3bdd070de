"""Recorded episodes -> training data in the formats the usual trainers read as they are.

Formats (``export_episodes(..., format=...)``):

- ``qwen``: Qwen3-VL fine-tuning JSONL (``data.jsonl``): ``{"image": [paths], "conversations":
  [{"from": "human", "value": "<image>…"}, {"from": "gpt", "value": …}]}``, one sample per step
  with the last K screenshots and the earlier steps as text.
- ``llamafactory``: the same samples as LLaMA-Factory sharegpt (``data.jsonl`` with
  ``conversations`` and ``images``) plus the ``dataset_info.json`` entry that names them.
- ``hf``: a Parquet dataset (``data/train-*.parquet``) with the images embedded, in TRL's vision
  layout (``messages`` with ``{"type": "image"}`` parts, plus ``images``); load it with
  ``datasets.load_dataset(DIR)``.
- ``grounding``: one sample per pointing action (``grounding.jsonl``): the screenshot, what was
  pointed at where known (a script records the target's text and box), the point on the grid and
  a Qwen-style ``point_2d`` answer.

The assistant turn keeps the recorded output format: a model's raw answer (JSON or Qwen
``<tool_call>``) when it parses back to the recorded action, else the canonical
``{"thought": …, "action": …}`` JSON (scripts record a script line, not model text). Images are
copied as they are, or re-encoded at the size the model saw (``Step.model_image``).
"""

from __future__ import annotations

import io
import json
import os
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..actions import ActionParseError, Grid, parse_output
from .format import Episode, Step
from .recorder import find_episodes, load_episode

ExportFormat = Literal["qwen", "llamafactory", "hf", "grounding"]
FORMATS: tuple[str, ...] = ("qwen", "llamafactory", "hf", "grounding")
AssistantFormat = Literal["recorded", "json", "tool_call"]
IMAGE = "<image>"
#: The actions whose (x, y) is a point on a target (scrolls point at nothing in particular).
POINTING = ("click", "double_click", "triple_click", "move", "long_press", "drag", "swipe")
#: The entry name used in LLaMA-Factory's dataset_info.json.
LLAMAFACTORY_NAME = "pixelpilot"


class ExportError(ValueError):
    """Bad export input (an unknown format, no episodes); the message names the fix."""


@dataclass
class ExportReport:
    """What an export wrote, and which episodes it left out and why."""

    format: str
    out: Path
    samples: int = 0
    steps: int = 0
    images: int = 0
    episodes: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)


# --- choosing episodes ----------------------------------------------------------------------------


def select(
    episode: Episode,
    *,
    statuses: Sequence[str] | None = ("success",),
    min_steps: int | None = None,
    max_steps: int | None = None,
) -> str | None:
    """Why ``episode`` is left out by these filters, or None when it is kept."""
    if statuses is not None and episode.status not in statuses:
        return f"status {episode.status} (kept: {', '.join(statuses)})"
    n = len(episode.steps)
    if min_steps is not None and n < min_steps:
        return f"{n} steps < {min_steps}"
    if max_steps is not None and n > max_steps:
        return f"{n} steps > {max_steps}"
    return None


# --- images -------------------------------------------------------------------------------------


class ImageStore:
    """Writes each screenshot once under ``out/images``, at the size the model saw.

    Screenshots are named by content hash already, so identical screens stay one file; a
    re-encoded copy gets its size in the name.
    """

    def __init__(self, out: Path, *, size: Literal["model", "original"] = "model", write: bool = True) -> None:
        self.out = out
        self.size = size
        self.write = write
        # Keyed by file name, which is the content hash: the same screen in many episodes is one image.
        self._done: dict[tuple[str, tuple[int, int] | None], str] = {}
        if write:
            (out / "images").mkdir(parents=True, exist_ok=True)

    def target_size(self, step: Step) -> tuple[int, int] | None:
        """The size to store, or None to keep the file as it is."""
        if self.size == "original" or step.model_image is None:
            return None
        want = tuple(step.model_image)
        have = (step.observation.get("width"), step.observation.get("height"))
        return None if want == have else (int(want[0]), int(want[1]))

    def path(self, episode: Episode, step: Step) -> str:
        """The stored image's path relative to ``out``."""
        src = Path(episode.path or ".") / step.screenshot
        size = self.target_size(step)
        key = (src.name, size)
        if key in self._done:
            return self._done[key]
        name = src.name if size is None else f"{src.stem}-{size[0]}x{size[1]}.png"
        rel = f"images/{name}"
        dst = self.out / rel
        if self.write and not dst.exists():
            if size is None:
                _link_or_copy(src, dst)
            else:
                dst.write_bytes(_resized_png(src, size))
        self._done[key] = rel
        return rel

    def data(self, episode: Episode, step: Step) -> bytes:
        """The image's PNG bytes (for formats that embed images)."""
        src = Path(episode.path or ".") / step.screenshot
        size = self.target_size(step)
        return src.read_bytes() if size is None else _resized_png(src, size)

    @property
    def count(self) -> int:
        return len(self._done)


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)  # the same bytes: a hard link costs nothing where the filesystem allows it
    except OSError:
        shutil.copyfile(src, dst)


def _resized_png(src: Path, size: tuple[int, int]) -> bytes:
    from PIL import Image

    with Image.open(src) as img:
        buf = io.BytesIO()
        img.convert("RGB").resize(size, Image.Resampling.BICUBIC).save(buf, "PNG")
    return buf.getvalue()


# --- the text of a sample -----------------------------------------------------------------------


def action_json(action: dict[str, Any]) -> str:
    return json.dumps(action, ensure_ascii=False, separators=(", ", ": "))


def history_lines(steps: Sequence[Step]) -> list[str]:
    """The earlier steps as text, one line each: thought, action, and a failure when there was one."""
    lines = []
    for s in steps:
        line = f"{s.index + 1}. "
        if s.thought:
            line += f"{s.thought} -> "
        line += action_json(s.action)
        if not s.outcome.get("ok", True):
            line += f" (failed: {s.outcome.get('error')})"
        lines.append(line)
    return lines


def user_prompt(episode: Episode, step: Step, n_images: int) -> str:
    """The human turn: the images' placeholders first, then the task, the history and the question."""
    history = history_lines(episode.steps[: step.index]) or ["none"]
    shots = "the current screen" if n_images == 1 else f"the last {n_images} screens, oldest first"
    return (
        IMAGE * n_images + "\n"
        f"Task: {episode.task.instruction}\n"
        f"Previous actions:\n" + "\n".join(history) + "\n"
        f"The image{'s' if n_images > 1 else ''} above show{'' if n_images > 1 else 's'} {shots}. "
        f"Coordinates are on a 0-{step.grid} grid. What is the next action?"
    )


def assistant_text(step: Step, mode: AssistantFormat = "recorded") -> str:
    """The assistant turn for a step.

    ``recorded``: the raw model text when it parses back to the recorded action (so JSON and
    ``<tool_call>`` answers stay as the model wrote them), else canonical JSON; ``json``: always
    ``{"thought": …, "action": …}``; ``tool_call``: Qwen's ``<tool_call>`` form where the action has
    one (navigate and back have none and stay JSON).
    """
    if mode == "recorded" and step.raw_output:
        try:
            parsed = parse_output(step.raw_output)
        except ActionParseError:
            parsed = None
        # A full answer (a tool call, or JSON with its thought) as the model wrote it; a bare action
        # (a script's `action:` line) gets the canonical form below, so one dataset has one shape.
        if (
            parsed is not None
            and parsed.action.model_dump(mode="json") == step.action
            and (parsed.format == "tool_call" or parsed.thought)
        ):
            return step.raw_output
    if mode == "tool_call":
        call = to_tool_call(step.action)
        if call is not None:
            thought = f"Thought: {step.thought}\n" if step.thought else ""
            return f"{thought}<tool_call>\n{json.dumps(call, ensure_ascii=False)}\n</tool_call>"
    return json.dumps({"thought": step.thought, "action": step.action}, ensure_ascii=False)


_QWEN_CLICK = {"left": "left_click", "right": "right_click", "middle": "middle_click"}


def to_tool_call(action: dict[str, Any]) -> dict[str, Any] | None:
    """An action as Qwen's ``computer_use``/``mobile_use`` call, the inverse of ``parse_output``.

    None for actions those tools cannot express (navigate, back).
    """
    a = action
    kind = a["action"]
    tool = "computer_use"
    args: dict[str, Any]
    if kind == "click":
        args = {"action": _QWEN_CLICK[a.get("button", "left")], "coordinate": [a["x"], a["y"]]}
    elif kind in ("double_click", "triple_click"):
        args = {"action": kind, "coordinate": [a["x"], a["y"]]}
    elif kind == "move":
        args = {"action": "mouse_move", "coordinate": [a["x"], a["y"]]}
    elif kind == "drag":
        args = {"action": "left_click_drag", "start_coordinate": [a["x"], a["y"]], "coordinate": [a["x2"], a["y2"]]}
    elif kind == "scroll":
        if a.get("dx") and a.get("dy"):
            return None  # one call scrolls along one axis
        args = (
            {"action": "hscroll", "pixels": a["dx"]} if a.get("dx") else {"action": "scroll", "pixels": -a.get("dy", 0)}
        )
        args["coordinate"] = [a.get("x", 500), a.get("y", 500)]
    elif kind in ("type", "answer"):
        args = {"action": kind, "text": a["text"]}
    elif kind == "key":
        args = {"action": "key", "keys": list(a["keys"])}
    elif kind == "wait":
        args = {"action": "wait", "time": a["seconds"]}
    elif kind == "terminate":
        args = {"action": "terminate", "status": a["status"]}
    elif kind == "tool":
        return {"name": a["name"], "arguments": a.get("arguments", {})}
    elif kind in ("long_press", "swipe", "system_button", "open_app"):
        tool = "mobile_use"
        if kind == "long_press":
            args = {"action": "long_press", "coordinate": [a["x"], a["y"]], "time": a["seconds"]}
        elif kind == "swipe":
            args = {"action": "swipe", "coordinate": [a["x"], a["y"]], "coordinate2": [a["x2"], a["y2"]]}
        elif kind == "system_button":
            args = {"action": "system_button", "button": a["button"].capitalize()}
        else:
            args = {"action": "open", "text": a["name"]}
    else:
        return None
    return {"name": tool, "arguments": args}


# --- samples -------------------------------------------------------------------------------------


@dataclass
class Sample:
    """One training sample: the step it teaches, its images (oldest first) and its two turns."""

    episode: Episode
    step: Step
    images: list[Step]
    user: str
    assistant: str


def step_samples(episode: Episode, *, history_images: int = 2, assistant: AssistantFormat = "recorded"):
    """One sample per step of ``episode``: the last ``history_images`` screens and the text history."""
    if history_images < 1:
        raise ExportError(f"history_images must be at least 1, got {history_images}")
    for step in episode.steps:
        shots = episode.steps[max(0, step.index - history_images + 1) : step.index + 1]
        yield Sample(episode, step, shots, user_prompt(episode, step, len(shots)), assistant_text(step, assistant))


def grounding_target(step: Step) -> tuple[str | None, list[float] | None]:
    """What a pointing step aimed at (a script's target text) and that element's box (CSS px), where recorded."""
    target = step.extra.get("target") or {}
    text = target.get("text") if isinstance(target.get("text"), str) and target["text"] else None
    box = target.get("box") if isinstance(target.get("box"), list) and len(target["box"]) == 4 else None
    return text, box


# --- writers --------------------------------------------------------------------------------------


def _write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> int:
    n = 0
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
    return n


def _qwen_rows(episodes: list[Episode], store: ImageStore, **opts: Any):
    for ep in episodes:
        for s in step_samples(ep, **opts):
            yield {
                "id": f"{ep.id}/{s.step.index}",
                "image": [store.path(ep, st) for st in s.images],
                "conversations": [{"from": "human", "value": s.user}, {"from": "gpt", "value": s.assistant}],
            }


def _llamafactory_rows(episodes: list[Episode], store: ImageStore, **opts: Any):
    for row in _qwen_rows(episodes, store, **opts):
        row["images"] = row.pop("image")
        yield row


def _grounding_rows(episodes: list[Episode], store: ImageStore):
    for ep in episodes:
        for step in ep.steps:
            a = step.action
            if a["action"] not in POINTING:
                continue
            text, box = grounding_target(step)
            row: dict[str, Any] = {
                "id": f"{ep.id}/{step.index}",
                "image": store.path(ep, step),
                "action": a["action"],
                "point": [a["x"], a["y"]],
                "grid": step.grid,
                "target": text,
                "bbox": None,
                "thought": step.thought or None,
            }
            if "x2" in a:
                row["point2"] = [a["x2"], a["y2"]]
            if box is not None:
                g, w, h = Grid(step.grid), step.observation["input_width"], step.observation["input_height"]
                left, top, bw, bh = box
                row["bbox"] = [g.to_grid(left, w), g.to_grid(top, h), g.to_grid(left + bw, w), g.to_grid(top + bh, h)]
            if text:
                answer = {"point_2d": row["point"], "label": text}
                row["conversations"] = [
                    {"from": "human", "value": f"{IMAGE}\nPoint to: {text}"},
                    {"from": "gpt", "value": json.dumps(answer, ensure_ascii=False)},
                ]
            yield row


def _hf_features():
    from datasets import Features, Image, List, Value

    part = {"type": Value("string"), "text": Value("string")}
    return Features(
        {
            "id": Value("string"),
            "episode": Value("string"),
            "step": Value("int32"),
            "instruction": Value("string"),
            "status": Value("string"),
            "action": Value("string"),
            "messages": List({"role": Value("string"), "content": List(part)}),
            "images": List(Image()),
        }
    )


def _write_hf(
    episodes: list[Episode], out: Path, store: ImageStore, *, batch: int = 256, **opts: Any
) -> tuple[int, list[Path]]:
    """Parquet written in row groups as samples come, so memory stays bounded by ``batch`` samples."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    features = _hf_features()
    schema = features.arrow_schema  # carries the `huggingface` metadata that makes images decode
    path = out / "data" / "train-00000-of-00001.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    n = 0
    with pq.ParquetWriter(path, schema) as writer:

        def flush() -> None:
            if rows:
                writer.write_table(pa.Table.from_pylist([features.encode_example(r) for r in rows], schema=schema))
                rows.clear()

        for ep in episodes:
            for s in step_samples(ep, **opts):
                text = s.user.replace(IMAGE, "").lstrip("\n")
                rows.append(
                    {
                        "id": f"{ep.id}/{s.step.index}",
                        "episode": ep.id,
                        "step": s.step.index,
                        "instruction": ep.task.instruction,
                        "status": ep.status,
                        "action": action_json(s.step.action),
                        "messages": [
                            {
                                "role": "user",
                                "content": [{"type": "image", "text": None}] * len(s.images)
                                + [{"type": "text", "text": text}],
                            },
                            {"role": "assistant", "content": [{"type": "text", "text": s.assistant}]},
                        ],
                        "images": [{"bytes": store.data(ep, st), "path": None} for st in s.images],
                    }
                )
                n += 1
                if len(rows) >= batch:
                    flush()
        flush()
    return n, [path]


def export_episodes(
    episodes: Iterable[str | os.PathLike[str] | Episode],
    out: str | os.PathLike[str],
    *,
    format: ExportFormat = "qwen",
    statuses: Sequence[str] | None = ("success",),
    min_steps: int | None = None,
    max_steps: int | None = None,
    history_images: int = 2,
    image_size: Literal["model", "original"] = "model",
    assistant: AssistantFormat = "recorded",
) -> ExportReport:
    """Export episodes (folders, folders of episodes, or loaded Episodes) to ``out`` in ``format``.

    ``statuses=None`` keeps every status; ``min_steps``/``max_steps`` filter on episode length.
    """
    if format not in FORMATS:
        raise ExportError(f"unknown export format {format!r}; expected one of {', '.join(FORMATS)}")
    if assistant not in ("recorded", "json", "tool_call"):
        raise ExportError(f"unknown assistant format {assistant!r}; expected recorded, json or tool_call")
    given = list(episodes)
    loaded = [e for e in given if isinstance(e, Episode)]
    loaded += [load_episode(p) for p in find_episodes(e for e in given if not isinstance(e, Episode))]
    if not loaded:
        raise ExportError("no episodes to export; pass episode folders or folders that hold them")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    report = ExportReport(format=format, out=out)
    kept = []
    for ep in loaded:
        why = select(ep, statuses=statuses, min_steps=min_steps, max_steps=max_steps)
        if why is None:
            kept.append(ep)
            report.episodes.append(ep.id)
            report.steps += len(ep.steps)
        else:
            report.skipped[ep.id] = why
    store = ImageStore(out, size=image_size, write=format != "hf")
    opts = {"history_images": history_images, "assistant": assistant}
    if format == "hf":
        report.samples, report.files = _write_hf(kept, out, store, **opts)
        report.images = sum(min(history_images, s.index + 1) for ep in kept for s in ep.steps)
        return report
    if format == "grounding":
        path = out / "grounding.jsonl"
        report.samples = _write_jsonl(path, _grounding_rows(kept, store))
    else:
        rows = _qwen_rows(kept, store, **opts) if format == "qwen" else _llamafactory_rows(kept, store, **opts)
        path = out / "data.jsonl"
        report.samples = _write_jsonl(path, rows)
    report.files = [path]
    if format == "llamafactory":
        info = {
            LLAMAFACTORY_NAME: {
                "file_name": path.name,
                "formatting": "sharegpt",
                "columns": {"messages": "conversations", "images": "images"},
            }
        }
        (out / "dataset_info.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
        report.files.append(out / "dataset_info.json")
    report.images = store.count
    return report
