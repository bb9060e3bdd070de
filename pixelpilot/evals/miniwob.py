"""MiniWoB++, offline: the task pages of the ``miniwob`` package served on 127.0.0.1, run in BrowserEnv.

Only the package's pages are used (its HTML, its JavaScript and the shared ``core/core.js``); none of
its Python code (gymnasium, selenium) is imported. Install them with ``pip install
'pixelpilot[miniwob]'`` (``miniwob==1.1.0``).

**Which tasks.** Every page the package ships: the 130 pages under ``html/miniwob/`` (task id = the
page's name, ``click-button``) and the 4 FlightWoB sites under ``html/flight/`` (``flight.AA``,
``flight.Alaska``, ``flight.Alaska-auto``, ``flight.Alaska-auto-medium``), 134 in all. The package's
gymnasium registry registers 128 of them; the other 6 (button-delay, chase-circle, hover-shape,
moving-items, simon-says, flight.Alaska-auto-medium) run here too, so that nothing is dropped
silently. Tasks that need what pixelpilot's actions lack are named by :meth:`MiniWoBSuite.limitations`.

**An episode** is MiniWoB's own, as the Farama package runs it (``selenium_instance.begin_task``):

- :meth:`MiniWoBScenario.begin` seeds the page's random numbers with ``Math.seedrandom(seed)`` (the
  rollout's seed, so rollout k is the same problem in every run), sets the data mode, calls
  ``core.startEpisodeReal()`` (the page's ``genProblem()`` and its clock) and waits for
  ``WOB_TASK_READY``. The instruction is the page's utterance (``core.getUtterance()``; JSON for
  the flight sites, as in the package); the time limit, ``core.EPISODE_MAX_TIME``, is recorded in
  ``task.metadata["time_limit_s"]``. The clock runs in real time from then on: the model's
  thinking counts, as every step of a gym agent does.
- :meth:`MiniWoBScenario.poll`, after each action: once the page has ended its episode
  (``WOB_DONE_GLOBAL``), the episode ends with the page's reward (``WOB_REWARD_GLOBAL``, after
  its time decay), its raw reward in [-1, 1] (``WOB_RAW_REWARD_GLOBAL``) and its reason; success
  is a raw reward above 0 (how the package's ``get_binary_reward`` reads it). The page's timer
  ends an episode the agent does not finish in time with raw -1, ``timed out``.
- :meth:`MiniWoBScenario.judge`, when the episode ended otherwise (the policy stopped, the step
  budget ran out): the page's verdict if it has ended its episode meanwhile (its timer may have
  fired while the model thought), else the episode is stopped the way the package's
  ``force_stop`` does, ``core.endEpisode(0)``: reward 0, raw 0, no success. An episode whose page
  never started (not a task page, never ready) gets reward 0 and no raw reward.

Leaving the task page, or reloading it (which would offer a fresh START), fails the episode with raw
-1, as the flight sites' own wrapper rules for a site left mid-episode; the package's gym env has
no action that navigates.

The page's own code decides every reward. What the scenario adds to the page decides none: once
the episode has started, ``core.startEpisode`` and ``core.startEpisodeReal`` do nothing, so that
the START cover the page shows again after its episode ends can never start a new problem (and
reset the reward) under the agent's next click (the first ending stands); and a marker,
``window.pixelpilotEpisode``, tells the page whose episode started from a page opened afresh.

**The viewport** is 375×667 CSS pixels (:attr:`MiniWoBSuite.viewport`): the FlightWoB task area,
the largest of any page, so one size fits every task. A MiniWoB page's 160×210 task area sits at
its top left with the page's own panel beside it (time left, episodes done); what a page draws
outside the 160×210 box (a date picker, a menu) stays on screen and clickable. Portrait, like a
phone screen; at CSS scale a screenshot is 252 Qwen3-VL image tokens.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from http.server import SimpleHTTPRequestHandler
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from .._loopback import LoopbackServer
from ..actions import Task
from ..agent.collect import TaskSpec
from ..agent.scenario import Scenario, Verdict
from ..envs import Env, EnvError, PageScripting
from .suite import Suite, SuiteError

if TYPE_CHECKING:
    from ..trajectories import Episode

__all__ = ["LIMITATIONS", "MiniWoBScenario", "MiniWoBSuite", "html_dir", "task_pages"]

#: Shown until the page writes its own instruction (MiniWoBScenario.begin replaces it).
PLACEHOLDER = "(the MiniWoB page writes the instruction when its episode starts)"

#: Tasks that need what pixelpilot's action space lacks, and why. They run and count all the same.
LIMITATIONS: dict[str, str] = {
    "chase-circle": (
        "real time: the pointer must stay on a circle that moves for 10 s; pixelpilot acts once per "
        "screenshot and cannot follow it continuously"
    ),
    "moving-items": (
        "real time: the circles to click move all the time; each click lands where the last screenshot showed them"
    ),
    "hover-shape": (
        "cannot be won: the page never ends its episode itself (its running score is left as a TODO in the "
        "page), so every episode runs out its 10 s and gets raw -1, 'timed out'; the square to hover also "
        "moves every 2 s"
    ),
    "simon-says": (
        "real time: the sequence to repeat is shown as blinks 600 ms apart right after the start; the "
        "agent sees one screenshot per step, not the animation"
    ),
    "draw-circle": "the drag action moves in a straight line; a circle needs a curved pointer path",
}

# The JavaScript run in the task page (through PageScripting.evaluate). Only the core's own
# functions and globals are used; the reward logic is the page's.
_BEGIN = """async ({seed, mode, readyMs}) => {
  if (typeof core === 'undefined' || typeof genProblem === 'undefined') return null;
  const until = Date.now() + readyMs, tick = () => new Promise(r => setTimeout(r, 20));
  while (core.cover_div === null && Date.now() < until) await tick();  // window.onload has not run yet
  if (core.cover_div === null) return {ready: false};
  Math.seedrandom(seed);
  core.setDataMode(mode);
  core.startEpisodeReal();
  // The first ending stands: the START cover never comes back to begin another problem.
  core.startEpisode = function () {};
  core.startEpisodeReal = function () {};
  window.pixelpilotEpisode = seed;  // gone if the page is left or reloaded
  while (!WOB_TASK_READY && Date.now() < until) await tick();
  return {ready: !!WOB_TASK_READY, utterance: core.getUtterance(), maxTime: core.EPISODE_MAX_TIME};
}"""
_VERDICT = """(stopReason) => {
  if (typeof core === 'undefined' || window.pixelpilotEpisode === undefined) return {gone: true};
  if (stopReason !== null && !WOB_DONE_GLOBAL) core.endEpisode(0, false, stopReason);
  if (!WOB_DONE_GLOBAL) return null;
  const reason = WOB_REWARD_REASON;
  return {reward: WOB_REWARD_GLOBAL, raw: WOB_RAW_REWARD_GLOBAL,
          reason: reason === null || reason === undefined ? null : String(reason)};
}"""

STOPPED = "the agent stopped before the page ended its episode"
LEFT = "the agent left the task page (or reloaded it) after its episode started"
NEVER = "the page's episode never started"


def html_dir() -> Path:
    """The ``html`` folder of the installed ``miniwob`` package, found without importing it (its
    ``__init__`` imports gymnasium); SuiteError, saying how to install it, when it is missing."""
    spec = importlib.util.find_spec("miniwob")
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in folders:
        html = Path(folder) / "html"
        if (html / "core" / "core.js").is_file():
            return html
    raise SuiteError(
        "the MiniWoB++ suite needs the task pages of the `miniwob` package: pip install 'pixelpilot[miniwob]'"
    )


def task_pages(html: Path) -> dict[str, str]:
    """Every task page under ``html``: task id -> its path relative to ``html``, sorted by id."""
    pages = {p.stem: f"miniwob/{p.name}" for p in (html / "miniwob").glob("*.html")}
    pages |= {
        f"flight.{w.parent.name}": f"flight/{w.parent.name}/wrapper.html" for w in html.glob("flight/*/wrapper.html")
    }
    return dict(sorted(pages.items()))


def _scripting(env: Env) -> PageScripting:
    if not isinstance(env, PageScripting):
        raise EnvError(f"MiniWoB tasks run in a browser; {env.label} cannot run the page's JavaScript")
    return env


@dataclass(frozen=True)
class MiniWoBScenario(Scenario):
    """A MiniWoB page's own episode: seeded start, its instruction, its clock and its reward (see
    the module docstring)."""

    #: The page's data mode (``core.setDataMode``): ``train`` as the package's gym env defaults to,
    #: or ``test`` for the held-out instructions of the flight sites and the ``*-nl*``/``*-transfer`` tasks.
    mode: str = "train"
    #: How long the page may take to say it is ready (the flight sites load their site in a frame).
    ready_timeout: float = 10.0

    async def begin(self, env: Env, task: Task) -> Task:
        page = _scripting(env)
        seed = task.metadata.get("seed", 0)
        started = await page.evaluate(_BEGIN, {"seed": seed, "mode": self.mode, "readyMs": self.ready_timeout * 1000})
        if started is None:
            raise EnvError(f"{page.url} is not a MiniWoB task page (no core.js or genProblem)")
        if not started["ready"]:
            raise EnvError(f"{page.url} did not get ready within {self.ready_timeout:g} s")
        utterance, fields = started["utterance"], None
        if isinstance(utterance, dict):  # a few pages give their utterance with its fields
            fields = utterance.get("fields")
            utterance = utterance.get("utterance")
        if not isinstance(utterance, str) or not utterance.strip():
            raise EnvError(f"{page.url} gave no instruction (core.getUtterance() returned {utterance!r})")
        meta: dict[str, Any] = {**task.metadata, "seed": seed, "data_mode": self.mode}
        meta["time_limit_s"] = started["maxTime"] / 1000
        if fields:
            meta["fields"] = fields
        return task.model_copy(update={"instruction": utterance, "metadata": meta})

    async def poll(self, env: Env) -> Verdict | None:
        return await self._verdict(env, None)

    async def judge(self, env: Env, episode: Episode) -> Verdict:
        # begin() records the time limit; without it no page episode ran, and there is no page reward.
        started = "time_limit_s" in episode.task.metadata
        verdict = await self._verdict(env, STOPPED) if started else None
        return verdict or Verdict(reward=0.0, success=False, reason=NEVER)

    async def _verdict(self, env: Env, stop_reason: str | None) -> Verdict | None:
        """The page's verdict once it has ended its episode (after ending it with 0 when
        ``stop_reason`` is given). Leaving the page (or reloading it, which would start it afresh)
        fails the episode with raw -1, as the flight sites' own wrapper rules for leaving them."""
        page = _scripting(env)
        try:
            done = await page.evaluate(_VERDICT, stop_reason)
        except Exception as e:  # the page is mid-navigation or gone
            raise EnvError(f"could not read the MiniWoB page's reward: {str(e).splitlines()[0]}") from e
        if done is None:
            return None
        if done.get("gone"):
            return Verdict(reward=-1.0, success=False, raw_reward=-1.0, reason=LEFT)
        raw = float(done["raw"])
        return Verdict(reward=float(done["reward"]), success=raw > 0, raw_reward=raw, reason=done["reason"])


