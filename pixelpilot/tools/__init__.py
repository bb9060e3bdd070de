"""The tool registry and the built-in tools: calculator, sandboxed code, search, MCP servers."""

from .calculator import Calculator, CalculatorError, calculate, calculator_tool
from .code import RunResult, Sandbox, SandboxLimits, SandboxUnavailable, code_tool
from .mcp import MCPConnection, MCPError, load_mcp_tools
from .registry import Tool, ToolError, ToolRegistry, ToolSchemaError, constrained_schema, function_tool, tool
from .search import LocalIndex, SearchBackend, SearchError, SearchResult, SearxngSearch, search_tool

__all__ = [
    "Calculator",
    "CalculatorError",
    "LocalIndex",
    "MCPConnection",
    "MCPError",
    "RunResult",
    "Sandbox",
    "SandboxLimits",
    "SandboxUnavailable",
    "SearchBackend",
    "SearchError",
    "SearchResult",
    "SearxngSearch",
    "Tool",
    "ToolError",
    "ToolRegistry",
    "ToolSchemaError",
    "calculate",
    "calculator_tool",
    "code_tool",
    "constrained_schema",
    "function_tool",
    "load_mcp_tools",
    "search_tool",
    "tool",
]
