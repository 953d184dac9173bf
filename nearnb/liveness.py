"""Orphaned runs: a run whose producing process died before writing its ``done``.

Every run records its producer (``metadata["nearnb.pid"]`` and
``["nearnb.host"]``, see :class:`~nearnb.runs.RunContext`). If that process is
killed mid-run (a notebook kernel restarted, a CLI ``kill -9``), nothing ever
ends the run: it stays ``in_progress`` and every stream of it waits forever.
:func:`expire_if_orphaned` ends such a run on the dead producer's behalf, as
``expired``, so readers of the log (the hub's streams, ``attach``) finish.

It acts only on what it can prove:

* the producer ran on this host and its pid is no longer a live process
  (immediate; the only test for old rows that never had a heartbeat); or
* across machines: the producer heartbeats each of its runs on the event bus
  (:mod:`nearnb.bus_watch`, every ``$NEARNB_HEARTBEAT_INTERVAL`` s), and the
  last beat is older than ``$NEARNB_HEARTBEAT_TTL`` (5 s).

Runs without either proof (older rows, runs written by other tools, a remote
producer that never beat) are left alone. Ending is the store's
compare-and-set (:meth:`~nearnb.store.Store.end_run`), so when several hubs
notice at once exactly one writes the closing events; that one publishes them
on the bus too, and every hub's viewers see the same end.
"""

from __future__ import annotations

import os
import time

from .bus import EventBus, beat_ttl, host_name
from .events import TERMINAL_STATUSES, Event, Message, Run, now, text_content
from .reducer import reduce
from .store import Store


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` is a live process on this host (a zombie counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except OSError:  # e.g. an out-of-range pid: unknown, so never treat as dead
        return True
    return True


def orphaned_pid(run: Run) -> int | None:
    """The producer's pid if it ran on this host and is gone, else None."""
    raw = run.metadata.get("nearnb.pid", "")
    if not raw.isdigit() or run.metadata.get("nearnb.host") != host_name():
        return None
    pid = int(raw)
    if pid <= 0 or pid_alive(pid):
        return None
    return pid


def stale_beat(
    bus: EventBus | None, run_id: str, ttl: float | None = None, at: float | None = None
) -> str | None:
    """Why the run's producer counts as dead by its heartbeats, or None (alive, or no beats)."""
    if bus is None:
        return None
    beat = bus.last_beat(run_id)
    if beat is None:
        return None
    owner, last = beat
    age = (time.time() if at is None else at) - last
    limit = beat_ttl() if ttl is None else ttl
    if age <= limit:
        return None
    return f"the process running this run ({owner}) sent no heartbeat for {age:.1f} s"


def expire_if_orphaned(
    store: Store, run_id: str, bus: EventBus | None = None, *, ttl: float | None = None
) -> bool:
    """End a non-terminal run whose producer died: ``thread.run.expired`` then ``done``.

    Dead means a dead pid on this host, or (with a ``bus``) a heartbeat older
    than ``ttl`` (default ``$NEARNB_HEARTBEAT_TTL``). Messages the run left
    open become ``incomplete`` (reason ``run_expired``, the text streamed so
    far kept), each with a ``thread.message.incomplete`` event before the
    run's. Returns True if this call ended the run (and published its end on
    ``bus``); False if there was nothing to do or another writer got there first.
    """
    run = store.get_run(run_id)
    if run is None or run.status in TERMINAL_STATUSES:
        return False
    pid = orphaned_pid(run)
    if pid is not None:
        reason = f"the process running this run (pid {pid}) ended before it finished"
    else:
        reason = stale_beat(bus, run_id, ttl)
    if reason is None:
        return False
    logged = store.events(run_id)
    if logged and logged[-1].event == "done":
        return False
    after = logged[-1].seq if logged else 0
    stamp = now()
    open_messages = _open_messages(store, run, logged, stamp)
    expired = Run.model_validate(
        {
            **run.model_dump(),
            "status": "expired",
            "expires_at": stamp,
            "last_error": {
                "code": "server_error",
                "message": reason,
            },
        }
    )
    closing = [
        *(("thread.message.incomplete", m.model_dump(mode="json")) for m in open_messages),
        ("thread.run.expired", expired.model_dump(mode="json")),
        ("done", "[DONE]"),
    ]
    at = time.time()
    events = [
        Event.model_construct(
            seq=after + i, event=name, data=data, run_id=run.id, thread_id=run.thread_id, at=at
        )
        for i, (name, data) in enumerate(closing, start=1)
    ]
    if not store.end_run(expired, events, open_messages, after=after):
        return False
    if bus is not None:
        bus.publish(events)  # the winner tells every hub; the store already has them
    return True


def _open_messages(store: Store, run: Run, logged: list[Event], stamp: int) -> list[Message]:
    """The run's messages still in progress, as ``incomplete`` with the text logged so far.

    A streaming message lives only in the log until it settles; one the store
    holds as ``in_progress`` counts too.
    """
    found: dict[str, Message] = {}
    for message in store.list_messages(run.thread_id, run_id=run.id):
        if message.status == "in_progress":
            found[message.id] = message
    state = reduce(logged)
    streaming = state.streaming
    if streaming is not None and streaming.id:
        created = next(
            (
                e.data
                for e in reversed(logged)
                if e.event == "thread.message.created"
                and isinstance(e.data, dict)
                and e.data.get("id") == streaming.id
            ),
            None,
        )
        base = found.get(streaming.id) or (
            Message.model_validate(created) if created is not None else None
        )
        if base is not None:
            found[streaming.id] = Message.model_validate(
                {**base.model_dump(), "content": text_content(streaming.text)}
            )
    return [
        Message.model_validate(
            {
                **m.model_dump(),
                "status": "incomplete",
                "incomplete_at": stamp,
                "incomplete_details": {"reason": "run_expired"},
            }
        )
        for m in found.values()
    ]
