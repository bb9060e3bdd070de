"""A secret leaves through an encoding: every form a value takes in URLs, form bodies, JSON, HTML and
code must be masked in steps.jsonl, episode.json and the HTML report, as the plain value is.

The table is the attacker's (or the unlucky page's) list of ways a password gets re-encoded before it
reaches a recorded string; the last test has real Chromium submit a form with the secret in it.
"""

from __future__ import annotations

import base64
import html
import io
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import quote, quote_plus

import pytest
from PIL import Image

from pixelpilot.actions import Observation, Task
from pixelpilot.agent import Agent
from pixelpilot.agent.policies import policy_for
from pixelpilot.trajectories import Recorder, write_report

# Something of every kind an encoder treats specially: a space, &, quotes, a slash, +, =, %, <, a
# non-ASCII letter and one beyond the Basic Multilingual Plane.
SECRET = 'Tr0ub4dor & "3" é/+=% <x>\'🔑'
PLACEHOLDER = "${password}"


def _js_escape(s: str) -> str:
    """JavaScript's legacy ``escape()``: Latin-1 as %XX, the rest as %uXXXX (UTF-16 units)."""
    out = []
    for unit in s.encode("utf-16-be").hex(" ", 2).split():
        n = int(unit, 16)
        c = chr(n)
        out.append(c if c.isascii() and (c.isalnum() or c in "@*_+-./") else f"%{n:02X}" if n < 256 else f"%u{n:04X}")
    return "".join(out)


ENCODINGS = {
    "as typed": lambda s: s,
    "a URL path (quote)": quote,
    "a query component (quote, nothing safe)": lambda s: quote(s, safe=""),
    "a form body or GET query (+ for space, %26 for &)": quote_plus,
    "lower-case percent hex": lambda s: re.sub(r"%[0-9A-F]{2}", lambda m: m.group().lower(), quote_plus(s)),
    "URL-encoded twice (a return URL in a query)": lambda s: quote(quote(s, safe=""), safe=""),
    "JavaScript escape()": _js_escape,
    "a JSON string": json.dumps,
    "a JSON string, ASCII only (\\u00e9, surrogate pairs)": lambda s: json.dumps(s, ensure_ascii=True),
    "JSON inside a JSON string": lambda s: json.dumps(json.dumps(s)),
    "JSON with escaped slashes (\\/)": lambda s: json.dumps(s).replace("/", "\\/"),
    "HTML text (html.escape)": html.escape,
    "HTML escaped twice (&amp;amp;)": lambda s: html.escape(html.escape(s)),
    "HTML decimal character references": lambda s: "".join(f"&#{ord(c)};" for c in s),
    "HTML hex character references": lambda s: "".join(f"&#x{ord(c):x};" for c in s),
    "a Python repr (an error message)": repr,
    "Python ascii() (\\xe9, \\U0001f511)": ascii,
    "base64": lambda s: base64.b64encode(s.encode()).decode(),
    "base64url inside a longer token (user:password)": lambda s: base64.urlsafe_b64encode(
        b"alice:" + s.encode()
    ).decode(),
    "URL-encoded JSON (an OAuth state parameter)": lambda s: quote(json.dumps({"password": s})),
    "HTML-escaped JSON (a data- attribute)": lambda s: html.escape(json.dumps({"password": s})),
    "JSON holding a form URL": lambda s: json.dumps("https://shop.test/login?pw=" + quote_plus(s) + "&next=1"),
}

#: The forms a reader would recognize the secret by; none may be left in a recorded file.
RECOGNIZABLE = {encode(SECRET) for name, encode in ENCODINGS.items() if "inside" not in name and "JSON (" not in name}
RECOGNIZABLE |= {json.dumps(SECRET)[1:-1], html.escape(json.dumps(SECRET)[1:-1])}


def _png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), "white").save(buf, "PNG")
    return buf.getvalue()


