"""The tool steps a fold of run events builds (see :mod:`nearnb.reducer`).

Pure data: a ``tool_calls`` run step, its calls as they stream in, and the
child run a ``run_agent`` step stands for. Apart from the reducer only to keep
each module short; :mod:`nearnb.reducer` re-exports every name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class ToolCallState:
    """A tool call made during the run, with its output once known.

    ``name`` and ``arguments`` grow fragment by fragment from
    ``thread.run.step.delta`` events; a whole RunStep (created / completed)
    replaces them with its own values.
    """

    id: str
    name: str
    arguments: str
    output: str | None = None
    step_status: str = "in_progress"
    type: str = "function"


#: Step statuses after which a step no longer changes.
STEP_ENDED = frozenset({"completed", "failed", "cancelled", "expired"})


@dataclass(frozen=True)
class ChildRef:
    """The child run a ``run_agent`` step stands for (``env.run_agent``).

    Read from the step's ``metadata`` (``nearnb.child_*``); a view follows the
    child's own stream at ``/threads/{thread_id}/stream/{run_id}``.
    """

    run_id: str
    thread_id: str
    agent: str = ""

    @property
    def agent_name(self) -> str:
        """``local/helper/0.1.0`` -> ``helper``: the short name a view shows."""
        parts = self.agent.split("/")
        return parts[1] if len(parts) == 3 else self.agent


def child_ref(step: dict[str, Any]) -> ChildRef | None:
    """The child a whole RunStep names, or None (an ordinary tool step)."""
    meta = step.get("metadata")
    if not isinstance(meta, dict):
        return None
    run_id, thread_id = meta.get("nearnb.child_run_id"), meta.get("nearnb.child_thread_id")
    if not (isinstance(run_id, str) and run_id and isinstance(thread_id, str) and thread_id):
        return None
    return ChildRef(run_id, thread_id, str(meta.get("nearnb.child_agent") or ""))


@dataclass
class StepState:
    """A ``tool_calls`` run step: its calls in order and its status."""

    id: str | None
    status: str = "in_progress"
    calls: list[ToolCallState] = field(default_factory=list)
    last_error: str | None = None
    child: ChildRef | None = None  # a ``run_agent`` step: the child run it started

    @property
    def ended(self) -> bool:
        return self.status in STEP_ENDED

    def call_at(self, index: int) -> ToolCallState:
        """The call at ``index`` (a delta's position), created empty if new."""
        while len(self.calls) <= index:
            self.calls.append(ToolCallState(id="", name="", arguments=""))
        return self.calls[index]
