"""The Markdown and plain-text media, and the static bundle a saved notebook keeps.

A widget in a saved notebook is only a model id; GitHub, nbviewer, nbval and
a notebook reopened without widget state show "Error displaying widget"
there. So when a run ends every notebook renderer replaces its live output
with the bundle built here: ``text/markdown`` (the answers as Markdown, a
header line, tool calls, errors with a collapsible traceback) and
``text/plain`` (the same for text-only consumers), plus run metadata
(``thread_id``, ``run_id``, ``status``, delta count ...) in the output's
``metadata["nearnb"]`` so tools can find the run again without parsing text.

What is shown is decided by :func:`~nearnb.view.present.present`; this
module only writes a :class:`~nearnb.view.present.ViewModel` as Markdown or
as text lines. The display-handle view uses the same functions for its live
bundle, the terminal uses the text ones. No IPython import.
"""

from __future__ import annotations

import html
from typing import Any

from ..reducer import RunState
from .present import (
    STATUS_STYLE,
    AnswerBlock,
    Block,
    ErrorView,
    Header,
    RunInfo,
    ToolBlock,
    ToolCallView,
    ViewModel,
    present,
    status_label,
)
from .tree import RunTree

#: ``metadata`` key of every nearnb output.
METADATA_KEY = "nearnb"
#: Tool arguments and outputs are clipped to this many characters in a view.
TOOL_CLIP = 200

__all__ = [
    "METADATA_KEY",
    "STATUS_STYLE",
    "RunInfo",
    "badge_html",
    "blocks_markdown",
    "final_bundle",
    "metadata",
    "plain_header",
    "status_label",
]


def badge_html(status: str) -> str:
    """The status badge; ``data-status`` lets tests and CSS find it."""
    label, colour = STATUS_STYLE.get(status, (status, "#6b7280"))
    return (
        f'<span class="nearnb-badge nearnb-status-{html.escape(status)}" '
        f'data-status="{html.escape(status)}" style="background:{colour};color:white;'
        f'border-radius:0.6em;padding:0 0.5em;font-size:85%">{html.escape(label)}</span>'
    )


def metadata(vm: ViewModel, state: RunState, info: RunInfo) -> dict[str, Any]:
    """Run metadata for an output's ``metadata["nearnb"]``."""
    return {
        "thread_id": state.thread_id,
        "run_id": state.run_id,
        "status": vm.status,
        "deltas": vm.counter.deltas,
        "chars": vm.counter.chars,
        "agent": info.agent_name,
        "model": vm.header.model,
        "elapsed": round(vm.counter.elapsed, 3),
        "answers": len(vm.answers),
    }


# -------------------------------------------------------------------- Markdown


def header_markdown(header: Header, tail: str) -> str:
    """``**agent** · `model` · badge · tail`` (tail: the counter, live or short)."""
    parts = [f"**{md_escape(header.agent)}**"]
    if header.model:
        parts.append(f"`{header.model}`")
    parts.append(badge_html(header.status))
    parts.append(tail)
    return " · ".join(parts)


def answer_markdown(block: AnswerBlock) -> str:
    text = block.text.strip() or "*(empty message)*"
    if block.status == "incomplete":
        reason = block.incomplete_reason or "run stopped"
        text += f"\n\n*(incomplete: {md_escape(reason)})*"
    return text


def call_markdown(call: ToolCallView, status: str) -> str:
    """One line per call: ``🔧 `name(arguments)` → output``."""
    line = f"🔧 `{_code(clip(call.name, TOOL_CLIP))}({_code(clip(call.arguments, TOOL_CLIP))})`"
    if call.output is not None:
        return f"{line} → {md_escape(clip(call.output, TOOL_CLIP))}"
    if status in ("in_progress", "queued"):
        return f"{line} …"
    return line if status == "completed" else f"{line} *({md_escape(status)})*"


def tool_markdown(block: ToolBlock) -> str:
    lines = [call_markdown(call, block.status) for call in block.calls]
    if block.error:
        lines.append(f"*{md_escape(block.error)}*")
    return "  \n".join(lines)


def blocks_markdown(
    blocks: tuple[Block, ...] | list[Block], tree: RunTree | None = None, *, live: bool = False
) -> str:
    """Blocks in order: a rule between two answers (each is a separate message),
    a blank line around tool steps. With ``tree``, a ``run_agent`` step whose
    child run has events is that child's quoted section (:func:`child_markdown`)."""
    out = ""
    previous: Block | None = None
    for block in blocks:
        if previous is not None:
            both = isinstance(previous, AnswerBlock) and isinstance(block, AnswerBlock)
            out += "\n\n---\n\n" if both else "\n\n"
        if isinstance(block, AnswerBlock):
            out += answer_markdown(block)
        else:
            out += child_markdown(block, tree, live=live) or tool_markdown(block)
        previous = block
    return out


def quote(text: str) -> str:
    """Markdown (or text) as a block quote: ``> `` before every line."""
    return "\n".join(f"> {line}" if line else ">" for line in text.split("\n"))


def child_markdown(block: ToolBlock, tree: RunTree | None, *, live: bool = False) -> str:
    """A sub-agent's run as a quoted, labelled section (``↳ agent`` · model · status ·
    counts, then its answers and its own children), or "" when its events are unknown."""
    state = tree.get(block.child.run_id) if tree is not None and block.child else None
    if state is None or block.child is None or tree is None:
        return ""
    info = tree.child_info(block.child)
    child_info = RunInfo(
        agent_name="↳ " + (info.agent_name or "agent"),
        show_streaming_message=info.show_streaming_message,
    )
    return quote(run_markdown(state, child_info, tree, live=live))


