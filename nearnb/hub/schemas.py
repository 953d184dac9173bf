"""Request bodies the hub accepts, as OpenAI defines them (the fields nearnb uses).

Unknown fields are ignored rather than refused: openai-python and other
clients send parameters nearnb has no use for (``tools``, ``truncation_strategy``
...), and refusing them would break those clients for nothing.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

#: An agent name under ``--agents``: path segments of safe characters, no ``..``.
AGENT_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*(/[A-Za-z0-9_][A-Za-z0-9_.-]*)*$")


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


class TextPart(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: str
    text: str | None = None


class MessageIn(_Body):
    """``POST /threads/{tid}/messages`` and ``messages`` / ``additional_messages`` items."""

    role: Literal["user", "assistant"] = "user"
    content: str | list[TextPart]
    metadata: dict[str, str] | None = None
    attachments: list[dict[str, Any]] | None = None

    @property
    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        return "\n".join(part.text or "" for part in self.content if part.type == "text")


class ThreadIn(_Body):
    messages: list[MessageIn] = Field(default_factory=list)
    metadata: dict[str, str] | None = None


class RunIn(_Body):
    """``POST /threads/{tid}/runs``. ``provider`` is a nearnb extension."""

    assistant_id: str = Field(min_length=1, max_length=300)
    model: str | None = None
    provider: str | None = None
    additional_messages: list[MessageIn] | None = None
    stream: bool = False
    metadata: dict[str, str] | None = None

    @field_validator("assistant_id")
    @classmethod
    def _agent_name(cls, value: str) -> str:
        if not AGENT_NAME.match(value):
            raise ValueError("must name an agent folder under the hub's agents directory")
        return value


class ChatIn(BaseModel):
    """``POST /chat/completions``: OpenAI's body; other sampling fields pass through."""

    model_config = ConfigDict(extra="allow")

    messages: list[dict[str, Any]] = Field(min_length=1)
    model: str | None = None
    provider: str | None = None
    stream: bool = False

    @field_validator("messages")
    @classmethod
    def _roles(cls, value: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for i, message in enumerate(value):
            if not isinstance(message.get("role"), str):
                raise ValueError(f"message {i} has no role")
        return value

    def params(self) -> dict[str, Any]:
        """Provider parameters: everything the client sent besides our own fields."""
        skip = {"messages", "model", "provider", "stream", "stream_options", "n", "user"}
        return {k: v for k, v in (self.model_extra or {}).items() if k not in skip}
