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


def blocks_markdown(blocks: tuple[Block, ...] | list[Block]) -> str:
    """Blocks in order: a rule between two answers (each is a separate message),
    a blank line around tool steps."""
    out = ""
    previous: Block | None = None
    for block in blocks:
        if previous is not None:
            both = isinstance(previous, AnswerBlock) and isinstance(block, AnswerBlock)
            out += "\n\n---\n\n" if both else "\n\n"
        out += answer_markdown(block) if isinstance(block, AnswerBlock) else tool_markdown(block)
        previous = block
    return out


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


def block_plain(block: Block) -> str:
    if isinstance(block, AnswerBlock):
        return block.text.strip()
    return "\n".join(call_plain(call) for call in block.calls)


# --------------------------------------------------------------------- bundle


def final_bundle(
    state: RunState, info: RunInfo, *, deltas: int | None = None
) -> tuple[dict[str, str], dict[str, Any]]:
    """``(data, metadata)`` of the static output that replaces a live view.

    ``deltas`` overrides the count (a :class:`~nearnb.runs.RunResult` carries
    the producer's true count; it equals ``state.deltas`` unless events were
    lost on the way). Tool steps that never finished (a cancelled run) are
    kept after the finished blocks, marked with their status.
    """
    vm = present(state, info, deltas=deltas)
    blocks = (*vm.blocks, *vm.live_steps)
    md = [header_markdown(vm.header, vm.counter.summary)]
    md += [f"> {md_escape(notice)}" for notice in vm.header.notices]
    if blocks:
        md.append(blocks_markdown(blocks))
    if vm.error is not None:
        md.append(error_markdown(vm.error))
    plain = [plain_header(vm)]
    plain += [f"note: {notice}" for notice in vm.header.notices]
    plain += [block_plain(block) for block in blocks]
    if vm.error is not None and vm.error.message:
        plain.append(f"error: {vm.error.message}")
    data = {"text/markdown": "\n\n".join(md), "text/plain": "\n\n".join(plain)}
    return data, {METADATA_KEY: metadata(vm, state, info)}


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
