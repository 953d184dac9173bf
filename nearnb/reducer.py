"""A pure fold of run events into what a view shows.

Every sink that renders a run — the ipywidgets view, the display-handle and
plain renderers, the terminal, the attach client — feeds events into a
:class:`RunState` and reads the state back. It does no I/O, reads no clock
and imports nothing from IPython, so it is tested in a plain process and gives
the same answer for a live run and for its replay.

Text is accumulated as a list of chunks (O(n) for a whole stream) and joined
lazily; events already applied (``seq`` not above the last one seen) are
ignored, which makes a resumed SSE stream idempotent.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .events import HIDDEN_MESSAGE_TYPE_PREFIXES, TERMINAL_EVENTS, Event, delta_text

NOTICE_MESSAGE_TYPE = "system:notice"


@dataclass
class MessageState:
    """One message as a view sees it: id, role, text so far, status."""

    id: str | None
    role: str = "assistant"
    status: str = "in_progress"
    metadata: dict[str, str] = field(default_factory=dict)
    incomplete_reason: str | None = None
    deltas: int = 0
    _parts: list[str] = field(default_factory=list, repr=False)
    _joined: str = field(default="", repr=False)
    _joined_n: int = field(default=0, repr=False)

    def append(self, text: str) -> None:
        self._parts.append(text)

    def replace(self, text: str) -> None:
        self._parts = [text]
        self._joined_n = 0

    @property
    def text(self) -> str:
        """The text so far; joined once per new chunk count, not per access."""
        if self._joined_n != len(self._parts):
            self._joined = "".join(self._parts)
            self._parts = [self._joined] if self._joined else []
            self._joined_n = len(self._parts)
        return self._joined

    @property
    def message_type(self) -> str | None:
        return self.metadata.get("message_type")

    @property
    def hidden(self) -> bool:
        """``system:*`` / ``agent:*`` messages are not part of the answer."""
        return (self.message_type or "").startswith(HIDDEN_MESSAGE_TYPE_PREFIXES)


@dataclass
class ToolCallState:
    """A tool call made during the run, with its output once known."""

    id: str
    name: str
    arguments: str
    output: str | None = None
    step_status: str = "in_progress"


@dataclass
class RunState:
    """Reducer state: run status, messages, counters. Apply events in order."""

    thread_id: str | None = None
    run_id: str | None = None
    status: str = "queued"
    model: str = ""
    assistant_id: str = ""
    messages: list[MessageState] = field(default_factory=list)
    streaming: MessageState | None = None
    tool_calls: dict[str, ToolCallState] = field(default_factory=dict)
    notices: list[str] = field(default_factory=list)
    deltas: int = 0
    chars: int = 0
    last_seq: int = 0
    events: int = 0
    first_at: float | None = None
    last_at: float | None = None
    first_delta_at: float | None = None
    last_delta_at: float | None = None
    error: str | None = None
    error_code: str | None = None
    traceback: str | None = None
    done: bool = False
    run: dict[str, Any] | None = None

    # ------------------------------------------------------------------ reading

    @property
    def terminal(self) -> bool:
        """True once the run has ended (its terminal event was applied)."""
        return f"thread.run.{self.status}" in TERMINAL_EVENTS

    @property
    def answers(self) -> list[MessageState]:
        """Completed user-facing assistant messages: the run's answer."""
        return [m for m in self.messages if m.role == "assistant" and not m.hidden]

    @property
    def elapsed(self) -> float:
        """Seconds between the first and the last event applied."""
        if self.first_at is None or self.last_at is None:
            return 0.0
        return max(0.0, self.last_at - self.first_at)

    def deltas_per_second(self, at: float | None = None) -> float:
        """Delta rate from the first delta to ``at`` (default: the last delta)."""
        if self.first_delta_at is None:
            return 0.0
        end = at if at is not None else self.last_delta_at
        span = (end or self.first_delta_at) - self.first_delta_at
        return self.deltas / span if span > 0 else 0.0

    # ----------------------------------------------------------------- applying

    def apply(self, event: Event) -> bool:
        """Fold one event in; False (and no change) if it was already applied."""
        if event.seq and event.seq <= self.last_seq:
            return False
        self.last_seq = max(self.last_seq, event.seq)
        self.events += 1
        self.thread_id = self.thread_id or event.thread_id
        self.run_id = self.run_id or event.run_id
        if self.first_at is None:
            self.first_at = event.at
        self.last_at = event.at
        name = event.event
        data = event.data if isinstance(event.data, dict) else {}
        if name == "thread.message.delta":
            self._on_delta(data, event.at)
        elif name.startswith("thread.run.step."):
            self._on_step(data)
        elif name.startswith("thread.message."):
            self._on_message(name, data)
        elif name.startswith("thread.run."):
            self._on_run(name, data)
        elif name == "error":
            self.error = str(data.get("message") or event.data)
            self.error_code = data.get("code")
        elif name == "done":
            self.done = True
        return True

    def _on_delta(self, data: dict[str, Any], at: float) -> None:
        text = delta_text(data)
        msg_id = data.get("id")
        current = self.streaming
        if current is None or (msg_id and current.id and current.id != msg_id):
            # A delta with no preceding ``created`` (NEAR's hub never sends one).
            current = self.streaming = MessageState(id=msg_id)
        current.deltas += 1
        self.deltas += 1
        if self.first_delta_at is None:
            self.first_delta_at = at
        self.last_delta_at = at
        if text:
            current.append(text)
            self.chars += len(text)

    def _on_message(self, name: str, data: dict[str, Any]) -> None:
        msg_id = data.get("id")
        if name in ("thread.message.created", "thread.message.in_progress"):
            if self.streaming is None or self.streaming.id != msg_id:
                self.streaming = MessageState(
                    id=msg_id,
                    role=data.get("role") or "assistant",
                    metadata=dict(data.get("metadata") or {}),
                )
            return
        # completed / incomplete: finalise. NEAR's legacy ``completed`` carries no
        # Message (``{"delta": ""}``), so fall back to the streamed text.
        current = self.streaming
        if current is not None and (not msg_id or current.id in (None, msg_id)):
            self.streaming = None
        else:
            current = MessageState(id=msg_id)
        if "content" in data:
            current.replace("\n".join(_content_texts(data.get("content"))))
            current.role = data.get("role") or current.role
            current.metadata = dict(data.get("metadata") or current.metadata)
        current.id = msg_id or current.id
        current.status = "completed" if name == "thread.message.completed" else "incomplete"
        details = data.get("incomplete_details") or {}
        current.incomplete_reason = details.get("reason") if isinstance(details, dict) else None
        if current.message_type == NOTICE_MESSAGE_TYPE:
            self.notices.append(current.text)
        self.messages.append(current)

    def _on_run(self, name: str, data: dict[str, Any]) -> None:
        # The event name is authoritative: NEAR's hub sent status "queued" in
        # every run payload, whatever the event.
        self.status = name.rsplit(".", 1)[1]
        run = data.get("delta") if isinstance(data.get("delta"), dict) else data
        self.run = run
        self.model = run.get("model") or self.model
        self.assistant_id = run.get("assistant_id") or self.assistant_id
        last_error = run.get("last_error")
        if isinstance(last_error, dict):
            self.error = last_error.get("message")
            self.error_code = last_error.get("code")
        metadata = run.get("metadata") or {}
        if isinstance(metadata, dict) and metadata.get("nearnb.traceback"):
            self.traceback = metadata["nearnb.traceback"]

    def _on_step(self, data: dict[str, Any]) -> None:
        details = data.get("step_details") or {}
        if not isinstance(details, dict) or details.get("type") != "tool_calls":
            return
        for call in details.get("tool_calls") or ():
            function = call.get("function") or {}
            state = self.tool_calls.get(call.get("id"))
            if state is None:
                state = self.tool_calls[call.get("id")] = ToolCallState(
                    id=call.get("id"),
                    name=function.get("name", ""),
                    arguments=function.get("arguments", ""),
                )
            if function.get("output") is not None:
                state.output = function["output"]
            state.step_status = data.get("status") or state.step_status


def _content_texts(content: Any) -> Iterable[str]:
    for part in content or ():
        if isinstance(part, dict) and part.get("type") == "text":
            yield (part.get("text") or {}).get("value", "")


def reduce(events: Iterable[Event], state: RunState | None = None) -> RunState:
    """Fold ``events`` into ``state`` (a new one by default) and return it."""
    state = state if state is not None else RunState()
    for event in events:
        state.apply(event)
    return state
