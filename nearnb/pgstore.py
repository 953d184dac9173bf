"""The store of record on PostgreSQL, for hubs and kernels on several machines.

``NEARNB_DATABASE_URL=postgresql://user:password@host:5432/db`` (or
``nearnb hub --database URL``) selects it; :func:`nearnb.store.open_store`
does the choosing. It keeps what the SQLite store keeps (threads,
messages, runs, event logs, run control, the tables of
:mod:`nearnb.agentdata`, :mod:`nearnb.vectorstores` and
:mod:`nearnb.recording`) with the same SQL (:mod:`nearnb.storebase`), so
PostgreSQL alone is a complete backend.

How the one body of SQL runs here:

* ``?`` placeholders become ``%s`` (a literal ``%`` becomes ``%%``), and the
  word ``rowid`` becomes ``n``: the tables SQLite code orders by ``rowid``
  get an ordered ``n BIGSERIAL`` column here;
* a constraint violation is re-raised as :data:`nearnb.storebase.IntegrityError`
  (``sqlite3.IntegrityError``), so callers catch one type on both backends;
  a deadlock between two writers (an ``end_run`` racing a late producer) is
  one too: one of them wrote nothing and is told so;
* connections come from a small pool, one per transaction or read, so the
  store is safe to share between threads (sink threads, the hub's pool); at
  most ``$NEARNB_DATABASE_POOL`` (16) at once per store, and one idle for a
  while is checked first, so a database restart costs a reconnection;
* the schema is created with ``CREATE ... IF NOT EXISTS`` under an advisory
  lock, so processes opening a new database at once do not trip on each other.

Thread files (``env.write_file``) stay on the local disk under
``$NEARNB_HOME``: the database holds the conversation, not the workspace.
The URL's password never appears in a repr, a log line or an error.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

from .config import home
from .dburl import POSTGRES_SCHEMES, DatabaseError, redact, scheme, scrub
from .storebase import SCHEMA, BaseStore, IntegrityError, ttl_from_env
from .storeschema import ADDED_COLUMNS

try:
    import psycopg
    from psycopg import errors as pg_errors
except ImportError:  # pragma: no cover - the "scale" extra is not installed
    psycopg = None  # type: ignore[assignment]
    pg_errors = None  # type: ignore[assignment]

_PG_TYPES = {
    "serial": "BIGSERIAL PRIMARY KEY",
    "int": "BIGINT",
    "real": "DOUBLE PRECISION",
    "blob": "BYTEA",
    "norowid": "",
    "vn": "n BIGSERIAL, ",
}

#: Taken while creating the schema (``pg_advisory_xact_lock``): any fixed number will do.
_SCHEMA_LOCK = 0x6E6561726E62  # "nearnb"

#: Connections one store holds at most (``$NEARNB_DATABASE_POOL``): a hub's thread pool
#: and many runs must not exhaust the server's ``max_connections`` (100 by default)
#: when several hubs and kernels share it. A caller beyond it waits up to POOL_WAIT s.
#: Every connection opened is kept for reuse: a PostgreSQL connection is a forked
#: server process, tens of ms to open, and keeping fewer than the peak (it was 8)
#: made 20 concurrent runs close and reopen connections, commit after commit: the
#: first events of a burst of runs then took 90-150 ms to reach a subscriber
#: (bench_scale), where they take under 10 ms from a warm pool.
POOL_MAX_ENV = "NEARNB_DATABASE_POOL"
DEFAULT_POOL_MAX = 16
POOL_WAIT = 60.0

#: A connection idle longer than this (s) is checked before use, so a database restart
#: costs the next operation a reconnection, not an error.
POOL_CHECK_AFTER = 5.0


def _pool_max() -> int:
    raw = os.environ.get(POOL_MAX_ENV, "").strip()
    if not raw:
        return DEFAULT_POOL_MAX
    if not raw.isdigit() or int(raw) < 1:
        raise DatabaseError(
            f"${POOL_MAX_ENV} must be a positive number of connections, not {raw!r}"
        )
    return int(raw)


@lru_cache(maxsize=1024)
def translate(sql: str) -> str:
    """SQLite-flavoured SQL from the store code as PostgreSQL wants it."""
    return re.sub(r"\browid\b", "n", sql.replace("%", "%%").replace("?", "%s"))


class _Tx:
    """A transaction's connection, looking like ``sqlite3.Connection`` to store code."""

    __slots__ = ("_conn",)

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    def execute(self, sql: str, args: Any = ()) -> Any:
        with _mapped_errors():
            return self._conn.execute(translate(sql), tuple(args))

    def executemany(self, sql: str, rows: Any) -> Any:
        with _mapped_errors():
            cur = self._conn.cursor()
            cur.executemany(translate(sql), list(rows))
            return cur


@contextmanager
def _mapped_errors() -> Iterator[None]:
    try:
        yield
    except (pg_errors.IntegrityError, pg_errors.DeadlockDetected) as exc:
        raise IntegrityError(f"{type(exc).__name__}: {exc}") from exc


