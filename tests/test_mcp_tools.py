"""MCP: a real stdio MCP server (examples/mcp_server.py) started by the test, its tools called through the registry."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytest.importorskip("mcp", reason="the MCP SDK comes with the `tools` extra")

from pixelpilot.tools.mcp import MCPError, load_mcp_tools  # noqa: E402
from pixelpilot.tools.registry import ToolRegistry  # noqa: E402

SERVER = str(Path(__file__).resolve().parent.parent / "examples" / "mcp_server.py")


async def test_mcp_server_tools_through_the_registry():
    registry = ToolRegistry()
    conn = await load_mcp_tools(registry, sys.executable, [SERVER], prefix="notes.")
    try:
        assert registry.names == ["notes.word_count", "notes.read_note"] and conn.skipped == {}
        params = registry["notes.word_count"].parameters
        assert params["additionalProperties"] is False and params["required"] == ["text"]
        assert params["properties"]["text"]["pattern"].endswith("{0,}$")  # a long cap is checked on arrival
        assert registry["notes.read_note"].description.startswith("Read the note about a topic")

        count = await registry.call("notes.word_count", {"text": "the quick brown fox"})
        assert count.ok and count.info["result"] == "4"
        note = await registry.call("notes.read_note", {"topic": "lunch"})
        assert note.info["result"] == "Lunch is at 12:30 on Fridays."
        # Checked against the server's own schema before anything is sent.
        bad = await registry.call("notes.word_count", {"words": "x"})
        assert not bad.ok and "'text' is a required property" in bad.error
        wrong_type = await registry.call("notes.word_count", {"text": 5})
        assert not wrong_type.ok and "is not of type 'string'" in wrong_type.error
        # A tool that fails on the server comes back as an error for the model, not an exception.
        missing = await registry.call("notes.read_note", {"topic": "parking"})
        assert not missing.ok and missing.info["result"].startswith("error: notes.read_note:")
    finally:
        await registry.aclose()
    gone = await registry.call("notes.word_count", {"text": "a b"})
    assert not gone.ok and "not running" in gone.error


async def test_a_server_that_cannot_start_is_reported_with_its_stderr(tmp_path):
    broken = tmp_path / "broken.py"
    broken.write_text("import sys\nprint('cannot open the database', file=sys.stderr)\nsys.exit(1)\n")
    with pytest.raises(MCPError, match="cannot open the database"):
        await load_mcp_tools(ToolRegistry(), sys.executable, [str(broken)], timeout=20)
