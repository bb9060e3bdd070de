"""Desktop observe() against a bare mss grab, and the Android double's cost per step.

    .venv/bin/python bench/desktop_observe.py [--rounds 60]

Desktop: a private 1920×1080 Xvfb with a titled window showing a busy, screenshot-like picture.
Each round times a bare ``mss`` grab of the screen and ``DesktopEnv.observe()`` back to back, in
alternating order (the machine may be shared; interleaving keeps both under the same load), and
reports medians and their ratio (target ≤ 1.2). The PNG for the model is encoded lazily, on first read of ``obs.png``; its
cost is reported on its own. Then galculator (a typical GTK window) opens on the same display and
the accessibility tree's read time (``DesktopEnv.accessible_nodes()``, what text steps search) is
reported beside the grab (target ≤ 50 ms).

Android: ``AndroidEnv`` over the in-process device double (1080×2400): one step is a tap plus the
settle wait plus ``observe()``; the parts are reported too. The double answers instantly, so this
is the env's own overhead; a real phone adds its screencap and ``input`` times.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time


def _busy_picture(size: tuple[int, int]):
    from PIL import Image, ImageDraw, ImageFont

    img = Image.new("RGB", size, (236, 239, 244))
    d = ImageDraw.Draw(img)
    font = ImageFont.load_default(size=15)
    d.rectangle((0, 0, size[0], 36), fill=(45, 52, 64))
    for col in range(3):
        x0 = 40 + col * 620
        d.rectangle((x0, 70, x0 + 580, size[1] - 40), fill="white", outline=(200, 200, 210))
        for row in range(52):
            y = 90 + row * 18
            d.text(
                (x0 + 12, y),
                f"{row:03d}  The quick brown fox jumps over the lazy dog — column {col}",
                font=font,
                fill=(30 + row * 3 % 120, 40, 60),
            )
    return img


def _show_window(display: str, size: tuple[int, int]):
    """A mapped, titled window covering the screen, painted with the busy picture."""
    from Xlib import X
    from Xlib.display import Display

    d = Display(display)
    screen = d.screen()
    win = screen.root.create_window(
        0,
        0,
        size[0],
        size[1],
        0,
        screen.root_depth,
        X.InputOutput,
        X.CopyFromParent,
        background_pixel=screen.white_pixel,
    )
    win.set_wm_name("bench window")
    win.map()
    gc = win.create_gc()
    d.sync()
    win.put_pil_image(gc, 0, 0, _busy_picture(size))
    d.sync()
    return d


async def desktop(rounds: int) -> None:
    import mss

    from pixelpilot.envs.desktop import DesktopEnv

    size = (1920, 1080)
    env = DesktopEnv(virtual_display=size)
    await env.reset()
    xconn = _show_window(str(env.display), size)
    try:
        sct = mss.MSS(display=env.display)
        monitor = sct.monitors[1]
        bare, observe = [], []
        for _ in range(5):  # warm up both paths
            sct.grab(monitor)
            await env.observe()
        for i in range(rounds):
            # alternate which goes first: whichever follows the other on the X server runs a bit faster
            for which in (0, 1) if i % 2 else (1, 0):
                t0 = time.perf_counter()
                if which:
                    obs = await env.observe()
                else:
                    sct.grab(monitor)
                (observe if which else bare).append(time.perf_counter() - t0)
        assert obs.title == "bench window", obs.title
        encode = []
        for _ in range(max(5, rounds // 6)):
            obs = await env.observe()
            t0 = time.perf_counter()
            png = obs.png
            encode.append(time.perf_counter() - t0)
        sct.close()
        tree, nodes = await _tree_reads(env, max(10, rounds // 4))
        b, o, e = (statistics.median(v) * 1000 for v in (bare, observe, encode))
        print(f"desktop 1920x1080 ({rounds} rounds, medians)")
        print(f"  bare mss grab           {b:7.2f} ms")
        print(f"  DesktopEnv.observe()    {o:7.2f} ms   (grab + window title + Observation)")
        print(f"  ratio observe/bare      {o / b:7.2f}      (target <= 1.2)")
        print(
            f"  PNG encode for model    {e:7.2f} ms   (lazy, on first obs.png; level "
            f"{env.png_compress_level}, {len(png) / 1024:.0f} KiB)"
        )
        if tree:
            t = statistics.median(tree) * 1000
            print(f"  accessibility tree      {t:7.2f} ms   (galculator's window, {nodes} showing nodes; target <= 50)")
        else:
            print("  accessibility tree         n/a   (galculator did not show a tree: is it installed?)")
    finally:
        xconn.close()
        await env.aclose()


async def _tree_reads(env, rounds: int) -> tuple[list[float], int]:
    """Times of reading the accessibility tree with galculator open (empty if it never shows)."""
    import shutil
    import subprocess

    if shutil.which("galculator") is None:
        return [], 0
    proc = subprocess.Popen(["galculator"], env=env.app_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while not any(n.role == "frame" for n in await env.accessible_nodes()):
            if time.monotonic() > deadline:
                return [], 0
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)  # let it finish drawing
        times = []
        for _ in range(rounds):
            t0 = time.perf_counter()
            nodes = await env.accessible_nodes()
            times.append(time.perf_counter() - t0)
        return times, len(nodes)
    finally:
        proc.terminate()
        proc.wait(5)


async def android(rounds: int) -> None:
    from pixelpilot.actions import Click
    from pixelpilot.envs.android import AndroidEnv
    from pixelpilot.envs.android_double import AndroidDeviceDouble

    device = AndroidDeviceDouble()
    env = AndroidEnv(device=device)
    await env.reset()
    await env.execute(Click(x=100, y=100))  # warm up
    steps, observes, captures = [], [], []
    for i in range(rounds):
        t0 = time.perf_counter()
        # a tap that changes the screen (the double draws the touch), so the settle wait has work to do
        await env.execute(Click(x=300 + (i % 2) * 400, y=700))
        await env.observe()
        t1 = time.perf_counter()
        await env.observe()
        t2 = time.perf_counter()
        await env.capture()
        t3 = time.perf_counter()
        steps.append(t1 - t0)
        observes.append(t2 - t1)
        captures.append(t3 - t2)
    s, o, c = (statistics.median(v) * 1000 for v in (steps, observes, captures))
    print(f"android double 1080x2400 ({rounds} rounds, medians; settle interval {env.settle_interval * 1000:.0f} ms)")
    print(f"  step (tap + settle + observe)  {s:7.1f} ms")
    print(f"  observe() on its own           {o:7.1f} ms   (raw screencap + focus query)")
    print(f"  raw screencap + parse          {c:7.1f} ms")
    print(f"  shell commands per step        {len(device.commands) / (rounds * 3 + 2):7.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    asyncio.run(desktop(args.rounds))
    asyncio.run(android(max(10, args.rounds // 4)))


if __name__ == "__main__":
    main()
