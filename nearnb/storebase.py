"""What every store of record does, written once for SQLite and PostgreSQL.

:class:`BaseStore` holds threads, messages, runs, per-run event logs and the
run-control rows (cancel requests, heartbeats) in SQL that both engines
accept: ``?`` placeholders, ``INSERT ... ON CONFLICT ... DO UPDATE`` and
nothing engine-specific. A backend supplies a transaction (:meth:`_tx`,
yielding an object with ``execute``/``executemany`` like ``sqlite3``'s) and a
one-query read (:meth:`_query`); :mod:`nearnb.store` (SQLite) and
:mod:`nearnb.pgstore` (PostgreSQL) are the two. Keeping one body of SQL is
what makes both promise the same behaviour, which the tests check on both.

Objects are stored as their OpenAI JSON plus the few columns that queries
need, so what goes in is exactly what comes out.
"""

from __future__ import annotations

import os
import sqlite3
import time
from contextlib import AbstractContextManager
from functools import lru_cache
from itertools import chain, islice
from pathlib import Path
from typing import Literal

from .events import TERMINAL_STATUSES, Event, Message, Run, Thread, new_id, now
from .logrows import expand_events, expand_rows, log_rows
from .storeschema import SCHEMA, Connection

__all__ = ["SCHEMA", "BaseStore", "Connection", "IntegrityError", "StoreError"]

DEFAULT_EVENT_TTL = 24 * 3600.0

#: The constraint violation both backends raise (PostgreSQL's are re-raised as
#: this type), so code that writes through :meth:`BaseStore.write` catches one.
IntegrityError = sqlite3.IntegrityError


class StoreError(LookupError):
    """An object the caller named does not exist (message names which)."""


class _Stale(Exception):
    """A conditional write found the store changed under it; nothing was written."""


#: Run statuses after which a run writes nothing more (its log may expire).
#: ``requires_action`` ends a stream but not the run, so it is not one of them.
ENDED_STATUSES = TERMINAL_STATUSES - {"requires_action"}


def _put_message(db: Connection, message: Message) -> None:
    db.execute(
        "INSERT INTO messages (id, thread_id, run_id, obj) VALUES (?, ?, ?, ?) "
        "ON CONFLICT(id) DO UPDATE SET obj = excluded.obj, run_id = excluded.run_id",
        (message.id, message.thread_id, message.run_id, message.model_dump_json()),
    )


def _put_run(db: Connection, run: Run) -> None:
    ended = time.time() if run.status in ENDED_STATUSES else None
    db.execute(
        "INSERT INTO runs (id, thread_id, status, ended_at, obj) VALUES (?, ?, ?, ?, ?) "
        "ON CONFLICT(id) DO UPDATE SET status = excluded.status, "
        "ended_at = excluded.ended_at, obj = excluded.obj",
        (run.id, run.thread_id, run.status, ended, run.model_dump_json()),
    )


_INSERT_EVENTS = "INSERT INTO events (run_id, seq, last_seq, event, data, thread_id, at) VALUES "
#: Rows per INSERT: a fast run writes hundreds of events a batch, and one statement
#: per row costs a statement step (and in sqlite3 a GIL release) per row.
_ROWS_PER_INSERT = 50


@lru_cache(maxsize=_ROWS_PER_INSERT)
def _insert_events_sql(rows: int) -> str:
    return _INSERT_EVENTS + ", ".join(["(?, ?, ?, ?, ?, ?, ?)"] * rows)


def _event_statements(events: list[Event]) -> list[tuple[str, list[object]]]:
    """The INSERTs that append ``events``: one per :data:`_ROWS_PER_INSERT` rows, or fewer.

    Rows as :mod:`nearnb.logrows` lays them out (runs of text deltas share one).
    Not ``executemany``: psycopg runs it in pipeline mode, whose set-up and
    sync cost more than the row itself in the common batch of one delta.
    """
    rows = log_rows(events)
    statements = []
    for start in range(0, len(rows), _ROWS_PER_INSERT):
        part = rows[start : start + _ROWS_PER_INSERT]
        statements.append((_insert_events_sql(len(part)), list(chain.from_iterable(part))))
    return statements


def _put_events(db: Connection, events: list[Event]) -> None:
    for sql, args in _event_statements(events):
        db.execute(sql, args)


