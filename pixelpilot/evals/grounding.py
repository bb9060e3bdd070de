"""The grounding eval: does the model point at the element an instruction names?

Each sample is a screenshot, an instruction and the element's box. The policy sees the image as a
one-step episode (a :class:`~pixelpilot.agent.ModelPolicy` offered only ``click``, in the chosen
profile) and answers a point on its grid; the point is mapped to image pixels and counts as a hit
when it lies inside the box, edges included. Accuracy comes overall and by source, element type
and image size, in the results schema every suite shares (one task of one trial per sample).

Two inputs:

- a pixelpilot ``grounding`` export (``pixelpilot export … -f grounding``): its folder or its
  ``grounding.jsonl``. The instruction is the element's text (``Click "Add".``), the box is
  ``bbox_2d`` on the row's profile's scale (``0..1000`` for ``qwen3-vl``), the source is the
  export's folder name and the element type ``text`` (the rows name their elements by text); rows
  without a box or a text have no element to hit and are left out.
- ScreenSpot-style annotations: a JSON list (or JSONL) of ``img_filename``, ``instruction``,
  ``bbox``, ``data_type``/``ui_type`` (text or icon) and ``data_source``/``platform``, or a folder
  of such files. The box is in image pixels: ``[x, y, width, height]`` in ScreenSpot and
  ScreenSpot-v2 (SeeClick's ``screenspot_test.py`` and the ScreenSpot-v2 loaders add width and
  height to the corner; SeeClick issue #50), ``[x1, y1, x2, y2]`` in ScreenSpot-Pro, whose rows
  carry ``img_size`` (its ``eval_screenspot_pro.py``). ``bbox_format`` overrides that guess; a box
  whose numbers are all at most 1 is read as fractions of the image. Images are looked up under
  ``images``, else beside the file and in the folders those releases unpack to.

ScreenSpot's own scripts compare the unrounded point with the box, edges included; so does this
eval (the point is ``x * W / N`` for grid size N, not the pixel a click would round it to).
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

from .._sync import run_sync
from ..actions import DEFAULT_GRID, Observation, Task
from ..actions.task import EnvKind
from ..agent.policy import ModelError, Policy, StepContext
from ..envs.base import Env
from .results import Group, Results, RunInfo, TaskResult, Trial, group

log = logging.getLogger(__name__)

#: The name the results carry (``pixelpilot eval grounding``).
SUITE = "grounding"
#: Answers that act on a point: the ones a hit can come from.
POINTING = ("click", "double_click", "triple_click", "long_press")
#: Image-size buckets by the image's longer side in pixels (upper bound inclusive, label).
SIZE_BUCKETS = ((1280, "≤1280 px"), (1920, "1281–1920 px"), (2560, "1921–2560 px"), (3840, "2561–3840 px"))
#: Where ScreenSpot (``screenspot_imgs``), ScreenSpot-v2 (``screenspotv2_image``) and ScreenSpot-Pro
#: (``images`` beside ``annotations``) put their images, relative to an annotation file's folder.
_IMAGE_DIRS = (".", "images", "screenspotv2_image", "screenspot_imgs", "../images")

BboxFormat = Literal["xywh", "xyxy"]


@dataclass(frozen=True)
class Sample:
    """One grounding question: the image, what to point at, and where it is."""

    id: str
    image: Path
    instruction: str
    #: The element's box in image pixels: left, top, right, bottom.
    bbox: tuple[float, float, float, float]
    #: The image's size in pixels.
    size: tuple[int, int]
    source: str
    element_type: str
    #: The screen it shows, which picks the prompt (a phone's for mobile screenshots).
    kind: EnvKind = "browser"
    #: The annotation file it came from, when there are several (ScreenSpot's mobile/desktop/web).
    split: str | None = None


# --- reading the data ------------------------------------------------------------------------


def load_samples(
    data: str | os.PathLike[str],
    *,
    images: str | os.PathLike[str] | None = None,
    bbox_format: BboxFormat | None = None,
) -> list[Sample]:
    """The samples of a grounding export or of ScreenSpot-style annotations (see the module docstring)."""
    path = Path(data)
    if path.is_dir() and (path / "grounding.jsonl").exists():
        return _export_samples(path / "grounding.jsonl")
    if path.is_dir():
        files = sorted(p for d in (path, path / "annotations") for p in _json_files(d))
        if not files:
            raise ValueError(f"{path} holds neither grounding.jsonl nor ScreenSpot-style .json/.jsonl files")
    elif path.exists():
        files = [path]
    else:
        raise FileNotFoundError(f"{path} does not exist")
    rows = {f: _rows(f) for f in files}
    first = next((r for rs in rows.values() for r in rs), None)
    if first is not None and "img_filename" not in first and "bbox_2d" in first:
        return _export_samples(files[0])
    several = len(files) > 1
    return [
        s
        for f, rs in rows.items()
        for s in _screenspot_samples(f, rs, images, bbox_format, f.stem if several else None)
    ]


def _json_files(folder: Path) -> list[Path]:
    return [p for p in folder.glob("*.json*") if p.suffix in (".json", ".jsonl")] if folder.is_dir() else []


def _rows(path: Path) -> list[dict[str, Any]]:
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        data = [json.loads(line) for line in text.splitlines() if line.strip()]
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise ValueError(f"{path}: expected a list of objects (JSON) or one object per line (JSONL)")
    return data


def _image_size(path: Path) -> tuple[int, int]:
    from PIL import Image

    with Image.open(path) as img:  # reads the header only
        return img.size


def _export_samples(path: Path) -> list[Sample]:
    from ..profiles import get_profile

    samples, skipped = [], 0
    for row in _rows(path):
        text, box = row.get("target"), row.get("bbox_2d")
        if not text or not box:
            skipped += 1
            continue
        image = path.parent / row["image"]
        w, h = _image_size(image)
        profile = get_profile(row.get("profile") or "qwen3-vl")
        setup = profile.setup("browser")
        # The scale is the one of the image the model was sent (pixels of it, for ui-tars), which is
        # the stored image unless it was exported at its original size.
        sx, sy = profile.point_space(setup, profile.image_size(w, h, setup))
        x1, y1, x2, y2 = box
        samples.append(
            Sample(
                id=str(row["id"]),
                image=image,
                instruction=f'Click "{text}".',
                bbox=(x1 * w / sx, y1 * h / sy, x2 * w / sx, y2 * h / sy),
                size=(w, h),
                source=str(row.get("source") or path.parent.name),
                element_type=str(row.get("element_type") or "text"),
            )
        )
    if skipped:
        log.info("%s: %d rows have no element (box and text) to point at; left out", path, skipped)
    return samples


def _screenspot_samples(
    path: Path,
    rows: list[dict[str, Any]],
    images: str | os.PathLike[str] | None,
    fmt: BboxFormat | None,
    split: str | None,
) -> Iterator[Sample]:
    folders = [Path(images)] if images is not None else [path.parent / d for d in _IMAGE_DIRS]
    for k, row in enumerate(rows):
        where = f"{path.name} row {k}"
        name = row.get("img_filename") or row.get("image") or row.get("img_path")
        if not name or "instruction" not in row or "bbox" not in row:
            raise ValueError(f"{where}: a sample needs img_filename, instruction and bbox")
        image = next((f / name for f in folders if (f / name).is_file()), None)
        if image is None:
            raise FileNotFoundError(f"{where}: image {name!r} not found in {', '.join(map(str, folders))}")
        w, h = _image_size(image)
        source = str(row.get("data_source") or row.get("platform") or row.get("application") or "unknown")
        yield Sample(
            id=f"{path.stem}/{row.get('id', k)}",
            image=image,
            instruction=str(row["instruction"]),
            bbox=_box(row["bbox"], w, h, fmt or ("xyxy" if "img_size" in row else "xywh"), where),
            size=(w, h),
            source=source,
            element_type=str(row.get("data_type") or row.get("ui_type") or "unknown"),
            kind=_kind(source, split or path.stem),
            split=split,
        )


def _box(raw: Sequence[float], w: int, h: int, fmt: BboxFormat, where: str) -> tuple[float, float, float, float]:
    """A ScreenSpot box as left, top, right, bottom in pixels; ValueError when it cannot be one."""
    if len(raw) != 4:
        raise ValueError(f"{where}: bbox needs 4 numbers, got {raw!r}")
    a, b, c, d = (float(v) for v in raw)
    if max(a, b, c, d) <= 1:  # fractions of the image (the Hugging Face copies of ScreenSpot)
        a, b, c, d = a * w, b * h, c * w, d * h
    x1, y1, x2, y2 = (a, b, a + c, b + d) if fmt == "xywh" else (a, b, c, d)
    slack = 2 + 0.01 * max(w, h)  # annotated boxes may overhang the edge a little
    if not (x1 <= x2 <= w + slack and y1 <= y2 <= h + slack):
        other = "xyxy" if fmt == "xywh" else "xywh"
        raise ValueError(
            f"{where}: bbox {list(raw)} read as {fmt} is no box inside the {w}x{h} image; "
            f"if it is [{'x1, y1, x2, y2' if other == 'xyxy' else 'x, y, width, height'}], pass bbox_format={other!r}"
        )
    return x1, y1, x2, y2


def _kind(source: str, split: str) -> EnvKind:
    """The screen a ScreenSpot sample shows, from its platform or its file's name."""
    s, f = source.lower(), split.lower()
    if s in ("ios", "android") or "mobile" in f:
        return "mobile"
    if s == "web" or "web" in f:
        return "browser"
    return "desktop"


