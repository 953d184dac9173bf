"""Tools of the ``env`` object: the registry, completions that call tools, tool steps."""

from __future__ import annotations

from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from .env_base import EnvBase
from .events import new_id
from .tools import ToolRegistry, parse_text_tool_calls, run_tool_call

if TYPE_CHECKING:
    from openai.types.chat import ChatCompletion


class ToolsMixin(EnvBase):
    """The tool registry and the completions that call tools."""

    def get_tool_registry(self, new: bool = False) -> ToolRegistry:
        if new:
            self._tools = ToolRegistry()
        return self._tools

    def completion_and_get_tools_calls(
        self, messages: list[dict[str, Any]], model: str = "", **kwargs: Any
    ) -> SimpleNamespace:
        """``SimpleNamespace(message=<text>, tool_calls=[...])`` without running them."""
        response = self.completions(messages, model, **kwargs)
        text, calls = _tool_calls_of(response)
        return SimpleNamespace(message=text, tool_calls=calls)

    def completions_and_run_tools(
        self,
        messages: list[dict[str, Any]],
        model: str = "",
        tools: list[dict[str, Any]] | None = None,
        add_responses_to_messages: bool = True,
        agent_role_name: str = "assistant",
        tool_role_name: str = "tool",
        **kwargs: Any,
    ) -> ChatCompletion:
        """One completion with tools, then run the tool calls it asked for.

        Each call is a ``tool_calls`` run step in the event stream (created,
        then completed with its output), so views show tools apart from the
        answer. A tool that raises yields an ``"Error: ..."`` output. With
        ``add_responses_to_messages`` the assistant text becomes a reply and the
        tool exchange is appended to ``messages`` (so the next completion
        sees the results, errors included).
        """
        tools = tools if tools is not None else self._tools.get_all_tool_definitions()
        if tools:
            kwargs["tools"] = tools
        response = self.completions(messages, model, **kwargs)
        text, calls = _tool_calls_of(response)
        if add_responses_to_messages and text:
            self.add_reply(text)
        if not calls:
            return response
        outputs = self._ports.sequencer.tool_step(
            calls, lambda name, args: run_tool_call(self._tools, name, args)
        )
        if add_responses_to_messages:
            messages.append({"role": agent_role_name, "content": text or "", "tool_calls": calls})
            for call, output in zip(calls, outputs, strict=True):
                messages.append(
                    {"role": tool_role_name, "tool_call_id": call["id"], "content": output}
                )
        return response

    def completion_and_run_tools(
        self,
        messages: list[dict[str, Any]],
        model: str = "",
        tools: list[dict[str, Any]] | None = None,
        **kwargs: Any,
    ) -> str | None:
        response = self.completions_and_run_tools(messages, model, tools, **kwargs)
        return response.choices[0].message.content


def _tool_calls_of(response: ChatCompletion) -> tuple[str, list[dict[str, Any]]]:
    """Text and tool calls of a completion, from ``tool_calls`` or from text tags."""
    message = response.choices[0].message
    text = message.content or ""
    if message.tool_calls:
        calls = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.function.name, "arguments": call.function.arguments},
            }
            for call in message.tool_calls
        ]
        return text, calls
    text, parsed = parse_text_tool_calls(text)
    calls = [
        {"id": new_id("call"), "type": "function", "function": {"name": n, "arguments": a}}
        for n, a in parsed
    ]
    return text, calls
