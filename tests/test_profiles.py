"""The model profiles against the official formats they speak, and their encoders against their decoders.

The official facts are test data with their sources:

- QwenLM/Qwen3-VL ``cookbooks/utils/agent_function_call.py``: the ``computer_use`` and
  ``mobile_use`` tools (names, action enums, parameter names and types, which action requires
  which parameter, the instructions in their descriptions);
- QwenLM/Qwen3-VL ``cookbooks/mobile_agent.ipynb``: the mobile system prompt (``answer`` added,
  ``key`` and ``open`` left out, "The screen's resolution is 999x999.");
- xlang-ai/OSWorld ``mm_agents/qwen3vl_agent.py``: "The screen's resolution is 1000x1000.", the
  ``# Response format`` section, the user turn (screenshot, then the instruction with "Previous
  actions"), the history of the last 4 screenshot turns.
"""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pixelpilot.actions import action_from_dict
from pixelpilot.profiles import (
    ActionParseError,
    DecodeContext,
    EncodeError,
    ImageRef,
    Message,
    PastStep,
    Turn,
    get_profile,
)
from pixelpilot.profiles.grammar import Grammar, integer

# --- the official definitions (see the module docstring for the sources) ---------------------------

COMPUTER_USE = {
    "actions": [
        "key",
        "type",
        "mouse_move",
        "left_click",
        "left_click_drag",
        "right_click",
        "middle_click",
        "double_click",
        "triple_click",
        "scroll",
        "hscroll",
        "wait",
        "terminate",
        "answer",
    ],  # fmt: skip
    "params": {
        "keys": "array",
        "text": "string",
        "coordinate": "array",
        "pixels": "number",
        "time": "number",
        "status": "string",
    },
    "required_by": {
        "keys": ["key"],
        "text": ["type", "answer"],
        "coordinate": [],  # its description names no action
        "pixels": ["scroll", "hscroll"],
        "time": ["wait"],
        "status": ["terminate"],
    },
    "resolution": 1000,  # OSWorld's relative mode
}
MOBILE_USE = {
    # agent_function_call.py's enum, plus the notebook's `answer`
    "actions": ["key", "click", "long_press", "swipe", "type", "answer", "system_button", "open", "wait", "terminate"],
    "params": {
        "coordinate": "array",
        "coordinate2": "array",
        "text": "string",
        "time": "number",
        "button": "string",
        "status": "string",
    },
    "required_by": {
        "coordinate": ["click", "long_press", "swipe"],
        "coordinate2": ["swipe"],
        "text": ["key", "type", "open", "answer"],  # the .py says key, type, open; the notebook type, answer
        "time": ["long_press", "wait"],
        "button": ["system_button"],
        "status": ["terminate"],
    },
    "enums": {"button": ["Back", "Home", "Menu", "Enter"], "status": ["success", "failure"]},
    "resolution": 999,
}
#: pixelpilot's intended differences in the enums (docs/models.md says why).
NOT_OFFERED: dict[str, set[str]] = {}
#: The instructions of the official tool descriptions, each with the words pixelpilot's must carry.
INSTRUCTIONS = {
    "computer": {
        "operate with mouse and keyboard, seeing screenshots": ("mouse", "keyboard", "screenshot"),
        "there is no terminal or applications menu": ("no terminal",),
        "wait and take another screenshot when something is slow": ("wait", "next screenshot"),
        "read the element's position off a screenshot before moving the cursor": ("position", "screenshot", "before"),
        "if a click failed even after waiting, adjust the cursor onto the element": ("even after waiting", "tip"),
        "click elements in their centre with the cursor tip, not on their edges unless asked": (
            "centre",
            "edges",
            "unless",
        ),
    },
    "mobile": {
        "operate a touchscreen, seeing screenshots": ("touchscreen", "screenshot"),
        "click, type, swipe": ("click", "type", "swipe"),
        "wait and take another screenshot when something is slow": ("wait", "next screenshot"),
        "touch elements in their centre, not on their edges unless asked": ("centre", "edges", "unless"),
    },
}
RESPONSE_FORMAT_RULES = [
    "1) Action: a short imperative describing what to do in the UI.",
    '2) A single <tool_call>...</tool_call> block containing only the JSON: {"name": <function-name>, '
    '"arguments": <args-json-object>}.',
    "- Output exactly in the order: Action, <tool_call>.",
    "- Be brief: one sentence for Action.",
    "- Do not output anything else outside those parts.",
    "- If finishing, use action=terminate in the tool call.",
]


