"""The store of record on each backend, for tests that every backend must pass.

``store`` is parametrised over the backends: ``sqlite`` (the file under the
test's ``$NEARNB_HOME``) and ``postgres`` (a fresh database on the session's
real PostgreSQL server, see :mod:`tests.support.postgres_server`). A test that
takes ``store`` runs once per backend, so both promise the same behaviour.
For ``postgres`` the fixture also sets ``$NEARNB_DATABASE_URL``, so
``default_store()``, runs and subprocesses (kernels, the CLI) of the test use
the same database. ``database_url`` is that URL (None for SQLite).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from nearnb.pgstore import PgStore
from nearnb.store import DATABASE_URL_ENV, BaseStore, Store, open_store
from tests.support.postgres_server import postgres_server, postgres_url
from tests.support.scaleout import BACKENDS, backend_env

__all__ = [
    "backend",
    "STORE_BACKENDS",
    "database_url",
    "postgres_server",
    "postgres_url",
    "reopen",
    "store",
]

STORE_BACKENDS = ["sqlite", "postgres"]


@pytest.fixture(params=STORE_BACKENDS)
def database_url(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, nearnb_home: Path
) -> str | None:
    """The store URL of this parametrisation (also in ``$NEARNB_DATABASE_URL``); None: SQLite."""
    if request.param == "sqlite":
        monkeypatch.delenv(DATABASE_URL_ENV, raising=False)
        return None
    url: str = request.getfixturevalue("postgres_url")
    monkeypatch.setenv(DATABASE_URL_ENV, url)
    return url


@pytest.fixture
def store(database_url: str | None) -> Iterator[BaseStore]:
    """An empty store of record, once per backend."""
    opened = open_store(database_url or "")
    yield opened
    opened.close()


def reopen(store: BaseStore) -> BaseStore:
    """Another store on the same data, as a second process (a hub, a kernel) opens it."""
    return PgStore(store.url) if isinstance(store, PgStore) else Store(store.path)


@pytest.fixture(params=BACKENDS)
def backend(
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    nearnb_home: Path,
    tmp_path: Path,
) -> Iterator[str]:
    """The whole backend, once each: ``sqlite`` (SQLite store, store-backed bus) and
    ``postgres+redis`` (PostgreSQL store, Redis Streams bus), set in the environment for the
    test's processes (:func:`tests.support.scaleout.backend_env`)."""
    with backend_env(request.param, request, monkeypatch, tmp_path) as kind:
        yield kind