class _Pages(SimpleHTTPRequestHandler):
    """Serves the package's html folder, without a log line per request."""

    protocol_version = "HTTP/1.1"  # keep-alive: a page loads a dozen scripts and stylesheets
    # The pages are UTF-8 and most do not say so (unicode-test's "Cancél" would read "CancÃ©l").
    extensions_map = {
        **SimpleHTTPRequestHandler.extensions_map,
        ".html": "text/html; charset=utf-8",
        ".js": "text/javascript; charset=utf-8",
    }

    def log_message(self, format: str, *args: Any) -> None:
        pass


class MiniWoBSuite(Suite):
    """Every MiniWoB++ task page of the ``miniwob`` package, served on 127.0.0.1 (module docstring)."""

    name = "miniwob"
    viewport: tuple[int, int] | None = (375, 667)
    #: MiniWoB's own action space has no navigation and no answer: a task ends on the page.
    actions: ClassVar[tuple[str, ...] | None] = (
        "click",
        "double_click",
        "triple_click",
        "move",
        "drag",
        "scroll",
        "type",
        "key",
        "wait",
        "terminate",
    )

    def __init__(self, *, mode: str = "train") -> None:
        self.scenario = MiniWoBScenario(mode=mode)
        self.html = html_dir()

    @contextmanager
    def serve(self) -> Iterator[list[TaskSpec]]:
        """Serve the pages on a free port of 127.0.0.1 and yield one task per page."""
        with LoopbackServer(partial(_Pages, directory=str(self.html))) as server:
            yield [
                TaskSpec(
                    id=task_id,
                    task=Task(
                        instruction=PLACEHOLDER,
                        name=task_id,
                        url=server.url + path,
                        metadata={"suite": self.name, "task": task_id},
                    ),
                    scenario=self.scenario,
                )
                for task_id, path in task_pages(self.html).items()
            ]

    def limitations(self) -> dict[str, str]:
        return dict(LIMITATIONS)