def run_markdown(
    state: RunState,
    info: RunInfo,
    tree: RunTree | None = None,
    *,
    live: bool = False,
    deltas: int | None = None,
    stop_requested: bool = False,
    tail_chars: int | None = None,
) -> str:
    """One run as Markdown: header, notices, blocks (children nested), then the live
    tail and running steps (``live``) or the unfinished steps (final), then the error."""
    vm = present(state, info, deltas=deltas, stop_requested=stop_requested)
    md = [header_markdown(vm.header, vm.counter.line if live else vm.counter.summary)]
    md += [f"> {md_escape(notice)}" for notice in vm.header.notices]
    blocks = vm.blocks if live else (*vm.blocks, *vm.live_steps)
    if blocks:
        md.append(blocks_markdown(blocks, tree, live=live))
    if live:
        text = vm.live.text if vm.live is not None else ""
        if tail_chars is not None and len(text) > tail_chars:
            text = "…" + text[-tail_chars:]
        if text:
            md.append(text)
        md += [child_markdown(s, tree, live=True) or tool_markdown(s) for s in vm.live_steps]
    if vm.error is not None:
        md.append(error_markdown(vm.error))
    return "\n\n".join(md)


def error_markdown(error: ErrorView) -> str:
    out = f'<span style="color:#dc2626">**Error:** {html.escape(error.summary)}</span>'
    if error.traceback:
        out += (
            "\n\n<details><summary>Traceback</summary>\n\n<pre>"
            + html.escape(error.traceback.rstrip())
            + "</pre>\n\n</details>"
        )
    return out


# ----------------------------------------------------------------------- text


def plain_header(vm: ViewModel) -> str:
    """One line: agent · model · status · counts (the text/plain header)."""
    parts = [vm.header.agent]
    if vm.header.model:
        parts.append(vm.header.model)
    parts.append(status_label(vm.status))
    parts.append(f"{vm.counter.deltas:,} deltas")
    return " · ".join(parts)


def call_plain(call: ToolCallView) -> str:
    out = f"tool {call.name}({call.arguments})"
    return out if call.output is None else f"{out} -> {call.output}"


def block_plain(block: Block, tree: RunTree | None = None) -> str:
    if isinstance(block, AnswerBlock):
        return block.text.strip()
    state = tree.get(block.child.run_id) if tree is not None and block.child else None
    if state is not None and block.child is not None and tree is not None:
        name = tree.child_info(block.child).agent_name or "agent"
        return quote(run_plain(state, RunInfo(agent_name="↳ " + name), tree))
    return "\n".join(call_plain(call) for call in block.calls)


def run_plain(
    state: RunState, info: RunInfo, tree: RunTree | None = None, *, deltas: int | None = None
) -> str:
    """One finished run as text lines (children quoted under their steps)."""
    vm = present(state, info, deltas=deltas)
    plain = [plain_header(vm)]
    plain += [f"note: {notice}" for notice in vm.header.notices]
    plain += [block_plain(block, tree) for block in (*vm.blocks, *vm.live_steps)]
    if vm.error is not None and vm.error.message:
        plain.append(f"error: {vm.error.message}")
    return "\n\n".join(plain)


# --------------------------------------------------------------------- bundle


def final_bundle(
    state: RunState, info: RunInfo, *, deltas: int | None = None, tree: RunTree | None = None
) -> tuple[dict[str, str], dict[str, Any]]:
    """``(data, metadata)`` of the static output that replaces a live view.

    ``deltas`` overrides the count (a :class:`~nearnb.runs.RunResult` carries
    the producer's true count; it equals ``state.deltas`` unless events were
    lost on the way). Tool steps that never finished (a cancelled run) are
    kept after the finished blocks, marked with their status. With ``tree``
    (whose root is ``state``), sub-agent runs are quoted sections under the
    steps that started them, and ``metadata["nearnb"]["children"]`` lists them.
    """
    vm = present(state, info, deltas=deltas)
    data = {
        "text/markdown": run_markdown(state, info, tree, deltas=deltas),
        "text/plain": run_plain(state, info, tree, deltas=deltas),
    }
    meta = metadata(vm, state, info)
    if tree is not None and tree.children(state):
        meta["children"] = children_metadata(state, tree)
    return data, {METADATA_KEY: meta}


def children_metadata(state: RunState, tree: RunTree) -> list[dict[str, Any]]:
    """Each child's ids, agent, status and counts, and its own children (nested)."""
    out = []
    for ref in tree.children(state):
        child = tree.get(ref.run_id)
        entry: dict[str, Any] = {
            "thread_id": ref.thread_id,
            "run_id": ref.run_id,
            "agent": ref.agent_name,
        }
        if child is not None:
            entry.update(status=child.status, deltas=child.deltas, chars=child.chars)
            if tree.children(child):
                entry["children"] = children_metadata(child, tree)
        out.append(entry)
    return out


def md_escape(text: str) -> str:
    """Escape the Markdown characters that would restyle a name or notice."""
    return (
        html.escape(text, quote=False).replace("*", r"\*").replace("_", r"\_").replace("`", r"\`")
    )


def _code(text: str) -> str:
    """Inside a code span only a backtick would end it early."""
    return text.replace("`", "ˋ")


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
