"""The ``env`` object's agents calling agents: run_agent, get_agents, set_next_actor."""

from __future__ import annotations

from .env_base import EnvBase


class AgentsMixin(EnvBase):
    """Agents calling agents: run_agent, get_agents, set_next_actor and friends."""
