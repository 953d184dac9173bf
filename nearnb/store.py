"""SQLite store shared by the kernel, the CLI and the hub.

One file, ``$NEARNB_HOME/nearnb.db``, in WAL mode so a hub process can read a
run's event log while a notebook kernel is still writing it. It holds threads,
messages, runs and each run's full event log in sequence order; the log is
what the hub replays. Logs of finished runs expire (default 24 h); messages
are kept. The lifetime is ``event_ttl`` seconds, else ``$NEARNB_EVENT_TTL``.

Objects are stored as their OpenAI JSON plus the few columns that queries
need, so what goes in is exactly what comes out.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

from .config import home
from .events import TERMINAL_STATUSES, Event, Message, Run, Thread, new_id, now

DEFAULT_EVENT_TTL = 24 * 3600.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS threads (
    id TEXT PRIMARY KEY,
    created_at INTEGER NOT NULL,
    obj TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS messages (
    n INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT UNIQUE NOT NULL,
    thread_id TEXT NOT NULL,
    run_id TEXT,
    obj TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_thread ON messages (thread_id, n);
CREATE TABLE IF NOT EXISTS runs (
    n INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT UNIQUE NOT NULL,
    thread_id TEXT NOT NULL,
    status TEXT NOT NULL,
    ended_at REAL,
    obj TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_thread ON runs (thread_id, n);
CREATE TABLE IF NOT EXISTS events (
    run_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    event TEXT NOT NULL,
    data TEXT NOT NULL,
    thread_id TEXT NOT NULL,
    at REAL NOT NULL,
    PRIMARY KEY (run_id, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS agent_data (
    namespace TEXT NOT NULL, name TEXT NOT NULL, key TEXT NOT NULL, obj TEXT NOT NULL,
    PRIMARY KEY (namespace, name, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS uploaded_files (id TEXT PRIMARY KEY, obj TEXT NOT NULL, content BLOB);
CREATE TABLE IF NOT EXISTS vector_stores (id TEXT PRIMARY KEY, role TEXT UNIQUE, obj TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS vector_store_files (
    vector_store_id TEXT NOT NULL, file_id TEXT NOT NULL, obj TEXT NOT NULL,
    PRIMARY KEY (vector_store_id, file_id)
);
CREATE TABLE IF NOT EXISTS vector_store_chunks (
    vector_store_id TEXT NOT NULL, file_id TEXT NOT NULL, chunk INTEGER NOT NULL,
    text TEXT NOT NULL, embedding BLOB NOT NULL, PRIMARY KEY (vector_store_id, file_id, chunk)
) WITHOUT ROWID;
-- Each run's provider requests and responses, kept by nearnb.recording (row 0: its header).
CREATE TABLE IF NOT EXISTS recorded_calls (
    run_id TEXT NOT NULL, n INTEGER NOT NULL, request TEXT NOT NULL, response TEXT,
    PRIMARY KEY (run_id, n)
) WITHOUT ROWID;
"""


class StoreError(LookupError):
    """An object the caller named does not exist (message names which)."""


class _Stale(Exception):
    """A conditional write found the store changed under it; nothing was written."""


#: Run statuses after which a run writes nothing more (its log may expire).
#: ``requires_action`` ends a stream but not the run, so it is not one of them.
ENDED_STATUSES = TERMINAL_STATUSES - {"requires_action"}


def _put_message(db: sqlite3.Connection, message: Message) -> None:
    db.execute(
        "INSERT INTO messages (id, thread_id, run_id, obj) VALUES (?, ?, ?, ?) "
        "ON CONFLICT(id) DO UPDATE SET obj = excluded.obj, run_id = excluded.run_id",
        (message.id, message.thread_id, message.run_id, message.model_dump_json()),
    )


def _put_run(db: sqlite3.Connection, run: Run) -> None:
    ended = time.time() if run.status in ENDED_STATUSES else None
    db.execute(
        "INSERT INTO runs (id, thread_id, status, ended_at, obj) VALUES (?, ?, ?, ?, ?) "
        "ON CONFLICT(id) DO UPDATE SET status = excluded.status, "
        "ended_at = excluded.ended_at, obj = excluded.obj",
        (run.id, run.thread_id, run.status, ended, run.model_dump_json()),
    )


#: ``json.dumps(..., separators=...)`` builds a new encoder per call; this is built once.
_compact_json = json.JSONEncoder(separators=(",", ":")).encode


def _put_events(db: sqlite3.Connection, events: list[Event]) -> None:
    db.executemany(
        "INSERT INTO events (run_id, seq, event, data, thread_id, at) VALUES (?, ?, ?, ?, ?, ?)",
        [(e.run_id, e.seq, e.event, _compact_json(e.data), e.thread_id, e.at) for e in events],
    )


