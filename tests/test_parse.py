"""Model text -> typed actions through ``parse_output`` (the profiles' decoders): Qwen tool calls, UI-TARS
calls, fenced JSON, <think>, and malformed output."""

from __future__ import annotations

import pytest

from pixelpilot import ActionParseError, parse_output


@pytest.mark.parametrize(
    "text, expected",
    [
        (
            '<tool_call>\n{"name": "computer_use", "arguments": {"action": "left_click", "coordinate": [512, 300]}}\n</tool_call>',
            {"action": "click", "x": 512, "y": 300, "button": "left"},
        ),
        (
            '<tool_call>\n{"name": "computer_use", "arguments": {"action": "right_click", "coordinate": [10, 20]}}\n</tool_call>',
            {"action": "click", "x": 10, "y": 20, "button": "right"},
        ),
        (
            '<tool_call>{"name": "computer_use", "arguments": {"action": "middle_click", "coordinate": [1, 2]}}</tool_call>',
            {"action": "click", "x": 1, "y": 2, "button": "middle"},
        ),
        (
            '<tool_call>{"name": "computer_use", "arguments": {"action": "double_click", "coordinate": [3, 4]}}</tool_call>',
            {"action": "double_click", "x": 3, "y": 4},
        ),
        (
            '<tool_call>{"name": "computer_use", "arguments": {"action": "mouse_move", "coordinate": [5, 6]}}</tool_call>',
            {"action": "move", "x": 5, "y": 6},
        ),
        (
            '<tool_call>{"name": "computer_use", "arguments": {"action": "key", "keys": ["ctrl", "c"]}}</tool_call>',
            {"action": "key", "keys": ["ctrl", "c"]},
        ),
        (
            '<tool_call>{"name": "computer_use", "arguments": {"action": "type", "text": "hello"}}</tool_call>',
            {"action": "type", "text": "hello"},
        ),
        (
            # `pixels` are wheel notches (the official agents run pyautogui.scroll(pixels)), 50 grid units each
            '<tool_call>{"name": "computer_use", "arguments": {"action": "scroll", "pixels": -6}}</tool_call>',
            {"action": "scroll", "x": 500, "y": 500, "dx": 0, "dy": 300},
        ),
        (
            '<tool_call>{"name": "computer_use", "arguments": {"action": "hscroll", "coordinate": [100, 200], "pixels": 5}}</tool_call>',
            {"action": "scroll", "x": 100, "y": 200, "dx": 250, "dy": 0},
        ),
        (
            '<tool_call>{"name": "computer_use", "arguments": {"action": "wait", "time": 2}}</tool_call>',
            {"action": "wait", "seconds": 2.0},
        ),
        (
            '<tool_call>{"name": "computer_use", "arguments": {"action": "terminate", "status": "failure"}}</tool_call>',
            {"action": "terminate", "status": "failure"},
        ),
        (
            '<tool_call>{"name": "computer_use", "arguments": {"action": "answer", "text": "42"}}</tool_call>',
            {"action": "answer", "text": "42"},
        ),
        (
            # mobile_use declares a 999x999 screen: its coordinates are mapped onto the 0..1000 grid
            '<tool_call>{"name": "mobile_use", "arguments": {"action": "click", "coordinate": [540, 999]}}</tool_call>',
            {"action": "click", "x": 541, "y": 1000, "button": "left"},
        ),
        (
            '<tool_call>{"name": "mobile_use", "arguments": {"action": "long_press", "coordinate": [10, 10], "time": 2}}</tool_call>',
            {"action": "long_press", "x": 10, "y": 10, "seconds": 2.0},
        ),
        (
            '<tool_call>{"name": "mobile_use", "arguments": {"action": "swipe", "coordinate": [499, 800], "coordinate2": [499, 200]}}</tool_call>',
            {"action": "swipe", "x": 499, "y": 801, "x2": 499, "y2": 200, "seconds": 0.3},
        ),
        (
            '<tool_call>{"name": "mobile_use", "arguments": {"action": "system_button", "button": "Back"}}</tool_call>',
            {"action": "system_button", "button": "back"},
        ),
        (
            '<tool_call>{"name": "mobile_use", "arguments": {"action": "open", "text": "Settings"}}</tool_call>',
            {"action": "open_app", "name": "Settings"},
        ),
        (
            '<tool_call>{"name": "mobile_use", "arguments": {"action": "key", "text": "volume_up"}}</tool_call>',
            {"action": "key", "keys": ["volume_up"]},
        ),
        (
            '<tool_call>{"name": "calculator", "arguments": {"expression": "2+2"}}</tool_call>',
            {"action": "tool", "name": "calculator", "arguments": {"expression": "2+2"}},
        ),
    ],
)
def test_qwen_tool_calls(text, expected):
    out = parse_output(text)
    assert out.action.model_dump(mode="json") == expected
    assert out.format == "qwen3-vl"


def test_the_action_line_before_a_tool_call_is_the_thought():
    text = (
        "Thought: The login button is at the top right.\nAction: Click the login button.\n"
        '<tool_call>\n{"name": "computer_use", "arguments": {"action": "left_click", "coordinate": [900, 40]}}\n</tool_call>'
    )
    out = parse_output(text)
    assert out.thought == "Click the login button."
    assert (out.action.x, out.action.y) == (900, 40)


