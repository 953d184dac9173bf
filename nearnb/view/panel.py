"""One run's widgets inside the live view, and the sub-agent runs nested in it.

The widget view shows a run as a :class:`RunPanel`: header (agent, model,
status badge), notices, counter row (deltas received, chars, deltas/s,
elapsed + Stop), transcript (finished answers and tool steps as Markdown, in
the order they finished), live area (the message being streamed), running
tool steps, running sub-agents, error. The root run is one panel; each child
run (``env.run_agent``) is a panel of its own - its own counter, streaming
text (its own agent's ``show_streaming_message``), status and Stop - nested
in an ``Accordion`` under the step of its parent that started it:

* while the child runs, its accordion sits (open) in the parent's
  "running sub-agents" box, right under the parent's running tool steps;
* when the parent's step ends, the accordion moves into the parent's
  transcript at the step's place (moving a widget re-sends only child ids);
* when the child has ended too, the accordion collapses to a one-line
  summary (agent · status · deltas · time — the answer's first words) that
  a click expands. It is collapsed once; a reader who opens it keeps it open.

Children of children nest the same way, inside their parent's panel. Every
panel's widgets are made, changed and closed through the view's one
:class:`~nearnb.view.widget_kit.WidgetKit`, and all panels are rendered in
the same refresh under the view's one throttle, so a cell with many
streaming sub-agents is still within one rate bound. A panel whose run did
not change since the last refresh is skipped.
"""

from __future__ import annotations

import html
from typing import Any, Protocol

import ipywidgets as widgets

from ..reducer import ChildRef, RunState
from .blocks import TAIL_CSS
from .bundle import RunInfo, answer_markdown, badge_html, clip, md_escape, tool_markdown
from .present import AnswerBlock, Block, ErrorView, Header, ToolBlock, ViewModel, present
from .tree import RunTree
from .widget_kit import AppendTree, LiveSlot, WidgetKit

#: Finished blocks that get a transcript child each per refresh; more share one.
MAX_NEW_CHILDREN = 3
#: How much of a child's answer its collapsed one-line summary shows.
SUMMARY_CHARS = 80


def route_clicks_to_frontend_subshell(widget: widgets.Widget) -> bool:
    """Let clicks on ``widget`` run on the subshell the frontend chose.

    Returns True when the override was applied (ipykernel >= 7.4.0); see
    :mod:`nearnb.view.widget` for why.
    """
    comm = getattr(widget, "comm", None)
    if comm is None or not hasattr(comm, "_reply_subshell_for"):
        return False
    comm._reply_subshell_for = lambda data, default: default
    return True


class Host(Protocol):
    """What a panel needs of its view (:class:`~nearnb.view.widget.WidgetRenderer`)."""

    kit: WidgetKit
    tree: RunTree
    panels: list[RunPanel]
    closing: list[widgets.Widget]
    built: int
    wanted: bool

    def stop_run(self, run_id: str | None) -> None: ...

    def can_stop(self, run_id: str) -> bool: ...

    def may_build(self) -> bool: ...


