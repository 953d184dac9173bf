"""OpenAI's ``/v1/vector_stores`` routes on the hub, over the same local stores agents use.

Routes (under ``/v1``, behind the hub's token like every other route)::

    POST   /vector_stores                     GET /vector_stores
    GET    /vector_stores/{vsid}              DELETE /vector_stores/{vsid}
    POST   /vector_stores/{vsid}/files        GET /vector_stores/{vsid}/files
    POST   /vector_stores/{vsid}/search

Bodies and answers are OpenAI's (openai-python's ``client.vector_stores``
works against them); the search page is OpenAI's, not NEAR's list, which
``env.query_vector_store`` still returns to agents. As in :mod:`.routes`, a
request is validated whole (body, ids, files) before anything is written, so
a refused request leaves nothing behind. A store the hub creates is embedded
by the hub's default provider (the embedded model without credentials); a
file that cannot be embedded is answered ``failed`` with ``last_error``, as
OpenAI does. The hub has no ``/v1/files`` upload (it would need a multipart
parser nearnb does not depend on): files come from ``env.upload_file``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..providers.base import ProviderError
from ..vectorindex import VectorStoreError
from ..vectorstores import VectorStores
from .errors import ApiError, query_choice, query_int, read_body
from .schemas import Metadata, Name

FileId = Annotated[Name, StringConstraints(min_length=1)]
Query = Annotated[str, StringConstraints(min_length=1, max_length=8192)]
STATUSES = ("in_progress", "completed", "failed", "cancelled")


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)


class StaticIn(_Body):
    max_chunk_size_tokens: int = Field(ge=100, le=4096)
    chunk_overlap_tokens: int = Field(ge=0)

    @model_validator(mode="after")
    def _half(self) -> StaticIn:
        if self.chunk_overlap_tokens > self.max_chunk_size_tokens // 2:
            raise ValueError("chunk_overlap_tokens must not exceed half of max_chunk_size_tokens")
        return self


class ChunkingIn(_Body):
    type: Literal["auto", "static"]
    static: StaticIn | None = None

    @model_validator(mode="after")
    def _static(self) -> ChunkingIn:
        if self.type == "static" and self.static is None:
            raise ValueError("a static chunking_strategy needs 'static'")
        return self


class ExpiresIn(_Body):
    anchor: Literal["last_active_at"]
    days: int = Field(ge=1, le=365)


class VectorStoreIn(_Body):
    name: Annotated[str, StringConstraints(max_length=256)] = ""
    file_ids: list[FileId] = Field(default_factory=list, max_length=500)
    chunking_strategy: ChunkingIn | None = None
    expires_after: ExpiresIn | None = None
    metadata: Metadata | None = None


Attribute = Annotated[str, StringConstraints(max_length=512)] | bool | float
AttributeKey = Annotated[str, StringConstraints(max_length=64)]


class VectorStoreFileIn(_Body):
    file_id: FileId
    chunking_strategy: ChunkingIn | None = None
    attributes: Annotated[dict[AttributeKey, Attribute], Field(max_length=16)] | None = None


class RankingIn(_Body):
    ranker: Name | None = None
    score_threshold: float = Field(default=0.0, ge=0, le=1)


class SearchIn(_Body):
    query: Query | Annotated[list[Query], Field(min_length=1, max_length=16)]
    max_num_results: int = Field(default=10, ge=1, le=50)
    filters: Any = None
    ranking_options: RankingIn | None = None
    rewrite_query: bool = False

    @field_validator("filters")
    @classmethod
    def _no_filters(cls, value: Any) -> None:
        if value is not None:
            raise ValueError("attribute filters are not supported by nearnb")
        return None

    @property
    def queries(self) -> list[str]:
        return [self.query] if isinstance(self.query, str) else list(self.query)


def _dump(model: BaseModel | None) -> Any:
    return model.model_dump(exclude_none=True) if model is not None else None


async def _call(request: Request, fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Run a blocking VectorStores call off the loop, its refusals as API errors."""
    try:
        return await _hub(request).call(fn, *args, **kwargs)
    except VectorStoreError as exc:
        raise ApiError(exc.status, str(exc), param=exc.param) from None
    except ProviderError as exc:
        raise ApiError(502, f"embeddings: {exc}", code="provider_error") from None


def _hub(request: Request) -> Any:
    """The app's ``Hub`` (not imported: the app imports this module)."""
    return request.app.state.hub


def _stores(request: Request) -> VectorStores:
    return VectorStores(_hub(request).store)


