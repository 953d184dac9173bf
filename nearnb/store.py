"""The store of record shared by the kernel, the CLI and the hub: SQLite by default.

One file, ``$NEARNB_HOME/nearnb.db``, in WAL mode so a hub process can read a
run's event log while a notebook kernel is still writing it. It holds threads,
messages, runs and each run's full event log in sequence order; the log is
what the hub replays. Logs of finished runs expire (default 24 h); messages
are kept. The lifetime is ``event_ttl`` seconds, else ``$NEARNB_EVENT_TTL``.

What the store does is written once in :mod:`nearnb.storebase`; this module
is its SQLite connection. ``$NEARNB_DATABASE_URL`` (``postgresql://…``)
selects :mod:`nearnb.pgstore` instead (:func:`open_store`, :func:`default_store`).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .config import home
from .dburl import (
    DATABASE_URL_ENV,
    POSTGRES_SCHEMES,
    DatabaseError,
    database_url,
    redact,
    scheme,
    sqlite_path,
)
from .storebase import (
    DEFAULT_EVENT_TTL,
    ENDED_STATUSES,
    SCHEMA,
    BaseStore,
    IntegrityError,
    StoreError,
    ttl_from_env,
)
from .storeschema import ADDED_COLUMNS

__all__ = [
    "DEFAULT_EVENT_TTL",
    "ENDED_STATUSES",
    "BaseStore",
    "DATABASE_URL_ENV",
    "DatabaseError",
    "IntegrityError",
    "Store",
    "StoreError",
    "default_store",
    "open_store",
]

_SQLITE_TYPES = {
    "serial": "INTEGER PRIMARY KEY AUTOINCREMENT",
    "int": "INTEGER",
    "real": "REAL",
    "blob": "BLOB",
    "norowid": " WITHOUT ROWID",
    "vn": "",
}


class Store(BaseStore):
    """Threads, messages, runs and event logs in one SQLite file.

    Safe to share between threads (one connection behind a lock); several
    processes may open the same file (WAL, busy timeout).
    """

    def __init__(self, path: str | Path | None = None, *, event_ttl: float | None = None):
        self.path = Path(path) if path is not None else home() / "nearnb.db"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.event_ttl = ttl_from_env(event_ttl)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        # busy_timeout first: processes opening a new file at once then wait for
        # each other's switch to WAL instead of failing with "database is locked".
        self._db.execute("PRAGMA busy_timeout=10000")
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        with self._lock:
            # executescript manages its own transaction
            self._db.executescript(SCHEMA.format(**_SQLITE_TYPES))
            self._add_columns()
        # Housekeeping on open is enough: every kernel, CLI run and hub opens a store,
        # and an expired log only costs disk until then.
        self.expire_events()

    def _add_columns(self) -> None:
        """Bring a file written by an older nearnb up to :data:`ADDED_COLUMNS`."""
        for table, column, kind in ADDED_COLUMNS:
            have = {row[1] for row in self._db.execute(f"PRAGMA table_info({table})")}
            if column in have:
                continue
            try:
                self._db.execute(
                    f"ALTER TABLE {table} ADD COLUMN {column} {kind.format(**_SQLITE_TYPES)}"
                )
            except sqlite3.OperationalError as exc:  # another process added it just now
                if "duplicate column" not in str(exc):
                    raise

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

    def _atomic(self, sql: str, args: list[object]) -> None:
        with self._lock:  # autocommit: the statement is its own transaction
            self._db.execute(sql, args)


def open_store(url: str | None = None, *, event_ttl: float | None = None) -> BaseStore:
    """The store of record a database URL names (default ``$NEARNB_DATABASE_URL``).

    Unset or empty: the SQLite file under ``$NEARNB_HOME``. ``postgresql://…``:
    :class:`nearnb.pgstore.PgStore`. ``sqlite:///path``: that SQLite file.
    Anything else raises :class:`DatabaseError` naming the URL (password hidden).
    """
    url = database_url() if url is None else url.strip()
    if not url:
        return Store(event_ttl=event_ttl)
    kind = scheme(url)
    if kind in POSTGRES_SCHEMES:
        from .pgstore import PgStore

        return PgStore(url, event_ttl=event_ttl)
    if kind == "sqlite":
        return Store(sqlite_path(url), event_ttl=event_ttl)
    raise DatabaseError(
        f"unsupported database URL {redact(url)!r}: use postgresql://user:password@host/db "
        "or sqlite:///path/to/file.db"
    )


_default_lock = threading.Lock()
_default: tuple[tuple[Path, str | None], BaseStore] | None = None


def default_store() -> BaseStore:
    """The process's store for the current ``$NEARNB_HOME`` and ``$NEARNB_DATABASE_URL``.

    Opened once: every run in a kernel would otherwise open its own
    connection, and one shared store (thread-safe) is enough. A change of
    either variable opens the store it names instead.
    """
    global _default
    key = (home() / "nearnb.db", database_url())
    with _default_lock:
        if _default is None or _default[0] != key:
            _default = (key, open_store(key[1]))
        return _default[1]
