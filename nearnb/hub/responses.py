"""The hub's SSE response: sse-starlette's, with a keepalive openai-python survives and a
cheaper send.

sse-starlette does the hard parts (client-disconnect detection, the ping task, shutdown
handling); two details are changed:

* the ping is :func:`~nearnb.hub.sse.keepalive_comment` (a comment line with no blank line
  after it), because sse-starlette's ``: ping\\n\\n`` makes openai-python json-decode an empty
  frame once an id was seen;
* without a ``send_timeout`` each write goes straight to ``send``: sse-starlette otherwise
  opens an anyio cancel scope per write, which profiling showed to be a fifth of the hub's
  loop time when fanning one run out to 100 subscribers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping

from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.types import Message, Send

from .sse import keepalive_comment

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


class Keepalive(ServerSentEvent):
    """sse-starlette's ping message, encoded as :func:`~nearnb.hub.sse.keepalive_comment`."""

    def __init__(self) -> None:
        super().__init__(comment="keepalive")

    def encode(self) -> bytes:
        return keepalive_comment()


class SSEResponse(EventSourceResponse):
    """An ``text/event-stream`` response of pre-encoded frames, with keepalives."""

    def __init__(
        self,
        body: AsyncIterator[bytes],
        *,
        keepalive: float,
        headers: Mapping[str, str] | None = None,
        on_disconnect: object = None,
    ) -> None:
        async def closed(message: Message) -> None:
            if callable(on_disconnect):
                on_disconnect()

        super().__init__(
            body,
            headers={**SSE_HEADERS, **(headers or {})},
            ping=keepalive,
            sep="\n",
            ping_message_factory=Keepalive,
            client_close_handler_callable=closed,
        )

    async def _send_with_timeout(self, send: Send, message: Message) -> None:
        if self.send_timeout is None:
            await send(message)
        else:  # pragma: no cover - the hub sets no send timeout
            await super()._send_with_timeout(send, message)
