"""FakeEnv, the test double of a screen: what it draws, how it reacts, and its hooks driving the agent
loop to each ending in milliseconds."""

from __future__ import annotations

import time

import pytest

from pixelpilot import envs
from pixelpilot.actions import (
    ACTIONS_BY_ENV,
    Back,
    Click,
    DoubleClick,
    Drag,
    Key,
    LongPress,
    Move,
    Navigate,
    Scroll,
    Swipe,
    Task,
    Type,
    Wait,
)
from pixelpilot.agent import Agent, Limits, ScriptPolicy
from pixelpilot.envs import EnvCrashed, EnvError, FakeEnv
from pixelpilot.envs.fake import Button, PasswordField, Text, TextField
from pixelpilot.trajectories import Recorder, load_episode


async def click_on(env: FakeEnv, text: str):
    box = await env.locate_text(text)
    assert box is not None, text
    x, y = env.grid.point_to_grid(*box.center, *env.size)
    return await env.execute(Click(x=x, y=y))


async def test_the_default_screen_is_a_sign_in_form() -> None:
    env = FakeEnv()
    obs = await env.reset(Task(instruction="t", url="http://fake.test/login"))
    assert (obs.width, obs.height) == (640, 480) == (obs.input_width, obs.input_height)
    assert obs.input_space == "css" and obs.url == "http://fake.test/login" and obs.title == "Fake screen"
    assert obs.image.size == (640, 480)
    text = await env.page_text()
    assert all(t in text for t in ("Sign in to Fake", "Username", "Password", "Sign in"))
    assert envs.make("fake").kind == "browser" and isinstance(envs.make("fake"), FakeEnv)


async def test_clicks_focus_fields_typing_fills_them_and_a_press_shows() -> None:
    env = FakeEnv()
    before = await env.reset()
    assert (await click_on(env, "Username")).ok
    assert (await env.execute(Type(text="alice"))).ok
    await click_on(env, "Password")
    await env.execute(Type(text="s3cret"))
    assert env.value("Username") == "alice" and env.value("Password") == "s3cret"
    text = await env.page_text()
    assert "alice" in text and "s3cret" not in text and "••••••" in text  # a password shows as dots
    button = await env.locate_text("Sign in")
    assert button is not None and button == (40, 230, 120, 40)  # the button, not the heading that contains it
    before_px = before.image.getpixel((60, 240))
    assert (await click_on(env, "Sign in")).ok
    after = await env.observe()
    assert after.sha256 != before.sha256 and after.image.getpixel((60, 240)) != before_px  # drawn pressed
    assert env.log == [
        ("focus", "Username"),
        ("type", "Username", "alice"),
        ("focus", "Password"),
        ("type", "Password", "s3cret"),
        ("press", "Sign in"),
    ]
    assert isinstance(env.widget("Sign in"), Button) and env.widget("Sign in").presses == 1
    await env.execute(Click(x=900, y=900))  # nothing there
    assert env.log[-1] == ("blur",) and env.focus is None
    await env.execute(Type(text="lost"))
    assert env.log[-1] == ("type", None, "lost")


async def test_keys_edit_move_the_focus_and_submit() -> None:
    env = FakeEnv()
    await env.reset()
    await click_on(env, "Username")
    await env.execute(Type(text="bobx"))
    await env.execute(Key(keys=["BackSpace"]))
    assert env.value("Username") == "bob"
    await env.execute(Key(keys=["tab"]))
    assert env.focus is env.widget("Password")
    await env.execute(Key(keys=["Return"]))
    assert env.log[-2:] == [("key", "enter"), ("press", "Sign in")]
    await env.execute(Key(keys=["ctrl", "a"]))
    assert env.log[-1] == ("key", "ctrl+a")


async def test_scrolling_moves_the_page_and_everything_else_is_recorded() -> None:
    env = FakeEnv()
    await env.reset()
    top = (await env.locate_text("Sign in to Fake"))[1]
    outcome = await env.execute(Scroll(dy=100))  # a tenth of the screen
    assert outcome.pixel_action["dy"] == 48
    assert (await env.locate_text("Sign in to Fake"))[1] == top - 48
    for action in (Move(x=10, y=10), Drag(x=1, y=2, x2=3, y2=4), Wait(seconds=30), Navigate(url="/next")):
        assert (await env.execute(action)).ok
    assert env.log[-4:] == [
        ("move", 6, 5),
        ("drag", 1, 1, 2, 2),
        ("wait", 30.0),  # logged, not slept
        ("navigate", "/next"),
    ]
    assert (await env.execute(Back())).ok and env.url == "about:blank"
    no_more = await env.execute(Back())
    assert not no_more.ok and "no earlier page" in no_more.error
    assert [a["action"] for a in env.received] == ["scroll", "move", "drag", "wait", "navigate", "back", "back"]


async def test_the_kind_picks_the_action_set_and_the_input_space() -> None:
    phone = FakeEnv(kind="mobile", size=(360, 640), scale=2)
    assert isinstance(phone, FakeEnv) and phone.kind == "mobile"
    assert set(phone.actions) == set(ACTIONS_BY_ENV["mobile"]) - {"answer", "terminate"}
    obs = await phone.reset()
    assert (obs.width, obs.height) == (720, 1280) and (obs.input_width, obs.input_height) == (360, 640)
    assert obs.input_space == "device" and obs.url is None and obs.image.size == (720, 1280)
    assert (await phone.execute(Swipe(x=500, y=800, x2=500, y2=200))).ok
    assert phone.scroll == [0, 384]
    assert (await phone.execute(LongPress(x=100, y=100))).ok
    assert (await phone.execute(Key(keys=["enter"]))).ok  # mobile_use has key, as every phone env takes it
    refused = await phone.execute(DoubleClick(x=100, y=100))
    assert not refused.ok and "the fake phone cannot do 'double_click'" in refused.error
    desktop = envs.make("fake", kind="desktop")
    assert desktop.kind == "desktop" and (await desktop.reset()).input_space == "screen"
    assert "open_app" in desktop.actions and "navigate" not in desktop.actions
    with pytest.raises(ValueError, match="kind must be one of browser, desktop, mobile"):
        FakeEnv(kind="fridge")


