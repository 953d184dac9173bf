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
    GET  /threads/{tid}/runs/{rid}/export      (the run as JSON Lines: nearnb.export)

Run streams (``GET .../stream/{rid}``, and ``POST .../runs`` with ``stream:
true``) are strictly standard SSE by default: ``id:``, ``event:``, the OpenAI
object as ``data:``, ending with ``event: done`` / ``data: [DONE]``.
``?framing=near`` gives NEAR's legacy frames; ``?timing=1`` adds each event's
emit time to its data object as ``"nearnb_at"`` (what ``nearnb.attach`` asks
for, to replay a run at its original pace; see :mod:`nearnb.hub.sse`).

An ``assistant_id`` names an agent folder inside the hub's agents folders
(``$NEARNB_HOME/agents`` plus ``--agents DIR``), never anywhere else: the
hub runs that folder's code.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from ..bus import BUS_ENV, EventBus, open_bus
from ..store import ENDED_STATUSES, Store, open_store
from .completions import chat_completions
from .errors import (
    ApiError,
    api_error_handler,
    http_error_handler,
    query_choice,
    read_body,
    server_error_handler,
)
from .export_routes import EXPORT_ROUTES
from .guard import BodyLimit, Guard, max_body_from_env
from .routes import (
    create_message,
    create_thread,
    dump,
    get_thread,
    hub_of,
    list_messages,
    open_stream,
    stream_run,
    to_message,
)
from .schemas import RunIn
from .sse import FRAMINGS, KEEPALIVE_SECONDS, TIMINGS
from .state import AgentsDirs, Hub, agents_dirs
from .vector_routes import VECTOR_STORE_ROUTES

log = logging.getLogger(__name__)

# -------------------------------------------------------------------- runs


async def create_run(request: Request) -> Response:
    """Start ``assistant_id`` on the thread; ``stream: true`` answers with its SSE stream.

    The whole request is validated before anything is written: the body, the
    agent folder and its metadata, the additional messages. Only then are the
    messages saved and the run started, so a refused request leaves neither
    messages nor a half-started run (nor its event-writer thread) behind.
    The stream takes the same ``?framing=`` and ``?timing=`` as ``stream_run``.
    """
    from ..agents import AgentError, load_agent
    from ..runs import start_run

    hub = hub_of(request)
    thread = await hub.thread(request.path_params["tid"])
    body = await read_body(request, RunIn)
    framing = query_choice(request, "framing", "official", FRAMINGS)
    timing = query_choice(request, "timing", "0", TIMINGS) == "1"
    folder = await hub.call(hub.agent_path, body.assistant_id)
    await hub.call(hub.check_provider, body.provider)
    try:
        agent = await hub.call(load_agent, folder)
    except AgentError as exc:
        raise ApiError(422, f"assistant_id: {exc}", param="assistant_id") from None
    drafts = [to_message(thread.id, item) for item in body.additional_messages or ()]

    def start() -> Any:
        for draft in drafts:
            hub.store.save_message(draft)
        handle = start_run(
            agent,
            None,
            thread_id=thread.id,
            model=body.model or None,
            provider=body.provider or None,
            on_durable=hub.broker.publish_threadsafe,  # published once stored: crash-exact resume
            store=hub.store,
        )
        # start_run returns once the run is stored, so a GET right after this answer finds it.
        return handle, hub.store.get_run(handle.run_id)

    handle, stored = await hub.call(start)
    hub.handles[handle.run_id] = handle
    _forget_when_done(hub, handle)
    if body.stream:
        return await open_stream(hub, handle.run_id, 0, framing, timing)
    return JSONResponse(dump(stored or handle.run))


def _forget_when_done(hub: Hub, handle: Any) -> None:
    """Drop the handle once the run ends, so ``handles`` does not grow forever."""

    def on_event(event: Any) -> None:
        if event.event == "done":
            hub.handles.pop(handle.run_id, None)

    handle.subscribe(on_event)


