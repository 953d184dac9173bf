"""Chunks in, events out: the pure core of a streamed completion.

:class:`ChunkAccumulator` folds openai ``ChatCompletionChunk`` objects into
the text and tool calls received so far, and says which events each chunk
implies, as ``(name, data)`` pairs. It does no I/O and knows no run: the
stream handler above it pulls chunks from the transport and emits the pairs
(after settling earlier messages when a new one starts). The split is the one
openai-python makes between its stream *state* and its stream *manager*, and
it lets the event mapping be tested with plain chunk objects.

What a chunk implies:

* the first non-empty text: ``thread.message.created`` and
  ``thread.message.in_progress`` (an in-progress Message with no content),
  then one ``thread.message.delta`` per non-empty text chunk, its data a
  :class:`~nearnb.events.CompactDelta` (the run's event makes it the usual
  dict when read; see :mod:`nearnb.compactdelta`);
* the first tool-call fragment: a ``tool_calls`` run step,
  ``thread.run.step.created``; then one ``thread.run.step.delta`` per
  fragment (OpenAI's RunStepDelta shape: ``index``, and ``id`` / ``name`` /
  ``arguments`` pieces as they arrive), so tool calls stream apart from the
  answer; :meth:`finish_step` completes the step when the stream ends.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .events import CompactDelta, Message, new_id, now, text_content

Pair = tuple[str, Any]


@dataclass(frozen=True)
class Origin:
    """Whose stream this is: the ids every message and step it makes carries."""

    thread_id: str
    run_id: str
    assistant_id: str


def streamed_message(
    origin: Origin, message_id: str, status: str, text: str, created_at: int, **extra: Any
) -> Message:
    """An assistant Message of a stream (a model's or an agent's own) in ``status``.

    ``in_progress`` has no content yet: a reader builds the text from the deltas.
    """
    return Message(
        id=message_id,
        created_at=created_at,
        thread_id=origin.thread_id,
        status=status,  # type: ignore[arg-type]
        role="assistant",
        content=text_content(text) if status != "in_progress" else [],
        assistant_id=origin.assistant_id,
        run_id=origin.run_id,
        **extra,
    )


class ChunkAccumulator:
    """Text, tool calls and metadata of one streamed completion, and the events they imply."""

    def __init__(
        self,
        origin: Origin,
        *,
        message_id: str | None = None,
        ids: Callable[[str], str] = new_id,
        clock: Callable[[], int] = now,
    ) -> None:
        self.origin = origin
        self.message_id = message_id or ids("msg")
        self._ids = ids
        self._clock = clock
        self._parts: list[str] = []
        self._calls: dict[int, dict[str, Any]] = {}
        self.step: dict[str, Any] | None = None
        self.created = False
        self.finish_reason: str | None = None
        self.completion_id: str | None = None
        self.usage: Any = None
        self.chunks = 0
        self.deltas = 0

    # ----------------------------------------------------------------- reading

    @property
    def text(self) -> str:
        if len(self._parts) > 1:
            self._parts[:] = ["".join(self._parts)]
        return self._parts[0] if self._parts else ""

    @property
    def tool_calls(self) -> list[dict[str, Any]]:
        """Calls accumulated so far, in OpenAI's assistant-message shape."""
        return [self._calls[i] for i in sorted(self._calls)]

    def message(self, status: str, **extra: Any) -> Message:
        """This stream's Message in ``status``; content only once it is no longer streaming."""
        return streamed_message(
            self.origin, self.message_id, status, self.text, self._clock(), **extra
        )

    # ----------------------------------------------------------------- folding

    def created_pairs(self) -> list[Pair]:
        """The two events that open the message (also used when a reply has no text)."""
        self.created = True
        data = self.message("in_progress").model_dump(mode="json")
        return [("thread.message.created", data), ("thread.message.in_progress", data)]

    def feed_text(self, chunk: Any) -> str | None:
        """Fold a chunk that only carries text of a message already open; its text.

        None, with nothing folded, for any other chunk (the first text, tool calls,
        usage, a finish, no choices): :meth:`feed` takes those. The stream's usual
        chunk then costs no pair list and no :class:`CompactDelta` (a fast stream's
        drain, see ``StreamHandler.drain``); what is folded is what :meth:`feed`
        folds, and the event is the delta :meth:`feed` would pair.
        """
        choices = chunk.choices
        if not (self.created and choices) or chunk.usage is not None:
            return None
        choice = choices[0]
        delta = choice.delta
        text = delta.content
        if not text or choice.finish_reason or delta.tool_calls:
            return None
        self.chunks += 1
        self.completion_id = self.completion_id or chunk.id
        self._parts.append(text)
        self.deltas += 1
        return text  # type: ignore[no-any-return]

    def feed(self, chunk: Any) -> list[Pair]:
        """Fold one chunk; the events it implies, in order."""
        self.chunks += 1
        self.completion_id = self.completion_id or chunk.id
        if chunk.usage is not None:
            self.usage = chunk.usage
        if not chunk.choices:
            return []
        choice = chunk.choices[0]
        if choice.finish_reason:
            self.finish_reason = choice.finish_reason
        pairs: list[Pair] = []
        delta = choice.delta
        for call in delta.tool_calls or ():
            pairs.extend(self._tool_fragment(call))
        text = delta.content
        if text:
            if not self.created:
                pairs.extend(self.created_pairs())
            self._parts.append(text)
            self.deltas += 1
            pairs.append(("thread.message.delta", CompactDelta(self.message_id, text)))
        return pairs

    def _tool_fragment(self, call: Any) -> list[Pair]:
        pairs: list[Pair] = []
        if self.step is None:
            self.step = self._new_step()
            pairs.append(("thread.run.step.created", self._step_data()))
        slot = self._calls.setdefault(
            call.index, {"id": "", "type": "function", "function": {"name": "", "arguments": ""}}
        )
        fragment: dict[str, Any] = {"index": call.index, "type": "function"}
        function: dict[str, Any] = {}
        if call.id:
            slot["id"] = fragment["id"] = call.id
        if call.function is not None:
            if call.function.name:
                slot["function"]["name"] += call.function.name
                function["name"] = call.function.name
            if call.function.arguments:
                slot["function"]["arguments"] += call.function.arguments
                function["arguments"] = call.function.arguments
        fragment["function"] = function
        pairs.append(
            (
                "thread.run.step.delta",
                {
                    "id": self.step["id"],
                    "object": "thread.run.step.delta",
                    "delta": {"step_details": {"type": "tool_calls", "tool_calls": [fragment]}},
                },
            )
        )
        return pairs

    def _new_step(self) -> dict[str, Any]:
        o = self.origin
        return {
            "id": self._ids("step"),
            "object": "thread.run.step",
            "created_at": self._clock(),
            "run_id": o.run_id,
            "thread_id": o.thread_id,
            "assistant_id": o.assistant_id,
            "type": "tool_calls",
            "status": "in_progress",
        }

    def _step_data(self, outputs: list[str] | None = None, **extra: Any) -> dict[str, Any]:
        assert self.step is not None
        calls = self.tool_calls
        filled = outputs if outputs is not None else [None] * len(calls)
        calls = [
            {**call, "function": {**call["function"], "output": output}}
            for call, output in zip(calls, filled, strict=True)
        ]
        return {
            **self.step,
            "step_details": {"type": "tool_calls", "tool_calls": calls},
            **extra,
        }

    @property
    def step_open(self) -> bool:
        """A tool-call step was streamed and has not ended yet."""
        return self.step is not None and self.step.get("status") == "in_progress"

    def finish_step(
        self, status: str = "completed", outputs: list[str] | None = None
    ) -> list[Pair]:
        """Close the tool-call step (if the stream made one): completed, cancelled or failed.

        ``outputs`` (one per call, in order) are the tools' results when the
        calls were run, so the step that streamed the calls also shows them.
        """
        if not self.step_open:
            return []
        assert self.step is not None
        self.step["status"] = status
        self.step[f"{status}_at"] = self._clock()
        return [(f"thread.run.step.{status}", self._step_data(outputs))]
