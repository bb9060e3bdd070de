"""Hostile code against the code sandbox: each case is what a model's program might try, run for real
under bubblewrap, and judged by what the host sees afterwards (its disk, its processes, its sockets)."""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import tarfile
import threading
import time
import uuid
import warnings
from pathlib import Path

import pytest

from pixelpilot.tools import code as code_mod
from pixelpilot.tools.code import Sandbox, SandboxLimits, bwrap_path

MB = 1024 * 1024
LIMITS = SandboxLimits(
    cpu_seconds=4, wall_seconds=8, memory_mb=256, file_size_mb=8, workspace_mb=32, workspace_files=200
)

needs_bwrap = pytest.mark.skipif(
    bwrap_path() is None, reason="bubblewrap is missing or cannot create namespaces on this host"
)


@pytest.fixture
def sandbox():
    sb = Sandbox(limits=LIMITS, languages=("python", "bash"))
    yield sb
    sb.close()


def _size(folder: Path) -> int:
    return sum(p.lstat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


def _pids_with(marker: str) -> list[int]:
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if marker.encode() in Path(entry.path, "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


def _gone(marker: str, within: float = 5.0) -> bool:
    deadline = time.monotonic() + within
    while _pids_with(marker) and time.monotonic() < deadline:
        time.sleep(0.1)
    return not _pids_with(marker)


# --- filling memory or disk past the limits ------------------------------------------------------------

FILL = """
import os, sys
written = 0
for i in range({count}):
    try:
        with open(os.path.join({folder!r}, f"fill{{i}}"), "wb") as f:
            f.write(b"x" * ({each} * 1024 * 1024))
        written += {each}
    except OSError as e:
        print("stopped:", e.strerror)
        break
print("written", written)
"""


@needs_bwrap
@pytest.mark.parametrize(
    ("folder", "cap_mb"),
    [
        ("/dev", 0),  # bwrap's /dev is a tmpfs that no limit bounded: 1 GB went in under a 256 MB limit
        ("/dev/shm", LIMITS.file_size_mb),  # shared memory is counted by no rlimit
        ("/dev/mqueue", 0),
        (".", LIMITS.workspace_mb),  # the workspace had a per-file limit, no total
    ],
)
async def test_filling_a_tmpfs_stops_at_its_bound(sandbox, folder, cap_mb):
    r = await sandbox.run(FILL.format(count=128, folder=folder, each=LIMITS.file_size_mb))
    written = int(r.stdout.split("written")[-1])
    assert written <= cap_mb, r.stdout
    assert "stopped:" in r.stdout
    assert _size(sandbox.workspace) <= LIMITS.workspace_mb * MB


@needs_bwrap
async def test_many_small_files_do_not_grow_the_host_workspace(sandbox):
    r = await sandbox.run("for i in range(5000):\n    open(f'f{i}', 'w').write('x')\nprint('made them')")
    assert "made them" in r.stdout
    assert len(list(sandbox.workspace.iterdir())) <= LIMITS.workspace_files
    assert r.unsaved and f"more than {LIMITS.workspace_files} files" in r.unsaved


@needs_bwrap
async def test_raising_its_own_file_size_limit_fails(sandbox):
    r = await sandbox.run(
        "import resource\n"
        "try:\n    resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY,) * 2)\n    print('RAISED')\n"
        "except (ValueError, OSError) as e:\n    print('refused', e)\n"
        "open('big', 'wb').write(b'0' * (20 * 1024 * 1024))\n"
    )
    assert "RAISED" not in r.stdout and "refused" in r.stdout
    assert "File too large" in r.stderr
    assert not (sandbox.workspace / "big").exists() or (sandbox.workspace / "big").stat().st_size <= 8 * MB


# --- leaving something behind on the host -------------------------------------------------------------


@needs_bwrap
@pytest.mark.parametrize(
    ("attack", "name"),
    [
        ("os.symlink('/etc/passwd', 'passwd')", "passwd"),  # read through the link on the host later
        ("os.symlink('/', 'hostroot')", "hostroot"),
        ("os.symlink('../../../../tmp', 'up')", "up"),
        ("open('target', 'w').write('x'); os.link('target', 'hard')", "hard"),
        ("os.mkfifo('fifo')", "fifo"),  # a host process opening it would block forever
    ],
)
async def test_links_and_special_files_stay_in_the_sandbox(sandbox, attack, name):
    r = await sandbox.run(f"import os\n{attack}\nprint('made')")
    assert "made" in r.stdout
    p = sandbox.workspace / name
    assert not p.is_symlink() and (not p.exists() or p.is_file() and p.stat().st_nlink == 1)
    if name != "hard":  # a hard link inside the workspace comes back as nothing, a link as nothing
        assert not p.exists() and name in (r.unsaved or "")


@needs_bwrap
async def test_setuid_bits_do_not_come_back(sandbox):
    await sandbox.run("import os\nopen('tool', 'w').write('#!/bin/sh\\nid\\n')\nos.chmod('tool', 0o6777)")
    mode = (sandbox.workspace / "tool").stat().st_mode
    assert mode & 0o6000 == 0 and mode & 0o022 == 0


def _forged_tar(escape: Path) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in (f"../../../../../../..{escape}", str(escape), "ok.txt"):
            info = tarfile.TarInfo(name)
            info.size = 2
            tar.addfile(info, io.BytesIO(b"hi"))
        link = tarfile.TarInfo("sub")
        link.type, link.linkname = tarfile.SYMTYPE, str(escape.parent)
        tar.addfile(link)
        through = tarfile.TarInfo("sub/" + escape.name)
        through.size = 2
        tar.addfile(through, io.BytesIO(b"hi"))
    return buf.getvalue()


@needs_bwrap
async def test_a_forged_workspace_cannot_write_outside_it(sandbox, tmp_path):
    """The program writes its own tar into the runner's pipe (an fd of its parent) and kills the
    runner: entries that climb out of the workspace, absolute ones and ones through a link must not
    land on the host. (When the host runs as root the pipe cannot even be opened; the same tar is then
    handed to the host's side directly, as it would arrive on a host where it can.)"""
    escape = tmp_path / f"escape-{uuid.uuid4().hex}"
    forged = _forged_tar(escape)
    r = await sandbox.run(
        "import os, signal\n"
        "parent = os.getppid()\n"
        "for fd in os.listdir(f'/proc/{parent}/fd'):\n"
        "    try:\n"
        "        if os.readlink(f'/proc/{parent}/fd/{fd}').startswith('pipe:'):\n"
        "            w = os.open(f'/proc/{parent}/fd/{fd}', os.O_WRONLY | os.O_NONBLOCK)\n"
        f"            os.write(w, {forged!r})\n"
        "    except OSError:\n"
        "        pass\n"
        "os.kill(parent, signal.SIGKILL)\n"
    )
    assert not escape.exists() and not any(tmp_path.iterdir())
    assert r.unsaved
    unsaved = sandbox._save(io.BytesIO(forged), finished=True)
    assert not escape.exists() and not any(tmp_path.iterdir())
    assert (sandbox.workspace / "ok.txt").read_text() == "hi"
    assert not (sandbox.workspace / "sub").is_symlink()  # its file lands in a real folder, inside
    assert unsaved and "left out" in unsaved


@needs_bwrap
async def test_a_daemon_cannot_write_after_the_run_or_outlive_it(sandbox):
    marker = f"daemon-{uuid.uuid4().hex}"
    t0 = time.monotonic()
    r = await sandbox.run(
        f"# {marker}\nimport os, time\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    time.sleep(0.5)\n"
        "    for i in range(100):\n"
        "        open('late.txt', 'a').write('late\\n')\n"
        "        time.sleep(0.05)\n"
        "    os._exit(0)\n"
        "open('early.txt', 'w').write('early')\n"
    )
    assert time.monotonic() - t0 < 3
    assert r.ok and r.files == {"early.txt": 5}
    time.sleep(1)
    assert not (sandbox.workspace / "late.txt").exists()
    assert _gone(marker, within=0.5)


@needs_bwrap
async def test_the_seed_of_the_workspace_is_read_only(sandbox):
    (sandbox.workspace / "data.txt").write_text("original")
    r = await sandbox.run(
        "for p in ('/run/seed/data.txt', '/run/seed/new.txt'):\n"
        "    try:\n        open(p, 'w').write('changed')\n        print('WROTE', p)\n"
        "    except OSError as e:\n        print('denied', e.strerror)\n"
    )
    assert "WROTE" not in r.stdout and r.stdout.count("denied") == 2
    assert (sandbox.workspace / "data.txt").read_text() == "original"
    assert not (sandbox.workspace / "new.txt").exists()


# --- reaching the host: sockets, processes ------------------------------------------------------------


@pytest.fixture
def abstract_socket():
    """A Unix socket in the abstract namespace (no file to hide): reachable by anything sharing the
    host's network namespace."""
    name = f"pixelpilot-test-{uuid.uuid4().hex}"
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind("\0" + name)
    srv.listen()
    accepted: list[bytes] = []

    def serve() -> None:
        try:
            conn, _ = srv.accept()
            accepted.append(conn.recv(100))
            conn.close()
        except OSError:
            pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield name, accepted
    srv.close()


@needs_bwrap
async def test_host_abstract_unix_socket_is_out_of_reach(sandbox, abstract_socket):
    name, accepted = abstract_socket
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.connect("\0" + name)  # reachable from the host: the test can fail
    probe.sendall(b"host")
    probe.close()
    time.sleep(0.2)
    r = await sandbox.run(
        "import socket\ns = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)\n"
        f"try:\n    s.connect('\\0{name}')\n    s.sendall(b'sandbox')\n    print('REACHED')\n"
        "except OSError as e:\n    print('refused', e.strerror)\n"
    )
    assert "refused" in r.stdout and "REACHED" not in r.stdout
    assert accepted == [b"host"]


@pytest.fixture
def host_process():
    marker = f"hostproc-{uuid.uuid4().hex}"
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", marker], start_new_session=True)
    yield proc, marker
    proc.kill()
    proc.wait()


@needs_bwrap
async def test_host_processes_are_invisible_and_cannot_be_signalled(sandbox, host_process):
    proc, marker = host_process
    r = await sandbox.run(
        "import os, signal\n"
        "seen = []\n"
        "for pid in os.listdir('/proc'):\n"
        "    if pid.isdigit():\n"
        "        try:\n            seen.append(open(f'/proc/{pid}/cmdline', 'rb').read())\n"
        "        except OSError:\n            pass\n"
        # the marker in two halves, so that this program's own command line does not hold it whole
        f"print('SEEN' if any(b'{marker[:12]}' + b'{marker[12:]}' in c for c in seen) else 'unseen', len(seen))\n"
        f"try:\n    os.kill({proc.pid}, signal.SIGKILL)\n    print('KILLED')\n"
        "except OSError as e:\n    print('cannot', e.strerror)\n"
    )
    assert "unseen" in r.stdout and "KILLED" not in r.stdout
    assert int(r.stdout.split()[1]) <= 4  # bwrap's init, the runner, the program
    assert proc.poll() is None


# --- without bubblewrap -----------------------------------------------------------------------------------


def test_no_bubblewrap_refuses_unless_asked_by_name(monkeypatch):
    monkeypatch.setattr(code_mod, "bwrap_path", lambda: None)
    with pytest.raises(RuntimeError) as refused:
        Sandbox(limits=LIMITS)
    message = str(refused.value)
    assert type(refused.value).__name__ == "SandboxUnavailable"
    assert "isolation='none'" in message
    for risk in ("read every file", "loopback", "Unix sockets", "processes", "after its time limit"):
        assert risk in message
    monkeypatch.setattr(code_mod, "_warned", False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with Sandbox(limits=LIMITS, isolation="none") as sb:
            assert not sb.run_sync("print(1)").sandboxed
    assert any("read every file" in str(w.message) for w in caught)


def test_isolation_is_named_not_guessed():
    with pytest.raises(ValueError, match="isolation"):
        Sandbox(isolation="off")  # type: ignore[arg-type]


async def test_in_none_mode_a_setsid_daemon_does_not_hold_the_run(monkeypatch):
    """Without namespaces a daemon escapes the process group and keeps stdout open: the run must
    still end at its wall clock (the daemon's fate is the documented risk of "none")."""
    monkeypatch.setattr(code_mod, "_unshare_net_prefix", lambda: ())  # a host without unshare either
    monkeypatch.setattr(code_mod, "_warned", True)
    marker = f"escapee-{uuid.uuid4().hex}"
    with Sandbox(limits=SandboxLimits(wall_seconds=1.5), isolation="none") as sb:
        t0 = time.monotonic()
        r = await sb.run(
            f"# {marker}\nimport os, time\n"
            "if os.fork() == 0:\n    os.setsid()\n    time.sleep(20)\n    os._exit(0)\n"
            "time.sleep(60)\n"
        )
        took = time.monotonic() - t0
    for pid in _pids_with(marker):
        os.kill(pid, 9)
    assert r.stopped == "wall-clock timeout after 1.5 s"
    assert took < 3


@needs_bwrap
@pytest.mark.skipif(os.geteuid() != 0, reason="needs a host running as root, whose sandbox runs as nobody")
async def test_a_host_file_the_sandbox_may_not_read_is_neither_read_nor_replaced(sandbox):
    private = sandbox.workspace / "private"
    private.mkdir()
    (private / "key.pem").write_text("host secret")
    (private / "key.pem").chmod(0o600)  # root's: nobody may read it
    r = await sandbox.run(
        "import os\n"
        "print(sorted(os.listdir('.')), os.path.exists('private/key.pem'))\n"
        "os.makedirs('private', exist_ok=True)\n"
        "open('private/key.pem', 'w').write('forged')\n"
        "open('mine.txt', 'w').write('ok')\n"
    )
    assert "host secret" not in r.stdout + r.stderr and "False" in r.stdout
    assert (private / "key.pem").read_text() == "host secret"
    assert (sandbox.workspace / "mine.txt").read_text() == "ok"
    assert r.unsaved and "may not read" in r.unsaved


@needs_bwrap
async def test_freezing_the_sandbox_runner_does_not_hold_the_run():
    """The program stops its parent (the runner that would end it and copy the workspace back) and
    sleeps: the run still ends, a grace period after its wall clock, and keeps the workspace as it was."""
    with Sandbox(limits=SandboxLimits(wall_seconds=1.5)) as sb:
        (sb.workspace / "before.txt").write_text("kept")
        t0 = time.monotonic()
        r = await sb.run(
            "import os, signal, time\nopen('after.txt', 'w').write('x')\n"
            "os.kill(os.getppid(), signal.SIGSTOP)\ntime.sleep(60)\n"
        )
        took = time.monotonic() - t0
        assert took < 1.5 + code_mod.STOP_GRACE_S + 1.5
        assert r.stopped == "wall-clock timeout after 1.5 s"
        assert r.unsaved and "did not stop in time" in r.unsaved
        assert sorted(p.name for p in sb.workspace.iterdir()) == ["before.txt"]
