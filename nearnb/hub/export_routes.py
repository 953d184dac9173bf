"""``GET /v1/threads/{tid}/runs/{rid}/export``: a run as a recorded-run file, over HTTP.

The same bytes as ``nearnb export RUN_ID`` (:mod:`nearnb.export`), served as
``application/x-ndjson`` with a ``Content-Disposition`` naming ``<run_id>.jsonl``,
so a browser saves it as a file. An unknown thread
or run, or one whose event log expired, is a 404 in OpenAI's error shape.
The run is looked up through the hub first, so a run whose process died is
ended (``expired``) before it is exported, as every other route sees it.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..store import StoreError
from .errors import ApiError
from .routes import hub_of

MEDIA_TYPE = "application/x-ndjson"


async def export_run(request: Request) -> Response:
    """Stream the run's file; 404 for an unknown thread or run, or an expired log."""
    from ..export import export_lines

    hub = hub_of(request)
    tid, rid = request.path_params["tid"], request.path_params["rid"]
    await hub.thread(tid)
    run = await hub.run(tid, rid)
    try:
        body = await hub.call(lambda: "".join(export_lines(hub.store, run.id, thread_id=tid)))
    except StoreError as exc:
        raise ApiError(404, str(exc.args[0] if exc.args else exc), param="run_id") from None
    return Response(
        body,
        media_type=MEDIA_TYPE,
        headers={"Content-Disposition": f'attachment; filename="{run.id}.jsonl"'},
    )


EXPORT_ROUTES = [Route("/threads/{tid}/runs/{rid}/export", export_run, methods=["GET"])]
