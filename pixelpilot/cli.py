"""``pixelpilot …``: a thin shell over the Python API."""

from __future__ import annotations

import asyncio
import re
import shutil
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from . import __version__, envs
from .actions import Task, VarError, resolve_vars
from .actions.task import EnvKind
from .agent import Agent, ApprovalRequest, ApprovalRules, Gate, Limits, TaskFileError, load_task_file
from .agent.policies import policy_for
from .envs import Env, EnvError, UrlPolicy, UrlPolicyError
from .trajectories import Recorder, Step

app = typer.Typer(
    name="pixelpilot",
    no_args_is_help=True,
    add_completion=False,
    help="Drive browsers, desktops and phones with a vision-language model, and record every step.",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"pixelpilot {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool | None, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = None,
) -> None:
    """pixelpilot: GUI agents on Qwen3-VL."""


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print one error line and return the Exit to raise."""
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(code)


@contextmanager
def exit_on(*errors: type[Exception], code: int = 2, prefix: str = "", suffix: str = "") -> Iterator[None]:
    """Turn the listed exceptions into ``fail``'s one-line exit: ``prefix``, the error's text, ``suffix``."""
    try:
        yield
    except errors as e:
        raise fail(f"{prefix}{e}{suffix}", code) from None


@contextmanager
def exit_on_run_errors(*usage: type[Exception]) -> Iterator[None]:
    """A run's failures as one-line exits: bad input (``usage``, ValueError: a task without a server)
    with 2; no browser or a model server that does not answer with 1."""
    from .agent import ModelError

    with exit_on(ValueError, *usage), exit_on(EnvError, ModelError, code=1):
        yield


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
    for key in ("op", "window", "text", "url", "keys", "name", "status"):
        if key in a:
            detail += f" {a[key]!r}"
    if kind == "scroll":
        detail += f" dx={a['dx']} dy={a['dy']}"
    result = "ok" if step.outcome.get("ok", True) else f"error: {step.outcome.get('error')}"
    t = step.timings
    phases = " ".join(f"{k} {v:.0f}ms" for k, v in t.items())
    return f"{step.index:3d} {kind}{detail} → {result}  [{phases}]"


#: The private Xvfb's size when --screen does not say.
DEFAULT_SCREEN = (1280, 800)
Screen = Annotated[
    str | None,
    typer.Option(
        "--screen", metavar="WxH", help="The desktop's screen size, e.g. 1600x900 (a private Xvfb; default 1280x800)."
    ),
]
Apps = Annotated[
    list[str] | None,
    typer.Option(
        "--app",
        metavar="NAME=COMMAND",
        help="A program to open on the desktop at the start, and open_app's by NAME (repeat), "
        "e.g. --app 'editor=mousepad /tmp/notes.txt'.",
    ),
]


def parse_screen(text: str, option: str = "--screen") -> tuple[int, int]:
    """``WIDTHxHEIGHT`` as a size in pixels, or the one-line exit saying how to write it."""
    m = re.fullmatch(r"\s*(\d+)\s*[xX×]\s*(\d+)\s*", text)
    size = (int(m[1]), int(m[2])) if m else None
    if size is None or not all(64 <= v <= 8192 for v in size):
        raise fail(f"{option} {text!r}: write WIDTHxHEIGHT, each 64 to 8192 pixels, e.g. {option} 1600x900")
    return size


def parse_apps(items: Iterable[str], option: str) -> dict[str, list[str]]:
    """``NAME=COMMAND ARGS`` items as NAME -> argv (split as a shell would, nothing run through a
    shell), or the one-line exit saying how to write them."""
    import shlex

    apps: dict[str, list[str]] = {}
    for item in items:
        name, _, command = item.partition("=")
        try:
            argv = shlex.split(command)
        except ValueError as e:  # an unclosed quote
            raise fail(f"{option} {item!r}: {e}") from None
        if not name.strip() or not argv:
            raise fail(f"{option} {item!r}: write NAME=COMMAND, e.g. {option} 'editor=mousepad /tmp/notes.txt'")
        if shutil.which(argv[0]) is None:
            raise fail(f"{option} {item!r}: there is no program {argv[0]!r} (not on PATH, or not executable)")
        apps[name.strip()] = argv
    return apps


def desktop_options(kind: str, headed: bool, screen: str | None, apps: list[str] | None) -> dict[str, Any]:
    """DesktopEnv's options from --screen and --app (checked now, before anything starts)."""
    if kind != "desktop":
        if screen or apps:
            raise fail(f"--screen and --app are for --env desktop, not {kind}")
        return {}
    options: dict[str, Any] = {}
    if screen:
        if headed:
            raise fail("--screen sizes the private display; with --headed the desktop is $DISPLAY's own")
        options["virtual_display"] = parse_screen(screen)
    if apps:
        options["apps"] = parse_apps(apps, "--app")
        options["open_apps"] = tuple(options["apps"])
    return options


