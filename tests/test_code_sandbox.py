"""The code sandbox: real subprocesses under bubblewrap and rlimits, attacked the usual ways."""

from __future__ import annotations

import os
import subprocess
import threading
import time
import uuid
import warnings
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from sandbox_support import needs_bwrap, sandbox_fixture

from pixelpilot.tools import code as code_mod
from pixelpilot.tools.code import Sandbox, SandboxLimits, code_tool
from pixelpilot.tools.registry import ToolRegistry

LIMITS = SandboxLimits(cpu_seconds=2, wall_seconds=6, memory_mb=256, processes=16, output_bytes=20_000)

sandbox = sandbox_fixture(LIMITS)


@pytest.fixture
def host_server():
    """A real HTTP server on the host's loopback, counting the requests it gets."""
    hits: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            hits.append(self.path)
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"secret page")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], hits
    server.shutdown()
    server.server_close()
    thread.join(5)


def _leftovers(marker: str) -> list[int]:
    pids = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if marker.encode() in Path(entry.path, "cmdline").read_bytes():
                    pids.append(int(entry.name))
            except OSError:
                pass
    return pids


def _assert_no_leftovers(marker: str) -> None:
    deadline = time.monotonic() + 5
    while _leftovers(marker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _leftovers(marker) == []
    assert subprocess.run(["true"]).returncode == 0  # the host can still start processes


async def test_ordinary_code_returns_output_and_files(sandbox):
    r = await sandbox.run(
        "import json, sys\n"
        "print('sum =', sum(range(10)))\n"
        "print('careful', file=sys.stderr)\n"
        "json.dump({'rows': 3}, open('out.json', 'w'))\n"
        "open('notes.txt', 'w').write('hello')\n"
    )
    assert r.ok and r.exit_code == 0 and r.stopped is None
    assert r.stdout == "sum = 45\n" and r.stderr == "careful\n"
    assert r.files == {"notes.txt": 5, "out.json": 11}
    assert (sandbox.workspace / "out.json").read_text() == '{"rows": 3}'
    # The workspace persists between runs; only changed files are reported.
    again = await sandbox.run("print(open('notes.txt').read()); open('notes.txt', 'a').write('!')")
    assert again.stdout == "hello\n" and again.files == {"notes.txt": 6}
    sh = await sandbox.run("echo $((6 * 7)); ls", "bash")
    assert sh.stdout.split() == ["42", "notes.txt", "out.json"]
    failing = await sandbox.run("raise SystemExit(3)")
    assert failing.exit_code == 3 and not failing.ok
    assert "exit code: 3" in failing.text()


@needs_bwrap
async def test_network_access_fails(sandbox, host_server):
    port, hits = host_server
    import httpx

    async with httpx.AsyncClient() as client:  # reachable from the host: the test can fail
        assert (await client.get(f"http://127.0.0.1:{port}/host")).text == "secret page"
    r = await sandbox.run(
        "import socket, urllib.request\n"
        f"try:\n    urllib.request.urlopen('http://127.0.0.1:{port}/sandbox', timeout=3).read()\n"
        "    print('REACHED')\nexcept OSError as e:\n    print('refused:', e)\n"
        "try:\n    socket.getaddrinfo('example.com', 80)\n    print('RESOLVED')\n"
        "except OSError as e:\n    print('no dns:', e)\n"
    )
    assert "refused:" in r.stdout and "no dns:" in r.stdout
    assert "REACHED" not in r.stdout and "RESOLVED" not in r.stdout
    assert hits == ["/host"]


@needs_bwrap
async def test_writing_outside_the_workspace_fails(sandbox, tmp_path):
    target = tmp_path / "open"
    target.mkdir()
    target.chmod(0o777)  # writable by anyone on the host, so only the sandbox can stop it
    code = "\n".join(
        f"try:\n    open({p!r}, 'w').write('x')\n    print('WROTE', {p!r})\nexcept OSError as e:\n    print('denied', e)"
        for p in ("/usr/pwned", "/etc/pwned", str(target / "escape.txt"), "/tmp/pwned", "/pwned")
    )
    r = await sandbox.run(code)
    assert "WROTE" not in r.stdout and r.stdout.count("denied") == 5
    assert not (target / "escape.txt").exists() and not Path("/tmp/pwned").exists()


@needs_bwrap
async def test_host_home_and_environment_are_hidden(sandbox, monkeypatch):
    secret = f"secret-{uuid.uuid4()}"
    monkeypatch.setenv("PIXELPILOT_TEST_TOKEN", secret)
    home = Path.home()
    with open(home / f".pixelpilot-test-{uuid.uuid4().hex}", "w") as f:
        f.write(secret)
    try:
        r = await sandbox.run(
            "import os\n"
            f"try:\n    print(open({f.name!r}).read())\nexcept OSError as e:\n    print('denied', type(e).__name__)\n"
            f"try:\n    print(os.listdir({str(home)!r}))\nexcept OSError as e:\n    print('denied', type(e).__name__)\n"
            "print(sorted(os.environ))\n"
        )
    finally:
        os.unlink(f.name)
    assert secret not in r.stdout and r.stdout.count("denied") == 2
    assert "PIXELPILOT_TEST_TOKEN" not in r.stdout


@needs_bwrap
async def test_fork_bomb_is_contained(sandbox):
    marker = f"forkbomb-{uuid.uuid4().hex}"
    t0 = time.monotonic()
    r = await sandbox.run(
        f"# {marker}\nimport os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
    )
    took = time.monotonic() - t0
    assert r.stopped is not None and took < LIMITS.wall_seconds + 3
    _assert_no_leftovers(marker)


async def test_bash_fork_bomb_is_contained(sandbox):
    marker = f"bashbomb{uuid.uuid4().hex[:8]}"
    t0 = time.monotonic()
    r = await sandbox.run(f"{marker}() {{ {marker} | {marker} & }}; {marker}; wait", "bash")
    assert time.monotonic() - t0 < LIMITS.wall_seconds + 3
    # bash may end before its children hit the process limit: the runner kills them either way
    _assert_no_leftovers(marker)
    assert r.unsaved is None  # and the workspace still comes back
    after = await sandbox.run("echo alive > after.txt; cat after.txt", "bash")
    assert after.ok and after.stdout == "alive\n" and (sandbox.workspace / "after.txt").read_text() == "alive\n"


async def test_memory_bomb_is_stopped(sandbox):
    t0 = time.monotonic()
    r = await sandbox.run("blocks = []\nwhile True:\n    blocks.append(bytearray(50 * 1024 * 1024))\n")
    assert r.exit_code != 0 and "MemoryError" in r.stderr
    big = await sandbox.run("x = bytearray(4 * 1024 ** 3)")
    assert "MemoryError" in big.stderr
    assert time.monotonic() - t0 < 5


@needs_bwrap
async def test_infinite_loop_hits_the_cpu_limit(sandbox):
    t0 = time.monotonic()
    r = await sandbox.run("while True:\n    pass\n")
    assert time.monotonic() - t0 < LIMITS.wall_seconds + 2
    assert r.stopped in ("CPU time limit (2 s) reached", "wall-clock timeout after 6 s")
    assert "stopped:" in r.text()


async def test_sleeping_forever_hits_the_wall_clock():
    with Sandbox(limits=SandboxLimits(wall_seconds=1.5)) as sb:
        marker = f"sleeper-{uuid.uuid4().hex}"
        t0 = time.monotonic()
        r = await sb.run(f"# {marker}\nimport subprocess, time\nsubprocess.Popen(['sleep', '1000'])\ntime.sleep(1000)")
        assert time.monotonic() - t0 < 4
        assert r.stopped == "wall-clock timeout after 1.5 s"
        _assert_no_leftovers(marker)


async def test_output_flood_is_cut(sandbox):
    t0 = time.monotonic()
    r = await sandbox.run("while True:\n    print('x' * 4096)\n")
    assert time.monotonic() - t0 < 3
    assert r.stopped == "stdout exceeded 20000 bytes"
    assert len(r.stdout) == 20_000


async def test_code_tool_in_a_registry(sandbox):
    registry = ToolRegistry([code_tool(sandbox)])
    params = registry["run_code"].parameters
    assert params["properties"]["language"]["enum"] == ["python", "bash"]
    out = await registry.call("run_code", {"code": "open('a.csv','w').write('1,2\\n'); print(6*7)"})
    assert out.ok
    assert out.info["result"] == "exit code: 0\nstdout:\n42\n\nfiles written: a.csv (4 bytes)"
    refused = await registry.call("run_code", {"code": "print(1)", "language": "ruby"})
    assert not refused.ok and "language" in refused.error


async def test_isolation_none_warns_once_and_still_limits(monkeypatch, host_server):
    monkeypatch.setattr(code_mod, "_warned", False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        a = Sandbox(limits=LIMITS, isolation="none")
        b = Sandbox(limits=LIMITS, isolation="none")
    try:
        assert len([w for w in caught if "isolation='none'" in str(w.message)]) == 1
        mem = await a.run("x = bytearray(4 * 1024 ** 3)")
        assert "MemoryError" in mem.stderr
        flood = await a.run("while True:\n    print('y' * 4096)\n")
        assert flood.stopped == "stdout exceeded 20000 bytes"
        t0 = time.monotonic()
        await b.run("while True:\n    pass\n")
        assert time.monotonic() - t0 < LIMITS.wall_seconds + 2
        env = await a.run("import os; print(sorted(os.environ))")
        assert "PIXELPILOT" not in env.stdout and "VIRTUAL_ENV" not in env.stdout
        if code_mod._unshare_net_prefix():  # the kernel lets us take the network away
            port, hits = host_server
            net = await a.run(f"import urllib.request\nurllib.request.urlopen('http://127.0.0.1:{port}/', timeout=3)")
            assert net.exit_code != 0 and hits == []
    finally:
        a.close()
        b.close()


async def test_file_size_bomb_is_stopped(sandbox):
    r = await sandbox.run("with open('big.bin', 'wb') as f:\n    f.write(b'0' * (64 * 1024 * 1024))\n")
    assert r.exit_code != 0 and "File too large" in r.stderr
    assert (sandbox.workspace / "big.bin").stat().st_size <= LIMITS.file_size_mb * 1024 * 1024


@needs_bwrap
async def test_an_empty_workspace_comes_back_empty_and_the_folder_keeps_its_mode(sandbox):
    mode = sandbox.workspace.stat().st_mode
    r = await sandbox.run("import os\nos.chmod('.', 0o777)\nprint('hi')")
    assert r.ok and r.stdout == "hi\n" and r.unsaved is None  # nothing to report for an empty workspace
    assert list(sandbox.workspace.iterdir()) == []
    assert sandbox.workspace.stat().st_mode == mode  # the sandbox cannot open the host's folder to others
    made = await sandbox.run("open('a.txt', 'w').write('x')")
    assert made.unsaved is None and (sandbox.workspace / "a.txt").read_text() == "x"
