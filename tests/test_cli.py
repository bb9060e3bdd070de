"""The command line: the demo task end to end, and one clear line for a malformed task file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PIXELPILOT = [sys.executable, "-m", "pixelpilot.cli"]


def run_cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([*PIXELPILOT, *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_version():
    out = run_cli("--version")
    assert out.returncode == 0 and out.stdout.startswith("pixelpilot ")


def test_run_example_task(todo_app, tmp_path):
    # The script types a password: a script's own steps are approved (its author chose them).
    out = run_cli("run", "examples/todo.yaml", "--url", todo_app.url, "--out", str(tmp_path))
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[-2] == "success"
    path = Path(lines[-1].removeprefix("episode: "))
    assert (path / "episode.json").exists()
    step_lines = [line for line in lines if line[:3].strip().isdigit()]
    assert len(step_lines) == len((path / "steps.jsonl").read_text().splitlines())


def test_demo_script_runs(tmp_path):
    out = subprocess.run(
        [sys.executable, "examples/demo.py", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "success" in out.stdout.splitlines()


@pytest.mark.parametrize(
    "content, line, problem",
    [
        ("steps:\n  - click: Sign in\n  - clikc: Add\n", 3, "unknown step 'clikc'"),
        ("steps:\n  - click: {x: 5000, y: 1}\n", 2, "x=5000 is off the 0..1000 grid"),
        ("url: http://127.0.0.1/\nsteps:\n  - type: {into: Name}\n", 3, "type needs text"),
        ("steps:\n  - press: ''\n", 2, "press needs keys"),
        ("steps:\n  - wait: forever\n", 2, "wait needs seconds"),
        ("steps:\n  - {action: click, x: 1}\n", 2, "invalid click action: y Field required"),
        ("steps:\n  - drag: {x: 1}\n", 2, "as a raw action write `action: drag`"),
        ("stepz:\n  - click: A\n", 1, "unknown key 'stepz'"),
        ("steps: [click: A\n", 2, "not valid YAML"),
        ("- click: A\n", 1, "a task file is a mapping"),
        ("instruction: x\nmax_steps: 0\n", 2, "max_steps: Input should be greater than or equal to 1"),
        ("steps: click\n", 1, "`steps:` must be a list"),
    ],
)
def test_malformed_task_file_gets_one_line_and_exit_2(tmp_path, content, line, problem):
    bad = tmp_path / "bad.yaml"
    bad.write_text(content)
    out = run_cli("run", str(bad), "--out", str(tmp_path / "runs"))
    assert out.returncode == 2
    err = out.stderr.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith(f"error: {bad}:{line}: ") and problem in err[0], err[0]
    assert not (tmp_path / "runs").exists()  # nothing written half-way


def test_scripted_password_typing_is_refused_with_approve_no(todo_app, tmp_path):
    out = run_cli("run", "examples/todo.yaml", "--url", todo_app.url, "--out", str(tmp_path), "--approve", "no")
    assert out.returncode == 1
    assert "type into a password field" in out.stdout


def test_missing_task_file(tmp_path):
    out = run_cli("run", str(tmp_path / "nope.yaml"))
    assert out.returncode == 2 and "cannot read the file" in out.stderr


def test_serve_on_a_cuda_device_that_is_not_there_says_so(tmp_path):
    torch = pytest.importorskip("torch", reason="the transformers backend needs torch (the 'local' extra)")
    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device, so --device cuda is valid here")
    r = run_cli("serve", "--model", str(tmp_path / "no-model"), "--device", "cuda", "--port", "1")
    assert r.returncode == 2
    assert "sees no CUDA device" in r.stderr and "use cpu" in r.stderr
