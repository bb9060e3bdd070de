"""The tool registry: schemas from type hints, validation, timeouts, errors as text, constrained output."""

from __future__ import annotations

import asyncio
import json
import re
import time
from typing import Annotated, Literal

import jsonschema
import pytest
from pydantic import AnyUrl, BaseModel, Field

from pixelpilot import action_schema, parse_output
from pixelpilot.tools.calculator import calculator_tool
from pixelpilot.tools.registry import ToolError, ToolRegistry, ToolSchemaError, constrained_schema, tool


class Point(BaseModel):
    x: int
    label: Annotated[str, Field(max_length=12)]


@tool
def area(width: float, height: float, unit: Literal["m", "cm"] = "m") -> str:
    """Area of a rectangle.

    Args:
        width: the width
        height: the height,
            in the same unit
        unit: metres or centimetres
    """
    return f"{width * height:g} {unit}²"


def test_schema_from_hints_and_docstring():
    assert area.name == "area"
    assert area.description == "Area of a rectangle."
    p = area.parameters
    assert p["required"] == ["width", "height"]
    assert p["additionalProperties"] is False
    assert p["properties"]["height"]["description"] == "the height, in the same unit"
    assert p["properties"]["unit"]["enum"] == ["m", "cm"]
    assert area(2, 3) == "6 m²"  # still a plain function


def _walk(node):
    if isinstance(node, dict):
        yield node
        for v in node.values():
            yield from _walk(v)
    elif isinstance(node, list):
        for v in node:
            yield from _walk(v)


def test_constrained_schema_is_xgrammar_friendly():
    def place(
        points: list[Point], note: str | None = None, origin: Point | None = None, link: AnyUrl | None = None
    ) -> str:
        """Place points."""
        return "ok"

    registry = ToolRegistry()
    params = registry.add(place).parameters
    text = json.dumps(params)
    assert "$ref" not in text and "$defs" not in text and "maxLength" not in text and "format" not in text
    for node in _walk(params):
        if node.get("type") == "object":
            assert node["additionalProperties"] is False
        if node.get("type") == "string":
            assert re.fullmatch(r"\^\(.*\)\{\d+,\d*\}\$", node["pattern"])  # long caps: checked on arrival
    label = params["properties"]["points"]["items"]["properties"]["label"]
    assert label["pattern"].endswith("{0,12}$")
    # The pattern is over the JSON text: 12 characters pass, 13 do not, escapes count as one.
    jsonschema.validate({"points": [{"x": 1, "label": "a" * 12}]}, params)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"points": [{"x": 1, "label": "a" * 13}]}, params)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"points": [], "extra": 1}, params)


def test_recursive_schema_is_refused_clearly():
    schema = {
        "$defs": {"Node": {"type": "object", "properties": {"next": {"$ref": "#/$defs/Node"}}}},
        "$ref": "#/$defs/Node",
    }
    with pytest.raises(ToolSchemaError, match="recursive"):
        constrained_schema(schema, where="tree")


def test_action_schema_accepts_tool_calls_and_rejects_bad_ones():
    registry = ToolRegistry([calculator_tool(), area])
    schema = action_schema("browser", tools=registry.schemas())
    good = {
        "thought": "compute",
        "action": {"action": "tool", "name": "area", "arguments": {"width": 2, "height": 3.5}},
    }
    jsonschema.validate(good, schema)
    for bad in (
        {"name": "area", "arguments": {"width": 2}},  # missing argument
        {"name": "area", "arguments": {"width": 2, "height": 1, "depth": 4}},  # unknown one
        {"name": "nope", "arguments": {}},
    ):  # unknown tool
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate({"thought": "", "action": {"action": "tool", **bad}}, schema)
    # A cap longer than the grammar holds (GRAMMAR_BOUND_MAX) is the tool's to check on arrival.
    long = registry.call_sync("calculator", {"expression": "1" * 1001})
    assert not long.ok and "1000" in long.error
    # What constrained output produces parses into the Tool action the loop routes.
    parsed = parse_output(json.dumps(good))
    assert parsed.action.action == "tool" and parsed.action.arguments == {"width": 2, "height": 3.5}


