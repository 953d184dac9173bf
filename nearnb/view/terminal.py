"""The terminal view used by ``nearnb run --stream``.

Text is written as each delta arrives (a terminal appends cheaply, so there
is nothing to coalesce). Unlike NEAR's CLI, which printed nothing for agents
that do not stream, a completed answer whose text was not streamed is
printed whole when it completes, so every agent shows its answer.

Usage::

    renderer = TerminalRenderer(stream=sys.stdout)
    handle = start_run(agent, message, on_event=renderer)
    renderer.finish(handle.wait())
"""

from __future__ import annotations

import sys
import threading
from typing import Any, TextIO

from ..events import Event, delta_text
from ..reducer import NOTICE_MESSAGE_TYPE, RunState
from .bundle import status_label


class TerminalRenderer:
    """Event callback that prints a run to a text stream.

    ``show_text=False`` prints only completed answers (no live deltas), as
    does ``show_streaming_message=False`` (the agent's metadata flag).
    Notices, tool calls and the optional end ``summary`` line go to
    ``status`` (stderr by default; ``None`` silences them), so ``stream`` holds
    only the answer text and can be piped.
    """

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        show_text: bool = True,
        show_streaming_message: bool = True,
        status: TextIO | None = sys.stderr,
        summary: bool = False,
    ) -> None:
        self.stream = stream if stream is not None else sys.stdout
        self.status = status
        self.live = show_text and show_streaming_message
        self.summary = summary
        self.state = RunState()
        self._lock = threading.Lock()
        self._streamed: set[str | None] = set()
        self._line_open = False
        self._finished = False

    def __call__(self, event: Event) -> None:
        with self._lock:
            if self._finished or not self.state.apply(event):
                return
            name = event.event
            if name == "thread.message.delta":
                self._on_delta(event.data if isinstance(event.data, dict) else {})
            elif name in ("thread.message.completed", "thread.message.incomplete"):
                self._on_message_end()
            elif name == "thread.run.step.completed":
                self._on_tools()

    def _on_delta(self, data: dict[str, Any]) -> None:
        if not self.live:
            return
        text = delta_text(data)
        streaming = self.state.streaming
        self._streamed.add(streaming.id if streaming else data.get("id"))
        if text:
            self.stream.write(text)
            self.stream.flush()
            self._line_open = not text.endswith("\n")

    def _on_message_end(self) -> None:
        message = self.state.messages[-1]
        if message.message_type == NOTICE_MESSAGE_TYPE:
            self._note(f"note: {message.text}")
            return
        if message.id in self._streamed:
            self._end_paragraph()
        elif message.role == "assistant" and not message.hidden:
            self.stream.write(message.text.rstrip("\n") + "\n")
            self._line_open = False
            self._end_paragraph()
        self.stream.flush()

    def _on_tools(self) -> None:
        for call in self.state.tool_calls.values():
            if call.output is not None and call.id not in self._streamed:
                self._streamed.add(call.id)
                self._note(f"tool {call.name}({call.arguments}) -> {call.output}")

    def _end_paragraph(self) -> None:
        self.stream.write("\n\n" if self._line_open else "\n")
        self._line_open = False

    def _note(self, line: str) -> None:
        if self.status is not None:
            if self._line_open and self.status is self.stream:
                self._end_paragraph()
            print(line, file=self.status, flush=True)

    def finish(self, result: Any = None) -> None:
        """Close the last line; fold in ``result.events`` missed live; print
        the summary line if asked. Failures are the caller's to report."""
        with self._lock:
            if self._finished:
                return
            self._finished = True
            for event in getattr(result, "events", None) or ():
                self.state.apply(event)
            if self._line_open:
                self.stream.write("\n")
                self._line_open = False
            self.stream.flush()
            if self.summary:
                state = self.state
                deltas = getattr(result, "deltas", state.deltas)
                self._note(
                    f"[{status_label(state.status)} · {deltas:,} deltas · "
                    f"{state.chars:,} chars · {state.elapsed:.1f} s]"
                )
