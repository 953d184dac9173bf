"""Agent-written deltas: a reply streamed from text the agent has, not from a model.

NEAR could stream only what a model produced. Agents also have text that
arrives piece by piece on its own: a long tool's progress, search results,
another library's iterator. :class:`ReplyWriter` streams such text as one
message, exactly like a model's stream (``thread.message.created``, one
``thread.message.delta`` per non-empty write, ``completed``), so the counter
counts it and ``show_streaming_message`` applies::

    with env.stream_reply() as w:
        for line in lines:
            w.write(line)

    env.add_reply(piece for piece in source)   # the same, from an iterable

An exception inside the ``with`` (a Stop included) keeps the partial text as
an ``incomplete`` message, as a broken model stream does.
"""

from __future__ import annotations

from collections.abc import Iterable
from types import TracebackType
from typing import Any

from .accumulator import streamed_message
from .events import CompactDelta, Message, attachment_list, new_id, now
from .messages import MessageSequencer
from .runlog import RunCancelled, RunLog


class ReplyWriter:
    """One assistant message written in pieces. Use as a context manager, or close()."""

    def __init__(
        self,
        log: RunLog,
        sequencer: MessageSequencer,
        *,
        message_type: str | None = None,
        attachments: list[Any] | None = None,
        metadata: dict[str, str] | None = None,
    ) -> None:
        self._log = log
        self._sequencer = sequencer
        self._origin = sequencer.origin
        self.message_id = new_id("msg")
        self._metadata = {**(metadata or {})}
        if message_type:
            self._metadata["message_type"] = message_type
        self._attachments = attachments
        self._parts: list[str] = []
        self._created = False
        self._ended = False
        self.message: Message | None = None
        self.deltas = 0
        sequencer.track(self)

    # ----------------------------------------------------------------- writing

    def write(self, text: str) -> None:
        """Append ``text`` (one delta; empty text is no delta)."""
        if self._ended:
            raise ValueError("write() to a reply that has already ended")
        if not isinstance(text, str):
            raise TypeError(f"write() takes str, not {type(text).__name__}")
        self._log.check_cancelled()
        if not text:
            return
        self._open()
        self._parts.append(text)
        self.deltas += 1
        self._log.emit_delta(CompactDelta(self.message_id, text))

    def write_all(self, pieces: Iterable[Any]) -> Message:
        """Write every piece of ``pieces`` (``str()`` of each), then close."""
        try:
            for piece in pieces:
                self.write(piece if isinstance(piece, str) else str(piece))
        except BaseException as exc:
            self.abort(exc)
            raise
        return self.close()

    @property
    def text(self) -> str:
        if len(self._parts) > 1:
            self._parts[:] = ["".join(self._parts)]
        return self._parts[0] if self._parts else ""

    # ------------------------------------------------------------------ ending

    def close(self) -> Message:
        """Complete the message (an empty one if nothing was written)."""
        if not self._ended:
            self._ended = True
            self._open()
            self.message = self._message("completed", completed_at=now())
            self._log.emit("thread.message.completed", self.message.model_dump(mode="json"))
        assert self.message is not None
        return self.message

    def abort(self, exc: BaseException) -> None:
        """End with what was written as ``incomplete`` (nothing written: no message)."""
        if self._ended:
            return
        self._ended = True
        if not self._created:
            return
        stopped = isinstance(exc, RunCancelled | KeyboardInterrupt)
        self.message = self._message(
            "incomplete",
            incomplete_at=now(),
            incomplete_details={"reason": "run_cancelled" if stopped else "run_failed"},
        )
        self._log.emit("thread.message.incomplete", self.message.model_dump(mode="json"))

    def __enter__(self) -> ReplyWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            self.close()
        else:
            self.abort(exc)

    # ------------------------------------------------------ the Stream protocol

    @property
    def done(self) -> bool:
        """The sequencer's question: finished streams settle before a new message."""
        return self._ended

    def drain(self) -> ReplyWriter:
        """The run ended well with this reply still open: complete it, as a drained stream."""
        self.close()
        return self

    def settle(self) -> None:
        """Nothing to settle: a writer is ended by its owner (close/abort)."""

    # ---------------------------------------------------------------- helpers

    def _open(self) -> None:
        if self._created:
            return
        self._sequencer.before_new_message(self)
        self._created = True
        data = self._message("in_progress").model_dump(mode="json")
        self._log.emit("thread.message.created", data)
        self._log.emit("thread.message.in_progress", data)

    def _message(self, status: str, **extra: Any) -> Message:
        return streamed_message(
            self._origin,
            self.message_id,
            status,
            self.text,
            now(),
            attachments=attachment_list(self._attachments),
            metadata=self._metadata if status != "in_progress" else {},
            **extra,
        )
