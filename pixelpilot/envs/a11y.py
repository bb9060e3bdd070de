"""The accessibility tree of an X display: AT-SPI, read over D-Bus.

GTK and Qt programs publish their widgets (role, name, states, screen rectangle, text) on AT-SPI's
accessibility bus, a D-Bus bus of its own that ``at-spi-bus-launcher`` starts when someone on the
session bus asks for its address (``org.a11y.Bus.GetAddress``). A private Xvfb has no session, so
:class:`A11ySession` gives it one: a ``dbus-daemon --session`` with a runtime folder of its own,
through which D-Bus activation starts the launcher, the accessibility bus and the registry
(``at-spi2-registryd``). Programs started on the display need :attr:`A11ySession.env`: the two
buses' addresses (GTK 3 loads its AT-SPI bridge by itself unless ``NO_AT_BRIDGE=1``; Qt publishes
its tree only when a screen reader runs or ``QT_LINUX_ACCESSIBILITY_ALWAYS_ON=1``). The private
session bus also keeps single-instance programs (mousepad) on one display from handing their window
to a twin on another.

:class:`A11yReader` reads the tree with dbus-fast (asyncio D-Bus, no C build): the registry lists the
applications; each is walked breadth first with one level's calls in flight at once, descending only
into showing elements, so a read costs about as many round trips as the tree is deep (galculator:
~15 ms; libatspi through PyGObject, one blocking call at a time, took twice that). A program
without accessibility (xterm, Tk) has no tree: reads find nothing, quickly.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import select
import shutil
import signal
import subprocess
import tempfile
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .base import AccessibleNode, Box, EnvError, TextMatch, normalize_text, role_matches

if TYPE_CHECKING:
    from dbus_fast.aio import MessageBus

log = logging.getLogger(__name__)

_ACCESSIBLE = "org.a11y.atspi.Accessible"
_REGISTRY = ("org.a11y.atspi.Registry", "/org/a11y/atspi/accessible/root")
_NULL_PATH = "/org/a11y/atspi/null"
_SHOWING = 25
#: AT-SPI state bits (atspi-constants.h) that nodes report by name.
_STATES = {
    1: "active",
    4: "checked",
    7: "editable",
    10: "expanded",
    12: "focused",
    20: "pressed",
    23: "selected",
    24: "sensitive",
    32: "indeterminate",
}
#: Roles whose contents are read through the Text interface (their name is a label, if anything).
TEXT_ROLES = frozenset({"text", "entry", "paragraph", "document text", "terminal", "editbar"})
#: Roles a click acts on: preferred over a label with the same words.
INTERACTIVE_ROLES = frozenset(
    {
        "push button",
        "toggle button",
        "check box",
        "radio button",
        "menu item",
        "check menu item",
        "radio menu item",
        "menu",
        "link",
        "text",
        "entry",
        "combo box",
        "page tab",
        "list item",
        "table cell",
        "tree item",
        "spin button",
        "slider",
        "icon",
    }
)
#: Unnamed elements that still get a box: what a click or typing acts on, windows, and what clips
#: its children (so a scrolled-away child is not called visible).
BOXED_ROLES = INTERACTIVE_ROLES | TEXT_ROLES | {"frame", "dialog", "alert", "window", "scroll pane", "viewport"}
MAX_NODES = 5000  # per application: a huge list stops the walk there rather than the agent
MAX_TEXT = 100_000  # characters read from one text element
#: Calls in flight at once on one connection: dbus-fast drops the connection when the socket's send
#: buffer fills (its writer does not retry on EAGAIN; python-dbus-next issue #153), so stay well under.
MAX_IN_FLIGHT = 48

Ref = tuple[str, str]  # (bus name, object path)


# --- the session ------------------------------------------------------------------------------


class A11ySession:
    """A D-Bus session bus for one X display, with AT-SPI's accessibility bus behind it.

    ``start`` waits (bounded by ``timeout``) until the session bus prints its address and the
    launcher hands out the accessibility bus's; ``stop`` ends every process of the session (they
    share one process group) and removes its runtime folder.
    """

    def __init__(self, display: str, *, timeout: float = 10.0) -> None:
        self.display = display
        self.timeout = timeout
        #: The accessibility bus's address, once started.
        self.address: str | None = None
        #: Environment variables for programs on the display (with ``DISPLAY``), once started.
        self.env: dict[str, str] = {}
        self._proc: subprocess.Popen[bytes] | None = None
        self._dir: str | None = None
        self._finalizer: weakref.finalize | None = None

    async def start(self) -> None:
        """Start the session bus and the accessibility bus; raises :class:`EnvError` saying why not."""
        exe = shutil.which("dbus-daemon")
        if exe is None:
            raise EnvError("dbus-daemon is not installed; install Debian's dbus and at-spi2-core")
        self._dir = tempfile.mkdtemp(prefix="pixelpilot-a11y-")  # 0700: the session's XDG_RUNTIME_DIR
        env = {k: v for k, v in os.environ.items() if k not in ("DBUS_SESSION_BUS_ADDRESS", "AT_SPI_BUS_ADDRESS")}
        env.update(DISPLAY=self.display, XDG_RUNTIME_DIR=self._dir)
        session = await asyncio.to_thread(self._start_daemon, exe, env)
        self.env = {
            "DISPLAY": self.display,
            "XDG_RUNTIME_DIR": self._dir,
            "DBUS_SESSION_BUS_ADDRESS": session,
            "QT_LINUX_ACCESSIBILITY_ALWAYS_ON": "1",
        }
        try:
            self.address = await asyncio.wait_for(_get_address(session), self.timeout)
            # Activate the registry now, so the first read does not wait for it.
            bus = await asyncio.wait_for(_connect(self.address), self.timeout)
            try:
                await asyncio.wait_for(_call(bus, _REGISTRY, _ACCESSIBLE, "GetChildren"), self.timeout)
            finally:
                bus.disconnect()
        except Exception as e:
            tail = self._log_tail()
            self.stop()
            raise EnvError(f"the accessibility bus did not start within {self.timeout:.0f} s: {e}{tail}") from e
        self.env["AT_SPI_BUS_ADDRESS"] = self.address

    def _start_daemon(self, exe: str, env: dict[str, str]) -> str:
        assert self._dir is not None
        read_fd, write_fd = os.pipe()
        try:
            with open(Path(self._dir) / "dbus.log", "wb") as errors:
                self._proc = subprocess.Popen(
                    [
                        exe,
                        "--session",
                        "--nofork",
                        "--nopidfile",
                        f"--address=unix:dir={self._dir}",
                        f"--print-address={write_fd}",
                    ],
                    pass_fds=(write_fd,),
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=errors,
                    start_new_session=True,  # the launcher, its bus and the registry join this group
                )
        finally:
            os.close(write_fd)
        self._finalizer = weakref.finalize(self, _stop_session, self._proc, self._dir)
        try:
            data = b""
            deadline = time.monotonic() + self.timeout
            while not data.endswith(b"\n"):
                ready, _, _ = select.select([read_fd], [], [], max(deadline - time.monotonic(), 0))
                chunk = os.read(read_fd, 512) if ready else b""
                if not chunk:
                    break  # timed out, or the daemon exited
                data += chunk
        finally:
            os.close(read_fd)
        if not data.endswith(b"\n"):
            tail = self._log_tail()
            self.stop()
            raise EnvError(f"dbus-daemon did not start within {self.timeout:.0f} s{tail}")
        return data.decode().strip()

    def _log_tail(self) -> str:
        try:
            lines = (Path(self._dir or "") / "dbus.log").read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        errors = [ln for ln in lines if "fd limit" not in ln]  # an unprivileged daemon's usual notice
        return f" ({errors[-1]})" if errors else ""

    def stop(self) -> None:
        """End the session's processes and remove its folder. Safe to call twice."""
        if self._finalizer is not None:
            self._finalizer()
            self._finalizer = None
        self._proc, self._dir, self.address, self.env = None, None, None, {}


