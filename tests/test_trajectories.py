"""Trajectories as training data: exports, replay, the HTML viewer and stats, on episodes recorded
in real Chromium with ScriptPolicy against the example to-do app."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from PIL import Image
from todo_app import TodoApp  # examples/, put on the path by conftest

from pixelpilot import parse_output
from pixelpilot.actions import Grid
from pixelpilot.agent import Agent, ScriptPolicy, load_task_file
from pixelpilot.agent.replay import ReplayPolicy, replay
from pixelpilot.envs.browser import BrowserEnv
from pixelpilot.profiles import DecodeContext, first_shown, get_profile
from pixelpilot.trajectories import Recorder, Step, load_episode
from pixelpilot.trajectories.export import export_episodes
from pixelpilot.trajectories.samples import target_text
from pixelpilot.trajectories.stats import stats_for
from pixelpilot.trajectories.viewer import write_report

ROOT = Path(__file__).resolve().parents[1]

BANNER = b'<div style="background:#ffd54f;padding:40px;font-size:28px">Scheduled maintenance tonight</div>'


def add_banner(app: TodoApp, path: str) -> None:
    """Change the app's page at ``path``: a banner on top pushes everything down."""
    base = app.server.RequestHandlerClass

    class Changed(base):  # type: ignore[misc, valid-type]
        def _send(self, body: bytes, *args, **kwargs) -> None:
            if self.path == path and body:
                body = body.replace(b"<main>", BANNER + b"<main>")
            super()._send(body, *args, **kwargs)

    app.server.RequestHandlerClass = Changed


@pytest.fixture(scope="session")
async def runs(shared_browser, tmp_path_factory):
    """Two real episodes: the demo task (success), and a short one that scrolls and then fails."""
    root = tmp_path_factory.mktemp("runs")
    demo = load_task_file(ROOT / "examples" / "todo.yaml")
    failing = demo.model_copy(
        update={
            "name": "todo-fail",
            "steps": [
                {"type": {"text": "alice", "into": "Username"}},
                {"scroll": {"dy": 300}},
                {"expect": {"text": "No such text", "timeout": 0.3}},
            ],
        }
    )
    episodes = {}
    with TodoApp() as app:
        for key, task in (("ok", demo), ("fail", failing)):
            # A generous settle time: on a loaded machine a screenshot taken mid-navigation fails.
            env = BrowserEnv(browser=shared_browser, settle_timeout=10)
            try:
                ep = await Agent(env, ScriptPolicy(), recorder=Recorder(root)).run(
                    task.model_copy(update={"url": app.url})
                )
            finally:
                await env.aclose()
            episodes[key] = load_episode(ep.path)
    assert episodes["ok"].status == "success" and episodes["fail"].status == "failure"
    return root, episodes


# --- exports ---------------------------------------------------------------------------------------


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _human(conv: list[dict]) -> str:
    return "".join(t["value"] for t in conv if t["from"] == "human")


def _shown(index: int, keep: int, block: int = 8) -> int:
    """Screenshots in the request for step ``index``: the kept past ones and the current one."""
    return index - first_shown(index, keep, block) + 1


def test_qwen_export_round_trips(runs, tmp_path):
    root, eps = runs
    ok = eps["ok"]
    report = export_episodes([root], tmp_path, format="qwen", history_images=3)
    assert report.skipped == {eps["fail"].id: "status failure (kept: success)"} and report.left_out == {}
    rows = _jsonl(tmp_path / "data.jsonl")
    assert len(rows) == len(ok.steps) == report.samples
    for row, step in zip(rows, ok.steps, strict=False):
        # the qwen3-vl request: system prompt, one turn per kept step, the answer last
        assert row["system"].startswith("# Tools\n") and '"name": "computer_use"' in row["system"]
        assert _human(row["conversations"]).count("<image>") == len(row["image"]) == _shown(step.index, 3)
        assert [t["from"] for t in row["conversations"]] == ["human", "gpt"] * _shown(step.index, 3)
        assert row["conversations"][0]["value"].startswith("<image>Please generate the next move")
        for rel in row["image"]:
            with Image.open(tmp_path / rel) as img:
                assert img.size == (1280, 800)  # 1,000 tokens: within the budget, sent as it is
        # The current screen is the last image, byte for byte the recorded one.
        assert (tmp_path / row["image"][-1]).read_bytes() == (Path(ok.path) / step.screenshot).read_bytes()
        answer = row["conversations"][-1]["value"]
        assert answer.startswith("Action: ") and parse_output(answer).action.model_dump(mode="json") == step.action
    # Steps older than the kept screenshots are listed as text in the first turn.
    last = rows[-1]["conversations"][0]["value"]
    older = first_shown(len(ok.steps) - 1, 3, 8)
    assert older > 0 and all(f"Step {i + 1}: " in last for i in range(older)) and f"Step {older + 1}: " not in last


