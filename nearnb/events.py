"""The one vocabulary of nearnb: OpenAI-Assistants objects and stream events.

Everything a run produces (live in the kernel, served by the hub, replayed from
SSE) is an ordered list of :class:`Event` envelopes. Each envelope carries the
OpenAI event name (``thread.message.delta`` ...), the OpenAI object as plain
JSON-able ``data`` (exactly what goes on an SSE ``data:`` line), and a per-run
sequence number ``seq`` (1, 2, 3 ...) that becomes the SSE ``id``.

``data`` is kept as a dict rather than a model because the delta path is hot
(tens of thousands of events a run): producers build objects through the
typed models below when they are rare (runs, messages, steps) and through
:func:`message_delta` for deltas; consumers parse with :meth:`Event.parsed`.
Field names follow the OpenAI Assistants API so openai-python's own
``AssistantEventHandler`` can consume a nearnb stream unchanged.
"""

from __future__ import annotations

import secrets
import time
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

from .compactdelta import CompactDelta, LazyDataModel, compact_json, message_delta  # noqa: F401

# --------------------------------------------------------------------------- ids

_ID_PREFIXES = ("thread", "msg", "run", "step", "call")


def new_id(prefix: str) -> str:
    """A new object id such as ``msg_3f9a...``: 24 hex chars = 96 random bits.

    Ids double as capabilities on a hub (knowing a run id lets you read its
    stream), so they come from :mod:`secrets`, never from a counter.
    """
    if prefix not in _ID_PREFIXES:
        raise ValueError(f"unknown id prefix {prefix!r}; expected one of {_ID_PREFIXES}")
    return f"{prefix}_{secrets.token_hex(12)}"


def now() -> int:
    """Unix seconds, the unit of every OpenAI ``*_at`` field."""
    return int(time.time())


# ------------------------------------------------------------------ event names

RunEventName = Literal[
    "thread.run.created",
    "thread.run.queued",
    "thread.run.in_progress",
    "thread.run.requires_action",
    "thread.run.completed",
    "thread.run.incomplete",
    "thread.run.failed",
    "thread.run.cancelling",
    "thread.run.cancelled",
    "thread.run.expired",
]
StepEventName = Literal[
    "thread.run.step.created",
    "thread.run.step.in_progress",
    "thread.run.step.delta",
    "thread.run.step.completed",
    "thread.run.step.failed",
    "thread.run.step.cancelled",
    "thread.run.step.expired",
]
MessageEventName = Literal[
    "thread.message.created",
    "thread.message.in_progress",
    "thread.message.delta",
    "thread.message.completed",
    "thread.message.incomplete",
]
EventName = Literal[
    RunEventName, StepEventName, MessageEventName, "thread.created", "error", "done"
]

EVENT_NAMES: frozenset[str] = frozenset(
    name for group in get_args(EventName) for name in (get_args(group) or (group,))
)

RunStatus = Literal[
    "queued",
    "in_progress",
    "requires_action",
    "cancelling",
    "cancelled",
    "failed",
    "completed",
    "incomplete",
    "expired",
]
#: Run statuses after which nothing more happens; their events end a stream.
TERMINAL_STATUSES: frozenset[str] = frozenset(
    {"completed", "failed", "cancelled", "expired", "incomplete", "requires_action"}
)
TERMINAL_EVENTS: frozenset[str] = frozenset(f"thread.run.{s}" for s in TERMINAL_STATUSES)

#: ``metadata.message_type`` prefixes hidden from ``env.list_messages()`` (NEAR's rule).
HIDDEN_MESSAGE_TYPE_PREFIXES = ("system:", "agent:")


# ----------------------------------------------------------------------- models


class _Model(BaseModel):
    """Base for OpenAI objects: unknown fields survive a round trip."""

    model_config = ConfigDict(extra="allow")


class Thread(_Model):
    id: str
    object: Literal["thread"] = "thread"
    created_at: int
    metadata: dict[str, str] = Field(default_factory=dict)
    tool_resources: dict[str, Any] | None = None


class TextValue(_Model):
    value: str
    annotations: list[dict[str, Any]] = Field(default_factory=list)


class TextContentBlock(_Model):
    type: Literal["text"] = "text"
    text: TextValue


class Attachment(_Model):
    file_id: str
    tools: list[dict[str, Any]] = Field(default_factory=list)


class IncompleteDetails(_Model):
    reason: str


