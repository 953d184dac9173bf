"""Agents calling agents: ``env.run_agent`` starts a child run, announced as a parent step.

NEAR's ``run_agent(agent_id, query=None, thread_mode=FORK, run_mode=SIMPLE)``
asked its hub to run another agent on a thread and returned that thread's id.
nearnb does it in the kernel, as a run of its own (its own event log, store
rows and stream endpoint ``/threads/{thread}/stream/{run}``), and keeps the
parent's stream pointing at it: the parent emits a ``tool_calls`` run step
with one function call named ``run_agent`` whose arguments carry the child's
thread and run ids (also in the step's ``metadata``), completed with the
child's answer as its output. That is a step openai-python and a browser
``EventSource`` already understand.

Thread modes, as NEAR had them: ``SAME`` runs the child on the parent's
thread, ``FORK`` on a copy of it, ``CHILD`` on a new empty thread.
``WITH_CALLBACK`` posts the child's final answer back to the parent's thread.

Unlike NEAR (where the child ran after the parent returned), the call waits
for the child, so the parent can read what it wrote; a Stop of the parent
stops the child. A child that fails does not fail the parent: its step ends
``failed`` and the returned id carries ``status`` and ``error``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from .agents import Agent, AgentError, agent_dirs, find_agent, load_agent
from .events import new_id, now

if TYPE_CHECKING:
    from .messages import MessageSequencer
    from .modelchoice import ModelChoice
    from .result import RunResult
    from .runlog import RunLog
    from .store import Store

THREAD_MODES = ("SAME", "FORK", "CHILD")
RUN_MODES = ("SIMPLE", "WITH_CALLBACK")


class Child(Protocol):
    """What a child run's handle offers (``nearnb.runs.RunHandle``)."""

    thread_id: str
    run_id: str
    agent: Agent

    @property
    def done(self) -> bool: ...

    def cancel(self, reason: str = ...) -> None: ...

    def wait(self) -> RunResult: ...


class Parent(Protocol):
    """What the parent run offers (``nearnb.runs.RunContext``); no import of the layer above."""

    log: RunLog
    store: Store
    agent: Agent
    choice: ModelChoice
    sequencer: MessageSequencer
    thread_id: str
    run_id: str
    assistant_id: str
    children: list[Any]

    def sync_store(self) -> None: ...


#: ``start_run``; passed in by the orchestration, which this module sits beside.
StartRun = Callable[..., Child]


class ChildThreadId(str):
    """The child's thread id (NEAR's return value), with how the child run ended."""

    run_id: str
    status: str
    error: str | None

    def __new__(cls, thread_id: str, *, run_id: str, status: str, error: str | None) -> Any:
        obj = super().__new__(cls, thread_id)
        obj.run_id, obj.status, obj.error = run_id, status, error
        return obj


def mode_name(value: Any, allowed: tuple[str, ...], what: str) -> str:
    """``ThreadMode.FORK``, ``"fork"`` or NEAR's 1-based number -> ``"FORK"``."""
    name = getattr(value, "name", value)
    if isinstance(name, int) and not isinstance(name, bool) and 1 <= name <= len(allowed):
        return allowed[name - 1]
    if isinstance(name, str) and name.upper() in allowed:
        return name.upper()
    raise ValueError(f"{what} must be one of {', '.join(allowed)}, not {value!r}")


def resolve_agent_id(agent_id: str, parent: Agent) -> Path:
    """The folder an ``agent_id`` names.

    In order: a folder path (absolute, or relative to the working directory);
    a folder next to the parent's; for ``namespace/name/version``, the
    ``name`` next to the parent's or in the agents directories.
    """
    if not isinstance(agent_id, str) or not agent_id.strip():
        raise AgentError(f"agent_id must name an agent, not {agent_id!r}")
    candidates = [Path(agent_id).expanduser(), parent.path.parent / agent_id]
    parts = agent_id.split("/")
    names = [parts[1]] if len(parts) == 3 and all(parts) else []
    candidates += [parent.path.parent / name for name in names]
    for folder in candidates:
        if (folder / "agent.py").is_file():
            return folder.resolve()
    for name in [*names, agent_id]:
        try:
            return find_agent(name, agent_dirs())
        except AgentError:
            continue
    tried = ", ".join(str(c) for c in candidates)
    raise AgentError(f"no agent {agent_id!r}: tried {tried} and the agents directories")