def test_xgrammar_compiles_and_enforces_tool_schemas(tiny_model):
    xgr = pytest.importorskip("xgrammar", reason="xgrammar comes with the `local` extra")
    from transformers import AutoTokenizer
    from xgrammar.testing import _is_grammar_accept_string

    registry = ToolRegistry([calculator_tool(), area])
    # The whole answer schema compiles with a real tokenizer, as the server compiles it.
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    compiler = xgr.GrammarCompiler(xgr.TokenizerInfo.from_huggingface(tokenizer, vocab_size=len(tokenizer)))
    compiler.compile_json_schema(
        json.dumps(action_schema("browser", tools=registry.schemas())), any_whitespace=False, separators=(",", ":")
    )
    # Only the tool variants: the built-in actions' long text fields take xgrammar many seconds.
    schema = action_schema("browser", actions=(), tools=registry.schemas(), thought=False)
    grammar = xgr.Grammar.from_json_schema(json.dumps(schema), any_whitespace=False)

    def accepts(answer: dict) -> bool:  # xgrammar's default separators are ", " and ": "
        return _is_grammar_accept_string(grammar, json.dumps(answer), require_termination=False)

    call = {"action": "tool", "name": "calculator", "arguments": {"expression": "(1 + 2) * 3"}}
    assert accepts(call)
    # xgrammar 0.2.8 applies a pattern to the value and emits no escapes: no quote inside a string.
    assert not accepts({**call, "arguments": {"expression": '(1 + 2) * "3"'}})
    assert accepts({"action": "tool", "name": "area", "arguments": {"width": 1.5, "height": 2}})
    assert not accepts({**call, "arguments": {"expr": "1"}})
    assert not accepts({**call, "name": "calc"})
    assert accepts({**call, "arguments": {"expression": "1" * 1001}})  # the tool refuses it on arrival


async def test_call_results_and_errors_are_text():
    registry = ToolRegistry([area])

    @registry.tool(name="boom")
    def explode(reason: str) -> str:
        """Always fails."""
        raise RuntimeError(reason)

    @registry.tool
    def refuse() -> str:
        """Fails politely."""
        raise ToolError("the vault is closed")

    @registry.tool
    async def structured(n: int) -> dict:
        """Returns data."""
        return {"n": n, "squares": [i * i for i in range(n)]}

    ok = await registry.call("area", {"width": 2, "height": "4"})  # "4" is coerced like JSON numbers
    assert ok.ok and ok.info["result"] == "8 m²" and ok.info["tool"] == "area"
    assert json.loads((await registry.call("structured", {"n": 3})).info["result"]) == {"n": 3, "squares": [0, 1, 4]}

    bad = await registry.call("area", {"width": "wide"})
    assert not bad.ok
    assert "width" in bad.error and "height" in bad.error and "Field required" in bad.error
    assert bad.info["result"].startswith("error: ")
    extra = await registry.call("area", {"width": 1, "height": 1, "depth": 2})
    assert "depth" in extra.error and "not permitted" in extra.error
    unknown = await registry.call("volume", {})
    assert "unknown tool 'volume'" in unknown.error and "area" in unknown.error
    crash = await registry.call("boom", {"reason": "disk on fire"})
    assert crash.error == "boom failed: RuntimeError: disk on fire"
    polite = await registry.call("refuse", {})
    assert polite.error == "refuse: the vault is closed"
    assert registry.stats["area"].calls == 3 and registry.stats["area"].errors == 2


async def test_timeouts_sync_and_async():
    registry = ToolRegistry(timeout=0.3)

    @registry.tool
    async def slow_async() -> str:
        """Sleeps."""
        await asyncio.sleep(30)
        return "late"

    @registry.tool(timeout=0.2)
    def slow_sync() -> str:
        """Blocks."""
        time.sleep(1)
        return "late"

    t0 = time.monotonic()
    a = await registry.call("slow_async", {})
    b = await registry.call("slow_sync", {})
    assert time.monotonic() - t0 < 1.5
    assert a.error == "slow_async: timed out after 0.3 s"
    assert b.error == "slow_sync: timed out after 0.2 s"


async def test_long_results_are_cut():
    registry = ToolRegistry(max_result_chars=100)

    @registry.tool
    def big() -> str:
        """Lots of text."""
        return "x" * 5000

    out = await registry.call("big", {})
    assert out.info["result"].startswith("x" * 100) and "4900 more characters" in out.info["result"]


def test_bad_definitions_are_refused_clearly():
    registry = ToolRegistry([area])
    with pytest.raises(ValueError, match="already registered"):
        registry.add(area)

    def untyped(a) -> str:
        return a

    with pytest.raises(TypeError, match="parameter 'a' needs a type hint"):
        registry.add(untyped)

    def star(*args: int) -> int:
        return 0

    with pytest.raises(TypeError, match="name every parameter"):
        registry.add(star)
    with pytest.raises(ValueError, match="not allowed"):
        registry.add(area, name="has space")


def test_call_sync_and_describe():
    registry = ToolRegistry([area])
    assert registry.call_sync("area", {"width": 1, "height": 2, "unit": "cm"}).info["result"] == "2 cm²"
    assert registry.describe().startswith("- area: Area of a rectangle.\n  arguments: {")


def test_parameters_may_shadow_basemodel_names():
    registry = ToolRegistry()

    @registry.tool
    def dump(json: str, schema: int = 1) -> str:
        """Parameters named like BaseModel's attributes."""
        return f"{json}:{schema}"

    assert list(registry["dump"].parameters["properties"]) == ["json", "schema"]
    assert registry.call_sync("dump", {"json": "a", "schema": 2}).info["result"] == "a:2"
