"""Executing ``agent.py`` the NEAR way: a fresh module namespace with ``env`` in it.

Kept apart from :mod:`nearnb.agents` (folders and metadata, no execution) so
the layers point one way: the ``nearai`` stand-in (:mod:`nearnb._compat`)
needs the Environment, the Environment needs the agent's metadata, and only
this module, used by the run orchestration, needs all three.
"""

from __future__ import annotations

import builtins
import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ._compat import install_nearai_shim
from .agents import Agent

_path_lock = threading.Lock()


@contextmanager
def _on_sys_path(folder: Path) -> Iterator[None]:
    """Agent folder first on ``sys.path``, and its modules fresh, for one run."""
    entry = str(folder)
    # Modules imported from this entry have __file__ under it as written, so a
    # string test finds them; resolving every loaded module's path (a thousand
    # in a kernel) cost 0.1 s a run.
    prefix = os.path.join(entry, "")
    with _path_lock:
        for name, module in list(sys.modules.items()):
            file = getattr(module, "__file__", None)
            if isinstance(file, str) and file.startswith(prefix):
                del sys.modules[name]
        sys.path.insert(0, entry)
    try:
        yield
    finally:
        with _path_lock:
            if entry in sys.path:
                sys.path.remove(entry)


def exec_agent(agent: Agent, env: Any, task: str | None) -> None:
    """Run ``agent.py`` the NEAR way. Exceptions propagate to the run.

    ``from nearai.agents.environment import Environment`` works inside the
    agent even without the ``nearai`` package (see :mod:`nearnb._compat`).
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
    }
    with _on_sys_path(agent.path):
        exec(code, namespace)  # noqa: S102 - running the user's agent is the point
