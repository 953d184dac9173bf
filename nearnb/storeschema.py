"""The store of record's tables, once for SQLite and PostgreSQL.

The column types that differ between the engines are format fields, filled
in by each backend (:mod:`nearnb.store`, :mod:`nearnb.pgstore`).
"""

from __future__ import annotations

from typing import Any, Protocol

#: The schema, with the column types that differ between engines as fields:
#: ``serial`` (an ordered id), ``int`` (64-bit), ``real`` (a double), ``blob``,
#: ``norowid`` (SQLite's clustered-table clause) and ``vn`` (an ordered id
#: column for tables that SQLite code orders by ``rowid``; see nearnb.pgstore).
SCHEMA = """
CREATE TABLE IF NOT EXISTS threads (
    id TEXT PRIMARY KEY,
    created_at {int} NOT NULL,
    obj TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS messages (
    n {serial},
    id TEXT UNIQUE NOT NULL,
    thread_id TEXT NOT NULL,
    run_id TEXT,
    obj TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_thread ON messages (thread_id, n);
CREATE TABLE IF NOT EXISTS runs (
    n {serial},
    id TEXT UNIQUE NOT NULL,
    thread_id TEXT NOT NULL,
    status TEXT NOT NULL,
    ended_at {real},
    obj TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_thread ON runs (thread_id, n);
-- A run's event log. A row may hold a run of text deltas, seq..last_seq (nearnb.logrows).
CREATE TABLE IF NOT EXISTS events (
    run_id TEXT NOT NULL,
    seq {int} NOT NULL,
    last_seq {int},
    event TEXT NOT NULL,
    data TEXT NOT NULL,
    thread_id TEXT NOT NULL,
    at {real} NOT NULL,
    PRIMARY KEY (run_id, seq)
){norowid};
-- Who asked to stop a run, and the producing process's last heartbeat.
CREATE TABLE IF NOT EXISTS run_control (
    run_id TEXT PRIMARY KEY,
    cancel_by TEXT,
    cancel_at {real},
    owner TEXT,
    beat_at {real}
){norowid};
CREATE TABLE IF NOT EXISTS agent_data (
    namespace TEXT NOT NULL, name TEXT NOT NULL, key TEXT NOT NULL, obj TEXT NOT NULL,
    PRIMARY KEY (namespace, name, key)
){norowid};
CREATE TABLE IF NOT EXISTS uploaded_files (id TEXT PRIMARY KEY, obj TEXT NOT NULL, content {blob});
CREATE TABLE IF NOT EXISTS vector_stores (
    {vn}id TEXT PRIMARY KEY, role TEXT UNIQUE, obj TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS vector_store_files (
    {vn}vector_store_id TEXT NOT NULL, file_id TEXT NOT NULL, obj TEXT NOT NULL,
    PRIMARY KEY (vector_store_id, file_id)
);
CREATE TABLE IF NOT EXISTS vector_store_chunks (
    vector_store_id TEXT NOT NULL, file_id TEXT NOT NULL, chunk INTEGER NOT NULL,
    text TEXT NOT NULL, embedding {blob} NOT NULL, PRIMARY KEY (vector_store_id, file_id, chunk)
){norowid};
-- Each run's provider requests and responses, kept by nearnb.recording (row 0: its header).
CREATE TABLE IF NOT EXISTS recorded_calls (
    run_id TEXT NOT NULL, n INTEGER NOT NULL, request TEXT NOT NULL, response TEXT,
    PRIMARY KEY (run_id, n)
){norowid};
"""


#: Columns added since a table was first released: ``(table, column, type)``, the type a
#: format field as in :data:`SCHEMA`. Each backend adds those a database lacks on open.
ADDED_COLUMNS: tuple[tuple[str, str, str], ...] = (("events", "last_seq", "{int}"),)


class Cursor(Protocol):
    """The part of a DB-API cursor the store code uses."""

    rowcount: int

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class Connection(Protocol):
    """What :meth:`BaseStore.write` yields: ``sqlite3.Connection`` or its PostgreSQL twin."""

    def execute(self, sql: str, args: Any = ..., /) -> Any: ...

    def executemany(self, sql: str, rows: Any, /) -> Any: ...
