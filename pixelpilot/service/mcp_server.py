"""``pixelpilot mcp``: pixelpilot's hands and eyes for other agents, as an MCP server (the official
``mcp`` SDK's :class:`MCPServer`, over stdio or streamable HTTP).

Low-level tools act on one live env (:class:`~pixelpilot.service.session.LiveSession`): every call
is a step of a recorded episode, checked by the safety gate and the URL policy; coordinates are on
the 0..1000 grid. High-level tools run whole tasks through collect's runner
(:class:`~pixelpilot.service.jobs.JobRunner`) and read the episodes back. Resources: the current
screenshot and any episode's report. Every text that leaves passes the session's redactor.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from mcp.server.mcpserver import Image, MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ToolError

from .. import __version__
from ..agent import Gate, Limits, TaskFileError, load_task_file
from ..agent.collect import TaskSpec, load_tasks, parse_task_line
from ..agent.policy import ModelError
from ..envs import Env
from ..trajectories import Step
from .auth import BearerToken, check_binding
from .episodes import episode_folder, episode_summary, recent_episodes, report_html, split_id
from .jobs import JobRefused, JobRunner
from .session import SESSION_LIMITS, CallFailed, LiveSession

INSTRUCTIONS = """\
pixelpilot drives a real browser (or desktop, or phone) and records every call as a step of an
episode. Coordinates are on a 0..1000 grid over the screenshot (x right, y down), whatever its
size. Look with `screenshot` or `find_text`, act with click/type/press/scroll/drag/goto, check with
`expect_text`, and finish with `end_episode`. On a desktop, `list_windows`, `window` (focus, move,
close) and the clipboard tools act on its windows and clipboard. `run_task` runs a whole task (an instruction or a
task file) and returns its status, answer and episode."""


class Service:
    """What the MCP tools act on: the live session (its env started on first use), the job runner,
    and the folder both write to (``<out>/session/…`` and ``<out>/<job>/…``)."""

    def __init__(
        self,
        make_env: Callable[[], Env],
        jobs: JobRunner,
        *,
        out: str | Path,
        gate: Gate | None = None,
        url: str | None = None,
        limits: Limits = SESSION_LIMITS,
    ) -> None:
        self.out = Path(out)
        self.jobs = jobs
        self._make_env = make_env
        self._gate = gate
        self._url = url
        self._limits = limits
        self._session: LiveSession | None = None

    @property
    def session(self) -> LiveSession:
        """The live session (made on first use; its env starts with the first call that needs it)."""
        if self._session is None:
            self._session = LiveSession(
                self._make_env(), out=self.out / "session", gate=self._gate, url=self._url, limits=self._limits
            )
        return self._session

    def episode_id(self, path: Path | str | None) -> str | None:
        """An episode folder as clients name it: ``group/episode`` under ``out``."""
        return None if path is None else Path(path).relative_to(self.out).as_posix()

    async def aclose(self) -> None:
        """End the live episode (see :meth:`LiveSession.aclose`), stop the jobs, close the envs."""
        try:
            if self._session is not None:
                await self._session.aclose()
        finally:
            await self.jobs.aclose()


def _steps(steps: list[Step]) -> list[dict[str, Any]]:
    return [
        {
            "index": s.index,
            "action": s.action,
            **({"target": s.extra["target"]["text"]} if s.extra.get("target", {}).get("text") else {}),
        }
        for s in steps
    ]


def build_mcp_server(service: Service) -> MCPServer:
    """The MCP server with pixelpilot's tools and resources over ``service``."""
    server = MCPServer("pixelpilot", instructions=INSTRUCTIONS, version=__version__)

    async def act(tool: str, arguments: dict[str, Any], step: dict[str, Any]) -> dict[str, Any]:
        session = service.session
        try:
            acted = await session.act(tool, arguments, step)
        except CallFailed as e:
            raise ToolError(str(e)) from None
        result: dict[str, Any] = {"episode": service.episode_id(acted.episode), "steps": _steps(acted.steps)}
        if acted.ended is not None:
            result["ended"] = {"status": acted.ended.status, "message": acted.ended.message}
        return session.redact(result)

    # --- low-level: one live env -----------------------------------------------------------------

    @server.tool()
    async def screenshot() -> list[Image | str]:
        """The screen as it is now (PNG), with its URL and title. Point at things on the 0..1000 grid:
        x = 1000 * px / width, y = 1000 * py / height."""
        session = service.session
        try:
            obs = await session.screenshot()
        except CallFailed as e:
            raise ToolError(str(e)) from None
        line = f"{obs.width}x{obs.height} px; url: {obs.url or '-'}; title: {obs.title or '-'}"
        return [Image(data=obs.png, format="png"), session.redact(line)]

    @server.tool()
    async def click(
        x: int | None = None,
        y: int | None = None,
        text: str | None = None,
        button: Literal["left", "right", "middle"] = "left",
        clicks: Literal[1, 2, 3] = 1,
    ) -> dict[str, Any]:
        """Click a point on the 0..1000 grid (x, y), or the element showing `text` (found in the page,
        else by OCR). clicks=2 double-clicks, 3 triple-clicks."""
        target: dict[str, Any] = {"text": text} if text is not None else {"x": x, "y": y}
        if text is None and (x is None or y is None):
            raise ToolError("click needs x and y on the 0..1000 grid, or the text to click")
        kind = {1: "click", 2: "double_click", 3: "triple_click"}[clicks]
        if kind == "click":
            target["button"] = button
        return await act("click", {**target, "clicks": clicks}, {kind: target})

    @server.tool(name="type")
    async def type_text(
        text: str, into: str | None = None, x: int | None = None, y: int | None = None, secret: bool = False
    ) -> dict[str, Any]:
        """Type text into what has focus; first click the field labelled `into`, or the grid point
        (x, y), if given. secret=true masks the text as ${secret} in the recording and every answer."""
        if secret:
            service.session.recorder.redactor.add("secret", text)
        field: dict[str, Any] | None = {"text": into} if into else {"x": x, "y": y} if x is not None else None
        if field is not None and "y" in field and y is None:
            raise ToolError("type at a point needs both x and y")
        step = {"type": {"text": text, "into": field} if field else text}
        return await act("type", {"text": text, "into": into, "x": x, "y": y, "secret": secret}, step)

    @server.tool()
    async def press(keys: str) -> dict[str, Any]:
        """Press a key or a combination: "Enter", "ctrl+a", "shift+Tab"."""
        return await act("press", {"keys": keys}, {"press": keys})

    @server.tool()
    async def scroll(dy: int = 500, dx: int = 0, x: int = 500, y: int = 500) -> dict[str, Any]:
        """Scroll at the grid point (x, y) by grid units: dy=500 is half a screen down, negative is up."""
        return await act(
            "scroll", {"dy": dy, "dx": dx, "x": x, "y": y}, {"scroll": {"dx": dx, "dy": dy, "x": x, "y": y}}
        )

    @server.tool()
    async def drag(x: int, y: int, x2: int, y2: int) -> dict[str, Any]:
        """Press at (x, y), move to (x2, y2) and release (grid points)."""
        args = {"x": x, "y": y, "x2": x2, "y2": y2}
        return await act("drag", args, {"action": "drag", **args})

    @server.tool()
    async def goto(url: str) -> dict[str, Any]:
        """Open a URL in the browser (relative URLs resolve against the current page)."""
        return await act("goto", {"url": url}, {"goto": url})

    @server.tool()
    async def find_text(text: str, by: Literal["auto", "dom", "ocr"] = "auto") -> dict[str, Any]:
        """Where `text` shows on the screen, on the 0..1000 grid: its centre (x, y) and box
        [x1, y1, x2, y2]. by: dom (the page), ocr (the pixels) or auto (the page, then OCR)."""
        session = service.session
        try:
            found = await session.find_text(text, by)
        except CallFailed as e:
            raise ToolError(str(e)) from None
        if found is None:
            return session.redact({"found": False, "text": text})
        return session.redact(
            {
                "found": True,
                "text": text,
                "x": found.x,
                "y": found.y,
                "box": list(found.box),
                "by": found.by,
                "visible": found.visible,
            }
        )

    @server.tool()
    async def expect_text(text: str, timeout: float = 5.0) -> dict[str, Any]:
        """Wait until `text` shows on the page (an error if it does not within `timeout` seconds)."""
        session = service.session
        try:
            await session.expect_text(text, timeout)
        except CallFailed as e:
            raise ToolError(str(e)) from None
        return session.redact({"found": True, "text": text, "episode": service.episode_id(session.episode_path)})

    @server.tool()
    async def list_windows() -> dict[str, Any]:
        """The desktop's windows, oldest first: id, title, app, box [x1, y1, x2, y2] on the 0..1000
        grid (frame included) and whether it has the focus."""
        session = service.session
        try:
            found = await session.windows()
        except CallFailed as e:
            raise ToolError(str(e)) from None
        grid, (w, h) = session.agent.grid, await session.env.input_size()

        def on_grid(box: Any) -> list[int]:
            left, top, width, height = box
            return [*grid.point_to_grid(left, top, w, h), *grid.point_to_grid(left + width, top + height, w, h)]

        windows = [
            {"id": x.id, "title": x.title, "app": x.app, "box": on_grid(x.box), "focused": x.focused} for x in found
        ]
        return session.redact({"windows": windows})

    @server.tool()
    async def window(
        op: Literal["focus", "move", "close"], window: str, box: list[int] | None = None
    ) -> dict[str, Any]:
        """Focus, move (and resize) or close a desktop window named by its title or app (whole or in
        part). A move puts the whole window in box [x1, y1, x2, y2] on the 0..1000 grid."""
        step: dict[str, Any] = {op: window}
        if op == "move":
            if box is None or len(box) != 4:
                raise ToolError("a move needs box [x1, y1, x2, y2] on the 0..1000 grid")
            step["to"] = dict(zip(("x1", "y1", "x2", "y2"), box, strict=True))
        return await act("window", {"op": op, "window": window, "box": box}, {"window": step})

    @server.tool()
    async def write_clipboard(text: str) -> dict[str, Any]:
        """Put text on the desktop's clipboard (then paste it with press "ctrl+v")."""
        return await act("write_clipboard", {"text": text}, {"clipboard": {"write": text}})

    @server.tool()
    async def read_clipboard() -> dict[str, Any]:
        """The text on the desktop's clipboard ("" when it holds none)."""
        session = service.session
        try:
            return session.redact({"text": await session.read_clipboard()})
        except CallFailed as e:
            raise ToolError(str(e)) from None

    @server.tool()
    async def end_episode(
        status: Literal["success", "failure"] = "success", answer: str | None = None
    ) -> dict[str, Any]:
        """End the live episode and write it; the next call starts a new one in a fresh env."""
        session = service.session
        episode = await session.end(status, answer)
        if episode is None:
            raise ToolError("no episode is running")
        return session.redact(
            {"episode": service.episode_id(episode.path), "status": episode.status, "steps": episode.num_steps}
        )

    # --- high-level: whole tasks, and the episodes on disk ---------------------------------------

    @server.tool()
    async def run_task(
        instruction: str | None = None,
        task_file: str | None = None,
        url: str | None = None,
        max_steps: int | None = None,
    ) -> dict[str, Any]:
        """Run a whole task in an env of its own and wait for it: an `instruction` (driven by the
        server's model) or a `task_file` on the server (YAML with `steps:`, or a JSONL collect file).
        `url` and `max_steps` override the task's. Returns each episode's status, answer and id."""
        try:
            job = await service.jobs.submit(_task_specs(instruction, task_file, url, max_steps))
        except (TaskFileError, JobRefused, ModelError, ValueError) as e:
            raise ToolError(service.session.redact(str(e))) from None
        await job.wait()
        episodes = []
        for spec in job.specs:
            try:
                row = episode_summary(episode_folder(service.out, job.id, spec.id), service.out)
            except LookupError:
                row = {"id": f"{job.id}/{spec.id}", "status": None}
            episodes.append({k: v for k, v in row.items() if k != "steps"})
        return service.session.redact({"job": job.id, "state": job.state, "error": job.error, "episodes": episodes})

    @server.tool()
    async def list_episodes(limit: int = 20) -> list[dict[str, Any]]:
        """The most recent episodes this server wrote (newest first): id, task, status, steps."""
        return service.session.redact(recent_episodes(service.out, max(1, min(limit, 200))))

    @server.tool(name="episode_summary")
    async def summarize_episode(episode: str) -> dict[str, Any]:
        """One episode (its id as list_episodes gives it): task, status, answer, and every step with
        the calls recorded with it."""
        try:
            folder = episode_folder(service.out, *split_id(episode))
        except LookupError as e:
            raise ToolError(str(e)) from None
        return service.session.redact(episode_summary(folder, service.out))

    # --- resources -------------------------------------------------------------------------------

    @server.resource("pixelpilot://screenshot", name="screenshot", mime_type="image/png")
    async def current_screenshot() -> bytes:
        """The live env's screen now (PNG)."""
        try:
            return (await service.session.screenshot()).png
        except CallFailed as e:
            raise ResourceError(str(e)) from None

    @server.resource("pixelpilot://episodes/{group}/{episode}/report", name="report", mime_type="text/html")
    async def report(group: str, episode: str) -> str:
        """An episode's HTML report: each step's screenshot with its action drawn on it."""
        try:
            folder = episode_folder(service.out, group, episode)
        except LookupError as e:
            raise ResourceError(str(e)) from None
        return service.session.redact(report_html(folder))

    return server


