"""Export one stored run as a recorded-run file (:mod:`nearnb.replayfile`).

``RunResult.save``, ``nearnb export`` and the hub's ``GET .../runs/{rid}/export``
all come here, so the three give the same bytes for the same run: the file
holds no export time or other per-export value, and a fixture exported twice
does not show up as a change in a repository.

What is read: the run row, the recording header and calls
(:mod:`nearnb.recording`), the thread's messages up to where it stood when the
run began, and the event log as stored (its JSON spliced in, not re-encoded).
A run whose event log has expired cannot be exported: its events are the
point of the file.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from . import replayfile
from .events import Message, Run
from .recording import recorded_calls
from .store import Store, StoreError, default_store


def export_lines(store: Store, run_id: str, *, thread_id: str | None = None) -> Iterator[str]:
    """The lines of run ``run_id``'s file; StoreError (a LookupError) when there is none.

    Everything is checked before the first line is yielded, so a caller that
    streams the lines (the hub) can still answer 404 instead of half a file.
    """
    run = store.get_run(run_id)
    if run is None or (thread_id is not None and run.thread_id != thread_id):
        where = f" in thread {thread_id}" if thread_id else ""
        raise StoreError(f"run not found: {run_id}{where}")
    events = store.event_rows(run_id)
    if not events:
        raise StoreError(f"run {run_id} has no event log (expired, or never stored)")
    header, calls = recorded_calls(store, run_id)
    return _lines(store, run, header or {}, calls, events)


def _lines(
    store: Store,
    run: Run,
    header: dict[str, Any],
    calls: list[tuple[int, dict[str, Any], dict[str, Any] | None]],
    events: list[tuple[int, str, str, float]],
) -> Iterator[str]:
    label = header.get("model") or run.model or ""
    agent = header.get("agent") or {"identifier": run.assistant_id, "name": _name(run)}
    yield replayfile.line(
        {
            "type": replayfile.FORMAT,
            "version": replayfile.VERSION,
            "run_id": run.id,
            "thread_id": run.thread_id,
            "status": run.status,
            "model": label,
            "provider": header.get("provider") or label.partition("::")[0],
            "agent": agent,
        }
    )
    for message in _input_messages(store, run, header):
        yield replayfile.line({"type": "message", "message": message.model_dump(mode="json")})
    for seq, name, data, at in events:
        yield replayfile.event_line(seq, name, data, at)
    for n, request, response in calls:
        yield from replayfile.call_lines(n, request, response)


def _name(run: Run) -> str:
    parts = run.assistant_id.split("/")
    return parts[1] if len(parts) == 3 else run.assistant_id


def _input_messages(store: Store, run: Run, header: dict[str, Any]) -> list[Message]:
    """The thread as the run found it: messages up to the recorded last one.

    Without a recording header (recording off, or a run that never reached a
    provider) the best guess is every message not written by this run that
    was created no later than it.
    """
    messages = store.list_messages(run.thread_id)
    last = header.get("last_input_message")
    if "last_input_message" in header:
        if last is None:
            return []
        ids = [m.id for m in messages]
        return messages[: ids.index(last) + 1] if last in ids else []
    return [m for m in messages if m.run_id != run.id and m.created_at <= run.created_at]


def export_run(run_id: str, path: str | os.PathLike[str], *, store: Store | None = None) -> Path:
    """Write run ``run_id``'s recorded-run file to ``path``; returns the path."""
    lines = export_lines(store or default_store(), run_id)
    return replayfile.write(path, lines)