def _page(request: Request, items: list[dict[str, Any]]) -> dict[str, Any]:
    """OpenAI's cursor page over ``items`` (oldest first): ``limit``, ``order``, ``after``,
    ``before``; an unknown cursor is a 422, as in the messages route."""
    limit = query_int(request, "limit", 20, low=1, high=100)
    order = query_choice(request, "order", "desc", ("asc", "desc"))
    items = items if order == "asc" else items[::-1]
    for name in ("after", "before"):
        cursor = request.query_params.get(name)
        if cursor is None:
            continue
        ids = [item["id"] for item in items]
        if cursor not in ids:
            raise ApiError(422, f"{name}: no such id in this list: {cursor[:80]}", param=name)
        at = ids.index(cursor)
        items = items[at + 1 :] if name == "after" else items[:at]
    page = items[:limit]
    return {
        "object": "list",
        "data": page,
        "first_id": page[0]["id"] if page else None,
        "last_id": page[-1]["id"] if page else None,
        "has_more": len(items) > limit,
    }


# ------------------------------------------------------------------ routes


async def create_vector_store(request: Request) -> Response:
    from ..embeddings import default_embedder

    body = await read_body(request, VectorStoreIn)
    stores = _stores(request)
    embedder = await _call(request, default_embedder)
    obj = await _call(
        request,
        stores.create,
        body.name,
        body.file_ids,
        embedder=embedder,
        chunking_strategy=_dump(body.chunking_strategy),
        expires_after=_dump(body.expires_after),
        metadata=body.metadata,
    )
    return JSONResponse(obj)


async def list_vector_stores(request: Request) -> Response:
    return JSONResponse(_page(request, await _call(request, _stores(request).list)))


async def get_vector_store(request: Request) -> Response:
    obj = await _call(request, _stores(request).get, request.path_params["vsid"])
    return JSONResponse(obj)


async def delete_vector_store(request: Request) -> Response:
    obj = await _call(request, _stores(request).delete, request.path_params["vsid"])
    return JSONResponse(obj)


async def add_vector_store_file(request: Request) -> Response:
    body = await read_body(request, VectorStoreFileIn)
    obj = await _call(
        request,
        _stores(request).add_file,
        request.path_params["vsid"],
        body.file_id,
        _dump(body.chunking_strategy),
        body.attributes,
    )
    return JSONResponse(obj)


async def list_vector_store_files(request: Request) -> Response:
    wanted = request.query_params.get("filter")
    if wanted is not None:
        query_choice(request, "filter", "", STATUSES)
    files = await _call(request, _stores(request).list_files, request.path_params["vsid"])
    return JSONResponse(_page(request, [f for f in files if wanted in (None, f["status"])]))


async def search_vector_store(request: Request) -> Response:
    """OpenAI's search page: the closest chunks, each with its file, score and text."""
    body = await read_body(request, SearchIn)
    stores = _stores(request)
    ranked = await _call(request, stores.ranked, request.path_params["vsid"], body.queries)
    threshold = body.ranking_options.score_threshold if body.ranking_options else 0.0
    hits = [hit for hit in ranked if hit[3] >= threshold][: body.max_num_results]

    def describe() -> list[dict[str, Any]]:
        attached = {f["id"]: f for f in stores.list_files(request.path_params["vsid"])}
        data = []
        for file_id, _, text, score in hits:
            file = stores.get_file(file_id) or {}
            attributes = attached.get(file_id, {}).get("attributes") or {}
            data.append({"file_id": file_id, "filename": file.get("filename", ""),
                         "score": max(0.0, score), "attributes": attributes,
                         "content": [{"type": "text", "text": text}]})  # fmt: skip
        return data

    return JSONResponse(
        {
            "object": "vector_store.search_results.page",
            "search_query": body.queries,
            "data": await _call(request, describe),
            "has_more": False,
            "next_page": None,
        }
    )


VECTOR_STORE_ROUTES = [
    Route("/vector_stores", create_vector_store, methods=["POST"]),
    Route("/vector_stores", list_vector_stores, methods=["GET"]),
    Route("/vector_stores/{vsid}", get_vector_store, methods=["GET"]),
    Route("/vector_stores/{vsid}", delete_vector_store, methods=["DELETE"]),
    Route("/vector_stores/{vsid}/files", add_vector_store_file, methods=["POST"]),
    Route("/vector_stores/{vsid}/files", list_vector_store_files, methods=["GET"]),
    Route("/vector_stores/{vsid}/search", search_vector_store, methods=["POST"]),
]