def test_llamafactory_export_loads_with_datasets_json(runs, tmp_path):
    import datasets

    root, eps = runs
    export_episodes([root], tmp_path, format="llamafactory", statuses=None)
    info = json.loads((tmp_path / "dataset_info.json").read_text())
    entry = info["pixelpilot"]
    assert entry["formatting"] == "sharegpt" and entry["columns"]["system"] == "system"
    # LLaMA-Factory reads a sharegpt file with datasets' json loader; do the same.
    ds = datasets.load_dataset("json", data_files=str(tmp_path / entry["file_name"]), split="train")
    assert ds.num_rows == len(eps["ok"].steps) + len(eps["fail"].steps)
    for row in ds:
        turns = row[entry["columns"]["messages"]]
        images = row[entry["columns"]["images"]]
        assert sum(t["value"].count("<image>") for t in turns) == len(images) >= 1
        assert [t["from"] for t in turns] == ["human", "gpt"] * (len(turns) // 2)
        assert row["system"].startswith("# Tools")
        assert all((tmp_path / p).is_file() for p in images)


def test_hf_export_loads_with_load_dataset(runs, tmp_path):
    import datasets

    root, eps = runs
    ok = eps["ok"]
    export_episodes([root], tmp_path, format="hf", history_images=2)
    ds = datasets.load_dataset(str(tmp_path), split="train")
    assert ds.num_rows == len(ok.steps)
    for row, step in zip(ds, ok.steps, strict=False):
        assert row["episode"] == ok.id and row["step"] == step.index and row["profile"] == "qwen3-vl"
        images = row["images"]
        assert len(images) == _shown(step.index, 2)
        assert all(isinstance(im, Image.Image) and im.size == (1280, 800) for im in images)
        roles = [m["role"] for m in row["messages"]]
        assert roles == ["system"] + ["user", "assistant"] * len(images)
        parts = [p["type"] for m in row["messages"] for p in m["content"]]
        assert parts.count("image") == len(images)
        assert json.loads(row["action"]) == step.action
        answer = row["messages"][-1]["content"][0]["text"]
        assert parse_output(answer).action.model_dump(mode="json") == step.action


def test_grounding_points_lie_inside_their_targets(runs, tmp_path):
    root, eps = runs
    ok = eps["ok"]
    export_episodes([root], tmp_path, format="grounding")
    rows = _jsonl(tmp_path / "grounding.jsonl")
    pointing = [s for s in ok.steps if s.action["action"] in ("click", "double_click", "triple_click")]
    assert len(rows) == len(pointing) > 0
    for row, step in zip(rows, pointing, strict=False):
        box = step.extra["target"]["box"]  # the element acted on, in CSS px, as the step recorded it
        assert row["target"] == step.extra["target"]["text"] and row["profile"] == "qwen3-vl"
        w, h = step.observation["input_width"], step.observation["input_height"]
        x, y = row["point_2d"]  # Qwen3-VL grounds on a 0..1000 scale
        px, py = x * w / 1000, y * h / 1000
        assert box[0] - 1 <= px <= box[0] + box[2] + 1 and box[1] - 1 <= py <= box[1] + box[3] + 1, (row, box)
        x1, y1, x2, y2 = row["bbox_2d"]
        assert x1 <= x <= x2 and y1 <= y <= y2
        found = json.loads(row["conversations"][1]["value"])
        assert found == [{"bbox_2d": row["bbox_2d"], "point_2d": row["point_2d"], "label": row["target"]}]
        with Image.open(tmp_path / row["image"]) as img:
            assert img.size == (w, h)


def test_export_reencodes_at_the_size_the_model_saw(runs, tmp_path):
    """A model run records the resized image size; the export stores images at that size."""
    root, eps = runs
    src = Path(eps["ok"].path)
    copy = tmp_path / "model-run" / src.name
    shutil.copytree(src, copy)
    lines = [json.loads(line) for line in (copy / "steps.jsonl").read_text().splitlines()]
    for line in lines:
        line["model_image"] = [640, 416]
    (copy / "steps.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    export_episodes([copy], tmp_path / "model", format="qwen", history_images=1)
    export_episodes([copy], tmp_path / "orig", format="qwen", history_images=1, image_size="original")
    for name, size in (("model", (640, 416)), ("orig", (1280, 800))):
        rows = _jsonl(tmp_path / name / "data.jsonl")
        assert len(rows) == len(lines)
        for row in rows:
            with Image.open(tmp_path / name / row["image"][0]) as img:
                assert img.size == size


def test_export_filters_and_errors(runs, tmp_path):
    root, eps = runs
    n_fail = len(eps["fail"].steps)
    r = export_episodes([root], tmp_path / "a", format="qwen", statuses=("failure",))
    assert r.episodes == [eps["fail"].id] and r.samples == n_fail
    r = export_episodes([root], tmp_path / "b", format="qwen", statuses=None, min_steps=n_fail + 1)
    assert r.episodes == [eps["ok"].id]
    r = export_episodes([root], tmp_path / "c", format="qwen", statuses=None, max_steps=n_fail)
    assert r.episodes == [eps["fail"].id]
    with pytest.raises(ValueError, match="unknown export format 'csv'"):
        export_episodes([root], tmp_path / "d", format="csv")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown profile 'gpt'; the profiles are: qwen3-vl, json, ui-tars"):
        export_episodes([root], tmp_path / "d", profile="gpt")
    with pytest.raises(FileNotFoundError, match="neither an episode folder"):
        export_episodes([tmp_path / "missing"], tmp_path / "e")


def test_other_profiles_export_the_same_episode_in_their_own_format(runs, tmp_path):
    root, eps = runs
    for profile, starts in (("json", '{"thought": '), ("ui-tars", "Thought: ")):
        report = export_episodes([root], tmp_path / profile, format="qwen", profile=profile)
        rows = _jsonl(tmp_path / profile / "data.jsonl")
        assert report.samples == len(rows) == len(eps["ok"].steps) - len(report.left_out)
        assert all(r["conversations"][-1]["value"].startswith(starts) for r in rows)


def _step(action: dict, raw: str | None = None, thought: str = "because") -> Step:
    return Step(
        index=0,
        screenshot="s.png",
        observation={},
        action=action,
        raw_output=raw,
        thought=thought,
        extra={"model": "m"},
    )


def test_a_recorded_answer_is_the_target_only_when_it_is_in_the_format_and_means_the_action():
    q = get_profile("qwen3-vl")
    ctx = DecodeContext(q.setup("browser"))
    click = {"action": "click", "x": 120, "y": 340, "button": "left"}
    raw = 'Action: Open it.\n<tool_call>\n{"name": "computer_use", "arguments": {"action": "left_click", "coordinate": [120, 340]}}\n</tool_call>'
    assert target_text(_step(click, raw), q, ctx) == raw
    # Readable but not as the grammar writes it (compact JSON), or meaning another action: the encoder's text.
    compact = raw.replace('", "', '","').replace('": ', '":')
    for other in (compact, raw.replace("120", "121")):
        assert target_text(_step(click, other, thought="Open it."), q, ctx) == raw
    # A script step has no model text: the encoder writes it, with a line from its thought.
    assert target_text(_step(click, None, thought="Open it."), q, ctx) == raw


# --- replay ----------------------------------------------------------------------------------------


async def _replay(browser, episode, tmp_path, *, banner: str | None = None, heal=None):
    with TodoApp() as app:
        if banner:
            add_banner(app, banner)
        env = BrowserEnv(browser=browser, settle_timeout=10)
        try:
            result = await replay(episode.path, env, recorder=Recorder(tmp_path), url=app.url, heal=heal, patience=0.3)
            dom = await env.page.evaluate(
                "() => [...document.querySelectorAll('#todos li')].map(li => [li.querySelector('span').innerText, li.className])"
            )
        finally:
            await env.aclose()
        return result, dom, app.state.snapshot()


def _todos(state: dict) -> list[tuple[str, bool]]:
    (session,) = state.values()
    return [(t["title"], t["done"]) for t in session["todos"]]


async def test_replay_reproduces_the_end_state(shared_browser, runs, tmp_path):
    _, eps = runs
    result, dom, state = await _replay(shared_browser, eps["ok"], tmp_path)
    assert result.status == "success", result.message
    assert result.policy == "ReplayPolicy"
    assert [s.action for s in result.steps] == [s.action for s in eps["ok"].steps]
    assert all(s.extra["replay"]["match"] and s.extra["replay"]["distance"] <= 0.1 for s in result.steps)
    assert dom == [["Buy milk", "done"], ["Water the plants", "open"]]
    assert _todos(state) == [("Buy milk", True), ("Water the plants", False)]


async def test_replay_stops_where_the_page_changed(shared_browser, runs, tmp_path):
    _, eps = runs
    recorded = eps["ok"]
    first_todos = next(s.index for s in recorded.steps if s.observation["url"].endswith("/todos"))
    result, dom, state = await _replay(shared_browser, recorded, tmp_path, banner="/todos")
    assert result.status == "failure"
    assert f"replay diverged at step {first_todos}" in (result.message or "")
    assert len(result.steps) == first_todos + 1
    assert [s.extra["replay"]["match"] for s in result.steps] == [True] * first_todos + [False]
    assert dom == [] and _todos(state) == []  # nothing was clicked on the changed page


async def test_replay_heals_diverged_steps_with_another_policy(shared_browser, runs, tmp_path):
    """The login page changed: a ScriptPolicy (standing in for the model policy) decides those
    steps by finding its targets on the live page; the replay then goes on from the recording."""
    _, eps = runs
    recorded = eps["ok"]
    result, dom, state = await _replay(shared_browser, recorded, tmp_path, banner="/", heal=ScriptPolicy())
    assert result.status == "success", result.message
    healed = [s.index for s in result.steps if s.extra["replay"]["healed"]]
    login = [s.index for s in recorded.steps if not s.observation["url"].endswith("/todos")]
    assert healed == login
    # The healer clicked where the fields are now, not where they were.
    assert result.steps[0].action["y"] > recorded.steps[0].action["y"]
    assert all(s.extra["replay"]["match"] for s in result.steps if s.index not in healed)
    assert dom == [["Buy milk", "done"], ["Water the plants", "open"]]
    assert _todos(state) == [("Buy milk", True), ("Water the plants", False)]


def test_replay_policy_rejects_bad_input(runs):
    _, eps = runs
    with pytest.raises(ValueError, match="threshold"):
        ReplayPolicy(eps["ok"].path, threshold=3)
    with pytest.raises(FileNotFoundError, match="not a pixelpilot episode"):
        ReplayPolicy("/nonexistent")


# --- viewer ----------------------------------------------------------------------------------------

_PAGE_FACTS = """() => [...document.querySelectorAll('section.step')].map(sec => {
  const img = sec.querySelector('img.screenshot');
  const r = img.getBoundingClientRect();
  const m = sec.querySelector('.marker');
  const c = m && (m.querySelector('circle') || m).getBoundingClientRect();
  return {step: +sec.dataset.step, action: sec.dataset.action, loaded: img.complete && img.naturalWidth > 0,
          natural: [img.naturalWidth, img.naturalHeight],
          marker: c ? [(c.left + c.width / 2 - r.left) / r.width, (c.top + c.height / 2 - r.top) / r.height] : null};
})"""


async def test_viewer_pages_show_every_step_and_marker(shared_browser, runs, tmp_path):
    root, eps = runs
    ok = eps["ok"]
    page_path = write_report(ok.path, tmp_path / "report.html")
    index_path = write_report(root, tmp_path / "site" / "index.html")
    context = await shared_browser.new_context(viewport={"width": 1100, "height": 900})
    try:
        page = await context.new_page()
        await page.goto(page_path.as_uri())
        facts = await page.evaluate(_PAGE_FACTS)
        assert [f["step"] for f in facts] == [s.index for s in ok.steps]
        for f, step in zip(facts, ok.steps, strict=False):
            assert f["loaded"] and f["natural"] == [1280, 800], f
            if "x" in step.action:
                assert f["marker"] is not None, f
                want = (step.action["x"] / 1000, step.action["y"] / 1000)
                assert abs(f["marker"][0] - want[0]) < 0.01 and abs(f["marker"][1] - want[1]) < 0.01, (f, want)
            else:
                assert f["marker"] is None
        assert await page.locator("text=Buy milk").count() > 0

        linked = write_report(ok.path, tmp_path / "linked" / "report.html", inline=False)
        assert "data:image" not in linked.read_text()
        await page.goto(linked.as_uri())
        assert all(f["loaded"] for f in await page.evaluate(_PAGE_FACTS))

        await page.goto(index_path.as_uri())
        assert await page.locator("[data-status=success]").first.inner_text() == "success: 1"
        assert await page.locator("span[data-status=failure]").inner_text() == "failure: 1"
        await page.click(f"text={eps['fail'].id}")
        facts = await page.evaluate(_PAGE_FACTS)
        scroll = next(f for f in facts if f["action"] == "scroll")
        assert scroll["loaded"] and scroll["marker"] is not None
        assert len(facts) == len(eps["fail"].steps)
    finally:
        await context.close()


# --- stats and the CLI ---------------------------------------------------------------------------


def test_stats_count_statuses_steps_and_phases(runs):
    root, eps = runs
    st = stats_for([root])
    assert st.episodes == 2 and st.by_status == {"success": 1, "failure": 1}
    assert st.steps == len(eps["ok"].steps) + len(eps["fail"].steps)
    assert st.actions["terminate"] == 2 and st.actions["scroll"] == 1
    assert {"observe", "decide", "execute", "record"} <= set(st.phases)
    assert st.phases["decide"].count == st.steps
    assert st.phases["decide"].p50_ms <= st.phases["decide"].p95_ms


def test_cli_export_view_stats(runs, tmp_path):
    from typer.testing import CliRunner

    from pixelpilot.cli import app

    root, eps = runs
    cli = CliRunner()
    r = cli.invoke(app, ["export", str(root), "--format", "grounding", "--out", str(tmp_path / "g"), "--status", "any"])
    assert r.exit_code == 0, r.output
    assert "2 episodes" in r.output and (tmp_path / "g" / "grounding.jsonl").stat().st_size > 0
    r = cli.invoke(app, ["export", str(root), "--format", "parquet", "--out", str(tmp_path / "x")])
    assert r.exit_code == 2 and "unknown export format 'parquet'" in r.output
    r = cli.invoke(app, ["view", eps["ok"].path, "--out", str(tmp_path / "v.html")])
    assert r.exit_code == 0 and (tmp_path / "v.html").read_text().count('class="step"') == len(eps["ok"].steps)
    r = cli.invoke(app, ["stats", str(root), "--json"])
    assert r.exit_code == 0 and json.loads(r.output)["by_status"] == {"success": 1, "failure": 1}
    r = cli.invoke(app, ["replay", str(tmp_path / "nope")])
    assert r.exit_code == 2 and "not a pixelpilot episode folder" in r.output


def test_cli_replay_heals_by_finding_targets_again(runs, tmp_path):
    """`pixelpilot replay --heal` on a changed login page: the diverged clicks go to the fields
    found again by their text, typing is repeated, and the rest replays from the recording."""
    from typer.testing import CliRunner

    from pixelpilot.cli import app

    _, eps = runs
    with TodoApp() as todo:
        add_banner(todo, "/")
        r = CliRunner().invoke(app, ["replay", eps["ok"].path, "--url", todo.url, "--heal", "--out", str(tmp_path)])
        state = todo.state.snapshot()
    assert r.exit_code == 0, r.output
    assert r.output.count("healed") == 5 and "DIVERGED" not in r.output
    assert _todos(state) == [("Buy milk", True), ("Water the plants", False)]
    (replayed,) = [load_episode(p) for p in tmp_path.iterdir()]
    login = [s for s in replayed.steps if s.extra["replay"]["healed"]]
    assert [s.action["action"] for s in login] == ["click", "type", "click", "type", "click"]
    for step in login:
        if step.action["action"] == "click":  # the new point lies in the element's new box
            left, top, w, h = step.extra["target"]["box"]
            px, py = Grid().point_to_pixels(step.action["x"], step.action["y"], 1280, 800)
            assert left <= px <= left + w and top <= py <= top + h