def _task_specs(
    instruction: str | None, task_file: str | None, url: str | None, max_steps: int | None
) -> list[TaskSpec]:
    """The tasks ``run_task`` was asked for, with its overrides."""
    if (instruction is None) == (task_file is None):
        raise ValueError("give an instruction or a task_file (one of them)")
    if task_file is not None and task_file.endswith((".jsonl", ".ndjson")):
        specs = load_tasks(task_file)
    elif task_file is not None:
        task = load_task_file(task_file)
        specs = [
            parse_task_line({"id": _slug(task.name or Path(task_file).stem), **task.model_dump(exclude_none=True)})
        ]
    else:
        specs = [parse_task_line({"instruction": instruction})]
    update = {k: v for k, v in (("url", url), ("max_steps", max_steps)) if v is not None}
    return [s.model_copy(update={"task": s.task.model_copy(update=update)}) for s in specs] if update else specs


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")[:60] or "task"


async def serve_mcp(
    service: Service,
    *,
    transport: Literal["stdio", "http"] = "stdio",
    host: str = "127.0.0.1",
    port: int = 8000,
    token: str | None = None,
) -> None:
    """Serve ``service`` over stdio, or streamable HTTP at ``http://host:port/mcp`` (a token is
    required beyond loopback); close it when the transport ends."""
    if transport == "http":
        check_binding(host, token)
    server = build_mcp_server(service)
    try:
        if transport == "stdio":
            await server.run_stdio_async()
        else:
            import uvicorn

            app: Any = server.streamable_http_app(host=host)
            if token:
                app = BearerToken(app, token)
            await uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning")).serve()
    finally:
        await service.aclose()
