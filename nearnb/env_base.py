"""What every part of the ``env`` object shares: the run's ports, the agent, ids.

The NEAR agent API is large, so :class:`~nearnb.environment.Environment` is
assembled from mixins of one concern each (files, tools, ...), all built on
:class:`EnvBase`. A mixin talks to the run only through :class:`RunPorts`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .messages import MessageSequencer
from .modelchoice import ModelChoice
from .runlog import RunLog
from .store import Store
from .tools import ToolRegistry

if TYPE_CHECKING:
    from .agents import Agent
    from .events import Message


@dataclass(frozen=True)
class RunPorts:
    """What a run lends its environment: the log, the sequencer, model choice, the store.

    ``sync`` blocks until the store holds every event emitted so far (read
    your own writes); ``spawn(agent_id, query, thread_mode, run_mode)`` runs
    a child agent and returns its thread id; ``request_action`` makes the run
    end as ``requires_action``. The orchestration provides them.
    """

    log: RunLog
    sequencer: MessageSequencer
    choice: ModelChoice
    store: Store
    sync: Callable[[], None]
    spawn: Callable[[str, str | None, Any, Any], str]
    request_action: Callable[[dict[str, Any]], None]


class EnvBase:
    """State shared by the Environment's mixins."""

    def __init__(self, ports: RunPorts, agent: Agent, env_vars: dict[str, str] | None = None):
        self._ports = ports
        self._runlog = ports.log
        self._agent = agent
        self.env_vars: dict[str, str] = {**agent.env_vars, **(env_vars or {})}
        self._tools = ToolRegistry()
        self._done = False

    @property
    def thread_id(self) -> str:
        return self._runlog.thread_id

    @property
    def run_id(self) -> str:
        return self._runlog.run_id

    # Defined by Environment; declared here so mixins can call them.
    def add_reply(
        self,
        message: Any,
        attachments: list[Any] | None = None,
        message_type: str | None = None,
        thread_id: str | None = None,
    ) -> Message:
        raise NotImplementedError

    def add_message(
        self, role: str, message: str, attachments: list[Any] | None = None, **kwargs: Any
    ) -> Message:
        raise NotImplementedError

    def completions(self, messages: list[dict[str, Any]], model: str = "", **kwargs: Any) -> Any:
        raise NotImplementedError