async def list_runs(request: Request) -> Response:
    hub = hub_of(request)
    thread = await hub.thread(request.path_params["tid"])
    runs = await hub.call(hub.live_runs, thread.id)
    return JSONResponse({"object": "list", "data": [dump(r) for r in runs], "has_more": False})


async def get_run(request: Request) -> Response:
    run = await hub_of(request).run(request.path_params["tid"], request.path_params["rid"])
    return JSONResponse(dump(run))


async def cancel_run(request: Request) -> Response:
    """Stop a run wherever it executes; answers the run as ``cancelling``, as OpenAI does.

    A run this hub started is cancelled here. Any other (a notebook kernel,
    the CLI, another hub, on any machine) gets a cancel request on the event
    bus, which the process executing it honours within ~0.1 s
    (:mod:`nearnb.bus_watch`); every stream of the run then ends ``cancelled``.
    """
    hub = hub_of(request)
    run = await hub.run(request.path_params["tid"], request.path_params["rid"])
    if run.status in ENDED_STATUSES:
        raise ApiError(400, f"cannot cancel run with status {run.status!r}", param="run_id")
    handle = hub.handles.get(run.id)
    if handle is not None:
        handle.cancel("hub")
    else:
        await hub.call(hub.bus.request_cancel, run.id, f"hub:{request.url.netloc}")
    return JSONResponse({**dump(run), "status": "cancelling"})


# --------------------------------------------------------------------- app


def create_app(
    store: Store | None = None,
    *,
    agents_dir: AgentsDirs = None,
    token: str | None = None,
    keepalive: float = KEEPALIVE_SECONDS,
    tail_interval: float = 0.01,
    loopback: bool = True,
    max_body: int | None = None,
    bus: EventBus | str | None = None,
) -> Starlette:
    """The hub as an ASGI app (``uvicorn.run(create_app(...))``).

    ``agents_dir``: one folder or several, served besides ``$NEARNB_HOME/agents``.
    ``loopback``: the server is bound to a loopback address, so requests must
    name a loopback host (a DNS-rebinding page cannot reach it).
    ``max_body``: the largest request body in bytes (default ``$NEARNB_MAX_BODY``,
    else 4 MiB); larger ones get 413.
    ``bus``: the event bus, or its URL (default ``$NEARNB_BUS``; unset: the store's own).
    """
    limit = max_body if max_body is not None else max_body_from_env()
    if limit < 1:
        raise ValueError(f"max_body must be a positive number of bytes, not {limit}")
    store = store or open_store()  # $NEARNB_DATABASE_URL, else SQLite
    if bus is None or isinstance(bus, str):
        bus = open_bus(bus if bus is not None else os.environ.get(BUS_ENV), store)
    getattr(bus, "check", lambda: None)()  # an unreachable bus fails the start, by name
    hub = Hub(
        store,
        agents_dirs=agents_dirs(agents_dir),
        token=token,
        keepalive=keepalive,
        tail_interval=tail_interval,
        bus=bus,
    )
    log.info("nearnb hub serves agents from %s", ", ".join(map(str, hub.agents_dirs)))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        hub.broker.bind(asyncio.get_running_loop())
        yield
        hub.broker.close()
        aclose = getattr(hub.bus, "aclose", None)
        if aclose is not None:
            with contextlib.suppress(Exception):
                await aclose()

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
        *VECTOR_STORE_ROUTES,
        *EXPORT_ROUTES,
    ]
    app = Starlette(
        routes=[Mount("/v1", routes=v1)],
        middleware=[
            Middleware(Guard, token=token, loopback=loopback),
            Middleware(BodyLimit, limit=limit),
        ],
        exception_handlers={
            ApiError: api_error_handler,
            HTTPException: http_error_handler,
            Exception: server_error_handler,
        },
        lifespan=lifespan,
    )
    app.state.hub = hub
    app.state.max_body = limit
    return app
