"""Executing ``agent.py`` the NEAR way: a fresh module namespace with ``env`` in it.

Kept apart from :mod:`nearnb.agents` (folders and metadata, no execution) so
the layers point one way: the ``nearai`` stand-in (:mod:`nearnb._compat`)
needs the Environment, the Environment needs the agent's metadata, and only
this module, used by the run orchestration, needs all three.

**Relative paths.** NEAR ran agents with the working directory set to a copy
of the agent folder, so ``open("prompts.txt")`` found the agent's own file.
nearnb does not change the working directory: it is process-wide, so runs
side by side in one kernel or hub would race for it, and the notebook user
(or a widget callback, or the hub) would see it move while a run is active;
writes would also land in the agent's source folder, where NEAR wrote to a
throw-away copy. Instead the agent's code gets its own ``open`` (in
``agent.py`` and in every module imported from the agent folder): a relative
path resolves against the run's files as :mod:`nearnb.env_files` lays them
out (the thread's files over the agent's shipped files; writes go to the
thread's files). The run's folders live in a context variable, so concurrent
runs each see their own. The cost: only ``open`` is redirected.
``pathlib.Path("x").read_text()``, ``os.path.exists("x")`` or
``pandas.read_csv("x")`` still see the process's working directory; use
``env.read_file``, ``open`` or ``Path(__file__).parent / "x"`` there.
"""

from __future__ import annotations

import builtins
import importlib.machinery
import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from ._compat import install_nearai_shim
from .agents import Agent

_path_lock = threading.Lock()

#: (thread files, agent folder) of the run executing on this thread / task.
_run_folders: ContextVar[tuple[Path, Path] | None] = ContextVar("nearnb_run_folders", default=None)
_WRITING = frozenset("wax+")


def _run_path(folders: tuple[Path, Path], name: str, mode: str) -> str:
    """Where a run's ``open(name, mode)`` goes: the thread's files over the agent's."""
    files, agent = folders
    path = Path(name)
    writing = bool(_WRITING.intersection(mode))
    if not path.is_absolute():
        in_files, shipped = files / path, agent / path
        if writing:
            # NEAR's copy of the agent folder had the agent's subfolders; mirror them.
            if not in_files.parent.exists() and shipped.parent.is_dir():
                in_files.parent.mkdir(parents=True, exist_ok=True)
            return str(in_files)
        # A file found nowhere is reported under the agent's folder, where a user looks.
        return str(in_files if in_files.exists() else shipped)
    # An absolute path under the temp path that names a shipped file (NEAR agents
    # build paths from env.get_agent_temp_path()) reads the agent's copy.
    if not writing and not path.exists() and path.is_relative_to(files):
        shipped = agent / path.relative_to(files)
        if shipped.exists():
            return str(shipped)
    return name


def agent_open(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
    """``open`` for agent code: relative paths resolve against the run's files.

    Outside a run (or for file descriptors and bytes paths) it is ``open``.
    Not a sandbox: the file API (``env.read_file`` ...) is the confined one.
    """
    folders = _run_folders.get()
    if folders is not None and isinstance(file, str | os.PathLike):
        path = os.fspath(file)
        if isinstance(path, str):
            file = _run_path(folders, path, mode)
    return builtins.open(file, mode, *args, **kwargs)


class _AgentLoader(importlib.machinery.SourceFileLoader):
    """Loads a module from the agent folder with :func:`agent_open` as its ``open``."""

    def exec_module(self, module: Any) -> None:
        module.__dict__.setdefault("open", agent_open)
        super().exec_module(module)


class _AgentModules:
    """A meta-path finder for modules in one agent folder, which it loads with
    :class:`_AgentLoader`. Everything else is left to the usual finders."""

    def __init__(self, folder: Path) -> None:
        self.folder = str(folder)
        self.prefix = os.path.join(self.folder, "")

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if path is None:
            search = [self.folder]
        else:
            search = [p for p in path if isinstance(p, str) and p.startswith(self.prefix)]
            if not search:
                return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, search)
        if spec is not None and isinstance(spec.loader, importlib.machinery.SourceFileLoader):
            spec.loader = _AgentLoader(fullname, spec.loader.path)
        return spec


@contextmanager
def _on_sys_path(folder: Path) -> Iterator[None]:
    """Agent folder first on ``sys.path``, and its modules fresh, for one run."""
    entry = str(folder)
    finder = _AgentModules(folder)
    # Modules imported from this entry have __file__ under it as written, so a
    # string test finds them; resolving every loaded module's path (a thousand
    # in a kernel) cost 0.1 s a run.
    prefix = os.path.join(entry, "")
    with _path_lock:
        for name, module in sys.modules.copy().items():  # copy(): atomic, unlike iteration
            file = getattr(module, "__file__", None)
            if isinstance(file, str) and file.startswith(prefix):
                del sys.modules[name]
        sys.path.insert(0, entry)
        # Before the path finder, after the built-in and frozen importers, so an
        # agent's ``time.py`` does not shadow the stdlib any more than before.
        at = next(
            (i for i, f in enumerate(sys.meta_path) if f is importlib.machinery.PathFinder),
            len(sys.meta_path),
        )
        sys.meta_path.insert(at, finder)
    try:
        yield
    finally:
        with _path_lock:
            if entry in sys.path:
                sys.path.remove(entry)
            if finder in sys.meta_path:
                sys.meta_path.remove(finder)


def exec_agent(agent: Agent, env: Any, task: str | None) -> None:
    """Run ``agent.py`` the NEAR way. Exceptions propagate to the run.

    ``from nearai.agents.environment import Environment`` works inside the
    agent even without the ``nearai`` package (see :mod:`nearnb._compat`), and
    ``open("prompts.txt")`` finds the agent's file (see the module docstring).
    """
    install_nearai_shim()
    source_path = agent.path / "agent.py"
    code = compile(source_path.read_text(encoding="utf-8"), str(source_path), "exec")
    namespace: dict[str, Any] = {
        "env": env,
        "agent": agent,
        "task": task,
        "__name__": "__main__",
        "__file__": str(source_path),
        "__builtins__": builtins,
        "open": agent_open,
    }
    temp_path = getattr(env, "get_agent_temp_path", None)
    files = Path(temp_path()) if callable(temp_path) else agent.path
    token = _run_folders.set((files, agent.path))
    try:
        with _on_sys_path(agent.path):
            exec(code, namespace)  # noqa: S102 - running the user's agent is the point
    finally:
        _run_folders.reset(token)
