"""A finished run's events as a timeline you can seek: the state after any first k events.

The scrubber (:mod:`nearnb.view.scrubber`) shows a run "as it was after event
k" for any k, in any order. The reducer is pure, so the state after k events
is ``reduce(events[:k])`` - but a reducer state is *mutable* (messages grow
in place, steps are shared between ``steps`` and ``timeline``), and folding
from zero on every seek of a 10,000-delta run costs a whole fold each time.
So :class:`Timeline` folds once, keeps a deep copy of the state every
``every`` events (a checkpoint), and answers a seek by copying the nearest
checkpoint at or before k and folding at most ``every - 1`` events forward.
A seek just after the previous one (play, the step buttons, arrow keys)
folds forward from where it stood, with no copy at all.

A run with sub-agents is one timeline over all of its runs' events, merged
by emit time (each run's own order kept), folded into a
:class:`~nearnb.view.tree.RunTree` - the same state the live nested view keeps.

Pure like the reducer: no clock, no I/O, no IPython, no widgets.
"""

from __future__ import annotations

import copy
import heapq
import math
from collections.abc import Sequence
from dataclasses import dataclass

from ..events import Event
from ..reducer import RunState
from .present import RunInfo, ViewModel, present
from .tree import ChildInfo, RunTree

#: A checkpoint at least every this many events (more apart for huge runs, see MAX_CHECKPOINTS).
CHECKPOINT_EVERY = 128
#: Checkpoints hold text prefixes, so their number is bounded (memory ~ this x the text).
MAX_CHECKPOINTS = 512


@dataclass(frozen=True)
class RunEvents:
    """One run's event log and what a view shows of it besides the events."""

    run_id: str
    events: Sequence[Event]
    agent_name: str = ""
    show_streaming_message: bool = True


class Timeline:
    """The events of a run (and of its sub-agent runs), seekable by position.

    Position ``k`` (``0 <= k <= len(timeline)``) is the state after the first
    ``k`` events; ``0`` is before anything happened, ``len`` the finished run.
    """

    def __init__(
        self,
        root: RunEvents,
        children: Sequence[RunEvents] = (),
        *,
        every: int | None = None,
    ) -> None:
        streams = [list(root.events), *(list(child.events) for child in children)]
        # Each run's own order is kept whatever its clock says; runs interleave by emit time.
        self.events: list[Event] = list(heapq.merge(*streams, key=lambda event: event.at))
        self.root_id = root.run_id
        self.info = RunInfo(
            agent_name=root.agent_name, show_streaming_message=root.show_streaming_message
        )
        self.child_info = {
            child.run_id: ChildInfo(child.agent_name, child.show_streaming_message)
            for child in children
        }
        self.start = self.events[0].at if self.events else 0.0
        spread = math.ceil(len(self.events) / MAX_CHECKPOINTS)
        self.every = max(1, every if every is not None else max(CHECKPOINT_EVERY, spread))
        self._checkpoints: list[RunTree] = []
        tree = self._empty()
        for index, event in enumerate(self.events):
            if index % self.every == 0:
                self._checkpoints.append(_copy(tree))
            tree.apply(event)
        self.final = tree  # never handed out: callers get copies or view models
        self._cursor: tuple[int, RunTree] | None = None

    def __len__(self) -> int:
        return len(self.events)

    # ------------------------------------------------------------------ seeking

    def _empty(self) -> RunTree:
        tree = RunTree()
        tree.root.run_id = self.root_id or None  # children route apart from the first event
        tree.info.update(self.child_info)
        return tree

    def check(self, k: int) -> int:
        """``k`` if it is a position of this timeline, else a ValueError naming the range."""
        if not isinstance(k, int) or isinstance(k, bool) or not 0 <= k <= len(self.events):
            raise ValueError(
                f"position {k!r} is outside 0..{len(self.events)} "
                f"(the run has {len(self.events):,} events)"
            )
        return k

    def seek(self, k: int) -> RunTree:
        """The tree after the first ``k`` events - *shared*: valid until the next seek.

        Forward from the last seek when that folds fewer events than the
        nearest checkpoint would; else a copy of that checkpoint, folded on.
        """
        self.check(k)
        base = (k // self.every) * self.every
        cursor = self._cursor
        if cursor is not None and cursor[0] == k:
            return cursor[1]
        if cursor is not None and base <= cursor[0] <= k:
            tree, start = cursor[1], cursor[0]
        elif k == len(self.events):
            tree, start = _copy(self.final), k
        else:
            tree, start = _copy(self._checkpoints[k // self.every]), base
        for event in self.events[start:k]:
            tree.apply(event)
        self._cursor = (k, tree)
        return tree

    def tree_at(self, k: int) -> RunTree:
        """A private copy of the tree after the first ``k`` events (yours to keep)."""
        return _copy(self.seek(k))

    def view_at(self, k: int) -> ViewModel:
        """The root run's view model after the first ``k`` events."""
        return present(self.seek(k).root, self.info)

    def child_view_at(self, k: int, run_id: str) -> ViewModel | None:
        """A sub-agent's view model after the first ``k`` events (None before its first)."""
        state = self.seek(k).runs.get(run_id)
        if state is None:
            return None
        info = self.child_info.get(run_id) or ChildInfo()
        return present(state, RunInfo(info.agent_name, "", info.show_streaming_message))

    # ---------------------------------------------------------------- labelling

    def event(self, k: int) -> Event | None:
        """The event position ``k`` is after (None at 0)."""
        return self.events[self.check(k) - 1] if k else None

    def offset(self, k: int) -> float:
        """Seconds from the run's first event to the event at position ``k``."""
        event = self.event(k)
        return 0.0 if event is None else max(0.0, event.at - self.start)

    def who(self, event: Event) -> str:
        """The agent an event belongs to, for a sub-agent's event ("" for the root's)."""
        if not event.run_id or event.run_id == self.root_id:
            return ""
        info = self.child_info.get(event.run_id)
        return (info.agent_name if info else "") or event.run_id

    def label(self, k: int) -> str:
        """``42 / 1,006 · thread.message.delta · +1.234 s`` (plus ``· helper`` for a child's)."""
        total = f"{k:,} / {len(self.events):,}"
        event = self.event(k)
        if event is None:
            return f"{total} · before the first event"
        who = self.who(event)
        return f"{total} · {event.event}{f' · {who}' if who else ''} · +{self.offset(k):.3f} s"


def _copy(tree: RunTree) -> RunTree:
    """A deep copy of ``tree``: reducer states change in place, so a checkpoint must not
    share a message or a step with the state folded on from it. Event payloads (a run
    object the state points at) are never changed by the reducer, so they stay shared."""
    memo: dict[int, object] = {}
    for state in (tree.root, *tree.runs.values()):
        _share_payloads(state, memo)
    return copy.deepcopy(tree, memo)


def _share_payloads(state: RunState, memo: dict[int, object]) -> None:
    if state.run is not None:
        memo[id(state.run)] = state.run
    if state.streaming is not None:
        _ = state.streaming.text  # joins its chunks: one string to copy, not one per delta