@app.command()
def run(
    taskfile: Annotated[Path | None, typer.Argument(help="A YAML task file (see examples/todo.yaml).")] = None,
    task_text: Annotated[str | None, typer.Option("--task", help="An instruction, instead of a task file.")] = None,
    model_url: Annotated[
        str | None,
        typer.Option(
            help="An OpenAI-compatible server (e.g. http://127.0.0.1:30000/v1); a model then decides each step."
        ),
    ] = None,
    model: Annotated[str | None, typer.Option(help="The model name to request (default: the server's first).")] = None,
    profile: Annotated[
        str, typer.Option(help="The model's profile (prompt and answer format): qwen3-vl, json or ui-tars.")
    ] = "qwen3-vl",
    mode: Annotated[str | None, typer.Option(hidden=True, help="Replaced by --profile.")] = None,
    url: Annotated[str | None, typer.Option(help="Start here instead of the task file's url.")] = None,
    out: Annotated[Path, typer.Option(help="Where episodes are written.")] = Path("runs"),
    headed: Annotated[bool, typer.Option("--headed", help="Show the browser window.")] = False,
    max_steps: Annotated[int, typer.Option(min=1, help="Step budget (a task's own max_steps wins).")] = 30,
    max_seconds: Annotated[float | None, typer.Option(min=0.1, help="Time budget in seconds.")] = None,
    env: Annotated[
        str | None,
        typer.Option("--env", help="browser | desktop | android | mobile-web (default: from the task's env)"),
    ] = None,
    allow_domain: Annotated[
        list[str] | None,
        typer.Option(
            help="Only visit this host (and its subdomains); repeat for more. e.g. example.com, localhost:8080"
        ),
    ] = None,
    block_domain: Annotated[list[str] | None, typer.Option(help="Never visit this host; repeat for more.")] = None,
    block_subresources: Annotated[
        bool,
        typer.Option("--block-subresources", help="Also refuse images, scripts and fetches from hosts not allowed."),
    ] = False,
    approve: Annotated[
        str | None,
        typer.Option(
            help="Risky actions (password typing, code tools, ctrl+w …): ask (y/n on a terminal, else no), "
            "yes, or no. Default: ask when a model decides; yes for a script, whose author chose its steps."
        ),
    ] = None,
    screen: Screen = None,
    app_: Apps = None,
) -> None:
    """Run a task — a task file, or --task "instruction" with --model-url — in a browser, desktop or
    phone; print one line per step and the episode's folder."""
    if taskfile is not None:
        with exit_on(TaskFileError):
            task = load_task_file(taskfile)
    elif task_text:
        kinds: dict[str, EnvKind] = {"desktop": "desktop", "android": "mobile", "mobile-web": "mobile"}
        task = Task(instruction=task_text, env=kinds.get(env or "", "browser"))
    else:
        raise fail('give a task file, or --task "instruction" with --model-url URL')
    if url:
        task = task.model_copy(update={"url": url})
    with exit_on(VarError, prefix=f"{taskfile}: "):
        resolve_vars(task.vars)  # an unset environment variable fails here, before an env starts
    if mode is not None:
        new = {"json_schema": "json", "tool_call": "qwen3-vl"}.get(mode, "qwen3-vl, json or ui-tars")
        raise fail(f"--mode is gone: answer formats are model profiles now; use --profile {new}")
    policy = None
    if model_url:
        policy = _model_policy(model_url, model, profile)
    elif not task.steps:
        where = f"{taskfile}: the task has no `steps:`" if taskfile else "--task needs a model"
        raise fail(f"{where}; pass --model-url http://127.0.0.1:30000/v1 (start a server with `pixelpilot serve`)")
    with exit_on(UrlPolicyError, suffix=" (in --allow-domain / --block-domain)"):
        url_policy = UrlPolicy.of(allow_domain or (), block_domain or (), block_subresources=block_subresources)
    gate = Gate(url_policy, rules=ApprovalRules(), approver=make_approver(approve or ("ask" if model_url else "yes")))
    kind = env or task.runs_in
    desktop = desktop_options(kind, headed, screen, app_)
    episode = asyncio.run(
        _run(
            task,
            make_env(kind, headed=headed, url_policy=url_policy, desktop=desktop),
            out,
            Limits(max_steps, max_seconds),
            policy,
            gate,
        )
    )
    color = typer.colors.GREEN if episode.status == "success" else typer.colors.RED
    typer.secho(f"{episode.status}: {episode.message or ''}".rstrip(": "), fg=color)
    typer.echo(f"episode: {episode.path}")
    raise typer.Exit(0 if episode.status == "success" else 1)


def make_env(
    kind: str, *, headed: bool = False, url_policy: UrlPolicy | None = None, desktop: dict[str, Any] | None = None
) -> Env:
    """The environment ``--env`` names, built by ``envs.make``. The desktop is a private Xvfb unless
    ``--headed`` (then $DISPLAY), with ``desktop``'s options (``desktop_options``); Android takes
    $ANDROID_SERIAL, else the only device attached; browsers enforce ``url_policy``."""
    options: dict[str, Any] = {}
    if kind in ("browser", "mobile-web"):
        options = {"headless": not headed, "url_policy": url_policy}
    elif kind == "desktop":
        options = {**({} if headed else {"virtual_display": DEFAULT_SCREEN}), **(desktop or {})}
    with exit_on(ValueError, prefix="--env: "):
        return envs.make(kind, **options)


