"""Stopping processes pixelpilot started: one process (:func:`stop_process`), or a server that runs in a
process group of its own (``start_new_session=True``, :func:`stop_group`)."""

from __future__ import annotations

import os
import signal
import subprocess
from typing import Any


def stop_group(proc: subprocess.Popen[Any], *, first: int = signal.SIGTERM, grace: float = 15.0) -> None:
    """Send ``first`` to ``proc``'s whole group (servers fork workers), then SIGKILL if the process is
    still there ``grace`` seconds later; returns once it has ended. Nothing happens to a process that
    has already ended."""
    if proc.poll() is not None:
        return
    for sig, wait in ((first, grace), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


def stop_process(proc: subprocess.Popen[Any], *, grace: float = 5.0) -> None:
    """Terminate ``proc``, then kill it if it is still there ``grace`` seconds later; returns once it
    has ended, with its pipes closed. Safe to call on a process that has already ended."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    for pipe in (proc.stdin, proc.stdout, proc.stderr):
        if pipe is not None:
            pipe.close()
