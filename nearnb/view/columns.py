"""Several runs side by side in one cell output: one column each, one lock, one throttle.

``%%near_agent A B`` and :func:`nearnb.compare` show N runs at once. Each
column is a whole run view - its own header, counter, streaming text, status,
Stop, sub-agents nested under their steps - fed by its run's own events. What
the columns share is what bounds the cell: the base :class:`Renderer`'s one
lock and one :class:`~nearnb.view.throttle.Throttle`. A refresh renders every
column that changed since the last one, so however many columns stream, the
cell gets at most 20 refreshes and 100 comm messages a second (issue 9's
rule), not that much per column.

Feeding: each column has a :class:`ColumnFeed` (``view.column(i)``) - a
callable that folds an event into that column's :class:`RunTree` and knows
``follow_child`` - so :class:`nearnb.api.Follow` drives a column exactly as it
drives a single-run view. Stop in one column cancels that run only.

When all runs have ended, ``finish(results, summary=...)`` replaces the live
output with one static bundle: the summary (the comparison table, built by
:mod:`nearnb.comparing`) and one Markdown section per column, so a saved
notebook keeps every column's answer. Modes: this class itself shows nothing
(``none``); :class:`MarkdownColumns` is ``handle`` (live Markdown updated by
display id) and ``plain``/``terminal`` (the bundle once, at the end);
:mod:`nearnb.view.columns_widget` is ``widget`` (:func:`nearnb.comparing.open_columns`
chooses).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..events import Event
from ..reducer import RunState
from .base import Renderer, is_boundary
from .bundle import METADATA_KEY, md_escape, metadata, run_markdown, run_plain
from .present import RunInfo, present
from .sink import Sink, default_sink
from .throttle import DEFAULT_INTERVAL, Clock
from .tree import ChildInfo, RunTree

#: How much of each column's streaming message a live Markdown update carries.
COLUMN_TAIL_CHARS = 600
#: Live Markdown updates re-send every column: refresh as seldom as the handle view.
MARKDOWN_INTERVAL = 0.25


@dataclass
class Column:
    """One run's column: what it is, its states, how to stop it."""

    info: RunInfo
    on_stop: Callable[[], None] | None = None
    tree: RunTree = field(default_factory=RunTree)
    stop_requested: bool = False
    stoppers: dict[str, Callable[[], None]] = field(default_factory=dict)
    stopping: set[str] = field(default_factory=set)
    #: The widget view's panels of this column (the root's, then each child's).
    panels: list[Any] = field(default_factory=list)

    @property
    def state(self) -> RunState:
        return self.tree.root

    @property
    def ended(self) -> bool:
        return self.state.done or self.state.terminal


class ColumnFeed:
    """What a run's follower feeds: one column of a :class:`ColumnsRenderer`."""

    def __init__(self, view: ColumnsRenderer, index: int) -> None:
        self.view, self.index = view, index

    def __call__(self, event: Event) -> None:
        self.view.feed_column(self.index, event)

    def follow_child(
        self, run_id: str, *, stop: Callable[[], None] | None = None, **info: Any
    ) -> None:
        self.view.follow_column_child(self.index, run_id, stop=stop, **info)

    def finish(self, result: Any = None) -> None:
        """A column does not finish the view; the comparison does, once all ended."""


