"""Browser tests for the example to-do app, written with pixelpilot's ``pilot`` fixture.

    pytest examples/test_todo_app.py            # headless
    pytest examples/test_todo_app.py --headed   # watch it

When a test fails, its recorded episode and an HTML report are kept under pilot-runs/ and their
paths are printed with the failure.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from todo_app import TodoApp  # noqa: E402


@pytest.fixture(scope="module")
def todo_app():
    with TodoApp() as app:
        yield app


def sign_in(pilot, url: str) -> None:
    pilot.goto(url)
    pilot.type("alice", into="Username")
    pilot.type("wonderland", into="Password", secret="password")
    pilot.click("Sign in")
    pilot.expect_text("Welcome, alice")


def test_sign_in(pilot, todo_app):
    sign_in(pilot, todo_app.url)


def test_add_and_tick_a_todo(pilot, todo_app):
    sign_in(pilot, todo_app.url)
    pilot.type("Buy milk", into="New to-do")
    pilot.press("Enter")
    pilot.expect_text("Buy milk")
    pilot.click("Done: Buy milk")
    pilot.expect_text("0 open, 1 done")


def test_wrong_password_is_refused(pilot, todo_app):
    pilot.goto(todo_app.url)
    pilot.type("alice", into="Username")
    pilot.type("not-the-password", into="Password")
    pilot.click("Sign in")
    pilot.expect_text("Wrong username or password")