def _recorded_files(tmp_path, leak: str) -> dict[str, str]:
    """One episode whose every recorded string could carry ``leak``; its files and its HTML report."""
    recorder = Recorder(tmp_path / "runs")
    recorder.redactor.add("password", SECRET)
    writer = recorder.start(Task(instruction="Sign in"), env="browser", policy="model")
    obs = Observation(
        png=_png(), width=8, height=8, input_width=8, input_height=8, url=f"https://shop.test/?q={leak}", title=leak
    )
    writer.add_step(
        obs,
        timings={"observe": 1.0},
        action={"action": "type", "text": leak},
        thought=f"I will type {leak}",
        raw_output=f'<tool_call>{{"arguments": {{"text": {leak}}}}}</tool_call>',
        notes=[f"the tool said: {leak}"],
        outcome={"ok": False, "error": f"could not type {leak}", "info": {"echo": leak}},
        extra={"urls": [{"url": f"https://shop.test/next?p={leak}", "allowed": True}], leak: leak},
    )
    writer.finish("failure", message=f"gave up after {leak}", answer=leak)
    report = write_report(writer.path)
    return {p.name: p.read_text(encoding="utf-8") for p in (*writer.path.glob("*.json*"), report)}


@pytest.mark.parametrize("encoding", list(ENCODINGS))
def test_every_encoding_of_a_secret_is_masked_on_disk_and_in_the_report(tmp_path, encoding):
    leak = ENCODINGS[encoding](SECRET)
    files = _recorded_files(tmp_path, leak)
    assert set(files) == {"task.json", "steps.jsonl", "episode.json", "report.html"}
    for name, text in files.items():
        assert leak not in text, f"{encoding} left the secret in {name}"
        for form in RECOGNIZABLE:
            assert form not in text and html.escape(form) not in text, f"{form!r} in {name}"
    assert PLACEHOLDER in files["steps.jsonl"] and PLACEHOLDER in files["episode.json"]
    assert html.escape(PLACEHOLDER) in files["report.html"] or PLACEHOLDER in files["report.html"]


def test_masking_keeps_what_surrounds_the_secret(tmp_path):
    """The mask covers the secret's characters, not the URL or JSON around it."""
    leak = ENCODINGS["JSON holding a form URL"](SECRET)
    steps = json.loads(_recorded_files(tmp_path, leak)["steps.jsonl"])
    assert steps["thought"] == f"I will type {json.dumps('https://shop.test/login?pw=${password}&next=1')}"


# --- a real form in real Chromium ---------------------------------------------------------------------

FORM = """<!doctype html><title>Search</title>
<form action="/search" method="get"><input name="q" aria-label="Query"><button>Search</button></form>"""
# The result page puts the query back into the address twice over: as JSON in the fragment, the way
# single-page apps keep their state.
RESULT = """<!doctype html><title>Results</title><p>Results</p>
<script>const q = new URLSearchParams(location.search).get("q");
history.replaceState(null, "", location.pathname + location.search + "#" + encodeURIComponent(JSON.stringify({q})));</script>"""


@pytest.fixture
def form_site():
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            body = (RESULT if self.path.startswith("/search") else FORM).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()
    thread.join(5)


async def test_a_secret_submitted_by_a_real_form_is_masked_in_the_address(
    browser_env, form_site, tmp_path, monkeypatch
):
    monkeypatch.setenv("PIXELPILOT_TEST_SECRET", SECRET)
    task = Task(
        instruction="Search for the secret",
        url=form_site,
        vars={"password": {"env": "PIXELPILOT_TEST_SECRET", "secret": True}},
        steps=[
            {"type": {"text": "${password}", "into": "Query"}},
            {"press": "Enter"},
            {"expect": {"text": "Results"}},
        ],
    )
    env = browser_env()
    episode = await Agent(env, policy_for(task, None), recorder=Recorder(tmp_path / "runs")).run(task)
    assert episode.status == "success", episode.message
    url = episode.steps[-1].observation["url"]
    # The browser did send the form-encoded secret, and the page re-encoded it as JSON in the address.
    assert url.startswith(form_site + "search?q=") and "#%7B%22q%22" in url
    assert url.count(PLACEHOLDER) == 2, url
    report = write_report(episode.path)
    for path in (*tmp_path.glob("runs/*/*.json*"), report):
        text = path.read_text(encoding="utf-8")
        for form in (*RECOGNIZABLE, quote_plus(SECRET), quote(json.dumps(SECRET), safe="")):
            assert form not in text, f"{form!r} in {path.name}"
