"""What every live ipywidgets view shares: its display, its message budget, its end.

A run's widget view (:mod:`.widget`) and columns of runs (:mod:`.columns_widget`)
differ in what they lay out, not in how they spend the comm-message window of
their throttle: both show one root widget under a display id, count every
message their widgets send, build at most one sub-agent panel per refresh (when
the window has room for its opens), and when the runs end swap the widget for
the static bundle and close their widget models as the window allows. That
part lives here once.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from .panel import ChildPanel
from .present import RunInfo
from .sink import IPythonSink, Sink
from .tree import ChildInfo
from .widget_kit import WidgetKit

if TYPE_CHECKING:
    from collections.abc import Collection, Sequence

    import ipywidgets as widgets

    from ..reducer import RunState
    from .panel import RunPanel
    from .throttle import Throttle
    from .tree import RunTree

WIDGET_VIEW_MIME = "application/vnd.jupyter.widget-view+json"
#: Comm messages one sub-agent panel's widgets take to open (measured: 15-17).
CHILD_PANEL_OPENS = 20


def child_info(tree: RunTree, run_id: str, name: str) -> RunInfo:
    """What a sub-agent's panel shows of its run: its name, its own streaming flag."""
    info = tree.info.get(run_id) or ChildInfo()
    return RunInfo(agent_name=name, show_streaming_message=info.show_streaming_message)


def find_child_panel(panels: Sequence[RunPanel], run_id: str) -> ChildPanel | None:
    """The nested panel of sub-agent run ``run_id`` among ``panels``, once it is shown."""
    return next((p for p in panels if isinstance(p, ChildPanel) and p.run_id == run_id), None)


def render_panels(
    panels: list[RunPanel],
    tree: RunTree,
    state: RunState,
    info: RunInfo,
    *,
    stop_requested: bool,
    stopping: Collection[str],
) -> None:
    """Render one run's panels: its own, then each sub-agent's, parents first (a render
    may append the panel of a child that just appeared; it is rendered in the same pass)."""
    i = 0
    while i < len(panels):
        panel = panels[i]
        i += 1
        if isinstance(panel, ChildPanel):
            child = tree.runs.get(panel.ref.run_id)
            if child is not None:
                panel.render(
                    child,
                    child_info(tree, panel.ref.run_id, panel.name),
                    stop_requested=panel.ref.run_id in stopping,
                )
        else:
            panel.render(state, info, stop_requested=stop_requested)


class LiveWidgets:
    """Mixin of the widget renderers: call :meth:`_start_live` first in ``__init__``."""

    throttle: Throttle

    def _start_live(self, sink: Sink | None) -> None:
        self.sink = sink or IPythonSink()
        self.display_id = f"nearnb-{uuid.uuid4().hex}"
        self.kit = WidgetKit()
        self.closing: list[widgets.Widget] = []  # closed when the budget allows
        self.built = 0  # opens of sub-agent panels built in this refresh
        self.wanted = False  # a panel was due but the window had no room for it

    def _show(self, root: widgets.Widget, text: str) -> None:
        """Display ``root``: the opens made so far count, but not as a refresh's size."""
        self.throttle.flushed(boundary=True)
        self.throttle.spend(self.kit.sent)
        self.sink.show(
            {
                WIDGET_VIEW_MIME: {
                    "version_major": 2,
                    "version_minor": 0,
                    "model_id": root.model_id,
                },
                "text/plain": text,
            },
            {},
            display_id=self.display_id,
        )

    def _begin_refresh(self) -> int:
        """Start counting a refresh; returns the message count it started at."""
        self.built, self.wanted = 0, False
        return self.kit.sent

    def _end_refresh(self, start: int) -> int:
        """Spend a refresh's panel opens, close dropped widgets from what is left of its
        share, and return its size (the opens apart)."""
        # A panel's opens are spent apart from the refresh's size (they happen once,
        # and only when the window had room: may_build), so they do not slow every
        # later refresh the way a huge "largest refresh" would.
        self.throttle.spend(self.built)
        self.throttle.extra = CHILD_PANEL_OPENS if self.wanted else 0
        cost = self.kit.sent - start - self.built
        # Widgets dropped earlier are closed from what this refresh may still send.
        self._close_some(self.throttle.refresh_cost - cost)
        return self.kit.sent - start - self.built

    def may_build(self) -> bool:
        """One sub-agent panel per refresh, when the message window has room for it
        beside this refresh. If not, the next refresh waits until it has
        (``throttle.extra``) and builds it then, even if no event comes."""
        if self.built == 0 and self.throttle.spare() >= CHILD_PANEL_OPENS:
            return True
        self.wanted = True
        return False

    def _again(self) -> bool:
        return self.wanted

    def _close_some(self, budget: int) -> None:
        while self.closing and budget > 0:
            before = self.kit.sent
            self.kit.close(self.closing.pop())
            budget -= self.kit.sent - before

    # ------------------------------------------------------------- finishing

    def _finalize(self, data: dict[str, Any], metadata: dict[str, Any]) -> None:
        """Swap the widget for the static bundle; its models are then closed
        by :meth:`_cleanup` as the message budget allows."""
        self.sink.update(data, metadata, display_id=self.display_id)
        self.closing = list(self.kit.created)  # popped from the end: newest first
        self.kit.created.clear()

    def _cleanup(self) -> float | None:
        spare = self.throttle.spare(keep=0)
        start = self.kit.sent
        self._close_some(spare)
        self.throttle.spend(self.kit.sent - start)
        if not self.closing:
            return None
        return max(self.throttle.delay_for(1), 0.01)