class Store:
    """Threads, messages, runs and event logs in one SQLite file.

    Safe to share between threads (one connection behind a lock); several
    processes may open the same file (WAL, busy timeout).
    """

    def __init__(self, path: str | Path | None = None, *, event_ttl: float | None = None):
        self.path = Path(path) if path is not None else home() / "nearnb.db"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if event_ttl is None:
            event_ttl = float(os.environ.get("NEARNB_EVENT_TTL") or DEFAULT_EVENT_TTL)
        self.event_ttl = event_ttl
        self._lock = threading.RLock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        # busy_timeout first: processes opening a new file at once then wait for
        # each other's switch to WAL instead of failing with "database is locked".
        self._db.execute("PRAGMA busy_timeout=10000")
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        with self._lock:
            self._db.executescript(_SCHEMA)  # executescript manages its own transaction
        # Housekeeping on open is enough: every kernel, CLI run and hub opens a store,
        # and an expired log only costs disk until then.
        self.expire_events()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _query(self, sql: str, args: tuple = ()) -> list[tuple]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

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
        with self._tx() as db:
            _put_events(db, events)
            for run in runs:
                _put_run(db, run)
            for message in messages:
                _put_message(db, message)

    def end_run(
        self, run: Run, events: list[Event], messages: list[Message], *, after: int
    ) -> bool:
        """Append a run's closing ``events``, save ``run`` and ``messages``, in one transaction.

        For ending a run on behalf of a producer that is gone: writes nothing
        and returns False if the log has grown past ``after`` or the stored run
        has already ended (someone else got there first).
        """
        try:
            with self._tx() as db:
                last = db.execute(
                    "SELECT COALESCE(MAX(seq), 0) FROM events WHERE run_id = ?", (run.id,)
                ).fetchone()[0]
                ended = db.execute(
                    "SELECT ended_at IS NOT NULL FROM runs WHERE id = ?", (run.id,)
                ).fetchone()
                if last != after or ended is None or ended[0]:
                    raise _Stale
                _put_events(db, events)
                _put_run(db, run)
                for message in messages:
                    _put_message(db, message)
        except (_Stale, sqlite3.IntegrityError):
            return False
        return True

    def events(self, run_id: str, *, after: int = 0, limit: int | None = None) -> list[Event]:
        """A run's logged events with ``seq > after``, in order."""
        sql = (
            "SELECT seq, event, data, thread_id, at FROM events "
            "WHERE run_id = ? AND seq > ? ORDER BY seq"
        )
        args: tuple = (run_id, after)
        if limit is not None:
            sql += " LIMIT ?"
            args += (int(limit),)
        return [
            Event.trusted(seq, name, json.loads(data), run_id, tid, at)
            for seq, name, data, tid, at in self._query(sql, args)
        ]

    def event_rows(
        self, run_id: str, *, after: int = 0, limit: int | None = None
    ) -> list[tuple[int, str, str, float]]:
        """A run's logged events as stored: ``(seq, event, data as JSON text, at)``.

        For the hub, which puts the JSON on the wire as it is: decoding and
        re-encoding 10,000 payloads cost it more than the rest of a replay.
        """
        sql = "SELECT seq, event, data, at FROM events WHERE run_id = ? AND seq > ? ORDER BY seq"
        args: tuple = (run_id, after)
        if limit is not None:
            sql += " LIMIT ?"
            args += (int(limit),)
        return self._query(sql, args)

    def expire_events(self, *, older_than: float | None = None, at: float | None = None) -> int:
        """Drop event logs of runs that ended more than ``older_than`` s ago.

        Messages and run objects stay; only the replayable log goes.
        Returns the number of events deleted.
        """
        ttl = self.event_ttl if older_than is None else older_than
        cutoff = (time.time() if at is None else at) - ttl
        with self._tx() as db:
            cur = db.execute(
                "DELETE FROM events WHERE run_id IN "
                "(SELECT id FROM runs WHERE ended_at IS NOT NULL AND ended_at <= ?)",
                (cutoff,),
            )
            return cur.rowcount

    # ----------------------- tables kept by agentdata.py and vectorstores.py

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction, for modules that keep their own tables in this file."""
        with self._tx() as db:
            yield db

    def read(self, sql: str, args: tuple = ()) -> list[tuple]:
        """The rows of one read query, for the same modules."""
        return self._query(sql, args)


_default_lock = threading.Lock()
_default: Store | None = None


def default_store() -> Store:
    """The process's store for the current ``$NEARNB_HOME``, opened once.

    Every run in a kernel would otherwise open its own SQLite connection;
    one shared connection (the Store is thread-safe) is enough. A change of
    ``$NEARNB_HOME`` opens the store there instead.
    """
    global _default
    path = home() / "nearnb.db"
    with _default_lock:
        if _default is None or _default.path != path:
            _default = Store(path)
        return _default
