"""Runs: the lifecycle that turns an agent execution into one event stream.

``start_run`` validates the agent, records the user message and a Run in the
store, then executes ``agent.py`` on a worker thread. Everything observable
goes through :meth:`RunContext.emit`, which numbers events (seq 1, 2, 3 ...),
appends them to the store's event log, folds them into a live
:class:`~nearnb.reducer.RunState` and hands them to subscribers (the views,
the hub) as they happen.

Why a worker thread: the caller's thread stays free to wait in whatever way
suits it — the CLI blocks, a notebook cell can keep serving widget comm
messages (the Stop button) — and cancellation is a flag checked at every
chunk and every ``env`` call, so it is thread-safe by construction.

How runs end (NEAR reported ``completed`` for all of these):
* ``agent.py`` returns -> ``completed`` (unconsumed streams are drained first);
* it raises -> ``failed`` with ``last_error`` and the traceback kept;
* cancel / KeyboardInterrupt -> ``cancelled``, the partial message stored as
  ``incomplete``.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import traceback as tb
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .agents import Agent, exec_agent, load_agent
from .events import (
    Event,
    Message,
    Run,
    RunStep,
    attachment_list,
    new_id,
    now,
    text_content,
)
from .reducer import NOTICE_MESSAGE_TYPE, RunState
from .store import EventWriter, Store, default_store

if TYPE_CHECKING:
    from .environment import Environment
    from .providers.base import Resolved
    from .streaming import StreamHandler

logger = logging.getLogger("nearnb.runs")

EventCallback = Callable[[Event], None]

#: NEAR passes these to completions; providers do not take them.
_NEAR_ONLY_KWARGS = ("thread_id", "attachments", "message_type")


class RunCancelled(BaseException):
    """Raised inside agent code when its run is cancelled.

    A ``BaseException`` like ``KeyboardInterrupt``, so an agent's broad
    ``except Exception`` cannot swallow a Stop.
    """


@dataclass
class RunResult:
    """What a finished run produced; the value of a ``%%near_agent`` cell."""

    thread_id: str
    run_id: str
    status: str
    agent: str
    model: str
    messages: list[Message]
    deltas: int
    events: list[Event] = field(repr=False)
    error: str | None = None
    traceback: str | None = field(default=None, repr=False)
    notice: str | None = None

    def __repr__(self) -> str:
        """One line (also ``Out[n]``): the view already shows the answers."""
        answers = len(self.messages)
        parts = [
            self.status,
            self.agent,
            self.model,
            f"{answers} answer{'s' * (answers != 1)}",
            f"{self.deltas:,} deltas",
            f"thread_id={self.thread_id}",
            f"run_id={self.run_id}",
        ]
        if self.error:
            first_line = self.error.strip().splitlines()[0] if self.error.strip() else ""
            parts.append(f"error={first_line!r}")
        return "<RunResult " + " · ".join(p for p in parts if p) + ">"

    @property
    def text(self) -> str:
        """The user-facing answers, separated by blank lines."""
        return "\n\n".join(m.text for m in self.messages)

    @classmethod
    def from_state(cls, state: RunState, events: list[Event], *, agent: str = "") -> RunResult:
        """Build a result from reducer state (used by live runs and by attach)."""
        messages = []
        for event in events:
            if event.event in ("thread.message.completed", "thread.message.incomplete"):
                data = event.data if isinstance(event.data, dict) else {}
                if "content" not in data:
                    continue
                message = Message.model_validate(data)
                if message.role == "assistant" and not message.hidden:
                    messages.append(message)
        return cls(
            thread_id=state.thread_id or "",
            run_id=state.run_id or "",
            status=state.status,
            agent=agent or state.assistant_id,
            model=state.model,
            messages=messages,
            deltas=state.deltas,
            events=events,
            error=state.error,
            traceback=state.traceback,
            notice=state.notices[0] if state.notices else None,
        )


def _deliver(callback: EventCallback, event: Event) -> None:
    try:
        callback(event)
    except Exception:  # a broken view must not break the run
        logger.exception("nearnb: event subscriber %r failed", callback)


class RunContext:
    """The run as the Environment and StreamHandlers see it. Thread-safe."""

    def __init__(
        self,
        *,
        store: Store,
        agent: Agent,
        thread_id: str,
        model: str | None,
        provider: str | None,
    ) -> None:
        self.store = store
        self.agent = agent
        self.thread_id = thread_id
        self.run_id = new_id("run")
        self.assistant_id = agent.identifier
        self.model = model
        self.provider = provider
        self.state = RunState()
        self.events: list[Event] = []
        self.env: Environment | None = None
        self.cancelled = threading.Event()
        self.finished = threading.Event()
        self._lock = threading.RLock()
        self._seq = 0
        self._closed = False
        self._subscribers: list[EventCallback] = []
        self._writer = EventWriter(store)
        self._handlers: list[StreamHandler] = []
        self._resolved: dict[str, Resolved] = {}
        self._notices: set[str] = set()
        self.run = Run(
            id=self.run_id,
            created_at=now(),
            thread_id=thread_id,
            assistant_id=self.assistant_id,
            status="queued",
            model=model or agent.defaults.model,
            temperature=agent.defaults.model_temperature,
            max_completion_tokens=agent.defaults.model_max_tokens,
            # Who produces this run: a hub tailing the store expires it if this
            # process dies mid-run (nearnb.liveness).
            metadata={"nearnb.pid": str(os.getpid()), "nearnb.host": socket.gethostname()},
        )

    # ------------------------------------------------------------------ events

    def emit(self, name: str, data: Any) -> Event | None:
        """Number, log, fold and publish one event. Dropped after the run ended."""
        with self._lock:
            if self._closed:
                return None
            self._seq += 1
            event = Event.model_construct(
                seq=self._seq,
                event=name,
                data=data,
                run_id=self.run_id,
                thread_id=self.thread_id,
                at=time.time(),
            )
            self.events.append(event)
            self._writer(event)
            self.state.apply(event)
            for callback in self._subscribers:
                _deliver(callback, event)
            return event

    def subscribe(self, callback: EventCallback, *, replay: bool = True) -> None:
        """Past events first (if ``replay``), then live ones; no gap, no repeat."""
        with self._lock:
            if replay:
                for event in self.events:
                    _deliver(callback, event)
            self._subscribers.append(callback)

    def _set_status(self, status: str, **fields: Any) -> None:
        self.run = Run.model_validate({**self.run.model_dump(), "status": status, **fields})
        self.store.save_run(self.run)
        self.emit(f"thread.run.{status}", self.run.model_dump(mode="json"))

    # -------------------------------------------------------------- cancelling

    def cancel(self) -> None:
        self.cancelled.set()

    def check_cancelled(self) -> None:
        if self.cancelled.is_set():
            raise RunCancelled("run cancelled")

    # ------------------------------------------------------------------ models

    def resolve(self, model: str = "") -> Resolved:
        """Provider and model for a completion; emits a fallback notice once."""
        from .providers import resolve

        with self._lock:
            resolved = self._resolved.get(model)
            if resolved is None:
                defaults = self.agent.defaults
                if model:
                    resolved = resolve(model, self.provider or defaults.model_provider or None)
                else:
                    resolved = resolve(
                        self.model or defaults.model or None,
                        self.provider or defaults.model_provider or None,
                    )
                self._resolved[model] = resolved
        if resolved.notice and resolved.notice not in self._notices:
            self._notices.add(resolved.notice)
            self._notice(resolved.notice)
        return resolved

    def params(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        """Completion parameters: per-call values win over metadata defaults."""
        params = {k: v for k, v in kwargs.items() if k not in _NEAR_ONLY_KWARGS}
        defaults = self.agent.defaults
        if params.get("temperature") is None and defaults.model_temperature is not None:
            params["temperature"] = defaults.model_temperature
        if params.get("max_tokens") is None and defaults.model_max_tokens is not None:
            params["max_tokens"] = defaults.model_max_tokens  # the embedded model caps it
        return {k: v for k, v in params.items() if v is not None}

    def reply(
        self,
        text: str,
        *,
        thread_id: str | None = None,
        attachments: list[Any] | None = None,
        message_type: str | None = None,
    ) -> Message:
        """Store a whole (not streamed) assistant message of this run.

        On the run's own thread it is announced like any message: finished
        streams settle first, then ``created`` and ``completed``. On another
        thread it is only stored: events belong to this run's thread.
        """
        message = Message(
            id=new_id("msg"),
            created_at=now(),
            thread_id=thread_id or self.thread_id,
            role="assistant",
            content=text_content(text),
            assistant_id=self.assistant_id,
            run_id=self.run_id,
            attachments=attachment_list(attachments),
            metadata={"message_type": message_type} if message_type else {},
            completed_at=now(),
        )
        if message.thread_id != self.thread_id:
            return self.store.save_message(message)
        self.before_new_message(None)
        data = message.model_dump(mode="json")
        self.emit("thread.message.created", {**data, "status": "in_progress", "content": []})
        self.store.save_message(message)
        self.emit("thread.message.completed", data)
        return message

    def _notice(self, text: str) -> None:
        self.reply(text, message_type=NOTICE_MESSAGE_TYPE)
        self.run.metadata["nearnb.notice"] = text[:512]

    # ----------------------------------------------------------------- streams

    def track(self, handler: StreamHandler) -> None:
        with self._lock:
            self._handlers.append(handler)

    def before_new_message(self, starting: StreamHandler | None) -> None:
        """A new message begins: finished streams nobody replied with become
        intermediate messages now, so their ``completed`` precedes it."""
        with self._lock:
            handlers = [h for h in self._handlers if h is not starting]
        for handler in handlers:
            if handler.done:
                handler.settle()

    def settle_all(self, *, drain: bool) -> None:
        """End of run: drain (on success) and settle every stream handler."""
        with self._lock:
            handlers, self._handlers = list(self._handlers), []
        for handler in handlers:
            if drain:
                handler.drain()
            if handler.done:
                handler.settle()
            else:
                handler._abort(RunCancelled() if self.cancelled.is_set() else RuntimeError())

    # ------------------------------------------------------------------- tools

    def run_tool_step(
        self, calls: list[dict[str, Any]], run: Callable[[str, str], str]
    ) -> list[str]:
        """Run tool calls as one ``tool_calls`` run step with its outputs."""
        self.check_cancelled()
        step = RunStep(
            id=new_id("step"),
            created_at=now(),
            run_id=self.run_id,
            thread_id=self.thread_id,
            assistant_id=self.assistant_id,
            type="tool_calls",
            step_details={
                "type": "tool_calls",
                "tool_calls": [
                    {
                        "id": c["id"],
                        "type": "function",
                        "function": {**c["function"], "output": None},
                    }
                    for c in calls
                ],
            },
        )
        data = step.model_dump(mode="json")
        self.emit("thread.run.step.created", data)
        self.emit("thread.run.step.in_progress", data)
        outputs = [run(c["function"]["name"], c["function"]["arguments"]) for c in calls]
        for call, output in zip(data["step_details"]["tool_calls"], outputs, strict=True):
            call["function"]["output"] = output
        self.emit(
            "thread.run.step.completed", {**data, "status": "completed", "completed_at": now()}
        )
        return outputs

    # --------------------------------------------------------------- lifecycle

    def execute(self, task: str | None, env_vars: dict[str, str] | None) -> None:
        """Run the agent to its end. Never raises: the outcome is the run status."""
        from .environment import Environment

        status, error = "completed", None
        try:
            self.env = Environment(self, self.agent, env_vars)
            # Resolve first so in_progress already names the model actually used
            # (and a fallback notice precedes it).
            self.run = self.run.model_copy(update={"model": self.resolve().label})
            self._set_status("in_progress", started_at=now())
            exec_agent(self.agent, self.env, task)
            self.check_cancelled()
            self.settle_all(drain=True)
        except (RunCancelled, KeyboardInterrupt):
            status = "cancelled"
        except BaseException as exc:  # the agent's failure is the run's outcome
            status, error = "failed", exc
        if status != "completed":
            try:
                self.settle_all(drain=False)
            except BaseException:
                logger.exception("nearnb: settling streams of a %s run failed", status)
        self.finish(status, error)

    def finish(self, status: str, error: BaseException | None = None) -> None:
        """Emit the terminal run event and ``done``, persist, release waiters."""
        with self._lock:
            if self._closed:
                return
            fields: dict[str, Any] = {}
            stamp = now()
            if status == "completed":
                fields["completed_at"] = stamp
            elif status == "cancelled":
                fields["cancelled_at"] = stamp
            elif status == "failed":
                fields["failed_at"] = stamp
                message = f"{type(error).__name__}: {error}" if error else "run failed"
                fields["last_error"] = {"code": "server_error", "message": message}
                if error is not None:
                    trace = "".join(tb.format_exception(error))
                    fields["metadata"] = {**self.run.metadata, "nearnb.traceback": trace}
            self._set_status(status, **fields)
            self.emit("done", "[DONE]")
            self._closed = True
        self._writer.close()
        self.finished.set()


class RunHandle:
    """A run executing in the background: observe it, cancel it, wait for it."""

    def __init__(self, ctx: RunContext, thread: threading.Thread) -> None:
        self._ctx = ctx
        self._thread = thread

    thread_id = property(lambda self: self._ctx.thread_id)
    run_id = property(lambda self: self._ctx.run_id)
    agent = property(lambda self: self._ctx.agent)
    state = property(lambda self: self._ctx.state)
    events = property(lambda self: list(self._ctx.events))

    @property
    def done(self) -> bool:
        return self._ctx.finished.is_set()

    def subscribe(self, callback: EventCallback, *, replay: bool = True) -> None:
        self._ctx.subscribe(callback, replay=replay)

    def cancel(self, reason: str = "user") -> None:
        """Ask the run to stop; safe from any thread, idempotent."""
        logger.info("nearnb: cancelling %s (%s)", self.run_id, reason)
        self._ctx.cancel()

    def wait(self, timeout: float | None = None, *, grace: float = 10.0) -> RunResult:
        """Block until the run ends and return its result.

        Ctrl-C / a kernel interrupt while waiting cancels the run. If the agent
        is stuck in a call that cannot see the cancel flag, the run is marked
        cancelled after ``grace`` seconds and its late events are dropped.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            # Short waits in a loop: the main thread then runs Python code often
            # enough for any interrupt (signal or simulated) to land promptly.
            while not self._ctx.finished.wait(0.1):
                if deadline is not None and time.monotonic() >= deadline:
                    break
        except KeyboardInterrupt:
            self.cancel("interrupted")
            if not self._ctx.finished.wait(grace):
                self._ctx.settle_all(drain=False)
                self._ctx.finish("cancelled")
        return self.result()

    def result(self) -> RunResult:
        return RunResult.from_state(
            self._ctx.state, list(self._ctx.events), agent=self._ctx.agent.name
        )

    def __repr__(self) -> str:
        return f"<RunHandle {self.run_id} {self.state.status} deltas={self.state.deltas}>"


