"""Sharing the embedded model between runs that stream at the same time: one model thread.

Two columns of ``%%near_agent A B`` (or ``nearnb.compare``) on the embedded model
should both move at once, not one after the other. A ``Llama`` object has one
KV cache, so two generations cannot interleave on it; the options measured on
the project machine (2 cores, SmolLM2-135M Q4_1, ``n_ctx`` 4096):

* **save/restore state** on one ``Llama`` between batches: ``save_state()``
  took 145 ms and ``load_state()`` 180 ms (it copies the logits buffer, 20 MB,
  and the KV cache), against ~10 ms per token - a switch would cost more than
  the batch it serves. llama-cpp-python also keeps the sampler (with its
  repeat-penalty history) on the object, so a switch would have to swap it too.
* **one ``Llama`` per concurrent stream** (what this module does): a second
  instance costs ~110-150 MB of private memory (its KV cache and compute
  buffers; the weights are a shared read-only mmap of the same file) and 0.2 s
  to load once; switching between them costs nothing.

**Where the tokens are computed matters as much.** llama.cpp computes on the CPU
with OpenMP, and libgomp keeps a team of worker threads per thread that starts
parallel work. Measured: 96 tokens took 1.4 s from one thread, but 3.7-3.9 s
from a second thread while the first was still alive - even when the two never
computed at the same time. Each run executes in a thread of its own, so two
runs side by side took 2.4x the time of the same two one after the other, and
per-token turns or 2 s time slices between them changed nothing.

So every llama.cpp call of a pool goes through one long-lived thread,
:class:`ModelThread`, in arrival order: a stream asks it for one token at a time
(and asks again only once it has the previous one), so streams running at once
alternate token by token - fair turns for free - and the only OpenMP team is the
model thread's. Two streams of 96 tokens side by side then took 2.83 s against
2.77 s one after the other. ``complete()`` (no stream) cannot be split: it is
one call, a whole generation long.
"""

from __future__ import annotations

import contextlib
import os
import queue
import sys
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from .base import ProviderError

#: How many ``Llama`` instances of one GGUF may exist at once (one per concurrent run).
DEFAULT_INSTANCES = 4
T = TypeVar("T")


def instance_limit() -> int:
    """``$NEARNB_LOCAL_INSTANCES`` (default 4): concurrent generations on the embedded model."""
    raw = os.environ.get("NEARNB_LOCAL_INSTANCES", "").strip()
    return int(raw) if raw.isdigit() and int(raw) > 0 else DEFAULT_INSTANCES


class _Call:
    """One request to the model thread and, once done, its outcome."""

    __slots__ = ("done", "error", "fn", "value")

    def __init__(self, fn: Callable[[], Any]) -> None:
        self.fn = fn
        self.done = threading.Event()
        self.value: Any = None
        self.error: BaseException | None = None


class ModelThread:
    """The one thread that runs a pool's llama.cpp work, one call at a time, in order.

    :meth:`call` hands a function over and blocks until it has run there (its
    exception, ``StopIteration`` included, is raised in the caller). Calls made
    on the model thread itself, after :meth:`stop` (at exit) or while the
    interpreter shuts down run at once on the caller's thread: waiting on a
    thread that can no longer run would hang.
    """

    def __init__(self, name: str = "nearnb-model") -> None:
        self._name = name
        self._queue: queue.SimpleQueue[_Call] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._stopped = False
        #: Calls run so far (tests read it to see turns taken).
        self.turns = 0

    def call(self, fn: Callable[[], T]) -> T:
        if self._stopped or sys.is_finalizing() or threading.current_thread() is self._thread:
            return fn()
        self._ensure_started()
        request = _Call(fn)
        self._queue.put(request)
        request.done.wait()
        if request.error is not None:
            error, request.error = request.error, None  # no cycle through the traceback
            raise error
        return request.value  # type: ignore[no-any-return]

    @property
    def waiting(self) -> int:
        """Calls queued and not started yet."""
        return self._queue.qsize()

    def stop(self) -> None:
        """From now on calls run on their caller's thread (the process is exiting)."""
        self._stopped = True

    def _ensure_started(self) -> None:
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
                self._thread.start()

    def _loop(self) -> None:
        while True:
            request = self._queue.get()
            self.turns += 1
            try:
                request.value = request.fn()
            except BaseException as exc:  # handed to the caller, whatever it is
                request.error = exc
            finally:
                request.fn = None  # type: ignore[assignment]
                request.done.set()


_SHARED = ModelThread()


def model_thread() -> ModelThread:
    """The process's one model thread: every pool and the embedder compute on it, so
    there is only ever one OpenMP team (see the module docstring)."""
    return _SHARED


class ModelPool:
    """The ``Llama`` instances of one GGUF, one per concurrent generation, and their thread.

    ``checkout`` refuses (instead of deadlocking) when the calling thread already
    holds an instance, e.g. a ``complete()`` while this thread still reads a
    stream: that stream can only advance on this thread, so waiting would hang.
    """

    def __init__(self, factory: Callable[[], Any], limit: int | None = None) -> None:
        self.worker = model_thread()
        self._factory = lambda: self.worker.call(factory)  # loading computes too
        self.limit = limit or instance_limit()
        self.first = self._factory()  # loaded eagerly: a missing or bad file fails at once
        self.instances = 1
        self._idle: list[Any] = [self.first]
        self._owners: dict[int, int] = {}  # id(llm) -> thread that holds it
        self._cond = threading.Condition()

    def checkout(self) -> Any:
        """An instance for this thread's generation (a new one while under the limit)."""
        me = threading.get_ident()
        with self._cond:
            if me in self._owners.values():
                raise ProviderError(
                    "the local model is busy with a stream this thread has not finished; "
                    "read it to the end or close() it first",
                    provider="local",
                )
            while not self._idle and self.instances >= self.limit:
                self._cond.wait()
            if self._idle:
                llm = self._idle.pop()
                self._owners[id(llm)] = me
                return llm
            self.instances += 1  # reserved: load outside the lock
        try:
            llm = self._factory()
        except BaseException:
            with self._cond:
                self.instances -= 1
                self._cond.notify()
            raise
        with self._cond:
            self._owners[id(llm)] = me
        return llm

    def checkin(self, llm: Any) -> None:
        """Give an instance back (from any thread: a stream may be closed elsewhere)."""
        with self._cond:
            self._owners.pop(id(llm), None)
            self._idle.append(llm)
            self._cond.notify()

    def close_idle(self) -> None:
        """Free the idle instances now (at exit: see :func:`nearnb.providers.local.load`).

        llama-cpp-python frees a model in ``Llama.__del__``; left to interpreter
        teardown, that runs after the module globals it needs are gone and
        prints "Exception ignored in Llama.__del__" once per instance.
        """
        self.worker.stop()
        with self._cond:
            idle, self._idle = self._idle, []
        for llm in idle:
            with contextlib.suppress(Exception):
                llm.close()
