"""Tools of the ``env`` object: the registry, completions that call tools, tool steps.

What NEAR did, and nearnb keeps, for ``completions_and_run_tools``: a
llama-family model is first told in a system message how to write tool
calls as text; the answer's text (tool calls taken out) becomes an assistant
message; each tool's output - or ``Error: ...`` - becomes an assistant
message whose metadata carries ``tool_call_id`` and ``name`` (NEAR wrote
them with ``add_message(tool_role_name, ..., tool_call_id=..., name=...)``,
which stores role ``assistant``: so ``list_messages`` shows them as NEAR
agents saw them). Empty results (``None``, ``""``, ``[]``) wrote nothing on
NEAR and write nothing here.

What nearnb adds: the calls run as one ``tool_calls`` run step in the event
stream, so views show tools apart from the answer; the exchange (assistant
``tool_calls`` message, then one ``tool`` message per call) is appended to
``messages``, so the next completion sees the results; the llama prompt is
sent, not appended to the caller's ``messages`` (NEAR's copies piled up in
a loop).
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from .env_base import EnvBase
from .events import new_id
from .tool_text import is_llama_model, llama_tool_prompt, parse_text_tool_calls
from .tools import AttrDict, ToolOutcome, ToolRegistry, run_tool, tool_call

if TYPE_CHECKING:
    from openai.types.chat import ChatCompletion

#: The ``env`` methods NEAR registered as tools in every new environment.
STANDARD_TOOLS = ("read_file", "write_file", "request_user_input", "list_files")


class ToolsMixin(EnvBase):
    """The tool registry and the completions that call tools."""

    def get_tool_registry(self, new: bool = False) -> ToolRegistry:
        """The run's tool registry; ``new=True`` replaces it with an empty one."""
        if new:
            self._tools = ToolRegistry()
        return self._tools

    def register_standard_tools(self) -> None:
        """Offer the model NEAR's standard tools: the thread file methods and
        ``request_user_input`` (and ``query_vector_store`` where it exists).

        NEAR registered them when an environment was created; nearnb leaves
        that to the agent, so a model sees only the tools its agent chose.
        """
        for name in (*STANDARD_TOOLS, "query_vector_store"):
            method = getattr(self, name, None)
            if callable(method):
                self._tools.register_tool(method)

    def completion_and_get_tools_calls(
        self, messages: list[dict[str, Any]], model: str = "", **kwargs: Any
    ) -> SimpleNamespace:
        """``SimpleNamespace(message=<text without the calls>, tool_calls=[...] or None)``,
        without running them; calls read as ``call.function.name`` or as dicts."""
        response = self.completions(messages, model, **kwargs)
        text, calls = _tool_calls_of(response)
        content = response.choices[0].message.content
        return SimpleNamespace(
            message=text if content is not None else None, tool_calls=calls or None
        )

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
        """One completion with tools (the registry's when ``tools`` is None), then
        run the tool calls it asked for, written to the thread as NEAR did.

        ``add_responses_to_messages=False`` runs the tools without writing
        the thread or ``messages`` (the outputs are still in the run step).
        """
        tools = tools if tools is not None else self._tools.get_all_tool_definitions()
        request = list(messages)
        if tools:
            kwargs["tools"] = tools
            if is_llama_model(model or self._ports.choice.resolve(model).model):
                request.append({"role": "system", "content": llama_tool_prompt(tools)})
        response = self.completions(request, model, **kwargs)
        text, calls = _tool_calls_of(response)
        if add_responses_to_messages and text:
            self.add_reply(text)
        if not calls:
            return response
        outcomes: list[ToolOutcome] = []

        def run(name: str, arguments: str) -> str:
            outcomes.append(run_tool(self._tools, name, arguments))
            return outcomes[-1].output

        self._ports.sequencer.tool_step(calls, run)
        if add_responses_to_messages:
            for call, outcome in zip(calls, outcomes, strict=True):
                if outcome.worth_a_message:
                    self.add_message(
                        tool_role_name,
                        outcome.output,
                        tool_call_id=call.id,
                        name=call.function.name,
                    )
            messages.append({"role": agent_role_name, "content": text, "tool_calls": calls})
            messages.extend(
                {"role": tool_role_name, "tool_call_id": call.id, "content": outcome.output}
                for call, outcome in zip(calls, outcomes, strict=True)
            )
        return response

    def completion_and_run_tools(
        self,
        messages: list[dict[str, Any]],
        model: str = "",
        tools: list[dict[str, Any]] | None = None,
        **kwargs: Any,
    ) -> str | None:
        """:meth:`completions_and_run_tools`, returning the answer's raw text."""
        response = self.completions_and_run_tools(messages, model, tools, **kwargs)
        return response.choices[0].message.content


def _tool_calls_of(response: ChatCompletion) -> tuple[str, list[AttrDict]]:
    """Text and tool calls of a completion, from ``tool_calls`` or from the text."""
    message = response.choices[0].message
    text = message.content or ""
    if message.tool_calls:
        return text, [
            tool_call(call.id, call.function.name, call.function.arguments)
            for call in message.tool_calls
        ]
    text, parsed = parse_text_tool_calls(text)
    return text, [tool_call(new_id("call"), name, args) for name, args in parsed]
