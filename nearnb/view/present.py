"""What a view of a run shows, decided once: ``present(state, info) -> ViewModel``.

Every renderer - the ipywidgets view, the display handle, the final Markdown
bundle, the terminal - used to decide for itself what the counter line says,
how the header reads, which message is "the streaming one" and how an error
looks; they drifted apart. Now :func:`present` decides, from reducer state
alone, and the renderers only map the :class:`ViewModel` onto their medium
(HTML traits, Markdown, text lines). Like rich's renderables, a view model
never knows where it will be shown; like the reducer, it is pure (no clock,
no I/O, no IPython), so it is tested in a plain process.

Blocks come in the reducer's timeline order (the order messages and tool
steps *finished*), so a live view only ever appends. ``since`` lets a view
that has already shown the first ``n`` timeline entries ask for the rest
only, which keeps a refresh O(new blocks) instead of O(run).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..reducer import ChildRef, MessageState, RunState, StepState

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


@dataclass(frozen=True)
class Header:
    """Agent, model (the one that ran, else the one asked for), status, notices."""

    agent: str
    model: str
    status: str  # as shown: "cancelling" once Stop was asked and the run is still live
    notices: tuple[str, ...]

    @property
    def label(self) -> str:
        return status_label(self.status)

    @property
    def colour(self) -> str:
        return STATUS_STYLE.get(self.status, (self.status, "#6b7280"))[1]


@dataclass(frozen=True)
class Counter:
    """The counter line. It says *deltas*: NEAR's UI counted characters and
    called them tokens; here each number is labelled with what it counts."""

    deltas: int
    chars: int
    rate: float
    elapsed: float

    @property
    def number(self) -> str:
        return f"{self.deltas:,}"

    @property
    def rest(self) -> str:
        """Everything after the delta count (a widget bolds the count itself)."""
        return (
            f"deltas received · {self.chars:,} chars · "
            f"{self.rate:,.1f} deltas/s · {self.elapsed:.1f} s"
        )

    @property
    def line(self) -> str:
        return f"{self.number} {self.rest}"

    @property
    def summary(self) -> str:
        """The short form a finished run keeps: no rate, which only matters live."""
        return f"{self.deltas:,} deltas · {self.chars:,} chars · {self.elapsed:.1f} s"


@dataclass(frozen=True)
class AnswerBlock:
    """A finished user-facing message."""

    key: str
    text: str
    status: str
    incomplete_reason: str | None = None


@dataclass(frozen=True)
class ToolCallView:
    name: str
    arguments: str
    output: str | None


@dataclass(frozen=True)
class ToolBlock:
    """A ``tool_calls`` run step: its calls and how far it got.

    ``child`` is set for a ``run_agent`` step: a view nests that child run's
    own view there (when it has the child's events) instead of the call line.
    """

    key: str
    status: str
    calls: tuple[ToolCallView, ...]
    error: str | None = None
    child: ChildRef | None = None

    @property
    def ended(self) -> bool:
        return self.status in ("completed", "failed", "cancelled", "expired")


Block = AnswerBlock | ToolBlock


@dataclass(frozen=True)
class LiveMessage:
    """The message shown as it streams (``show_streaming_message``).

    ``streaming`` is False for a finished intermediate (hidden) message that
    stays on screen until the next message starts - NEAR's rule that the
    streaming text is *replaced* by the next one.
    """

    key: str
    text: str
    hidden: bool
    streaming: bool


@dataclass(frozen=True)
class ErrorView:
    status: str
    summary: str  # the first line of the error, or "run failed"
    message: str | None  # the whole error, when the run said one
    traceback: str | None


@dataclass(frozen=True)
class ViewModel:
    """Everything a view of a run shows, medium-free."""

    header: Header
    counter: Counter
    status: str  # the run's true status (the header may say "cancelling")
    terminal: bool
    blocks: tuple[Block, ...]  # finished, in order, from timeline entry ``since``
    timeline_end: int  # pass as ``since`` next time to get only newer blocks
    live: LiveMessage | None
    live_steps: tuple[ToolBlock, ...]  # tool steps still running, in start order
    error: ErrorView | None

    @property
    def answers(self) -> tuple[AnswerBlock, ...]:
        return tuple(b for b in self.blocks if isinstance(b, AnswerBlock))


def key_of(item: MessageState | StepState) -> str:
    """A stable key: the object id, else (NEAR's id-less messages) identity."""
    return item.id or f"@{id(item)}"


def present(
    state: RunState,
    info: RunInfo,
    *,
    since: int = 0,
    deltas: int | None = None,
    stop_requested: bool = False,
) -> ViewModel:
    """The view model of ``state``.

    ``deltas`` overrides the count (a :class:`~nearnb.runs.RunResult` carries
    the producer's true count); ``stop_requested`` shows "cancelling" until the
    run confirms; ``since`` skips timeline entries a live view already shows.
    """
    status = "cancelling" if stop_requested and not state.terminal else state.status
    header = Header(
        agent=info.agent_name or state.assistant_id or "agent",
        model=state.model or info.model,
        status=status,
        notices=tuple(state.notices),
    )
    counter = Counter(
        deltas=state.deltas if deltas is None else deltas,
        chars=state.chars,
        rate=state.deltas_per_second(),
        elapsed=state.elapsed,
    )
    blocks = tuple(block for item in state.timeline[since:] if (block := _block(item)) is not None)
    live_steps = tuple(
        block for step in state.steps if not step.ended and (block := _tool_block(step)) is not None
    )
    return ViewModel(
        header=header,
        counter=counter,
        status=state.status,
        terminal=state.terminal,
        blocks=blocks,
        timeline_end=len(state.timeline),
        live=_live(state, info),
        live_steps=live_steps,
        error=_error(state),
    )


def _block(item: MessageState | StepState) -> Block | None:
    if isinstance(item, StepState):
        return _tool_block(item)
    if item.role != "assistant" or item.hidden or item.is_tool_output:
        return None
    return AnswerBlock(key_of(item), item.text, item.status, item.incomplete_reason)


def _tool_block(step: StepState) -> ToolBlock | None:
    calls = tuple(ToolCallView(c.name, c.arguments, c.output) for c in step.calls)
    if not calls:
        return None  # a step whose first fragment has not arrived yet
    return ToolBlock(key_of(step), step.status, calls, step.last_error, step.child)


def _live(state: RunState, info: RunInfo) -> LiveMessage | None:
    """The streaming message, or a finished streamed draft until the next starts."""
    if not info.show_streaming_message:
        return None
    message = state.streaming
    if message is not None:
        return LiveMessage(key_of(message), message.text, message.hidden, streaming=True)
    if state.terminal:
        return None
    for item in reversed(state.timeline):
        if isinstance(item, StepState) or (item.hidden and not item.deltas):
            continue  # tool steps and notices do not replace a draft
        if item.hidden:
            return LiveMessage(key_of(item), item.text, hidden=True, streaming=False)
        return None
    return None


def _error(state: RunState) -> ErrorView | None:
    if not (state.error or state.status == "failed"):
        return None
    lines = (state.error or "").strip().splitlines()
    summary = lines[0] if lines else "run failed"
    return ErrorView(state.status, summary, state.error, state.traceback)
