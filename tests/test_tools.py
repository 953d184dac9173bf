"""Tool registry: schemas from signatures, errors as results, text tool calls."""

from __future__ import annotations

import json

from nearnb.tools import ToolRegistry, parse_text_tool_calls, run_tool_call, tool_definition


def add(a: int, b: int = 2) -> int:
    """Add two numbers.

    Args:
        a: the first number
        b (int): the second number
    """
    return a + b


def test_schema_from_signature_and_docstring() -> None:
    spec = tool_definition(add)
    assert spec["type"] == "function"
    fn = spec["function"]
    assert fn["name"] == "add" and fn["description"] == "Add two numbers."
    params = fn["parameters"]
    assert params["required"] == ["a"]
    assert params["properties"]["a"] == {"type": "integer", "description": "the first number"}
    assert params["properties"]["b"]["default"] == 2


def test_registry_runs_tools_and_turns_errors_into_results() -> None:
    registry = ToolRegistry()
    registry.register_tool(add)

    @registry.register_tool
    def explode() -> str:
        """Always fails."""
        raise RuntimeError("kaboom")

    assert [d["function"]["name"] for d in registry.get_all_tool_definitions()] == [
        "add",
        "explode",
    ]
    assert run_tool_call(registry, "add", json.dumps({"a": 1, "b": 5})) == "6"
    assert run_tool_call(registry, "explode", "{}") == "Error: RuntimeError: kaboom"
    assert run_tool_call(registry, "nope", "{}").startswith("Error: KeyError")
    assert run_tool_call(registry, "add", "{not json").startswith("Error: JSONDecodeError")


def test_text_tool_calls_are_parsed() -> None:
    text = 'Let me add. <tool_call>{"name": "add", "arguments": {"a": 1}}</tool_call>'
    rest, calls = parse_text_tool_calls(text)
    assert rest == "Let me add." and calls == [("add", '{"a": 1}')]
    rest, calls = parse_text_tool_calls('<function=add>{"a": 2}</function>')
    assert rest == "" and calls == [("add", '{"a": 2}')]
    assert parse_text_tool_calls("no calls here") == ("no calls here", [])
