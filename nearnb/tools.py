"""NEAR's tool registry: functions become OpenAI tool definitions, calls become results.

``register_tool(fn)`` takes a function or a bound method (``self`` is not a
parameter) and derives the JSON schema from its signature (each annotation
through pydantic, so whatever pydantic understands works; what it cannot
describe is a string, NEAR's default). Parameter descriptions come from the
docstring in any of the forms agents used: NEAR's own ``name: description``
lines after the summary line, a Google ``Args:`` section, or Sphinx
``:param name:`` fields. The registry has NEAR's methods and return shapes
(``get_all_tools()`` is the ``{name: function}`` dict).

A tool call is run by :func:`run_tool`, which turns anything going wrong -
an unknown tool, broken argument JSON, an exception in the tool - into an
error *result* the model can read: a bad tool must not crash the run.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import re
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from pydantic import TypeAdapter

_SECTION = re.compile(
    r"^(Args|Arguments|Parameters|Params|Keyword Args|Returns?|Raises|Yields?|Examples?|"
    r"Notes?|Attributes|See Also|Todo|Warnings?)\s*:?\s*$",
    re.IGNORECASE,
)
_ARGS_SECTIONS = {"args", "arguments", "parameters", "params", "keyword args"}
_PARAM_LINE = re.compile(r"^[-*]?\s*\**(\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")
_SPHINX_PARAM = re.compile(r"^:param\s+(?:[^:]*\s)?(\w+)\s*:\s*(.*)$")
_SPHINX_FIELD = re.compile(r"^:\w+")


class AttrDict(dict[str, Any]):
    """A dict whose keys read as attributes too.

    NEAR handed agents litellm tool-call objects, read both as
    ``call.function.name`` and as ``call["function"]["name"]``; this keeps
    both working and still serializes as the plain JSON the API wants.
    """

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def tool_call(call_id: str, name: str, arguments: str) -> AttrDict:
    """One ``{"id", "type": "function", "function": {"name", "arguments"}}`` tool call."""
    function = AttrDict(name=name, arguments=arguments)
    return AttrDict(id=call_id, type="function", function=function)


# ------------------------------------------------------------------ definitions


def tool_name(tool: Callable[..., Any]) -> str:
    """The name a tool is registered and called by (a partial is named after its function)."""
    name = getattr(tool, "__name__", None) or getattr(getattr(tool, "func", None), "__name__", "")
    return name or type(tool).__name__


def docstring_parts(fn: Callable[..., Any], names: set[str]) -> tuple[str, dict[str, str]]:
    """The description and the per-parameter descriptions of ``fn``'s docstring.

    ``names`` are ``fn``'s parameters: only lines naming one of them count
    as NEAR-style ``name: description`` lines, so a summary line such as
    ``Note: ...`` stays part of the description. A more indented line
    continues the parameter above it.
    """
    summary: list[str] = []
    params: dict[str, str] = {}
    section: str | None = None  # None: the summary and NEAR's free-form lines
    current: str | None = None
    current_indent = 0
    for number, line in enumerate((inspect.getdoc(fn) or "").splitlines()):
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        if not stripped or set(stripped) <= {"-", "="}:
            current = None
            if section is None and summary and summary[-1]:
                summary.append("")
            continue
        header = _SECTION.match(stripped) if number else None
        if header and (stripped.endswith(":") or header.group(1).lower() in _ARGS_SECTIONS):
            section = "args" if header.group(1).lower() in _ARGS_SECTIONS else "other"
            current = None
            continue
        param = _SPHINX_PARAM.match(stripped) or (_PARAM_LINE.match(stripped) if number else None)
        if param and param.group(1) in names and section != "other":
            section = section or "params"
            current, current_indent = param.group(1), indent
            params[current] = param.group(2).strip()
            continue
        if current is not None and indent > current_indent:
            params[current] = f"{params[current]} {stripped}".strip()
            continue
        current = None
        if _SPHINX_FIELD.match(stripped):
            section = section or "params"
        elif section is None:
            summary.append(stripped)
    return "\n".join(summary).strip(), params


def _signature(fn: Callable[..., Any]) -> inspect.Signature:
    """``fn``'s signature with string annotations resolved where they can be."""
    try:
        return inspect.signature(fn, eval_str=True)
    except Exception:  # one unresolvable annotation: resolve the others one by one
        signature = inspect.signature(fn)
    target = inspect.unwrap(getattr(fn, "__func__", getattr(fn, "func", fn)))
    namespace = getattr(target, "__globals__", {})
    params = []
    for param in signature.parameters.values():
        if isinstance(param.annotation, str):
            try:
                param = param.replace(annotation=eval(param.annotation, namespace))
            except Exception:
                param = param.replace(annotation=str)
        params.append(param)
    return signature.replace(parameters=params)


def _type_schema(annotation: Any) -> dict[str, Any]:
    if annotation is inspect.Parameter.empty:
        return {"type": "string"}  # NEAR's default for an unannotated parameter
    try:
        schema = TypeAdapter(annotation).json_schema()
    except Exception:  # a type pydantic cannot describe: the model sends a string
        return {"type": "string"}
    schema.pop("title", None)
    return schema