class ColumnsRenderer(Renderer):
    """N run views in one output, paced together. Shows nothing itself (``none``)."""

    def __init__(
        self,
        infos: Sequence[RunInfo],
        *,
        stops: Sequence[Callable[[], None] | None] = (),
        interval: float = DEFAULT_INTERVAL,
        clock: Clock | None = None,
        autoflush: bool = True,
        notice: str = "",
    ) -> None:
        if not infos:
            raise ValueError("a comparison needs at least one column")
        super().__init__(
            RunInfo(agent_name="comparison"), interval=interval, clock=clock, autoflush=autoflush
        )
        stops = list(stops) or [None] * len(infos)
        self.columns = [Column(info, stop) for info, stop in zip(infos, stops, strict=True)]
        #: Said above the columns (e.g. that the runs take turns on the embedded model).
        self.notice = notice

    def column(self, index: int) -> ColumnFeed:
        """The callable that feeds column ``index`` (for ``Follow`` / ``subscribe``)."""
        return ColumnFeed(self, index)

    @property
    def states(self) -> list[RunState]:
        return [c.state for c in self.columns]

    # ------------------------------------------------------------------ feeding

    def __call__(self, event: Event) -> None:
        """Route an event by run id: to the column that knows the run, else to the
        first column that has no run yet (a replay of N logs, one after another)."""
        with self._lock:
            for i, col in enumerate(self.columns):
                if event.run_id == col.state.run_id or event.run_id in col.tree.runs:
                    self.feed_column(i, event)
                    return
            for i, col in enumerate(self.columns):
                if col.state.run_id is None:
                    self.feed_column(i, event)
                    return

    def feed_column(self, index: int, event: Event) -> None:
        """Fold one event into column ``index``; render now, later or not at all."""
        with self._lock:
            if self._finished or self.columns[index].tree.apply(event) is None:
                return
            boundary = is_boundary(event.event)
            was_pending = self.throttle.pending
            if self.throttle.offer(boundary=boundary):
                self._flush(boundary=boundary)
            elif self._autoflush and (not was_pending or self._ticker is None):
                self._arm_ticker()
            if all(col.ended for col in self.columns):
                self._quiet = True
                self._wake.notify_all()

    def follow_column_child(
        self, index: int, run_id: str, *, stop: Callable[[], None] | None = None, **info: Any
    ) -> None:
        with self._lock:
            col = self.columns[index]
            if stop is not None:
                col.stoppers[run_id] = stop
            if info:
                col.tree.info[run_id] = ChildInfo(**info)

    # ---------------------------------------------------------------- stopping

    def stop(self) -> None:
        """Stop every column (what a kernel interrupt does)."""
        for index in range(len(self.columns)):
            self.stop_column(index)

    def stop_column(self, index: int) -> None:
        """One column's Stop: cancel that run only. Safe from any thread."""
        col = self.columns[index]
        with self._lock:
            if col.stop_requested or col.state.terminal or self._finished:
                return
            col.stop_requested = True
            self.throttle.spend(self._on_column_stop(index))
        if col.on_stop is not None:
            col.on_stop()

    def stop_in_column(self, index: int, run_id: str | None) -> None:
        """Stop one run of column ``index``: its root (``None``) or one sub-agent."""
        col = self.columns[index]
        if run_id is None or run_id == col.state.run_id:
            self.stop_column(index)
            return
        with self._lock:
            child, stopper = col.tree.get(run_id), col.stoppers.get(run_id)
            if run_id in col.stopping or self._finished or stopper is None:
                return
            if child is not None and child.terminal:
                return
            col.stopping.add(run_id)
            self.throttle.spend(self._on_column_child_stop(index, run_id))
        stopper()

    def _on_column_stop(self, index: int) -> int:
        """Reflect a column's Stop request at once (under the lock); messages sent."""
        return 0

    def _on_column_child_stop(self, index: int, run_id: str) -> int:
        return 0

    # --------------------------------------------------------------- finishing

    def finish(self, result: Any = None, *, summary: str = "") -> None:
        """Render the final state of every column and leave one static bundle.

        ``result``: a list with one :class:`~nearnb.result.RunResult` (or None)
        per column, folded in as a single view folds its result; ``summary``
        (Markdown) goes above the columns' sections. Idempotent.
        """
        with self._lock:
            if self._finished:
                return
            self._finished = True
            self._wake.notify_all()
            results = list(result) if isinstance(result, list | tuple) else []
            results += [None] * (len(self.columns) - len(results))
            deltas: list[int | None] = []
            for col, res in zip(self.columns, results, strict=False):
                for event in getattr(res, "events", None) or ():
                    col.state.apply(event)
                if res is not None:
                    col.tree.fold_result(res)
                deltas.append(getattr(res, "deltas", None))
            self.throttle.flushed(boundary=True, cost=self._render(final=True))
            data, meta = self.final_bundle(deltas, summary)
            self._finalize(data, meta)
            self._cleanup_wait = self._cleanup()
            if self._cleanup_wait is not None and self._autoflush:
                self._arm_ticker()

    def final_bundle(
        self, deltas: Sequence[int | None] = (), summary: str = ""
    ) -> tuple[dict[str, str], dict[str, Any]]:
        """The static output: the summary, then one section per column (Markdown and text)."""
        deltas = list(deltas) + [None] * (len(self.columns) - len(deltas))
        md = [f"> ⚠ {md_escape(self.notice)}"] if self.notice else []
        plain = [f"note: {self.notice}"] if self.notice else []
        md += [summary] if summary else []
        meta = []
        for i, (col, count) in enumerate(zip(self.columns, deltas, strict=False), 1):
            title = section_title(i, col.info)
            md.append(
                f"### {title}\n\n" + run_markdown(col.state, col.info, col.tree, deltas=count)
            )
            plain.append(f"[{title}]\n" + run_plain(col.state, col.info, col.tree, deltas=count))
            vm = present(col.state, col.info, deltas=count)
            meta.append(metadata(vm, col.state, col.info))
        data = {"text/markdown": "\n\n".join(md), "text/plain": "\n\n".join(plain)}
        return data, {METADATA_KEY: {"comparison": meta}}

    def _render(self, *, final: bool = False) -> int:
        return 0

    def _finalize(self, data: dict[str, Any], metadata: dict[str, Any]) -> None:
        return None


