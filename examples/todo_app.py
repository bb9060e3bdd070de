"""A small to-do web app for the demo and the tests: a login form, then a list to add to, tick and delete.

Plain server-rendered HTML over the standard library's HTTP server; state lives in memory per
login. ``GET /api/state`` returns it as JSON so tests can check what a run really did.

    python examples/todo_app.py --port 8765      # then open http://127.0.0.1:8765/
"""

from __future__ import annotations

import argparse
import html
import json
import secrets
import threading
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs

from pixelpilot.testing.http import LoopbackServer, QuietHandler, respond

USERS = {"alice": "wonderland"}

STYLE = """
body { font: 16px/1.4 sans-serif; margin: 0; background: #f4f5f7; color: #222; }
main { max-width: 560px; margin: 48px auto; background: #fff; padding: 32px; border-radius: 8px;
       box-shadow: 0 1px 4px rgba(0,0,0,.15); }
h1 { margin-top: 0; font-size: 26px; }
label { display: block; margin: 12px 0 4px; }
input[type=text], input[type=password] { font-size: 16px; padding: 8px; width: 100%; box-sizing: border-box; }
button { font-size: 16px; padding: 8px 18px; margin-top: 12px; cursor: pointer; }
ul { list-style: none; padding: 0; } li { display: flex; align-items: center; gap: 12px; padding: 8px 0;
     border-bottom: 1px solid #eee; } li span { flex: 1; } li.done span { text-decoration: line-through; color: #888; }
li button { margin: 0; padding: 4px 10px; } .error { color: #b00020; } .summary { color: #555; }
form.add { display: flex; gap: 8px; align-items: end; } form.add input { flex: 1; }
"""


def page(title: str, body: str) -> bytes:
    return (
        f"<!doctype html><html><head><meta charset=utf-8><title>{html.escape(title)}</title>"
        f"<style>{STYLE}</style></head><body><main>{body}</main></body></html>"
    ).encode()


def login_page(error: str = "") -> bytes:
    err = f'<p class="error" role="alert">{html.escape(error)}</p>' if error else ""
    return page(
        "Sign in · Todo",
        f"""<h1>Sign in</h1>{err}
<form method="post" action="/login">
  <label for="username">Username</label><input id="username" name="username" type="text" placeholder="Username" autocomplete="off">
  <label for="password">Password</label><input id="password" name="password" type="password" placeholder="Password">
  <button type="submit">Sign in</button>
</form>""",
    )


class TodoState:
    """Sessions and their to-do lists; thread-safe."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.sessions: dict[str, dict] = {}

    def login(self, user: str) -> str:
        token = secrets.token_hex(8)
        with self.lock:
            self.sessions[token] = {"user": user, "todos": [], "next_id": 1}
        return token

    def snapshot(self) -> dict:
        with self.lock:
            return json.loads(json.dumps(self.sessions))


def make_handler(state: TodoState) -> type[BaseHTTPRequestHandler]:
    class Handler(QuietHandler):
        def _session(self) -> dict | None:
            cookie = self.headers.get("Cookie", "")
            for part in cookie.split(";"):
                k, _, v = part.strip().partition("=")
                if k == "session" and v in state.sessions:
                    return state.sessions[v]
            return None

        def _send(self, body: str | bytes | dict, status: int = 200, headers: dict[str, str] | None = None) -> None:
            respond(
                self,
                body,
                status,
                content_type="text/html; charset=utf-8" if isinstance(body, bytes) else None,
                headers=headers,
            )

        def _redirect(self, to: str, headers: dict[str, str] | None = None) -> None:
            self._send(b"", 303, headers={"Location": to, **(headers or {})})

        def _form(self) -> dict[str, str]:
            n = int(self.headers.get("Content-Length", 0))
            return {k: v[0] for k, v in parse_qs(self.rfile.read(n).decode()).items()}

        def do_GET(self) -> None:
            if self.path == "/":
                return self._send(login_page())
            if self.path == "/api/state":
                return self._send(state.snapshot())
            if self.path == "/todos":
                s = self._session()
                if s is None:
                    return self._redirect("/")
                return self._send(self._todos(s))
            self._send(page("Not found", "<h1>Not found</h1>"), 404)

        def do_POST(self) -> None:
            form = self._form()
            if self.path == "/login":
                user, pw = form.get("username", "").strip(), form.get("password", "")
                if USERS.get(user) != pw:
                    return self._send(login_page("Wrong username or password"), 401)
                token = state.login(user)
                return self._redirect("/todos", {"Set-Cookie": f"session={token}; Path=/; HttpOnly"})
            s = self._session()
            if s is None:
                return self._redirect("/")
            with state.lock:
                if self.path == "/todos/add" and form.get("title", "").strip():
                    s["todos"].append({"id": s["next_id"], "title": form["title"].strip(), "done": False})
                    s["next_id"] += 1
                elif self.path.startswith("/todos/") and self.path.count("/") == 3:
                    _, _, tid, verb = self.path.split("/")
                    todos = s["todos"]
                    for t in list(todos):
                        if str(t["id"]) == tid:
                            if verb == "toggle":
                                t["done"] = not t["done"]
                            elif verb == "delete":
                                todos.remove(t)
            self._redirect("/todos")

        def _todos(self, s: dict) -> bytes:
            items = []
            for t in s["todos"]:
                title = html.escape(t["title"])
                checked = " checked" if t["done"] else ""
                items.append(
                    f'<li class="{"done" if t["done"] else "open"}" data-id="{t["id"]}">'
                    f'<form method="post" action="/todos/{t["id"]}/toggle"><input type="checkbox" aria-label="Done: {title}"'
                    f'{checked} onchange="this.form.submit()"></form><span>{title}</span>'
                    f'<form method="post" action="/todos/{t["id"]}/delete"><button aria-label="Delete {title}">Delete</button></form></li>'
                )
            done = sum(t["done"] for t in s["todos"])
            summary = f"{len(s['todos']) - done} open, {done} done"
            return page(
                "Todo",
                f"""<h1>Welcome, {html.escape(s["user"])}</h1>
<form class="add" method="post" action="/todos/add"><div style="flex:1"><label for="title">New to-do</label>
<input id="title" name="title" type="text" placeholder="What needs doing?" autocomplete="off"></div><button type="submit">Add</button></form>
<ul id="todos">{"".join(items)}</ul><p class="summary">{summary}</p>""",
            )

    return Handler


class TodoApp(LoopbackServer):
    """The app on a background thread: ``with TodoApp() as app: app.url``; ``app.state`` is its memory."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.state = TodoState()
        super().__init__(make_handler(self.state), host=host, port=port)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=8765)
    args = ap.parse_args()
    app = TodoApp(port=args.port)
    print(f"serving the to-do app on {app.url}", flush=True)
    try:
        app.server.serve_forever()
    except KeyboardInterrupt:
        pass