def size_bucket(size: tuple[int, int]) -> str:
    """The image-size bucket of an image: its longer side against :data:`SIZE_BUCKETS`."""
    side = max(size)
    return next((label for top, label in SIZE_BUCKETS if side <= top), f">{SIZE_BUCKETS[-1][0]} px")


# --- asking ----------------------------------------------------------------------------------


@dataclass(kw_only=True, eq=False)
class StillImage(Env):
    """One still screenshot as a screen: what a grounding question shows. It takes no input."""

    kind: ClassVar[EnvKind] = "browser"
    label: ClassVar[str] = "a screenshot"
    observation: Observation

    async def reset(self, task: Task | None = None) -> Observation:
        return self.observation

    async def observe(self) -> Observation:
        return self.observation

    async def aclose(self) -> None:
        pass

    async def input_size(self) -> tuple[int, int]:
        return self.observation.input_width, self.observation.input_height


class _StillDesktop(StillImage):
    kind = "desktop"


class _StillPhone(StillImage):
    kind = "mobile"


_SCREENS: dict[str, type[StillImage]] = {"browser": StillImage, "desktop": _StillDesktop, "mobile": _StillPhone}


def _observation(sample: Sample) -> Observation:
    data = sample.image.read_bytes()
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):  # observations are PNG; ScreenSpot has JPEGs too
        from PIL import Image

        buf = io.BytesIO()
        with Image.open(io.BytesIO(data)) as img:
            img.save(buf, format="PNG")
        data = buf.getvalue()
    w, h = sample.size
    return Observation(png=data, width=w, height=h, input_width=w, input_height=h, input_space="screen")