def make_approver(mode: str):
    """The approval callback for ``--approve``: a y/n prompt on a terminal; no one to ask means no."""
    if mode not in ("ask", "yes", "no"):
        raise fail(f"--approve must be ask, yes or no, not {mode!r}")
    if mode == "yes":
        return lambda request: True
    if mode == "no" or not sys.stdin.isatty():
        return None

    async def ask(request: ApprovalRequest) -> bool:
        question = f"approve: {request.reason} (at {request.url})?"
        return await asyncio.to_thread(typer.confirm, question, default=False)

    return ask


async def _run(task: Task, env, out: Path, limits: Limits, policy=None, gate: Gate | None = None):
    typer.echo(f"task: {task.instruction}")
    if policy is not None:
        from .serving.client import ServingError

        try:  # one clear line, before a browser starts, when the server is not there
            await policy.client.resolve_model()
        except ServingError as e:
            await policy.aclose()
            raise fail(str(e), 1) from None
    agent = Agent(
        env,
        policy_for(task, policy),
        recorder=Recorder(out),
        limits=limits,
        gate=gate,
        on_step=lambda s: typer.echo(describe_step(s)),
    )
    try:
        with exit_on(EnvError, code=1):
            return await agent.run(task)
    finally:
        await env.aclose()
        if policy is not None:
            await policy.aclose()


def _model_policy(model_url: str, model: str | None, profile: str):
    from .agent.model_policy import ModelPolicy

    with exit_on(ValueError):
        return ModelPolicy(model_url, model=model, profile=profile)


#: Options that `collect` and `eval` share: where the model is, which one, and how it is asked.
ModelUrls = Annotated[
    list[str] | None,
    typer.Option("--model-url", help="A model server (repeat for several; each episode sticks to one)."),
]
ModelName = Annotated[str | None, typer.Option(help="The model name to request (default: each server's first).")]
ProfileName = Annotated[
    str, typer.Option(help="The model's profile (prompt and answer format): qwen3-vl, json or ui-tars.")
]
Temperature = Annotated[
    float | None,
    typer.Option(
        min=0.0,
        help="Sample at this temperature instead of the model card's sampling (0: greedy, no penalties).",
    ),
]


def _sampling(temperature: float | None) -> Any:
    """The sampling a --temperature asks for: that temperature and the server's other defaults."""
    from .serving.client import Sampling

    return None if temperature is None else Sampling(temperature=temperature)


