"""Sharing the embedded model between runs that stream at the same time: fair turns.

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
  instance costs ~110 MB of private memory (its KV cache and compute buffers;
  the weights are a shared read-only mmap of the same file) and 0.2 s to load
  once; switching costs nothing.
* **both computing at once** is what must *not* happen: llama.cpp's threads spin
  at barriers, so two generations with 2 threads each on 2 cores fall far below
  half speed each. Hence :class:`Turns`.

So the instances are pooled (:class:`ModelPool`, at most
``$NEARNB_LOCAL_INSTANCES``, default 4; a stream beyond that waits for one to
come back) and every token is computed under :class:`Turns`, a first-come
first-served lock: a stream takes the turn for one ``next()`` (one token) and
gives it back, and a waiting stream goes before the one that just had it. Two
streams thus alternate token by token, and the consumer's own work on a chunk
(emitting events) overlaps the other stream's compute. ``complete()`` (no
stream) cannot be split: it takes one turn for its whole generation.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from .base import ProviderError

#: How many ``Llama`` instances of one GGUF may exist at once (one per concurrent run).
DEFAULT_INSTANCES = 4


def instance_limit() -> int:
    """``$NEARNB_LOCAL_INSTANCES`` (default 4): concurrent generations on the embedded model."""
    raw = os.environ.get("NEARNB_LOCAL_INSTANCES", "").strip()
    return int(raw) if raw.isdigit() and int(raw) > 0 else DEFAULT_INSTANCES


class Turns:
    """A first-come first-served lock: whoever has waited longest goes next.

    ``threading.Lock`` is not fair - a thread that releases and at once asks
    again usually wins, which would let one stream run to its end while the
    other starves. Here each ``acquire`` takes a ticket and the turn goes in
    ticket order, so two streams that each take a turn per token alternate.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._queue: deque[object] = deque()
        self._busy = False
        #: Turns handed over so far (the tests read it; cheap to keep).
        self.turns = 0

    def acquire(self) -> None:
        ticket = object()
        with self._cond:
            self._queue.append(ticket)
            while self._busy or self._queue[0] is not ticket:
                self._cond.wait()
            self._queue.popleft()
            self._busy = True
            self.turns += 1

    def release(self) -> None:
        with self._cond:
            self._busy = False
            if self._queue:
                self._cond.notify_all()

    @property
    def waiting(self) -> int:
        """Streams waiting for a turn now."""
        with self._cond:
            return len(self._queue)

    def __enter__(self) -> Turns:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class ModelPool:
    """The ``Llama`` instances of one GGUF, one per concurrent generation, and their turns.

    ``checkout`` refuses (instead of deadlocking) when the calling thread already
    holds an instance, e.g. a ``complete()`` while this thread still reads a
    stream: that stream can only advance on this thread, so waiting would hang.
    """

    def __init__(self, factory: Callable[[], Any], limit: int | None = None) -> None:
        self._factory = factory
        self.limit = limit or instance_limit()
        self.first = factory()  # loaded eagerly: a missing or bad file fails at once
        self.instances = 1
        self._idle: list[Any] = [self.first]
        self._owners: dict[int, int] = {}  # id(llm) -> thread that holds it
        self._cond = threading.Condition()
        self.turns = Turns()

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
        with self._cond:
            idle, self._idle = self._idle, []
        for llm in idle:
            with contextlib.suppress(Exception):
                llm.close()
