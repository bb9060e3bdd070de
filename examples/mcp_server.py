"""A small MCP server over stdio, for the README and the tests.

    python examples/mcp_server.py        # speaks MCP on stdin/stdout

Load its tools with ``pixelpilot.tools.mcp.load_mcp_tools(registry, sys.executable, [this file])``.
"""

from __future__ import annotations

from mcp.server.mcpserver import MCPServer

server = MCPServer("pixelpilot-example")

NOTES = {"wifi": "The office Wi-Fi password is on the fridge.", "lunch": "Lunch is at 12:30 on Fridays."}


@server.tool()
def word_count(text: str) -> int:
    """Count the words in a text."""
    return len(text.split())


@server.tool()
def read_note(topic: str) -> str:
    """Read the note about a topic (wifi or lunch)."""
    if topic not in NOTES:
        raise ValueError(f"no note about {topic!r}; topics: {', '.join(NOTES)}")
    return NOTES[topic]


if __name__ == "__main__":
    server.run()
