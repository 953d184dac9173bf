"""The hub's ASGI app: threads, messages, runs and their SSE streams, under ``/v1``.

The routes follow the OpenAI Assistants API closely enough that openai-python
(``client.beta.threads...``) and NEAR's web UI both work against it. The hub
owns no state of its own: everything is in the shared store, so a run started
by a notebook kernel is served exactly like one the hub started, and a
restarted hub carries on where the last one stopped.

Routes (all under ``/v1``, all behind the bearer token when one is set)::

    POST /threads                              GET  /threads/{tid}
    POST /threads/{tid}/messages               GET  /threads/{tid}/messages
    POST /threads/{tid}/runs                   GET  /threads/{tid}/runs
    GET  /threads/{tid}/runs/{rid}             POST /threads/{tid}/runs/{rid}/cancel
    GET  /threads/{tid}/stream/{rid}           POST /chat/completions

Run streams (``GET .../stream/{rid}``, and ``POST .../runs`` with ``stream:
true``) are strictly standard SSE by default: ``id:``, ``event:``, the OpenAI
object as ``data:``, ending with ``event: done`` / ``data: [DONE]``.
``?framing=near`` gives NEAR's legacy frames; ``?timing=1`` adds each event's
emit time to its data object as ``"nearnb_at"`` (what ``nearnb.attach`` asks
for, to replay a run at its original pace; see :mod:`nearnb.hub.sse`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio.to_thread
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from ..events import Message, Run, new_id, now, text_content
from ..store import ENDED_STATUSES, Store, StoreError
from .broker import Broker
from .completions import chat_completions
from .errors import (
    ApiError,
    api_error_handler,
    http_error_handler,
    query_choice,
    query_int,
    read_body,
    secrets_to_hide,
    server_error_handler,
)
from .guard import Guard
from .responses import SSE_HEADERS, SSEResponse
from .schemas import MessageIn, RunIn, ThreadIn
from .sse import FRAMINGS, KEEPALIVE_SECONDS, TIMINGS


class Hub:
    """What the routes share: the store, the broker, the agents folder, live hub-runs."""

    def __init__(
        self,
        store: Store,
        *,
        agents_dir: Path | None = None,
        token: str | None = None,
        keepalive: float = KEEPALIVE_SECONDS,
        tail_interval: float = 0.01,
    ) -> None:
        self.store = store
        self.broker = Broker(store, tail_interval=tail_interval)
        self.agents_dir = agents_dir.resolve() if agents_dir is not None else None
        self.token = token
        self.keepalive = keepalive
        self.handles: dict[str, Any] = {}  # run_id -> RunHandle, for runs started here

    @property
    def hidden(self) -> list[str]:
        return secrets_to_hide([self.token])

    # ---------------------------------------------------------------- lookups

    async def call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Run a blocking store call off the event loop."""
        return await anyio.to_thread.run_sync(lambda: fn(*args, **kwargs))

    async def thread(self, thread_id: str) -> Any:
        thread = await self.call(self.store.get_thread, thread_id)
        if thread is None:
            raise ApiError(404, f"thread not found: {thread_id}", param="thread_id")
        return thread

    async def run(self, thread_id: str, run_id: str) -> Run:
        run = await self.call(self.store.get_run, run_id)
        if run is None or run.thread_id != thread_id:
            raise ApiError(404, f"run not found: {run_id} in thread {thread_id}", param="run_id")
        return run

    def agent_path(self, assistant_id: str) -> Path:
        """The folder an ``assistant_id`` names, never outside ``--agents``.

        Accepts a folder name (``streaming-example``), a path under the agents
        folder, or the identifier runs report (``local/<name>/<version>``).
        """
        from ..agents import AgentError, find_agent

        names = [assistant_id]
        parts = assistant_id.split("/")
        if len(parts) == 3 and parts[0] == "local":
            names.append(parts[1])
        for name in names:
            if self.agents_dir is not None:
                folder = (self.agents_dir / name).resolve()
                if folder.is_relative_to(self.agents_dir) and (folder / "agent.py").is_file():
                    return folder
                continue
            with contextlib.suppress(AgentError):
                return find_agent(name)
        where = (
            f" under {self.agents_dir}" if self.agents_dir else " (start the hub with --agents DIR)"
        )
        raise ApiError(404, f"assistant not found: {assistant_id}{where}", param="assistant_id")


