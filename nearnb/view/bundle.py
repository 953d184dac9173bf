"""Static MIME bundles of a run: what a saved notebook keeps.

A widget in a saved notebook is only a model id; GitHub, nbviewer, nbval and
a notebook reopened without widget state show "Error displaying widget"
there. So when a run ends every notebook renderer replaces its live output
with the bundle built here: ``text/markdown`` (the answers as Markdown, a
header line, errors with a collapsible traceback) and ``text/plain`` (the same
for text-only consumers), plus run metadata (``thread_id``, ``run_id``,
``status``, delta count ...) in the output's ``metadata["nearnb"]`` so tools
can find the run again without parsing text.

Everything here is a pure function of reducer state; no IPython import.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

from ..reducer import RunState

#: ``metadata`` key of every nearnb output.
METADATA_KEY = "nearnb"

#: Status -> (label, colour). Labels are what the issue lists; ``in_progress``
#: reads better as "running".
STATUS_STYLE: dict[str, tuple[str, str]] = {
    "queued": ("queued", "#6b7280"),
    "in_progress": ("running", "#2563eb"),
    "requires_action": ("requires_action", "#7c3aed"),
    "cancelling": ("cancelling", "#d97706"),
    "cancelled": ("cancelled", "#d97706"),
    "failed": ("failed", "#dc2626"),
    "completed": ("completed", "#16a34a"),
    "incomplete": ("incomplete", "#d97706"),
    "expired": ("expired", "#6b7280"),
}


@dataclass(frozen=True)
class RunInfo:
    """What a view knows about a run besides its events."""

    agent_name: str = ""
    model: str = ""
    show_streaming_message: bool = True


def status_label(status: str) -> str:
    return STATUS_STYLE.get(status, (status, ""))[0]


def badge_html(status: str) -> str:
    """The status badge; ``data-status`` lets tests and CSS find it."""
    label, colour = STATUS_STYLE.get(status, (status, "#6b7280"))
    return (
        f'<span class="nearnb-badge nearnb-status-{html.escape(status)}" '
        f'data-status="{html.escape(status)}" style="background:{colour};color:white;'
        f'border-radius:0.6em;padding:0 0.5em;font-size:85%">{html.escape(label)}</span>'
    )


def model_label(state: RunState, info: RunInfo) -> str:
    """The model that actually ran (the run event names it), else the requested one."""
    return state.model or info.model


def counter_text(state: RunState, *, at: float | None = None) -> str:
    """The counter line. It says *deltas*: NEAR's UI counted characters and
    called them tokens; here each number is labelled with what it counts."""
    rate = state.deltas_per_second(at)
    return (
        f"{state.deltas:,} deltas received · {state.chars:,} chars · "
        f"{rate:,.1f} deltas/s · {state.elapsed:.1f} s"
    )


def metadata(state: RunState, info: RunInfo, *, deltas: int | None = None) -> dict[str, Any]:
    """Run metadata for an output's ``metadata["nearnb"]``."""
    return {
        "thread_id": state.thread_id,
        "run_id": state.run_id,
        "status": state.status,
        "deltas": state.deltas if deltas is None else deltas,
        "chars": state.chars,
        "agent": info.agent_name,
        "model": model_label(state, info),
        "elapsed": round(state.elapsed, 3),
        "answers": len(state.answers),
    }


def _header_md(state: RunState, info: RunInfo, *, deltas: int) -> str:
    parts = [f"**{_md_escape(info.agent_name or state.assistant_id or 'agent')}**"]
    model = model_label(state, info)
    if model:
        parts.append(f"`{model}`")
    parts.append(badge_html(state.status))
    parts.append(f"{deltas:,} deltas · {state.chars:,} chars · {state.elapsed:.1f} s")
    return " · ".join(parts)


def _answer_md(message: Any) -> str:
    text = message.text.strip() or "*(empty message)*"
    if message.status == "incomplete":
        reason = message.incomplete_reason or "run stopped"
        text += f"\n\n*(incomplete: {_md_escape(reason)})*"
    return text


def _error_md(state: RunState) -> str:
    summary = (state.error or "run failed").strip().splitlines()[0]
    out = f'<span style="color:#dc2626">**Error:** {html.escape(summary)}</span>'
    if state.traceback:
        out += (
            "\n\n<details><summary>Traceback</summary>\n\n<pre>"
            + html.escape(state.traceback.rstrip())
            + "</pre>\n\n</details>"
        )
    return out


def final_bundle(
    state: RunState, info: RunInfo, *, deltas: int | None = None
) -> tuple[dict[str, str], dict[str, Any]]:
    """``(data, metadata)`` of the static output that replaces a live view.

    ``deltas`` overrides the count (a :class:`~nearnb.runs.RunResult` carries
    the producer's true count; it equals ``state.deltas`` unless events were
    lost on the way).
    """
    count = state.deltas if deltas is None else deltas
    md = [_header_md(state, info, deltas=count)]
    md += [f"> {_md_escape(notice)}" for notice in state.notices]
    answers = state.answers
    if answers:  # a rule between answers: each is a separate message
        md.append("\n\n---\n\n".join(_answer_md(m) for m in answers))
    if state.error or state.status == "failed":
        md.append(_error_md(state))
    plain = [plain_header(state, info, deltas=count)]
    plain += [f"note: {notice}" for notice in state.notices]
    plain += [m.text.strip() for m in answers]
    if state.error:
        plain.append(f"error: {state.error}")
    data = {"text/markdown": "\n\n".join(md), "text/plain": "\n\n".join(plain)}
    return data, {METADATA_KEY: metadata(state, info, deltas=count)}


def plain_header(state: RunState, info: RunInfo, *, deltas: int | None = None) -> str:
    """One line: agent · model · status · counts (the text/plain header)."""
    parts = [info.agent_name or state.assistant_id or "agent"]
    model = model_label(state, info)
    if model:
        parts.append(model)
    parts.append(status_label(state.status))
    parts.append(f"{state.deltas if deltas is None else deltas:,} deltas")
    return " · ".join(parts)


def _md_escape(text: str) -> str:
    """Escape the Markdown characters that would restyle a name or notice."""
    return (
        html.escape(text, quote=False).replace("*", r"\*").replace("_", r"\_").replace("`", r"\`")
    )