def run_child(
    parent: Parent,
    agent_id: str,
    query: str | None,
    thread_mode: Any,
    run_mode: Any,
    *,
    start: StartRun,
) -> ChildThreadId:
    """Run ``agent_id`` as a child of ``parent``; its thread id once it has ended."""
    parent.log.check_cancelled()
    threads, runs = (
        mode_name(thread_mode, THREAD_MODES, "thread_mode"),
        mode_name(run_mode, RUN_MODES, "run_mode"),
    )
    child_agent = load_agent(resolve_agent_id(agent_id, parent.agent))
    parent.sync_store()
    store = parent.store
    if threads == "SAME":
        thread_id = parent.thread_id
    elif threads == "FORK":
        thread_id = store.fork_thread(parent.thread_id).id
    else:
        thread_id = store.create_thread({"nearnb.parent_thread_id": parent.thread_id}).id
    handle = start(
        child_agent,
        query,
        thread_id=thread_id,
        provider=parent.choice.provider,
        store=store,
        parent_run_id=parent.run_id,
    )
    parent.children.append(handle)
    step = _step(parent, handle, agent_id, query, threads, runs)
    parent.log.emit("thread.run.step.created", step)
    parent.log.emit("thread.run.step.in_progress", step)
    # The call as a delta too: openai-python's AssistantEventHandler announces tool
    # calls (on_tool_call_created / _done) from step deltas, not from the step object.
    call = step["step_details"]["tool_calls"][0]
    fragment = {"index": 0, "id": call["id"], "type": "function", "function": call["function"]}
    parent.log.emit(
        "thread.run.step.delta",
        {
            "id": step["id"],
            "object": "thread.run.step.delta",
            "delta": {"step_details": {"type": "tool_calls", "tool_calls": [fragment]}},
        },
    )
    while not handle.done:  # the parent's Stop reaches the child
        if parent.log.cancelled.is_set():
            handle.cancel("parent cancelled")
        time.sleep(0.02)
    result = handle.wait()
    status = {"completed": "completed", "cancelled": "cancelled"}.get(result.status, "failed")
    call = step["step_details"]["tool_calls"][0]
    call["function"]["output"] = result.text if status == "completed" else result.error or ""
    end: dict[str, Any] = {**step, "status": status, f"{status}_at": now()}
    if status == "failed":
        end["last_error"] = {"code": "server_error", "message": result.error or result.status}
    parent.log.emit(f"thread.run.step.{status}", end)
    if runs == "WITH_CALLBACK" and result.status == "completed":
        parent.sequencer.reply(
            result.text,
            metadata={"nearnb.child_run_id": result.run_id, "nearnb.child_thread_id": thread_id},
        )
    parent.log.check_cancelled()
    return ChildThreadId(thread_id, run_id=result.run_id, status=result.status, error=result.error)


def _step(
    parent: Parent, child: Child, agent_id: str, query: str | None, threads: str, runs: str
) -> dict[str, Any]:
    """The parent's ``tool_calls`` step that stands for the child run."""
    arguments = {
        "agent_id": agent_id,
        "query": query,
        "thread_mode": threads,
        "run_mode": runs,
        "thread_id": child.thread_id,
        "run_id": child.run_id,
    }
    return {
        "id": new_id("step"),
        "object": "thread.run.step",
        "created_at": now(),
        "run_id": parent.run_id,
        "thread_id": parent.thread_id,
        "assistant_id": parent.assistant_id,
        "type": "tool_calls",
        "status": "in_progress",
        "step_details": {
            "type": "tool_calls",
            "tool_calls": [
                {
                    "id": new_id("call"),
                    "type": "function",
                    "function": {
                        "name": "run_agent",
                        "arguments": json.dumps(arguments),
                        "output": None,
                    },
                }
            ],
        },
        "metadata": {
            "nearnb.child_thread_id": child.thread_id,
            "nearnb.child_run_id": child.run_id,
            "nearnb.child_agent": child.agent.identifier,
        },
    }