def _functions(system: str) -> list[dict]:
    block = system.split("<tools>\n", 1)[1].split("\n</tools>", 1)[0]
    return [json.loads(line) for line in block.splitlines()]


def _required_by(description: str) -> list[str]:
    found = re.search(r"Required only by (.*?)\.?$", description)
    return re.findall(r"`action=(\w+)`", found.group(1)) if found else []


@pytest.mark.parametrize("kind", ["browser", "desktop", "mobile"])
def test_the_qwen3_vl_tools_match_the_official_definitions(kind: str) -> None:
    q = get_profile("qwen3-vl")
    system = q.system_prompt(q.setup(kind))
    official = MOBILE_USE if kind == "mobile" else COMPUTER_USE
    main, *extra = _functions(system)
    assert main["type"] == "function"
    fn = main["function"]
    assert fn["name"] == ("mobile_use" if kind == "mobile" else "computer_use")
    params = fn["parameters"]
    assert list(params) == ["properties", "required", "type"] and params["required"] == ["action"]
    assert params["type"] == "object"
    enum = params["properties"]["action"]["enum"]
    assert set(enum) == set(official["actions"]) - NOT_OFFERED.get(kind, set())
    assert [a for a in official["actions"] if a in enum] == enum or kind == "mobile"  # the official order
    # one line per action in the action parameter's description
    lines = params["properties"]["action"]["description"].splitlines()[1:]
    assert [re.match(r"\* `(\w+)`: ", line).group(1) for line in lines] == enum
    props = {k: v for k, v in params["properties"].items() if k != "action"}
    assert {k: v["type"] for k, v in props.items()} == official["params"]
    for name, spec in props.items():
        want = [a for a in official["required_by"][name] if a in enum]
        assert sorted(_required_by(spec["description"])) == sorted(want), name
    for name, values in official.get("enums", {"status": ["success", "failure"]}).items():
        assert props[name]["enum"] == values
    # the declared screen, and the instructions of the official description
    sizes = re.findall(r"The screen's resolution is (\d+)x(\d+)\.", fn["description"])
    assert sizes == [(str(official["resolution"]),) * 2]
    text = fn["description"].lower()
    for instruction, words in INSTRUCTIONS["mobile" if kind == "mobile" else "computer"].items():
        if instruction.startswith("there is no terminal") and kind == "browser":
            words = ("no address bar",)  # a page in a headless browser: no address bar instead
        assert all(w in text for w in words), (instruction, words)
    # pixelpilot's own actions come as extra functions written the same way
    assert [f["function"]["name"] for f in extra] == {"browser": ["browser"], "desktop": ["desktop"], "mobile": []}[
        kind
    ]


@pytest.mark.parametrize("kind", ["browser", "mobile"])
def test_the_system_prompt_has_the_official_sections_and_response_format(kind: str) -> None:
    q = get_profile("qwen3-vl")
    system = q.system_prompt(q.setup(kind))
    assert system.startswith("# Tools\n\nYou may call one or more functions to assist with the user query.")
    assert system.index("<tools>") < system.index("</tools>") < system.index("# Response format")
    assert '<tool_call>\n{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>' in system
    for rule in RESPONSE_FORMAT_RULES:
        assert rule in system, rule


