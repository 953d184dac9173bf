"""Runs: the orchestration that turns an agent execution into one event stream.

Layer 4, the top of the core. ``start_run`` validates the agent, records the
user message, builds the run's lower layers and executes ``agent.py`` on a
worker thread:

* layer 1, :class:`~nearnb.runlog.RunLog`: numbered events, sinks, the cancel flag;
* layer 2, :class:`~nearnb.messages.MessageSequencer` (message and step
  events, settling) and :class:`~nearnb.modelchoice.ModelChoice`;
* layer 3, :class:`~nearnb.environment.Environment` and its stream handlers.

Producers only emit events. The store learns of the run from the store sink
(:mod:`nearnb.persist`), which writes each batch of events and the rows they
imply in one transaction and only then hands them to durable listeners (the
hub). Views and other subscribers read the log through their own cursors, on
their own threads (:mod:`nearnb.sinks`), so none of them can slow or fail the agent.

Why a worker thread: the caller's thread stays free to wait in whatever way
suits it — the CLI blocks, a notebook cell can keep serving widget comm
messages (the Stop button) — and cancellation is a flag checked at every
chunk and every ``env`` call, so it is thread-safe by construction.

How runs end (NEAR reported ``completed`` for all of these):
* ``agent.py`` returns -> ``completed`` (unconsumed streams are drained first);
* it raises -> ``failed`` with ``last_error`` and the traceback kept;
* cancel / KeyboardInterrupt -> ``cancelled``, the partial message stored as
  ``incomplete``.
A run ends (``RunHandle.done``) only once the store holds its whole log.

Other processes reach a run through the event bus (:mod:`nearnb.bus`): the
store sink publishes each committed batch to it, and this process's
:class:`~nearnb.bus_watch.RunWatcher` beats for the run and cancels it when
anyone, anywhere, asks the bus to (a hub's cancel route, an attached Stop).
"""

from __future__ import annotations

import logging
import os
import threading
import time
import traceback as tb
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .accumulator import Origin
from .agents import Agent, load_agent
from .bus import EventBus, bus_for, host_name
from .bus_watch import watcher
from .children import run_child
from .environment import Environment, RunPorts
from .events import Event, Message, Run, new_id, now, text_content
from .execution import exec_agent
from .messages import MessageSequencer
from .modelchoice import ModelChoice
from .persist import DurableListener, StoreSink
from .reducer import NOTICE_MESSAGE_TYPE, RunState
from .result import RunResult
from .runhandle import RunHandle
from .runlog import RunCancelled, RunLog
from .sinks import QueuedSink, per_event
from .store import Store, default_store

__all__ = ["RunCancelled", "RunContext", "RunHandle", "RunResult", "run_agent", "start_run"]

logger = logging.getLogger("nearnb.runs")

EventCallback = Callable[[Event], None]

#: How long the end of a run waits for the store to hold its whole log.
STORE_DRAIN_TIMEOUT = 60.0


