"""UrlPolicy and LoopDetector as pure functions (no browser): the parsing rules behind the gate."""

from __future__ import annotations

import pytest

from pixelpilot.agent import LoopDetector
from pixelpilot.envs import UrlPolicy, UrlPolicyError

POLICY = UrlPolicy.of(
    allow=["example.com", "*.wild.org", "localhost:8080", "10.0.0.1", "bücher.de"], block=["secret.example.com"]
)


@pytest.mark.parametrize(
    "url, allowed",
    [
        ("https://example.com/", True),
        ("https://a.b.example.com/x", True),
        ("HTTPS://EXAMPLE.COM./", True),  # case and a trailing dot
        ("https://example.com.evil.net/", False),
        ("https://notexample.com/", False),
        ("https://example.com@evil.net/", False),
        ("https://evil.net\\@example.com/", False),  # a browser reads the backslash as a slash
        ("https://evil.net#@example.com/", False),
        (" \thttps://example.com/\n", True),
        ("https://secret.example.com/", False),
        ("https://x.secret.example.com/", False),
        ("https://wild.org/", False),  # *.wild.org: subdomains only
        ("https://a.wild.org/", True),
        ("http://localhost:8080/", True),
        ("http://localhost:8081/", False),
        ("http://localhost/", False),
        ("http://10.0.0.1/", True),
        ("http://10.0.0.10/", False),
        ("http://sub.10.0.0.1/", False),
        ("http://[::1]/", False),
        ("https://xn--bcher-kva.de/", True),
        ("https://BÜCHER.de/", True),
        ("https://xn--bcher-zzz.de/", False),
        ("ws://example.com/socket", True),
        ("data:text/html,hi", False),
        ("javascript:alert(1)", False),
        ("JavaScript:alert(1)", False),
        ("file:///etc/passwd", False),
        ("view-source:https://example.com/", False),
        ("blob:https://example.com/uuid", False),
        ("chrome://settings", False),
        ("about:config", False),
        ("about:blank", True),
        ("", False),
        ("https://", False),
    ],
)
def test_policy_table(url: str, allowed: bool):
    assert POLICY.check(url).allowed is allowed, POLICY.check(url)


def test_relative_urls_resolve_against_the_page():
    assert POLICY.check("/next?to=https://evil.net", base="https://example.com/a").allowed
    assert not POLICY.check("//evil.net/x", base="https://example.com/a").allowed


def test_no_lists_means_no_policy():
    assert UrlPolicy().check("data:text/html,x").allowed and not UrlPolicy().active


@pytest.mark.parametrize("bad", ["", "a b", "example.com/path", "user@example.com", "xn--zz.com"])
def test_bad_patterns_are_named(bad: str):
    with pytest.raises(UrlPolicyError, match="pattern|domain"):
        UrlPolicy.of(allow=[bad])


def test_loop_detector_repeats_then_oscillation():
    d = LoopDetector(repeats=3, oscillations=2, grace=1)
    click = {"action": "click", "x": 1, "y": 1}
    assert [d.see("s", click)[0] for _ in range(4)] == ["ok", "ok", "nudge", "stop"]
    d = d.fresh()  # one detector per episode, same settings
    seq = [("a", {"n": 1}), ("b", {"n": 2})] * 3
    assert [d.see(s, a)[0] for s, a in seq] == ["ok", "ok", "ok", "nudge", "stop", "stop"]
    d = d.fresh()
    assert [d.see(str(i), click)[0] for i in range(6)] == ["ok"] * 6  # the screen changes: no loop
    assert [d.see("s", {"action": "wait", "seconds": 1})[0] for _ in range(6)] == ["ok"] * 6  # waiting is not a loop