def test_registered_tools_are_extra_functions_and_clashing_names_are_refused() -> None:
    q = get_profile("qwen3-vl")
    calc = ("calculator", {"type": "object", "properties": {"expression": {"type": "string"}}}, "Evaluate arithmetic.")
    system = q.system_prompt(q.setup("browser", tools=[calc]))
    assert _functions(system)[-1] == {
        "type": "function",
        "function": {"name": "calculator", "description": "Evaluate arithmetic.", "parameters": calc[1]},
    }
    with pytest.raises(ValueError, match="clash"):
        q.setup("browser", tools=[("browser", {"type": "object"})])
    with pytest.raises(ValueError, match="cannot offer \\['swipe'\\] in a browser env"):
        q.setup("browser", actions=("swipe",))


def _past(i: int) -> PastStep:
    return PastStep(Turn(ImageRef(f"k{i}", 64, 64)), f"Action: Step {i} did this.\n<tool_call>\n{{}}\n</tool_call>")


def test_a_sliding_window_of_four_is_the_official_agents_layout() -> None:
    """With drop_block=1 the history is OSWorld's: the last 4 screenshot turns with the model's answers,
    the instruction (and the older steps' Action lines) on the first of them, the image first."""
    q = get_profile("qwen3-vl")
    setup = q.setup("desktop", keep_images=4, drop_block=1)
    history = [_past(i) for i in range(7)]
    msgs = q.messages(setup, "Open the report", history, Turn(ImageRef("now", 64, 64)))
    roles = [m.role for m in msgs]
    assert roles == ["system"] + ["user", "assistant"] * 4 + ["user"]
    first = msgs[1]
    assert first.parts[0] == ImageRef("k3", 64, 64)
    assert first.parts[1] == (
        "Please generate the next move according to the UI screenshot, instruction and previous actions.\n\n"
        "Instruction: Open the report\n\nPrevious actions:\nStep 1: Step 0 did this.\nStep 2: Step 1 did this.\n"
        "Step 3: Step 2 did this."
    )
    assert [m.parts for m in msgs[3:9:2]] == [(ImageRef(f"k{i}", 64, 64),) for i in (4, 5, 6)]
    assert msgs[-1].parts == (ImageRef("now", 64, 64),)
    assert msgs[2] == Message.text("assistant", history[3].answer)
    # no history yet: the image, then the instruction with "None"
    (_, only) = q.messages(setup, "Open the report", [], Turn(ImageRef("now", 64, 64)))
    assert only.parts[1].endswith("Previous actions:\nNone")


def test_thinking_checkpoints_get_their_sampling_and_lose_their_reasoning_in_the_history() -> None:
    q = get_profile("qwen3-vl")
    thinking = q.setup("browser", thinking=True)
    assert q.sampling("Qwen/Qwen3-VL-8B-Thinking", thinking).presence_penalty == 0.0
    assert q.sampling("Qwen/Qwen3-VL-8B-Instruct", q.setup("browser")).presence_penalty == 1.5
    answer = "<think>\nThe box is at the top.\n</think>\n\nAction: Click it.\n<tool_call>\n{}\n</tool_call>"
    assert q.history_answer(answer) == "Action: Click it.\n<tool_call>\n{}\n</tool_call>"
    assert q.grammar(thinking).startswith('root ::= "\\n\\n" "Action: "')  # after </think>, a blank line


def test_the_declared_screens_map_back_to_the_grid() -> None:
    q = get_profile("qwen3-vl")
    ctx = DecodeContext(q.setup("mobile"))

    def click(fn: str, x: int, y: int) -> tuple[int, int]:
        call = {
            "name": fn,
            "arguments": {"action": "left_click" if fn == "computer_use" else "click", "coordinate": [x, y]},
        }
        action = q.decode(f"Action: a\n<tool_call>\n{json.dumps(call)}\n</tool_call>", ctx).action
        return action.x, action.y

    assert click("mobile_use", 999, 999) == (1000, 1000)  # x/999, as the mobile cookbook maps
    assert click("mobile_use", 499, 0) == (499, 0)
    assert click("computer_use", 1000, 500) == (1000, 500)  # x/1000, as the desktop cookbook maps
    with pytest.raises(ActionParseError, match="off the 999x999 screen"):
        click("mobile_use", 1000, 5)


