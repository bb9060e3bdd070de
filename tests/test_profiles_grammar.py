"""The answer grammars compile the same under SGLang's xgrammar and under the local backend's.

SGLang 0.5.23 pins xgrammar 0.2.7; the local backend runs whatever the ``local`` extra installs
(0.2.9 here). The session installs 0.2.7 (``--no-deps``) into a folder of its own and a
subprocess compiles each constraint the way SGLang's xgrammar backend does (``dispatch_ebnf``:
``compile_grammar``; ``dispatch_json``: ``compile_json_schema`` with no free whitespace and no
``separators``); in this process the local backend's own ``compile_constraint`` compiles them.
The same answers must pass and fail under both, and as the profile means them to.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import pip_target

pytest.importorskip("xgrammar", reason="the local backend needs the 'local' extra (xgrammar)")

from pixelpilot.actions import action_from_dict  # noqa: E402
from pixelpilot.profiles import DecodeContext, get_profile  # noqa: E402
from pixelpilot.serving.local import compile_constraint  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
IMAGE = (1288, 812)  # a 1280x800 screen as UI-TARS (28-px patches) is sent it

#: Compiles each constraint as SGLang 0.5.23's XGrammarGrammarBackend does
#: (python/sglang/srt/constrained/xgrammar_backend.py) and says which strings each accepts.
SGLANG_SIDE = r"""
import json, sys
import importlib.metadata, xgrammar as xgr
from pixelpilot.serving.tiny import build_tokenizer

data = json.load(sys.stdin)
tok = build_tokenizer()
info = xgr.TokenizerInfo.from_huggingface(tok, vocab_size=151936, stop_token_ids=[151645])
compiler = xgr.GrammarCompiler(info)
out = {"version": importlib.metadata.version("xgrammar"), "accepts": []}
for case in data:
    c = case["constraint"]
    if "ebnf" in c:
        grammar = compiler.compile_grammar(c["ebnf"])
    else:
        schema = json.dumps(c["response_format"]["json_schema"]["schema"])
        grammar = compiler.compile_json_schema(schema=schema, any_whitespace=False, max_whitespace_cnt=None)
    row = []
    for text in case["texts"]:
        m = xgr.GrammarMatcher(grammar)
        row.append(bool(m.accept_string(text) and m.is_completed()))
    out["accepts"].append(row)
