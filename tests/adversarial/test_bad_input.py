"""Malformed files against the command line: task files a careless user (or a hostile one) hands to
`run` and `collect`, and episode folders broken on disk handed to `view`, `stats`, `export` and
`replay`. Each gets one line that names the file and the problem — never a traceback — and an
episode that cannot be read is skipped and counted while the others are still processed."""

from __future__ import annotations

import io
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from pixelpilot.actions import Observation, Task
from pixelpilot.cli import app
from pixelpilot.trajectories import Recorder

runner = CliRunner()


def _cli(*args: str):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def _one_error_line(result, path: Path, *problems: str) -> None:
    assert result.exit_code == 2, (result.exit_code, result.output)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {path}"), result.stderr
    assert all(problem in lines[0] for problem in problems), lines[0]
    assert "Traceback" not in result.output


# --- task files ------------------------------------------------------------------------------------

LAUGHS = "\n".join(
    ["a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    + [f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 9)}]" for i in range(8)]
)  # nine levels of nine: 9^9 = 387 million values from 400 bytes


def _bomb_under(key: str) -> str:
    """A "billion laughs" whose last alias sits under ``key``."""
    return f"instruction: hi\nanchors: &anchors\n  {LAUGHS.replace(chr(10), chr(10) + '  ')}\n{key}: *anchors\n"


TASK_FILES = {
    "a PNG image": (Image.new("RGB", (4, 4)).tobytes() + b"\x89PNG\r\n\x1a\n" * 4, 1, "NUL bytes"),
    "NUL bytes in text": (b"instruction: hi\nsteps:\n  - click: A\x00B\n", 3, "NUL bytes"),
    "UTF-16 with a byte-order mark": ("instruction: hi\n".encode("utf-16"), 1, "UTF-16"),
    "Latin-1 text": ("instruction: café\n".encode("latin-1"), 1, "not UTF-8"),
    "an empty file": (b"", 1, "a task file is a mapping"),
    "only a comment": (b"# nothing here\n", 1, "a task file is a mapping"),
    "a number for a key": (b"instruction: hi\n1: 2\n", 2, "unknown key 1"),
    "an alias that contains itself": (b"instruction: hi\nmetadata: &m {loop: *m}\n", 1, "refers to itself"),
    "nesting 5000 lists deep": (b"instruction: hi\nmetadata: {x: " + b"[" * 5000 + b"]" * 5000 + b"}\n", 1, "deeper"),
    "a tab for indentation": (b"instruction: hi\nsteps:\n\t- click: A\n", 3, "not valid YAML"),
    "a mapping for a step list": (b"instruction: hi\nsteps: {click: A}\n", 2, "must be a list"),
}


@pytest.mark.parametrize("case", list(TASK_FILES))
def test_a_malformed_task_file_gets_one_line_and_exit_2(tmp_path, case):
    content, line, problem = TASK_FILES[case]
    bad = tmp_path / "task.yaml"
    bad.write_bytes(content)
    _one_error_line(_cli("run", bad, "--out", tmp_path / "runs"), bad, f":{line}: ", problem)
    assert not (tmp_path / "runs").exists()


def _limited() -> None:
    """A child that may not take the machine down if the test fails: 1 GiB of address space."""
    resource.setrlimit(resource.RLIMIT_AS, (1024**3, 1024**3))


@pytest.mark.parametrize(
    ("case", "make", "problem"),
    [
        ("billion laughs under instruction", lambda p: p.write_text(_bomb_under("name")), "aliases"),
        ("billion laughs under vars", lambda p: p.write_text(_bomb_under("vars")), "aliases"),
        ("billion laughs under steps", lambda p: p.write_text(_bomb_under("steps")), "aliases"),
        ("billion laughs under metadata", lambda p: p.write_text(_bomb_under("metadata")), "aliases"),
        (
            "a 50 MB task file",
            lambda p: p.write_bytes(b"instruction: hi\nmetadata: {a: '" + b"x" * 50_000_000 + b"'}\n"),
            "larger than",
        ),
        ("/dev/zero, a file without end", lambda p: p.symlink_to("/dev/zero"), "larger than"),
    ],
)
def test_a_task_file_that_would_exhaust_memory_or_time_is_refused_quickly(tmp_path, case, make, problem):
    bad = tmp_path / "task.yaml"
    make(bad)
    t0 = time.monotonic()
    out = subprocess.run(
        [sys.executable, "-m", "pixelpilot.cli", "run", str(bad), "--out", str(tmp_path / "runs")],
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=_limited,
    )
    assert time.monotonic() - t0 < 30
    assert out.returncode == 2, out.stderr[-500:]
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {bad}:") and problem in lines[0], out.stderr[-500:]


