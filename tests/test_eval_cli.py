"""`pixelpilot eval` end to end: a slice of MiniWoB++ against the tiny Qwen3-VL behind `pixelpilot
serve`, killed part way and resumed by running the same command; `pixelpilot scoreboard` over it.

The tiny model's weights are random, so its score is noise; what is checked is that every episode is
asked, judged by the page and counted once, and that the numbers in results.json add up."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

pytest.importorskip("miniwob", reason="the MiniWoB suite needs the 'miniwob' extra (pip install 'pixelpilot[miniwob]')")

from pixelpilot.evals import load_results  # noqa: E402
from pixelpilot.trajectories import load_episode  # noqa: E402

TASKS = "click-button,click-link,enter-text,focus-text"


def _eval(server_url: str, out) -> list[str]:
    return [
        sys.executable,
        "-m",
        "pixelpilot.cli",
        "eval",
        "miniwob",
        "--model-url",
        server_url,
        "--tasks",
        TASKS,
        "--seeds",
        "2",
        "--max-steps",
        "2",
        "--timeout",
        "40",
        "--concurrency",
        "1",
        "--out",
        str(out),
        "--no-progress",
    ]


def test_eval_a_miniwob_slice_with_the_tiny_model_killed_and_resumed(server_url, tmp_path):
    out = tmp_path / "eval"
    first = subprocess.Popen(_eval(server_url, out), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 300
        while not list(out.glob("episodes/*/episode.json")):
            assert first.poll() is None, first.stderr.read() if first.stderr else ""
            assert time.monotonic() < deadline, "no episode finished in 300 s"
            time.sleep(0.2)
    finally:
        first.kill()
        first.wait()
    before = {p.parent.name: p.stat().st_mtime_ns for p in out.glob("episodes/*/episode.json")}
    assert 1 <= len(before) < 8 and not (out / "results.json").exists()

    again = subprocess.run(_eval(server_url, out), capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "success" in again.stdout and "results:" in again.stdout

    after = {p.parent.name: p.stat().st_mtime_ns for p in out.glob("episodes/*/episode.json")}
    assert len(after) == 8 and all(after[k] == v for k, v in before.items())  # nothing finished ran twice
    results = load_results(out)
    assert results.suite == "miniwob" and results.summary.tasks == 4 and results.summary.trials == 8
    assert sorted(t.id for t in results.tasks) == sorted(TASKS.split(","))
    assert results.summary.successes == sum(t.success for task in results.tasks for t in task.trials)
    for task in results.tasks:
        assert sorted(t.seed for t in task.trials) == [0, 1]
        for trial in task.trials:
            episode = load_episode(out / trial.path)
            # The instruction is the page's, the time limit the page's, the reward the page's.
            assert "MiniWoB page writes" not in episode.task.instruction
            assert episode.task.metadata["time_limit_s"] == 10.0
            assert trial.raw_reward is None or -1.0 <= trial.raw_reward <= 1.0
            assert trial.success == (trial.raw_reward is not None and trial.raw_reward > 0)
            # MiniWoB's action space cannot navigate, so the model is not offered it.
            assert not {s.action["action"] for s in episode.steps} & {"navigate", "back", "answer"}
    board = (out / "scoreboard.html").read_text()
    assert "miniwob" in board and "click-button" in board

    page = tmp_path / "compare.html"
    shown = subprocess.run(
        [sys.executable, "-m", "pixelpilot.cli", "scoreboard", str(out), str(out / "results.json"), "--out", str(page)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shown.returncode == 0, shown.stderr
    assert page.exists() and json.loads((out / "results.json").read_text())["format"] == "pixelpilot.eval/1"


def test_eval_names_what_is_wrong(tmp_path):
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "pixelpilot.cli", "eval", *args], capture_output=True, text=True, timeout=120
        )

    unknown = run("nosuch", "--model-url", "http://127.0.0.1:9/v1", "--out", str(tmp_path / "a"))
    assert unknown.returncode == 2 and "no suite called 'nosuch'" in unknown.stderr and "miniwob" in unknown.stderr
    no_model = run("miniwob", "--out", str(tmp_path / "b"))
    assert no_model.returncode == 2 and "--model-url" in no_model.stderr
    no_data = run("grounding", "--model-url", "http://127.0.0.1:9/v1", "--out", str(tmp_path / "c"))
    assert no_data.returncode == 2 and "needs DATA" in no_data.stderr
    no_task = run("miniwob", "--model-url", "http://127.0.0.1:9/v1", "--tasks", "zzz-*", "--out", str(tmp_path / "d"))
    assert no_task.returncode == 2 and "no task matches" in no_task.stderr
    down = run(
        "miniwob", "--model-url", "http://127.0.0.1:9/v1", "--tasks", "click-button", "--out", str(tmp_path / "e")
    )
    assert down.returncode == 1 and "127.0.0.1:9" in down.stderr
