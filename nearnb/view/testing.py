"""A recording comm: widget traffic without a kernel or a browser.

In the style of ipywidgets' own ``tests/utils.py`` ``DummyComm``: widgets get
a comm that records what would go over the wire (``comm_open`` state,
``update`` messages, ``comm_close``) instead of sending it. The view tests
and ``bench/bench_view.py`` use it to count messages and bytes exactly.
Bytes are each message's ``data`` packed as jupyter_client packs it (UTF-8
JSON) - the part that grows with the text; the Jupyter envelope (header,
parent header, signature) adds a roughly constant ~0.5 kB per message, which
is why the message count is reported separately.
"""

from __future__ import annotations

import itertools
import json
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import comm as comm_pkg


@dataclass
class WireLog:
    """Everything the recording comms sent, in order.

    With ``keep=False`` only counts, bytes and times are kept (not each
    message's data): enough to measure a naive O(n^2) view in full, which
    would otherwise hold gigabytes.
    """

    messages: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    clock: Callable[[], float] | None = None
    times: list[float] = field(default_factory=list)
    keep: bool = True
    _bytes: int = 0
    _kinds: Counter[str] = field(default_factory=Counter)

    def record(self, kind: str, comm_id: str, data: dict[str, Any]) -> None:
        if self.keep:
            self.messages.append((kind, comm_id, data))
        self.times.append(self.clock() if self.clock else 0.0)
        self._kinds[kind] += 1
        self._bytes += len(json.dumps(data, ensure_ascii=False).encode("utf8"))

    @property
    def bytes(self) -> int:
        """Bytes of the messages' ``data`` as jupyter_client packs it (UTF-8 JSON)."""
        return self._bytes

    def count(self, kind: str | None = None) -> int:
        return sum(self._kinds.values()) if kind is None else self._kinds[kind]

    def updates(self, comm_id: str | None = None) -> list[dict[str, Any]]:
        """The ``state`` of every update message (optionally for one widget)."""
        return [
            data["state"]
            for kind, cid, data in self.messages
            if kind == "update" and (comm_id is None or cid == comm_id)
        ]

    def clear(self) -> None:
        self.messages.clear()
        self.times.clear()
        self._kinds.clear()
        self._bytes = 0


class RecordingComm:
    """Duck-types the parts of ``comm.base_comm.BaseComm`` ipywidgets uses."""

    kernel = "recording"  # ipywidgets only sends when ``comm.kernel`` is truthy

    def __init__(self, log: WireLog, data: dict[str, Any] | None = None, **_: Any) -> None:
        self.log = log
        self.comm_id = uuid.uuid4().hex  # as long as ipykernel's, so byte counts are real
        self._msg_callback: Callable[[dict[str, Any]], None] | None = None
        self.closed = False
        log.record("open", self.comm_id, data or {})

    def send(
        self, data: dict[str, Any] | None = None, metadata: Any = None, buffers: Any = None
    ) -> None:
        if not self.closed:
            self.log.record(data.get("method", "msg") if data else "msg", self.comm_id, data or {})

    def close(
        self, data: Any = None, metadata: Any = None, buffers: Any = None, deleting: bool = False
    ) -> None:
        if not self.closed:
            self.closed = True
            self.log.record("close", self.comm_id, {})

    def on_msg(self, callback: Callable[[dict[str, Any]], None]) -> None:
        self._msg_callback = callback

    def on_close(self, callback: Any) -> None:
        pass

    def handle_msg(self, data: dict[str, Any]) -> None:
        """Deliver a frontend message (e.g. a button click) to the widget."""
        if self._msg_callback is not None:
            self._msg_callback({"content": {"data": data}, "buffers": []})


@contextmanager
def recording_comms(
    clock: Callable[[], float] | None = None, *, keep: bool = True
) -> Iterator[WireLog]:
    """Within the block, every new widget gets a :class:`RecordingComm`."""
    log = WireLog(clock=clock, keep=keep)
    original = comm_pkg.create_comm
    comm_pkg.create_comm = lambda **kwargs: RecordingComm(log, **kwargs)
    try:
        yield log
    finally:
        comm_pkg.create_comm = original


