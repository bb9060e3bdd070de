"""Run Python (and optionally bash) in a sandboxed subprocess.

With bubblewrap (Debian's ``bubblewrap``) the code runs in fresh namespaces: no network, the system
directories read-only, a private writable workspace, no host home, no host ``/tmp``, a cleared
environment. Always, whether bubblewrap is there or not: resource limits (CPU seconds, address
space, processes, file size, open files), a wall-clock timeout that kills the whole process group,
output cut to a bound, and — when the host runs as root — an unprivileged user (``nobody``).
Without bubblewrap it warns once and, where the kernel allows unprivileged user namespaces,
still takes the network away with ``unshare``.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import resource
import shutil
import signal
import subprocess
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal, cast

from pydantic import Field

from .._sync import run_sync
from .registry import Tool, ToolError, function_tool

Language = Literal["python", "bash"]
MAX_CODE = 20_000
SANDBOX_WORKSPACE = "/workspace"


@dataclass(frozen=True)
class SandboxLimits:
    """Resources one run may use (rlimits inside the sandbox, a wall clock outside it); the run is
    stopped, and says which limit it hit, when it needs more."""

    cpu_seconds: int = 10
    wall_seconds: float = 20.0
    memory_mb: int = 512
    #: Processes (and threads) the sandbox may run at once.
    processes: int = 32
    file_size_mb: int = 16
    open_files: int = 64
    #: Bytes of stdout and of stderr kept; more output stops the run.
    output_bytes: int = 64_000


@dataclass
class RunResult:
    """What a sandboxed run did."""

    stdout: str
    stderr: str
    exit_code: int | None
    #: Files created or changed in the workspace: relative path → size in bytes.
    files: dict[str, int] = field(default_factory=dict)
    #: Why the sandbox stopped the run ("wall-clock timeout after 20 s", …), or None.
    stopped: str | None = None
    seconds: float = 0.0
    sandboxed: bool = True

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and self.stopped is None

    def text(self) -> str:
        """The result as text for a model."""
        parts = [f"exit code: {self.exit_code}"]
        if self.stopped:
            parts.append(f"stopped: {self.stopped}")
        parts.append(f"stdout:\n{self.stdout}" if self.stdout else "stdout: (empty)")
        if self.stderr:
            parts.append(f"stderr:\n{self.stderr}")
        if self.files:
            parts.append("files written: " + ", ".join(f"{k} ({v} bytes)" for k, v in self.files.items()))
        return "\n".join(parts)


@lru_cache(maxsize=1)
def bwrap_path() -> str | None:
    """bubblewrap's path when it is installed and can create namespaces here, else None."""
    path = shutil.which("bwrap")
    if path is None:
        return None
    probe = subprocess.run(
        [path, "--unshare-all", "--ro-bind", "/", "/", "true"], capture_output=True, preexec_fn=_drop_privileges()
    )
    return path if probe.returncode == 0 else None


@lru_cache(maxsize=1)
def _unshare_net_prefix() -> tuple[str, ...]:
    """``unshare`` arguments that drop the network without privileges, when the kernel allows it."""
    path = shutil.which("unshare")
    if path is None:
        return ()
    prefix = (path, "--user", "--map-root-user", "--net", "--pid", "--fork", "--kill-child", "--")
    probe = subprocess.run([*prefix, "true"], capture_output=True, preexec_fn=_drop_privileges())
    return prefix if probe.returncode == 0 else ()


def _drop_privileges() -> Callable[[], None] | None:
    """For the probes: they must run as the user the sandbox will run as."""
    ids = _sandbox_ids()
    if ids is None:
        return None

    def drop() -> None:
        os.setgroups([])
        os.setgid(ids[1])
        os.setuid(ids[0])

    return drop


def _sandbox_ids() -> tuple[int, int] | None:
    """(uid, gid) to drop to: ``nobody`` when the host runs as root, else None (stay as we are)."""
    if os.geteuid() != 0:
        return None
    try:
        pw = pwd.getpwnam("nobody")
    except KeyError:
        return None
    return pw.pw_uid, pw.pw_gid


