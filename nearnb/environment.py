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
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Literal

from .env_agents import AgentsMixin
from .env_base import EnvBase, RunPorts
from .env_compat import CompatMixin
from .env_data import DataMixin
from .env_files import FileAccessError, FilesMixin
from .env_tools import ToolsMixin
from .events import Message, Thread
from .streaming import StreamHandler
from .writer import ReplyWriter

if TYPE_CHECKING:
    from openai.types.chat import ChatCompletion


__all__ = ["Environment", "FileAccessError", "RunPorts", "StreamHandler"]

logger = logging.getLogger("nearnb.agent")


class Environment(AgentsMixin, DataMixin, CompatMixin, ToolsMixin, FilesMixin, EnvBase):
    """NEAR's agent environment, bound to one run of one agent."""

    # ----------------------------------------------------------------- messages

    def _list_messages(
        self,
        limit: int = 10000,
        order: Literal["asc", "desc"] = "asc",
        thread_id: str | None = None,
    ) -> list[Message]:
        self._ports.sync()
        return self._ports.store.list_messages(
            thread_id or self._runlog.thread_id, limit=limit, order=order
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
        message: str | StreamHandler | Iterable[str],
        attachments: list[Any] | None = None,
        message_type: str | None = None,
        thread_id: str | None = None,
    ) -> Message:
        """Publish an assistant message.

        A :class:`StreamHandler` is drained first; an iterator (a generator)
        or a list of strings is streamed piece by piece, like
        :meth:`stream_reply`; anything else is ``str()``-ed, as in NEAR.
        """
        return self._add_reply(message, attachments, message_type, thread_id)

    def _add_reply(
        self,
        message: str | StreamHandler | Iterable[str],
        attachments: list[Any] | None = None,
        message_type: str | None = None,
        thread_id: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> Message:
        self._runlog.check_cancelled()
        here = thread_id in (None, self._runlog.thread_id)
        if isinstance(message, StreamHandler) and here:
            return message.request_reply(attachments, message_type, metadata)
        if here and _is_text_stream(message):
            writer = self.stream_reply(message_type, attachments, metadata)
            return writer.write_all(message)
        return self._ports.sequencer.reply(
            str(message),
            thread_id=thread_id,
            attachments=attachments,
            message_type=message_type,
            metadata=metadata,
        )

    def stream_reply(
        self,
        message_type: str | None = None,
        attachments: list[Any] | None = None,
        metadata: dict[str, str] | None = None,
    ) -> ReplyWriter:
        """A reply the agent streams itself: ``with env.stream_reply() as w: w.write(...)``.

        Each non-empty ``write`` is a delta (counted, shown live when
        ``show_streaming_message`` is on); leaving the ``with`` completes the
        message; an exception keeps the partial text as ``incomplete``.
        """
        self._runlog.check_cancelled()
        return ReplyWriter(
            self._runlog,
            self._ports.sequencer,
            message_type=message_type,
            attachments=attachments,
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
        return self._ports.store.require_thread(thread_id or self._runlog.thread_id)

    # -------------------------------------------------------------- completions

    def get_model_for_inference(self, model: str = "") -> str:
        """``provider::model`` that a completion with ``model`` would use."""
        return self._ports.choice.resolve(model).label

    def completions(
        self,
        messages: list[dict[str, Any]] | str,
        model: str | list[dict[str, Any]] = "",
        stream: bool = False,
        **kwargs: Any,
    ) -> ChatCompletion:
        """A ``ChatCompletion``. With ``stream=True`` the deltas still stream to
        viewers; the completion is assembled from them. NEAR's old
        ``(model, messages)`` order still works, with a warning."""
        messages, model = self._messages_first(messages, model)
        if stream:
            return self._stream(messages, model, kwargs).completion()
        self._runlog.check_cancelled()
        choice = self._ports.choice
        resolved = choice.resolve(model)
        return resolved.provider.complete(
            list(messages), model=resolved.model, **choice.params(kwargs)
        )

    def completion(
        self,
        messages: list[dict[str, Any]] | str,
        model: str | list[dict[str, Any]] = "",
        stream: bool = False,
        **kwargs: Any,
    ) -> str | StreamHandler:
        """The reply text, or with ``stream=True`` a :class:`StreamHandler`."""
        messages, model = self._messages_first(messages, model)
        if stream:
            return self._stream(messages, model, kwargs)
        response = self.completions(messages, model, **kwargs)
        return response.choices[0].message.content or ""

    def _stream(
        self, messages: list[dict[str, Any]], model: str, kwargs: dict[str, Any]
    ) -> StreamHandler:
        self._runlog.check_cancelled()
        choice = self._ports.choice
        resolved = choice.resolve(model)
        chunks = resolved.provider.stream(
            list(messages), model=resolved.model, **choice.params(kwargs)
        )
        return StreamHandler(self._runlog, self._ports.sequencer, chunks, model=resolved.label)

    # --------------------------------------------------------------------- misc

    def mark_done(self) -> None:
        """Accepted for compatibility: a run completes when ``agent.py`` returns."""
        self._done = True

    def mark_failed(self) -> None:
        """Deprecated no-op in NEAR; raise an exception to fail a run."""

    def request_user_input(self) -> None:
        """Deprecated no-op in NEAR."""


def _is_text_stream(message: object) -> bool:
    """An iterator or iterable of pieces (a generator, a list of str), not one value.

    ``str``/``bytes`` and mappings are single values (``str()`` as before);
    anything else iterable is streamed piece by piece.
    """
    if isinstance(message, str | bytes | bytearray | Mapping):
        return False
    return isinstance(message, Iterator) or (
        isinstance(message, Iterable) and isinstance(message, list | tuple)
    )
