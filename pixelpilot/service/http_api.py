"""``pixelpilot server``: a small HTTP API for jobs (FastAPI), over :class:`~pixelpilot.service.jobs.JobRunner`.

=======  ==================================================  =================================================
method   path                                                answers
=======  ==================================================  =================================================
POST     /jobs[?id=NAME&rollouts=N]                          202 the job; 400 malformed or unrunnable; 403 the
                                                             URL policy refuses a task; 409 that job is
                                                             running; 413 too large; 503 a model server is down
GET      /jobs                                               200 every job of this server run
GET      /jobs/{job}                                         200 the job's status; 404
GET      /jobs/{job}/events[?after=ID]                       200 server-sent events (``Last-Event-ID`` resumes)
GET      /jobs/{job}/episodes/{episode}                      200 the episode and its steps; 404; 500 unreadable
GET      /jobs/{job}/episodes/{episode}/report               200 the HTML report; 404; 500 unreadable
GET      /health                                             200 (no token needed)
=======  ==================================================  =================================================

The body of ``POST /jobs`` is a collect task file (JSON Lines), or with ``Content-Type:
application/json`` one task object or a list of them. Every error is ``{"error": "…"}``; with a
token set, a request without it is answered 401.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse

from .. import __version__
from ..agent import TaskFileError
from ..agent.collect import parse_tasks
from ..agent.policy import ModelError
from ..trajectories import EpisodeError
from .auth import BearerToken, check_binding
from .episodes import episode_folder, episode_json, report_html
from .jobs import JobRefused, JobRunner

#: The largest request body ``POST /jobs`` reads.
MAX_BODY_BYTES = 16 * 1024 * 1024


def create_app(jobs: JobRunner, *, token: str | None = None) -> Any:
    """The FastAPI app serving ``jobs`` (closed when the app shuts down); with ``token``, every
    request but ``/health`` must carry it."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await jobs.aclose()

    app = FastAPI(title="pixelpilot jobs", version=__version__, lifespan=lifespan)

    def error(status: int, message: str) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status)

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"ok": True, "version": __version__}

    @app.post("/jobs")
    async def submit(request: Request) -> JSONResponse:
        query = request.query_params
        try:
            rollouts = int(query.get("rollouts", "1"))
        except ValueError:
            return error(400, f"rollouts: a whole number, not {query.get('rollouts')!r}")
        if not 1 <= rollouts <= 1000:
            return error(400, "rollouts: from 1 to 1000")
        if int(request.headers.get("content-length") or 0) > MAX_BODY_BYTES:
            return error(413, f"the body is larger than {MAX_BODY_BYTES // (1024 * 1024)} MiB")
        body = await request.body()
        if len(body) > MAX_BODY_BYTES:
            return error(413, f"the body is larger than {MAX_BODY_BYTES // (1024 * 1024)} MiB")
        try:
            text = body.decode("utf-8")
            if request.headers.get("content-type", "").split(";")[0].strip() == "application/json":
                data = json.loads(text)
                text = "\n".join(json.dumps(item) for item in (data if isinstance(data, list) else [data]))
            tasks = parse_tasks(text, "request")
        except UnicodeDecodeError:
            return error(400, "the body is not UTF-8 text")
        except json.JSONDecodeError as e:
            return error(400, f"the body is not JSON: {e.msg} (line {e.lineno}, column {e.colno})")
        except (TaskFileError, RecursionError) as e:
            return error(400, str(e) if isinstance(e, TaskFileError) else "the body nests too deep")
        try:
            job = await jobs.submit(tasks, job_id=query.get("id"), rollouts=rollouts)
        except JobRefused as e:
            return error(e.status, str(e))
        except ModelError as e:
            return error(503, str(e))
        return JSONResponse(job.to_json(), status_code=202, headers={"Location": f"/jobs/{job.id}"})

    @app.get("/jobs")
    async def list_jobs() -> dict[str, Any]:
        return {"jobs": [job.to_json() for job in jobs.jobs.values()]}

    @app.get("/jobs/{job_id}")
    async def job_status(job_id: str) -> JSONResponse:
        job = jobs.jobs.get(job_id)
        return JSONResponse(job.to_json()) if job is not None else error(404, f"no job {job_id}")

    @app.get("/jobs/{job_id}/events")
    async def job_events(job_id: str, request: Request) -> Any:
        job = jobs.jobs.get(job_id)
        if job is None:
            return error(404, f"no job {job_id}")
        since = request.headers.get("last-event-id") or request.query_params.get("after") or "-1"
        try:
            after = int(since)
        except ValueError:
            return error(400, f"Last-Event-ID / after: an event id, not {since!r}")

        async def stream() -> AsyncIterator[str]:
            async for index, event in job.follow(after):
                yield f"id: {index}\nevent: {event['event']}\ndata: {json.dumps(event)}\n\n"

        return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})

    @app.get("/jobs/{job_id}/episodes/{episode}")
    async def episode(job_id: str, episode: str) -> JSONResponse:
        try:
            return JSONResponse(episode_json(episode_folder(jobs.config.out, job_id, episode)))
        except LookupError as e:
            return error(404, str(e))
        except EpisodeError as e:
            return error(500, f"the episode cannot be read: {e}")

    @app.get("/jobs/{job_id}/episodes/{episode}/report")
    async def report(job_id: str, episode: str) -> Any:
        try:
            return HTMLResponse(report_html(episode_folder(jobs.config.out, job_id, episode)))
        except LookupError as e:
            return error(404, str(e))
        except EpisodeError as e:
            return error(500, f"the episode cannot be read: {e}")

    return BearerToken(app, token) if token else app


async def serve_api(jobs: JobRunner, *, host: str = "127.0.0.1", port: int = 8765, token: str | None = None) -> None:
    """Serve the job API on ``host:port`` until stopped (Ctrl-C); a token is required beyond loopback."""
    import uvicorn

    check_binding(host, token)
    await uvicorn.Server(
        uvicorn.Config(create_app(jobs, token=token), host=host, port=port, log_level="warning")
    ).serve()
