"""A pure fold of run events into what a view shows.

Every sink that renders a run — the ipywidgets view, the display-handle and
plain renderers, the terminal, the attach client — feeds events into a
:class:`RunState` and reads the state back. It does no I/O, reads no clock
and imports nothing from IPython, so it is tested in a plain process and gives
the same answer for a live run and for its replay.

Text is accumulated as a list of chunks (O(n) for a whole stream) and joined
lazily; events already applied (``seq`` not above the last one seen) are
ignored, which makes a resumed SSE stream idempotent.

Tool calls are run steps (``thread.run.step.*``), kept apart from the
messages in :attr:`RunState.steps`; :attr:`RunState.timeline` lists messages
and steps in the order they *finished*, which is the one order every view
shows them in (a view can then only ever append). A message that belongs to
another thread (an agent replying elsewhere) is counted but never shown.
A ``run_agent`` step names the child run it stands for (:class:`ChildRef`);
the child's own events are folded into a state of their own
(:class:`nearnb.view.tree.RunTree`), never into the parent's.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .events import HIDDEN_MESSAGE_TYPE_PREFIXES, TERMINAL_EVENTS, Event, delta_text
from .eventseq import EventSeq, event_of, raw_entries
from .logcolumns import Stretch
from .stepstate import STEP_ENDED, ChildRef, StepState, ToolCallState, child_ref  # noqa: F401

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
    def is_tool_output(self) -> bool:
        """A tool's output stored NEAR's way: shown in its tool step, not as an answer."""
        return "tool_call_id" in self.metadata

    @property
    def hidden(self) -> bool:
        """``system:*`` / ``agent:*`` messages are not part of the answer."""
        return (self.message_type or "").startswith(HIDDEN_MESSAGE_TYPE_PREFIXES)


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
    steps: list[StepState] = field(default_factory=list)
    timeline: list[MessageState | StepState] = field(default_factory=list)
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
    foreign_messages: int = 0
    _steps_by_id: dict[str, StepState] = field(default_factory=dict, repr=False)
    _foreign_ids: set[str] = field(default_factory=set, repr=False)

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
    def tool_calls(self) -> dict[str, ToolCallState]:
        """Every tool call by id, across steps (a later step's call wins)."""
        return {call.id: call for step in self.steps for call in step.calls if call.id}

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
        if name == "thread.message.delta":
            packed = event.text_delta  # the compact form: no dict to build or read
            if packed is not None:
                self._on_delta(packed[0], packed[1], event.at)
            else:
                data = event.data if isinstance(event.data, dict) else {}
                self._on_delta(data.get("id"), delta_text(data), event.at)
            return True
        data = event.data if isinstance(event.data, dict) else {}
        if name == "thread.run.step.delta":
            self._on_step_delta(data)
        elif name.startswith("thread.run.step."):
            self._on_step(name, data)
        elif name.startswith("thread.message."):
            self._on_message(name, data, event.thread_id)
        elif name.startswith("thread.run."):
            self._on_run(name, data)
        elif name == "error":
            self.error = str(data.get("message") or event.data)
            self.error_code = data.get("code")
        elif name == "done":
            self.done = True
        return True

    def apply_many(self, events: Iterable[Event]) -> int:
        """:meth:`apply` each event in order; how many were new. Compact text deltas
        (:mod:`nearnb.eventseq` entries or compact Events) continuing the streaming
        message are folded a run at once, and repeats are skipped, without an Event."""
        if not isinstance(events, EventSeq):
            return self._apply_each(raw_entries(events))
        events = events.after(self.last_seq)  # numbered upwards: what was applied is skipped
        stretch = events.stretch()
        return self._apply_each(events.raw()) if stretch is None else self.apply_stretch(stretch)

    def apply_stretch(self, stretch: Stretch) -> int:
        """:meth:`apply_many` of one :class:`~nearnb.logcolumns.Stretch` of deltas: a fast
        stream's usual batch, folded whole when it continues the streaming message."""
        current, (seq, mid, _, run_id, thread_id, texts, ats) = self.streaming, stretch
        if current is None or seq <= self.last_seq or current.id != mid or mid in self._foreign_ids:
            return self._apply_each(stretch.entries())
        return self._fold_run(
            (seq, ats[0], run_id, thread_id), seq + len(texts) - 1, ats[-1], texts
        )

    def _apply_each(self, entries: Iterable[Any]) -> int:
        applied, texts = 0, []  # the texts of a run of deltas not folded yet
        first: tuple[int, float, str, str] | None = None  # seq, at, run id, thread id
        last_seq, last_at = self.last_seq, 0.0
        for entry in entries:
            if type(entry) is tuple:
                seq, at, mid, text = entry[0], entry[1], entry[2], entry[3]
            else:
                seq, packed = entry.seq, entry.text_delta
                if packed is not None:
                    at, (mid, text, _) = entry.at, packed
            if seq and seq <= last_seq:
                continue  # already applied (or a repeat within this batch)
            current = self.streaming
            if (
                (type(entry) is tuple or packed is not None)
                and current is not None
                and current.id == mid
                and mid not in self._foreign_ids
            ):
                if first is None and type(entry) is tuple:
                    first = (seq, at, entry[5], entry[6])
                elif first is None:
                    first = (seq, at, entry.run_id, entry.thread_id)
                texts.append(text)
                last_seq, last_at = seq, at
                continue
            if first is not None:
                applied += self._fold_run(first, last_seq, last_at, texts)
                first, texts = None, []
            applied += self.apply(event_of(entry))
            last_seq = self.last_seq
        if first is not None:
            applied += self._fold_run(first, last_seq, last_at, texts)
        return applied

    def _fold_run(
        self, first: tuple[int, float, str, str], last_seq: int, last_at: float, texts: list[str]
    ) -> int:
        """What :meth:`apply` of each delta of a run (of the streaming message) does."""
        current, count, text = self.streaming, len(texts), "".join(texts)
        assert current is not None
        _, first_at, run_id, thread_id = first
        self.last_seq, self.last_at, self.last_delta_at = last_seq, last_at, last_at
        self.thread_id, self.run_id = self.thread_id or thread_id, self.run_id or run_id
        self.first_at = first_at if self.first_at is None else self.first_at
        self.first_delta_at = first_at if self.first_delta_at is None else self.first_delta_at
        self.events += count
        self.deltas += count
        self.chars += len(text)
        current.deltas += count
        if text:
            current.append(text)
        return count

    def _on_delta(self, msg_id: str | None, text: str, at: float) -> None:
        self.deltas += 1
        if self.first_delta_at is None:
            self.first_delta_at = at
        self.last_delta_at = at
        self.chars += len(text)
        if msg_id in self._foreign_ids:
            return  # received by this run, so counted; shown in its own thread only
        current = self.streaming
        if current is None or (msg_id and current.id and current.id != msg_id):
            # A delta with no preceding ``created`` (NEAR's hub never sends one).
            current = self.streaming = MessageState(id=msg_id)
        current.deltas += 1
        if text:
            current.append(text)

    def _on_message(self, name: str, data: dict[str, Any], thread_id: str | None) -> None:
        msg_id = data.get("id")
        home = thread_id or self.thread_id
        if msg_id in self._foreign_ids or (home and data.get("thread_id") not in (None, home)):
            self._on_foreign(name, msg_id)
            return
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
        self.timeline.append(current)

    def _on_foreign(self, name: str, msg_id: str | None) -> None:
        """A message in another thread: remember its id so its deltas stay hidden."""
        if msg_id:
            self._foreign_ids.add(msg_id)
        if self.streaming is not None and msg_id and self.streaming.id == msg_id:
            self.streaming = None  # its deltas arrived before we knew its thread
        if name in ("thread.message.completed", "thread.message.incomplete"):
            self.foreign_messages += 1

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

    def _step(self, step_id: str | None) -> StepState:
        step = self._steps_by_id.get(step_id) if step_id else None
        if step is None:
            step = StepState(id=step_id)
            self.steps.append(step)
            if step_id:
                self._steps_by_id[step_id] = step
        return step

    def _on_step(self, name: str, data: dict[str, Any]) -> None:
        """A whole RunStep (created, in_progress, completed, failed ...)."""
        details = data.get("step_details") or {}
        if not isinstance(details, dict) or details.get("type") != "tool_calls":
            return  # message_creation steps: the message events already say it
        step = self._step(data.get("id"))
        step.child = step.child or child_ref(data)
        for index, call in enumerate(details.get("tool_calls") or ()):
            if not isinstance(call, dict):
                continue
            state = step.call_at(index)
            function = call.get("function") or {}
            state.id = call.get("id") or state.id
            state.type = call.get("type") or state.type
            # A whole object is the truth so far: replace, never append.
            if function.get("name") is not None:
                state.name = function["name"]
            if function.get("arguments") is not None:
                state.arguments = function["arguments"]
            if function.get("output") is not None:
                state.output = function["output"]
        last_error = data.get("last_error")
        if isinstance(last_error, dict):
            step.last_error = last_error.get("message")
        status = name.rsplit(".", 1)[1]
        self._set_step_status(step, status if status in STEP_ENDED else "in_progress")

    def _on_step_delta(self, data: dict[str, Any]) -> None:
        """OpenAI's RunStepDelta: name and arguments fragments are appended."""
        delta = data.get("delta") or {}
        details = delta.get("step_details") if isinstance(delta, dict) else None
        if not isinstance(details, dict) or details.get("type") != "tool_calls":
            return
        step = self._step(data.get("id"))
        for position, fragment in enumerate(details.get("tool_calls") or ()):
            if not isinstance(fragment, dict):
                continue
            index = fragment.get("index")
            state = step.call_at(index if isinstance(index, int) else position)
            state.id = fragment.get("id") or state.id
            state.type = fragment.get("type") or state.type
            function = fragment.get("function") or {}
            state.name += function.get("name") or ""
            state.arguments += function.get("arguments") or ""
            if function.get("output") is not None:
                state.output = function["output"]
        if not step.ended:
            self._set_step_status(step, "in_progress")

    def _set_step_status(self, step: StepState, status: str) -> None:
        was_ended = step.ended
        if was_ended and status not in STEP_ENDED:
            return  # a late or replayed in_progress never reopens a finished step
        step.status = status
        for call in step.calls:
            call.step_status = status
        if step.ended and not was_ended:
            self.timeline.append(step)  # finished: from now on it is shown in place


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
