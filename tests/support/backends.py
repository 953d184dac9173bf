"""The store of record on each backend, for tests that every backend must pass.

``store`` is parametrised over the backends: ``sqlite`` (a file under the
test's ``$NEARNB_HOME``) and, once :mod:`nearnb.pgstore` lands, ``postgres``.
A test that takes ``store`` runs once per backend, so both promise the same.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from nearnb.store import BaseStore, Store

STORE_BACKENDS = ["sqlite"]


def open_backend(kind: str, home: Path) -> BaseStore:
    """A fresh, empty store of ``kind``."""
    if kind == "sqlite":
        return Store(home / "nearnb.db")
    raise ValueError(f"unknown store backend: {kind}")


@pytest.fixture(params=STORE_BACKENDS)
def store(request: pytest.FixtureRequest, nearnb_home: Path) -> Iterator[BaseStore]:
    """An empty store of record, once per backend."""
    opened = open_backend(request.param, nearnb_home)
    yield opened
    opened.close()