COLLECT_FILES = {
    "a binary file": (bytes(range(256)) * 4, 1, "NUL bytes"),
    "a line nested 100000 deep": (
        b'{"instruction": "hi", "metadata": ' + b"[" * 100_000 + b"]" * 100_000 + b"}\n",
        1,
        "nests",
    ),
    "a line of 2 MB": (b'{"instruction": "' + b"x" * 2_000_000 + b'"}\n', 1, "longer than"),
    "a number for steps": (b'{"instruction": "hi"}\n{"instruction": "hi", "steps": 5}\n', 2, "steps: a list"),
    "an array for a task": (b'{"instruction": "hi"}\n[1, 2]\n', 2, "JSON object"),
}


@pytest.mark.parametrize("case", list(COLLECT_FILES))
def test_a_malformed_collect_task_file_gets_one_line_and_exit_2(tmp_path, case):
    content, line, problem = COLLECT_FILES[case]
    bad = tmp_path / "tasks.jsonl"
    bad.write_bytes(content)
    result = _cli("collect", bad, "--out", tmp_path / "runs", "--no-progress")
    _one_error_line(result, bad, f":{line}: ", problem)


# --- episode folders --------------------------------------------------------------------------------


def _png(color: str) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 40), color).save(buf, "PNG")
    return buf.getvalue()


def _episode(root: Path, name: str) -> Path:
    """A real two-step episode (a click, then a drag) recorded by the Recorder."""
    writer = Recorder(root).start(Task(instruction=f"task {name}"), env="browser", policy="script", episode_id=name)
    for i, action in enumerate(
        ({"action": "click", "x": 500, "y": 500}, {"action": "drag", "x": 500, "y": 500, "x2": 900, "y2": 900})
    ):
        obs = Observation(
            png=_png(("red", "blue")[i]), width=64, height=40, input_width=64, input_height=40, url="http://a.test/"
        )
        writer.add_step(
            obs, timings={"observe": 1.0, "execute": 2.0}, action=action, outcome={"ok": True}, thought="go"
        )
    writer.finish("success")
    return writer.path


def _line(folder: Path, n: int, change) -> None:
    """Rewrite line ``n`` of steps.jsonl through ``change`` (a dict in, a dict or any JSON value out)."""
    path = folder / "steps.jsonl"
    lines = path.read_text().splitlines()
    lines[n] = json.dumps(change(json.loads(lines[n])))
    path.write_text("\n".join(lines) + "\n")


def _with(step: dict, **changes) -> dict:
    return {**step, **changes}


def _screenshot(folder: Path, n: int) -> Path:
    return folder / json.loads((folder / "steps.jsonl").read_text().splitlines()[n])["screenshot"]


EPISODES = {
    # episode.json
    "an empty episode.json": ("episode.json", lambda f: (f / "episode.json").write_bytes(b""), "the file is empty"),
    "a binary episode.json": ("episode.json", lambda f: (f / "episode.json").write_bytes(_png("red")), "not UTF-8"),
    "episode.json cut short": (
        "episode.json",
        lambda f: (f / "episode.json").write_text((f / "episode.json").read_text()[:40]),
        "not an episode",
    ),
    "episode.json holding a list": ("episode.json", lambda f: (f / "episode.json").write_text("[]"), "not an episode"),
    "a number for a status": (
        "episode.json",
        lambda f: (f / "episode.json").write_text(
            json.dumps({**json.loads((f / "episode.json").read_text()), "status": 5})
        ),
        "status",
    ),
    "an empty task.json, no episode.json": (
        "task.json",
        lambda f: ((f / "episode.json").unlink(), (f / "task.json").write_text("")),
        "the file is empty",
    ),
    # steps.jsonl
    "a binary steps.jsonl": (
        "steps.jsonl",
        lambda f: (f / "steps.jsonl").write_bytes(
            os.urandom(3000).replace(b"\n", b"") + b"\n" + os.urandom(99) + b"\n"
        ),
        "line 1",
    ),
    "a step that is a list": ("steps.jsonl", lambda f: _line(f, 0, lambda s: [s]), "line 1 is not a step"),
    "an action without its name": (
        "steps.jsonl",
        lambda f: _line(f, 0, lambda s: _with(s, action={"x": 1, "y": 2})),
        "action.action",
    ),
    "a coordinate that is text": (
        "steps.jsonl",
        lambda f: _line(f, 0, lambda s: _with(s, action={"action": "click", "x": "left", "y": 2})),
        "action.x",
    ),
    "a drag without its end": (
        "steps.jsonl",
        lambda f: _line(f, 1, lambda s: _with(s, action={"action": "drag", "x": 1, "y": 2})),
        "end point",
    ),
    "a screen width that is text": (
        "steps.jsonl",
        lambda f: _line(f, 0, lambda s: _with(s, observation={**s["observation"], "width": "wide"})),
        "observation.width",
    ),
    "a target that is text": (
        "steps.jsonl",
        lambda f: _line(f, 0, lambda s: _with(s, extra={"target": "the button"})),
        "target",
    ),
    "a replay record without its distance": (
        "steps.jsonl",
        lambda f: _line(f, 0, lambda s: _with(s, extra={"replay": {"match": True, "threshold": 0.1}})),
        "replay.distance",
    ),
    "a recorded prompt without its setup": (
        "steps.jsonl",
        lambda f: _line(f, 0, lambda s: _with(s, extra={"prompt": {"task": "x"}})),
        "prompt.setup",
    ),
    "a grid of zero": ("steps.jsonl", lambda f: _line(f, 0, lambda s: _with(s, grid=0)), "grid"),
    "timings that are words": (
        "steps.jsonl",
        lambda f: _line(f, 0, lambda s: _with(s, timings={"observe": "fast"})),
        "timings.observe",
    ),
    "a step out of order": ("steps.jsonl", lambda f: _line(f, 0, lambda s: _with(s, index=7)), "step 7"),
    "a screenshot outside the episode (/etc/passwd)": (
        "steps.jsonl",
        lambda f: _line(f, 0, lambda s: _with(s, screenshot="../../../../../../../../etc/passwd")),
        "no screenshot",
    ),
    "a screenshot that is gone": ("steps.jsonl", lambda f: _screenshot(f, 1).unlink(), "no screenshot"),
}


