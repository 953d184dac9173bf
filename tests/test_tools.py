"""Tool registry: schemas from signatures and every docstring form, errors as results,
NEAR's registry methods, tool calls written as text."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any, Literal

import pytest
from pydantic import BaseModel

from nearnb.tool_text import is_llama_model, llama_tool_prompt, parse_text_tool_calls
from nearnb.tools import (
    ToolRegistry,
    parse_arguments,
    run_tool,
    run_tool_call,
    tool_call,
    tool_definition,
)


def add(a: int, b: int = 2) -> int:
    """Add two numbers.

    Args:
        a: the first number
        b (int): the second number,
            added to the first
    """
    return a + b


def weather(location: str, unit: Literal["c", "f"] = "c") -> str:
    """Get the current weather in a given location.
    location: The city and state, e.g. San Francisco, CA
    unit (str): c or f
    """
    return f"sunny in {location}"


def search(query, limit: int = 3):
    """Search the notes.

    Note: slow on big folders.

    :param query: words to look for
    :param int limit: how many hits
    :returns: the hits
    """
    return [query] * limit


def props(fn: Any) -> dict[str, Any]:
    return tool_definition(fn)["function"]["parameters"]["properties"]


def test_schema_from_signature_and_google_docstring() -> None:
    spec = tool_definition(add)
    assert spec["type"] == "function"
    fn = spec["function"]
    assert fn["name"] == "add" and fn["description"] == "Add two numbers."
    params = fn["parameters"]
    assert params["type"] == "object" and params["required"] == ["a"]
    assert params["properties"]["a"] == {"type": "integer", "description": "the first number"}
    assert params["properties"]["b"] == {
        "type": "integer",
        "default": 2,
        "description": "the second number, added to the first",
    }


def test_near_style_docstring_lines_describe_parameters() -> None:
    fn = tool_definition(weather)["function"]
    assert fn["description"] == "Get the current weather in a given location."
    assert fn["parameters"]["properties"] == {
        "location": {"type": "string", "description": "The city and state, e.g. San Francisco, CA"},
        "unit": {"type": "string", "enum": ["c", "f"], "default": "c", "description": "c or f"},
    }


def test_sphinx_fields_and_a_colon_in_the_summary() -> None:
    fn = tool_definition(search)["function"]
    assert fn["description"] == "Search the notes.\n\nNote: slow on big folders."
    assert fn["parameters"]["required"] == ["query"]
    assert props(search)["query"] == {"type": "string", "description": "words to look for"}
    assert props(search)["limit"]["description"] == "how many hits"


class Notes:
    """A tool provider as public NEAR agents write them: methods registered bound."""

    def __init__(self) -> None:
        self.saved: list[str] = []

    def save(self, text: str, tags: list[str] | None = None) -> str:
        """Save a note.

        text: the note
        tags: labels for it
        """
        self.saved.append(text)
        return f"saved {len(self.saved)}"


class Place(BaseModel):
    city: str


def test_bound_methods_exclude_self_and_types_pydantic_knows_are_described() -> None:
    notes = Notes()
    fn = tool_definition(notes.save)["function"]
    assert fn["name"] == "save" and list(fn["parameters"]["properties"]) == ["text", "tags"]
    assert fn["parameters"]["properties"]["tags"]["description"] == "labels for it"

    def visit(place: Place, stops: list[Place], when: Notes | None = None) -> str:
        """Visit a place."""
        return place.city

    params = tool_definition(visit)["function"]["parameters"]
    assert params["properties"]["place"]["required"] == ["city"]
    assert params["properties"]["stops"]["items"] == {"$ref": "#/$defs/Place"}
    assert params["$defs"]["Place"]["required"] == ["city"]
    assert params["properties"]["when"] == {"type": "string", "default": None}  # unknown type


def test_string_annotations_resolve_and_unresolvable_ones_become_strings() -> None:
    def lookup(n: int, thing: NoSuchType) -> str:  # noqa: F821 (module uses __future__)
        """Look up."""
        return ""

    assert props(lookup) == {"n": {"type": "integer"}, "thing": {"type": "string"}}


def test_registry_has_near_methods_and_shapes() -> None:
    registry = ToolRegistry()
    assert registry.register_tool(add) is add  # usable as a decorator
    notes = Notes()
    registry.register_tool(notes.save)
    assert registry.get_all_tools() == {"add": add, "save": notes.save}
    assert registry.get_all_tools() is registry.tools  # NEAR returned the live dict
    assert registry.get_tool("save") == notes.save and registry.get_tool("nope") is None
    assert registry.get_tool_definition("nope") is None
    assert registry.call_tool("save", text="hi") == "saved 1" and notes.saved == ["hi"]
    with pytest.raises(ValueError, match="Tool 'nope' not found"):
        registry.call_tool("nope")
    assert [d["function"]["name"] for d in registry.get_all_tool_definitions()] == ["add", "save"]


def test_registry_runs_tools_and_turns_errors_into_results() -> None:
    registry = ToolRegistry()
    registry.register_tool(add)

    @registry.register_tool
    def explode() -> str:
        """Always fails."""
        raise RuntimeError("kaboom")

    assert run_tool_call(registry, "add", json.dumps({"a": 1, "b": 5})) == "6"
    assert run_tool_call(registry, "explode", "{}") == "Error: RuntimeError: kaboom"
    assert run_tool_call(registry, "nope", "{}").startswith("Error: ValueError: Tool 'nope'")
    assert run_tool_call(registry, "add", "{not json").startswith("Error: JSONDecodeError")
    assert run_tool_call(registry, "add", '{"a": 1}}') == "3"  # NEAR forgave a stray brace
    assert run_tool_call(registry, "add", "[1]").startswith("Error: ValueError")


def test_outcomes_say_whether_near_would_have_written_a_message() -> None:
    registry = ToolRegistry()
    for fn in (lambda: None, lambda: "", list, lambda: {"k": 1}, lambda: 1 / 0):
        registry.tools[f"t{len(registry.tools)}"] = fn
    outcomes = [run_tool(registry, name, "") for name in registry.tools]
    assert [o.output for o in outcomes[:4]] == ["null", "", "[]", '{"k": 1}']
    assert [o.worth_a_message for o in outcomes] == [False, False, False, True, True]
    assert isinstance(outcomes[4].error, ZeroDivisionError)


def test_async_and_mcp_tools_are_awaited() -> None:
    registry = ToolRegistry()
    seen: list[tuple[str, dict[str, Any]]] = []

    async def call(name: str, arguments: dict[str, Any]) -> str:
        seen.append((name, arguments))
        return "pong"

    schema = {"type": "object", "properties": {"x": {"type": "integer"}}, "required": ["x"]}
    mcp = SimpleNamespace(name="ping", description="Ping the server.", inputSchema=schema)
    registry.register_mcp_tool(mcp, call)
    definition = registry.get_tool_definition("ping")
    assert definition is not None
    assert definition["function"] == {
        "name": "ping",
        "description": "Ping the server.",
        "parameters": schema,
    }
    assert run_tool_call(registry, "ping", '{"x": 1}') == "pong"
    assert seen == [("ping", {"x": 1})]


def test_arguments_parse_like_near() -> None:
    assert parse_arguments("") == {} and parse_arguments(None) == {}
    assert parse_arguments({"a": 1}) == {"a": 1}
    assert parse_arguments('{"a": 1}"') == {"a": 1}
    with pytest.raises(json.JSONDecodeError):
        parse_arguments('{"a": ')


def test_tool_calls_read_as_attributes_and_as_dicts() -> None:
    call = tool_call("call_1", "add", '{"a": 1}')
    assert call.function.name == call["function"]["name"] == "add"
    assert json.loads(json.dumps(call)) == {
        "id": "call_1",
        "type": "function",
        "function": {"name": "add", "arguments": '{"a": 1}'},
    }
    with pytest.raises(AttributeError):
        _ = call.nope


def test_text_tool_calls_are_parsed() -> None:
    text = 'Let me add. <tool_call>{"name": "add", "arguments": {"a": 1}}</tool_call>'
    rest, calls = parse_text_tool_calls(text)
    assert rest == "Let me add." and calls == [("add", '{"a": 1}')]
    rest, calls = parse_text_tool_calls('<function=add>{"a": 2}</function>')
    assert rest == "" and calls == [("add", '{"a": 2}')]
    assert parse_text_tool_calls("no calls here") == ("no calls here", [])


def test_llama_calls_as_near_read_them() -> None:
    # several calls, one per line, the closing tag forgotten on the first
    text = (
        'Checking.\n<function=add>{"a": 1, "b": 2}\n'
        '<function=weather>{"location": "Oslo"}</function>'
    )
    rest, calls = parse_text_tool_calls(text)
    assert rest == "Checking." and calls == [
        ("add", '{"a": 1, "b": 2}'),
        ("weather", '{"location": "Oslo"}'),
    ]
    # arguments over several lines, closed; a call without arguments; text after
    rest, calls = parse_text_tool_calls('<function=add>{\n  "a": 1\n}</function> done')
    assert (rest, calls) == ("done", [("add", '{\n  "a": 1\n}')])
    assert parse_text_tool_calls("<function=now></function>") == ("", [("now", "{}")])
    # not JSON: the line is the arguments, and the tool will report the error
    assert parse_text_tool_calls("<function=add>a=1\nbye")[1] == [("add", "a=1")]


def test_the_llama_prompt_lists_the_tools_and_the_format() -> None:
    tools = [tool_definition(add)]
    prompt = llama_tool_prompt(tools)
    assert json.dumps(tools) in prompt
    assert '<function=example_function_name>{"example_name": "example_value"}</function>' in prompt
    assert is_llama_model("llama-v3p1-70b-instruct") and is_llama_model("Meta-Llama-3.1-8B")
    assert not is_llama_model("gpt-4o-mini") and not is_llama_model("smollm2")