def section_title(index: int, info: RunInfo) -> str:
    """``1 · agent · model`` (the model only when the column asked for one)."""
    parts = [str(index), info.agent_name or "agent"]
    if info.model:
        parts.append(info.model)
    return " · ".join(parts)


class MarkdownColumns(ColumnsRenderer):
    """``handle`` (``live=True``): one Markdown output with every column, updated by
    display id at a throttled rate; ``plain``/``terminal``: the bundle once, at the end."""

    def __init__(
        self,
        infos: Sequence[RunInfo],
        *,
        live: bool,
        sink: Sink | None = None,
        interval: float = MARKDOWN_INTERVAL,
        **kwargs: Any,
    ) -> None:
        if not live:
            kwargs.setdefault("autoflush", False)  # nothing to refresh while live
        super().__init__(infos, interval=interval, **kwargs)
        self.live = live
        self.sink = sink or default_sink()
        self.display_id: str | None = None
        self._last: dict[str, str] | None = None
        if live:
            self.display_id = f"nearnb-{uuid.uuid4().hex}"
            self._last = self.live_bundle()
            self.sink.show(self._last, {}, display_id=self.display_id)
            self.throttle.flushed(boundary=True)

    def live_bundle(self) -> dict[str, str]:
        md = [f"> ⚠ {md_escape(self.notice)}"] if self.notice else []
        plain = [f"note: {self.notice}"] if self.notice else []
        for i, col in enumerate(self.columns, 1):
            title = section_title(i, col.info)
            text = run_markdown(
                col.state,
                col.info,
                col.tree,
                live=True,
                stop_requested=col.stop_requested,
                tail_chars=COLUMN_TAIL_CHARS,
            )
            md.append(f"### {title}\n\n{text}")
            vm = present(col.state, col.info, stop_requested=col.stop_requested)
            plain.append(f"[{title}] {vm.header.label} · {vm.counter.line}")
        return {"text/markdown": "\n\n".join(md), "text/plain": "\n".join(plain)}

    def _render(self, *, final: bool = False) -> int:
        if final or not self.live or self.display_id is None:
            return 0
        data = self.live_bundle()
        if data != self._last:
            self.sink.update(data, {}, display_id=self.display_id)
            self._last = data
        return 0  # a display update, not a comm message

    def _finalize(self, data: dict[str, Any], metadata: dict[str, Any]) -> None:
        if self.display_id is None:
            self.sink.show(data, metadata)
        else:
            self.sink.update(data, metadata, display_id=self.display_id)
