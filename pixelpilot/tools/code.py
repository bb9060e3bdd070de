"""Run Python (and optionally bash) in a sandboxed subprocess.

Two isolation modes, chosen by name (``Sandbox(isolation=...)``):

- ``"bwrap"`` (the default; Debian's ``bubblewrap``): the code runs in fresh namespaces. No network
  at all (not the host's loopback, not its Unix sockets), only its own processes, the system
  directories read-only, no host home, ``/tmp`` or other folders, a cleared environment. ``/dev``
  holds the standard devices only, read-only, with a ``/dev/shm`` as small as one file. The
  workspace is a tmpfs of ``workspace_mb``: the host folder is copied in before each run and the
  result copied back after it (files and folders only; links and special files stay behind).
  When the program ends, or is stopped, everything it started is killed before the copy back.
- ``"none"``: no isolation at all; only the limits below apply. The code can read whatever its user
  can read, reach the network (the host's loopback and Unix sockets included), see and signal the
  user's processes, and leave a daemon running past its time limit. Never the default: a sandbox
  without bubblewrap refuses to start unless ``isolation="none"`` is asked for by name.

In both: resource limits (CPU seconds, address space, processes, file size, open files), a
wall-clock limit, output cut to a bound, a cleared environment, and — when the host runs as root —
an unprivileged user (``nobody``). Memory the kernel holds for the code outside its address space
(pipes, SysV shared memory, up to ``open_files`` memfds of ``file_size_mb``) is not counted by the
address-space limit; a cgroup would be needed for that.
"""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import resource
import shutil
import signal
import subprocess
import tarfile
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import IO, Annotated, Any, Literal, cast

from pydantic import Field

from .._sync import run_sync
from .registry import Tool, ToolError, function_tool

Language = Literal["python", "bash"]
Isolation = Literal["bwrap", "none"]
MAX_CODE = 20_000
SANDBOX_WORKSPACE = "/workspace"
#: Where the host's workspace is mounted read-only inside the sandbox, to be copied into the tmpfs.
_SEED = "/run/seed"
MB = 1024 * 1024
#: Seconds the sandbox's own runner gets, after a stop, to kill the program and copy the workspace back.
STOP_GRACE_S = 5.0
#: Seconds output pipes may stay open after the program ended (a process that escaped, in ``none`` mode).
DRAIN_GRACE_S = 0.5

_AS_BEFORE = "; the workspace is as before the run"
#: What ``isolation="none"`` gives up, in the words of the refusal and the warning.
NO_ISOLATION_RISKS = (
    "the code runs as a plain process: it can read every file its user can read, reach the network "
    "(the host's loopback and Unix sockets included), see and signal the user's processes, and leave "
    "processes running after its time limit; only the resource limits, the wall clock on its process "
    "group, the output bound and a cleared environment apply"
)


class SandboxUnavailable(RuntimeError):
    """bubblewrap cannot run here and no one asked for ``isolation="none"``."""


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
    #: The workspace's total size (bubblewrap: a tmpfs this large; a write past it fails with ENOSPC).
    workspace_mb: int = 64
    #: Files and folders the workspace may hold; a run that leaves more is not saved.
    workspace_files: int = 1000


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
    #: What of the workspace was not kept, and why (over the quota, a link …), or None.
    unsaved: str | None = None

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
        if self.unsaved:
            parts.append(f"not saved: {self.unsaved}")
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
    """``unshare`` arguments that drop the network without privileges, when the kernel allows it
    (``none`` mode's best effort; it promises nothing)."""
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


