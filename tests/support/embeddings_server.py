"""The scripted OpenAI server plus ``POST /v1/embeddings``, for the provider embeddings path.

Vector stores embed through a provider's real ``/v1/embeddings`` (openai SDK -> httpx), so
tests need a server that answers it. Embeddings here are deterministic bags of words: each
lower-cased word is hashed into one of ``DIMENSIONS`` buckets, so texts sharing words are close
and a stored sentence queried verbatim is exactly its own nearest neighbour, with no model.

Usage::

    with EmbeddingsServer() as srv:            # also serves chat completions, as ScriptedOpenAI
        ...                                     # srv.embedding_requests: bodies received
        srv.fail_embeddings = 500               # answer the next embeddings requests with HTTP 500
"""

from __future__ import annotations

import hashlib
import json
import re

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.support.openai_server import ScriptedOpenAI

DIMENSIONS = 64


def bag_of_words(text: str) -> list[float]:
    """A deterministic embedding: word counts hashed into ``DIMENSIONS`` buckets (+1 bias)."""
    vector = [0.0] * DIMENSIONS
    for word in re.findall(r"[a-z0-9]+", text.lower()):
        vector[int(hashlib.sha256(word.encode()).hexdigest(), 16) % DIMENSIONS] += 1.0
    vector[0] += 0.01  # no all-zero vector for text without words
    return vector


class EmbeddingsServer(ScriptedOpenAI):
    """:class:`ScriptedOpenAI` that also answers ``/v1/embeddings`` (see the module docstring)."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.embedding_requests: list[dict[str, object]] = []
        self.embedding_headers: list[dict[str, str]] = []
        self.fail_embeddings: int | None = None

    def _app(self) -> Starlette:
        app = super()._app()
        app.router.routes.insert(0, Route("/v1/embeddings", self._embeddings, methods=["POST"]))
        return app

    async def _embeddings(self, request: Request) -> Response:
        body = json.loads(await request.body() or b"{}")
        with self._lock:
            self.embedding_requests.append(body)
            self.embedding_headers.append({k.lower(): v for k, v in request.headers.items()})
        if self.fail_embeddings is not None:
            error = {"message": "embeddings are down", "type": "server_error", "code": None}
            return JSONResponse({"error": error}, status_code=self.fail_embeddings)
        inputs = body.get("input")
        texts = [inputs] if isinstance(inputs, str) else list(inputs or [])
        data = [
            {"object": "embedding", "index": i, "embedding": bag_of_words(text)}
            for i, text in enumerate(texts)
        ]
        usage = {"prompt_tokens": len(texts), "total_tokens": len(texts)}
        return JSONResponse(
            {"object": "list", "data": data, "model": body.get("model", ""), "usage": usage}
        )
