"""Export throughput: 1,000 recorded steps to each training format, in steps per second.

Episodes are written with the real Recorder from synthetic 1280x800 screenshots (every step's
screen differs, as in a real run), 50 episodes of 20 steps. Importing ``datasets`` (seconds, once
per process) is done before timing and reported on its own. The baseline is the floor every export
pays: loading the episodes and copying each step's screenshot once.

    .venv/bin/python bench/export_throughput.py [--steps 1000] [--per-episode 20]
"""

from __future__ import annotations

import argparse
import io
import shutil
import tempfile
import time
from pathlib import Path

from PIL import Image, ImageDraw

from pixelpilot.actions import Click, Observation, Outcome, Task, Type
from pixelpilot.profiles import DecodeContext, get_profile
from pixelpilot.trajectories import Recorder, load_episode
from pixelpilot.trajectories.export import export_episodes
from pixelpilot.trajectories.recorder import find_episodes


def screenshot(n: int) -> bytes:
    img = Image.new("RGB", (1280, 800), (244, 245, 247))
    d = ImageDraw.Draw(img)
    d.rectangle((360, 48, 920, 600), fill=(255, 255, 255))
    for row in range(12):
        d.text((380, 70 + row * 40), f"item {n}-{row}: the quick brown fox", fill=(34, 34, 34))
    d.rectangle((380 + (n % 10) * 40, 560, 460 + (n % 10) * 40, 590), fill=(66, 133, 244))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def record(root: Path, steps: int, per_episode: int) -> None:
    rec = Recorder(root)
    profile = get_profile("qwen3-vl")
    setup = profile.setup("browser")
    for e in range(steps // per_episode):
        w = rec.start(Task(instruction=f"bench task {e}", url="http://127.0.0.1/"), env="browser", policy="ModelPolicy")
        for i in range(per_episode):
            png = screenshot(e * per_episode + i)
            obs = Observation(png=png, width=1280, height=800, input_width=1280, input_height=800)
            action = Click(x=100 + i, y=200) if i % 2 == 0 else Type(text=f"text {i}")
            # what ModelPolicy records: the model's answer in its profile's format, and the prompt's setup
            raw = profile.encode(action.model_dump(mode="json"), DecodeContext(setup), f"Step {i}.")
            prompt = {"setup": setup.to_json(), "task": f"bench task {e}", "history_from": 0 if i else None}
            w.add_step(
                obs,
                timings={"observe": 30.0, "decide": 900.0, "execute": 80.0},
                model_image=(1280, 800),
                thought=f"step {i}",
                raw_output=raw,
                action=action.model_dump(mode="json"),
                outcome=Outcome().to_json(),
                extra={"model": "bench", "prompt": prompt, "target": {"text": f"item {i}", "box": [380, 70, 200, 20]}},
            )
        w.finish("success")


def baseline(root: Path, out: Path) -> int:
    out.mkdir()
    n = 0
    for p in find_episodes([root]):
        ep = load_episode(p)
        for s in ep.steps:
            dst = out / Path(s.screenshot).name
            if not dst.exists():
                shutil.copyfile(p / s.screenshot, dst)
            n += 1
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--per-episode", type=int, default=20)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "runs"
        t0 = time.perf_counter()
        record(root, args.steps, args.per_episode)
        print(f"recorded {args.steps} steps in {time.perf_counter() - t0:.1f} s")
        t0 = time.perf_counter()
        import datasets  # noqa: F401  (the hf export's one-time import)

        print(f"importing datasets took {time.perf_counter() - t0:.1f} s (not counted below)")
        t0 = time.perf_counter()
        n = baseline(root, Path(tmp) / "baseline")
        base = n / (time.perf_counter() - t0)
        print(f"{'baseline (load + copy screenshots)':<40}{base:>10.0f} steps/s")
        cases = [
            ("qwen", {}),
            ("llamafactory", {}),
            ("hf", {}),
            ("grounding", {}),
            ("qwen, re-encoded at 640x416", {"resize": (640, 416)}),
            ("hf, re-encoded at 640x416", {}),  # the steps were changed above: still 640x416
        ]
        for name, opts in cases:
            fmt = name.split(",")[0]
            if "resize" in opts:
                for p in find_episodes([root]):  # pretend the model saw a smaller image
                    lines = (
                        (p / "steps.jsonl").read_text().replace('"model_image":[1280,800]', '"model_image":[640,416]')
                    )
                    (p / "steps.jsonl").write_text(lines)
            out = Path(tmp) / f"out-{len(list(Path(tmp).iterdir()))}"
            t0 = time.perf_counter()
            report = export_episodes([root], out, format=fmt, history_images=2)  # type: ignore[arg-type]
            dt = time.perf_counter() - t0
            rate = report.steps / dt
            print(
                f"{name:<40}{rate:>10.0f} steps/s  ({report.samples} samples, {dt:.2f} s, {rate / base:.2f}x baseline)"
            )


if __name__ == "__main__":
    main()
