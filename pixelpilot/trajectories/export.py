"""Recorded episodes -> training data, each sample the request the model was (or would be) sent.

Every sample is built with the run-time prompt builder of the episode's model profile
(:mod:`pixelpilot.profiles`): the same system prompt, history turns, image placement and image
sizes that ``ModelPolicy`` sent at that step (rebuilt from ``step.extra["prompt"]``), and as
target the model's own answer when it is in the profile's format and decodes to the recorded
action, else the exact text the profile's encoder writes for the action. A scripted step gets the
sample a model with the default profile would have been given. The model's raw output is never
re-serialized.

Formats (``export_episodes(..., format=...)``):

- ``qwen``: Qwen3-VL fine-tuning JSONL (``data.jsonl``): ``{"image": [paths], "conversations":
  [{"from": "human", "value": "<image>…"}, {"from": "gpt", "value": …}, …], "system": …}``, one
  row per step, its history turns included. Qwen's loader reads no system turn: see docs/models.md
  for the two lines that make it read ``system``.
- ``llamafactory``: LLaMA-Factory sharegpt (``data.jsonl`` with ``conversations``, ``system`` and
  ``images``) plus the ``dataset_info.json`` entry that names them.
- ``hf``: a Parquet dataset (``data/train-*.parquet``) with the images embedded, in TRL's vision
  layout (``messages`` with ``{"type": "image"}`` parts, ``images``); ``datasets.load_dataset(DIR)``.
- ``grounding``: one sample per pointing step (``grounding.jsonl``): the screenshot, the element
  acted on (``step.extra["target"]``: its text and box) as the profile's ``point_2d``/``bbox_2d``.

A step whose request or answer a format cannot carry exactly (a drag that does not start at the
pointer in Qwen's format, a text with edge whitespace for Qwen's loader, …) is left out and
counted in ``ExportReport.left_out`` with the reason.
"""

from __future__ import annotations

import json
import os
import shutil
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Literal

from ..actions import png_size
from ..profiles import (
    DEFAULT_PROFILE,
    EncodeError,
    ImageRef,
    SampleError,
    Setup,
    get_profile,
    to_qwen,
    to_sharegpt,
    to_trl,
)
from ..profiles.conversation import IMAGE_TOKEN
from ..serving.images import resize_png
from .format import Episode, Step
from .recorder import load_episodes
from .samples import StepPrompt, step_prompt, target_text

ExportFormat = Literal["qwen", "llamafactory", "hf", "grounding"]
FORMATS: tuple[str, ...] = ("qwen", "llamafactory", "hf", "grounding")
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
    #: Steps left out (``episode/step`` -> why): the format cannot carry their sample exactly.
    left_out: dict[str, str] = field(default_factory=dict)
    #: Episodes that could not be read, or whose data broke a sample (folder -> the file and the
    #: problem, in one line): none of their samples are written.
    unreadable: dict[str, str] = field(default_factory=dict)
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


#: Embedded images kept in memory between samples: more than a history shows at once.
RECENT_IMAGES = 32


class ImageStore:
    """Writes each screenshot once under ``out/images``, at the size the model is sent it.

    Screenshots are named by content hash already, so identical screens stay one file; a
    re-encoded copy gets its size in the name.
    """

    def __init__(self, out: Path, *, size: Literal["model", "original"] = "model", write: bool = True) -> None:
        self.out = out
        self.size = size
        self.write = write
        self._done: dict[tuple[str, tuple[int, int] | None], str] = {}
        self._sizes: dict[Path, tuple[int, int]] = {}  # a screenshot's size, read once from its header
        # The bytes of recent images: consecutive samples show the same history screenshots again.
        self._recent: OrderedDict[tuple[Path, tuple[int, int] | None], bytes] = OrderedDict()
        if write:
            (out / "images").mkdir(parents=True, exist_ok=True)

    def _source(self, episode: Episode, image: ImageRef) -> tuple[Path, tuple[int, int] | None]:
        """The screenshot file and the size to store it at (None: as it is)."""
        src = Path(episode.path or ".") / "screenshots" / f"{image.key}.png"
        if self.size == "original":
            return src, None
        if src not in self._sizes:
            with open(src, "rb") as f:
                self._sizes[src] = png_size(f.read(32))
        return src, None if self._sizes[src] == (image.width, image.height) else (image.width, image.height)

    def path(self, episode: Episode, image: ImageRef) -> str:
        """The stored image's path relative to ``out``."""
        src, size = self._source(episode, image)
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

    def data(self, episode: Episode, image: ImageRef) -> bytes:
        """The image's PNG bytes (for formats that embed images); read, and resized, once while recent."""
        src, size = self._source(episode, image)
        self._done[(src.name, size)] = src.name
        key = (src, size)
        if key in self._recent:
            self._recent.move_to_end(key)
            return self._recent[key]
        data = self._recent[key] = src.read_bytes() if size is None else _resized_png(src, size)
        if len(self._recent) > RECENT_IMAGES:
            self._recent.popitem(last=False)
        return data

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
        return resize_png(img, size, compress_level=3)