class Message(_Model):
    id: str
    object: Literal["thread.message"] = "thread.message"
    created_at: int
    thread_id: str
    status: Literal["in_progress", "incomplete", "completed"] = "completed"
    role: Literal["user", "assistant"]
    content: list[TextContentBlock] = Field(default_factory=list)
    assistant_id: str | None = None
    run_id: str | None = None
    attachments: list[Attachment] | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    completed_at: int | None = None
    incomplete_at: int | None = None
    incomplete_details: IncompleteDetails | None = None

    @property
    def text(self) -> str:
        """All text parts joined with newlines, as NEAR's ``list_messages`` does."""
        return "\n".join(part.text.value for part in self.content)

    @property
    def message_type(self) -> str | None:
        return self.metadata.get("message_type")

    @property
    def is_tool_output(self) -> bool:
        """A tool's output stored NEAR's way (an assistant message with ``tool_call_id``):
        the agent sees it, but it is not an answer (views show it in the tool step)."""
        return "tool_call_id" in self.metadata

    @property
    def hidden(self) -> bool:
        """True for ``system:*`` / ``agent:*`` messages that agents never see."""
        mtype = self.message_type or ""
        return mtype.startswith(HIDDEN_MESSAGE_TYPE_PREFIXES)


class LastError(_Model):
    code: str
    message: str


class Usage(_Model):
    completion_tokens: int = 0
    prompt_tokens: int = 0
    total_tokens: int = 0


class Run(_Model):
    id: str
    object: Literal["thread.run"] = "thread.run"
    created_at: int
    thread_id: str
    assistant_id: str
    status: RunStatus = "queued"
    model: str = ""
    instructions: str = ""
    tools: list[dict[str, Any]] = Field(default_factory=list)
    metadata: dict[str, str] = Field(default_factory=dict)
    started_at: int | None = None
    expires_at: int | None = None
    cancelled_at: int | None = None
    failed_at: int | None = None
    completed_at: int | None = None
    required_action: dict[str, Any] | None = None
    last_error: LastError | None = None
    incomplete_details: IncompleteDetails | None = None
    usage: Usage | None = None
    temperature: float | None = None
    top_p: float | None = None
    max_completion_tokens: int | None = None
    max_prompt_tokens: int | None = None
    truncation_strategy: dict[str, Any] | None = None
    response_format: Any = "auto"
    tool_choice: Any = "auto"
    parallel_tool_calls: bool = True


class FunctionCall(_Model):
    name: str
    arguments: str
    output: str | None = None


class ToolCall(_Model):
    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class MessageCreationDetails(_Model):
    type: Literal["message_creation"] = "message_creation"
    message_creation: dict[str, str]


class ToolCallsDetails(_Model):
    type: Literal["tool_calls"] = "tool_calls"
    tool_calls: list[ToolCall]


class RunStep(_Model):
    id: str
    object: Literal["thread.run.step"] = "thread.run.step"
    created_at: int
    run_id: str
    thread_id: str
    assistant_id: str
    type: Literal["message_creation", "tool_calls"]
    status: Literal["in_progress", "cancelled", "failed", "completed", "expired"] = "in_progress"
    step_details: MessageCreationDetails | ToolCallsDetails = Field(discriminator="type")
    cancelled_at: int | None = None
    completed_at: int | None = None
    expired_at: int | None = None
    failed_at: int | None = None
    last_error: LastError | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    usage: Usage | None = None


class TextDelta(_Model):
    value: str | None = None
    annotations: list[dict[str, Any]] | None = None


class TextDeltaBlock(_Model):
    index: int
    type: Literal["text"] = "text"
    text: TextDelta | None = None


class MessageDelta(_Model):
    role: Literal["user", "assistant"] | None = None
    content: list[TextDeltaBlock] | None = None


class MessageDeltaEvent(_Model):
    id: str
    object: Literal["thread.message.delta"] = "thread.message.delta"
    delta: MessageDelta

    @property
    def text(self) -> str:
        return "".join(
            block.text.value
            for block in self.delta.content or ()
            if block.text and block.text.value
        )


class RunStepDeltaEvent(_Model):
    id: str
    object: Literal["thread.run.step.delta"] = "thread.run.step.delta"
    delta: dict[str, Any]


class ErrorObject(_Model):
    code: str | None = None
    message: str
    param: str | None = None
    type: str = "error"


