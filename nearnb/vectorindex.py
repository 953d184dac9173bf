"""The pure parts of a vector store: what a request may ask, and text as comparable vectors.

Kept apart from :mod:`nearnb.vectorstores` (which does the storing) so the
rules can be read, and tested, without a store or a model:

* OpenAI's request rules for ``chunking_strategy`` (``auto`` or ``static``
  with 100-4096 tokens and an overlap of at most half), ``expires_after``
  (``last_active_at`` plus 1-365 days) and ``metadata`` (strings to strings);
* chunking: overlapping windows of words, a token counted as 0.75 words
  (a store's embedder may be remote, and nearnb has no tokenizer for it);
* vectors: normalised to unit length and kept as float32, so cosine
  similarity is a dot product; NEAR's ``distance`` was pgvector's ``<->``
  (Euclidean), which for unit vectors is ``sqrt(2 - 2 cos)``.
"""

from __future__ import annotations

import json
import math
from array import array
from collections.abc import Sequence
from typing import Any

DEFAULT_CHUNKING: dict[str, Any] = {
    "type": "static",
    "static": {"max_chunk_size_tokens": 800, "chunk_overlap_tokens": 400},
}
WORDS_PER_TOKEN = 0.75


class VectorStoreError(ValueError):
    """A refused request; ``status``: 404 for an unknown id, else 400; ``param``: the culprit."""

    def __init__(self, message: str, *, status: int = 400, param: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.param = param


def chunking(given: Any) -> dict[str, Any]:
    """OpenAI's static strategy for ``given``: None, ``NOT_GIVEN`` or ``auto`` mean 800/400."""
    if not given or (isinstance(given, dict) and given.get("type") == "auto"):
        return json.loads(json.dumps(DEFAULT_CHUNKING))
    static = given.get("static") if isinstance(given, dict) else None
    if not isinstance(static, dict) or given.get("type") != "static":
        raise VectorStoreError(
            "chunking_strategy must be {'type': 'auto'} or {'type': 'static', 'static': {...}}",
            param="chunking_strategy",
        )
    size, overlap = static.get("max_chunk_size_tokens"), static.get("chunk_overlap_tokens")
    if not isinstance(size, int) or isinstance(size, bool) or not 100 <= size <= 4096:
        raise VectorStoreError(
            "max_chunk_size_tokens must be an integer from 100 to 4096", param="chunking_strategy"
        )
    if not isinstance(overlap, int) or isinstance(overlap, bool) or not 0 <= overlap <= size // 2:
        raise VectorStoreError(
            "chunk_overlap_tokens must be an integer from 0 to half of max_chunk_size_tokens",
            param="chunking_strategy",
        )
    return {
        "type": "static",
        "static": {"max_chunk_size_tokens": size, "chunk_overlap_tokens": overlap},
    }


def chunk_text(text: str, max_tokens: int, overlap_tokens: int) -> list[str]:
    """``text`` as windows of about ``max_tokens`` tokens, overlapping by ``overlap_tokens``."""
    words = text.split()
    size = max(1, int(max_tokens * WORDS_PER_TOKEN))
    step = max(1, size - int(overlap_tokens * WORDS_PER_TOKEN))
    chunks = []
    for start in range(0, len(words), step):
        chunks.append(" ".join(words[start : start + size]))
        if start + size >= len(words):
            break
    return chunks


def unit(vector: Sequence[float]) -> array:
    norm = math.sqrt(math.fsum(x * x for x in vector)) or 1.0
    return array("f", (x / norm for x in vector))


def floats(blob: bytes) -> array:
    vector = array("f")
    vector.frombytes(blob)
    return vector


def expires_at(obj: dict[str, Any]) -> int | None:
    after = obj.get("expires_after")
    return obj["last_active_at"] + after["days"] * 86400 if after else None


def checked_expiry(expires_after: Any) -> dict[str, Any] | None:
    if not expires_after:  # None or openai's NOT_GIVEN
        return None
    days = expires_after.get("days") if isinstance(expires_after, dict) else None
    anchor = expires_after.get("anchor") if isinstance(expires_after, dict) else None
    if anchor != "last_active_at" or not isinstance(days, int) or not 1 <= days <= 365:
        raise VectorStoreError(
            "expires_after must be {'anchor': 'last_active_at', 'days': 1..365}",
            param="expires_after",
        )
    return {"anchor": anchor, "days": days}


def checked_metadata(metadata: Any) -> dict[str, str] | None:
    if metadata is None:
        return None
    if not isinstance(metadata, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        raise VectorStoreError("metadata must map strings to strings", param="metadata")
    return dict(metadata)


def distance(cosine: float) -> float:
    """pgvector's ``<->`` between unit vectors, from their cosine: smaller is closer."""
    return math.sqrt(max(0.0, 2.0 - 2.0 * cosine))
