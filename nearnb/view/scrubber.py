"""The scrubber: a finished run shown as it was after any one of its events.

Layout: play/pause, ◀, a slider over the events, ▶; a line naming the event
at the slider (``42 / 1,006 · thread.message.delta · +1.234 s``, time since
the run's first event); then the run as the live view showed it at that
moment - header and status badge, counter, finished answers and tool steps,
the message being streamed, running tool steps, sub-agents in accordions
(open while they run, at their step's place once it ended), error.

The slider's value *is* the widget's ``position`` trait (``traitlets.link``),
so code, a drag, the arrow keys of a focused slider (noUiSlider's keyboard
support), the step buttons and ``Play`` (``jslink``-ed to the slider, so it
plays in the browser) all move the same thing.

Why not the live view's :class:`~nearnb.view.panel.RunPanel`: a live view
only ever appends (its transcript, its frozen paragraphs), and a scrubber
goes back. So a position is rendered as a *function of the position*: each
widget's value is set from the view model (:func:`~nearnb.view.present.present`
of :class:`~nearnb.view.timeline.Timeline`'s state), with the live view's own
HTML helpers and CSS classes, and unchanged traits are not sent
(:class:`~nearnb.view.widget_kit.WidgetKit`). What is costly is made once
and reused at every position: a finished block's Markdown child (keyed by
the block itself), and the streamed message's paragraphs, cut where a prefix
of the text cuts the same way (:func:`next_cut`), so a seek re-sends the
short tail and child ids, never the whole text.
"""

from __future__ import annotations

import html
import math
import threading
from bisect import bisect_right
from typing import Any

import ipywidgets as widgets
import traitlets

from ..reducer import RunState
from .blocks import _FENCE, MAX_TAIL, MIN_BLOCK, tail_html
from .bundle import run_markdown, run_plain
from .panel import (
    block_markdown,
    error_html,
    header_html,
    notices_html,
    route_clicks_to_frontend_subshell,
    steps_html,
    summary_line,
)
from .present import Block, RunInfo, ToolBlock, present
from .timeline import Timeline
from .tree import ChildInfo, RunTree
from .widget_kit import WidgetKit

#: Milliseconds between two frames of Play.
PLAY_INTERVAL = 50
#: Play shows at most this many frames (a longer run steps several events a frame).
PLAY_FRAMES = 600


def next_cut(text: str, start: int) -> int | None:
    """The first place after ``start`` where the streamed text is cut into a frozen block.

    A cut is the end of a line outside a code fence (a closing fence counts)
    that is blank with at least :data:`MIN_BLOCK` characters before it, or
    that ends at least :data:`MAX_TAIL` characters on. It depends only on
    ``text[:cut]``, so every prefix of a text is cut at the same places:
    the blocks made at one position serve every later one.
    """
    in_fence, fence, pos = False, "", start
    while (nl := text.find("\n", pos)) >= 0:
        line, end = text[pos:nl], nl + 1
        match = _FENCE.match(line)
        if not in_fence:
            if match:
                in_fence, fence = True, match.group(1)
            elif (not line.strip() and end - start >= MIN_BLOCK) or end - start >= MAX_TAIL:
                return end
        elif match and match.group(1).startswith(fence) and line.strip() == match.group(1):
            in_fence = False
            if end - start >= MAX_TAIL:
                return end
        pos = end
    return None


class _Paragraphs:
    """One streamed message's frozen blocks: cuts of the longest text seen, a widget each."""

    def __init__(self, kit: WidgetKit) -> None:
        self.kit, self.text, self.cuts, self.scanned = kit, "", [0], 0
        self.widgets: list[widgets.Widget] = []

    def split(self, text: str) -> tuple[list[widgets.Widget], str]:
        """The blocks ``text`` begins with and the tail after them."""
        if len(text) > len(self.text) and text.startswith(self.text):
            self.text = text  # it grew: cut on from the last cut
        elif not self.text.startswith(text):
            self.text, self.cuts, self.widgets = text, [0], []  # a different text: start over
            self.scanned = 0
        if len(self.text) > self.scanned:  # cut what is new (a seek back needs no scan)
            while (cut := next_cut(self.text, self.cuts[-1])) is not None:
                self.cuts.append(cut)
            self.scanned = len(self.text)
        count = bisect_right(self.cuts, len(text)) - 1
        while len(self.widgets) < count:
            i = len(self.widgets)
            self.widgets.append(self.kit.markdown((text[self.cuts[i] : self.cuts[i + 1]].strip(),)))
        return self.widgets[:count], text[self.cuts[count] :]


