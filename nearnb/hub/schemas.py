"""Request bodies the hub accepts, as OpenAI defines them (the fields nearnb uses).

Unknown fields are ignored rather than refused: openai-python and other
clients send parameters nearnb has no use for (``tools``, ``truncation_strategy``
...), and refusing them would break those clients for nothing.

Every field that is stored or passed on is typed tightly enough that turning
a validated body into store objects cannot fail: a request is either refused
here, before anything is written, or written whole. (Strings that JSON can
carry but UTF-8 cannot, such as lone surrogates, never get this far: see
:func:`~nearnb.hub.errors.parse_json`.)
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

#: An agent name under the agents folders: path segments of safe characters, no ``..``.
AGENT_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*(/[A-Za-z0-9_][A-Za-z0-9_.-]*)*$")

#: A short identifier-like string (a model, a provider, a file id): no control characters.
Name = Annotated[str, StringConstraints(max_length=256, pattern=r"^[^\x00-\x1f\x7f]*$")]
#: OpenAI's metadata rules: at most 16 pairs, keys up to 64 characters, values up to 512.
Metadata = Annotated[
    dict[
        Annotated[str, StringConstraints(max_length=64)],
        Annotated[str, StringConstraints(max_length=512)],
    ],
    Field(max_length=16),
]


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)


class TextPart(BaseModel):
    """One ``content`` part; only ``text`` parts are kept (image parts have no text)."""

    model_config = ConfigDict(extra="ignore")

    type: Name
    text: str | None = None


class ToolIn(_Body):
    type: Name


class AttachmentIn(_Body):
    """OpenAI's message attachment: a file id and the tools that may read it."""

    file_id: Annotated[Name, StringConstraints(min_length=1)]
    tools: list[ToolIn] = Field(default_factory=list, max_length=8)


class MessageIn(_Body):
    """``POST /threads/{tid}/messages`` and ``messages`` / ``additional_messages`` items."""

    role: Literal["user", "assistant"] = "user"
    content: str | list[TextPart]
    metadata: Metadata | None = None
    attachments: list[AttachmentIn] | None = Field(default=None, max_length=20)

    @property
    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        return "\n".join(part.text or "" for part in self.content if part.type == "text")

    def attachment_dicts(self) -> list[dict[str, Any]] | None:
        """The attachments as stored: only the fields OpenAI defines."""
        if self.attachments is None:
            return None
        return [a.model_dump() for a in self.attachments]


class ThreadIn(_Body):
    messages: list[MessageIn] = Field(default_factory=list)
    metadata: Metadata | None = None


class RunIn(_Body):
    """``POST /threads/{tid}/runs``. ``provider`` is a nearnb extension."""

    assistant_id: str = Field(min_length=1, max_length=300)
    model: Name | None = None
    provider: Name | None = None
    additional_messages: list[MessageIn] | None = None
    stream: bool = False
    metadata: Metadata | None = None

    @field_validator("assistant_id")
    @classmethod
    def _agent_name(cls, value: str) -> str:
        if not AGENT_NAME.match(value):
            raise ValueError("must name an agent folder under the hub's agents directory")
        return value


class ChatIn(BaseModel):
    """``POST /chat/completions``: OpenAI's body; other sampling fields pass through.

    The sampling fields every provider reads are typed with OpenAI's ranges, so
    a value the embedded model cannot take (a negative ``max_tokens``, a
    non-numeric ``logit_bias`` token) is a 422 here rather than a failure inside
    llama.cpp.
    """

    model_config = ConfigDict(extra="allow", allow_inf_nan=False)

    messages: list[dict[str, Any]] = Field(min_length=1)
    model: Name | None = None
    provider: Name | None = None
    stream: bool = False
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    max_tokens: int | None = Field(default=None, ge=1, le=1 << 31)
    max_completion_tokens: int | None = Field(default=None, ge=1, le=1 << 31)
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    seed: int | None = Field(default=None, ge=-(1 << 63), lt=1 << 63)
    logit_bias: (
        dict[
            Annotated[str, StringConstraints(pattern=r"^[0-9]{1,9}$")],
            Annotated[float, Field(ge=-100, le=100)],
        ]
        | None
    ) = None

    @field_validator("messages")
    @classmethod
    def _roles(cls, value: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for i, message in enumerate(value):
            if not isinstance(message.get("role"), str):
                raise ValueError(f"message {i} has no role")
        return value

    def params(self) -> dict[str, Any]:
        """Provider parameters: everything the client sent besides our own fields.

        openai-python's per-request options (``timeout``, ``extra_headers``,
        ``extra_query``, ``extra_body``) are never part of an OpenAI request
        body; passed on, a client could set the hub's upstream headers or make
        the SDK itself fail, so they are dropped.
        """
        skip = {"messages", "model", "provider", "stream", "stream_options", "n", "user"}
        skip |= {"timeout", "extra_headers", "extra_query", "extra_body"}
        typed = {
            name: getattr(self, name)
            for name in type(self).model_fields
            if name not in skip and getattr(self, name) is not None
        }
        extra = {k: v for k, v in (self.model_extra or {}).items() if k not in skip}
        return {**extra, **typed}