def _stop_session(proc: subprocess.Popen[bytes], folder: str) -> None:
    from .._process import stop_group

    stop_group(proc, grace=2.0)
    try:  # what activation started shares the group and may outlive the daemon
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    shutil.rmtree(folder, ignore_errors=True)


# --- D-Bus calls ------------------------------------------------------------------------------


def _dbus() -> Any:
    try:
        import dbus_fast
        import dbus_fast.aio
    except ImportError as e:
        raise EnvError("reading the accessibility tree needs dbus-fast: pip install 'pixelpilot[desktop]'") from e
    return dbus_fast


async def _connect(address: str) -> MessageBus:
    bus = _dbus().aio.MessageBus(bus_address=address)
    return await bus.connect()


async def _call(
    bus: MessageBus,
    ref: Ref,
    interface: str,
    member: str,
    signature: str = "",
    body: list[Any] | None = None,
    limit: asyncio.Semaphore | None = None,
    *,
    whole: bool = False,
) -> Any:
    """One method call's result (its first value; all of them with ``whole``), or None when the
    object answered with an error. ``limit`` bounds the calls in flight on the connection."""
    dbus_fast = _dbus()
    message = dbus_fast.Message(
        destination=ref[0], path=ref[1], interface=interface, member=member, signature=signature, body=body or []
    )
    if limit is None:
        reply = await bus.call(message)
    else:
        async with limit:
            reply = await bus.call(message)
    if reply is None or reply.message_type != dbus_fast.MessageType.METHOD_RETURN or not reply.body:
        return None
    return reply.body if whole else reply.body[0]


