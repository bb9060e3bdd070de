"""``pixelpilot …``: a thin shell over the Python API."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Optional

import typer

from . import __version__
from .actions import Task
from .agent import Agent, Limits, ScriptPolicy, TaskFileError, load_task_file
from .envs import EnvError
from .trajectories import Recorder, Step

app = typer.Typer(
    name="pixelpilot", no_args_is_help=True, add_completion=False,
    help="Drive browsers, desktops and phones with a vision-language model, and record every step.",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"pixelpilot {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[Optional[bool], typer.Option("--version", callback=_version, is_eager=True,
                                                    help="Print the version and exit.")] = None,
) -> None:
    """pixelpilot: GUI agents on Qwen3-VL."""


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print one error line and return the Exit to raise."""
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(code)


def describe_step(step: Step) -> str:
    """One line for a step: index, action, where, outcome, timings."""
    a = step.action
    kind = a["action"]
    detail = ""
    if "x" in a:
        detail = f" ({a['x']},{a['y']})"
        if "x2" in a:
            detail += f"→({a['x2']},{a['y2']})"
    target = step.extra.get("target", {}).get("text")
    if target:
        detail += f" {target!r}"
    for key in ("text", "url", "keys", "name", "status"):
        if key in a:
            detail += f" {a[key]!r}"
    if kind == "scroll":
        detail += f" dx={a['dx']} dy={a['dy']}"
    result = "ok" if step.outcome.get("ok", True) else f"error: {step.outcome.get('error')}"
    t = step.timings
    phases = " ".join(f"{k} {v:.0f}ms" for k, v in t.items())
    return f"{step.index:3d} {kind}{detail} → {result}  [{phases}]"


@app.command()
def run(
    taskfile: Annotated[Path, typer.Argument(help="A YAML task file (see examples/todo.yaml).")],
    url: Annotated[Optional[str], typer.Option(help="Start here instead of the task file's url.")] = None,
    out: Annotated[Path, typer.Option(help="Where episodes are written.")] = Path("runs"),
    headed: Annotated[bool, typer.Option("--headed", help="Show the browser window.")] = False,
    max_steps: Annotated[int, typer.Option(min=1, help="Step budget (a task's own max_steps wins).")] = 30,
    max_seconds: Annotated[Optional[float], typer.Option(min=0.1, help="Time budget in seconds.")] = None,
) -> None:
    """Run a task file in a browser; print one line per step and the episode's folder."""
    from .envs.browser import BrowserEnv

    try:
        task = load_task_file(taskfile)
    except TaskFileError as e:
        raise fail(str(e))
    if url:
        task = task.model_copy(update={"url": url})
    if not task.steps:
        raise fail(f"{taskfile}: the task has no `steps:`; model-driven runs need a model (see the README)")
    episode = asyncio.run(_run(task, BrowserEnv(headless=not headed), out, Limits(max_steps, max_seconds)))
    color = typer.colors.GREEN if episode.status == "success" else typer.colors.RED
    typer.secho(f"{episode.status}: {episode.message or ''}".rstrip(": "), fg=color)
    typer.echo(f"episode: {episode.path}")
    raise typer.Exit(0 if episode.status == "success" else 1)


async def _run(task: Task, env, out: Path, limits: Limits):
    typer.echo(f"task: {task.instruction}")
    agent = Agent(env, ScriptPolicy(), recorder=Recorder(out), limits=limits,
                  on_step=lambda s: typer.echo(describe_step(s)))
    try:
        return await agent.run(task)
    except EnvError as e:
        raise fail(str(e), 1)
    finally:
        await env.close()


if __name__ == "__main__":  # pragma: no cover
    app()
