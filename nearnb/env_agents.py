"""Agents calling agents: run_agent, get_agents, set_next_actor and friends (part of the ``env`` object)."""

from __future__ import annotations

from .env_base import EnvBase


class AgentsMixin(EnvBase):
    """Agents calling agents: run_agent, get_agents, set_next_actor and friends."""