@app.command()
def serve(
    backend: Annotated[
        str, typer.Option(help="transformers (the local CPU/GPU backend) or sglang (GPU).")
    ] = "transformers",
    model: Annotated[
        str, typer.Option(help="A checkpoint directory or a Hugging Face model id.")
    ] = "Qwen/Qwen3-VL-2B-Instruct",
    host: Annotated[str, typer.Option(help="The address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="The port to listen on.")] = 30000,
    tp: Annotated[int, typer.Option(min=1, help="Tensor parallelism (sglang: GPUs per model).")] = 1,
    served_name: Annotated[str | None, typer.Option(help="The model name /v1/models reports.")] = None,
    threads: Annotated[int | None, typer.Option(min=1, help="CPU threads for torch (transformers).")] = None,
    device: Annotated[
        str | None,
        typer.Option(
            help="Where the transformers backend runs: cpu, cuda, cuda:1 … (default: the first CUDA device if any, else cpu)."
        ),
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the command and exit (sglang).")] = False,
) -> None:
    """Serve a Qwen3-VL model behind an OpenAI-compatible API at http://HOST:PORT/v1."""
    if backend == "sglang":
        from .serving.sglang import SGLangConfig, SGLangServer

        config = SGLangConfig(model=model, host=host, port=port, tp=tp)
        if dry_run:
            typer.echo(config.shell())
            raise typer.Exit(0)
        raise typer.Exit(SGLangServer(config).run())
    if backend != "transformers":
        raise fail(f"unknown backend {backend!r}; use transformers or sglang")
    if dry_run:
        raise fail("--dry-run only applies to --backend sglang")
    try:
        from .serving.local import serve as serve_local
    except ImportError as e:
        raise fail(
            f"the transformers backend needs the 'local' extra ({e.name} is missing): pip install 'pixelpilot[local]'"
        ) from None
    with exit_on(ValueError):
        serve_local(model, host=host, port=port, served_name=served_name, threads=threads, device=device)


# --- trajectories: replay, export, view, stats -----------------------------------------------------


@app.command()
def replay(
    episode: Annotated[Path, typer.Argument(help="A recorded episode folder.")],
    heal: Annotated[
        bool,
        typer.Option(
            "--heal", help="Redo diverged steps on their recorded target, found again by its text, instead of stopping."
        ),
    ] = False,
    threshold: Annotated[
        float,
        typer.Option(
            min=0.0, max=1.0, help="Largest screen difference (fraction of perceptual-hash bits) that still matches."
        ),
    ] = 0.1,
    url: Annotated[str | None, typer.Option(help="Start here instead of the recorded task's url.")] = None,
    out: Annotated[Path, typer.Option(help="Where the replay's episode is written.")] = Path("runs"),
    headed: Annotated[bool, typer.Option("--headed", help="Show the browser window.")] = False,
) -> None:
    """Re-execute a recorded episode without a model, checking the screen before each step."""
    from .agent.replay import TargetHealer
    from .agent.replay import replay as run_replay
    from .trajectories import EpisodeError, load_episode

    with exit_on(FileNotFoundError, EpisodeError):
        recorded = load_episode(episode)
    if recorded.env != "browser":
        raise fail(f"{episode}: replay from the CLI drives a browser; this episode ran in a {recorded.env} env")
    healer = TargetHealer(recorded) if heal else None

    def show(step: Step) -> None:
        r = step.extra.get("replay", {})
        tag = "healed" if r.get("healed") else "match" if r.get("match") else "DIVERGED"
        typer.echo(f"{describe_step(step)}  {tag} {r.get('distance', 0):.3f}")

    async def main():
        env = make_env("browser", headed=headed)
        try:
            with exit_on(EnvError, code=1):
                return await run_replay(
                    recorded, env, recorder=Recorder(out), url=url, threshold=threshold, heal=healer, on_step=show
                )
        finally:
            await env.aclose()

    result = asyncio.run(main())
    color = typer.colors.GREEN if result.status == "success" else typer.colors.RED
    typer.secho(f"{result.status}: {result.message or ''}".rstrip(": "), fg=color)
    typer.echo(f"episode: {result.path}")
    raise typer.Exit(0 if result.status == "success" else 1)


@app.command()
def export(
    episodes: Annotated[list[Path], typer.Argument(help="Episode folders, or folders that hold them.")],
    format: Annotated[str, typer.Option("--format", "-f", help="qwen | llamafactory | hf | grounding")] = "qwen",
    out: Annotated[Path, typer.Option(help="The folder to write.")] = Path("export"),
    status: Annotated[
        list[str] | None,
        typer.Option(help="Keep episodes with this status (repeatable; 'any' keeps all). Default: success."),
    ] = None,
    min_steps: Annotated[int | None, typer.Option(min=0, help="Drop episodes with fewer steps.")] = None,
    max_steps: Annotated[int | None, typer.Option(min=0, help="Drop episodes with more steps.")] = None,
    profile: Annotated[
        str,
        typer.Option(help="The model profile for steps no model decided (scripts): qwen3-vl, json or ui-tars."),
    ] = "qwen3-vl",
    history_images: Annotated[
        int | None,
        typer.Option(min=1, help="Screenshots the history keeps, for steps no model decided (the profile's default)."),
    ] = None,
    actions: Annotated[
        list[str] | None,
        typer.Option(
            "--action",
            help="For steps no model decided: an action the prompt offers (repeatable; default: all the env "
            "accepts). Give a suite's actions when its tasks offered fewer.",
        ),
    ] = None,
    image_size: Annotated[
        str, typer.Option(help="model: re-encode at the size the model saw; original: keep.")
    ] = "model",
) -> None:
    """Export episodes as training data for Qwen3-VL, LLaMA-Factory, Hugging Face datasets or grounding.

    Each sample is the request the model was sent at that step (rebuilt with its profile), and the
    answer it gave or, for a scripted step, the one its profile writes."""
    from .trajectories import EpisodeError
    from .trajectories.export import ExportError, export_episodes

    statuses = None if status and "any" in status else tuple(status or ("success",))
    if image_size not in ("model", "original"):
        raise fail(f"--image-size must be model or original, got {image_size!r}")
    with exit_on(ExportError, FileNotFoundError, EpisodeError):
        report = export_episodes(
            episodes,
            out,
            format=format,  # type: ignore[arg-type]  # checked by export_episodes
            statuses=statuses,
            min_steps=min_steps,
            max_steps=max_steps,
            profile=profile,
            history_images=history_images,
            actions=actions,
            image_size=image_size,  # type: ignore[arg-type]
        )
    for ep, why in report.skipped.items():
        typer.echo(f"skipped {ep}: {why}")
    for step, why in report.left_out.items():
        typer.echo(f"left out step {step}: {why}")
    _skipped(report.unreadable.values())
    unreadable = f", {len(report.unreadable)} unreadable episodes skipped" if report.unreadable else ""
    typer.echo(
        f"{report.format}: {len(report.episodes)} episodes, {report.steps} steps -> {report.samples} samples, "
        f"{report.images} images{unreadable}"
    )
    for f in report.files:
        typer.echo(f"wrote {f}")


@app.command()
def train(
    data: Annotated[Path, typer.Argument(help="An hf export (pixelpilot export -f hf).")],
    model: Annotated[str, typer.Option(help="The checkpoint to start from: a directory or a Hugging Face model id.")],
    out: Annotated[Path, typer.Option(help="Where the merged checkpoint, its config and the run's checkpoints go.")],
    method: Annotated[
        str | None, typer.Option(help="lora or full (default: lora on CUDA, full fine-tuning on CPU).")
    ] = None,
    epochs: Annotated[float, typer.Option(min=0.0, help="Passes over the data.")] = 1.0,
    max_steps: Annotated[int | None, typer.Option(min=1, help="Stop after this many optimizer steps.")] = None,
    time_limit: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            help="Stop (and save) after this many minutes of training; the learning-rate schedule keeps pace with the clock, so it has decayed by then.",
        ),
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Samples per step and device.")] = 8,
    grad_accum: Annotated[int, typer.Option(min=1, help="Batches per optimizer step.")] = 1,
    lr: Annotated[float | None, typer.Option(help="Peak learning rate (default: 2e-4 LoRA, 1e-5 full).")] = None,
    warmup: Annotated[float, typer.Option(min=0.0, help="Warm-up: a fraction of the steps, or steps if ≥ 1.")] = 0.03,
    scheduler: Annotated[str, typer.Option(help="The learning-rate schedule (cosine, linear, constant …).")] = "cosine",
    lora_rank: Annotated[int, typer.Option(min=1, help="LoRA rank.")] = 16,
    freeze: Annotated[
        list[str] | None,
        typer.Option(help="Full fine-tuning: keep vision, embeddings or head as they are (repeatable)."),
    ] = None,
    save_steps: Annotated[int, typer.Option(min=1, help="Save a checkpoint every this many steps.")] = 200,
    vocab: Annotated[
        str,
        typer.Option(
            help="The loss's softmax: full (the whole vocabulary) or answers (the tokens the answers use: "
            "a small model trained from scratch)."
        ),
    ] = "full",
    prefix_grad: Annotated[
        bool,
        typer.Option(
            help="Let the gradient flow through the system prompt every sample shares; --no-prefix-grad "
            "treats it as a constant of each step (a model trained from scratch)."
        ),
    ] = True,
    seed: Annotated[int, typer.Option(help="Seed for the initialization of adapters and the data order.")] = 0,
    device: Annotated[str | None, typer.Option(help="cpu, cuda, cuda:1 … (default: CUDA when there is one).")] = None,
    threads: Annotated[int | None, typer.Option(min=1, help="CPU threads for torch.")] = None,
    gradient_checkpointing: Annotated[
        bool, typer.Option("--gradient-checkpointing", help="Trade compute for memory (large models on one GPU).")
    ] = False,
    resume: Annotated[bool, typer.Option("--resume", help="Continue from the last checkpoint in OUT.")] = False,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Fine-tune a Qwen3-VL checkpoint on exported runs (TRL SFTTrainer; loss on the answers only);
    write the merged checkpoint that `pixelpilot serve` loads."""
    if method not in (None, "lora", "full"):
        raise fail(f"--method must be lora or full, not {method!r}")
    if vocab not in ("full", "answers"):
        raise fail(f"--vocab must be full or answers, not {vocab!r}")
    try:
        from .train import TrainConfig, TrainDataError
        from .train import train as run_training
    except ImportError as e:
        raise fail(f"training needs the 'train' extra ({e.name} is missing): pip install 'pixelpilot[train]'") from None
    config = TrainConfig(
        data=str(data),
        model=model,
        out=str(out),
        method=method,  # type: ignore[arg-type]  # checked above
        epochs=epochs,
        max_steps=max_steps,
        time_limit=time_limit,
        batch_size=batch_size,
        grad_accum=grad_accum,
        lr=lr,
        warmup=warmup,
        scheduler=scheduler,
        lora_rank=lora_rank,
        lora_alpha=2 * lora_rank,
        freeze=tuple(freeze or ()),
        vocab=vocab,  # type: ignore[arg-type]  # checked above
        prefix_grad=prefix_grad,
        save_steps=save_steps,
        seed=seed,
        device=device,
        threads=threads,
        gradient_checkpointing=gradient_checkpointing,
        resume=resume,
        progress=progress,
    )
    with exit_on(TrainDataError, ValueError, OSError):
        report = run_training(config)
    typer.echo(report.line())
    typer.echo(f"serve it: pixelpilot serve --backend transformers --model {out}")


@app.command()
def view(
    episode: Annotated[Path, typer.Argument(help="An episode folder, or a folder of episodes (an index is written).")],
    out: Annotated[
        Path | None, typer.Option(help="The page to write (default: report.html / index.html inside).")
    ] = None,
    link: Annotated[
        bool, typer.Option("--link", help="Reference screenshots by relative path instead of inlining them.")
    ] = False,
) -> None:
    """Write an HTML page showing each step's screenshot with its action drawn on it."""
    from .trajectories import EpisodeError
    from .trajectories.viewer import write_report

    skipped: list[str] = []
    with exit_on(FileNotFoundError, EpisodeError):
        page = write_report(episode, out, inline=not link, on_skip=skipped.append)
    _skipped(skipped)
    typer.echo(f"wrote {page}" + (f" ({len(skipped)} unreadable episodes skipped)" if skipped else ""))


@app.command()
def stats(
    dirs: Annotated[list[Path], typer.Argument(help="Folders of episodes (or episode folders).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Episodes by status, steps, tokens and time per phase."""
    import json

    from .trajectories.stats import format_stats, stats_for

    with exit_on(FileNotFoundError):
        st = stats_for(dirs)
    _skipped(st.skipped.values())
    typer.echo(json.dumps(st.to_json(), indent=2) if as_json else format_stats(st))


def _skipped(problems: Iterable[str]) -> None:
    """One line on stderr per episode a command skipped, naming its file and the problem."""
    for line in problems:
        typer.secho(f"skipped {line}", err=True, fg=typer.colors.YELLOW)


# --- tools: the local search index ------------------------------------------------------------------

#: ``--db``, the same option in ``index`` and ``search``.
_IndexFile = Annotated[Path | None, typer.Option(help="The index file (default: ~/.cache/pixelpilot/search.sqlite).")]


@app.command()
def index(
    folder: Annotated[Path, typer.Argument(help="A folder of documents (.txt, .md, .rst, .html).")],
    db: _IndexFile = None,
) -> None:
    """Index a folder for the `search` tool (SQLite FTS5); re-running reads only what changed."""
    from .tools.search import LocalIndex, SearchError

    idx = LocalIndex(db)
    with exit_on(SearchError):
        r = idx.add_folder(folder)
    typer.echo(f"{idx.db}: {r.added} added, {r.updated} updated, {r.removed} removed, {r.unchanged} unchanged")


@app.command()
def search(
    query: Annotated[str, typer.Argument(help="Words to look for.")],
    db: _IndexFile = None,
    limit: Annotated[int, typer.Option(min=1, max=50, help="How many results.")] = 5,
) -> None:
    """Search an index built by `pixelpilot index`: ranked results with snippets."""
    from .tools.search import LocalIndex, SearchError, format_results

    with exit_on(SearchError):
        typer.echo(format_results(LocalIndex(db).search_sync(query, limit)))


@app.command()
def collect(
    tasks: Annotated[Path, typer.Argument(help="A JSONL task file: one task per line (see the README).")],
    out: Annotated[Path, typer.Option(help="Where episodes are written; run again to resume.")],
    concurrency: Annotated[int, typer.Option(min=1, help="Episodes at once.")] = 4,
    rollouts: Annotated[int, typer.Option(min=1, help="Episodes per task.")] = 1,
    model_url: ModelUrls = None,
    model: ModelName = None,
    profile: ProfileName = "qwen3-vl",
    temperature: Temperature = None,
    ray: Annotated[
        str | None,
        typer.Option(
            "--ray",
            metavar="ADDRESS",
            help="Run in Ray actors: `local` starts a cluster here, `auto` joins this "
            "machine's, or a ray://host:port address.",
        ),
    ] = None,
    actors: Annotated[int | None, typer.Option(min=1, help="Ray actors (default: 2).")] = None,
    timeout: Annotated[float, typer.Option(min=1, help="Wall-clock seconds per episode.")] = 300.0,
    max_steps: Annotated[int, typer.Option(min=1, help="Step budget (a task's own max_steps wins).")] = 30,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
    android_serial: Annotated[
        list[str] | None,
        typer.Option(
            "--android-serial",
            help="A phone Android tasks may use (repeat; default: every device `adb devices` lists).",
        ),
    ] = None,
    desktop_app: Annotated[
        list[str] | None,
        typer.Option(
            "--desktop-app", metavar="NAME=COMMAND", help="A program desktop tasks may open_app by NAME (repeat)."
        ),
    ] = None,
    screen: Screen = None,
) -> None:
    """Run every task of a task file, many episodes at once; resume what a stopped run left undone.

    Browser tasks share one Chromium, a context each; each desktop task gets an Xvfb of its own;
    each Android task a phone of its own for as long as it runs.
    """
    from .agent.collect import Policies, RunnerConfig, load_tasks
    from .agent.collect import collect as run_collect

    with exit_on(TaskFileError):
        specs = load_tasks(tasks)
    from .profiles import get_profile

    with exit_on(ValueError):
        get_profile(profile)
    apps = parse_apps(desktop_app or (), "--desktop-app")
    config = RunnerConfig(
        out=out,
        timeout=timeout,
        limits=Limits(max_steps=max_steps),
        policy_factory=Policies(model=model, profile=profile, sampling=_sampling(temperature)),
        desktop_apps=apps,
        android_serials=tuple(android_serial or ()),
        desktop_size=parse_screen(screen) if screen else RunnerConfig.desktop_size,
    )
    urls = model_url or []
    with exit_on_run_errors():
        if ray is None:
            summary = asyncio.run(
                run_collect(
                    specs, config, concurrency=concurrency, rollouts=rollouts, model_urls=urls, progress=progress
                )
            )
        else:
            from .agent.collect import ray_collect

            summary = asyncio.run(
                ray_collect(
                    specs,
                    config,
                    address=ray,
                    actors=actors or 2,
                    concurrency=concurrency,
                    rollouts=rollouts,
                    model_urls=urls,
                    progress=progress,
                )
            )
    typer.echo(summary.line())
    typer.echo(f"episodes: {out}")


# --- as a service: the MCP server and the HTTP job API ------------------------------------------------

#: Options that `mcp` and `server` share: where episodes go, which hosts are allowed, who may call.
ServiceOut = Annotated[Path, typer.Option(help="Where episodes are written (one folder per job, and session/).")]
AllowDomains = Annotated[
    list[str] | None, typer.Option("--allow-domain", help="Only visit this host; repeat for more.")
]
BlockDomains = Annotated[
    list[str] | None, typer.Option("--block-domain", help="Never visit this host; repeat for more.")
]
Token = Annotated[
    str | None,
    typer.Option(
        envvar="PIXELPILOT_API_TOKEN",
        help="Clients must send `Authorization: Bearer TOKEN` (required beyond loopback).",
    ),
]


def _jobs(
    out: Path,
    url_policy: UrlPolicy,
    model_urls: list[str] | None,
    model: str | None,
    profile: str,
    concurrency: int,
    timeout: float,
    max_steps: int,
):
    """The job runner both services run tasks with: collect's runner, the URL policy in every env."""
    from .agent.collect import Policies, RunnerConfig
    from .profiles import get_profile
    from .service import JobRunner

    with exit_on(ValueError):
        get_profile(profile)
    config = RunnerConfig(
        out=out,
        timeout=timeout,
        limits=Limits(max_steps=max_steps),
        policy_factory=Policies(model=model, profile=profile),
        url_policy=url_policy,
        gate=Gate(url_policy, rules=None),  # as in `collect`: the URL policy, no approvals
    )
    return JobRunner(config, model_urls=model_urls or [], concurrency=concurrency)


def _url_policy(allow: list[str] | None, block: list[str] | None) -> UrlPolicy:
    with exit_on(UrlPolicyError, suffix=" (in --allow-domain / --block-domain)"):
        return UrlPolicy.of(allow or (), block or ())


@app.command()
def mcp(
    env: Annotated[str, typer.Option("--env", help="browser | desktop | android | mobile-web")] = "browser",
    url: Annotated[str | None, typer.Option(help="Where each live episode starts.")] = None,
    out: ServiceOut = Path("runs"),
    transport: Annotated[str, typer.Option(help="stdio, or http (streamable HTTP at /mcp).")] = "stdio",
    host: Annotated[str, typer.Option(help="The address to listen on (http).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="The port to listen on (http).")] = 8000,
    token: Token = None,
    headed: Annotated[bool, typer.Option("--headed", help="Show the browser window.")] = False,
    approve: Annotated[
        str, typer.Option(help="Risky actions the client asks for (typing a password …): yes or no.")
    ] = "no",
    allow_domain: AllowDomains = None,
    block_domain: BlockDomains = None,
    model_url: ModelUrls = None,
    model: ModelName = None,
    profile: ProfileName = "qwen3-vl",
    max_steps: Annotated[int, typer.Option(min=1, help="Step budget of a run_task episode.")] = 30,
    timeout: Annotated[float, typer.Option(min=1, help="Wall-clock seconds per run_task episode.")] = 300.0,
    screen: Screen = None,
    app_: Apps = None,
) -> None:
    """Serve pixelpilot to other agents over MCP: tools on one live env (screenshot, click, type …,
    each recorded as a step) and whole tasks (run_task), with the episodes as resources."""
    from .service.auth import check_binding

    try:
        from .service.mcp_server import Service, serve_mcp
    except ImportError as e:
        raise fail(
            f"`pixelpilot mcp` needs the 'tools' extra ({e.name} is missing): pip install 'pixelpilot[tools]'"
        ) from None

    if approve not in ("yes", "no"):
        raise fail(f"--approve must be yes or no, not {approve!r} (no one can be asked over MCP)")
    if transport not in ("stdio", "http"):
        raise fail(f"--transport must be stdio or http, not {transport!r}")
    from .envs.registry import env_class

    kind = "android" if env == "mobile" else env
    with exit_on(ValueError, prefix="--env: "):
        env_class(kind)  # an unknown env fails here, before a client connects
        if transport == "http":
            check_binding(host, token)
    url_policy = _url_policy(allow_domain, block_domain)
    jobs = _jobs(out, url_policy, model_url, model, profile, 4, timeout, max_steps)
    gate = Gate(url_policy, rules=ApprovalRules(), approver=make_approver(approve))
    desktop = desktop_options(kind, headed, screen, app_)
    service = Service(
        lambda: make_env(kind, headed=headed, url_policy=url_policy, desktop=desktop), jobs, out=out, gate=gate, url=url
    )
    asyncio.run(serve_mcp(service, transport=transport, host=host, port=port, token=token))  # type: ignore[arg-type]


@app.command()
def server(
    out: ServiceOut = Path("runs"),
    host: Annotated[str, typer.Option(help="The address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="The port to listen on.")] = 8765,
    token: Token = None,
    concurrency: Annotated[int, typer.Option(min=1, help="Episodes at once, per job.")] = 4,
    allow_domain: AllowDomains = None,
    block_domain: BlockDomains = None,
    model_url: ModelUrls = None,
    model: ModelName = None,
    profile: ProfileName = "qwen3-vl",
    max_steps: Annotated[int, typer.Option(min=1, help="Step budget (a task's own max_steps wins).")] = 30,
    timeout: Annotated[float, typer.Option(min=1, help="Wall-clock seconds per episode.")] = 300.0,
) -> None:
    """Serve an HTTP job API: submit collect task files, follow their steps (server-sent events),
    fetch their episodes and reports (see the README for the endpoints)."""
    from .service.auth import check_binding

    try:
        from .service.http_api import serve_api
    except ImportError as e:
        raise fail(
            f"`pixelpilot server` needs the 'server' extra ({e.name} is missing): pip install 'pixelpilot[server]'"
        ) from None

    with exit_on(ValueError):
        check_binding(host, token)
    jobs = _jobs(
        out, _url_policy(allow_domain, block_domain), model_url, model, profile, concurrency, timeout, max_steps
    )
    typer.echo(f"pixelpilot jobs API on http://{host}:{port}/ (episodes in {out})", err=True)
    asyncio.run(serve_api(jobs, host=host, port=port, token=token))


# --- evaluation: suites, grounding, the scoreboard ----------------------------------------------------


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-")[:60] or "run"


@app.command("eval")
def eval_(
    suite: Annotated[
        str, typer.Argument(help="A suite (miniwob, or one of yours as package.module:Class) or `grounding`.")
    ],
    data: Annotated[
        Path | None, typer.Argument(help="For `grounding`: a grounding export or a ScreenSpot-style JSON file.")
    ] = None,
    model_url: ModelUrls = None,
    model: ModelName = None,
    profile: ProfileName = "qwen3-vl",
    temperature: Temperature = None,
    max_tokens: Annotated[
        int | None,
        typer.Option(min=1, help="The most tokens one answer may take (default 512); longer ones are cut and fail."),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(help="Where episodes and results go (default: evals/SUITE/MODEL); run again to resume."),
    ] = None,
    label: Annotated[str | None, typer.Option(help="The run's name on the scoreboard (default: the model).")] = None,
    tasks: Annotated[
        str | None, typer.Option(help="Only tasks whose id matches these comma-separated patterns (click-*,enter-*).")
    ] = None,
    seeds: Annotated[int, typer.Option(min=1, help="Episodes per task, each from its own seed.")] = 1,
    first_seed: Annotated[int, typer.Option(min=0, help="The first seed (held-out seeds: past those trained on).")] = 0,
    concurrency: Annotated[int, typer.Option(min=1, help="Episodes (or requests) at once.")] = 4,
    ray: Annotated[
        str | None,
        typer.Option("--ray", metavar="ADDRESS", help="Run in Ray actors: local, auto or a ray:// address."),
    ] = None,
    actors: Annotated[int, typer.Option(min=1, help="Ray actors.")] = 2,
    max_steps: Annotated[int, typer.Option(min=1, help="Step budget per episode.")] = 15,
    timeout: Annotated[float, typer.Option(min=1, help="Wall-clock seconds per episode.")] = 300.0,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
    images: Annotated[
        Path | None, typer.Option(help="For `grounding`: the folder of a ScreenSpot-style file's images.")
    ] = None,
    bbox_format: Annotated[
        str | None,
        typer.Option(help="For `grounding`: how boxes are written, xywh or xyxy (default: from the file's layout)."),
    ] = None,
) -> None:
    """Evaluate a model on a benchmark suite with the benchmark's own reward; write results.json and
    scoreboard.html. A stopped run resumes when the same command runs again."""
    from .evals import SuiteError

    urls = model_url or []
    if not urls:
        raise fail("pass the model server to evaluate with --model-url (e.g. http://127.0.0.1:30000/v1)")
    with exit_on(ValueError):
        from .profiles import get_profile

        get_profile(profile)
    out = out or Path("evals") / suite / _slug(label or model or urls[0].split("://")[-1])
    with exit_on_run_errors(SuiteError):
        if suite == "grounding":
            if data is None:
                raise fail("`pixelpilot eval grounding` needs DATA: a grounding export or a ScreenSpot-style JSON file")
            from .evals.grounding import evaluate_grounding

            if bbox_format not in (None, "xywh", "xyxy"):
                raise fail(f"--bbox-format {bbox_format!r}: use xywh or xyxy")
            results = asyncio.run(
                evaluate_grounding(
                    data,
                    out,
                    model_urls=urls,
                    model=model,
                    profile=profile,
                    concurrency=concurrency,
                    label=label,
                    images=images,
                    bbox_format=bbox_format,  # type: ignore[arg-type]
                    progress=progress,
                )
            )
        else:
            if data is not None:
                raise fail(f"suite {suite!r} takes no DATA argument (only `grounding` does)")
            from .evals import evaluate

            results = asyncio.run(
                evaluate(
                    suite,
                    out,
                    model_urls=urls,
                    model=model,
                    profile=profile,
                    sampling=_sampling(temperature),
                    max_tokens=max_tokens,
                    seeds=seeds,
                    first_seed=first_seed,
                    tasks=tasks,
                    concurrency=concurrency,
                    ray=ray,
                    actors=actors,
                    max_steps=max_steps,
                    timeout=timeout,
                    label=label,
                    progress=progress,
                )
            )
    typer.echo(results.line())
    typer.echo(f"results: {out / 'results.json'}")
    typer.echo(f"scoreboard: {out / 'scoreboard.html'}")


@app.command()
def scoreboard(
    runs: Annotated[list[Path], typer.Argument(help="Evaluation folders (or their results.json) to compare.")],
    out: Annotated[Path, typer.Option(help="The HTML page to write.")] = Path("scoreboard.html"),
) -> None:
    """Compare evaluation runs side by side (model A vs B, before vs after fine-tuning) on one page."""
    from .evals.scoreboard import write_scoreboard

    with exit_on(ValueError, OSError):
        path = write_scoreboard([r / "results.json" if r.is_dir() else r for r in runs], out)
    typer.echo(f"scoreboard: {path}")


if __name__ == "__main__":  # pragma: no cover
    app()
