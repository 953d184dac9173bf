"""``StreamHandler``: what NEAR's docs promised ``completion(stream=True)`` returns.

Iterating a handler yields openai ``ChatCompletionChunk`` objects
(``chunk.model_dump()`` works). While it is consumed the run emits
``thread.message.created`` before the first text, one
``thread.message.delta`` per non-empty content chunk, and finally
``thread.message.completed`` with the full Message. It may be partly iterated
and then passed to ``env.add_reply``, which drains the rest.

When is the message "completed", and is it the answer? Only the agent knows
whether a streamed completion is user-facing (it calls ``add_reply``) or
intermediate (it does not). So completion is settled at the first of:
``add_reply(handler)`` (a reply), or the next message / the end of the run
(an intermediate message, ``metadata.message_type = "agent:intermediate"``,
hidden from ``list_messages`` like NEAR's ``agent:*`` types). In the common
``env.add_reply(env.completion(..., stream=True))`` the two coincide with the
end of the stream.

Iteration shares one underlying iterator: the docs' nested-loop example
consumes the rest of the stream in the inner loop, and an exhausted handler
simply yields nothing more.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from .events import Message, attachment_list, message_delta, new_id, now, text_content

if TYPE_CHECKING:
    from openai.types.chat import ChatCompletion, ChatCompletionChunk

    from .providers.base import ChunkStream
    from .runs import RunContext

INTERMEDIATE = "agent:intermediate"


class StreamHandler:
    """An iterable, drainable streamed completion bound to a run."""

    def __init__(self, ctx: RunContext, chunks: ChunkStream, *, model: str) -> None:
        self._ctx = ctx
        self._chunks = chunks
        self.model = model
        self.message_id = new_id("msg")
        self._parts: list[str] = []
        self._tool_calls: dict[int, dict[str, Any]] = {}
        self._created = False
        self._exhausted = False
        self._settled = False
        self._reply: dict[str, Any] | None = None
        self.finish_reason: str | None = None
        self.completion_id: str | None = None
        self.usage: Any = None
        self.chunks_received = 0
        self.deltas = 0
        ctx.track(self)

    # ---------------------------------------------------------------- iteration

    def __iter__(self) -> Iterator[ChatCompletionChunk]:
        return self

    def __next__(self) -> ChatCompletionChunk:
        if self._exhausted:
            raise StopIteration
        try:
            self._ctx.check_cancelled()
            chunk = next(self._chunks)
        except StopIteration:
            self._on_exhausted()
            raise
        except BaseException as exc:
            self._abort(exc)
            raise
        self._on_chunk(chunk)
        return chunk

    def drain(self) -> StreamHandler:
        """Consume whatever is left (deltas are emitted as usual)."""
        for _ in self:
            pass
        return self

    # ------------------------------------------------------------------ reading

    @property
    def text(self) -> str:
        """The text received so far."""
        if len(self._parts) > 1:
            self._parts[:] = ["".join(self._parts)]
        return self._parts[0] if self._parts else ""

    @property
    def done(self) -> bool:
        return self._exhausted

    @property
    def tool_calls(self) -> list[dict[str, Any]]:
        """Tool calls accumulated from ``delta.tool_calls`` (OpenAI message shape)."""
        return [self._tool_calls[i] for i in sorted(self._tool_calls)]

    def __str__(self) -> str:
        """The full text; waits for the stream to finish first."""
        self.drain()
        return self.text

    def __repr__(self) -> str:
        state = "done" if self._exhausted else "streaming"
        return f"<StreamHandler {self.message_id} {state} chars={len(self.text)}>"

    def completion(self) -> ChatCompletion:
        """The whole stream as one ``ChatCompletion`` (drains first)."""
        from openai.types.chat import ChatCompletion

        self.drain()
        message: dict[str, Any] = {"role": "assistant", "content": self.text}
        if self._tool_calls:
            message["tool_calls"] = self.tool_calls
        return ChatCompletion.model_validate(
            {
                "id": self.completion_id or "streamed_completion",
                "object": "chat.completion",
                "created": now(),
                "model": self.model,
                "choices": [
                    {"index": 0, "message": message, "finish_reason": self.finish_reason or "stop"}
                ],
                "usage": self.usage.model_dump() if hasattr(self.usage, "model_dump") else None,
            }
        )

    # ------------------------------------------------------------------ events

    def _on_chunk(self, chunk: ChatCompletionChunk) -> None:
        self.chunks_received += 1
        self.completion_id = self.completion_id or chunk.id
        if chunk.usage is not None:
            self.usage = chunk.usage
        if not chunk.choices:
            return
        choice = chunk.choices[0]
        if choice.finish_reason:
            self.finish_reason = choice.finish_reason
        delta = choice.delta
        if delta.tool_calls:
            for call in delta.tool_calls:
                self._accumulate_tool_call(call)
        text = delta.content
        if text:
            if not self._created:
                self._create()
            self._parts.append(text)
            self.deltas += 1
            self._ctx.emit("thread.message.delta", message_delta(self.message_id, text))

    def _accumulate_tool_call(self, call: Any) -> None:
        slot = self._tool_calls.setdefault(
            call.index, {"id": "", "type": "function", "function": {"name": "", "arguments": ""}}
        )
        if call.id:
            slot["id"] = call.id
        if call.function is not None:
            if call.function.name:
                slot["function"]["name"] += call.function.name
            if call.function.arguments:
                slot["function"]["arguments"] += call.function.arguments

    def _message(self, status: str, **extra: Any) -> Message:
        return Message(
            id=self.message_id,
            created_at=now(),
            thread_id=self._ctx.thread_id,
            status=status,  # type: ignore[arg-type]
            role="assistant",
            content=text_content(self.text) if status != "in_progress" else [],
            assistant_id=self._ctx.assistant_id,
            run_id=self._ctx.run_id,
            **extra,
        )

    def _create(self) -> None:
        self._ctx.before_new_message(self)
        self._created = True
        data = self._message("in_progress").model_dump(mode="json")
        self._ctx.emit("thread.message.created", data)
        self._ctx.emit("thread.message.in_progress", data)

    def _on_exhausted(self) -> None:
        self._exhausted = True
        self._chunks.close()
        if self._reply is not None:
            self.settle()

    def _abort(self, exc: BaseException) -> None:
        """The stream broke (provider error, cancel, interrupt): keep the partial text."""
        self._exhausted = True
        self._settled = True
        try:
            self._chunks.close()
        except Exception:  # closing a broken stream may fail too; the text is what matters
            pass
        if not self._created:
            return
        from .runs import RunCancelled

        reason = (
            "run_cancelled" if isinstance(exc, RunCancelled | KeyboardInterrupt) else "run_failed"
        )
        message = self._message(
            "incomplete", incomplete_at=now(), incomplete_details={"reason": reason}
        )
        self._ctx.store.save_message(message)
        self._ctx.emit("thread.message.incomplete", message.model_dump(mode="json"))

    # ---------------------------------------------------------------- settling

    def request_reply(self, attachments: list[Any] | None, message_type: str | None) -> Message:
        """``env.add_reply(handler)``: drain, then store the text as a reply."""
        self._reply = {"attachments": attachments, "message_type": message_type}
        if self._settled:
            # Already settled as intermediate (another message came first):
            # publish the text as a fresh reply rather than rewrite history.
            return self._ctx.env.add_reply(self.text, attachments, message_type)
        self.drain()
        if not self._settled:
            self.settle()
        return self._ctx.store.get_message(self.message_id)  # type: ignore[return-value]

    def settle(self) -> None:
        """Emit ``thread.message.completed`` once: as a reply or as intermediate."""
        if self._settled:
            return
        self._settled = True
        if not self._created:
            if self._reply is None:
                return  # nothing streamed and nobody asked for it: no message
            self._create()
        metadata: dict[str, str] = {}
        attachments = None
        if self._reply is not None:
            if self._reply["message_type"]:
                metadata["message_type"] = self._reply["message_type"]
            attachments = self._reply["attachments"]
        else:
            metadata["message_type"] = INTERMEDIATE
        message = self._message(
            "completed",
            completed_at=now(),
            metadata=metadata,
            attachments=attachment_list(attachments),
        )
        self._ctx.store.save_message(message)
        self._ctx.emit("thread.message.completed", message.model_dump(mode="json"))
