"""The ``env`` object NEAR agents talk to, running inside a notebook kernel.

Method names, arguments and return shapes follow NEAR AI's
``nearai.agents.environment.Environment`` (0.1.19) so agents written for NEAR
run unchanged. Where NEAR was wrong nearnb is right on purpose, and says so:

* ``completion(..., stream=True)`` returns a :class:`StreamHandler` (NEAR
  returned a plain ``str`` although its docs promised a handler);
* per-call ``temperature`` / ``max_tokens`` override the metadata defaults
  (NEAR silently ignored them);
* streamed tool-call deltas are accumulated, not dropped;
* ``add_reply`` is synchronous, so replies are stored in order.

Everything the agent does that a viewer or the store cares about becomes an
event on the run log (layer 1) through the message sequencer (layer 2);
nothing here writes a row or renders output. Reads (``list_messages``,
``get_thread``) first wait until the store has every event emitted so far,
so an agent always reads its own writes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, Literal

from .events import Message, Thread, new_id
from .messages import MessageSequencer
from .modelchoice import ModelChoice
from .runlog import RunLog
from .store import Store
from .streaming import StreamHandler
from .tools import ToolRegistry, parse_text_tool_calls, run_tool_call

if TYPE_CHECKING:
    from openai.types.chat import ChatCompletion

    from .agents import Agent

__all__ = ["Environment", "StreamHandler", "FileAccessError"]

logger = logging.getLogger("nearnb.agent")


class FileAccessError(PermissionError):
    """An agent asked for a file outside the folders it may use."""


def _confined(base: Path, filename: str) -> Path:
    """``base / filename``, refusing absolute paths and escapes (``..``, symlinks)."""
    if not filename or Path(filename).is_absolute() or Path(filename).drive:
        raise FileAccessError(f"refused file path {filename!r}: use a path relative to the thread")
    base = base.resolve()
    target = (base / filename).resolve()
    if not target.is_relative_to(base):
        raise FileAccessError(f"refused file path {filename!r}: it leaves the thread's files")
    return target


@dataclass(frozen=True)
class RunPorts:
    """What a run lends its environment: the log, the sequencer, model choice, the store.

    ``sync`` blocks until the store holds every event emitted so far (read
    your own writes); the orchestration provides it.
    """

    log: RunLog
    sequencer: MessageSequencer
    choice: ModelChoice
    store: Store
    sync: Callable[[], None]


class Environment:
    """NEAR's agent environment, bound to one run of one agent."""

    def __init__(self, ports: RunPorts, agent: Agent, env_vars: dict[str, str] | None = None):
        self._ports = ports
        self._log = ports.log
        self._agent = agent
        self.env_vars: dict[str, str] = {**agent.env_vars, **(env_vars or {})}
        self._tools = ToolRegistry()
        self._done = False

    # ----------------------------------------------------------------- messages

    def _list_messages(
        self,
        limit: int = 10000,
        order: Literal["asc", "desc"] = "asc",
        thread_id: str | None = None,
    ) -> list[Message]:
        self._ports.sync()
        return self._ports.store.list_messages(
            thread_id or self._log.thread_id, limit=limit, order=order
        )

    def list_messages(
        self,
        thread_id: str | None = None,
        limit: int = 10000,
        order: Literal["asc", "desc"] = "asc",
    ) -> list[dict[str, Any]]:
        """Thread messages as ``{id, content, role, attachments}`` dicts.

        ``system:*`` and ``agent:*`` message types (logs, notices, intermediate
        completions) are hidden, as in NEAR.
        """
        return [
            {
                "id": m.id,
                "content": m.text,
                "role": m.role,
                "attachments": [a.model_dump() for a in m.attachments or []],
            }
            for m in self._list_messages(limit, order, thread_id)
            if not m.hidden
        ]

    def get_last_message(self, role: str = "user") -> dict[str, Any] | None:
        for message in reversed(self.list_messages()):
            if message["role"] == role:
                return message
        return None

    def add_reply(
        self,
        message: str | StreamHandler,
        attachments: list[Any] | None = None,
        message_type: str | None = None,
        thread_id: str | None = None,
    ) -> Message:
        """Store an assistant message; a :class:`StreamHandler` is drained first."""
        return self._add_reply(message, attachments, message_type, thread_id)

    def _add_reply(
        self,
        message: str | StreamHandler,
        attachments: list[Any] | None = None,
        message_type: str | None = None,
        thread_id: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> Message:
        self._log.check_cancelled()
        if isinstance(message, StreamHandler) and thread_id in (None, self._log.thread_id):
            return message.request_reply(attachments, message_type, metadata)
        return self._ports.sequencer.reply(
            str(message),
            thread_id=thread_id,
            attachments=attachments,
            message_type=message_type,
            metadata=metadata,
        )

    def add_message(
        self, role: str, message: str, attachments: list[Any] | None = None, **kwargs: Any
    ) -> Message:
        """Deprecated NEAR form: the role is forced to ``assistant`` as in NEAR;
        extra keyword arguments become message metadata."""
        message_type = kwargs.pop("message_type", None)
        metadata = {k: str(v) for k, v in kwargs.items()}
        return self._add_reply(message, attachments, message_type, metadata=metadata)

    def get_thread(self, thread_id: str | None = None) -> Thread:
        self._ports.sync()
        return self._ports.store.require_thread(thread_id or self._log.thread_id)

    # -------------------------------------------------------------- completions

    def get_model_for_inference(self, model: str = "") -> str:
        """``provider::model`` that a completion with ``model`` would use."""
        return self._ports.choice.resolve(model).label

    def completions(
        self, messages: list[dict[str, Any]], model: str = "", stream: bool = False, **kwargs: Any
    ) -> ChatCompletion:
        """A ``ChatCompletion``. With ``stream=True`` the deltas still stream to
        viewers; the completion is assembled from them."""
        if stream:
            return self._stream(messages, model, kwargs).completion()
        self._log.check_cancelled()
        choice = self._ports.choice
        resolved = choice.resolve(model)
        return resolved.provider.complete(
            list(messages), model=resolved.model, **choice.params(kwargs)
        )

    def completion(
        self, messages: list[dict[str, Any]], model: str = "", stream: bool = False, **kwargs: Any
    ) -> str | StreamHandler:
        """The reply text, or with ``stream=True`` a :class:`StreamHandler`."""
        if stream:
            return self._stream(messages, model, kwargs)
        response = self.completions(messages, model, **kwargs)
        return response.choices[0].message.content or ""

    def _stream(
        self, messages: list[dict[str, Any]], model: str, kwargs: dict[str, Any]
    ) -> StreamHandler:
        self._log.check_cancelled()
        choice = self._ports.choice
        resolved = choice.resolve(model)
        chunks = resolved.provider.stream(
            list(messages), model=resolved.model, **choice.params(kwargs)
        )
        return StreamHandler(self._log, self._ports.sequencer, chunks, model=resolved.label)

    # -------------------------------------------------------------------- tools

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

    # -------------------------------------------------------------------- files

    def _files(self) -> Path:
        return self._ports.store.thread_dir(self._log.thread_id)

    def write_file(
        self,
        filename: str,
        content: str | bytes,
        encoding: str = "utf-8",
        filetype: str = "text/plain",
        write_to_disk: bool = True,
        logging: bool = True,
    ) -> Path:
        """Write a thread file; like NEAR, note it with a hidden output-file message."""
        target = _confined(self._files(), filename)
        target.parent.mkdir(parents=True, exist_ok=True)
        data = content.encode(encoding) if isinstance(content, str) else content
        target.write_bytes(data)
        if logging:
            self.add_reply(f"Output file: {filename}", message_type="system:output_file")
        return target

    def read_file(self, filename: str, decode: str | None = "utf-8") -> str | bytes | None:
        """A thread file, else a file shipped in the agent folder; None if neither."""
        for base in (self._files(), self._agent.path):
            target = _confined(base, filename)
            if target.is_file():
                data = target.read_bytes()
                return data.decode(decode) if decode else data
        return None

    def list_files(self, path: str = ".", order: Literal["asc", "desc"] = "asc") -> list[str]:
        folder = _confined(self._files(), path)
        names = (
            sorted((p.name for p in folder.iterdir()), reverse=order == "desc")
            if folder.is_dir()
            else []
        )
        return names

    def get_agent_temp_path(self) -> Path:
        return self._files()

    # --------------------------------------------------------------- logs, misc

    def add_system_log(self, log: str, level: int = logging.INFO) -> None:
        self._log("system_log.txt", "system", log, level)

    def add_agent_log(self, log: str, level: int = logging.INFO) -> None:
        self._log("agent_log.txt", "agent", log, level)

    def _log(self, filename: str, kind: str, log: str, level: int) -> None:
        logger.log(level, "[%s] %s", kind, log)
        with (self._files() / filename).open("a", encoding="utf-8") as fh:
            fh.write(f"{logging.getLevelName(level)} {log}\n")
        if self.env_vars.get("DEBUG", "").lower() in ("1", "true", "yes"):
            self.add_reply(log, message_type=f"{kind}:log")

    def mark_done(self) -> None:
        """Accepted for compatibility: a run completes when ``agent.py`` returns."""
        self._done = True

    def mark_failed(self) -> None:
        """Deprecated no-op in NEAR; raise an exception to fail a run."""

    def request_user_input(self) -> None:
        """Deprecated no-op in NEAR."""

    def get_primary_agent(self) -> Agent:
        return self._agent

    def get_agents(self) -> list[Agent]:
        return [self._agent]

    @property
    def thread_id(self) -> str:
        return self._log.thread_id

    @property
    def run_id(self) -> str:
        return self._log.run_id


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
