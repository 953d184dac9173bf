"""The live ipywidgets view of a run (and of its sub-agents), with Stop buttons.

Layout (top to bottom): header (agent, model, status badge), notices (the
fallback notice ...),
counter row (deltas received, chars, deltas/s, elapsed + Stop), transcript
(finished answers and tool steps as Markdown, in the order they finished),
live area (the message being streamed), running tool steps, running
sub-agents, error (summary + collapsible traceback). Each run of the tree is
a :class:`~nearnb.view.panel.RunPanel`; sub-agents nest in accordions under
the steps that started them (see :mod:`nearnb.view.panel`). What goes where
is decided by :func:`~nearnb.view.present.present`; this module only maps
the view model onto widget traits.

Cost model - why it looks like this:

* Only traits change, never outputs (tqdm's lesson): no ``with Output():``,
  which misroutes output from threads (jupyter-widgets/ipywidgets#2358).
* Markdown children are ``Output`` widgets created *with* their content, so
  each finished block costs one ``comm_open`` and is never re-sent. When
  many blocks finish between two refreshes (300 short answers a second),
  the ones past :data:`MAX_NEW_CHILDREN` share one child, so a burst costs
  a bounded number of messages per refresh.
* The streaming message is frozen paragraph by paragraph
  (:mod:`nearnb.view.blocks`) into such children, inside an append-only tree
  of boxes (:class:`AppendTree`) so appending re-sends at most ``fanout``
  child ids; only the short live tail is re-sent on each refresh. Bytes sent
  grow O(n) in the text length instead of O(n^2). The live slot is reused
  from one answer to the next, so short messages open no widgets each.
* Refreshes are paced by the base class's throttle (<= 15/s by default, and
  <= 100 comm messages in any second, counted by :class:`WidgetKit`);
  several trait changes to one widget go out as one message (``hold_sync``).
* At the end the static bundle replaces the widget, so the widget is not
  re-rendered; its models are closed as the message budget allows.

Stop while the cell is busy (ipykernel 7.4.0): the run executes on a worker
thread and the cell thread blocks in ``handle.wait()``. JupyterLab (>= 4.4)
sends widget comm messages on a kernel *subshell*, so a click could be
handled on another thread at once - but ipykernel 7.4.0 re-routes a comm
message to the subshell that last *published* on that comm
(``BaseComm._reply_subshell_for``), i.e. the busy main shell, and the click
would wait for the run to end. :func:`route_clicks_to_frontend_subshell`
restores the frontend's choice for the Stop button's comm only (a button
expects no reply, so the reply routing 7.4.0 added is not needed there).
It is a private ipykernel attribute, so it is guarded by ``hasattr``; where
it is missing (older ipykernel routes by the frontend already) nothing is
changed. We chose this over making the cell await on the kernel's event
loop because a magic runs synchronously: an awaiting cell would need an
input transformer rewriting user cells. The fallbacks that always work: a
kernel interrupt (the wait turns ``KeyboardInterrupt`` into a cancel) and
``--no-wait`` (the cell returns; clicks reach an idle main shell). The
browser test (tests/test_browser.py) proves the click lands mid-run.
"""

from __future__ import annotations

from collections.abc import Callable

from .base import Renderer
from .bundle import RunInfo
from .panel import (
    MAX_NEW_CHILDREN,
    ChildPanel,
    RunPanel,
    block_markdown,
    error_html,
    header_html,
    notices_html,
    route_clicks_to_frontend_subshell,
    steps_html,
)
from .sink import Sink
from .throttle import DEFAULT_INTERVAL, Clock
from .widget_kit import AppendTree, LiveSlot
from .widget_live import (
    CHILD_PANEL_OPENS,
    WIDGET_VIEW_MIME,
    LiveWidgets,
    child_info,
    find_child_panel,
    render_panels,
)

__all__ = [
    "CHILD_PANEL_OPENS",
    "MAX_NEW_CHILDREN",
    "WIDGET_VIEW_MIME",
    "AppendTree",
    "WidgetRenderer",
    "block_markdown",
    "error_html",
    "header_html",
    "notices_html",
    "route_clicks_to_frontend_subshell",
    "steps_html",
]


class WidgetRenderer(LiveWidgets, Renderer):
    """Live ipywidgets view; replaced by the static bundle when finished."""

    def __init__(
        self,
        info: RunInfo,
        *,
        sink: Sink | None = None,
        interval: float = DEFAULT_INTERVAL,
        clock: Clock | None = None,
        autoflush: bool = True,
        on_stop: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(info, interval=interval, clock=clock, autoflush=autoflush, on_stop=on_stop)
        self._start_live(sink)
        self.panels: list[RunPanel] = []  # the root's, then each child's as it appears
        self.panel = RunPanel(self, None, stoppable=on_stop is not None)
        self.panels.insert(0, self.panel)
        self._render()
        self._show(self.root, f"{info.agent_name or 'agent'}: live view (run in progress)")

    # The root run's widgets, by the names tests and notebooks know.
    root = property(lambda self: self.panel.root)
    header = property(lambda self: self.panel.header)
    notices = property(lambda self: self.panel.notices)
    counter = property(lambda self: self.panel.counter)
    stop_button = property(lambda self: self.panel.stop_button)
    transcript = property(lambda self: self.panel.transcript)
    live = property(lambda self: self.panel.live)
    tools = property(lambda self: self.panel.tools)
    error = property(lambda self: self.panel.error)
    subshell_routing = property(lambda self: self.panel.subshell_routing)

    @property
    def _live(self) -> LiveSlot | None:
        """The slot of the root's message shown live, None when nothing is."""
        slot = self.panel._slot
        return slot if slot is not None and self.panel.live.children else None

    def child_panel(self, run_id: str) -> ChildPanel | None:
        """The nested panel of a sub-agent run, once it is shown."""
        return find_child_panel(self.panels, run_id)

    # -------------------------------------------------------------- rendering

    def _render(self, *, final: bool = False) -> int:
        if final:
            return 0  # the static bundle replaces the widget: nothing to re-render
        start = self._begin_refresh()
        render_panels(
            self.panels,
            self.tree,
            self.state,
            self.info,
            stop_requested=self.stop_requested,
            stopping=self.stopping,
        )
        return self._end_refresh(start)

    def _on_stop_requested(self) -> int:
        start = self.kit.sent
        self.panel.on_stop_requested(self.state, self.info)
        return self.kit.sent - start

    def _on_child_stop_requested(self, run_id: str) -> int:
        panel, state = self.child_panel(run_id), self.tree.runs.get(run_id)
        if panel is None or state is None:
            return 0
        start = self.kit.sent
        panel.on_stop_requested(state, child_info(self.tree, run_id, panel.name))
        return self.kit.sent - start
