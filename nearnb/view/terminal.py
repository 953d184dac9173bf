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

import contextlib
import io
import os
import sys
import threading
from collections.abc import Iterable
from typing import Any, TextIO

from ..events import Event, delta_text
from ..reducer import ChildRef, RunState
from .bundle import AnswerBlock, call_plain
from .present import RunInfo, present, status_label
from .tree import ChildInfo, RunTree

#: Events after which finished blocks (answers, tool steps, notices) may be new.
_BOUNDARIES = (
    "thread.message.completed",
    "thread.message.incomplete",
    "thread.run.step.completed",
    "thread.run.step.failed",
    "thread.run.step.cancelled",
    "thread.run.step.expired",
)


class TerminalRenderer:
    """Event callback that prints a run to a text stream.

    ``show_text=False`` prints only completed answers (no live deltas), as
    does ``show_streaming_message=False`` (the agent's metadata flag).
    Notices, tool calls and the optional end ``summary`` line go to
    ``status`` (stderr by default; ``None`` silences them), so ``stream`` holds
    only the answer text and can be piped.

    What is printed when a message or step ends comes from
    :func:`~nearnb.view.present.present`; only the live deltas are written
    straight from events, because a terminal appends and cannot redraw.
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
        self.info = RunInfo(show_streaming_message=self.live)
        self.state = RunState()
        self._lock = threading.Lock()
        self._streamed: set[str] = set()  # keys of messages whose deltas were written
        self._writing = False  # deltas of the current message were written
        self._seen = 0  # timeline entries already printed
        self._notices = 0
        self._line_open = False
        self._finished = False
        self.tree = RunTree(self.state)
        self._children: dict[str, TerminalRenderer] = {}

    def follow_child(self, run_id: str, *, stop: Any = None, **info: Any) -> None:
        """What a sub-agent is (``agent_name``, ``show_streaming_message``); a terminal
        has no Stop button, so ``stop`` is not kept (Ctrl-C stops the whole tree)."""
        with self._lock:
            self.tree.info[run_id] = ChildInfo(**info)

    def __call__(self, event: Event) -> None:
        with self._lock:
            if self._finished:
                return
            if self.tree.state_for(event) is not self.state:
                self._child(event)
                return
            if not self.state.apply(event):
                return
            name = event.event
            if name == "thread.message.delta":
                self._on_delta(event.data if isinstance(event.data, dict) else {})
            elif name in _BOUNDARIES:
                self._print_new()

    def _child(self, event: Event) -> None:
        """A sub-agent's event: its text and notes go to ``status``, indented under
        a ``↳ agent`` line, so ``stream`` keeps only the parent's answer."""
        self.tree.apply(event)  # where it sits in the tree: for grandchildren's depth
        if self.status is None:
            return
        child = self._children.get(event.run_id)
        if child is None:
            ref = next(
                (
                    step.child
                    for state in (self.state, *self.tree.runs.values())
                    for step in state.steps
                    if step.child is not None and step.child.run_id == event.run_id
                ),
                ChildRef(event.run_id, ""),
            )
            depth = self.tree.depth(event.run_id)
            out = Indented(self.status, "  │ " * depth)
            info = self.tree.child_info(ref)
            self._note(f"{'  │ ' * (depth - 1)}↳ {info.agent_name or 'sub-agent'}")
            child = self._children[event.run_id] = TerminalRenderer(
                out,
                show_text=self.live,
                show_streaming_message=info.show_streaming_message,
                status=out,
                summary=True,
            )
        child(event)
        if event.event == "done":
            child.finish()

    def _on_delta(self, data: dict[str, Any]) -> None:
        streaming = self.state.streaming
        if not self.live or streaming is None or streaming.id != data.get("id"):
            return  # not shown live, or a message of another thread
        text = delta_text(data)
        self._streamed.add(streaming.id or f"@{id(streaming)}")
        self._writing = True
        if text:
            self.stream.write(text)
            self.stream.flush()
            self._line_open = not text.endswith("\n")

    def _print_new(self) -> None:
        """Print what finished since the last boundary, in the view model's order."""
        vm = present(self.state, self.info, since=self._seen)
        self._seen = vm.timeline_end
        for notice in vm.header.notices[self._notices :]:
            self._note(f"note: {notice}")
        self._notices = len(vm.header.notices)
        if self._writing and self.state.streaming is None:
            self._end_paragraph()  # the streamed message (answer or draft) ended
            self._writing = False
        for block in vm.blocks:
            if isinstance(block, AnswerBlock):
                if block.key not in self._streamed:
                    self.stream.write(block.text.rstrip("\n") + "\n")
                    self._line_open = False
                    self._end_paragraph()
            else:
                for call in block.calls:
                    self._note(call_plain(call))
        self.stream.flush()

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
                vm = present(self.state, self.info, deltas=getattr(result, "deltas", None))
                self._note(f"[{status_label(vm.status)} · {vm.counter.summary}]")


class Indented:
    """A text stream that starts every line with ``prefix`` (a sub-agent's output)."""

    def __init__(self, stream: TextIO, prefix: str) -> None:
        self.stream, self.prefix, self._at_start = stream, prefix, True

    def write(self, text: str) -> int:
        for line in text.splitlines(keepends=True):
            if self._at_start:
                self.stream.write(self.prefix)
            self.stream.write(line)
            self._at_start = line.endswith("\n")
        return len(text)

    def flush(self) -> None:
        self.stream.flush()


class ReaderSafe:
    """Standard output that a reader may stop reading (``nearnb run --stream | head``).

    The first ``BrokenPipeError`` stops the printing, not the run: the run goes
    on to its end and is stored whole. File descriptor 1 then points at the
    null device, so the interpreter's last flush of ``sys.stdout`` at exit does
    not print a ``BrokenPipeError`` either.
    """

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.broken = False

    def write(self, text: str) -> int:
        if not self.broken:
            try:
                return self.stream.write(text)
            except BrokenPipeError:
                self._reader_gone()
        return len(text)

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        if not self.broken:
            try:
                self.stream.flush()
            except BrokenPipeError:
                self._reader_gone()

    def _reader_gone(self) -> None:
        self.broken = True
        with contextlib.suppress(OSError, ValueError, io.UnsupportedOperation):
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, self.stream.fileno())
            os.close(null)
