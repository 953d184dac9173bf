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

from .accumulator import ChunkAccumulator, Pair
from .events import CompactDelta, Message, attachment_list, now
from .messages import MessageSequencer
from .runlog import RunCancelled, RunLog

if TYPE_CHECKING:
    from openai.types.chat import ChatCompletion, ChatCompletionChunk

    from .providers.base import ChunkStream

INTERMEDIATE = "agent:intermediate"


def _nothing() -> None:
    """The cancel hook's remover when the source cannot be interrupted."""


class StreamHandler:
    """An iterable, drainable streamed completion bound to a run."""

    def __init__(
        self,
        log: RunLog,
        sequencer: MessageSequencer,
        chunks: ChunkStream,
        *,
        model: str,
    ) -> None:
        self._log = log
        self._sequencer = sequencer
        self._chunks = chunks
        self.model = model
        interrupt = getattr(chunks, "interrupt", None)  # unblocks a read from another thread
        self._unhook = log.on_cancel(interrupt) if interrupt is not None else _nothing
        self._acc = ChunkAccumulator(sequencer.origin)
        self.message_id = self._acc.message_id
        self._exhausted = False
        self._settled = False
        self._reply: dict[str, Any] | None = None
        self._message: Message | None = None
        sequencer.track(self)

    # ---------------------------------------------------------------- iteration

    def __iter__(self) -> Iterator[ChatCompletionChunk]:
        return self

    def __next__(self) -> ChatCompletionChunk:
        if self._exhausted:
            raise StopIteration
        chunk = self._read()
        self._emit(self._acc.feed(chunk))
        return chunk

    def _read(self) -> ChatCompletionChunk:
        """The next chunk; at the end, the stream is settled and StopIteration raised."""
        try:
            if self._log.cancel_requested:
                raise RunCancelled("run cancelled")
            return next(self._chunks)
        except StopIteration:
            if self._log.cancel_requested:  # the cancel interrupted the read: not an end
                stop = RunCancelled("run cancelled")
                self.abort(stop)
                raise stop from None
            self._on_exhausted()
            raise
        except BaseException as exc:
            self.abort(exc)
            raise

    def drain(self) -> StreamHandler:
        """Consume whatever is left (deltas are emitted as usual).

        The same events as iterating, in a tighter loop: a chunk that only
        carries text (nearly all of them) goes straight to the log.
        """
        acc, emit_text, mid = self._acc, self._log.emit_text, self.message_id
        try:
            while not self._exhausted:
                chunk = self._read()
                text = acc.feed_text(chunk)
                if text is None:
                    self._emit(acc.feed(chunk))
                else:
                    emit_text(mid, text)
        except StopIteration:
            pass
        return self

    # ------------------------------------------------------------------ reading

    @property
    def text(self) -> str:
        """The text received so far."""
        return self._acc.text

    @property
    def done(self) -> bool:
        return self._exhausted

    @property
    def tool_calls(self) -> list[dict[str, Any]]:
        """Tool calls accumulated from ``delta.tool_calls`` (OpenAI message shape)."""
        return self._acc.tool_calls

    finish_reason = property(lambda self: self._acc.finish_reason)
    completion_id = property(lambda self: self._acc.completion_id)
    usage = property(lambda self: self._acc.usage)
    chunks_received = property(lambda self: self._acc.chunks)
    deltas = property(lambda self: self._acc.deltas)

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
        if self.tool_calls:
            message["tool_calls"] = self.tool_calls
        usage = self.usage
        return ChatCompletion.model_validate(
            {
                "id": self.completion_id or "streamed_completion",
                "object": "chat.completion",
                "created": now(),
                "model": self.model,
                "choices": [
                    {"index": 0, "message": message, "finish_reason": self.finish_reason or "stop"}
                ],
                "usage": usage.model_dump() if hasattr(usage, "model_dump") else None,
            }
        )

    # ------------------------------------------------------------------ events

    def _emit(self, pairs: list[Pair]) -> None:
        for name, data in pairs:
            if type(data) is CompactDelta:  # a text delta: most pairs by far
                self._log.emit_delta(data)
                continue
            if name == "thread.message.created":
                self._sequencer.before_new_message(self)
            self._log.emit(name, data)

    def _on_exhausted(self) -> None:
        self._exhausted = True
        self._unhook()
        self._chunks.close()
        if self._acc.step_open:
            # The model asked for tools: the step stays open until they run
            # (MessageSequencer.tool_step fills in their outputs) or the run ends.
            self._sequencer.hold_step(self)
        if self._reply is not None:
            self.settle()

    @property
    def step_call_ids(self) -> frozenset[str]:
        """Ids of the tool calls this stream asked for."""
        return frozenset(call["id"] for call in self._acc.tool_calls)

    def finish_step(self, status: str, outputs: list[str] | None = None) -> None:
        """End this stream's tool-call step (see :meth:`_on_exhausted`)."""
        self._emit(self._acc.finish_step(status, outputs))

    def abort(self, exc: BaseException) -> None:
        """The stream broke (provider error, cancel, interrupt): keep the partial text."""
        self._exhausted = True
        self._settled = True
        self._unhook()
        try:
            self._chunks.close()
        except Exception:  # closing a broken stream may fail too; the text is what matters
            pass
        stopped = isinstance(exc, RunCancelled | KeyboardInterrupt)
        self._emit(self._acc.finish_step("cancelled" if stopped else "failed"))
        if not self._acc.created:
            return
        reason = "run_cancelled" if stopped else "run_failed"
        message = self._acc.message(
            "incomplete", incomplete_at=now(), incomplete_details={"reason": reason}
        )
        self._message = message
        self._log.emit("thread.message.incomplete", message.model_dump(mode="json"))

    # ---------------------------------------------------------------- settling

    def request_reply(
        self,
        attachments: list[Any] | None,
        message_type: str | None,
        metadata: dict[str, str] | None = None,
    ) -> Message:
        """``env.add_reply(handler)``: drain, then publish the text as a reply."""
        self._reply = {
            "attachments": attachments,
            "message_type": message_type,
            "metadata": metadata or {},
        }
        if self._settled:
            # Already settled as intermediate (another message came first):
            # publish the text as a fresh reply rather than rewrite history.
            return self._sequencer.reply(
                self.text, attachments=attachments, message_type=message_type, metadata=metadata
            )
        self.drain()
        if not self._settled:
            self.settle()
        assert self._message is not None
        return self._message

    def settle(self) -> None:
        """Emit ``thread.message.completed`` once: as a reply or as intermediate."""
        if self._settled:
            return
        self._settled = True
        if not self._acc.created:
            if self._reply is None:
                return  # nothing streamed and nobody asked for it: no message
            self._emit(self._acc.created_pairs())
        metadata: dict[str, str] = {}
        attachments = None
        if self._reply is not None:
            metadata.update(self._reply["metadata"])
            if self._reply["message_type"]:
                metadata["message_type"] = self._reply["message_type"]
            attachments = self._reply["attachments"]
        else:
            metadata["message_type"] = INTERMEDIATE
        message = self._acc.message(
            "completed",
            completed_at=now(),
            metadata=metadata,
            attachments=attachment_list(attachments),
        )
        self._message = message
        self._log.emit("thread.message.completed", message.model_dump(mode="json"))