# --- samples -------------------------------------------------------------------------------------


@dataclass
class Sample:
    """One training sample: the step it teaches, the request it was sent, and the answer it teaches."""

    episode: Episode
    step: Step
    prompt: StepPrompt
    target: str


def step_samples(episode: Episode, default: Setup, report: ExportReport | None = None) -> Iterator[Sample]:
    """One sample per step of ``episode`` (``default``: the setup for steps no model recorded one for).

    A step whose answer the profile cannot write is left out (and noted in ``report``).
    """
    for step in episode.steps:
        prompt = step_prompt(episode, step, default)
        try:
            target = target_text(step, prompt.profile, prompt.ctx)
        except EncodeError as e:
            if report is not None:
                report.left_out[f"{episode.id}/{step.index}"] = str(e)
            continue
        yield Sample(episode, step, prompt, target)


def grounding_target(step: Step) -> tuple[str | None, list[float] | None]:
    """The element a step acted on (``step.extra["target"]``): its text, and its box in input-space pixels."""
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


#: What bad data in an episode raises while its samples are built (a screenshot that is not a PNG,
#: a recorded setup that is not one): the episode is left out, the export goes on.
_BAD_DATA = (OSError, ValueError, KeyError, TypeError, IndexError)


def _by_episode(
    episodes: list[Episode], report: ExportReport, rows_of: Callable[[Episode], Iterator[dict[str, Any]]]
) -> Iterator[dict[str, Any]]:
    """Each episode's rows, all or none: an episode whose data breaks a sample is named in
    ``report.unreadable`` and none of its rows are written."""
    for ep in episodes:
        try:
            rows = list(rows_of(ep))
        except _BAD_DATA as e:
            problem = str(e).splitlines()[0] if str(e) else ""
            report.unreadable[str(ep.path)] = f"{ep.path}: {type(e).__name__}: {problem}".rstrip(": ")
            report.episodes.remove(ep.id)
            report.steps -= len(ep.steps)
            for key in [k for k in report.left_out if k.startswith(f"{ep.id}/")]:
                del report.left_out[key]
            continue
        yield from rows


def _chat_rows(
    ep: Episode, store: ImageStore, default: Setup, report: ExportReport, format: str
) -> Iterator[dict[str, Any]]:
    render = to_qwen if format == "qwen" else to_sharegpt
    for s in step_samples(ep, default, report):
        try:
            row = render(s.prompt.messages, s.target, partial(store.path, ep))
        except SampleError as e:
            report.left_out[f"{ep.id}/{s.step.index}"] = str(e)
            continue
        yield {"id": f"{ep.id}/{s.step.index}", **row}


def _grounding_rows(ep: Episode, store: ImageStore, default: Setup) -> Iterator[dict[str, Any]]:
    for step in ep.steps:
        a = step.action
        if a["action"] not in POINTING:
            continue
        prompt = step_prompt(ep, step, default)
        image = prompt.images[-1]
        sx, sy = prompt.profile.point_space(prompt.setup, (image.width, image.height))
        w, h = int(step.observation["input_width"]), int(step.observation["input_height"])
        text, box = grounding_target(step)
        bbox = None
        if box is not None:  # the element acted on; its centre is the point
            left, top, bw, bh = box
            bbox = [_to(left, w, sx), _to(top, h, sy), _to(left + bw, w, sx), _to(top + bh, h, sy)]
            point = [_to(left + bw / 2, w, sx), _to(top + bh / 2, h, sy)]
        else:
            point = [round(a["x"] * sx / step.grid), round(a["y"] * sy / step.grid)]
        row: dict[str, Any] = {
            "id": f"{ep.id}/{step.index}",
            "image": store.path(ep, image),
            "profile": prompt.profile.name,
            "action": a["action"],
            "target": text,
            "point_2d": point,
            "bbox_2d": bbox,
            "thought": step.thought or None,
        }
        if text:
            found = {**({"bbox_2d": bbox} if bbox else {}), "point_2d": point, "label": text}
            row["conversations"] = [
                {"from": "human", "value": f"{IMAGE_TOKEN}Locate {text!r} on the screen. Answer in JSON."},
                {"from": "gpt", "value": json.dumps([found], ensure_ascii=False)},
            ]
        yield row


def _to(px: float, extent: int, scale: int) -> int:
    """An input-space pixel coordinate on a 0..scale axis."""
    return min(max(round(px * scale / extent), 0), scale)


