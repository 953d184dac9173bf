"""The hub's thread, message and run-stream routes (run lifecycle routes are in :mod:`.app`).

Each write route validates its whole request first (:func:`~.errors.read_body`
and the typed bodies in :mod:`.schemas`) and only then touches the store, so
a refused request leaves nothing behind: no half-created thread, no message
without its run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..events import Message, new_id, now, text_content
from ..store import ENDED_STATUSES, StoreError
from .errors import ApiError, event_seq, query_choice, query_int, read_body
from .responses import SSE_HEADERS, SSEResponse
from .schemas import MessageIn, ThreadIn
from .sse import FRAMINGS, TIMINGS

if TYPE_CHECKING:
    from .state import Hub


def hub_of(request: Request) -> Hub:
    return request.app.state.hub


def to_message(thread_id: str, body: MessageIn) -> Message:
    """A validated message body as the store's object (cannot fail: see :mod:`.schemas`)."""
    return Message(
        id=new_id("msg"),
        created_at=now(),
        thread_id=thread_id,
        role=body.role,
        content=text_content(body.text),
        metadata=body.metadata or {},
        attachments=body.attachment_dicts(),
        completed_at=now(),
    )


def dump(obj: Any) -> dict[str, Any]:
    return obj.model_dump(mode="json")


# ----------------------------------------------------------------- threads


async def create_thread(request: Request) -> Response:
    hub = hub_of(request)
    body = await read_body(request, ThreadIn)
    drafts = [to_message("", item) for item in body.messages]  # built before anything is stored

    def create() -> Any:
        thread = hub.store.create_thread(body.metadata)
        for draft in drafts:
            hub.store.save_message(draft.model_copy(update={"thread_id": thread.id}))
        return thread

    return JSONResponse(dump(await hub.call(create)))


async def get_thread(request: Request) -> Response:
    return JSONResponse(dump(await hub_of(request).thread(request.path_params["tid"])))


async def create_message(request: Request) -> Response:
    hub = hub_of(request)
    thread = await hub.thread(request.path_params["tid"])
    body = await read_body(request, MessageIn)
    message = await hub.call(hub.store.save_message, to_message(thread.id, body))
    return JSONResponse(dump(message))


async def list_messages(request: Request) -> Response:
    """OpenAI's cursor page: ``limit`` (1-100, 20), ``order`` (desc), ``after``, ``before``."""
    hub = hub_of(request)
    thread = await hub.thread(request.path_params["tid"])
    limit = query_int(request, "limit", 20, low=1, high=100)
    order = query_choice(request, "order", "desc", ("asc", "desc"))
    query = request.query_params
    try:
        rows = await hub.call(
            hub.store.list_messages,
            thread.id,
            limit=limit + 1,
            order=order,
            after=query.get("after"),
            before=query.get("before"),
            run_id=query.get("run_id"),
        )
    except StoreError as exc:
        param = "after" if query.get("after") and query["after"] in str(exc) else "before"
        raise ApiError(422, f"{param}: {exc}", param=param) from None
    page = [dump(m) for m in rows[:limit]]
    return JSONResponse(
        {
            "object": "list",
            "data": page,
            "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None,
            "has_more": len(rows) > limit,
        }
    )


# ------------------------------------------------------------------ stream


async def stream_run(request: Request) -> Response:
    """History from the event log, then live events, to every subscriber; ends after ``done``.

    Resumes after ``Last-Event-ID`` (or ``?after=N``); ``?framing=near`` gives
    NEAR's legacy frames.

    ``?timing=1`` (default ``0``): each event's data object gets one extra key,
    ``"nearnb_at"``, the producer's emit time in float seconds, so a client can
    replay a finished run at its original pace (``nearnb.attach(...,
    speed=1.0)`` always asks for it); the ``done`` frame's data is then
    ``{"nearnb_at": ...}`` rather than ``[DONE]``, which has no room for it.
    Without it the data is exactly the OpenAI object and ``done`` is
    ``[DONE]``, for openai-python, browsers' EventSource and every other client
    that does not ask.
    """
    hub = hub_of(request)
    thread_id, run_id = request.path_params["tid"], request.path_params["rid"]
    framing = query_choice(request, "framing", "official", FRAMINGS)
    timing = query_choice(request, "timing", "0", TIMINGS) == "1"
    header = request.headers.get("last-event-id")
    if header:
        after = event_seq(header, "Last-Event-ID")
    else:
        after = event_seq(request.query_params.get("after") or "0", "after")
    thread = await hub.call(hub.store.get_thread, thread_id)
    run = await hub.call(hub.store.get_run, run_id)
    if thread is None or run is None or run.thread_id != thread_id:
        raise ApiError(404, f"run not found: {run_id} in thread {thread_id}", param="run_id")
    return await open_stream(hub, run_id, after, framing, timing)


async def open_stream(
    hub: Hub, run_id: str, after: int, framing: str, timing: bool = False
) -> Response:
    """The SSE response for ``run_id`` after event ``after``; 204 if it already ended there."""
    subscription = await hub.broker.open(run_id)
    if subscription.finished_at(after):
        subscription.close()
        return Response(status_code=204, headers=SSE_HEADERS)
    if not subscription.channel.rows and after == 0:
        run = await hub.call(hub.store.get_run, run_id)
        if run is not None and run.status in ENDED_STATUSES:
            subscription.close()
            raise ApiError(410, f"the event log of run {run_id} has expired", code="expired")
    return SSEResponse(
        subscription.stream(after, framing, timing),  # type: ignore[arg-type]
        keepalive=hub.keepalive,
        on_disconnect=subscription.close,
    )
