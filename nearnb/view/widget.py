"""The live ipywidgets view of a run, with a Stop button.

Layout (top to bottom): header (agent, model, status badge), notices (the
fallback notice ...),
counter row (deltas received, chars, deltas/s, elapsed + Stop), transcript
(finished answers and tool steps as Markdown, in the order they finished),
live area (the message being streamed), running tool steps, error (summary +
collapsible traceback). What goes where is decided by
:func:`~nearnb.view.present.present`; this module only maps the view model
onto widget traits.

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

import html
import uuid
from collections.abc import Callable
from typing import Any

import ipywidgets as widgets

from .base import Renderer
from .blocks import TAIL_CSS
from .bundle import RunInfo, answer_markdown, badge_html, clip, md_escape, tool_markdown
from .present import AnswerBlock, Block, ErrorView, Header, ToolBlock, ViewModel, present
from .sink import IPythonSink, Sink
from .throttle import DEFAULT_INTERVAL, Clock
from .widget_kit import AppendTree, LiveSlot, WidgetKit

WIDGET_VIEW_MIME = "application/vnd.jupyter.widget-view+json"
#: Finished blocks that get a transcript child each per refresh; more share one.
MAX_NEW_CHILDREN = 3

__all__ = [
    "WIDGET_VIEW_MIME",
    "AppendTree",
    "WidgetRenderer",
    "route_clicks_to_frontend_subshell",
]


def route_clicks_to_frontend_subshell(widget: widgets.Widget) -> bool:
    """Let clicks on ``widget`` run on the subshell the frontend chose.

    Returns True when the override was applied (ipykernel >= 7.4.0).
    """
    comm = getattr(widget, "comm", None)
    if comm is None or not hasattr(comm, "_reply_subshell_for"):
        return False
    comm._reply_subshell_for = lambda data, default: default
    return True


class WidgetRenderer(Renderer):
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
        self.sink = sink or IPythonSink()
        self.display_id = f"nearnb-{uuid.uuid4().hex}"
        kit = self.kit = WidgetKit()
        self.header = kit.html(css_class="nearnb-header")
        # Notices are appended, never re-sent: a run may raise hundreds.
        self.notices = kit.vbox(css_class="nearnb-notices")
        self._notices = AppendTree(kit, self.notices)
        self._notices_shown = 0
        self.counter = kit.html(css_class="nearnb-counter")
        self.stop_button = kit.track(
            widgets.Button(
                description="Stop",
                icon="stop",
                tooltip="Cancel this run (a kernel interrupt does the same)",
                disabled=on_stop is None,
                layout=widgets.Layout(width="auto"),
                _dom_classes=("nearnb-stop",),
            )
        )
        self.stop_button.on_click(lambda _button: self.stop())
        self.subshell_routing = route_clicks_to_frontend_subshell(self.stop_button)
        self.transcript = kit.vbox(css_class="nearnb-transcript")
        self._transcript = AppendTree(kit, self.transcript)
        self.live = kit.vbox(css_class="nearnb-live")
        self.tools = kit.html()
        self.error = kit.track(
            widgets.HTML(
                layout=widgets.Layout(display="none"),
                style=kit.html_style,
                _dom_classes=("nearnb-error",),
            )
        )
        row_layout = widgets.Layout(align_items="center")
        row = kit.track(widgets.HBox((self.counter, self.stop_button), layout=row_layout))
        self.root = kit.vbox(
            (self.header, self.notices, row, self.transcript, self.live, self.tools, self.error),
            css_class="nearnb-view",
        )
        self._slot: LiveSlot | None = None
        self._seen = 0  # timeline entries already in the transcript
        self._closing: list[widgets.Widget] = []  # closed when the budget allows
        self._render()
        self.throttle.flushed(boundary=True)
        self.throttle.spend(kit.sent)  # every open counts, but is not a refresh's size
        self.sink.show(
            {
                WIDGET_VIEW_MIME: {
                    "version_major": 2,
                    "version_minor": 0,
                    "model_id": self.root.model_id,
                },
                "text/plain": f"{info.agent_name or 'agent'}: live view (run in progress)",
            },
            {},
            display_id=self.display_id,
        )

    @property
    def _live(self) -> LiveSlot | None:
        """The slot of the message shown live, None when nothing is."""
        slot = self._slot
        return slot if slot is not None and self.live.children else None

    # -------------------------------------------------------------- rendering

    def _render(self, *, final: bool = False) -> int:
        if final:
            return 0  # the static bundle replaces the widget: nothing to re-render
        kit = self.kit
        start = kit.sent
        vm = present(self.state, self.info, since=self._seen, stop_requested=self.stop_requested)
        self._seen = vm.timeline_end
        self._render_blocks(vm.blocks)
        self._render_live(vm)
        kit.set(self.header, value=header_html(vm.header))
        new_notices = vm.header.notices[self._notices_shown :]
        if new_notices:
            self._notices.append(kit.html(notices_html(new_notices)))
            self._notices_shown = len(vm.header.notices)
        # Re-sent on every refresh, so kept short; tests read the <b>.
        kit.set(self.counter, value=f"<b>{vm.counter.number}</b> {vm.counter.rest}")
        kit.set(self.tools, value=steps_html(vm.live_steps))
        if vm.terminal:
            kit.set(self.stop_button, disabled=True)
            kit.set(self.stop_button.layout, display="none")
        if vm.error is not None:
            kit.set(self.error, value=error_html(vm.error))
            kit.set(self.error.layout, display=None)
        # Widgets dropped earlier are closed from what this refresh may still send.
        self._close_some(self.throttle.refresh_cost - (kit.sent - start))
        return kit.sent - start

    def _render_blocks(self, blocks: tuple[Block, ...]) -> None:
        """Append newly finished blocks to the transcript, in order."""
        slot, children, group = self._slot, [], []

        def flush_group() -> None:
            if group:
                children.append(self.kit.markdown(tuple(group)))
                group.clear()

        for block in blocks:
            if slot is not None and slot.key == block.key:
                # The live message ended: its frozen blocks move, never re-sent.
                if (
                    slot.tree is not None
                    and isinstance(block, AnswerBlock)
                    and block.text.startswith(slot.frozen_text)
                ):
                    flush_group()
                    children.append(slot.take_tree(_rest_md(block, slot)))
                    continue
                self._closing += slot.discard_tree()  # shown whole below instead
            group.append(block_markdown(block))
            if len(children) + 1 < MAX_NEW_CHILDREN:
                flush_group()  # a child each, while cheap
        flush_group()
        if children:
            self._transcript.extend(children)

    def _render_live(self, vm: ViewModel) -> None:
        live, slot = vm.live, self._slot
        if slot is not None and (live is None or slot.key != live.key):
            if slot.hidden:  # a draft gives way to what comes next: drop it
                self.kit.set(self.live, children=())
                self._closing += slot.widgets()
                self._slot = slot = None
            elif slot.key is not None:  # ended without a block (or never ended)
                self._closing += slot.discard_tree()
        if live is None:
            self.kit.set(self.live, children=())
            return
        if slot is None:
            slot = self._slot = LiveSlot(self.kit)
        slot.key, slot.hidden = live.key, live.hidden
        self.kit.set(self.live, children=(slot.box,))
        slot.update(live.text)

    def _close_some(self, budget: int) -> None:
        while self._closing and budget > 0:
            before = self.kit.sent
            self.kit.close(self._closing.pop())
            budget -= self.kit.sent - before

    def _on_stop_requested(self) -> int:
        kit = self.kit
        start = kit.sent
        kit.set(self.stop_button, disabled=True, description="Stopping…")
        vm = present(self.state, self.info, since=len(self.state.timeline), stop_requested=True)
        kit.set(self.header, value=header_html(vm.header))
        return kit.sent - start

    # ------------------------------------------------------------- finishing

    def _finalize(self, data: dict[str, Any], metadata: dict[str, Any]) -> None:
        """Swap the widget for the static bundle; its models are then closed
        by :meth:`_cleanup` as the message budget allows."""
        self.sink.update(data, metadata, display_id=self.display_id)
        self._closing = list(self.kit.created)  # popped from the end: newest first
        self.kit.created.clear()

    def _cleanup(self) -> float | None:
        spare = self.throttle.spare(keep=0)
        start = self.kit.sent
        self._close_some(spare)
        self.throttle.spend(self.kit.sent - start)
        if not self._closing:
            return None
        return max(self.throttle.delay_for(1), 0.01)


def _rest_md(block: AnswerBlock, slot: LiveSlot) -> str:
    """The Markdown of what was not frozen yet (plus the incomplete marker)."""
    rest = block.text[len(slot.frozen_text) :].strip()
    if block.status == "incomplete":
        reason = block.incomplete_reason or "run stopped"
        rest += f"\n\n*(incomplete: {md_escape(reason)})*"
    return rest


def block_markdown(block: Block) -> str:
    return answer_markdown(block) if isinstance(block, AnswerBlock) else tool_markdown(block)


def header_html(header: Header) -> str:
    parts = [f"<style>{TAIL_CSS}</style><b>{html.escape(header.agent)}</b>"]
    if header.model:
        parts.append(f"<code>{html.escape(header.model)}</code>")
    parts.append(badge_html(header.status))
    return " · ".join(parts)


def notices_html(notices: tuple[str, ...]) -> str:
    return "".join(
        f'<div class="nearnb-notice" style="color:#b45309">⚠ {html.escape(notice)}</div>'
        for notice in notices
    )


def steps_html(steps: tuple[ToolBlock, ...]) -> str:
    """Running tool steps (re-sent while they change, so each call is clipped)."""
    if not steps:
        return ""
    rows = []
    for step in steps:
        for call in step.calls:
            out = "…" if call.output is None else clip(call.output, 200)
            rows.append(
                f"<div>🔧 <code>{html.escape(clip(call.name, 200))}"
                f"({html.escape(clip(call.arguments, 200))})</code> → {html.escape(out)}</div>"
            )
    return '<div class="nearnb-tools">' + "".join(rows) + "</div>"


def error_html(error: ErrorView) -> str:
    body = (
        f'<div style="color:#dc2626"><b>{html.escape(error.status)}:</b> '
        f"{html.escape(error.summary)}</div>"
    )
    if error.traceback:
        body += (
            "<details><summary>Traceback</summary><pre style='white-space:pre-wrap'>"
            f"{html.escape(error.traceback)}</pre></details>"
        )
    return body
