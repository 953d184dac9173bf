"""NEAR's tool registry: functions become OpenAI tool definitions.

``register_tool(fn)`` derives the JSON schema from the signature (through
pydantic, so any annotation pydantic understands works) and the parameter
descriptions from a Google-style ``Args:`` docstring section. Tool calls
parsed from a completion are run by :func:`run_tool_call`, which turns an
exception in the tool into an error *result* for the model — a bad tool must
not crash the run.
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Callable
from typing import Any

from pydantic import create_model

_ARGS_SECTION = re.compile(r"^\s*(Args|Arguments|Parameters):\s*$", re.MULTILINE)
_ARG_LINE = re.compile(r"^\s+(\w+)\s*(?:\([^)]*\))?\s*:\s*(.+)$")


def _docstring_parts(fn: Callable[..., Any]) -> tuple[str, dict[str, str]]:
    doc = inspect.getdoc(fn) or ""
    match = _ARGS_SECTION.search(doc)
    summary = (doc[: match.start()] if match else doc).strip()
    params: dict[str, str] = {}
    if match:
        for line in doc[match.end() :].splitlines():
            if line.strip() and not line.startswith((" ", "\t")):
                break  # next section
            arg = _ARG_LINE.match(line)
            if arg:
                params[arg.group(1)] = arg.group(2).strip()
    return summary, params


def tool_definition(fn: Callable[..., Any]) -> dict[str, Any]:
    """The OpenAI ``{"type": "function", "function": {...}}`` entry for ``fn``."""
    summary, descriptions = _docstring_parts(fn)
    fields: dict[str, Any] = {}
    for name, param in inspect.signature(fn).parameters.items():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        annotation = param.annotation if param.annotation is not param.empty else str
        default = param.default if param.default is not param.empty else ...
        fields[name] = (annotation, default)
    schema = create_model(f"{fn.__name__}_params", **fields).model_json_schema()
    schema.pop("title", None)
    for name, prop in schema.get("properties", {}).items():
        prop.pop("title", None)
        if name in descriptions:
            prop["description"] = descriptions[name]
    return {
        "type": "function",
        "function": {"name": fn.__name__, "description": summary, "parameters": schema},
    }


class ToolRegistry:
    """Named tools an agent offers to the model (``env.get_tool_registry()``)."""

    def __init__(self) -> None:
        self.tools: dict[str, Callable[..., Any]] = {}

    def register_tool(self, tool: Callable[..., Any]) -> Callable[..., Any]:
        """Register ``tool`` under its ``__name__``; usable as a decorator."""
        self.tools[tool.__name__] = tool
        return tool

    def get_tool(self, name: str) -> Callable[..., Any] | None:
        return self.tools.get(name)

    def get_all_tools(self) -> list[Callable[..., Any]]:
        return list(self.tools.values())

    def get_tool_definition(self, name: str) -> dict[str, Any] | None:
        tool = self.tools.get(name)
        return tool_definition(tool) if tool else None

    def get_all_tool_definitions(self) -> list[dict[str, Any]]:
        return [tool_definition(tool) for tool in self.tools.values()]

    def call_tool(self, name: str, **kwargs: Any) -> Any:
        tool = self.tools.get(name)
        if tool is None:
            raise KeyError(f"no tool named {name!r}; registered: {sorted(self.tools)}")
        return tool(**kwargs)


def run_tool_call(registry: ToolRegistry, name: str, arguments: str) -> str:
    """Run one tool call and return its output as text for the model.

    Unknown tools, malformed argument JSON and exceptions raised by the tool
    all come back as ``"Error: ..."`` strings: the model can react to them and
    the run goes on.
    """
    try:
        args = json.loads(arguments) if arguments.strip() else {}
        if not isinstance(args, dict):
            raise ValueError("tool arguments must be a JSON object")
        result = registry.call_tool(name, **args)
    except Exception as exc:  # the model gets the error; the run survives
        return f"Error: {type(exc).__name__}: {exc}"
    if isinstance(result, str):
        return result
    try:
        return json.dumps(result)
    except TypeError:
        return str(result)


_TOOL_CALL_TAG = re.compile(r"<tool_call>\s*(.*?)\s*</tool_call>", re.DOTALL)
_FUNCTION_TAG = re.compile(r"<function=([\w.-]+)>\s*(.*?)\s*</function>", re.DOTALL)


def parse_text_tool_calls(text: str) -> tuple[str, list[tuple[str, str]]]:
    """Tool calls some models write as text instead of ``tool_calls``.

    Understands ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>``
    (Hermes/Qwen/SmolLM style, also a JSON list) and Llama's
    ``<function=name>{...}</function>``. Returns the text with the calls
    removed and ``(name, arguments_json)`` pairs.
    """
    calls: list[tuple[str, str]] = []
    for body in _TOOL_CALL_TAG.findall(text):
        try:
            parsed = json.loads(body)
        except json.JSONDecodeError:
            continue
        for item in parsed if isinstance(parsed, list) else [parsed]:
            if isinstance(item, dict) and "name" in item:
                args = item.get("arguments", item.get("parameters", {}))
                calls.append(
                    (str(item["name"]), args if isinstance(args, str) else json.dumps(args))
                )
    for name, body in _FUNCTION_TAG.findall(text):
        calls.append((name, body or "{}"))
    rest = _FUNCTION_TAG.sub("", _TOOL_CALL_TAG.sub("", text)).strip()
    return rest, calls