async def _get_address(session: str) -> str:
    """The accessibility bus's address from the session bus at ``session`` (starting the launcher)."""
    bus = await _connect(session)
    try:
        address = await _call(bus, ("org.a11y.Bus", "/org/a11y/bus"), "org.a11y.Bus", "GetAddress")
    finally:
        bus.disconnect()
    if not address:
        raise EnvError("org.a11y.Bus gave no address; is at-spi2-core installed?")
    return str(address)


# --- reading the tree -------------------------------------------------------------------------


@dataclass
class Element:
    """A node of the tree as read, with its D-Bus reference (to ask it more)."""

    node: AccessibleNode
    ref: Ref


@dataclass
class _Raw:
    ref: Ref
    depth: int
    role: str
    name: str
    states: int
    extents: tuple[int, int, int, int] | None
    children: list[int] = field(default_factory=list)
    text: str = ""


class A11yReader:
    """Reads the showing part of the accessibility tree on the bus at ``address`` (None: the
    session's own bus, from ``$AT_SPI_BUS_ADDRESS`` or the session bus, as a screen reader finds it).

    Each read is bounded by ``timeout`` per application: one that does not answer in time is left
    out, and no bus at all means an empty tree.
    """

    def __init__(self, address: str | None = None, *, timeout: float = 1.0) -> None:
        self.address = address
        self.timeout = timeout
        self._bus: MessageBus | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._limit = asyncio.Semaphore(MAX_IN_FLIGHT)

    async def _connection(self) -> MessageBus | None:
        loop = asyncio.get_running_loop()
        if self._bus is not None and self._bus.connected and self._loop is loop:
            return self._bus
        self.disconnect()  # gone, or made on another event loop (sync callers)
        try:
            address = self.address or await asyncio.wait_for(_ambient_address(), self.timeout)
            if not address:
                return None
            self._bus = await asyncio.wait_for(_connect(address), self.timeout)
            self._limit = asyncio.Semaphore(MAX_IN_FLIGHT)  # a semaphore belongs to one event loop
        except Exception as e:  # no bus, a dead one, a bad address, a refused login: no tree
            log.debug("no accessibility bus: %s", e)
            return None
        self._loop = loop
        return self._bus

    def disconnect(self) -> None:
        """Close the connection (the next read opens a new one)."""
        if self._bus is not None:
            try:
                self._bus.disconnect()
            except Exception:
                pass  # its loop is closed: nothing left to close
            self._bus = None

    async def read(self, screen: tuple[int, int, int, int]) -> list[Element]:
        """The showing elements on the rectangle ``screen`` (left, top, width, height in screen
        pixels), their boxes relative to it; each application's in document order."""
        bus = await self._connection()
        if bus is None:
            return []
        try:
            apps = await asyncio.wait_for(_call(bus, _REGISTRY, _ACCESSIBLE, "GetChildren"), self.timeout)
            trees = await asyncio.gather(*(self._walk(bus, tuple(ref)) for ref in apps or []))
        except (TimeoutError, OSError, EOFError) as e:  # the bus went away: open a new connection next time
            log.debug("reading the accessibility tree failed: %s", e)
            self.disconnect()
            return []
        return [e for raws in trees for e in _elements(raws, screen)]

    async def _walk(self, bus: MessageBus, app: Ref) -> list[_Raw]:
        raws: list[_Raw] = []
        try:
            await asyncio.wait_for(self._walk_into(bus, app, raws), self.timeout)
        except TimeoutError:
            log.debug("the application %s did not answer within %.1f s", app[0], self.timeout)
            return []
        return raws

    async def _walk_into(self, bus: MessageBus, app: Ref, raws: list[_Raw]) -> None:
        # Level by level: children, role, name and states of every element of a level at once.
        # Boxes (each one X round trip inside the program) and texts are asked for only for
        # showing elements that get a box, without holding up the next level.
        level: list[tuple[Ref, int, int | None]] = [(app, 0, None)]  # (ref, depth, parent's index)
        details: list[asyncio.Task[None]] = []
        try:
            while level and len(raws) < MAX_NODES:
                infos = await asyncio.gather(*(_node(bus, ref, self._limit) for ref, _, _ in level))
                below: list[tuple[Ref, int, int | None]] = []
                for (ref, depth, parent), info in zip(level, infos, strict=True):
                    if info is None:
                        continue
                    children, role, name, states = info
                    if depth > 0 and not states >> _SHOWING & 1:
                        continue  # hidden, and so is everything under it
                    raw = _Raw(ref, depth, role, name, states, None)
                    raws.append(raw)
                    if parent is not None:
                        raws[parent].children.append(len(raws) - 1)
                    below += [
                        ((str(c[0]), str(c[1])), depth + 1, len(raws) - 1) for c in children if c[1] != _NULL_PATH
                    ]
                    if depth > 0 and (name.strip() or role in BOXED_ROLES):
                        details.append(asyncio.create_task(self._details(bus, raw)))
                level = below
            await asyncio.gather(*details)
        finally:
            for task in details:  # after a timeout or an error, nothing is left running
                task.cancel()

    async def _details(self, bus: MessageBus, raw: _Raw) -> None:
        """Fill in an element's screen box and, for a text element, its text."""
        box = await _call(bus, raw.ref, "org.a11y.atspi.Component", "GetExtents", "u", [0], self._limit)  # 0: screen
        raw.extents = (box[0], box[1], box[2], box[3]) if box and len(box) == 4 else None
        if raw.role in TEXT_ROLES:
            raw.text = await _text(bus, raw.ref, self._limit)

    async def text_box(self, element: Element, start: int, end: int, screen: tuple[int, int, int, int]) -> Box | None:
        """The box of characters ``start:end`` of a text element, relative to ``screen``."""
        bus = await self._connection()
        if bus is None:
            return None
        try:
            extents = await asyncio.wait_for(
                _call(bus, element.ref, "org.a11y.atspi.Text", "GetRangeExtents", "iiu", [start, end, 0], whole=True),
                self.timeout,
            )
        except TimeoutError:
            return None
        if not extents or extents[2] <= 0 or extents[3] <= 0:
            return None
        return Box(extents[0] - screen[0], extents[1] - screen[1], extents[2], extents[3])

    async def find_text(
        self, text: str, screen: tuple[int, int, int, int], *, role: str | None = None
    ) -> list[TextMatch]:
        """Every showing element whose name or text matches ``text`` (of ``role``), with its box
        relative to ``screen``; a match inside a text element's contents gets that text's box."""
        want = normalize_text(text)
        if not want:
            return []
        pattern = re.compile(r"\s+".join(map(re.escape, want.split())), re.IGNORECASE)
        out: list[TextMatch] = []
        for element in await self.read(screen):
            node = element.node
            if role and not role_matches(role, node.role):
                continue
            if normalize_text(node.name) == want or normalize_text(node.text) == want:
                out.append(TextMatch(node.box, text, exact=True, visible=node.visible, role=node.role, source="a11y"))
            elif want in normalize_text(node.name):
                out.append(
                    TextMatch(node.box, node.name, exact=False, visible=node.visible, role=node.role, source="a11y")
                )
            elif node.text and (found := pattern.search(node.text)):
                box = await self.text_box(element, found.start(), found.end(), screen) or node.box
                visible = node.visible and _inside(box, node.box)
                out.append(TextMatch(box, found.group(), exact=False, visible=visible, role=node.role, source="a11y"))
        return out