def _killpg(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _processes_of(uid: int) -> int:
    """How many processes ``uid`` runs now (RLIMIT_NPROC counts all of them, not just ours)."""
    n = 0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                n += entry.stat().st_uid == uid
            except OSError:
                pass
    return n


_warned = False


class Sandbox:
    """Runs code with limits in a private workspace that lives as long as the sandbox.

    ``workspace`` defaults to a fresh temporary folder, removed by ``close()``; files the code
    writes stay there between runs. When the host runs as root the code runs as ``nobody``, so a
    workspace you pass must be reachable by that user. ``use_bwrap=None`` uses bubblewrap when it
    works here; ``python`` defaults to the system's ``/usr/bin/python3`` (a virtualenv's packages
    are not in the sandbox).
    """

    def __init__(
        self,
        *,
        limits: SandboxLimits = SandboxLimits(),
        workspace: str | Path | None = None,
        languages: tuple[Language, ...] = ("python",),
        python: str | None = None,
        use_bwrap: bool | None = None,
    ) -> None:
        self.limits = limits
        self.languages = languages
        self.python = python or shutil.which("python3", path="/usr/bin:/bin") or "python3"
        self._own_workspace = workspace is None
        self.workspace = Path(workspace or tempfile.mkdtemp(prefix="pixelpilot-sandbox-")).resolve()
        self.workspace.mkdir(parents=True, exist_ok=True)
        self._ids = _sandbox_ids()
        if self._ids is not None:
            os.chown(self.workspace, *self._ids)
        bwrap = bwrap_path() if use_bwrap is not False else None
        if use_bwrap and bwrap is None:
            raise RuntimeError(
                "bubblewrap is not usable here: install Debian's `bubblewrap` "
                "(and allow unprivileged user namespaces), or pass use_bwrap=None"
            )
        self.bwrap = bwrap
        if bwrap is None:
            global _warned
            if not _warned:
                _warned = True
                warnings.warn(
                    "bubblewrap (bwrap) is not available: sandboxed code runs with resource limits"
                    + (" and no network" if _unshare_net_prefix() else "")
                    + " but can see the host's files; install Debian's `bubblewrap` for isolation",
                    RuntimeWarning,
                    stacklevel=2,
                )

    def close(self) -> None:
        """Remove the workspace if the sandbox made it."""
        if self._own_workspace:
            shutil.rmtree(self.workspace, ignore_errors=True)

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- running --------------------------------------------------------------------------------
    def _command(self, code: str, language: Language) -> tuple[list[str], dict[str, str]]:
        """The argv and environment of one run (the host's environment never reaches the code)."""
        inner = [self.python, "-I", "-B", "-c", code] if language == "python" else ["/bin/bash", "-c", code]
        home = str(self.workspace) if self.bwrap is None else SANDBOX_WORKSPACE
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "PYTHONUNBUFFERED": "1",
            "HOME": home,
            "TMPDIR": home,
        }
        if self.bwrap is None:
            return [*_unshare_net_prefix(), *inner], env
        args = [self.bwrap, "--unshare-all", "--die-with-parent", "--new-session", "--clearenv"]
        for k, v in env.items():
            args += ["--setenv", k, v]
        # The system, read-only; merged-/usr links stay links. No /home, /root, /tmp, /work, /opt.
        for top in ("usr", "bin", "sbin", "lib", "lib32", "lib64", "etc"):
            p = Path("/") / top
            if p.is_symlink():
                args += ["--symlink", os.readlink(p), str(p)]
            elif p.is_dir():
                args += ["--ro-bind", str(p), str(p)]
        prefix = Path(self.python).resolve().parent.parent
        if not str(prefix).startswith("/usr"):
            args += ["--ro-bind", str(prefix), str(prefix)]  # a Python installed outside /usr
        args += [
            "--proc",
            "/proc",
            "--dev",
            "/dev",
            "--bind",
            str(self.workspace),
            SANDBOX_WORKSPACE,
            "--chdir",
            SANDBOX_WORKSPACE,
            "--remount-ro",
            "/",
            "--",
        ]
        return args + inner, env

    def _limiter(self) -> Callable[[], None]:
        """What the child runs before exec: the resource limits, inherited by all it starts."""
        lim = self.limits
        mb = 1024 * 1024
        uid = self._ids[0] if self._ids is not None else os.getuid()
        # RLIMIT_NPROC counts every process of the user, so the ones it runs already come on top.
        limits = (
            (resource.RLIMIT_CPU, (lim.cpu_seconds, lim.cpu_seconds + 1)),
            (resource.RLIMIT_AS, (lim.memory_mb * mb,) * 2),
            (resource.RLIMIT_FSIZE, (lim.file_size_mb * mb,) * 2),
            (resource.RLIMIT_NOFILE, (lim.open_files,) * 2),
            (resource.RLIMIT_NPROC, (lim.processes + _processes_of(uid),) * 2),
            (resource.RLIMIT_CORE, (0, 0)),
        )

        def apply() -> None:
            for what, value in limits:
                resource.setrlimit(what, value)

        return apply

    async def run(self, code: str, language: Language = "python") -> RunResult:
        """Run ``code`` and return its output, exit code and the files it wrote."""
        if language not in self.languages:
            raise ToolError(f"language {language!r} is not enabled; this sandbox runs {', '.join(self.languages)}")
        if "\x00" in code:
            raise ToolError("the code contains a NUL character")
        lim = self.limits
        before = self._snapshot()
        t0 = time.monotonic()
        argv, env = self._command(code, language)
        ids: dict[str, Any] = {}
        if self._ids is not None:
            ids = {"user": self._ids[0], "group": self._ids[1], "extra_groups": []}
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=self.workspace,
            env=env,
            start_new_session=True,
            preexec_fn=self._limiter(),
            **ids,
        )
        stopped: list[str] = []
        out, err = bytearray(), bytearray()

        def kill(reason: str) -> None:
            if not stopped:
                stopped.append(reason)
            _killpg(proc.pid)

        async def drain(stream: asyncio.StreamReader, buf: bytearray, name: str) -> None:
            while chunk := await stream.read(65536):
                room = lim.output_bytes - len(buf)
                buf += chunk[:room]
                if len(chunk) > room:
                    kill(f"{name} exceeded {lim.output_bytes} bytes")
                    return

        async def supervise() -> None:
            assert proc.stdout is not None and proc.stderr is not None
            await asyncio.gather(drain(proc.stdout, out, "stdout"), drain(proc.stderr, err, "stderr"))
            await proc.wait()

        try:
            await asyncio.wait_for(supervise(), lim.wall_seconds)
        except TimeoutError:
            kill(f"wall-clock timeout after {lim.wall_seconds:g} s")
        finally:
            if proc.returncode is None:  # timed out or cancelled: the group was (or is now) killed
                kill("cancelled")
                await proc.wait()
            _killpg(proc.pid)  # whatever it left running in its group goes too
        reason = stopped[0] if stopped else _signal_reason(proc.returncode, lim, self.bwrap is not None)
        return RunResult(
            stdout=out.decode("utf-8", "replace"),
            stderr=err.decode("utf-8", "replace"),
            exit_code=proc.returncode,
            files=self._changed(before),
            stopped=reason,
            seconds=round(time.monotonic() - t0, 3),
            sandboxed=self.bwrap is not None,
        )

    def run_sync(self, code: str, language: Language = "python") -> RunResult:
        """:meth:`run` from plain (non-async) code."""
        return run_sync(self.run(code, language), "sandbox.run(code)")

    def _snapshot(self) -> dict[str, tuple[int, int]]:
        snap: dict[str, tuple[int, int]] = {}
        for root, _dirs, files in os.walk(self.workspace):
            for name in files:
                p = Path(root, name)
                try:
                    st = p.lstat()  # a link is reported as itself, never followed to the host
                except OSError:
                    continue
                snap[str(p.relative_to(self.workspace))] = (st.st_mtime_ns, st.st_size)
                if len(snap) >= 1000:
                    return snap
        return snap

    def _changed(self, before: dict[str, tuple[int, int]]) -> dict[str, int]:
        after = self._snapshot()
        return {k: v[1] for k, v in sorted(after.items()) if before.get(k) != v}