def ttl_from_env(event_ttl: float | None) -> float:
    """``event_ttl`` if given, else ``$NEARNB_EVENT_TTL``, else 24 h."""
    if event_ttl is not None:
        return event_ttl
    return float(os.environ.get("NEARNB_EVENT_TTL") or DEFAULT_EVENT_TTL)


class BaseStore:
    """Threads, messages, runs, event logs and run control, over any SQL backend.

    Subclasses set ``path`` (a file whose folder holds thread files) and
    ``event_ttl``, and implement :meth:`_tx`, :meth:`_query` and :meth:`close`.
    """

    path: Path
    event_ttl: float

    def _tx(self) -> AbstractContextManager[Connection]:
        """One write transaction: committed on exit, rolled back on an exception."""
        raise NotImplementedError

    def _query(self, sql: str, args: tuple = ()) -> list[tuple]:
        """The rows of one read query."""
        raise NotImplementedError

    def _atomic(self, sql: str, args: list[object]) -> None:
        """One writing statement, atomic on its own: a backend may spare it BEGIN and COMMIT."""
        with self._tx() as db:
            db.execute(sql, args)

    def close(self) -> None:
        raise NotImplementedError

    def describe(self) -> str:
        """Where this store keeps its data, safe to print (a file, or a URL without password)."""
        return str(self.path)

    # ------------------------------------------------------------------ threads

    def create_thread(self, metadata: dict[str, str] | None = None) -> Thread:
        thread = Thread(id=new_id("thread"), created_at=now(), metadata=metadata or {})
        with self._tx() as db:
            db.execute(
                "INSERT INTO threads (id, created_at, obj) VALUES (?, ?, ?)",
                (thread.id, thread.created_at, thread.model_dump_json()),
            )
        return thread

    def fork_thread(self, thread_id: str, metadata: dict[str, str] | None = None) -> Thread:
        """A new thread holding copies of ``thread_id``'s messages (NEAR's ``threads_fork``).

        The copies get new ids (a message belongs to one thread) and keep
        everything else, hidden messages included, in order; one transaction.
        """
        source = self.require_thread(thread_id)
        thread = Thread(
            id=new_id("thread"),
            created_at=now(),
            metadata={**source.metadata, **(metadata or {}), "nearnb.forked_from": thread_id},
        )
        copies = [
            m.model_copy(update={"id": new_id("msg"), "thread_id": thread.id})
            for m in self.list_messages(thread_id)
        ]
        with self._tx() as db:
            db.execute(
                "INSERT INTO threads (id, created_at, obj) VALUES (?, ?, ?)",
                (thread.id, thread.created_at, thread.model_dump_json()),
            )
            for message in copies:
                _put_message(db, message)
        return thread

    def get_thread(self, thread_id: str) -> Thread | None:
        rows = self._query("SELECT obj FROM threads WHERE id = ?", (thread_id,))
        return Thread.model_validate_json(rows[0][0]) if rows else None

    def require_thread(self, thread_id: str) -> Thread:
        thread = self.get_thread(thread_id)
        if thread is None:
            raise StoreError(f"thread not found: {thread_id}")
        return thread

    def thread_dir(self, thread_id: str) -> Path:
        """The folder holding a thread's files (``env.read_file`` / ``write_file``)."""
        path = self.path.parent / "threads" / thread_id / "files"
        path.mkdir(parents=True, exist_ok=True)
        return path

    # ----------------------------------------------------------------- messages

    def save_message(self, message: Message) -> Message:
        """Insert or update a message (same id keeps its place in the thread)."""
        with self._tx() as db:
            _put_message(db, message)
        return message

    def get_message(self, message_id: str) -> Message | None:
        rows = self._query("SELECT obj FROM messages WHERE id = ?", (message_id,))
        return Message.model_validate_json(rows[0][0]) if rows else None

    def list_messages(
        self,
        thread_id: str,
        *,
        limit: int | None = None,
        order: Literal["asc", "desc"] = "asc",
        after: str | None = None,
        before: str | None = None,
        run_id: str | None = None,
    ) -> list[Message]:
        """Messages of a thread, with OpenAI's cursor semantics for after/before."""
        if order not in ("asc", "desc"):
            raise ValueError(f"order must be 'asc' or 'desc', not {order!r}")
        where, args = ["thread_id = ?"], [thread_id]
        for cursor, op_asc, op_desc in ((after, ">", "<"), (before, "<", ">")):
            if cursor is None:
                continue
            rows = self._query("SELECT n FROM messages WHERE id = ?", (cursor,))
            if not rows:
                raise StoreError(f"message not found: {cursor}")
            where.append(f"n {op_asc if order == 'asc' else op_desc} ?")
            args.append(rows[0][0])
        if run_id is not None:
            where.append("run_id = ?")
            args.append(run_id)
        sql = f"SELECT obj FROM messages WHERE {' AND '.join(where)} ORDER BY n {order.upper()}"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(int(limit))
        return [Message.model_validate_json(row[0]) for row in self._query(sql, tuple(args))]

    # --------------------------------------------------------------------- runs

    def save_run(self, run: Run) -> Run:
        with self._tx() as db:
            _put_run(db, run)
        return run

    def get_run(self, run_id: str) -> Run | None:
        rows = self._query("SELECT obj FROM runs WHERE id = ?", (run_id,))
        return Run.model_validate_json(rows[0][0]) if rows else None

    def list_runs(self, thread_id: str) -> list[Run]:
        rows = self._query("SELECT obj FROM runs WHERE thread_id = ? ORDER BY n", (thread_id,))
        return [Run.model_validate_json(row[0]) for row in rows]

    # -------------------------------------------------------------- run control

    def request_cancel(self, run_id: str, by: str) -> bool:
        """Record that ``by`` asked to stop ``run_id``; True only for the first request.

        Any process may ask (a hub's Stop, another notebook, ``nearnb attach``);
        the process executing the run polls :meth:`cancel_requested`.
        """
        with self._tx() as db:
            cur = db.execute(
                "INSERT INTO run_control (run_id, cancel_by, cancel_at) VALUES (?, ?, ?) "
                "ON CONFLICT(run_id) DO UPDATE SET cancel_by = excluded.cancel_by, "
                "cancel_at = excluded.cancel_at WHERE run_control.cancel_by IS NULL",
                (run_id, by, time.time()),
            )
            return cur.rowcount == 1

    def cancel_requested(self, run_id: str) -> str | None:
        """Who asked to stop ``run_id``, or None if nobody did."""
        rows = self._query("SELECT cancel_by FROM run_control WHERE run_id = ?", (run_id,))
        return rows[0][0] if rows else None

    def beat(self, run_id: str, owner: str, at: float | None = None) -> None:
        """The heartbeat of the process producing ``run_id`` (``owner`` names it)."""
        with self._tx() as db:
            db.execute(
                "INSERT INTO run_control (run_id, owner, beat_at) VALUES (?, ?, ?) "
                "ON CONFLICT(run_id) DO UPDATE SET owner = excluded.owner, "
                "beat_at = excluded.beat_at",
                (run_id, owner, time.time() if at is None else at),
            )

    def last_beat(self, run_id: str) -> tuple[str, float] | None:
        """``(owner, time)`` of ``run_id``'s last heartbeat, or None if it never beat."""
        rows = self._query(
            "SELECT owner, beat_at FROM run_control WHERE run_id = ? AND beat_at IS NOT NULL",
            (run_id,),
        )
        return (rows[0][0], float(rows[0][1])) if rows else None

    # ------------------------------------------------------------------- events

    def append_events(self, events: list[Event]) -> None:
        """Append to run event logs; a duplicate (run_id, seq) is an error."""
        if not events:
            return
        with self._tx() as db:
            _put_events(db, events)

    def commit(self, events: list[Event], runs: list[Run], messages: list[Message]) -> None:
        """Append ``events`` to their logs and upsert the rows they imply, atomically.

        The store sink's one write (see :mod:`nearnb.persist`): a reader never
        sees a run row ahead of its log, nor a log ahead of its rows.
        """
        if not (events or runs or messages):
            return
        statements = _event_statements(events)
        if len(statements) == 1 and not (runs or messages):  # most batches: a delta or a few
            self._atomic(*statements[0])
            return
        with self._tx() as db:
            for sql, args in statements:
                db.execute(sql, args)
            for run in runs:
                _put_run(db, run)
            for message in messages:
                _put_message(db, message)

    def end_run(
        self, run: Run, events: list[Event], messages: list[Message], *, after: int
    ) -> bool:
        """Append a run's closing ``events``, save ``run`` and ``messages``, in one transaction.

        A compare-and-set, for ending a run on behalf of a producer that is
        gone: writes nothing and returns False if the log has grown past
        ``after`` or the stored run has already ended (someone else got there
        first). Of several processes trying at once, exactly one wins: the
        run row is locked (PostgreSQL) or the database is (SQLite) before the
        check, and a concurrent append of the same ``seq`` fails the loser.
        """
        try:
            with self._tx() as db:
                ended = db.execute(
                    "SELECT ended_at IS NOT NULL FROM runs WHERE id = ?" + self._for_update,
                    (run.id,),
                ).fetchone()
                tail = db.execute(
                    "SELECT COALESCE(last_seq, seq) FROM events WHERE run_id = ? "
                    "ORDER BY seq DESC LIMIT 1",
                    (run.id,),
                ).fetchone()
                last = tail[0] if tail else 0
                if last != after or ended is None or ended[0]:
                    raise _Stale
                _put_events(db, events)
                _put_run(db, run)
                for message in messages:
                    _put_message(db, message)
        except (_Stale, IntegrityError):
            return False
        return True

    #: Appended to the row read that :meth:`end_run` decides on (PostgreSQL: ``FOR UPDATE``).
    _for_update = ""

    def events(self, run_id: str, *, after: int = 0, limit: int | None = None) -> list[Event]:
        """A run's logged events with ``seq > after``, in order."""
        return list(islice(expand_events(self._log(run_id, after, limit), run_id, after), limit))

    def event_rows(
        self, run_id: str, *, after: int = 0, limit: int | None = None
    ) -> list[tuple[int, str, str, float]]:
        """A run's logged events as stored: ``(seq, event, data as JSON text, at)``.

        For the hub, which puts the JSON on the wire as it is: decoding and
        re-encoding 10,000 payloads cost it more than the rest of a replay.
        """
        rows = expand_rows(self._log(run_id, after, limit), after, thread=False)
        return rows if limit is None else rows[:limit]

    def _log(self, run_id: str, after: int, limit: int | None) -> list[tuple]:
        """The rows holding events after ``after``: the first may start before it (a row of
        deltas straddling ``after``), so one more row than ``limit`` events may be needed."""
        sql = (
            "SELECT seq, last_seq, event, data, thread_id, at FROM events WHERE run_id = ? "
            "AND seq >= COALESCE((SELECT MAX(seq) FROM events WHERE run_id = ? AND seq <= ?), ?) "
            "ORDER BY seq"
        )
        args: tuple = (run_id, run_id, after, after + 1)
        if limit is not None:
            sql += " LIMIT ?"
            args += (int(limit) + 1,)
        return self._query(sql, args)

    def expire_events(self, *, older_than: float | None = None, at: float | None = None) -> int:
        """Drop event logs (and run-control rows) of runs that ended over ``older_than`` s ago.

        Messages and run objects stay; only the replayable log goes.
        Returns the number of events deleted.
        """
        ttl = self.event_ttl if older_than is None else older_than
        cutoff = (time.time() if at is None else at) - ttl
        ended = "(SELECT id FROM runs WHERE ended_at IS NOT NULL AND ended_at <= ?)"
        with self._tx() as db:
            count = db.execute(
                "SELECT COALESCE(SUM(COALESCE(last_seq, seq) - seq + 1), 0) FROM events "
                f"WHERE run_id IN {ended}",
                (cutoff,),
            ).fetchone()[0]
            if count:
                db.execute(f"DELETE FROM events WHERE run_id IN {ended}", (cutoff,))
            db.execute(f"DELETE FROM run_control WHERE run_id IN {ended}", (cutoff,))
            return int(count)

    # ----------------------- tables kept by agentdata.py and vectorstores.py

    def write(self) -> AbstractContextManager[Connection]:
        """A write transaction, for modules that keep their own tables in this store.

        SQL uses ``?`` placeholders; a constraint violation raises
        :data:`IntegrityError` on both backends.
        """
        return self._tx()

    def read(self, sql: str, args: tuple = ()) -> list[tuple]:
        """The rows of one read query, for the same modules."""
        return self._query(sql, args)
