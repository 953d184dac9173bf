"""The live ipywidgets view of a run, with a Stop button.

Layout (top to bottom): header (agent, model, fallback notice, status badge),
counter row (deltas received, chars, deltas/s, elapsed + Stop), transcript
(completed answers as Markdown), live area (the message being streamed),
tool calls, error (summary + collapsible traceback).

Cost model - why it looks like this:

* Only traits change, never outputs (tqdm's lesson): no ``with Output():``,
  which misroutes output from threads (jupyter-widgets/ipywidgets#2358).
* Markdown children are ``Output`` widgets created *with* their content, so
  each completed block costs one ``comm_open`` and is never re-sent.
* The streaming message is frozen paragraph by paragraph
  (:mod:`nearnb.view.blocks`) into such children, inside an append-only tree
  of boxes (:class:`AppendTree`) so appending re-sends at most ``fanout``
  child ids; only the short live tail is re-sent on each refresh. Bytes sent
  grow O(n) in the text length instead of O(n^2).
* Refreshes are coalesced by the base class's throttle (<= 15/s by default);
  several trait changes to one widget go out as one message (``hold_sync``).

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

from ..reducer import MessageState
from .base import Renderer
from .blocks import TAIL_CSS, freeze_point, tail_html
from .bundle import RunInfo, badge_html, model_label
from .sink import IPythonSink, Sink
from .throttle import DEFAULT_INTERVAL, Clock

WIDGET_VIEW_MIME = "application/vnd.jupyter.widget-view+json"


def route_clicks_to_frontend_subshell(widget: widgets.Widget) -> bool:
    """Let clicks on ``widget`` run on the subshell the frontend chose.

    Returns True when the override was applied (ipykernel >= 7.4.0).
    """
    comm = getattr(widget, "comm", None)
    if comm is None or not hasattr(comm, "_reply_subshell_for"):
        return False
    comm._reply_subshell_for = lambda data, default: default
    return True


class AppendTree:
    """A vertical box you only append to, kept as a tree of boxes.

    Appending the k-th child to one flat ``VBox`` re-sends all k child ids
    (O(k^2) over a stream); here an append re-sends at most ``fanout`` ids,
    plus one more level every ``fanout`` appends.
    """

    def __init__(self, make_box: Callable[[], widgets.Box], fanout: int = 8) -> None:
        self._make_box = make_box
        self.fanout = fanout
        self.root = make_box()
        self._path: list[tuple[widgets.Box, list[widgets.Widget]]] = [(self.root, [])]
        self.boxes: list[widgets.Box] = [self.root]
        self.count = 0

    def append(self, child: widgets.Widget) -> widgets.Box | None:
        """Append ``child``; returns a new root if the tree grew a level."""
        new_root = None
        depth = len(self._path) - 1
        level = depth
        while level >= 0 and len(self._path[level][1]) >= self.fanout:
            level -= 1
        if level < 0:  # every level is full: grow a new root above the old one
            old_root = self.root
            self.root = self._box()
            self._path.insert(0, (self.root, [old_root]))
            self.root.children = (old_root,)
            new_root = self.root
            level = 0
            depth += 1
        # open fresh boxes below the first level with room, down to the leaves
        for below in range(level + 1, depth + 1):
            box = self._box()
            parent, kids = self._path[below - 1]
            kids.append(box)
            parent.children = tuple(kids)
            self._path[below] = (box, [])
        leaf, kids = self._path[depth]
        kids.append(child)
        leaf.children = tuple(kids)
        self.count += 1
        return new_root

    def _box(self) -> widgets.Box:
        box = self._make_box()
        self.boxes.append(box)
        return box


class _LiveMessage:
    """A message being streamed: frozen Markdown blocks, then a raw tail."""

    def __init__(self, view: WidgetRenderer, message: MessageState) -> None:
        self.view = view
        self.message = message
        self.frozen = 0
        self.frozen_text = ""
        self.tree = AppendTree(view._vbox)
        self.tail = view._track(widgets.HTML(layout=view._shared_layout))
        self.tail.add_class("nearnb-tail")
        self.box = view._vbox((self.tree.root, self.tail))
        self.box.add_class("nearnb-message")
        self.blocks: list[widgets.Widget] = []

    def update(self, text: str) -> None:
        cut = freeze_point(text, self.frozen)
        if cut > self.frozen:
            self._freeze(text[self.frozen : cut])
            self.frozen = cut
        self.tail.value = tail_html(text[self.frozen :])

    def complete(self, text: str) -> None:
        """The message is done: its whole text becomes Markdown blocks."""
        if not text.startswith(self.frozen_text):  # the final text is not what streamed
            for widget in [*self.tree.boxes, *self.blocks]:
                self.view._close(widget)
            self.frozen, self.frozen_text, self.blocks = 0, "", []
            self.tree = AppendTree(self.view._vbox)
            self.box.children = (self.tree.root, self.tail)
        rest = text[self.frozen :]
        self.tail.value = ""
        if rest.strip():
            self._freeze(rest)
        self.frozen = len(text)

    def _freeze(self, chunk: str) -> None:
        block = self.view._markdown(chunk)
        self.blocks.append(block)
        self.frozen_text += chunk
        new_root = self.tree.append(block)
        if new_root is not None:
            self.box.children = (new_root, self.tail)

    def close(self) -> None:
        for widget in [self.box, self.tail, *self.tree.boxes, *self.blocks]:
            self.view._close(widget)


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
        self._created: list[widgets.Widget] = []
        self._shared_layout = self._track(widgets.Layout())
        self.header = self._track(widgets.HTML(layout=self._shared_layout))
        self.header.add_class("nearnb-header")
        self.counter = self._track(widgets.HTML(layout=self._shared_layout))
        self.counter.add_class("nearnb-counter")
        self.stop_button = self._track(
            widgets.Button(
                description="Stop",
                icon="stop",
                tooltip="Cancel this run (a kernel interrupt does the same)",
                disabled=on_stop is None,
                layout=widgets.Layout(width="auto"),
            )
        )
        self.stop_button.add_class("nearnb-stop")
        self.stop_button.on_click(lambda _button: self.stop())
        self.subshell_routing = route_clicks_to_frontend_subshell(self.stop_button)
        self.transcript = self._vbox(())
        self.transcript.add_class("nearnb-transcript")
        self.live = self._vbox(())
        self.live.add_class("nearnb-live")
        self.tools = self._track(widgets.HTML(layout=self._shared_layout))
        self.error = self._track(widgets.HTML(layout=widgets.Layout(display="none")))
        self.error.add_class("nearnb-error")
        row = self._track(widgets.HBox((self.counter, self.stop_button)))
        row.layout.align_items = "center"
        self.root = self._vbox(
            (self.header, row, self.transcript, self.live, self.tools, self.error)
        )
        self.root.add_class("nearnb-view")
        self._live: _LiveMessage | None = None
        self._seen_messages = 0
        self._render()
        self.throttle.flushed(boundary=True)
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

    # ------------------------------------------------------------- widget kit

    def _track(self, widget: Any) -> Any:
        self._created.append(widget)
        return widget

    def _vbox(self, children: tuple[widgets.Widget, ...] = ()) -> widgets.VBox:
        return self._track(widgets.VBox(children, layout=self._shared_layout))

    def _markdown(self, text: str) -> widgets.Output:
        """A static Markdown child: created with its content, sent once."""
        output = {
            "output_type": "display_data",
            "data": {"text/markdown": text.strip()},
            "metadata": {},
        }
        return self._track(widgets.Output(outputs=(output,), layout=self._shared_layout))

    def _close(self, widget: widgets.Widget) -> None:
        """Close a widget and its own layout/style models (widgets too), not
        the layout all views share (closed last, by :meth:`_finalize`)."""
        widget.close()
        for name in ("layout", "style"):
            part = getattr(widget, name, None)
            if isinstance(part, widgets.Widget) and part is not self._shared_layout:
                part.close()

    # -------------------------------------------------------------- rendering

    def _render(self, *, final: bool = False) -> None:
        state = self.state
        self._render_messages(final=final)
        self.header.value = self._header_html()
        # Re-sent on every refresh, so kept short; tests read the <b>.
        self.counter.value = (
            f"<b>{state.deltas:,}</b> deltas received · {state.chars:,} chars · "
            f"{state.deltas_per_second():,.1f} deltas/s · {state.elapsed:.1f} s"
        )
        if state.terminal or final:
            with self.stop_button.hold_sync():
                self.stop_button.disabled = True
                self.stop_button.layout.display = "none"
        self.tools.value = self._tools_html()
        if state.error or state.status == "failed":
            with self.error.hold_sync():
                self.error.value = self._error_html()
                self.error.layout.display = None

    def _render_messages(self, *, final: bool) -> None:
        state = self.state
        # Completed messages first: one of them may be the message streaming until now.
        for message in state.messages[self._seen_messages :]:
            self._seen_messages += 1
            live = self._live
            if message.hidden:
                # A streamed intermediate message stays visible (in full) until
                # the next message starts; other hidden messages never show.
                if self.info.show_streaming_message and message.deltas:
                    if live is None or live.message is not message:
                        self._drop_live()
                        live = self._live = _LiveMessage(self, message)
                        self.live.children = (live.box,)
                    live.update(message.text)
                continue
            if live is not None and live.message is message:
                live.complete(message.text)
                self.live.children = ()
                self.transcript.children = (*self.transcript.children, live.box)
                self._live = None
                continue
            self._drop_live()  # a newer message started (and ended) since the last render
            if message.role == "assistant":
                block = self._markdown(message.text)
                self.transcript.children = (*self.transcript.children, block)
        streaming = state.streaming
        if self._live is not None and (
            final
            or state.terminal
            or (streaming is not None and self._live.message is not streaming)
        ):
            self._drop_live()
        if self.info.show_streaming_message and streaming is not None and not final:
            if self._live is None:
                self._live = _LiveMessage(self, streaming)
                self.live.children = (self._live.box,)
            self._live.update(streaming.text)

    def _drop_live(self) -> None:
        """Replace the streamed text: the next message started (NEAR's rule)."""
        if self._live is not None:
            self.live.children = ()
            self._live.close()
            self._live = None

    def _header_html(self) -> str:
        state, info = self.state, self.info
        name = html.escape(info.agent_name or state.assistant_id or "agent")
        parts = [f"<style>{TAIL_CSS}</style><b>{name}</b>"]
        model = model_label(state, info)
        if model:
            parts.append(f"<code>{html.escape(model)}</code>")
        status = "cancelling" if self.stop_requested and not state.terminal else state.status
        parts.append(badge_html(status))
        line = " · ".join(parts)
        for notice in state.notices:
            line += (
                f'<div class="nearnb-notice" style="color:#b45309">⚠ {html.escape(notice)}</div>'
            )
        return line

    def _tools_html(self) -> str:
        if not self.state.tool_calls:
            return ""
        rows = []
        for call in self.state.tool_calls.values():
            out = "…" if call.output is None else _clip(call.output, 200)
            rows.append(
                f"<div>🔧 <code>{html.escape(call.name)}({html.escape(_clip(call.arguments, 200))})"
                f"</code> → {html.escape(out)}</div>"
            )
        return '<div class="nearnb-tools">' + "".join(rows) + "</div>"

    def _error_html(self) -> str:
        state = self.state
        summary = (state.error or "run failed").strip().splitlines()[0]
        body = (
            f'<div style="color:#dc2626"><b>{html.escape(state.status)}:</b> '
            f"{html.escape(summary)}</div>"
        )
        if state.traceback:
            body += (
                "<details><summary>Traceback</summary><pre style='white-space:pre-wrap'>"
                f"{html.escape(state.traceback)}</pre></details>"
            )
        return body

    def _on_stop_requested(self) -> None:
        with self.stop_button.hold_sync():
            self.stop_button.disabled = True
            self.stop_button.description = "Stopping…"
        self.header.value = self._header_html()

    # ------------------------------------------------------------- finishing

    def _finalize(self, data: dict[str, Any], metadata: dict[str, Any]) -> None:
        """Swap the widget for the static bundle, then free the widget models."""
        self.sink.update(data, metadata, display_id=self.display_id)
        for widget in reversed(self._created):
            self._close(widget)
        self._created.clear()


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