class RunContext:
    """One run's layers, wired together, and its lifecycle. Thread-safe."""

    def __init__(
        self,
        *,
        store: Store,
        agent: Agent,
        thread_id: str,
        model: str | None,
        provider: str | None,
        bus: EventBus | None = None,
    ) -> None:
        self.store = store
        self.bus = bus if bus is not None else bus_for(store)
        self.agent = agent
        self.thread_id = thread_id
        self.run_id = new_id("run")
        self.assistant_id = agent.identifier
        self.log = RunLog(self.run_id, thread_id)
        self.sequencer = MessageSequencer(
            self.log, Origin(thread_id, self.run_id, self.assistant_id)
        )
        self.choice = ModelChoice(
            agent.defaults, model=model, provider=provider, announce=self._notice
        )
        self.env: Environment | None = None
        self.children: list[RunHandle] = []
        self.required_action: dict[str, Any] | None = None
        self.finished = threading.Event()
        self._end_lock = threading.Lock()
        self._store_sink: QueuedSink | None = None
        self._subscribers: list[QueuedSink] = []
        self._state = RunState()
        self._folded = 0
        self._state_lock = threading.Lock()
        self.run = Run(
            id=self.run_id,
            created_at=now(),
            thread_id=thread_id,
            assistant_id=self.assistant_id,
            status="queued",
            model=model or agent.defaults.model,
            temperature=agent.defaults.model_temperature,
            max_completion_tokens=agent.defaults.model_max_tokens,
            # Who produces this run: a hub expires it if this process dies
            # mid-run (nearnb.liveness).
            metadata={"nearnb.pid": str(os.getpid()), "nearnb.host": host_name()},
        )

    # ------------------------------------------------------------------- sinks

    def open(self, durable: list[DurableListener]) -> None:
        """Start the store sink; ``durable`` listeners get events once they are stored."""
        sink = QueuedSink(StoreSink(self.store, durable, self.bus), name=f"store-{self.run_id}")
        self._store_sink = self.log.attach(sink)
        # From now on a cancel request on the bus stops this run, and it beats.
        watcher().watch(self.run_id, self.bus, self.cancel_requested)

    def subscribe(self, callback: EventCallback, *, replay: bool = True) -> None:
        """Past events first (if ``replay``), then live ones, on the callback's own thread."""
        name = getattr(callback, "__qualname__", type(callback).__name__)
        sink = QueuedSink(per_event(callback), name=f"{name}-{self.run_id}")
        self._subscribers.append(sink)
        self.log.attach(sink, replay=replay)

    def sync_store(self, timeout: float = STORE_DRAIN_TIMEOUT) -> None:
        """Block until the store holds every event emitted so far (read your writes)."""
        sink = self._store_sink
        if sink is not None and not sink.wait_for(self.log.last_seq, timeout):
            logger.warning("nearnb: the store is %.0f s behind run %s", timeout, self.run_id)

    def drain_subscribers(self, timeout: float) -> None:
        """Wait (up to ``timeout`` s in all) for subscribers to take the last events."""
        deadline = time.monotonic() + timeout
        for sink in list(self._subscribers):
            if not sink.close(max(0.0, deadline - time.monotonic())):
                logger.warning("nearnb: %s is still busy after the run ended", sink.name)

    @property
    def events(self) -> list[Event]:
        return self.log.events

    @property
    def state(self) -> RunState:
        """The run's events folded so far (folded lazily, off the agent's hot path)."""
        with self._state_lock:
            events = self.log.events
            while self._folded < len(events):
                self._state.apply(events[self._folded])
                self._folded += 1
            return self._state

    # -------------------------------------------------------------- cancelling

    def cancel(self) -> None:
        self.log.cancel()

    def cancel_requested(self, by: str) -> None:
        """A cancel asked for on the bus (another process): the same as a local Stop."""
        logger.info("nearnb: cancelling %s (requested by %s)", self.run_id, by)
        self.log.cancel()

    # ------------------------------------------------------------------ events

    def _set_status(self, status: str, **fields: Any) -> None:
        self.run = Run.model_validate({**self.run.model_dump(), "status": status, **fields})
        self.log.emit(f"thread.run.{status}", self.run.model_dump(mode="json"))

    def _notice(self, text: str) -> None:
        self.sequencer.reply(text, message_type=NOTICE_MESSAGE_TYPE)
        self.run.metadata["nearnb.notice"] = text[:512]

    # --------------------------------------------------------------- lifecycle

    def execute(self, task: str | None, env_vars: dict[str, str] | None) -> None:
        """Run the agent to its end. Never raises: the outcome is the run status."""
        status, error = "completed", None
        try:
            ports = RunPorts(
                self.log,
                self.sequencer,
                self.choice,
                self.store,
                self.sync_store,
                self._spawn,
                self._request_action,
            )
            self.env = Environment(ports, self.agent, env_vars)
            # Resolve first so in_progress already names the model actually used
            # (and a fallback notice precedes it).
            self.run = self.run.model_copy(update={"model": self.choice.resolve().label})
            self._set_status("in_progress", started_at=now())
            exec_agent(self.agent, self.env, task)
            self.log.check_cancelled()
            self.sequencer.settle_all(drain=True)
        except (RunCancelled, KeyboardInterrupt):
            status = "cancelled"
        except BaseException as exc:  # the agent's failure is the run's outcome
            status, error = "failed", exc
        if status != "completed":
            try:
                self.sequencer.settle_all(drain=False)
            except BaseException:
                logger.exception("nearnb: settling streams of a %s run failed", status)
        self.finish(status, error)

    def _request_action(self, action: dict[str, Any]) -> None:
        self.required_action = action

    def _spawn(self, agent_id: str, query: str | None, thread_mode: Any, run_mode: Any) -> str:
        return run_child(self, agent_id, query, thread_mode, run_mode, start=start_run)

    def finish(self, status: str, error: BaseException | None = None) -> None:
        """Emit the terminal run event and ``done``; return once the store has the log."""
        with self._end_lock:
            if self.log.closed:
                return
            fields: dict[str, Any] = {}
            stamp = now()
            if status == "completed" and self.required_action is not None:
                status = "requires_action"  # env.request_agent_input(): NEAR's hand-over
                fields["required_action"] = self.required_action
            elif status == "completed":
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
            self.log.emit("done", "[DONE]")
            self.log.close()
            watcher().unwatch(self.run_id)
        sink = self._store_sink
        if sink is not None and not sink.close(STORE_DRAIN_TIMEOUT):
            logger.error("nearnb: the store did not take run %s's log in time", self.run_id)
        self.finished.set()

    def abandon(self, error: BaseException) -> None:
        """A start that failed half-way: end what was announced, stop every sink thread."""
        self.log.cancel()
        if self.log.last_seq:
            self.finish("failed", error)  # readers of its first events see it end
        for sink in self.log.close():
            sink.close(STORE_DRAIN_TIMEOUT)
        watcher().unwatch(self.run_id)
        self.finished.set()