def _json_default(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


def tool_definition(fn: Callable[..., Any]) -> dict[str, Any]:
    """The OpenAI ``{"type": "function", "function": {...}}`` entry for ``fn``.

    A tool carrying ``__schema__`` (NEAR's MCP tools) keeps that schema as
    its parameters.
    """
    signature = _signature(fn)
    fields = {
        name: param
        for name, param in signature.parameters.items()
        if param.kind not in (param.VAR_POSITIONAL, param.VAR_KEYWORD)
    }
    summary, descriptions = docstring_parts(fn, set(fields))
    schema = getattr(fn, "__schema__", None)
    if schema is None:
        properties: dict[str, Any] = {}
        required: list[str] = []
        defs: dict[str, Any] = {}
        for name, param in fields.items():
            prop = _type_schema(param.annotation)
            defs.update(prop.pop("$defs", {}))
            if param.default is param.empty:
                required.append(name)
            elif _json_default(param.default):
                prop["default"] = param.default
            if name in descriptions:
                prop["description"] = descriptions[name]
            properties[name] = prop
        schema = {"type": "object", "properties": properties, "required": required}
        if defs:
            schema["$defs"] = defs
    return {
        "type": "function",
        "function": {"name": tool_name(fn), "description": summary, "parameters": schema},
    }


# --------------------------------------------------------------------- registry


class ToolRegistry:
    """Named tools an agent offers to the model (``env.get_tool_registry()``)."""

    def __init__(self) -> None:
        self.tools: dict[str, Callable[..., Any]] = {}

    def register_tool(self, tool: Callable[..., Any]) -> Callable[..., Any]:
        """Register ``tool`` under its name; returns it, so it works as a decorator."""
        self.tools[tool_name(tool)] = tool
        return tool

    def register_mcp_tool(
        self, mcp_tool: Any, call_tool: Callable[[str, dict[str, Any]], Awaitable[Any]]
    ) -> None:
        """Register an MCP tool (``name``, ``description``, ``inputSchema``) as NEAR did:
        calling it awaits ``call_tool(name, arguments)``."""
        name = str(mcp_tool.name)

        async def tool(**kwargs: Any) -> Any:
            try:
                return await call_tool(name, kwargs)
            except Exception as exc:
                raise RuntimeError(
                    f"Error calling tool {name} with arguments {kwargs}: {exc}"
                ) from exc

        tool.__name__ = name
        tool.__doc__ = getattr(mcp_tool, "description", None)
        tool.__schema__ = getattr(mcp_tool, "inputSchema", None) or {  # type: ignore[attr-defined]
            "type": "object",
            "properties": {},
        }
        self.tools[name] = tool

    def get_tool(self, name: str) -> Callable[..., Any] | None:
        return self.tools.get(name)

    def get_all_tools(self) -> dict[str, Callable[..., Any]]:
        """Every tool by name: NEAR's shape (the registry's own dict)."""
        return self.tools

    def get_tool_definition(self, name: str) -> dict[str, Any] | None:
        tool = self.tools.get(name)
        return tool_definition(tool) if tool else None

    def get_all_tool_definitions(self) -> list[dict[str, Any]]:
        return [tool_definition(tool) for tool in self.tools.values()]

    def call_tool(self, name: str, **kwargs: Any) -> Any:
        """Call a tool by name; an unknown name raises NEAR's ``ValueError``."""
        tool = self.tools.get(name)
        if tool is None:
            raise ValueError(f"Tool '{name}' not found; registered: {sorted(self.tools)}")
        return tool(**kwargs)


# ------------------------------------------------------------------------ calls


def parse_arguments(arguments: str | dict[str, Any] | None) -> dict[str, Any]:
    """A tool call's arguments as keyword arguments.

    Empty means none. Like NEAR, one stray closing character after the
    object (``{...}}`` or ``{...}"``, a common slip of small models) is
    forgiven.
    """
    if isinstance(arguments, dict):
        return arguments
    text = (arguments or "").strip()
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        if not text.endswith(("}}", '}"')):
            raise
        value = json.loads(text[:-1])
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError("tool arguments must be a JSON object")
    return value


@dataclass(frozen=True)
class ToolOutcome:
    """What one tool call gave: the text for the model, the value, or the error."""

    output: str
    value: Any = None
    error: BaseException | None = None

    @property
    def worth_a_message(self) -> bool:
        """NEAR wrote a thread message for an error or a non-empty result only."""
        if self.error is not None:
            return True
        try:
            return bool(self.value)
        except Exception:  # e.g. an array, whose truth is ambiguous: it is a result
            return True


def _resolve(value: Any) -> Any:
    """The value of an awaitable result (async tools, MCP tools), else ``value``."""
    if not inspect.isawaitable(value):
        return value

    async def wait() -> Any:
        return await value

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(wait())
    # A loop already runs on this thread (a notebook kernel): wait on another one.
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, wait()).result()


def run_tool(registry: ToolRegistry, name: str, arguments: str | dict[str, Any]) -> ToolOutcome:
    """Run one tool call. Errors come back as ``"Error: <Type>: <message>"`` outputs."""
    try:
        value = _resolve(registry.call_tool(name, **parse_arguments(arguments)))
    except Exception as exc:  # the model gets the error; the run survives
        return ToolOutcome(f"Error: {type(exc).__name__}: {exc}", error=exc)
    if isinstance(value, str):
        return ToolOutcome(value, value)
    try:
        return ToolOutcome(json.dumps(value), value)
    except (TypeError, ValueError):
        return ToolOutcome(str(value), value)


def run_tool_call(registry: ToolRegistry, name: str, arguments: str) -> str:
    """Run one tool call and return its output as text for the model."""
    return run_tool(registry, name, arguments).output
