"""``nearai.agents.environment`` for agents, without the ``nearai`` package.

NEAR agents start with ``from nearai.agents.environment import Environment``.
The real package is deprecated and pulls a large dependency tree, so when it
is *not* installed nearnb registers tiny stand-in modules that point at its
own Environment. When it *is* installed nothing is touched: the user's real
``nearai`` always wins.
"""

from __future__ import annotations

import importlib.util
import sys
import threading
from types import ModuleType

_lock = threading.Lock()
SHIM_MARK = "__nearnb_shim__"


def _real_nearai_available() -> bool:
    existing = sys.modules.get("nearai")
    if existing is not None:
        return not getattr(existing, SHIM_MARK, False)
    try:
        return importlib.util.find_spec("nearai") is not None
    except (ImportError, ValueError):
        return False


def install_nearai_shim() -> bool:
    """Register the stand-in modules if no real ``nearai`` exists.

    Returns True when the shim is (now) in place.
    """
    with _lock:
        if _real_nearai_available():
            return False
        if "nearai.agents.environment" in sys.modules:
            return True
        from .agents import Agent
        from .environment import Environment, StreamHandler

        modules = {
            "nearai": {},
            "nearai.agents": {},
            "nearai.agents.environment": {
                "Environment": Environment,
                "StreamHandler": StreamHandler,
            },
            "nearai.agents.agent": {"Agent": Agent},
        }
        for name, attrs in modules.items():
            module = ModuleType(name, "nearnb stand-in for the deprecated nearai package")
            setattr(module, SHIM_MARK, True)
            module.__path__ = []  # a package, so submodule imports resolve
            module.__dict__.update(attrs)
            sys.modules[name] = module
        sys.modules["nearai"].agents = sys.modules["nearai.agents"]  # type: ignore[attr-defined]
        sys.modules["nearai.agents"].environment = sys.modules["nearai.agents.environment"]  # type: ignore[attr-defined]
        sys.modules["nearai.agents"].agent = sys.modules["nearai.agents.agent"]  # type: ignore[attr-defined]
        return True
