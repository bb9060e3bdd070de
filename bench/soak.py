"""Soak: 100 scripted episodes back to back in one process, through the whole safety stack (URL
policy in the browser, approval gate, loop detector), printing open file descriptors, Chromium
processes (by kind) and memory as it goes. Passes when, after warm-up, open files and Chromium
processes do not grow and memory grows by less than 10 %.

    .venv/bin/python bench/soak.py [--episodes 100] [--warmup 10]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "examples"))

from todo_app import TodoApp  # noqa: E402

from pixelpilot.actions import Task  # noqa: E402
from pixelpilot.agent import Agent, Gate, ScriptPolicy  # noqa: E402
from pixelpilot.envs import UrlPolicy  # noqa: E402
from pixelpilot.envs.browser import BrowserEnv  # noqa: E402
from pixelpilot.trajectories import Recorder  # noqa: E402

STEPS = [
    {"type": {"text": "alice", "into": "Username"}},
    {"type": {"text": "wonderland", "into": "Password"}},
    {"click": "Sign in"},
    {"expect": {"text": "Welcome, alice"}},
    {"type": {"text": "Buy milk", "into": "New to-do"}},
    {"press": "Enter"},
    {"expect": {"text": "Buy milk"}},
]


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (read from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def rss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def chromium_processes() -> dict[int, str]:
    """Our Chromium processes by pid, with their --type (browser for the main one)."""
    out = {}
    for pid in descendants(os.getpid()):
        try:
            if "chrom" not in Path(f"/proc/{pid}/comm").read_text():
                continue
            args = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").split()  # Chromium retitles
        except OSError:
            continue  # exited meanwhile
        flags = dict(a.decode().partition("=")[::2] for a in args if a.startswith(b"--"))
        kind = flags.get("--type", "browser")
        out[pid] = f"{kind}/{flags.get('--utility-sub-type', '').split('.')[0]}" if kind == "utility" else kind
    return out


def sample() -> tuple[int, dict[int, str], float, float]:
    """(open fds, Chromium processes, this process's RSS, Chromium's total RSS) in MiB."""
    chromium = chromium_processes()
    return len(os.listdir("/proc/self/fd")), chromium, rss_mib(os.getpid()), sum(map(rss_mib, chromium))


async def main(episodes: int, warmup: int) -> int:
    with TodoApp() as app, tempfile.TemporaryDirectory() as runs:
        policy = UrlPolicy.of(allow=[app.url.split("//")[1].rstrip("/")])
        env = BrowserEnv(url_policy=policy)
        agent = Agent(env, ScriptPolicy(STEPS), recorder=Recorder(runs), gate=Gate(policy, approver=lambda r: True))
        base, last_kinds = None, []
        print(f"{'episode':>7} {'status':>8} {'fds':>5} {'chromium':>8} {'py MiB':>7} {'chromium MiB':>12}")
        try:
            for i in range(1, episodes + 1):
                ep = await agent.run(Task(instruction="log in and add a to-do", url=app.url))
                if ep.status != "success":
                    print(f"episode {i} ended {ep.status}: {ep.message}")
                    return 1
                fds, procs, py, chrome = sample()
                if i == warmup:
                    base = (fds, procs, py + chrome)
                kinds = sorted(procs.values())
                if i in (1, warmup) or i % 10 == 0 or kinds != last_kinds:
                    print(
                        f"{i:7d} {ep.status:>8} {fds:5d} {len(procs):8d} {py:7.0f} {chrome:12.0f}  " + " ".join(kinds)
                    )
                last_kinds = kinds
        finally:
            await env.aclose()
    assert base is not None
    growth = (py + chrome) / base[2] - 1
    print(
        f"after warm-up (episode {warmup} → {episodes}): fds {base[0]} → {fds}, chromium processes "
        f"{len(base[1])} → {len(procs)}, memory {base[2]:.0f} → {py + chrome:.0f} MiB ({growth:+.1%})"
    )
    before, after = Counter(base[1].values()), Counter(procs.values())
    grown = {kind: (before[kind], n) for kind, n in after.items() if n > before[kind]}
    # Chromium starts some services on its own timer minutes after launch (on_device_model, say):
    # one such process appearing once is not growth per episode; more of a kind already running is.
    once = sorted(kind for kind, (was, now) in grown.items() if (was, now) == (0, 1))
    if once:
        print("started once by Chromium itself after warm-up (not per episode):", ", ".join(once))
    ok = fds <= base[0] and len(grown) == len(once) and growth < 0.10
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--episodes", type=int, default=100)
    ap.add_argument("--warmup", type=int, default=10)
    args = ap.parse_args()
    sys.exit(asyncio.run(main(args.episodes, args.warmup)))
