"""Desktop observe() against a bare mss grab, and the Android double's cost per step.

    .venv/bin/python bench/desktop_observe.py [--rounds 60] [--settle-steps 20]

Desktop: a private 1920×1080 Xvfb with a titled window showing a busy, screenshot-like picture.
Each round times a bare ``mss`` grab of the screen and ``DesktopEnv.observe()`` back to back, in
alternating order (the machine may be shared; interleaving keeps both under the same load), and
reports medians and their ratio (target ≤ 1.2). The PNG for the model is encoded lazily, on first read of ``obs.png``; its
cost is reported on its own. Then galculator (a typical GTK window) opens on the same display and
the accessibility tree's read time (``DesktopEnv.accessible_nodes()``, what text steps search) is
reported beside the grab (target ≤ 50 ms).

Desktop settle: one step (a click, the settle, ``observe()``) on a 1920×1080 Xvfb with a Tk window,
three kinds of click: ``drawn`` recolours a box at once, ``fade`` recolours it over ten frames 15 ms
apart, ``none`` lands where nothing is drawn. ``now`` is the settle on the X server's DAMAGE reports
(``envs/xsettle.py``), ``before`` the grab-and-compare loop it replaced (``wait_until_stable``: two
grabs ``settle_interval`` apart the same), both at the default interval, interleaved in one process
on one display. ``seen``: the share of looks showing the box in the colour the click set.

Android: ``AndroidEnv`` over the in-process device double (1080×2400): one step is a tap plus the
settle wait plus ``observe()``; the parts are reported too. The double answers instantly, so this
is the env's own overhead; a real phone adds its screencap and ``input`` times.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from _stats import p90


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


SETTLE_APP = """
import tkinter as tk
root = tk.Tk(); root.title("settle bench"); root.geometry("1920x1080+0+0")
c = tk.Canvas(root, width=1920, height=1080, bg="white", highlightthickness=0); c.pack()
box = c.create_rectangle(400, 300, 1200, 700, fill="#0000ff", outline="")
n = 0
def fade(target, i=0):  # from the other colour to the target in ten frames
    k = (i + 1) * 255 // 10
    c.itemconfig(box, fill="#%02x00%02x" % ((k, 255 - k) if target else (255 - k, k)))
    if i < 9: root.after(15, fade, target, i + 1)
def click(e):
    global n
    if not 300 <= e.y < 700: return  # nothing drawn
    n += 1
    if e.x < 800: c.itemconfig(box, fill="#ff0000" if n % 2 else "#0000ff")
    else: fade(n % 2)
c.bind("<Button-1>", click)
root.mainloop()
"""


async def desktop_settle(steps: int) -> None:
    import subprocess

    from pixelpilot.actions import Click
    from pixelpilot.envs.desktop import DesktopEnv

    class Before(DesktopEnv):
        async def settle(self) -> None:
            await self.wait_until_stable()

    size = (1920, 1080)
    now = DesktopEnv(virtual_display=size)
    await now.reset()
    before = Before(display=now.display, failsafe=False)
    await before.reset()
    app = subprocess.Popen(["/usr/bin/python3", "-c", SETTLE_APP], env={"DISPLAY": str(now.display)})
    points = {"drawn": (600, 500), "fade": (1000, 500), "none": (600, 900)}
    times: dict[tuple[str, str], list[float]] = {(e, k): [] for e in ("now", "before") for k in points}
    seen: dict[tuple[str, str], int] = dict.fromkeys(times, 0)
    try:
        deadline = time.monotonic() + 15
        while (await now.observe()).title != "settle bench":
            assert time.monotonic() < deadline, "the Tk window never came up"
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)
        red = False
        for i in range(steps):
            for name, env in (("now", now), ("before", before)) if i % 2 else (("before", before), ("now", now)):
                for kind, (x, y) in points.items():
                    t0 = time.perf_counter()
                    await env.execute(Click(x=round(x * 1000 / size[0]), y=round(y * 1000 / size[1])))
                    obs = await env.observe()
                    times[name, kind].append((time.perf_counter() - t0) * 1000)
                    red = red if kind == "none" else not red
                    seen[name, kind] += obs.image.getpixel((800, 500)) == ((255, 0, 0) if red else (0, 0, 255))
    finally:
        app.terminate()
        app.wait(5)
        await before.aclose()
        await now.aclose()
    print(f"desktop settle 1920x1080, one step = click + settle + observe ({steps} steps each, medians, p90)")
    for kind in points:
        a, b = (times[e, kind] for e in ("now", "before"))
        ma, mb = statistics.median(a), statistics.median(b)
        print(
            f"  {kind:6s} now {ma:6.1f} (p90 {p90(a):6.1f}, seen {seen['now', kind] / steps:4.0%})   "
            f"before {mb:6.1f} (p90 {p90(b):6.1f}, seen {seen['before', kind] / steps:4.0%})   now/before {ma / mb:4.2f}"
        )


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
    parser.add_argument("--settle-steps", type=int, default=20)
    args = parser.parse_args()
    asyncio.run(desktop(args.rounds))
    asyncio.run(desktop_settle(args.settle_steps))
    asyncio.run(android(max(10, args.rounds // 4)))


if __name__ == "__main__":
    main()
