"""``nearai.*`` for agents, without the ``nearai`` package.

NEAR agents start with ``from nearai.agents.environment import Environment``
and import NEAR's types from a handful of other modules (``ThreadMode`` and
``RunMode`` from ``nearai.shared.models`` or from the environment module,
``Agent``, ``ToolRegistry``, ``InferenceClient`` for annotations). The real
package is deprecated and pulls a large dependency tree (litellm, py_near,
boto3 ...), so when it is *not* installed nearnb registers tiny stand-in
modules holding nearnb's own objects under those names. When it *is*
installed nothing is touched: the user's real ``nearai`` always wins.

The stand-ins are built on the first agent run, not at ``import nearnb``, so
a notebook that never runs an agent pays nothing for them.
"""

from __future__ import annotations

import importlib.util
import sys
import threading
from types import ModuleType
from typing import Any, NoReturn

_lock = threading.Lock()
SHIM_MARK = "__nearnb_shim__"

#: NEAR's ``nearai.shared.client_config`` constants (0.1.19).
DEFAULT_TIMEOUT = 600
DEFAULT_MAX_RETRIES = 1
DEFAULT_MODEL_TEMPERATURE = 1.0
DEFAULT_MODEL_MAX_TOKENS = 16384
DEFAULT_PROVIDER = "fireworks"
DEFAULT_MODEL = "llama-v3p1-70b-instruct"
DEFAULT_PROVIDER_MODEL = f"fireworks::accounts/fireworks/models/{DEFAULT_MODEL}"
DEFAULT_NAMESPACE = "near.ai"

#: Module-level constants of NEAR's ``nearai/agents/environment.py``.
_ENVIRONMENT_CONSTANTS = {
    "DELIMITER": "\n",
    "CHAT_FILENAME": "chat.txt",
    "SYSTEM_LOG_FILENAME": "system_log.txt",
    "AGENT_LOG_FILENAME": "agent_log.txt",
    "CHAT_HISTORY_FILENAME": "chat_history_log.txt",
    "LIST_MESSAGES_LIMIT": 10000,
    "DEFAULT_PROVIDER_MODEL": DEFAULT_PROVIDER_MODEL,
}


class ClientConfig:
    """Stand-in for NEAR's hub client settings; kept so agents that build one still import.

    It stores what it is given; only :class:`InferenceClient` would have used it.
    """

    def __init__(self, **fields: Any) -> None:
        self.base_url: str = fields.pop("base_url", "https://api.near.ai/v1")
        self.auth: Any = fields.pop("auth", None)
        self.__dict__.update(fields)


class InferenceClient:
    """Stand-in for NEAR's hub client: importable for annotations, refused when built.

    Everything it did went through NEAR AI Hub, which shut down; the agent's
    ``env`` does the same work against the run's provider.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> NoReturn:
        from .env_compat import UnsupportedCallError

        raise UnsupportedCallError(
            "nearai.shared.inference_client.InferenceClient is not supported by nearnb: "
            "it was NEAR AI Hub's client and the hub shut down; use env.completion(...) "
            "or env.openai.chat.completions.create(...), which use the run's provider"
        )


def _real_nearai_available() -> bool:
    existing = sys.modules.get("nearai")
    if existing is not None:
        return not getattr(existing, SHIM_MARK, False)
    try:
        return importlib.util.find_spec("nearai") is not None
    except (ImportError, ValueError):
        return False


def _stand_ins() -> dict[str, dict[str, Any]]:
    """Module name -> the names it offers, as NEAR's 0.1.19 modules offered them."""
    from . import near_models
    from .agents import Agent
    from .env_compat import InferenceParameters
    from .environment import Environment, StreamHandler
    from .tools import ToolRegistry

    models = {name: getattr(near_models, name) for name in near_models.__all__}
    config = {
        name: value
        for name, value in globals().items()
        if name.startswith("DEFAULT_") and isinstance(value, int | float | str)
    }
    environment = {
        "Environment": Environment,
        "StreamHandler": StreamHandler,
        "Agent": Agent,
        "ToolRegistry": ToolRegistry,
        "InferenceClient": InferenceClient,
        "InferenceParameters": InferenceParameters,
        **_ENVIRONMENT_CONSTANTS,
        # NEAR's environment module imported these from nearai.shared.models,
        # and agents took ThreadMode / RunMode from there.
        **{
            name: models[name]
            for name in (
                "AutoFileChunkingStrategyParam",
                "ChunkingStrategy",
                "ExpiresAfter",
                "GitHubSource",
                "GitLabSource",
                "RunMode",
                "StaticFileChunkingStrategyObjectParam",
                "ThreadMode",
            )
        },
    }
    return {
        "nearai": {},
        "nearai.agents": {},
        "nearai.agents.environment": environment,
        "nearai.agents.agent": {"Agent": Agent},
        "nearai.agents.tool_registry": {"ToolRegistry": ToolRegistry},
        "nearai.shared": {},
        "nearai.shared.models": models,
        "nearai.shared.client_config": {**config, "ClientConfig": ClientConfig},
        "nearai.shared.inference_client": {
            "InferenceClient": InferenceClient,
            "ClientConfig": ClientConfig,
        },
    }


def install_nearai_shim() -> bool:
    """Register the stand-in modules if no real ``nearai`` exists.

    Returns True when the shim is (now) in place.
    """
    with _lock:
        if _real_nearai_available():
            return False
        if getattr(sys.modules.get("nearai.shared.models"), SHIM_MARK, False):
            return True
        modules = {}
        for name, attrs in _stand_ins().items():
            module = ModuleType(name, "nearnb stand-in for the deprecated nearai package")
            setattr(module, SHIM_MARK, True)
            module.__path__ = []  # a package, so submodule imports resolve
            module.__dict__.update(attrs)
            modules[name] = module
        for name, module in modules.items():
            parent, _, child = name.rpartition(".")
            if parent:
                setattr(modules[parent], child, module)  # ``import nearai.shared.models`` works
        sys.modules.update(modules)
        return True