#: Which model parses the ``data`` of each event name.
_DATA_MODELS: dict[str, type[BaseModel]] = {"thread.created": Thread, "error": ErrorObject}
for _name in EVENT_NAMES:
    if _name == "thread.message.delta":
        _DATA_MODELS[_name] = MessageDeltaEvent
    elif _name == "thread.run.step.delta":
        _DATA_MODELS[_name] = RunStepDeltaEvent
    elif _name.startswith("thread.run.step."):
        _DATA_MODELS[_name] = RunStep
    elif _name.startswith("thread.run."):
        _DATA_MODELS[_name] = Run
    elif _name.startswith("thread.message."):
        _DATA_MODELS[_name] = Message


# ----------------------------------------------------------------------- events


class Event(LazyDataModel):
    """One event of a run: the OpenAI event name and object, plus ``seq``.

    ``at`` is the wall-clock time (float seconds) the producer emitted it,
    kept so a replay can reproduce the original timing. A text delta may be
    held as a :class:`CompactDelta` until ``data`` is read (see
    :mod:`nearnb.compactdelta`); every way of reading it sees the usual dict.
    """

    model_config = ConfigDict(frozen=True)

    seq: int
    event: EventName
    data: Any
    run_id: str
    thread_id: str
    at: float = Field(default_factory=time.time)

    def parsed(self) -> BaseModel | str:
        """``data`` as its typed model (``"[DONE]"`` for ``done``)."""
        model = _DATA_MODELS.get(self.event)
        if model is None:
            return str(self.data)
        return model.model_validate(self.data)

    @property
    def is_terminal(self) -> bool:
        """True for the run event that ends a run (completed, failed, ...)."""
        return self.event in TERMINAL_EVENTS

    @classmethod
    def trusted(
        cls, seq: int, event: str, data: Any, run_id: str, thread_id: str, at: float
    ) -> Event:
        """An Event from trusted values: ``model_construct`` minus its per-field bookkeeping
        (a run makes one per chunk); ``data`` may be a :class:`CompactDelta`, kept compact."""
        obj = _new(cls)
        if type(data) is CompactDelta:
            fields = {"seq": seq, "event": event, "run_id": run_id, "thread_id": thread_id}
            fields["at"] = at
            _set_private(obj, tuple(data))  # an exact tuple: the GC stops tracking it
        else:
            fields = {"seq": seq, "event": event, "data": data, "run_id": run_id}
            fields["thread_id"], fields["at"] = thread_id, at
            _set_private(obj, None)
        _setattr(obj, "__dict__", fields)
        _set_fields_set(obj, _ALL_EVENT_FIELDS)
        _set_extra(obj, None)
        return obj


# Bound once: BaseModel's slot setters are cheaper than ``object.__setattr__`` by name.
_new, _setattr = object.__new__, object.__setattr__
_set_private = BaseModel.__dict__["__pydantic_private__"].__set__
_set_fields_set = BaseModel.__dict__["__pydantic_fields_set__"].__set__
_set_extra = BaseModel.__dict__["__pydantic_extra__"].__set__
#: Shared by every trusted Event: a set each would be one more object for the GC to scan.
_ALL_EVENT_FIELDS = frozenset({"seq", "event", "data", "run_id", "thread_id", "at"})


def delta_text(data: dict[str, Any]) -> str:
    """The text a ``thread.message.delta`` payload adds (all text blocks joined).

    Tolerant of partial or foreign payloads (a NEAR hub sends no ``role`` and
    no ``annotations``), because replayed streams come from other servers.
    """
    try:  # the shape every nearnb delta has: one text block
        (block,) = data["delta"]["content"]
        value = block["text"]["value"]
        if type(value) is str:
            return value
    except (KeyError, TypeError, ValueError):
        pass
    delta = data.get("delta") or {}
    if not isinstance(delta, dict):
        return ""
    parts = []
    for block in delta.get("content") or ():
        text = block.get("text") if isinstance(block, dict) else None
        value = text.get("value") if isinstance(text, dict) else None
        if value:
            parts.append(value)
    return "".join(parts)


def text_content(text: str) -> list[dict[str, Any]]:
    """Message ``content`` holding one text block."""
    return [{"type": "text", "text": {"value": text, "annotations": []}}]


def attachment_list(items: list[Any] | None) -> list[dict[str, Any]] | None:
    """``attachments`` as NEAR agents pass them (file ids or dicts) in OpenAI shape."""
    if not items:
        return None
    return [
        item if isinstance(item, dict) else {"file_id": str(item), "tools": []} for item in items
    ]
