"""The message sequencer: which message events a run emits, and in what order.

Layer 2, above the run log. Messages reach the log in two ways: whole (a
reply, a notice, a tool's output: ``created`` then ``completed``) and
streamed (a :class:`~nearnb.streaming.StreamHandler`: ``created``, deltas,
then ``completed`` or ``incomplete``). The sequencer keeps them in an order a
reader can follow:

* a new message settles the finished streams nobody replied with first, so
  their ``completed`` (as ``agent:intermediate``) precedes it;
* at the end of a run every stream is drained (on success) and settled, or
  aborted with its partial text kept as ``incomplete``.

Tool calls run as one ``tool_calls`` run step (created, in_progress,
completed with outputs), apart from the answer.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Protocol

from .accumulator import Origin
from .events import Message, RunStep, attachment_list, new_id, now, text_content
from .runlog import RunCancelled, RunLog


class Stream(Protocol):
    """What the sequencer needs of a stream handler."""

    @property
    def done(self) -> bool: ...

    def drain(self) -> object: ...

    def settle(self) -> None: ...

    def abort(self, exc: BaseException) -> None: ...


class StepHolder(Protocol):
    """A stream whose tool-call step waits for the calls' outputs."""

    @property
    def step_call_ids(self) -> frozenset[str]: ...

    def finish_step(self, status: str, outputs: list[str] | None = None) -> None: ...


class MessageSequencer:
    """Orders a run's message and step events; thread-safe."""

    def __init__(self, log: RunLog, origin: Origin) -> None:
        self.log = log
        self.origin = origin
        self._lock = threading.RLock()
        self._streams: list[Stream] = []
        self._held: list[StepHolder] = []

    # ----------------------------------------------------------------- streams

    def track(self, stream: Stream) -> None:
        with self._lock:
            self._streams.append(stream)

    def before_new_message(self, starting: Stream | None) -> None:
        """A new message begins: finished streams nobody replied with settle now."""
        with self._lock:
            streams = [s for s in self._streams if s is not starting]
        for stream in streams:
            if stream.done:
                stream.settle()

    def hold_step(self, holder: StepHolder) -> None:
        """A streamed tool-call step stays open until :meth:`tool_step` runs its calls."""
        with self._lock:
            self._held.append(holder)

    def _take_held(self, call_ids: frozenset[str]) -> StepHolder | None:
        with self._lock:
            for holder in self._held:
                if holder.step_call_ids == call_ids:
                    self._held.remove(holder)
                    return holder
        return None

    def settle_all(self, *, drain: bool) -> None:
        """End of run: drain (on success) and settle every stream; abort unfinished ones.

        Streamed tool-call steps nobody ran end ``completed`` without outputs
        on success, else ``cancelled`` / ``failed``.
        """
        with self._lock:
            streams, self._streams = list(self._streams), []
        for stream in streams:
            if drain:
                stream.drain()
            if stream.done:
                stream.settle()
            else:
                cancelled = self.log.cancelled.is_set()
                stream.abort(RunCancelled() if cancelled else RuntimeError("run ended"))
        with self._lock:
            held, self._held = list(self._held), []
        status = "completed" if drain else "cancelled" if self.log.cancelled.is_set() else "failed"
        for holder in held:
            holder.finish_step(status)

    # ------------------------------------------------------------ whole messages

    def reply(
        self,
        text: str,
        *,
        thread_id: str | None = None,
        attachments: list[Any] | None = None,
        message_type: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> Message:
        """Publish a whole (not streamed) assistant message of this run.

        On another thread it is published the same way (its ``thread_id``
        says where it belongs; views of this run do not show it), because the
        store only learns of messages from events.
        """
        meta = dict(metadata or {})
        if message_type:
            meta["message_type"] = message_type
        o = self.origin
        message = Message(
            id=new_id("msg"),
            created_at=now(),
            thread_id=thread_id or o.thread_id,
            role="assistant",
            content=text_content(text),
            assistant_id=o.assistant_id,
            run_id=o.run_id,
            attachments=attachment_list(attachments),
            metadata=meta,
            completed_at=now(),
        )
        if message.thread_id == o.thread_id:
            self.before_new_message(None)
        data = message.model_dump(mode="json")
        self.log.emit("thread.message.created", {**data, "status": "in_progress", "content": []})
        self.log.emit("thread.message.completed", data)
        return message

    # ------------------------------------------------------------------- tools

    def tool_step(self, calls: list[dict[str, Any]], run: Callable[[str, str], str]) -> list[str]:
        """Run tool calls as one ``tool_calls`` run step with its outputs.

        If a streamed completion asked for exactly these calls, its step (which
        showed the calls as they arrived) gets the outputs; otherwise a new step.
        """
        self.log.check_cancelled()
        held = self._take_held(frozenset(c["id"] for c in calls))
        if held is not None:
            try:
                outputs = [run(c["function"]["name"], c["function"]["arguments"]) for c in calls]
            except BaseException:
                held.finish_step("failed")
                raise
            held.finish_step("completed", outputs)
            return outputs
        o = self.origin
        step = RunStep(
            id=new_id("step"),
            created_at=now(),
            run_id=o.run_id,
            thread_id=o.thread_id,
            assistant_id=o.assistant_id,
            type="tool_calls",
            step_details={
                "type": "tool_calls",
                "tool_calls": [
                    {
                        "id": c["id"],
                        "type": "function",
                        "function": {**c["function"], "output": None},
                    }
                    for c in calls
                ],
            },
        )
        data = step.model_dump(mode="json")
        self.log.emit("thread.run.step.created", data)
        self.log.emit("thread.run.step.in_progress", data)
        outputs = [run(c["function"]["name"], c["function"]["arguments"]) for c in calls]
        for call, output in zip(data["step_details"]["tool_calls"], outputs, strict=True):
            call["function"]["output"] = output
        self.log.emit(
            "thread.run.step.completed", {**data, "status": "completed", "completed_at": now()}
        )
        return outputs