class RunView:
    """One run's widgets; :meth:`render` sets them from that run's state at a position."""

    def __init__(self, kit: WidgetKit, css_class: str = "nearnb-view") -> None:
        self.kit = kit
        self.header = kit.html(css_class="nearnb-header")
        self.notices = kit.html(css_class="nearnb-notices")
        self.counter = kit.html(css_class="nearnb-counter")
        self.transcript = kit.vbox(css_class="nearnb-transcript")
        self.tail = kit.html(css_class="nearnb-tail")
        self.message = kit.vbox((self.tail,), css_class="nearnb-message")
        self.live = kit.vbox(css_class="nearnb-live")
        self.tools = kit.html()
        self.running = kit.vbox(css_class="nearnb-children")
        self.error = kit.track(
            widgets.HTML(
                layout=widgets.Layout(display="none"),
                style=kit.html_style,
                _dom_classes=("nearnb-error",),
            )
        )
        parts = (self.header, self.notices, self.counter, self.transcript, self.live)
        self.root = kit.vbox((*parts, self.tools, self.running, self.error), css_class=css_class)
        self.blocks: dict[Block, widgets.Widget] = {}
        self.children: dict[str, ChildView] = {}
        self.paragraphs: dict[str, _Paragraphs] = {}

    def render(self, state: RunState, info: RunInfo, tree: RunTree) -> None:
        kit = self.kit
        vm = present(state, info)
        kit.set(self.header, value=header_html(vm.header))
        kit.set(self.notices, value=notices_html(vm.header.notices) if vm.header.notices else "")
        kit.set(self.counter, value=f"<b>{vm.counter.number}</b> {vm.counter.rest}")
        shown = []
        for block in vm.blocks:
            child = self._child(block, tree, placed=True)
            shown.append(child.accordion if child is not None else self._block(block))
        kit.set(self.transcript, children=tuple(shown))
        if vm.live is None:
            kit.set(self.live, children=())
        else:
            paragraphs = self.paragraphs.get(vm.live.key)
            if paragraphs is None:
                paragraphs = self.paragraphs[vm.live.key] = _Paragraphs(kit)
            frozen, tail = paragraphs.split(vm.live.text)
            kit.set(self.message, children=(*frozen, self.tail))
            kit.set(self.tail, value=tail_html(tail))
            kit.set(self.live, children=(self.message,))
        running, steps = [], []
        for step in vm.live_steps:
            child = self._child(step, tree, placed=False)
            if child is None:
                steps.append(step)
            else:
                running.append(child.accordion)
        kit.set(self.tools, value=steps_html(tuple(steps)))
        kit.set(self.running, children=tuple(running))
        if vm.error is not None:
            kit.set(self.error, value=error_html(vm.error))
        kit.set(self.error.layout, display=None if vm.error is not None else "none")

    def _block(self, block: Block) -> widgets.Widget:
        widget = self.blocks.get(block)
        if widget is None:
            widget = self.blocks[block] = self.kit.markdown((block_markdown(block),))
        return widget

    def _child(self, block: Block, tree: RunTree, *, placed: bool) -> ChildView | None:
        """The nested view of a ``run_agent`` step whose child has begun, rendered."""
        ref = block.child if isinstance(block, ToolBlock) else None
        state = tree.runs.get(ref.run_id) if ref is not None else None
        if ref is None or state is None:
            return None
        child = self.children.get(ref.run_id)
        if child is None:
            child = self.children[ref.run_id] = ChildView(self.kit)
        info = tree.child_info(ref)
        child.render_child(state, info, tree, placed=placed)
        return child


class ChildView(RunView):
    """A sub-agent's view in an ``Accordion`` titled with its one-line summary."""

    def __init__(self, kit: WidgetKit) -> None:
        super().__init__(kit, css_class="")
        self.accordion = kit.track(
            widgets.Accordion(
                children=(self.root,),
                selected_index=0,
                layout=kit.layout,
                _dom_classes=("nearnb-child",),
            )
        )

    def render_child(
        self, state: RunState, info: ChildInfo, tree: RunTree, *, placed: bool
    ) -> None:
        name = info.agent_name or "agent"
        self.render(state, RunInfo(name, "", info.show_streaming_message), tree)
        done = state.terminal
        self.kit.set(self.accordion, titles=(summary_line(name, state, done),))
        # Open while it runs; collapsed once it ended and sits at its step's place.
        self.kit.set(self.accordion, selected_index=None if done and placed else 0)