# The runner inside bubblewrap (system Python, stdlib only): copy the workspace in, run the program
# under the file-size limit, wait for it to end or for the host's stop byte, kill every process of
# the sandbox, then stream the workspace back to the host as a tar. The host treats that stream as
# untrusted: the program could have written into it.
_RUNNER = r"""
import json, os, resource, select, shutil, signal, subprocess, sys, tarfile
argv, file_size, harvest, control = json.loads(sys.argv[1])
unread = []  # what the sandbox's user may not read: the host keeps it, the program never saw it
try:
    shutil.copytree(sys.argv[2], sys.argv[3], symlinks=True, dirs_exist_ok=True)
except shutil.Error as e:
    unread = [os.path.relpath(src, sys.argv[2]) for src, _, _ in e.args[0]]
except OSError:
    unread = ["."]
if unread:
    print("sandbox: the workspace holds files this sandbox may not read:", *unread[:5], file=sys.stderr)
def limit():
    resource.setrlimit(resource.RLIMIT_FSIZE, (file_size, file_size))
child = subprocess.Popen(argv, cwd=sys.argv[3], start_new_session=True, preexec_fn=limit)
select.select([os.pidfd_open(child.pid), control], [], [])
os.kill(-1, signal.SIGKILL)
code = child.wait()
try:
    os.kill(-1, signal.SIGKILL)
except ProcessLookupError:
    pass
keep = {"pixelpilot.unread": json.dumps(unread)}
with os.fdopen(harvest, "wb") as out, tarfile.open(fileobj=out, mode="w|", pax_headers=keep) as tar:
    tar.add(sys.argv[3], arcname=".", recursive=False)  # a tar of a global header alone does not read back
    for root, dirs, files in os.walk(sys.argv[3]):
        for name in dirs + files:
            path = os.path.join(root, name)
            try:
                tar.add(path, arcname=os.path.relpath(path, sys.argv[3]), recursive=False)
            except OSError:
                pass
sys.exit(128 - code if code < 0 else code)
"""

_warned = False