def start_run(
    agent: str | os.PathLike[str] | Agent,
    message: str | None = None,
    *,
    thread_id: str | None = None,
    model: str | None = None,
    provider: str | None = None,
    on_event: EventCallback | None = None,
    on_durable: EventCallback | None = None,
    store: Store | None = None,
    env_vars: dict[str, str] | None = None,
    parent_run_id: str | None = None,
) -> RunHandle:
    """Start an agent run on a worker thread and return its handle.

    ``on_event`` gets every event as it happens (on its own thread);
    ``on_durable`` gets each event once the store holds it (the hub publishes
    from there, so a client never sees an event a crash could lose).

    Raises :class:`~nearnb.agents.AgentError` (bad folder or metadata),
    :class:`~nearnb.store.StoreError` (unknown thread) and ValueError (text
    that is not valid Unicode) before anything is written, so a typo loses
    nothing.
    """
    loaded = agent if isinstance(agent, Agent) else load_agent(Path(agent))
    for name, value in (("message", message), ("model", model), ("provider", provider)):
        _check_text(name, value)
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
    if parent_run_id:  # a child run (env.run_agent): its stream says whose
        ctx.run.metadata["nearnb.parent_run_id"] = parent_run_id
    try:
        ctx.open([on_durable] if on_durable is not None else [])
        if on_event is not None:
            ctx.subscribe(on_event)
        ctx.log.emit("thread.run.created", ctx.run.model_dump(mode="json"))
        ctx.log.emit("thread.run.queued", ctx.run.model_dump(mode="json"))
        worker = threading.Thread(
            target=ctx.execute, args=(message, env_vars), name=f"nearnb-{ctx.run_id}", daemon=True
        )
        worker.start()
        # The caller can look the run up (REST, another process) once this returns.
        ctx.sync_store(timeout=10.0)
    except BaseException as exc:
        ctx.abandon(exc)
        raise
    return RunHandle(ctx, worker)


def _check_text(name: str, value: str | None) -> None:
    """Refuse text SQLite and JSON cannot hold (lone surrogates) before anything is written."""
    if value is None:
        return
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string, not {type(value).__name__}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"{name} is not valid Unicode text: {exc.reason} at {exc.start}") from None


def run_agent(
    agent: str | os.PathLike[str] | Agent,
    message: str | None = None,
    *,
    thread_id: str | None = None,
    model: str | None = None,
    provider: str | None = None,
    on_event: EventCallback | None = None,
    on_durable: EventCallback | None = None,
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
        on_durable=on_durable,
        store=store,
        env_vars=env_vars,
    )
    return handle.wait()