def _hub(request: Request) -> Hub:
    return request.app.state.hub


def _message(thread_id: str, body: MessageIn) -> Message:
    return Message(
        id=new_id("msg"),
        created_at=now(),
        thread_id=thread_id,
        role=body.role,
        content=text_content(body.text),
        metadata=body.metadata or {},
        attachments=body.attachments,
        completed_at=now(),
    )


def _dump(obj: Any) -> dict[str, Any]:
    return obj.model_dump(mode="json")


# ----------------------------------------------------------------- threads


async def create_thread(request: Request) -> Response:
    hub = _hub(request)
    body = await read_body(request, ThreadIn)

    def create() -> Any:
        thread = hub.store.create_thread(body.metadata)
        for item in body.messages:
            hub.store.save_message(_message(thread.id, item))
        return thread

    return JSONResponse(_dump(await hub.call(create)))


async def get_thread(request: Request) -> Response:
    return JSONResponse(_dump(await _hub(request).thread(request.path_params["tid"])))


async def create_message(request: Request) -> Response:
    hub = _hub(request)
    thread = await hub.thread(request.path_params["tid"])
    body = await read_body(request, MessageIn)
    message = await hub.call(hub.store.save_message, _message(thread.id, body))
    return JSONResponse(_dump(message))


async def list_messages(request: Request) -> Response:
    """OpenAI's cursor page: ``limit`` (1-100, 20), ``order`` (desc), ``after``, ``before``."""
    hub = _hub(request)
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
    page = [_dump(m) for m in rows[:limit]]
    return JSONResponse(
        {
            "object": "list",
            "data": page,
            "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None,
            "has_more": len(rows) > limit,
        }
    )


# -------------------------------------------------------------------- runs


async def create_run(request: Request) -> Response:
    """Start ``assistant_id`` on the thread; ``stream: true`` answers with its SSE stream.

    The stream takes the same ``?framing=`` and ``?timing=`` as :func:`stream_run`.
    """
    from ..agents import AgentError
    from ..runs import start_run

    hub = _hub(request)
    thread = await hub.thread(request.path_params["tid"])
    body = await read_body(request, RunIn)
    framing = query_choice(request, "framing", "official", FRAMINGS)
    timing = query_choice(request, "timing", "0", TIMINGS) == "1"
    folder = hub.agent_path(body.assistant_id)
    for item in body.additional_messages or ():
        await hub.call(hub.store.save_message, _message(thread.id, item))
    try:
        handle = await hub.call(
            start_run,
            folder,
            None,
            thread_id=thread.id,
            model=body.model,
            provider=body.provider,
            on_event=hub.broker.publish_threadsafe,
            store=hub.store,
        )
    except AgentError as exc:
        raise ApiError(422, f"assistant_id: {exc}", param="assistant_id") from None
    hub.handles[handle.run_id] = handle
    _forget_when_done(hub, handle)
    if body.stream:
        return await _stream(hub, handle.run_id, 0, framing, timing)
    return JSONResponse(_dump(await hub.run(thread.id, handle.run_id)))


def _forget_when_done(hub: Hub, handle: Any) -> None:
    """Drop the handle once the run ends, so ``handles`` does not grow forever."""

    def on_event(event: Any) -> None:
        if event.event == "done":
            hub.handles.pop(handle.run_id, None)

    handle.subscribe(on_event)