def _hf_features() -> Any:
    from datasets import Features, Image, List, Value

    part = {"type": Value("string"), "text": Value("string")}
    return Features(
        {
            "id": Value("string"),
            "episode": Value("string"),
            "step": Value("int32"),
            "instruction": Value("string"),
            "status": Value("string"),
            "profile": Value("string"),
            "action": Value("string"),
            "messages": List({"role": Value("string"), "content": List(part)}),
            "images": List(Image()),
        }
    )


def _write_hf(
    episodes: list[Episode], out: Path, store: ImageStore, default: Setup, report: ExportReport, *, batch: int = 256
) -> tuple[int, int, list[Path]]:
    """Parquet written in row groups as samples come, so memory stays bounded by ``batch`` samples."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    features = _hf_features()
    schema = features.arrow_schema  # carries the `huggingface` metadata that makes images decode
    path = out / "data" / "train-00000-of-00001.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    n = images = 0
    with pq.ParquetWriter(path, schema) as writer:

        def flush() -> None:
            if rows:
                writer.write_table(pa.Table.from_pylist([features.encode_example(r) for r in rows], schema=schema))
                rows.clear()

        def rows_of(ep: Episode) -> Iterator[dict[str, Any]]:
            for s in step_samples(ep, default, report):
                yield {
                    "id": f"{ep.id}/{s.step.index}",
                    "episode": ep.id,
                    "step": s.step.index,
                    "instruction": ep.task.instruction,
                    "status": ep.status,
                    "profile": s.prompt.profile.name,
                    "action": json.dumps(s.step.action, ensure_ascii=False),
                    "messages": to_trl(s.prompt.messages, s.target),
                    "images": [{"bytes": store.data(ep, img), "path": None} for img in s.prompt.images],
                }

        for row in _by_episode(episodes, report, rows_of):
            rows.append(row)
            n += 1
            images += len(row["images"])
            if len(rows) >= batch:
                flush()
        flush()
    return n, images, [path]


def export_episodes(
    episodes: Iterable[str | os.PathLike[str] | Episode],
    out: str | os.PathLike[str],
    *,
    format: ExportFormat = "qwen",
    statuses: Sequence[str] | None = ("success",),
    min_steps: int | None = None,
    max_steps: int | None = None,
    profile: str = DEFAULT_PROFILE,
    history_images: int | None = None,
    actions: Sequence[str] | None = None,
    image_size: Literal["model", "original"] = "model",
) -> ExportReport:
    """Export episodes (folders, folders of episodes, or loaded Episodes) to ``out`` in ``format``.

    ``statuses=None`` keeps every status; ``min_steps``/``max_steps`` filter on episode length.
    Steps a model decided are exported with the profile and setup it recorded; ``profile`` (and
    ``history_images``, the screenshots kept in the history, and ``actions``, the actions offered:
    a suite's ``actions`` when its tasks offer fewer than all) apply to the other steps.
    """
    if format not in FORMATS:
        raise ExportError(f"unknown export format {format!r}; expected one of {', '.join(FORMATS)}")
    try:  # a bad profile or action name fails before any episode is read
        chosen = get_profile(profile)
        default = chosen.setup(
            "browser", keep_images=history_images, actions=tuple(actions) if actions is not None else None
        )
    except ValueError as e:
        raise ExportError(str(e)) from None
    given = list(episodes)
    loaded = [e for e in given if isinstance(e, Episode)]
    read = load_episodes(e for e in given if not isinstance(e, Episode))
    loaded += read.episodes
    if not loaded:
        unreadable = (
            f"; {len(read.skipped)} could not be read: {next(iter(read.skipped.values()))}" if read.skipped else ""
        )
        raise ExportError(f"no episodes to export; pass episode folders or folders that hold them{unreadable}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    report = ExportReport(format=format, out=out, unreadable=dict(read.skipped))
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
    if format == "hf":
        report.samples, report.images, report.files = _write_hf(kept, out, store, default, report)
        return report
    if format == "grounding":
        path = out / "grounding.jsonl"
        report.samples = _write_jsonl(
            path, _by_episode(kept, report, partial(_grounding_rows, store=store, default=default))
        )
    else:
        path = out / "data.jsonl"
        rows = partial(_chat_rows, store=store, default=default, report=report, format=format)
        report.samples = _write_jsonl(path, _by_episode(kept, report, rows))
    report.files = [path]
    if format == "llamafactory":
        info = {
            LLAMAFACTORY_NAME: {
                "file_name": path.name,
                "formatting": "sharegpt",
                "columns": {"messages": "conversations", "system": "system", "images": "images"},
            }
        }
        (out / "dataset_info.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
        report.files.append(out / "dataset_info.json")
    report.images = store.count
    return report