class RunPanel:
    """The widgets of one run; ``render`` maps that run's view model onto them."""

    def __init__(
        self,
        host: Host,
        run_id: str | None,
        *,
        stoppable: bool,
        css_class: str = "nearnb-view",
    ) -> None:
        self.host, self.run_id = host, run_id
        kit: WidgetKit = host.kit
        self.kit = kit
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
                tooltip="Cancel this run (a kernel interrupt does the same)"
                if run_id is None
                else "Cancel this sub-agent only",
                disabled=not stoppable,
                layout=widgets.Layout(width="auto"),
                _dom_classes=("nearnb-stop",),
            )
        )
        self.stop_button.on_click(lambda _button: host.stop_run(self.run_id))
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
        self._parts = [self.header, self.notices, row, self.transcript, self.live, self.tools]
        self.root = kit.vbox((*self._parts, self.error), css_class=css_class)
        self.running: widgets.VBox | None = None  # running sub-agents, made at the first
        self.children: dict[str, ChildPanel] = {}
        self._slot: LiveSlot | None = None
        self._seen = 0  # timeline entries already in the transcript
        self._signature: tuple[Any, ...] | None = None
        self._pending: tuple[Block, ...] = ()  # finished blocks waiting for a child's panel

    # -------------------------------------------------------------- rendering

    def render(self, state: RunState, info: RunInfo, *, stop_requested: bool) -> None:
        """Show ``state`` (skipped when nothing this panel shows has changed)."""
        tree = self.host.tree
        known = sum(1 for ref in tree.children(state) if ref.run_id in tree.runs)
        signature = (state.events, stop_requested, known, self.host.can_stop(self.run_id or ""))
        if signature == self._signature and not self._pending:
            return
        wanted = self.host.wanted
        self.host.wanted = False
        kit = self.kit
        vm = present(state, info, since=self._seen, stop_requested=stop_requested)
        self._seen = vm.timeline_end
        self._pending = self._render_blocks((*self._pending, *vm.blocks))
        self._render_live(vm)
        kit.set(self.header, value=header_html(vm.header))
        new_notices = vm.header.notices[self._notices_shown :]
        if new_notices:
            self._notices.append(kit.html(notices_html(new_notices)))
            self._notices_shown = len(vm.header.notices)
        # Re-sent on every refresh, so kept short; tests read the <b>.
        kit.set(self.counter, value=f"<b>{vm.counter.number}</b> {vm.counter.rest}")
        steps = tuple(s for s in vm.live_steps if self._child(s) is None)
        kit.set(self.tools, value=steps_html(steps))
        self._render_running(vm.live_steps)
        if vm.terminal:
            kit.set(self.stop_button, disabled=True)
            kit.set(self.stop_button.layout, display="none")
        elif self.run_id is not None and not stop_requested:
            kit.set(self.stop_button, disabled=not self.host.can_stop(self.run_id))
        if vm.error is not None:
            kit.set(self.error, value=error_html(vm.error))
            kit.set(self.error.layout, display=None)
        # A sub-agent panel still to build: render again next time, changed or not.
        self._signature = None if self.host.wanted else signature
        self.host.wanted = self.host.wanted or wanted

    def _child(self, block: ToolBlock) -> ChildPanel | None:
        """The nested panel of a ``run_agent`` step whose child has events (made once,
        when the message budget has room for its widgets; None until then)."""
        ref = block.child
        if ref is None or ref.run_id not in self.host.tree.runs:
            return None
        panel = self.children.get(ref.run_id)
        if panel is None and self.host.may_build():
            before = self.kit.sent
            panel = self.children[ref.run_id] = ChildPanel(self.host, ref)
            self.host.built += self.kit.sent - before
        return panel

    def _waits_for_panel(self, block: Block) -> bool:
        """A finished step whose child has events but no panel yet (no budget now)."""
        return (
            isinstance(block, ToolBlock)
            and block.child is not None
            and block.child.run_id in self.host.tree.runs
            and self._child(block) is None
        )

    def _render_running(self, live_steps: tuple[ToolBlock, ...]) -> None:
        """Sub-agents still running sit, open, in a box under the running tool steps."""
        panels = [p for s in live_steps if (p := self._child(s)) is not None]
        if self.running is None:
            if not panels:
                return
            self.running = self.kit.vbox(css_class="nearnb-children")
            self.kit.set(self.root, children=(*self._parts, self.running, self.error))
        self.kit.set(self.running, children=tuple(p.accordion for p in panels))

    def _render_blocks(self, blocks: tuple[Block, ...]) -> tuple[Block, ...]:
        """Append newly finished blocks to the transcript, in order; the ones that
        must wait (from a sub-agent whose panel the budget cannot open yet)."""
        slot, children, group = self._slot, [], []
        rest: tuple[Block, ...] = ()

        def flush_group() -> None:
            if group:
                children.append(self.kit.markdown(tuple(group)))
                group.clear()

        for i, block in enumerate(blocks):
            if self._waits_for_panel(block):
                rest = blocks[i:]
                break
            nested = self._child(block) if isinstance(block, ToolBlock) else None
            if nested is not None:  # the step ended: its sub-agent moves here, in order
                flush_group()
                nested.placed = True
                children.append(nested.accordion)
                continue
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
                self.host.closing += slot.discard_tree()  # shown whole below instead
            group.append(block_markdown(block))
            if len(children) + 1 < MAX_NEW_CHILDREN:
                flush_group()  # a child each, while cheap
        flush_group()
        if children:
            self._transcript.extend(children)
        return rest

    def _render_live(self, vm: ViewModel) -> None:
        live, slot = vm.live, self._slot
        if slot is not None and (live is None or slot.key != live.key):
            if slot.hidden:  # a draft gives way to what comes next: drop it
                self.kit.set(self.live, children=())
                self.host.closing += slot.widgets()
                self._slot = slot = None
            elif slot.key is not None:  # ended without a block (or never ended)
                self.host.closing += slot.discard_tree()
        if live is None:
            self.kit.set(self.live, children=())
            return
        if slot is None:
            slot = self._slot = LiveSlot(self.kit)
        slot.key, slot.hidden = live.key, live.hidden
        self.kit.set(self.live, children=(slot.box,))
        slot.update(live.text)

    def on_stop_requested(self, state: RunState, info: RunInfo) -> None:
        """Stop was clicked: say so at once (the run confirms later)."""
        self.kit.set(self.stop_button, disabled=True, description="Stopping…")
        vm = present(state, info, since=len(state.timeline), stop_requested=True)
        self.kit.set(self.header, value=header_html(vm.header))