async def list_runs(request: Request) -> Response:
    hub = _hub(request)
    thread = await hub.thread(request.path_params["tid"])
    runs = await hub.call(hub.store.list_runs, thread.id)
    data = [_dump(r) for r in runs]
    return JSONResponse({"object": "list", "data": data, "has_more": False})


async def get_run(request: Request) -> Response:
    run = await _hub(request).run(request.path_params["tid"], request.path_params["rid"])
    return JSONResponse(_dump(run))


async def cancel_run(request: Request) -> Response:
    hub = _hub(request)
    run = await hub.run(request.path_params["tid"], request.path_params["rid"])
    if run.status in ENDED_STATUSES:
        raise ApiError(400, f"cannot cancel run with status {run.status!r}", param="run_id")
    handle = hub.handles.get(run.id)
    if handle is None:
        raise ApiError(
            409,
            f"run {run.id} is executing in another process (a notebook or the CLI); "
            "cancel it there",
            code="not_owned",
        )
    handle.cancel("hub")
    return JSONResponse({**_dump(run), "status": "cancelling"})


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
    hub = _hub(request)
    thread_id, run_id = request.path_params["tid"], request.path_params["rid"]
    framing = query_choice(request, "framing", "official", FRAMINGS)
    timing = query_choice(request, "timing", "0", TIMINGS) == "1"
    raw = request.headers.get("last-event-id") or request.query_params.get("after") or "0"
    if not raw.strip().isdigit():
        raise ApiError(
            422,
            f"Last-Event-ID must be an event sequence number, not {raw!r}",
            param="Last-Event-ID",
        )
    thread = await hub.call(hub.store.get_thread, thread_id)
    run = await hub.call(hub.store.get_run, run_id)
    if thread is None or run is None or run.thread_id != thread_id:
        raise ApiError(404, f"run not found: {run_id} in thread {thread_id}", param="run_id")
    return await _stream(hub, run_id, int(raw), framing, timing)


async def _stream(
    hub: Hub, run_id: str, after: int, framing: str, timing: bool = False
) -> Response:
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


# --------------------------------------------------------------------- app


def create_app(
    store: Store | None = None,
    *,
    agents_dir: str | Path | None = None,
    token: str | None = None,
    keepalive: float = KEEPALIVE_SECONDS,
    tail_interval: float = 0.01,
    loopback: bool = True,
) -> Starlette:
    """The hub as an ASGI app (``uvicorn.run(create_app(...))``).

    ``loopback``: the server is bound to a loopback address, so requests must
    name a loopback host (a DNS-rebinding page cannot reach it).
    """
    hub = Hub(
        store or Store(),
        agents_dir=Path(agents_dir).expanduser() if agents_dir else None,
        token=token,
        keepalive=keepalive,
        tail_interval=tail_interval,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        hub.broker.bind(asyncio.get_running_loop())
        yield
        hub.broker.close()

    v1 = [
        Route("/threads", create_thread, methods=["POST"]),
        Route("/threads/{tid}", get_thread, methods=["GET"]),
        Route("/threads/{tid}/messages", create_message, methods=["POST"]),
        Route("/threads/{tid}/messages", list_messages, methods=["GET"]),
        Route("/threads/{tid}/runs", create_run, methods=["POST"]),
        Route("/threads/{tid}/runs", list_runs, methods=["GET"]),
        Route("/threads/{tid}/runs/{rid}", get_run, methods=["GET"]),
        Route("/threads/{tid}/runs/{rid}/cancel", cancel_run, methods=["POST"]),
        Route("/threads/{tid}/stream/{rid}", stream_run, methods=["GET"]),
        Route("/chat/completions", chat_completions, methods=["POST"]),
    ]
    app = Starlette(
        routes=[Mount("/v1", routes=v1)],
        middleware=[Middleware(Guard, token=token, loopback=loopback)],
        exception_handlers={
            ApiError: api_error_handler,
            HTTPException: http_error_handler,
            Exception: server_error_handler,
        },
        lifespan=lifespan,
    )
    app.state.hub = hub
    return app