async def test_a_screen_of_your_own_and_its_targets() -> None:
    widgets = [
        Text("Pay now", (10, 10, 200, 20)),
        TextField("Card", (10, 50, 200, 30), placeholder="1234 …"),
        PasswordField("PIN", (10, 100, 200, 30)),
        Button("Pay", (10, 150, 80, 30)),
    ]
    env = FakeEnv(widgets, size=(320, 240))
    other = FakeEnv(widgets, size=(320, 240))
    await env.reset()
    await other.reset()
    await click_on(env, "Card")
    await env.execute(Type(text="4242"))
    assert env.value("Card") == "4242" and other.value("Card") == "" and widgets[1].value == ""  # each its own copy
    assert await env.describe_target(Type(text="x")) == {"tag": "input", "type": "text", "form": True, "submit": False}
    await click_on(env, "PIN")
    assert (await env.describe_target(Type(text="1")))["type"] == "password"
    box = await env.locate_text("Pay")  # the button: an exact match beats "Pay now"
    x, y = env.grid.point_to_grid(*box.center, *env.size)
    assert (await env.describe_target(Click(x=x, y=y)))["submit"] is True
    assert await env.describe_target(Click(x=999, y=999)) is None
    assert await env.locate_text("1234") == (10, 50, 200, 30)  # a placeholder names its field
    with pytest.raises(KeyError, match="no widget called 'Nope'"):
        env.widget("Nope")


async def test_crash_on_raises_until_recover_brings_the_screen_back() -> None:
    env = FakeEnv(crash_on={1})
    await env.reset()
    await click_on(env, "Username")  # action 0
    with pytest.raises(EnvCrashed):
        await env.execute(Type(text="alice"))  # action 1
    with pytest.raises(EnvCrashed):
        await env.observe()
    with pytest.raises(EnvCrashed):
        await env.execute(Type(text="alice"))
    obs = await env.recover()
    assert obs.events == ["the screen crashed and was restarted"]
    assert env.focus is env.widget("Username")  # where it was
    assert (await env.execute(Type(text="alice"))).ok and env.value("Username") == "alice"
    await env.reset()  # a new episode counts from 0 again
    await click_on(env, "Username")
    with pytest.raises(EnvCrashed):
        await env.execute(Type(text="x"))


async def test_reset_error_and_delay() -> None:
    with pytest.raises(EnvError, match="no screen today"):
        await FakeEnv(reset_error="no screen today").reset()
    slow = FakeEnv(delay=0.05)
    await slow.reset()
    t0 = time.perf_counter()
    outcome = await slow.execute(Wait(seconds=0))
    assert time.perf_counter() - t0 >= 0.05 and outcome.info["act_ms"] >= 50


# --- the agent loop on FakeEnv: every ending, in milliseconds ------------------------------------

SIGN_IN = [{"type": {"text": "alice", "into": "Username"}}, {"click": "Sign in"}, {"answer": "signed in"}]


async def _run(tmp_path, env: FakeEnv, steps=SIGN_IN, **limits):
    task = Task(instruction="sign in", url="http://fake.test/", steps=steps)
    return await Agent(env, ScriptPolicy(), recorder=Recorder(tmp_path), limits=Limits(**limits)).run(task)


async def test_a_scripted_episode_succeeds(tmp_path) -> None:
    env = FakeEnv()
    episode = await _run(tmp_path, env)
    assert episode.status == "success" and episode.answer == "signed in"
    assert env.value("Username") == "alice" and env.widget("Sign in").presses == 1
    steps = load_episode(episode.path).steps
    assert [s.action["action"] for s in steps] == ["click", "type", "click", "answer"]
    assert steps[0].extra["target"]["box"] == [40.0, 100.0, 300.0, 32.0]  # the field, found by its label


async def test_one_crash_is_relaunched_and_a_second_ends_as_env_error(tmp_path) -> None:
    once = await _run(tmp_path, FakeEnv(crash_on={1}))
    assert once.status == "success"
    twice = await _run(tmp_path, FakeEnv(crash_on={0, 1}))
    assert twice.status == "env_error" and "no relaunch left" in twice.message


async def test_a_reset_that_fails_ends_as_env_error(tmp_path) -> None:
    episode = await _run(tmp_path, FakeEnv(reset_error="the screen would not open"))
    assert episode.status == "env_error" and episode.message == "the screen would not open"


async def test_a_slow_screen_runs_into_the_time_budget(tmp_path) -> None:
    episode = await _run(tmp_path, FakeEnv(delay=0.3), max_seconds=0.2)
    assert episode.status == "timeout"


async def test_the_step_budget(tmp_path) -> None:
    steps = [{"press": "tab"}] * 5
    episode = await _run(tmp_path, FakeEnv(), steps=steps, max_steps=3)
    assert episode.status == "max_steps" and len(episode.steps) == 3