class Sandbox:
    """Runs code with limits in a private workspace that lives as long as the sandbox.

    ``workspace`` defaults to a fresh temporary folder, removed by ``close()``; files the code
    writes stay there between runs. When the host runs as root the code runs as ``nobody``, so a
    workspace you pass must be reachable by that user. ``python`` defaults to the system's
    ``/usr/bin/python3`` (a virtualenv's packages are not in the sandbox).

    ``isolation="bwrap"`` (the default) needs a working bubblewrap and raises
    :class:`SandboxUnavailable` without one; ``isolation="none"`` runs the code without any
    isolation, limits only (see the module's docstring for what that exposes).
    """

    def __init__(
        self,
        *,
        limits: SandboxLimits = SandboxLimits(),
        workspace: str | Path | None = None,
        languages: tuple[Language, ...] = ("python",),
        python: str | None = None,
        isolation: Isolation = "bwrap",
    ) -> None:
        if isolation not in ("bwrap", "none"):
            raise ValueError(f"isolation must be 'bwrap' or 'none', not {isolation!r}")
        bwrap = bwrap_path() if isolation == "bwrap" else None
        if isolation == "bwrap" and bwrap is None:
            raise SandboxUnavailable(
                "bubblewrap is not usable here: install Debian's `bubblewrap` and allow unprivileged user "
                "namespaces (sysctl kernel.unprivileged_userns_clone=1, or AppArmor's "
                "kernel.apparmor_restrict_unprivileged_userns=0). Sandbox(isolation='none') runs code anyway, "
                f"but then {NO_ISOLATION_RISKS}"
            )
        self.limits = limits
        self.languages = languages
        self.isolation = isolation
        self.bwrap = bwrap
        self.python = python or shutil.which("python3", path="/usr/bin:/bin") or "python3"
        self._own_workspace = workspace is None
        self.workspace = Path(workspace or tempfile.mkdtemp(prefix="pixelpilot-sandbox-")).resolve()
        self.workspace.mkdir(parents=True, exist_ok=True)
        self._ids = _sandbox_ids()
        if self._ids is not None:
            os.chown(self.workspace, *self._ids)
        self._lock = asyncio.Lock()  # one run at a time: each replaces the workspace with its own copy
        if bwrap is None:
            global _warned
            if not _warned:
                _warned = True
                warnings.warn(f"Sandbox(isolation='none'): {NO_ISOLATION_RISKS}", RuntimeWarning, stacklevel=2)

    def close(self) -> None:
        """Remove the workspace if the sandbox made it."""
        if self._own_workspace:
            shutil.rmtree(self.workspace, ignore_errors=True)

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- running --------------------------------------------------------------------------------
    def _command(self, code: str, language: Language, fds: tuple[int, int]) -> tuple[list[str], dict[str, str]]:
        """The argv and environment of one run (the host's environment never reaches the code);
        ``fds``: the runner's harvest and control pipes (bubblewrap only)."""
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
        lim = self.limits
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
        args += ["--proc", "/proc", "--dev", "/dev"]
        # bwrap's /dev is a tmpfs no limit bounds: a small /dev/shm, and the rest read-only.
        args += ["--perms", "1777", "--size", str(lim.file_size_mb * MB), "--tmpfs", "/dev/shm", "--remount-ro", "/dev"]
        args += ["--perms", "0700", "--size", str(lim.workspace_mb * MB), "--tmpfs", SANDBOX_WORKSPACE]
        args += ["--ro-bind", str(self.workspace), _SEED, "--chdir", SANDBOX_WORKSPACE, "--remount-ro", "/", "--"]
        runner = json.dumps([inner, lim.file_size_mb * MB, *fds])
        return [*args, self.python, "-I", "-S", "-B", "-c", _RUNNER, runner, _SEED, SANDBOX_WORKSPACE], env

    def _limiter(self) -> Callable[[], None]:
        """What the child runs before exec: the resource limits, inherited by all it starts."""
        lim = self.limits
        uid = self._ids[0] if self._ids is not None else os.getuid()
        # RLIMIT_NPROC counts every process of the user, so the ones it runs already come on top.
        limits = [
            (resource.RLIMIT_CPU, (lim.cpu_seconds, lim.cpu_seconds + 1)),
            (resource.RLIMIT_AS, (lim.memory_mb * MB,) * 2),
            (resource.RLIMIT_NOFILE, (lim.open_files,) * 2),
            (resource.RLIMIT_NPROC, (lim.processes + _processes_of(uid),) * 2),
            (resource.RLIMIT_CORE, (0, 0)),
        ]
        if self.bwrap is None:  # under bubblewrap the runner sets it for the program, after the copy in
            limits.append((resource.RLIMIT_FSIZE, (lim.file_size_mb * MB,) * 2))

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
        async with self._lock:
            return await self._run(code, language)

    def run_sync(self, code: str, language: Language = "python") -> RunResult:
        """:meth:`run` from plain (non-async) code."""
        return run_sync(self.run(code, language), "sandbox.run(code)")

    async def _run(self, code: str, language: Language) -> RunResult:
        lim = self.limits
        before = self._snapshot()
        if self.bwrap is not None:
            self._check_quota(before)
        loop = asyncio.get_running_loop()
        t0 = time.monotonic()
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        # The runner's pipes (bubblewrap): the workspace comes back on one, a stop goes out on the other.
        harvest_r, harvest_w = os.pipe() if self.bwrap else (-1, -1)
        control_r, control_w = os.pipe() if self.bwrap else (-1, -1)
        theirs = [fd for fd in (out_w, err_w, harvest_w, control_r) if fd >= 0]
        argv, env = self._command(code, language, (harvest_w, control_r))
        ids: dict[str, Any] = {}
        if self._ids is not None:
            ids = {"user": self._ids[0], "group": self._ids[1], "extra_groups": []}
        ours = [fd for fd in (out_r, err_r, harvest_r, control_w) if fd >= 0]
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out_w,
                stderr=err_w,
                pass_fds=tuple(fd for fd in (harvest_w, control_r) if fd >= 0),
                cwd=self.workspace,
                env=env,
                start_new_session=True,
                preexec_fn=self._limiter(),
                **ids,
            )
        except BaseException:
            for fd in ours:
                os.close(fd)
            raise
        finally:
            for fd in theirs:
                os.close(fd)
        stopped: list[str] = []
        out, err = bytearray(), bytearray()
        pipes = [await _open_pipe(loop, fd) for fd in (out_r, err_r, harvest_r) if fd >= 0]
        harvest = tempfile.SpooledTemporaryFile(max_size=8 * MB)
        # A tar of the workspace: its files, plus headers of at most 2 KiB per entry.
        harvest_cap = lim.workspace_mb * MB + 2048 * (lim.workspace_files + 2)
        harvest_size = 0
        hard_kill: asyncio.TimerHandle | None = None
        killed = False  # by us, after the runner had its grace: its tar may be cut at an entry's end

        def kill_all() -> None:
            nonlocal killed
            killed = proc.returncode is None
            _killpg(proc.pid)

        def stop(reason: str) -> None:
            nonlocal hard_kill
            if not stopped:
                stopped.append(reason)
            if self.bwrap is None:
                _killpg(proc.pid)
                return
            try:
                os.write(control_w, b"x")  # the runner kills the program and sends the workspace back
            except OSError:
                pass
            if hard_kill is None:
                hard_kill = loop.call_later(STOP_GRACE_S, kill_all)

        async def drain(reader: asyncio.StreamReader, buf: bytearray, name: str) -> None:
            while chunk := await reader.read(65536):
                room = lim.output_bytes - len(buf)
                buf += chunk[:room]
                if len(chunk) > room:
                    stop(f"{name} exceeded {lim.output_bytes} bytes")
                    return

        async def collect(reader: asyncio.StreamReader) -> None:
            nonlocal harvest_size
            while chunk := await reader.read(65536):
                harvest_size += len(chunk)
                if harvest_size <= harvest_cap:
                    harvest.write(chunk)

        readers = [
            asyncio.ensure_future(drain(pipes[0][0], out, "stdout")),
            asyncio.ensure_future(drain(pipes[1][0], err, "stderr")),
            *([asyncio.ensure_future(collect(pipes[2][0]))] if self.bwrap is not None else []),
        ]
        try:
            try:
                await asyncio.wait_for(proc.wait(), lim.wall_seconds)
            except TimeoutError:
                stop(f"wall-clock timeout after {lim.wall_seconds:g} s")
                await proc.wait()
            # Under bubblewrap every process of the sandbox is gone now, and its pipes are at their end;
            # in "none" mode a process that escaped the group may hold them open: it is not waited for.
            await asyncio.wait(readers, timeout=STOP_GRACE_S if self.bwrap is not None else DRAIN_GRACE_S)
        finally:
            if proc.returncode is None:  # cancelled from outside
                stopped.append("cancelled")
                _killpg(proc.pid)
                await proc.wait()
            _killpg(proc.pid)  # whatever it left running in its group goes too
            if hard_kill is not None:
                hard_kill.cancel()
            for task in readers:
                task.cancel()
            for _, transport in pipes:
                transport.close()
            if control_w >= 0:
                os.close(control_w)
        with harvest:
            if self.bwrap is None:
                unsaved = None
            elif harvest_size > harvest_cap:
                unsaved = f"the workspace came back larger than its quota ({lim.workspace_mb} MB){_AS_BEFORE}"
            else:
                unsaved = self._save(harvest, finished=not killed)
        reason = stopped[0] if stopped else _signal_reason(proc.returncode, lim, self.bwrap is not None)
        return RunResult(
            stdout=out.decode("utf-8", "replace"),
            stderr=err.decode("utf-8", "replace"),
            exit_code=proc.returncode,
            files=self._changed(before),
            stopped=reason,
            seconds=round(time.monotonic() - t0, 3),
            sandboxed=self.bwrap is not None,
            unsaved=unsaved,
        )

    # -- the workspace --------------------------------------------------------------------------
    def _check_quota(self, snapshot: dict[str, tuple[int, int]]) -> None:
        lim = self.limits
        total = sum(size for _, size in snapshot.values())
        if total > lim.workspace_mb * MB or len(snapshot) > lim.workspace_files:
            raise ToolError(
                f"the workspace {self.workspace} holds {len(snapshot)} files, {total / MB:.1f} MB: more than its quota "
                f"({lim.workspace_files} files, {lim.workspace_mb} MB); remove files or raise SandboxLimits.workspace_mb"
            )

    def _save(self, harvest: IO[bytes], *, finished: bool) -> str | None:
        """Replace the host workspace by the run's copy of it, a tar in ``harvest`` (``finished``: the
        runner ended by itself); returns what was not kept, and why.

        The copy is the sandbox's word, so it is checked as hostile input: only regular files and
        folders, names inside the workspace (tarfile's ``data`` filter), within the quota. Anything
        else leaves the host workspace as it was before the run.
        """
        lim = self.limits
        if not finished:
            return "the sandbox did not stop in time" + _AS_BEFORE
        if harvest.seek(0, os.SEEK_END) == 0:
            return "the sandbox's runner did not send the workspace back (the program killed it)" + _AS_BEFORE
        harvest.seek(0)
        try:
            with tarfile.open(fileobj=harvest, mode="r:") as tar:
                members = tar.getmembers()
                if len(members) > lim.workspace_files:
                    return f"the workspace holds more than {lim.workspace_files} files" + _AS_BEFORE
                if sum(m.size for m in members if m.isreg()) > lim.workspace_mb * MB:
                    return f"the workspace came back larger than its quota ({lim.workspace_mb} MB)" + _AS_BEFORE
                unread = _unread(tar.pax_headers.get("pixelpilot.unread"))
                kept, left, shadowed = [], [], []
                for m in members:
                    if m.name in (".", "./"):  # the workspace itself: the host's folder keeps its own mode
                        continue
                    if _within(m.name, unread):  # the host's own file, which the program could not read
                        shadowed.append(m.name)
                        continue
                    if m.isreg() or m.isdir():
                        try:
                            safe = tarfile.data_filter(m, str(self.workspace))
                        except tarfile.FilterError:
                            safe = None
                        if safe is not None and safe.name == m.name:  # the filter strips a leading "/"
                            kept.append(safe)
                            continue
                    left.append(m.name)
                _clear(self.workspace, keep=unread)
                tar.extractall(self.workspace, members=kept, filter="data")
        except (tarfile.TarError, OSError) as e:
            return f"the workspace could not be read back ({type(e).__name__}: {e})" + _AS_BEFORE
        if self._ids is not None:
            for m in kept:
                os.chown(self.workspace / m.name, *self._ids, follow_symlinks=False)
        notes = []
        if left:
            notes.append("only files and folders are kept; left out: " + ", ".join(sorted(left)[:10]))
        if shadowed:
            notes.append("files this sandbox may not read stay as they were: " + ", ".join(sorted(shadowed)[:10]))
        return "; ".join(notes) or None

    def _snapshot(self) -> dict[str, tuple[int, int]]:
        """Every file of the workspace: (mtime in milliseconds, size). Milliseconds, because a copy
        back through a tar keeps mtimes to the microsecond only."""
        snap: dict[str, tuple[int, int]] = {}
        for root, _dirs, files in os.walk(self.workspace):
            for name in files:
                p = Path(root, name)
                try:
                    st = p.lstat()  # a link is reported as itself, never followed to the host
                except OSError:
                    continue
                snap[str(p.relative_to(self.workspace))] = (st.st_mtime_ns // 1_000_000, st.st_size)
                if len(snap) > self.limits.workspace_files:
                    return snap
        return snap

    def _changed(self, before: dict[str, tuple[int, int]]) -> dict[str, int]:
        after = self._snapshot()
        return {k: v[1] for k, v in sorted(after.items()) if before.get(k) != v}


def _unread(header: str | None) -> set[str]:
    """The workspace paths the runner could not copy in (it says so in its tar's global header)."""
    try:
        paths = json.loads(header or "[]")
    except json.JSONDecodeError:
        return {"."}  # a header the program garbled: keep everything rather than lose a file
    if not isinstance(paths, list):
        return {"."}
    return {os.path.normpath(p) for p in paths if isinstance(p, str)}


def _clear(folder: Path, keep: set[str]) -> None:
    """Remove everything inside ``folder`` but ``keep`` (relative paths) and the folders on the way to
    it; links are removed, never followed."""
    if "." in keep:
        return
    on_the_way = {str(parent) for p in keep for parent in Path(p).parents}
    for root, dirs, files in os.walk(folder):
        rel = Path(root).relative_to(folder)
        for name in files:
            if str(rel / name) not in keep:
                os.unlink(os.path.join(root, name))
        for name in list(dirs):
            path, full = str(rel / name), os.path.join(root, name)
            if path in keep:
                dirs.remove(name)
            elif os.path.islink(full):
                os.unlink(full)
                dirs.remove(name)
            elif path not in on_the_way:
                shutil.rmtree(full)
                dirs.remove(name)


def _within(name: str, keep: set[str]) -> bool:
    """Whether the relative path ``name`` is one of ``keep`` or inside one."""
    path = Path(os.path.normpath(name))
    return "." in keep or any(str(p) in keep for p in (path, *path.parents))


async def _open_pipe(loop: asyncio.AbstractEventLoop, fd: int) -> tuple[asyncio.StreamReader, asyncio.BaseTransport]:
    """A stream reader on the read end ``fd`` of a pipe, and its transport (which closes ``fd``)."""
    reader = asyncio.StreamReader()
    transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(fd, "rb", 0))
    return reader, transport


def _signal_reason(code: int | None, lim: SandboxLimits, bwrap: bool) -> str | None:
    """Why a run died of a signal, in words; None when it exited by itself."""
    if code is None:
        return None
    # A signal shows as -N from a direct child, and as 128+N through the runner under bwrap.
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
    return function_tool(run_code, name=name, timeout=sandbox.limits.wall_seconds + STOP_GRACE_S + 5)
