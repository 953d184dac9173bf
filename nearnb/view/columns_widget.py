"""The live ipywidgets view of several runs side by side (``%%near_agent A B``).

One ``HBox`` of columns; each column is a :class:`~nearnb.view.panel.RunPanel`
(header, notices, counter + Stop, transcript, live message, tool steps,
sub-agents nested under their steps) - the very panel a single run's view
uses, so a column looks and costs what a single view does. All panels of all
columns are made and changed through one :class:`WidgetKit` and rendered in
one refresh under one throttle: the cell's rate bound counts every column.

A column's Stop button cancels that column's run only (its panel's host is a
:class:`_ColumnHost`, which routes ``stop_run`` to the column). At the end the
static bundle (comparison table + one section per column) replaces the
widget, whose models are then closed as the message budget allows, exactly
as :class:`~nearnb.view.widget.WidgetRenderer` does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import ipywidgets as widgets

from .columns import Column, ColumnsRenderer
from .panel import RunPanel, notices_html
from .present import RunInfo
from .sink import Sink
from .widget_live import LiveWidgets, child_info, find_child_panel, render_panels


class _ColumnHost:
    """What a :class:`RunPanel` needs of its view, for one column: that column's
    tree, panels and stoppers; the view's kit, budget and closing list."""

    def __init__(self, view: WidgetColumns, index: int) -> None:
        self.view, self.index = view, index
        self.column: Column = view.columns[index]

    kit = property(lambda self: self.view.kit)
    tree = property(lambda self: self.column.tree)
    panels = property(lambda self: self.column.panels)

    @property
    def closing(self) -> list[widgets.Widget]:
        return self.view.closing

    @closing.setter
    def closing(self, value: list[widgets.Widget]) -> None:
        self.view.closing = value

    @property
    def built(self) -> int:
        return self.view.built

    @built.setter
    def built(self, value: int) -> None:
        self.view.built = value

    @property
    def wanted(self) -> bool:
        return self.view.wanted

    @wanted.setter
    def wanted(self, value: bool) -> None:
        self.view.wanted = value

    def stop_run(self, run_id: str | None) -> None:
        self.view.stop_in_column(self.index, run_id)

    def can_stop(self, run_id: str) -> bool:
        return run_id in self.column.stoppers

    def may_build(self) -> bool:
        return self.view.may_build()


class WidgetColumns(LiveWidgets, ColumnsRenderer):
    """Live columns of ipywidgets; replaced by the static bundle when all runs ended."""

    def __init__(
        self,
        infos: Sequence[RunInfo],
        *,
        stops: Sequence[Callable[[], None] | None] = (),
        sink: Sink | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(infos, stops=stops, **kwargs)
        self._start_live(sink)
        self.hosts = [_ColumnHost(self, i) for i in range(len(self.columns))]
        self.panels: list[RunPanel] = []  # each column's root panel, in order
        boxes = []
        for host, col in zip(self.hosts, self.columns, strict=True):
            panel = RunPanel(host, None, stoppable=col.on_stop is not None)
            col.panels.insert(0, panel)
            # A narrow column squeezes the button to "S…": keep it whole.
            self.kit.set(panel.stop_button.layout, flex="0 0 auto")
            self.panels.append(panel)
            # Each column its own layout (the kit's is shared): equal widths, text wraps.
            layout = widgets.Layout(flex="1 1 0%", min_width="0", padding="0 0.5em")
            boxes.append(
                self.kit.track(
                    widgets.VBox((panel.root,), layout=layout, _dom_classes=("nearnb-column",))
                )
            )
        row = widgets.Layout(width="100%", align_items="flex-start")
        self.row = self.kit.track(
            widgets.HBox(tuple(boxes), layout=row, _dom_classes=("nearnb-columns",))
        )
        parts: tuple[widgets.Widget, ...] = (self.row,)
        if self.notice:
            parts = (self.kit.html(notices_html((self.notice,))), self.row)
        self.root = self.kit.vbox(parts, css_class="nearnb-comparison")
        self._render()
        names = ", ".join(info.agent_name or "agent" for info in infos)
        self._show(self.root, f"{names}: live view, side by side (runs in progress)")

    def stop_button(self, index: int) -> widgets.Button:
        """Column ``index``'s Stop button (tests click it)."""
        return self.panels[index].stop_button

    def counter(self, index: int) -> widgets.HTML:
        return self.panels[index].counter

    # -------------------------------------------------------------- rendering

    def _render(self, *, final: bool = False) -> int:
        if final:
            return 0  # the static bundle replaces the widget
        start = self._begin_refresh()
        for col in self.columns:
            render_panels(
                col.panels,
                col.tree,
                col.state,
                col.info,
                stop_requested=col.stop_requested,
                stopping=col.stopping,
            )
        return self._end_refresh(start)

    def _on_column_stop(self, index: int) -> int:
        start = self.kit.sent
        col = self.columns[index]
        self.panels[index].on_stop_requested(col.state, col.info)
        return self.kit.sent - start

    def _on_column_child_stop(self, index: int, run_id: str) -> int:
        col = self.columns[index]
        panel, state = find_child_panel(col.panels, run_id), col.tree.runs.get(run_id)
        if panel is None or state is None:
            return 0
        start = self.kit.sent
        panel.on_stop_requested(state, child_info(col.tree, run_id, panel.name))
        return self.kit.sent - start