def start_run(
    agent: str | os.PathLike[str] | Agent,
    message: str | None = None,
    *,
    thread_id: str | None = None,
    model: str | None = None,
    provider: str | None = None,
    on_event: EventCallback | None = None,
    store: Store | None = None,
    env_vars: dict[str, str] | None = None,
) -> RunHandle:
    """Start an agent run on a worker thread and return its handle.

    Raises :class:`~nearnb.agents.AgentError` (bad folder or metadata) and
    :class:`~nearnb.store.StoreError` (unknown thread) before anything is
    written, so a typo loses nothing.
    """
    loaded = agent if isinstance(agent, Agent) else load_agent(Path(agent))
    store = store or default_store()
    thread = store.require_thread(thread_id) if thread_id else store.create_thread()
    if message is not None:
        store.save_message(
            Message(
                id=new_id("msg"),
                created_at=now(),
                thread_id=thread.id,
                role="user",
                content=text_content(message),
                completed_at=now(),
            )
        )
    ctx = RunContext(store=store, agent=loaded, thread_id=thread.id, model=model, provider=provider)
    if on_event is not None:
        ctx.subscribe(on_event)
    store.save_run(ctx.run)
    ctx.emit("thread.run.created", ctx.run.model_dump(mode="json"))
    ctx.emit("thread.run.queued", ctx.run.model_dump(mode="json"))
    worker = threading.Thread(
        target=ctx.execute, args=(message, env_vars), name=f"nearnb-{ctx.run_id}", daemon=True
    )
    handle = RunHandle(ctx, worker)
    worker.start()
    return handle


def run_agent(
    agent: str | os.PathLike[str] | Agent,
    message: str | None = None,
    *,
    thread_id: str | None = None,
    model: str | None = None,
    provider: str | None = None,
    on_event: EventCallback | None = None,
    store: Store | None = None,
    env_vars: dict[str, str] | None = None,
) -> RunResult:
    """Run an agent to completion and return its :class:`RunResult`."""
    handle = start_run(
        agent,
        message,
        thread_id=thread_id,
        model=model,
        provider=provider,
        on_event=on_event,
        store=store,
        env_vars=env_vars,
    )
    return handle.wait()
