"""The ``env`` object's agents calling agents: run_agent, get_agents, set_next_actor.

``run_agent`` is NEAR's signature on nearnb's child runs (see
:mod:`nearnb.children`); the rest is NEAR's bookkeeping of who acts next,
kept where NEAR kept it: a ``.next_action`` file beside the thread's files.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .env_base import EnvBase

if TYPE_CHECKING:
    from .agents import Agent

NEXT_ACTION_FILE = ".next_action"


class AgentsMixin(EnvBase):
    """``run_agent``, ``request_agent_input``, ``get_agents``, ``set_next_actor``."""

    def run_agent(
        self,
        agent_id: str,
        query: str | None = None,
        thread_mode: Any = "FORK",
        run_mode: Any = "SIMPLE",
    ) -> str:
        """Run another agent as a child run; returns the thread it ran on (NEAR's value).

        ``thread_mode``: ``SAME`` (this thread), ``FORK`` (a copy, the
        default) or ``CHILD`` (a new empty thread); ``ThreadMode`` members,
        names or NEAR's numbers. ``run_mode=WITH_CALLBACK`` posts the child's
        answer back here. Waits for the child; the id returned also carries
        ``.run_id``, ``.status`` and ``.error``.
        """
        return self._ports.spawn(agent_id, query, thread_mode, run_mode)

    def request_agent_input(self) -> None:
        """End this run as ``requires_action`` (``agent_input``) when the agent returns."""
        self._ports.request_action({"type": "agent_input"})
        self._done = True

    def get_primary_agent(self) -> Agent:
        return self._agent

    def get_agents(self) -> list[Agent]:
        return [self._agent]

    def set_next_actor(self, who: str) -> None:
        """NEAR's dialogue turn marker (``"user"`` or ``"agent"``), kept with the thread."""
        if who == "agent":
            self._done = False
        self._ports.store.thread_dir(self.thread_id).joinpath(NEXT_ACTION_FILE).write_text(who)

    def get_next_actor(self) -> str:
        """Who acts next; the user, unless an agent said otherwise."""
        path = self._ports.store.thread_dir(self.thread_id) / NEXT_ACTION_FILE
        return path.read_text().strip(" \n") if path.is_file() else "user"
