"""What a finished run produced: :class:`RunResult`, the value of a ``%%near_agent`` cell.

Built from a run's events and their fold, so a live run, an attached stream
and a replayed log give the same result.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .events import Event, Message
from .eventseq import whole_events
from .reducer import RunState

if TYPE_CHECKING:
    from .store import Store


@dataclass
class RunResult:
    """What a finished run produced; the value of a ``%%near_agent`` cell."""

    thread_id: str
    run_id: str
    status: str
    agent: str
    model: str
    messages: list[Message]
    deltas: int
    #: The run's log: a read-only ``Sequence[Event]`` (an :class:`~nearnb.eventseq.EventSeq`
    #: for a local run, whose text deltas are made into Events as they are read).
    events: Sequence[Event] = field(repr=False)
    error: str | None = None
    traceback: str | None = field(default=None, repr=False)
    notice: str | None = None
    #: Results of the child runs this run started (``env.run_agent``), in order.
    children: list[RunResult] = field(default_factory=list, repr=False)

    def __repr__(self) -> str:
        """One line (also ``Out[n]``): the view already shows the answers."""
        answers = len(self.messages)
        parts = [
            self.status,
            self.agent,
            self.model,
            f"{answers} answer{'s' * (answers != 1)}",
            f"{self.deltas:,} deltas",
            f"thread_id={self.thread_id}",
            f"run_id={self.run_id}",
        ]
        if self.error:
            first_line = self.error.strip().splitlines()[0] if self.error.strip() else ""
            parts.append(f"error={first_line!r}")
        return "<RunResult " + " · ".join(p for p in parts if p) + ">"

    @property
    def text(self) -> str:
        """The user-facing answers, separated by blank lines."""
        return "\n\n".join(m.text for m in self.messages)

    def save(self, path: str | os.PathLike[str], *, store: Store | None = None) -> Path:
        """Export this run as a recorded-run file (JSON Lines) and return its path.

        The file holds the agent's metadata, the thread as the run found it,
        the run's event log and every provider request with what came back:
        ``nearnb.attach(path)`` plays it, ``provider="replay:" + path`` re-runs
        the agent against it offline. Read from ``store`` (default: this
        process's), which must hold the run: a result from ``attach`` to another
        machine's hub has nothing to export here.
        """
        from .export import export_run

        return export_run(self.run_id, path, store=store)

    @classmethod
    def from_state(cls, state: RunState, events: Sequence[Event], *, agent: str = "") -> RunResult:
        """Build a result from reducer state (used by live runs and by attach)."""
        messages = []
        for event in whole_events(events):  # compact deltas are never a whole message
            if event.event in ("thread.message.completed", "thread.message.incomplete"):
                data = event.data if isinstance(event.data, dict) else {}
                if "content" not in data:
                    continue
                message = Message.model_validate(data)
                if state.thread_id and message.thread_id != state.thread_id:
                    continue  # a reply the agent posted to another thread
                if message.role == "assistant" and not (message.hidden or message.is_tool_output):
                    messages.append(message)
        return cls(
            thread_id=state.thread_id or "",
            run_id=state.run_id or "",
            status=state.status,
            agent=agent or state.assistant_id,
            model=state.model,
            messages=messages,
            deltas=state.deltas,
            events=events,
            error=state.error,
            traceback=state.traceback,
            notice=state.notices[0] if state.notices else None,
        )