# --- encoders and decoders ------------------------------------------------------------------------

_coord = st.integers(0, 1000)
_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=40)
_ACTIONS = {
    "browser": st.one_of(
        st.builds(
            lambda x, y, b: {"action": "click", "x": x, "y": y, "button": b},
            _coord,
            _coord,
            st.sampled_from(["left", "right", "middle"]),
        ),
        st.builds(
            lambda k, x, y: {"action": k, "x": x, "y": y},
            st.sampled_from(["double_click", "triple_click", "move"]),
            _coord,
            _coord,
        ),
        st.builds(
            lambda x, y, n, h: {"action": "scroll", "x": x, "y": y, "dx": n * 50 if h else 0, "dy": 0 if h else n * 50},
            _coord,
            _coord,
            st.integers(-20, 20).filter(bool),
            st.booleans(),
        ),
        st.builds(lambda t: {"action": "type", "text": t}, _text),
        st.builds(lambda t: {"action": "answer", "text": t}, _text),
        st.builds(
            lambda k: {"action": "key", "keys": k},
            st.lists(
                st.sampled_from(["ctrl", "alt", "shift", "a", "Z", "1", "enter", "f5", "pagedown", '"', "\\"]),
                min_size=1,
                max_size=5,
            ),
        ),
        st.builds(lambda s: {"action": "wait", "seconds": s}, st.sampled_from([0.5, 1.0, 2.0, 10.0, 60.0])),
        st.builds(lambda u: {"action": "navigate", "url": u}, _text),
        st.just({"action": "back"}),
        st.builds(lambda s: {"action": "terminate", "status": s}, st.sampled_from(["success", "failure"])),
    ),
    "mobile": st.one_of(
        st.builds(lambda x, y: {"action": "click", "x": x, "y": y}, _coord, _coord),
        st.builds(
            lambda x, y, x2, y2: {"action": "swipe", "x": x, "y": y, "x2": x2, "y2": y2}, _coord, _coord, _coord, _coord
        ),
        st.builds(
            lambda x, y, s: {"action": "long_press", "x": x, "y": y, "seconds": s},
            _coord,
            _coord,
            st.sampled_from([0.5, 1.0, 3.0]),
        ),
        st.builds(
            lambda b: {"action": "system_button", "button": b}, st.sampled_from(["back", "home", "menu", "enter"])
        ),
        st.builds(lambda t: {"action": "open_app", "name": t}, _text),
        st.builds(lambda t: {"action": "type", "text": t}, _text),
    ),
}


@pytest.fixture(scope="module")
def matcher_for():
    """The local backend's xgrammar, compiling a profile's constraint as the server does."""
    xgr = pytest.importorskip("xgrammar", reason="the local backend needs the 'local' extra (xgrammar)")
    from pixelpilot.serving.local import compile_constraint
    from pixelpilot.serving.tiny import build_tokenizer

    compiler = xgr.GrammarCompiler(xgr.TokenizerInfo.from_huggingface(build_tokenizer(), vocab_size=151936))
    cache: dict[str, object] = {}

    def accepts(constraint: dict, text: str) -> bool:
        key = json.dumps(constraint, sort_keys=True)
        if key not in cache:
            cache[key] = compile_constraint(compiler, constraint)
        m = xgr.GrammarMatcher(cache[key])
        return m.accept_string(text) and m.is_completed()

    return accepts


