"""The URL-policy table, run against real Chromium: every refused navigation is blocked before a
request reaches its host and is recorded in the trajectory; every allowed one goes through.

Loopback stands in for the web: ``*.test`` names are mapped to 127.0.0.1 by Chromium's host
resolver rules; IP literals and ports pick other servers (127.0.0.1 on a second port, 127.0.0.2).
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from sites import Sites, wait_until

from pixelpilot.actions import Task
from pixelpilot.agent import Agent, Gate, Limits, ScriptPolicy
from pixelpilot.envs import UrlPolicy
from pixelpilot.envs.browser import BrowserEnv
from pixelpilot.trajectories import Recorder, load_episode


@pytest.fixture(scope="module")
def sites():
    with Sites([("127.0.0.1", 0), ("127.0.0.1", 0), ("127.0.0.2", 0)]) as s:
        yield s


@dataclass
class Case:
    id: str
    steps: list  # script steps; {A} {B} {C} are the three servers' ports
    target: str  # the URL that must (not) be reached; "{marker}" makes it unique
    allowed: bool


A, B, C = "{A}", "{B}", "{C}"
EVIL = "http://evil.test:{A}/t/{marker}"
GOOD = "http://sub.allowed.test:{A}/t/{marker}"

CASES = [
    # the agent navigating directly: checked by the gate, and by the browser
    Case("same-host", [{"goto": "http://allowed.test:{A}/t/{marker}"}], "http://allowed.test:{A}/t/{marker}", True),
    Case("subdomain", [{"goto": GOOD}], GOOD, True),
    Case("other-host", [{"goto": EVIL}], EVIL, False),
    Case(
        "suffix-trick",
        [{"goto": "http://allowed.test.evil.test:{A}/t/{marker}"}],
        "allowed.test.evil.test:{A}/t/{marker}",
        False,
    ),
    Case(
        "no-dot-boundary",
        [{"goto": "http://evilallowed.test:{A}/t/{marker}"}],
        "evilallowed.test:{A}/t/{marker}",
        False,
    ),
    Case("userinfo", [{"goto": "http://allowed.test@evil.test:{A}/t/{marker}"}], "evil.test:{A}/t/{marker}", False),
    Case(
        "userinfo-with-port",
        [{"goto": "http://allowed.test:{A}@evil.test:{A}/t/{marker}"}],
        "evil.test:{A}/t/{marker}",
        False,
    ),
    Case("backslash", [{"goto": "http://evil.test:{A}\\@allowed.test/t/{marker}"}], "evil.test:{A}", False),
    Case("ip-literal-allowed", [{"goto": "http://127.0.0.1:{A}/t/{marker}"}], "127.0.0.1:{A}/t/{marker}", True),
    Case("other-port", [{"goto": "http://127.0.0.1:{B}/t/{marker}"}], "127.0.0.1:{B}/t/{marker}", False),
    Case("other-ip", [{"goto": "http://127.0.0.2:{C}/t/{marker}"}], "127.0.0.2:{C}/t/{marker}", False),
    Case("hex-ip", [{"goto": "http://0x7f.0.0.2:{C}/t/{marker}"}], "/t/{marker}", False),
    Case("localhost-name", [{"goto": "http://localhost:{A}/t/{marker}"}], "localhost:{A}/t/{marker}", False),
    Case("ipv6-loopback", [{"goto": "http://[::1]:{A}/t/{marker}"}], "/t/{marker}", False),
    Case("idn-unicode", [{"goto": "http://bücher.test:{A}/t/{marker}"}], "xn--bcher-kva.test:{A}/t/{marker}", True),
    Case(
        "idn-punycode",
        [{"goto": "http://xn--bcher-kva.test:{A}/t/{marker}"}],
        "xn--bcher-kva.test:{A}/t/{marker}",
        True,
    ),
    Case("homograph", [{"goto": "http://\u0430llowed.test:{A}/t/{marker}"}], "/t/{marker}", False),
    Case(
        "blocklist-wins",
        [{"goto": "http://private.allowed.test:{A}/t/{marker}"}],
        "private.allowed.test:{A}/t/{marker}",
        False,
    ),
    # schemes that have no host to allow
    Case("data", [{"goto": "data:text/html,<h1>{marker}</h1>"}], "data:", False),
    Case("javascript", [{"goto": "javascript:location='" + EVIL + "'"}], "evil.test:{A}/t/{marker}", False),
    Case("file", [{"goto": "file:///etc/hostname"}], "file:", False),
    Case("chrome", [{"goto": "chrome://version"}], "chrome:", False),
    Case("about-other", [{"goto": "about:version"}], "about:version", False),
    Case("view-source", [{"goto": "view-source:http://allowed.test:{A}/t/{marker}"}], "view-source:", False),
    Case("blob-url", [{"goto": "blob:http://allowed.test:{A}/0b6f3f2e-{marker}"}], "blob:", False),
    Case("ftp", [{"goto": "ftp://evil.test/t/{marker}"}], "ftp:", False),
    Case("about-blank", [{"goto": "about:blank"}], "about:blank", True),
    # the page navigating by itself: only the browser layer can stop these
    Case("302-out", [{"goto": "/redirect?to=" + EVIL}], "evil.test:{A}/t/{marker}", False),
    Case("302-in", [{"goto": "/redirect?to=" + GOOD}], GOOD, True),
    Case(
        "302-to-other-port",
        [{"goto": "/redirect?to=http://127.0.0.1:{B}/t/{marker}"}],
        "127.0.0.1:{B}/t/{marker}",
        False,
    ),
    Case("meta-refresh-out", [{"goto": "/meta?to=" + EVIL}, {"wait": 0.3}], "evil.test:{A}/t/{marker}", False),
    Case("meta-refresh-in", [{"goto": "/meta?to=" + GOOD}, {"wait": 0.3}], GOOD, True),
    Case("js-redirect-out", [{"goto": "/js?to=" + EVIL}, {"wait": 0.3}], "evil.test:{A}/t/{marker}", False),
    Case("js-redirect-in", [{"goto": "/js?to=" + GOOD}, {"wait": 0.3}], GOOD, True),
    Case("js-to-blob", [{"goto": "/blob"}, {"wait": 0.3}], "blob:", False),
    Case("window-open-out", [{"goto": "/open?to=" + EVIL}, {"wait": 0.3}], "evil.test:{A}/t/{marker}", False),
    Case("window-open-in", [{"goto": "/open?to=" + GOOD}, {"wait": 0.3}], GOOD, True),
    Case(
        "window-open-302-out",
        [{"goto": "/open?to=/redirect%3Fto%3D" + EVIL}, {"wait": 0.5}],
        "evil.test:{A}/t/{marker}",
        False,
    ),
    Case(
        "link-click-out", [{"goto": "/links?to=" + EVIL}, {"click": "Same tab link"}], "evil.test:{A}/t/{marker}", False
    ),
    Case(
        "new-tab-link-out",
        [{"goto": "/links?to=" + EVIL}, {"click": "New tab link"}, {"wait": 0.3}],
        "evil.test:{A}/t/{marker}",
        False,
    ),
    Case("new-tab-link-in", [{"goto": "/links?to=" + GOOD}, {"click": "New tab link"}, {"wait": 0.3}], GOOD, True),
    Case("iframe-out", [{"goto": "/frame?to=" + EVIL}, {"wait": 0.3}], "evil.test:{A}/t/{marker}", False),
]


def _fill(text: str, sites: Sites, marker: str) -> str:
    a, b, c = sites.ports
    return text.replace("{A}", str(a)).replace("{B}", str(b)).replace("{C}", str(c)).replace("{marker}", marker)


def _decisions(episode) -> list[dict]:
    out = []
    for step in episode.steps:
        out += step.extra.get("urls", [])  # what the browser saw, up to this step's end
        gate = step.extra.get("gate")
        if gate and gate["rule"] == "url_policy":
            out.append({"allowed": gate["allowed"], "url": gate["reason"], "kind": "gate"})
    return out


def test_table_is_big_enough():
    assert len(CASES) >= 30
    assert sum(c.allowed for c in CASES) >= 8 and sum(not c.allowed for c in CASES) >= 22


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
async def test_url_policy_in_chromium(case: Case, sites: Sites, browser, tmp_path):
    marker = f"m-{case.id}"
    a = sites.ports[0]
    policy = UrlPolicy.of(allow=["allowed.test", f"127.0.0.1:{a}", "bücher.test"], block=["private.allowed.test"])
    steps = [{k: _fill(v, sites, marker) if isinstance(v, str) else v for k, v in s.items()} for s in case.steps]
    target = _fill(case.target, sites, marker)
    env = BrowserEnv(browser=browser, url_policy=policy, settle_timeout=2.0)
    agent = Agent(
        env,
        ScriptPolicy(steps),
        recorder=Recorder(tmp_path),
        gate=Gate(policy, rules=None),
        limits=Limits(max_steps=10),
    )
    try:
        episode = await agent.run(Task(instruction=case.id, url=f"http://allowed.test:{a}/start/{marker}"))
        pages = [p.url for p in env._context.pages if not p.is_closed()]
    finally:
        await env.aclose()

    if case.allowed:
        assert episode.status == "success", episode.message
    elif episode.status != "success":
        # A scripted step the gate refused fails the script (a refused redirect does not: the step itself worked).
        # (a goto whose own redirect is refused fails in the browser: ERR_BLOCKED_BY_CLIENT)
        assert episode.status == "failure" and (
            "refused" in episode.message or "ERR_BLOCKED_BY_CLIENT" in episode.message
        ), episode.message
    loaded = load_episode(episode.path)
    assert len(loaded.steps) == episode.num_steps
    decisions = _decisions(loaded)
    first = steps[0].get("goto", "")
    if first.startswith("/"):  # the page itself navigates on: its own page must have loaded first
        assert sites.hit(first.split("?")[0]), f"{first} was never loaded"
    assert decisions[0]["allowed"] and "/start/" in decisions[0]["url"], "the start page is recorded"
    network = target.startswith("http") or "/t/" in target
    if case.allowed:
        if network:
            assert wait_until(lambda: sites.hit(target.split("://")[-1])), f"{target} never got the request"
        assert any(p.startswith(target) or target in p for p in pages), pages
        assert all(d["allowed"] for d in decisions if d.get("kind") != "subresource"), decisions
    else:
        refused = [d for d in decisions if not d["allowed"]]
        assert refused, f"nothing was recorded as blocked: {decisions}"
        if network:
            assert not sites.hit(target.split("://")[-1]), f"{target} was reached: {sites.hits[-5:]}"
            assert not sites.hit(f"/t/{marker}"), f"{target} was reached: {sites.hits[-5:]}"
        assert not any(p.startswith(target) for p in pages if p != "about:blank"), pages