async def answer(policy: Policy, sample: Sample) -> Trial:
    """Ask ``policy`` where ``sample``'s element is; the trial says whether it pointed inside the box."""
    task = Task(instruction=sample.instruction, name=sample.id, env=sample.kind)
    screen = _SCREENS[sample.kind](observation=_observation(sample))
    grid = DEFAULT_GRID
    extra: dict[str, Any] = {
        "instruction": sample.instruction,
        "bbox": [round(v, 1) for v in sample.bbox],
        "image_size": list(sample.size),
    }
    started = time.perf_counter()
    await policy.reset(task)
    try:
        decision = await policy.decide(
            StepContext(task=task, observation=screen.observation, history=[], env=screen, index=0, grid=grid)
        )
    except ModelError as e:
        return _trial(sample, started, False, "model_error", str(e), extra)
    action = decision.action
    if action.action not in POINTING:
        return _trial(sample, started, False, "no_point", f"answered {action.action}, not a click", extra)
    x, y = action.x, action.y  # type: ignore[union-attr]  # every POINTING action has a point
    w, h = sample.size
    px, py = x * w / grid.size, y * h / grid.size
    left, top, right, bottom = sample.bbox
    hit = left <= px <= right and top <= py <= bottom
    extra.update(grid_point=[x, y], point=[round(px, 1), round(py, 1)])
    return _trial(sample, started, hit, "hit" if hit else "miss", None, extra)


def _trial(sample: Sample, started: float, hit: bool, status: str, message: str | None, extra: dict[str, Any]) -> Trial:
    return Trial(
        id=sample.id,
        success=hit,
        reward=1.0 if hit else 0.0,
        status=status,
        steps=1,
        seconds=time.perf_counter() - started,
        message=message,
        extra=extra,
    )


# --- the eval --------------------------------------------------------------------------------