async def _node(bus: MessageBus, ref: Ref, limit: asyncio.Semaphore) -> tuple[list[Any], str, str, int] | None:
    """Children, role, name and state bits of one element (None: it is gone)."""
    children, role, name, states = await asyncio.gather(
        _call(bus, ref, _ACCESSIBLE, "GetChildren", limit=limit),
        _call(bus, ref, _ACCESSIBLE, "GetRoleName", limit=limit),
        _call(bus, ref, "org.freedesktop.DBus.Properties", "Get", "ss", [_ACCESSIBLE, "Name"], limit),
        _call(bus, ref, _ACCESSIBLE, "GetState", limit=limit),
    )
    if role is None or states is None:
        return None
    bits = sum(word << (32 * i) for i, word in enumerate(states))
    return children or [], str(role), str(name.value if name is not None else ""), bits


async def _text(bus: MessageBus, ref: Ref, limit: asyncio.Semaphore) -> str:
    text = await _call(bus, ref, "org.a11y.atspi.Text", "GetText", "ii", [0, -1], limit)  # -1: to the end
    return str(text or "")[:MAX_TEXT]


def _elements(raws: list[_Raw], screen: tuple[int, int, int, int]) -> list[Element]:
    """An application's walked nodes in document order, boxes relative to ``screen``, each marked
    visible when no ancestor and no screen edge clips it; nodes off ``screen`` are left out."""
    if not raws:
        return []
    left, top, width, height = screen
    out: list[Element] = []
    # (index, clip rectangle from the ancestors): depth first, children in their order
    stack: list[tuple[int, tuple[float, float, float, float]]] = [(0, (left, top, left + width, top + height))]
    while stack:
        index, clip = stack.pop()
        raw = raws[index]
        if raw.extents is not None and raw.extents[2] > 0 and raw.extents[3] > 0:
            x, y, w, h = raw.extents
            if x < left + width and y < top + height and x + w > left and y + h > top:
                visible = clip[0] <= x and clip[1] <= y and x + w <= clip[2] and y + h <= clip[3]
                states = frozenset(name for bit, name in _STATES.items() if raw.states >> bit & 1)
                text = "" if raw.role == "password text" else raw.text
                node = AccessibleNode(
                    raw.role, raw.name, Box(x - left, y - top, w, h), raw.depth, text, visible, states
                )
                out.append(Element(node, raw.ref))
            clip = (max(clip[0], x), max(clip[1], y), min(clip[2], x + w), min(clip[3], y + h))
        stack += [(child, clip) for child in reversed(raw.children)]
    return out


async def _ambient_address() -> str | None:
    """The accessibility bus of the session this process runs in, if it has one."""
    if address := os.environ.get("AT_SPI_BUS_ADDRESS"):
        return address
    if session := os.environ.get("DBUS_SESSION_BUS_ADDRESS"):
        return await _get_address(session)
    return None


def _inside(box: Box, outer: Box) -> bool:
    return (
        box[0] >= outer[0]
        and box[1] >= outer[1]
        and box[0] + box[2] <= outer[0] + outer[2]
        and box[1] + box[3] <= outer[1] + outer[3]
    )


def visible_text(nodes: list[AccessibleNode]) -> str:
    """The names and texts of showing nodes, one per line, in the tree's order."""
    lines: list[str] = []
    for node in nodes:
        for part in (node.name, node.text):
            part = part.strip()
            if part and (not lines or lines[-1] != part):
                lines.append(part)
    return "\n".join(lines)
