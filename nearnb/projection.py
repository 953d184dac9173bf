"""The stored objects a run's events imply: a pure fold, no I/O.

The store does not hear from producers; it hears from events. This module is
the one place that says which stored objects an event creates or replaces:

* ``thread.run.<status>`` carries the whole Run: it replaces the run row;
* ``thread.message.completed`` / ``thread.message.incomplete`` carry the
  whole Message: it replaces the message row (the row keeps its place in the
  thread, so a message is ordered by when it was first stored);
* a message that is still streaming lives only in the log (its deltas would
  cost a write each), exactly as it did before it had an end;
* deltas, run steps, notices and ``done`` change no row.

Because the fold is pure, the same function that the store sink uses to
write rows also rebuilds them from any stored log, and a property test holds
the two to each other (what the REST API answers == a fold of the log).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from .events import Event, Message, Run
from .eventseq import whole_events

#: Events whose data is a whole Message that replaces the stored one.
MESSAGE_ROW_EVENTS = frozenset({"thread.message.completed", "thread.message.incomplete"})


@dataclass
class Rows:
    """Objects to upsert, newest state per id, in first-seen order."""

    runs: dict[str, Run] = field(default_factory=dict)
    messages: dict[str, Message] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.runs or self.messages)


def is_run_event(name: str) -> bool:
    """``thread.run.<status>`` (not a step event): its data is the whole Run."""
    return name.startswith("thread.run.") and not name.startswith("thread.run.step.")


def project(events: Iterable[Event], rows: Rows | None = None) -> Rows:
    """Fold ``events`` into the rows they imply (adding to ``rows`` if given)."""
    rows = rows if rows is not None else Rows()
    for event in whole_events(events):  # compact deltas change no row: not even built
        if event.event == "thread.message.delta":  # most events by far; they change no row
            continue
        data = event.data
        if not isinstance(data, dict):
            continue
        if is_run_event(event.event):
            run = Run.model_validate(data)
            rows.runs[run.id] = run
        elif event.event in MESSAGE_ROW_EVENTS:
            message = Message.model_validate(data)
            rows.messages[message.id] = message
    return rows