@pytest.mark.parametrize("profile", ["qwen3-vl", "json", "ui-tars"])
@pytest.mark.parametrize("kind", ["browser", "mobile"])
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_what_an_encoder_writes_its_grammar_admits_and_its_decoder_reads_back(matcher_for, profile, kind, data) -> None:
    p = get_profile(profile)
    setup = p.setup(kind)
    image = (1288, 812) if profile == "ui-tars" else None
    raw = data.draw(_ACTIONS[kind])
    action = action_from_dict(raw).model_dump(mode="json")
    ctx = DecodeContext(setup, pointer=(action.get("x", 0), action.get("y", 0)), image=image)
    try:
        text = p.encode(action, ctx, "Do the next thing.")
    except EncodeError:
        return  # no form in this format (each refusal is a documented difference)
    assert matcher_for(p.constraint(setup, image), text), text
    back = p.decode(text, ctx).action.model_dump(mode="json")
    assert p.in_format(text, ctx)
    if kind == "mobile" and profile == "qwen3-vl":  # a 999x999 screen cannot name every 1000-grid point
        assert all(abs(back[k] - action[k]) <= 1 for k in ("x", "y", "x2", "y2") if k in action)
        assert {k: v for k, v in back.items() if k not in ("x", "y", "x2", "y2")} == {
            k: v for k, v in action.items() if k not in ("x", "y", "x2", "y2")
        }
    elif profile == "ui-tars":  # pixels of a 1288-wide image: one grid unit at most
        assert all(abs(back[k] - action[k]) <= 1 for k in ("x", "y", "x2", "y2") if k in action)
    else:
        assert back == action


def test_the_official_format_is_recognised_however_the_grammar_let_the_model_write_it() -> None:
    q = get_profile("qwen3-vl")
    ctx = DecodeContext(q.setup("browser"), pointer=(5, 5))

    def answer(args: str) -> str:
        return f'Action: Go on.\n<tool_call>\n{{"name": "computer_use", "arguments": {args}}}\n</tool_call>'

    # an alias key name, a scroll at the pointer, a time written with a decimal: official, and readable
    for args in (
        '{"action": "key", "keys": ["esc"]}',
        '{"action": "scroll", "pixels": -3}',
        '{"action": "wait", "time": 1.0}',
    ):
        assert q.in_format(answer(args), ctx), args
    good = answer('{"action": "left_click", "coordinate": [4, 8]}')
    assert q.in_format("<think>\nhm\n</think>\n\n" + good, ctx)
    for bad in (
        good.replace('", "', '","'),  # compact JSON
        "Thought: hm.\n" + good,  # a line the format has not
        good + "\n<tool_call>\n{}\n</tool_call>",  # a second call
        good.replace('{"name": "computer_use", "arguments": ', '{"arguments": ').replace(
            "}}", ', "name": "computer_use"}'
        ),
    ):
        assert not q.in_format(bad, ctx), bad


def test_the_encoders_refuse_what_their_format_cannot_say() -> None:
    q = get_profile("qwen3-vl")
    ctx = DecodeContext(q.setup("browser"), pointer=(1, 1))
    with pytest.raises(EncodeError, match="starts at the pointer"):
        q.encode({"action": "drag", "x": 5, "y": 5, "x2": 9, "y2": 9}, ctx, "")
    with pytest.raises(EncodeError, match="one axis"):
        q.encode({"action": "scroll", "x": 5, "y": 5, "dx": 50, "dy": 50}, ctx, "")
    with pytest.raises(EncodeError, match="wheel notches"):
        q.encode({"action": "scroll", "x": 5, "y": 5, "dx": 0, "dy": 333}, ctx, "")
    j = get_profile("json")
    with pytest.raises(EncodeError, match="quotes, backslashes"):
        j.encode({"action": "type", "text": 'a "quote"'}, DecodeContext(j.setup("browser")), "")


def test_integer_ranges_are_exact() -> None:
    xgr = pytest.importorskip("xgrammar")
    from xgrammar.testing import _is_grammar_accept_string

    for lo, hi in [(0, 1000), (0, 999), (-20, 20), (13, 87), (5, 1234)]:
        g = Grammar()
        g.add("root", integer(lo, hi))
        grammar = xgr.Grammar.from_ebnf(g.text())
        accepted = [n for n in range(-1100, 1300) if _is_grammar_accept_string(grammar, str(n))]
        assert accepted == list(range(lo, hi + 1)), (lo, hi)
        assert not _is_grammar_accept_string(grammar, "0" + str(hi))  # no leading zeros