print(json.dumps(out))
"""


@pytest.fixture(scope="session")
def xgrammar_027(tmp_path_factory: pytest.TempPathFactory) -> str:
    return pip_target(tmp_path_factory, "xgrammar-0.2.7", "xgrammar==0.2.7", timeout=300)


ACTIONS = {
    "browser": [
        {"action": "click", "x": 447, "y": 81},
        {"action": "click", "x": 0, "y": 1000, "button": "right"},
        {"action": "double_click", "x": 3, "y": 999},
        {"action": "scroll", "x": 500, "y": 500, "dy": 250},
        {"action": "type", "text": 'say "hi"\\ and\nnew line, héllo 日本'},
        {"action": "key", "keys": ["ctrl", "shift", "t"]},
        {"action": "wait", "seconds": 2.5},
        {"action": "navigate", "url": "https://example.com/a?b=1"},
        {"action": "back"},
        {"action": "answer", "text": "42"},
        {"action": "terminate", "status": "failure"},
    ],
    "desktop": [
        {"action": "open_app", "name": "editor"},
        {"action": "triple_click", "x": 10, "y": 20},
        {"action": "drag", "x": 1, "y": 2, "x2": 300, "y2": 400},
        {"action": "scroll", "x": 7, "y": 8, "dx": -1000},
    ],
    "mobile": [
        {"action": "click", "x": 1, "y": 999},
        {"action": "swipe", "x": 100, "y": 800, "x2": 100, "y2": 200},
        {"action": "long_press", "x": 5, "y": 5},
        {"action": "system_button", "button": "home"},
        {"action": "open_app", "name": "Maps"},
        {"action": "key", "keys": ["volume_up"]},
        {"action": "key", "keys": ["power", "volume_down"]},
    ],
}

CALL = '{"name": "computer_use", "arguments": {"action": "left_click", "coordinate": [447, 81]}}'
#: Answers the qwen3-vl grammar must refuse, each with why.
QWEN_BAD = {
    "compact JSON": 'Action: Click.\n<tool_call>\n{"name":"computer_use","arguments":{"action":"left_click","coordinate":[447,81]}}\n</tool_call>',
    "no Action line": f"<tool_call>\n{CALL}\n</tool_call>",
    "a Thought line": f"Thought: hm.\nAction: Click.\n<tool_call>\n{CALL}\n</tool_call>",
    "two tool calls": f"Action: Click.\n<tool_call>\n{CALL}\n</tool_call>\n<tool_call>\n{CALL}\n</tool_call>",
    "text after the call": f"Action: Click.\n<tool_call>\n{CALL}\n</tool_call> done",
    "off the screen": 'Action: Click.\n<tool_call>\n{"name": "computer_use", "arguments": {"action": "left_click", "coordinate": [447, 1001]}}\n</tool_call>',
    "leading zero": 'Action: Click.\n<tool_call>\n{"name": "computer_use", "arguments": {"action": "left_click", "coordinate": [047, 81]}}\n</tool_call>',
    "unknown action": 'Action: Fly.\n<tool_call>\n{"name": "computer_use", "arguments": {"action": "fly"}}\n</tool_call>',
    "keys out of order": 'Action: Click.\n<tool_call>\n{"arguments": {"action": "left_click", "coordinate": [4, 8]}, "name": "computer_use"}\n</tool_call>',
    "missing coordinate": 'Action: Click.\n<tool_call>\n{"name": "computer_use", "arguments": {"action": "left_click"}}\n</tool_call>',
    "a wheel turn past a screen": 'Action: Scroll.\n<tool_call>\n{"name": "computer_use", "arguments": {"action": "scroll", "pixels": -21}}\n</tool_call>',
    "a bad status": 'Action: End.\n<tool_call>\n{"name": "computer_use", "arguments": {"action": "terminate", "status": "done"}}\n</tool_call>',
    "a phone button in a browser": 'Action: Back.\n<tool_call>\n{"name": "mobile_use", "arguments": {"action": "system_button", "button": "Back"}}\n</tool_call>',
    "a raw line break in a string": 'Action: Type.\n<tool_call>\n{"name": "computer_use", "arguments": {"action": "type", "text": "a\nb"}}\n</tool_call>',
    "free whitespace": f"Action: Click.\n<tool_call>\n {CALL}\n</tool_call>",
}
#: Phone answers the qwen3-vl grammar must refuse.
QWEN_MOBILE_BAD = {
    "a key that is no key name": 'Action: Press.\n<tool_call>\n{"name": "mobile_use", "arguments": {"action": "key", "text": "open sesame"}}\n</tool_call>',
    "keys as computer_use writes them": 'Action: Press.\n<tool_call>\n{"name": "mobile_use", "arguments": {"action": "key", "keys": ["power"]}}\n</tool_call>',
}
JSON_BAD = {
    "compact JSON": '{"thought":"t","action":{"action":"back"}}',
    "action first": '{"action": {"action": "back"}, "thought": "t"}',
    "off the grid": '{"thought": "t", "action": {"action": "click", "x": 1001, "y": 5}}',
    "a phone action in a browser": '{"thought": "t", "action": {"action": "swipe", "x": 1, "y": 2, "x2": 3, "y2": 4}}',
}
UI_TARS_BAD = {
    "no Thought line": "Action: click(start_box='(10,10)')",
    "past the image": "Thought: t\nAction: click(start_box='(1288,10)')",
    "an unescaped quote": "Thought: t\nAction: type(content='it's')",
    "a Python expression": "Thought: t\nAction: click(start_box=str(1))",
}


def _cases() -> list[dict]:
    cases = []
    for name in ("qwen3-vl", "json", "ui-tars"):
        profile = get_profile(name)
        for kind, actions in ACTIONS.items():
            setup = profile.setup(kind)
            ctx = DecodeContext(setup, pointer=(1, 2), image=IMAGE)
            good = []
            for a in actions:
                action = action_from_dict(a).model_dump(mode="json")
                try:
                    good.append(profile.encode(action, ctx, "Do the next thing."))
                except ValueError:
                    continue  # an action this profile has no form for here (tested in test_profiles)
            bad = {"qwen3-vl": QWEN_BAD, "json": JSON_BAD, "ui-tars": UI_TARS_BAD}[name] if kind == "browser" else {}
            if (name, kind) == ("qwen3-vl", "mobile"):
                bad = QWEN_MOBILE_BAD
            cases.append(
                {
                    "name": f"{name}/{kind}",
                    "constraint": profile.constraint(setup, IMAGE),
                    "texts": good + list(bad.values()),
                    "expected": [True] * len(good) + [False] * len(bad),
                    "why": ["an encoder answer"] * len(good) + list(bad),
                }
            )
    return cases


def test_sglang_and_the_local_backend_admit_the_same_answers(xgrammar_027: str, tiny_model: Path) -> None:
    import xgrammar as xgr
    from transformers import AutoTokenizer

    cases = _cases()
    payload = [{"constraint": c["constraint"], "texts": c["texts"]} for c in cases]
    proc = subprocess.run(
        [sys.executable, "-c", SGLANG_SIDE],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([xgrammar_027, str(ROOT)])},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    sglang = json.loads(proc.stdout.strip().splitlines()[-1])
    assert sglang["version"] == "0.2.7"

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)  # the checkpoint the local backend serves
    info = xgr.TokenizerInfo.from_huggingface(tokenizer, vocab_size=151936, stop_token_ids=[151645])
    compiler = xgr.GrammarCompiler(info)
    for case, theirs in zip(cases, sglang["accepts"], strict=True):
        grammar = compile_constraint(compiler, case["constraint"])
        ours = []
        for text in case["texts"]:
            matcher = xgr.GrammarMatcher(grammar)
            ours.append(bool(matcher.accept_string(text) and matcher.is_completed()))
        for text, why, want, a, b in zip(case["texts"], case["why"], case["expected"], ours, theirs, strict=True):
            assert a == b == want, (case["name"], why, text, {"local": a, "sglang 0.2.7": b})
    assert sum(len(c["texts"]) for c in cases) > 60
