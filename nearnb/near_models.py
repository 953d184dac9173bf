"""The enums and models of NEAR's ``nearai.shared.models`` (0.1.19), for agents to import.

Agents write ``from nearai.shared.models import ThreadMode, RunMode`` (or take
``ThreadMode`` from ``nearai.agents.environment``, which re-exported it), so
the ``nearai`` stand-in (:mod:`nearnb._compat`) serves this module under that
name. Names, members and values match NEAR's exactly, because agents compare
and pass them (``thread_mode=ThreadMode.CHILD``) and NEAR's numbers are what
an old agent may have hard-coded. The vector-store request shapes are here
too, so type annotations in agents keep importing.

No nearnb imports: this sits at the bottom of the layers and any mixin may
use :class:`ThreadMode` / :class:`RunMode`.
"""

from __future__ import annotations

from enum import Enum
from typing import Literal, Required

from pydantic import BaseModel
from typing_extensions import TypedDict  # pydantic needs this one before 3.12

__all__ = [
    "AutoFileChunkingStrategyParam",
    "ChunkingStrategy",
    "CreateVectorStoreFromSourceRequest",
    "CreateVectorStoreRequest",
    "Delta",
    "ExpiresAfter",
    "GitHubSource",
    "GitLabSource",
    "RunMode",
    "SimilaritySearch",
    "SimilaritySearchFile",
    "Source",
    "StaticFileChunkingStrategyObjectParam",
    "StaticFileChunkingStrategyParam",
    "ThreadMode",
    "VectorStoreFileCreate",
]


class ThreadMode(Enum):
    """Where ``env.run_agent`` runs the child: this thread, a fork of it, or a new one."""

    SAME = 1
    FORK = 2
    CHILD = 3


class RunMode(Enum):
    """``WITH_CALLBACK``: the child's answer is posted back to the parent's thread."""

    SIMPLE = 0
    WITH_CALLBACK = 1


class SimilaritySearch(BaseModel):
    file_id: str
    chunk_text: str
    distance: float


class SimilaritySearchFile(BaseModel):
    file_id: str
    file_content: str
    distance: float
    filename: str


class StaticFileChunkingStrategyParam(TypedDict, total=False):
    chunk_overlap_tokens: Required[int]
    max_chunk_size_tokens: Required[int]


class StaticFileChunkingStrategyObjectParam(TypedDict, total=False):
    static: Required[StaticFileChunkingStrategyParam]
    type: Required[Literal["static"]]


class ChunkingStrategy(BaseModel):
    """NEAR's (empty) chunking strategy model for vector stores."""


class AutoFileChunkingStrategyParam(TypedDict, total=False):
    type: Required[Literal["auto"]]


class ExpiresAfter(TypedDict, total=False):
    anchor: Required[Literal["last_active_at"]]
    days: Required[int]


class CreateVectorStoreRequest(BaseModel):
    chunking_strategy: AutoFileChunkingStrategyParam | StaticFileChunkingStrategyParam | None = None
    expires_after: ExpiresAfter | None = None
    file_ids: list[str] | None = None
    metadata: dict[str, str] | None = None
    name: str


class Source(BaseModel):
    type: str


class GitHubSource(Source):
    type: str = "github"
    owner: str
    repo: str
    branch: str = "main"


class GitLabSource(Source):
    type: str = "gitlab"
    owner: str
    repo: str
    branch: str = "main"


class CreateVectorStoreFromSourceRequest(BaseModel):
    name: str
    source: GitHubSource | GitLabSource
    source_auth: str | None = None
    chunking_strategy: ChunkingStrategy | None = None
    expires_after: ExpiresAfter | None = None
    metadata: dict[str, str] | None = None


class VectorStoreFileCreate(BaseModel):
    file_id: str


class Delta(BaseModel):
    id: str | None = None
    object: str = "thread.message.delta"
    content: dict
    filename: str | None = None