async def evaluate_grounding(
    data: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    policy_factory: Callable[[], Policy] | None = None,
    model_urls: Sequence[str] = (),
    model: str | None = None,
    profile: str = "qwen3-vl",
    concurrency: int = 4,
    label: str | None = None,
    images: str | os.PathLike[str] | None = None,
    bbox_format: BboxFormat | None = None,
    progress: bool = False,
) -> Results:
    """Score pointing on ``data`` (a grounding export or ScreenSpot-style annotations); write
    ``OUT/results.json`` and ``OUT/scoreboard.html`` and return the results.

    The model at ``model_urls`` answers in ``profile``'s format, offered only ``click``;
    ``policy_factory`` replaces it with policies of the caller's own (one per worker). At most
    ``concurrency`` questions are in flight. ``images`` and ``bbox_format`` say where a ScreenSpot
    file's images are and how its boxes are written (see the module docstring).

    >>> results = await evaluate_grounding("data/grounding", "evals/grounding/base",
    ...                                    model_urls=["http://127.0.0.1:30000/v1"])  # doctest: +SKIP
    """
    if concurrency < 1:
        raise ValueError(f"concurrency must be at least 1, got {concurrency}")
    samples = load_samples(data, images=images, bbox_format=bbox_format)
    if not samples:
        raise ValueError(f"{data}: no samples with an element to point at")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    run = RunInfo(
        label=label or model or (model_urls[0] if model_urls else "policy"),
        model=model,
        model_urls=list(model_urls),
        profile=profile if policy_factory is None else None,
    )
    client = None
    if policy_factory is None:
        client, policy_factory = await _model_policies(model_urls, model, profile)
    try:
        trials = await _ask_all(samples, policy_factory, concurrency, progress)
    finally:
        if client is not None:
            await client.aclose()
    run.finished_at = time.time()
    results = Results.build(
        SUITE,
        run,
        [TaskResult(id=s.id, trials=[t]) for s, t in zip(samples, trials, strict=True)],
        breakdowns=breakdowns(samples, trials),
    )
    results.write(out / "results.json")
    from .scoreboard import write_scoreboard

    write_scoreboard([out / "results.json"], out / "scoreboard.html")
    return results


async def _model_policies(
    model_urls: Sequence[str], model: str | None, profile: str
) -> tuple[Any, Callable[[], Policy]]:
    """One shared client (checked: every server answers) and a factory of click-only model policies."""
    from ..agent.model_policy import ModelPolicy
    from ..serving.client import ModelClient, ServingError

    if not model_urls:
        raise ValueError("the grounding eval needs a model server (model_urls) or a policy_factory")
    client = ModelClient(list(model_urls), model=model)
    try:
        for url in client.pool.urls:
            await client.list_models(url)
    except ServingError as e:
        await client.aclose()
        raise ModelError(str(e)) from None
    return client, lambda: ModelPolicy(client, profile=profile, actions=("click",))


async def _ask_all(
    samples: Sequence[Sample], factory: Callable[[], Policy], concurrency: int, show: bool
) -> list[Trial]:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    trials: list[Trial | None] = [None] * len(samples)
    pending = iter(enumerate(samples))
    bar = Progress(
        TextColumn("grounding"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("hits {task.fields[hits]}"),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        disable=not show,
    )
    task = bar.add_task("grounding", total=len(samples), hits=0)
    hits = 0

    async def worker() -> None:
        nonlocal hits
        policy = factory()
        try:
            for k, sample in pending:  # one shared iterator: each sample goes to one worker
                trials[k] = trial = await answer(policy, sample)
                hits += trial.success
                bar.update(task, advance=1, hits=hits)
        finally:
            await policy.aclose()

    with bar:
        async with asyncio.TaskGroup() as workers:
            for _ in range(min(concurrency, len(samples))):
                workers.create_task(worker())
    return [t for t in trials if t is not None]


def breakdowns(samples: Sequence[Sample], trials: Sequence[Trial]) -> dict[str, dict[str, Group]]:
    """Accuracy by source, element type and image size (and by file, when there were several)."""
    by: dict[str, dict[str, list[Trial]]] = defaultdict(lambda: defaultdict(list))
    for s, t in zip(samples, trials, strict=True):
        by["source"][s.source].append(t)
        by["element type"][s.element_type].append(t)
        by["image size"][size_bucket(s.size)].append(t)
        if s.split is not None:
            by["file"][s.split].append(t)
    order = [label for _, label in SIZE_BUCKETS] + [f">{SIZE_BUCKETS[-1][0]} px"]
    return {
        name: {
            value: group(groups[value])
            for value in (sorted(groups, key=order.index) if name == "image size" else sorted(groups))
        }
        for name, groups in by.items()
    }


def evaluate_grounding_sync(data: str | os.PathLike[str], out: str | os.PathLike[str], **options: Any) -> Results:
    """:func:`evaluate_grounding` from plain (non-async) code."""
    return run_sync(evaluate_grounding(data, out, **options), "evaluate_grounding(data, out)")