@pytest.fixture
def good_and_bad(tmp_path):
    root = tmp_path / "runs"
    good, bad = _episode(root, "good"), _episode(root, "zz-bad")
    return root, good, bad


@pytest.mark.parametrize("case", list(EPISODES))
def test_one_broken_episode_is_named_skipped_and_counted(good_and_bad, tmp_path, case):
    root, good, bad = good_and_bad
    file, corrupt, problem = EPISODES[case]
    corrupt(bad)
    where = f"skipped {bad / file}: "

    def skipped_line(result) -> str:
        lines = [line for line in result.stderr.splitlines() if line.startswith("skipped ")]
        assert len(lines) == 1 and lines[0].startswith(where) and problem in lines[0], result.stderr
        assert "Traceback" not in result.output
        return lines[0]

    view = _cli("view", root)
    assert view.exit_code == 0, view.output
    skipped_line(view)
    assert "(1 unreadable episodes skipped)" in view.stdout
    index = (root / "index.html").read_text()
    assert "good.html" in index and "zz-bad.html" not in index and "1 could not be read" in index
    if "passwd" in case:
        assert "root:" not in (root / "good.html").read_text()

    stats = _cli("stats", root)
    assert stats.exit_code == 0, stats.output
    skipped_line(stats)
    assert "episodes: 1  (success 1)" in stats.stdout and "skipped: 1 that could not be read" in stats.stdout

    export = _cli("export", root, "--out", tmp_path / "export", "--status", "any")
    assert export.exit_code == 0, export.output
    skipped_line(export)
    assert (
        "qwen: 1 episodes, 2 steps -> 2 samples" in export.stdout and "1 unreadable episodes skipped" in export.stdout
    )
    rows = (tmp_path / "export" / "data.jsonl").read_text().splitlines()
    assert [json.loads(r)["id"].split("/")[0] for r in rows] == ["good", "good"]

    replay = _cli("replay", bad, "--out", tmp_path / "replays")
    _one_error_line(replay, bad / file, problem)
    assert not (tmp_path / "replays").exists()  # refused before a browser started


def test_a_screenshot_that_is_not_a_png_skips_the_episode_in_an_export(good_and_bad, tmp_path):
    root, good, bad = good_and_bad
    _screenshot(bad, 0).write_bytes(b"not a png at all")
    export = _cli("export", root, "--out", tmp_path / "export", "--status", "any")
    assert export.exit_code == 0, export.output
    (line,) = [x for x in export.stderr.splitlines() if x.startswith("skipped ")]
    assert line.startswith(f"skipped {bad}: ") and "Traceback" not in export.output
    assert "qwen: 1 episodes, 2 steps -> 2 samples" in export.stdout
    assert not list((tmp_path / "export" / "images").glob("*")) or all(
        Image.open(p).size for p in (tmp_path / "export" / "images").glob("*")
    )


def test_a_crash_cut_last_line_still_loads_as_interrupted(tmp_path):
    """The one malformed line a crash leaves (the last, without its newline) is not an error."""
    root = tmp_path / "runs"
    folder = _episode(root, "crashed")
    (folder / "episode.json").unlink()
    with open(folder / "steps.jsonl", "ab") as f:
        f.write(b'{"index": 2, "screenshot": "scr')
    stats = _cli("stats", root)
    assert stats.exit_code == 0 and "interrupted 1" in stats.stdout and "skipped" not in stats.output