class ChildPanel(RunPanel):
    """A sub-agent's panel, in an ``Accordion`` whose title is its one-line summary."""

    def __init__(self, host: Host, ref: ChildRef) -> None:
        super().__init__(host, ref.run_id, stoppable=host.can_stop(ref.run_id), css_class="")
        self.ref = ref
        self.placed = False  # in the parent's transcript (its step ended)
        self.collapsed = False
        self.accordion = self.kit.track(
            widgets.Accordion(
                children=(self.root,),
                titles=(f"↳ {self.name}",),
                selected_index=0,
                layout=self.kit.layout,
                _dom_classes=("nearnb-child",),
            )
        )
        host.panels.append(self)

    @property
    def name(self) -> str:
        return self.host.tree.child_info(self.ref).agent_name or "agent"

    def render(self, state: RunState, info: RunInfo, *, stop_requested: bool) -> None:
        super().render(state, info, stop_requested=stop_requested)
        done = state.terminal
        self.kit.set(self.accordion, titles=(summary_line(self.name, state, done),))
        if done and self.placed and not self.collapsed:
            self.collapsed = True
            self.kit.set(self.accordion, selected_index=None)


def summary_line(name: str, state: RunState, done: bool) -> str:
    """The accordion title: ``↳ helper · running``, and once ended
    ``↳ helper · completed · 42 deltas · 1.3 s — The answer's first words…``."""
    vm = present(state, RunInfo(agent_name=name))
    line = f"↳ {name} · {vm.header.label}"
    if not done:
        return line  # the counter inside moves; the title stays put (one message less)
    line += f" · {vm.counter.deltas:,} deltas · {vm.counter.elapsed:.1f} s"
    answer = " ".join(" ".join(a.text for a in vm.answers).split())
    if answer:
        line += " — " + clip(answer, SUMMARY_CHARS)
    elif vm.error is not None:
        line += " — " + clip(vm.error.summary, SUMMARY_CHARS)
    return line


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