def click(widget: Any) -> None:
    """Simulate a frontend click on an ``ipywidgets.Button``."""
    widget.comm.handle_msg({"method": "custom", "content": {"event": "click"}})


class EventFactory:
    """Builds the events of one run by hand, numbered like a real run."""

    def __init__(
        self,
        *,
        run_id: str = "run_test",
        thread_id: str = "thread_test",
        model: str = "local::smollm2",
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.run_id, self.thread_id, self.model = run_id, thread_id, model
        self.clock = clock or (lambda: 0.0)
        self.seq = 0
        self._msgs = itertools.count(1)

    def event(self, name: str, data: Any) -> Any:
        from ..events import Event

        self.seq += 1
        return Event(
            seq=self.seq,
            event=name,
            data=data,
            run_id=self.run_id,
            thread_id=self.thread_id,
            at=self.clock(),
        )

    def run(self, status: str, **extra: Any) -> Any:
        data = {
            "id": self.run_id,
            "object": "thread.run",
            "thread_id": self.thread_id,
            "assistant_id": "agent",
            "status": status,
            "model": self.model,
            **extra,
        }
        return self.event(f"thread.run.{status}", data)

    def start(self) -> list[Any]:
        return [self.run("created"), self.run("queued"), self.run("in_progress")]

    def message_created(self, message_type: str | None = None) -> tuple[str, Any]:
        msg_id = f"msg_{next(self._msgs)}"
        meta = {"message_type": message_type} if message_type else {}
        return msg_id, self.event(
            "thread.message.created",
            {
                "id": msg_id,
                "object": "thread.message",
                "thread_id": self.thread_id,
                "role": "assistant",
                "status": "in_progress",
                "content": [],
                "metadata": meta,
            },
        )

    def delta(self, msg_id: str, text: str) -> Any:
        from ..events import message_delta

        return self.event("thread.message.delta", message_delta(msg_id, text))

    def message_done(
        self, msg_id: str, text: str, *, message_type: str | None = None, status: str = "completed"
    ) -> Any:
        from ..events import text_content

        meta = {"message_type": message_type} if message_type else {}
        name = "thread.message.completed" if status == "completed" else "thread.message.incomplete"
        data = {
            "id": msg_id,
            "object": "thread.message",
            "thread_id": self.thread_id,
            "role": "assistant",
            "status": status,
            "content": text_content(text),
            "metadata": meta,
        }
        if status == "incomplete":
            data["incomplete_details"] = {"reason": "cancelled"}
        return self.event(name, data)

    def streamed_message(
        self, chunks: list[str], *, message_type: str | None = None, status: str = "completed"
    ) -> Iterator[Any]:
        """created, one delta per chunk, completed (with the joined text)."""
        msg_id, created = self.message_created()
        yield created
        for chunk in chunks:
            yield self.delta(msg_id, chunk)
        yield self.message_done(msg_id, "".join(chunks), message_type=message_type, status=status)

    def end(self, status: str = "completed", **extra: Any) -> list[Any]:
        return [self.run(status, **extra), self.event("done", "[DONE]")]


class ManualClock:
    """A clock that moves only when told: ``clock.now += 0.5``."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def feed_paced(view: Any, clock: ManualClock, events: Any, *, rate: float) -> list[float]:
    """Feed ``events`` to ``view`` as if deltas arrived at ``rate`` per second.

    After each event ``view.tick()`` runs, as the view's timer thread would
    once a deferred refresh falls due; at the end the clock jumps ahead for
    the trailing refresh. Returns the clock time of every refresh.
    """
    refreshes: list[float] = []

    def note(before: int) -> None:
        if view.throttle.flushes != before:
            refreshes.append(clock.now)

    for event in events:
        before = view.throttle.flushes
        view(event)
        view.tick()
        note(before)
        if event.event == "thread.message.delta":
            clock.now += 1.0 / rate
    clock.now += 1.0
    before = view.throttle.flushes
    view.tick()
    note(before)
    return refreshes


def busiest_second(times: list[float]) -> int:
    """The most ``times`` inside any one-second window (sorted input)."""
    best, lo = 0, 0
    for hi, t in enumerate(times):
        while t - times[lo] >= 1.0:
            lo += 1
        best = max(best, hi - lo + 1)
    return best