def test_ui_tars_calls_are_read_without_evaluating_them():
    text = "Thought: Open the menu.\nAction: click(start_box='(644,406)')"
    out = parse_output(text, image=(1288, 812))
    assert out.format == "ui-tars" and out.thought == "Open the menu."
    assert (out.action.x, out.action.y) == (500, 500)
    typed = parse_output("Thought: t\nAction: type(content='it\\'s done\\n')", image=(1288, 812))
    assert typed.action.text == "it's done\n"
    with pytest.raises(ActionParseError, match="must be name"):
        parse_output("Thought: t\nAction: click(__import__('os').system('x'))", image=(1288, 812))
    with pytest.raises(ActionParseError, match="key='text'"):
        parse_output("Thought: t\nAction: type(content=open('/etc/passwd').read())", image=(1288, 812))


def test_drag_starts_at_the_pointer():
    text = '<tool_call>{"name": "computer_use", "arguments": {"action": "left_click_drag", "coordinate": [700, 300]}}</tool_call>'
    out = parse_output(text, pointer=(100, 300))
    assert out.action.model_dump() == {"action": "drag", "x": 100, "y": 300, "x2": 700, "y2": 300}
    with pytest.raises(ActionParseError, match="no pointer position"):
        parse_output(text)


def test_a_think_block_is_set_aside():
    text = '<think>I should type the name.\nThen submit.</think>\n{"action": "type", "text": "alice"}'
    out = parse_output(text)
    assert out.action.text == "alice" and "submit" not in out.thought
    assert out.raw == text  # the reasoning stays in the recorded text


def test_lone_closing_think_tag():
    out = parse_output('reasoning here</think>{"thought": "t", "action": {"action": "back"}}')
    assert out.action.action == "back"
    assert out.thought == "t"


def test_structured_output_form():
    out = parse_output('{"thought": "click Add", "action": {"action": "click", "x": 692, "y": 239, "button": "left"}}')
    assert out.thought == "click Add" and out.action.x == 692 and out.format == "json"


def test_fenced_json_with_prose():
    text = 'I will press enter.\n```json\n{"action": "key", "keys": ["Enter"]}\n```\nDone.'
    out = parse_output(text)
    assert out.action.keys == ["enter"]  # stored by canonical name
    assert out.thought == "I will press enter."


def test_qwen_arguments_object_without_wrapper():
    out = parse_output('{"action": "left_click", "coordinate": [5, 5]}')
    assert out.action.action == "click"


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "no text"),
        ("I am not sure what to do.", "no JSON object"),
        ('{"action": "click", "x": 10}', "invalid click action: y: Field required"),
        ('{"action": "click", "x": 2000, "y": 10}', "x: Input should be less than or equal to 1000"),
        ('{"action": "fly", "x": 1}', "unknown action 'fly'"),
        ('{"thought": "hm"}', "no 'action' field"),
        ('{"action": "click", "x": 10, "y": 10', "no JSON object"),
        ('{"action": "click" "x": 10}', "not valid JSON"),
        (
            '<tool_call>{"name": "computer_use", "arguments": {"action": "left_click"}}</tool_call>',
            "'coordinate' must be [x, y]",
        ),
        (
            '<tool_call>{"name": "computer_use", "arguments": {"action": "left_click", "coordinate": [1]}}</tool_call>',
            "'coordinate' must be [x, y]",
        ),
        (
            '<tool_call>{"name": "computer_use", "arguments": {"action": "explode"}}</tool_call>',
            "unknown computer_use action 'explode'",
        ),
        ('<tool_call>{"name": "computer_use"}</tool_call>', "needs an 'arguments' object"),
        ("<tool_call>not json</tool_call>", "not valid JSON"),
        (
            '<tool_call>{"name": "computer_use", "arguments": {"action": "scroll", "pixels": "lots"}}</tool_call>',
            "'pixels' must be a number",
        ),
        (
            '<tool_call>{"name": "computer_use", "arguments": {"action": "left_click", "coordinate": [1001, 5]}}</tool_call>',
            "off the 1000x1000 screen",
        ),
        (
            '<tool_call>{"name": "mobile_use", "arguments": {"action": "click", "coordinate": [5, 1000]}}</tool_call>',
            "off the 999x999 screen",
        ),
        ("[1, 2, 3]", "no JSON object"),
        ('{"thought": 5, "action": {"action": "back"}}', "'thought' must be a string"),
        ('{"action": "type", "text": "' + "x" * 3000 + '"}', "at most 2000 characters"),
        ('{"action": "key", "keys": []}', "invalid key action"),
        ('{"action": "terminate", "status": "maybe"}', "invalid terminate action"),
        ("{\"action\": \"__import__('os').system('rm -rf /')\"}", "unknown action"),
    ],
)
def test_malformed_outputs_raise_typed_errors(text, message):
    with pytest.raises(
        ActionParseError, match=message.replace("[", r"\[").replace("]", r"\]").replace("(", r"\(")
    ) as err:
        parse_output(text)
    assert err.value.raw == text