class Scrubber(widgets.VBox):
    """A finished run with a slider over its events (made by :func:`nearnb.scrub`).

    ``position`` (0 .. ``len(timeline)``) is how many events are applied: set
    it from code, or drag the slider, which is linked to it both ways.
    """

    position = traitlets.Int(0).tag(sync=True)

    def __init__(self, timeline: Timeline, **kwargs: Any) -> None:
        self.timeline = timeline
        end = len(timeline)
        self.kit = kit = WidgetKit()
        self.play = kit.track(
            widgets.Play(
                value=end,
                min=0,
                max=end,
                step=max(1, math.ceil(end / PLAY_FRAMES)),
                interval=PLAY_INTERVAL,
                description="Play",
                _dom_classes=("nearnb-scrub-play",),
            )
        )
        self.slider = kit.track(
            widgets.IntSlider(
                value=end,
                min=0,
                max=end,
                step=1,
                continuous_update=True,
                description="event",
                layout=widgets.Layout(flex="1 1 auto", width="auto"),
                _dom_classes=("nearnb-scrub-slider",),
            )
        )
        self.back = self._button("◀", "One event back (or focus the slider: ←)", "back")
        self.forward = self._button("▶", "One event on (or focus the slider: →)", "forward")
        controls = kit.track(
            widgets.HBox(
                (self.play, self.back, self.slider, self.forward),
                layout=widgets.Layout(align_items="center", width="100%"),
            )
        )
        self.label = kit.html(css_class="nearnb-scrub-label")
        self.view = RunView(kit)
        super().__init__(
            children=(controls, self.label, self.view.root),
            position=end,
            _dom_classes=("nearnb-scrubber",),
            **kwargs,
        )
        kit.track(self)
        self._links = (
            widgets.jslink((self.play, "value"), (self.slider, "value")),
            traitlets.link((self.slider, "value"), (self, "position")),
        )
        self.back.on_click(lambda _button: self.step(-1))
        self.forward.on_click(lambda _button: self.step(1))
        # ipykernel 7.4 handles a comm's message on the shell that last sent on that comm,
        # so a drag (slider) and a click (button) could run on two threads at once and
        # undo each other; the frontend sends all widget messages to one subshell: use it.
        for widget in (self.play, self.slider, self.back, self.forward, self):
            route_clicks_to_frontend_subshell(widget)
        self._lock = threading.RLock()  # code in a cell and a drag may still overlap
        self.observe(self._on_position, "position")
        self.render()

    def _button(self, text: str, tooltip: str, name: str) -> widgets.Button:
        return self.kit.track(
            widgets.Button(
                description=text,
                tooltip=tooltip,
                layout=widgets.Layout(width="2.8em"),
                _dom_classes=(f"nearnb-scrub-{name}",),
            )
        )

    @traitlets.validate("position")
    def _check_position(self, proposal: dict[str, Any]) -> int:
        try:
            return self.timeline.check(proposal["value"])
        except ValueError as exc:
            raise traitlets.TraitError(str(exc)) from None

    def _on_position(self, change: dict[str, Any]) -> None:
        self.render()

    # ------------------------------------------------------------------ reading

    def step(self, delta: int) -> None:
        """Move ``delta`` events (clamped to the run)."""
        with self._lock:
            self.position = min(max(self.position + delta, 0), len(self.timeline))

    def view_at(self, k: int) -> Any:
        """The root run's :class:`~nearnb.view.present.ViewModel` after the first ``k`` events."""
        with self._lock:
            return self.timeline.view_at(k)

    def render(self) -> None:
        """Show the current position (only what changed since the last one is sent)."""
        with self._lock:
            self._render(self.position)

    def _render(self, k: int) -> None:
        tree = self.timeline.seek(k)
        event = self.timeline.event(k)
        line = html.escape(self.timeline.label(k))
        if event is not None:
            name = html.escape(event.event)
            line = line.replace(name, f"<code>{name}</code>", 1)
        self.kit.set(self.label, value=line)
        self.view.render(tree.root, self.timeline.info, tree)

    # -------------------------------------------------------------- fallbacks

    def _repr_markdown_(self) -> str:
        with self._lock:
            k = self.position
            tree = self.timeline.seek(k)
            body = run_markdown(tree.root, self.timeline.info, tree, live=True)
            return f"**{self.timeline.label(k)}**\n\n{body}"

    def text(self) -> str:
        """The position as text lines: the event line, the run's header, blocks, live text."""
        with self._lock:
            k = self.position
            tree = self.timeline.seek(k)
            lines = [f"scrub {self.timeline.label(k)}"]
            lines.append(run_plain(tree.root, self.timeline.info, tree))
            live = present(tree.root, self.timeline.info).live
            if live is not None and live.text:
                lines.append(live.text)
            return "\n\n".join(lines)

    def __repr__(self) -> str:
        return self.text()

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        data = dict(super()._repr_mimebundle_(**kwargs) or {})
        data["text/plain"] = self.text()
        data["text/markdown"] = self._repr_markdown_()
        return data

    def close(self) -> None:
        """Close every widget of the scrubber (its models leave the frontend)."""
        for widget in reversed(self.kit.created):
            if widget is not self and getattr(widget, "comm", None) is not None:
                widget.close()
        super().close()


def shown(view: RunView) -> dict[str, Any]:
    """What ``view`` shows, as text (for tests): header, counter, transcript, live text,
    running tools, error, and each sub-agent's view under its run id."""
    transcript = []
    children = {}
    for widget in view.transcript.children:
        for run_id, child in view.children.items():
            if widget is getattr(child, "accordion", None):
                transcript.append(f"child:{run_id}")
                children[run_id] = shown(child)
                break
        else:
            transcript.extend(o["data"]["text/markdown"] for o in widget.outputs)
    for widget in view.running.children:
        for run_id, child in view.children.items():
            if widget is getattr(child, "accordion", None):
                children[run_id] = shown(child)
    live = ""
    if view.live.children:
        frozen = [o["data"]["text/markdown"] for w in view.message.children[:-1] for o in w.outputs]
        live = "|".join([*frozen, html.unescape(view.tail.value)])
    return {
        "header": view.header.value,
        "counter": view.counter.value,
        "transcript": transcript,
        "live": live,
        "tools": view.tools.value,
        "error": view.error.value if view.error.layout.display != "none" else "",
        "children": children,
    }