class PgStore(BaseStore):
    """Threads, messages, runs, event logs and run control in one PostgreSQL database.

    Safe to share between threads, and between processes on any number of
    machines that reach the same database.
    """

    def __init__(self, url: str, *, event_ttl: float | None = None):
        if psycopg is None:
            raise DatabaseError("NEARNB_DATABASE_URL needs psycopg 3: pip install 'nearnb[scale]'")
        if not isinstance(url, str) or scheme(url) not in POSTGRES_SCHEMES:
            shown = redact(url) if isinstance(url, str) else type(url).__name__
            raise DatabaseError(f"not a postgresql:// URL: {shown}")
        self.url = url
        self.event_ttl = ttl_from_env(event_ttl)
        # Not a file: its folder holds thread files, as beside the SQLite file.
        self.path = home() / "nearnb.postgresql"
        self._idle: list[tuple[Any, float]] = []  # (connection, idle since), newest last
        self._lock = threading.Lock()
        self._closed = False
        self.pool_max = _pool_max()
        self._slots = threading.BoundedSemaphore(self.pool_max)
        self._held = threading.local()  # a thread's nested calls reuse its slot: no deadlock
        with self._tx() as db:
            db.execute("SELECT pg_advisory_xact_lock(?)", (_SCHEMA_LOCK,))
            for statement in SCHEMA.format(**_PG_TYPES).split(";"):
                if statement.strip(" \n-"):
                    db.execute(statement)
            for table, column, kind in ADDED_COLUMNS:  # a database of an older nearnb
                # Looked up first: ALTER TABLE locks the table even when the column exists,
                # and deadlocks with writers of a database already up to date.
                have = db.execute(
                    "SELECT 1 FROM information_schema.columns WHERE table_schema = "
                    "current_schema() AND table_name = ? AND column_name = ?",
                    (table, column),
                ).fetchone()
                if have is None:
                    db.execute(
                        f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {column} "
                        + kind.format(**_PG_TYPES)
                    )
        self.expire_events()

    def __repr__(self) -> str:
        return f"PgStore({redact(self.url)!r})"

    def describe(self) -> str:
        return redact(self.url)

    # -------------------------------------------------------------- connections

    def _connect(self) -> Any:
        try:
            if "connect_timeout=" in self.url:  # the URL's own wins
                return psycopg.connect(self.url, autocommit=True)
            return psycopg.connect(self.url, autocommit=True, connect_timeout=10)
        except psycopg.Error as exc:
            raise DatabaseError(
                f"cannot connect to {redact(self.url)}: {scrub(str(exc), self.url)}"
            ) from None

    @contextmanager
    def _connection(self) -> Iterator[Any]:
        depth = getattr(self._held, "depth", 0)
        if depth == 0 and not self._slots.acquire(timeout=POOL_WAIT):
            raise DatabaseError(
                f"all {self.pool_max} connections to {redact(self.url)} stayed busy for "
                f"{POOL_WAIT:.0f} s (raise ${POOL_MAX_ENV}?)"
            )
        self._held.depth = depth + 1
        try:
            with self._pooled() as conn:
                yield conn
        finally:
            self._held.depth = depth
            if depth == 0:
                self._slots.release()

    @contextmanager
    def _pooled(self) -> Iterator[Any]:
        with self._lock:
            if self._closed:
                raise DatabaseError(f"store closed: {redact(self.url)}")
            conn, idle_since = self._idle.pop() if self._idle else (None, 0.0)
        if conn is not None and time.monotonic() - idle_since > POOL_CHECK_AFTER:
            try:  # idle a while: the server may have restarted since (one round trip)
                conn.execute("SELECT 1")
            except psycopg.Error:
                conn.close()
        if conn is None or conn.closed:
            conn = self._connect()
        try:
            yield conn
        except psycopg.OperationalError:  # the server went away: do not reuse this one
            conn.close()
            raise
        finally:
            reusable = not conn.closed and (
                conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
            )
            with self._lock:
                if reusable and not self._closed and len(self._idle) < self.pool_max:
                    self._idle.append((conn, time.monotonic()))
                    conn = None
            if conn is not None:
                conn.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn, _ in idle:
            conn.close()

    def __del__(self) -> None:  # like a dropped sqlite3 connection: closed quietly
        if getattr(self, "_idle", None):
            self.close()

    @contextmanager
    def _tx(self) -> Iterator[_Tx]:
        with self._connection() as conn, conn.transaction():
            yield _Tx(conn)

    def _query(self, sql: str, args: tuple = ()) -> list[tuple]:
        with self._connection() as conn, _mapped_errors():
            return conn.execute(translate(sql), tuple(args)).fetchall()

    def _atomic(self, sql: str, args: list[object]) -> None:
        # autocommit: one round trip, where BEGIN ... COMMIT takes three
        with self._connection() as conn, _mapped_errors():
            conn.execute(translate(sql), args)

    _for_update = " FOR UPDATE"
