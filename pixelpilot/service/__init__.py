"""pixelpilot as a service for other programs: an MCP server (``pixelpilot mcp``) over one live env
and whole tasks, and an HTTP job API (``pixelpilot server``) over collect's runner.

The parts, one module each: ``session`` (one live env driven call by call, recorded), ``jobs``
(batches of collect tasks in the background, with their events), ``episodes`` (reading back what
was written), ``auth`` (the API token), ``mcp_server`` and ``http_api`` (the two front ends). The
MCP SDK, FastAPI and uvicorn are imported by the front ends only.
"""

from .auth import check_binding, is_loopback
from .jobs import Job, JobRefused, JobRunner
from .session import CallFailed, Found, LiveSession

__all__ = ["CallFailed", "Found", "Job", "JobRefused", "JobRunner", "LiveSession", "check_binding", "is_loopback"]
