"""A run and its sub-agent runs, folded side by side: the state of a nested view.

A child run (``env.run_agent``) has its own event stream; its parent's stream
only carries a ``tool_calls`` step whose metadata names it
(:class:`~nearnb.reducer.ChildRef`). A view of the parent is fed both
streams - the parent's events and, once a step names a child, that child's -
through *one* callback, so one lock and one throttle pace the whole tree
(the cell's rate bound is the tree's, not one per child). Events already say
which run they belong to (``Event.run_id``), so :class:`RunTree` only routes
each event to that run's own :class:`~nearnb.reducer.RunState`; sequence
numbers are per run, and each state drops its own repeats.

Where a child sits in the tree is read from the steps: a run's children are
the :class:`ChildRef` of its ``run_agent`` steps, in the order they started.
Pure, like the reducer: no clock, no I/O, no IPython.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ..events import Event
from ..reducer import ChildRef, RunState


@dataclass(frozen=True)
class ChildInfo:
    """What a nested view knows of a child besides its events."""

    agent_name: str = ""
    show_streaming_message: bool = True


class RunTree:
    """The root run's state plus one state per child run, routed by run id."""

    def __init__(self, root: RunState | None = None) -> None:
        self.root = root if root is not None else RunState()
        self.runs: dict[str, RunState] = {}
        self.info: dict[str, ChildInfo] = {}

    def state_for(self, event: Event) -> RunState:
        """The state ``event`` belongs to (created for a run not seen before)."""
        run_id = event.run_id
        root_id = self.root.run_id
        if not run_id or root_id is None or run_id == root_id:
            return self.root
        state = self.runs.get(run_id)
        if state is None:
            state = self.runs[run_id] = RunState()
        return state

    def apply(self, event: Event) -> RunState | None:
        """Fold ``event`` into its run; that run's state, or None for a repeat."""
        state = self.state_for(event)
        return state if state.apply(event) else None

    def get(self, run_id: str | None) -> RunState | None:
        if run_id is None:
            return None
        return self.root if run_id == self.root.run_id else self.runs.get(run_id)

    def depth(self, run_id: str) -> int:
        """How deep ``run_id`` sits (the root 0, its children 1 ...); 1 if not yet placed."""
        depth, current = 0, run_id
        while current != self.root.run_id and depth < 64:
            parent = next(
                (
                    state
                    for state in (self.root, *self.runs.values())
                    if any(ref.run_id == current for ref in self.children(state))
                ),
                None,
            )
            depth += 1
            if parent is None or parent.run_id is None:
                return depth
            current = parent.run_id
        return depth

    def children(self, state: RunState) -> list[ChildRef]:
        """The child runs ``state``'s steps started, in order."""
        return [step.child for step in state.steps if step.child is not None]

    def walk(self) -> Iterator[tuple[int, ChildRef | None, RunState]]:
        """``(depth, ref, state)`` for the root (ref None) and every child with events,
        parents before their children."""
        yield 0, None, self.root
        yield from self._walk(self.root, 1, set())

    def _walk(
        self, state: RunState, depth: int, seen: set[str]
    ) -> Iterator[tuple[int, ChildRef | None, RunState]]:
        for ref in self.children(state):
            child = self.runs.get(ref.run_id)
            if child is None or ref.run_id in seen:
                continue
            seen.add(ref.run_id)
            yield depth, ref, child
            yield from self._walk(child, depth + 1, seen)

    def fold_result(self, result: Any) -> None:
        """Fold a :class:`~nearnb.result.RunResult`'s children's events (and theirs) in:
        what a live feed missed is still shown at the end."""
        for child in getattr(result, "children", None) or ():
            for event in getattr(child, "events", None) or ():
                self.apply(event)
            self.fold_result(child)

    def child_info(self, ref: ChildRef) -> ChildInfo:
        return self.info.get(ref.run_id) or ChildInfo(agent_name=ref.agent_name)
