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
from .storebase import (
    DEFAULT_EVENT_TTL,
    ENDED_STATUSES,
    SCHEMA,
    BaseStore,
    IntegrityError,
    StoreError,
    ttl_from_env,
)

__all__ = [
    "DEFAULT_EVENT_TTL",
    "ENDED_STATUSES",
    "BaseStore",
    "IntegrityError",
    "Store",
    "StoreError",
    "default_store",
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