def _signal_reason(code: int | None, lim: SandboxLimits, bwrap: bool) -> str | None:
    """Why a run died of a signal, in words; None when it exited by itself."""
    if code is None:
        return None
    # A signal shows as -N from a direct child, and as 128+N through bwrap's init.
    sig = -code if code < 0 else code - 128 if bwrap and code > 128 else None
    if sig == signal.SIGXCPU:
        return f"CPU time limit ({lim.cpu_seconds} s) reached"
    if sig == signal.SIGXFSZ:
        return f"file size limit ({lim.file_size_mb} MB) reached"
    if sig == signal.SIGKILL:
        return "killed (SIGKILL)"
    return None


def code_tool(sandbox: Sandbox, name: str = "run_code") -> Tool:
    """A registry ``Tool`` that runs code in ``sandbox`` (its languages become the schema's enum)."""
    langs = sandbox.languages

    async def run_code(code: str, language: str = langs[0]) -> str:
        """Run a short program in a sandbox (no network; files persist in the working folder).

        Returns the exit code, stdout, stderr and the files the program wrote.

        Args:
            code: the program's source
            language: which interpreter runs it
        """
        return (await sandbox.run(code, cast(Language, language))).text()

    run_code.__annotations__.update(
        code=Annotated[str, Field(min_length=1, max_length=MAX_CODE)],
        language=Literal[langs],
    )
    if len(langs) == 1:
        run_code.__doc__ = (run_code.__doc__ or "").replace(
            "language: which interpreter runs it", f"language: always {langs[0]!r}"
        )
    return function_tool(run_code, name=name, timeout=sandbox.limits.wall_seconds + 5)
