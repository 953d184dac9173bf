"""The tutorials under nbval: each notebook runs in a fresh kernel with a headless environment.

nbval starts a notebook's kernel while pytest sets up the notebook's first cell, and the
kernel inherits this process's environment. So for that set-up only, the environment is
swapped for :func:`run_tutorials.kernel_env` (the one the saved outputs were produced with):
``NEARNB_DISPLAY=plain`` and no provider keys. Nothing leaks into the rest of the session,
and nothing in the notebooks themselves changes, so people opening them in JupyterLab still
get the live widget.

``TMPDIR`` is pointed at a folder this session deletes at its end. The notebooks keep their
``NEARNB_HOME`` in a ``tempfile.TemporaryDirectory``, which removes itself when a kernel
shuts down cleanly; nbval kills its kernels instead, so without this they would pile up.

Every notebook cell is marked ``local_model`` (the notebooks run the embedded model), so
``-m "not local_model"`` leaves them out of a quick run, as it does the other model tests.

The sanitizers in ``sanitize.cfg`` are used when ``--nbval-sanitize-with`` is not given, and
a relative ``--nbval-sanitize-with`` is found from the repository root, so the tests behave
the same from any working directory.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from run_tutorials import kernel_env

HERE = Path(__file__).resolve().parent
SANITIZE = HERE / "sanitize.cfg"

_tmpdir: str | None = None


def pytest_configure(config: pytest.Config) -> None:
    option = config.option
    if not hasattr(option, "nbval_sanitize_with"):
        return  # nbval is not installed: pytest collects no notebooks anyway
    given = option.nbval_sanitize_with
    if not given:
        option.nbval_sanitize_with = str(SANITIZE)
    elif not Path(given).is_file() and (config.rootpath / given).is_file():
        option.nbval_sanitize_with = str(config.rootpath / given)


def _tutorial_tmpdir() -> str:
    global _tmpdir
    if _tmpdir is None:
        _tmpdir = tempfile.mkdtemp(prefix="nearnb-nbval-")
    return _tmpdir


def pytest_sessionfinish(session: pytest.Session) -> None:
    if _tmpdir is not None:
        shutil.rmtree(_tmpdir, ignore_errors=True)


def _is_tutorial(item: pytest.Item) -> bool:
    return item.path.suffix == ".ipynb" and item.path.parent == HERE


@pytest.hookimpl(tryfirst=True)  # before -m deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _is_tutorial(item):
            item.add_marker(pytest.mark.local_model)


@contextmanager
def _environ(env: dict[str, str]) -> Iterator[None]:
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    if not _is_tutorial(item):
        return (yield)
    with _environ({**kernel_env(), "TMPDIR": _tutorial_tmpdir()}):
        return (yield)
