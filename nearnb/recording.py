"""Recording a run's provider traffic, so any run can become an offline fixture.

Every request a run's agent makes (messages, model, parameters; never a key
or a base URL) and everything that came back (each streamed chunk, or the
whole completion, or the error) is kept with the run in the store table
``recorded_calls``, keyed by run id and call number in request order. Row 0
is the run's recording header: the agent's identity and ``metadata.json``
and where the thread stood when the run began, which export needs and the
store's run row does not hold.

Cost on the agent's hot path, per chunk: for an HTTP stream, keeping the
chunk's JSON text exactly as it came over the wire (the transport has it and
appends it to a list: :meth:`~nearnb.providers.openai_compat.SSEChunkStream.observe`,
so the stream is not wrapped at all); for other sources, a wrapper and one
pydantic-core serialisation (~4-7 us). The call's row is written in one
transaction when the stream ends, an HTTP stream's chunks with their common
shape written once (:mod:`nearnb.wirepack`: 10.7 MB for 50,000 chunks
became under 1 MB, and the write most of recording's cost went with it),
packed in blocks of 2,048 as they come, so a long stream holds its content
literals rather than all its texts.
Measured with bench_pipeline's run, serialising every chunk cost the run
1.3-1.5x (the serialiser's own time, amplified by the run's other threads),
keeping chunk objects to serialise later cost as much (a few hundred live
chunk objects slow every garbage collection), and even a wrapper that only
passes chunks on cost a tenth.
``NEARNB_RECORD=0`` turns recording off.

:class:`Recorder` belongs to one run's :class:`~nearnb.modelchoice.ModelChoice`,
which wraps every provider it resolves with :meth:`Recorder.wrap`.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from . import replayfile, wirepack
from .store import Store

if TYPE_CHECKING:
    from .providers.base import ChunkStream, Provider, Resolved

logger = logging.getLogger("nearnb.recording")

RECORD_ENV = "NEARNB_RECORD"


def recording_enabled() -> bool:
    """False when ``NEARNB_RECORD`` is ``0``/``false``/``off``/``no``."""
    return os.environ.get(RECORD_ENV, "1").strip().lower() not in ("0", "false", "off", "no")


def chunk_json(obj: Any) -> bytes:
    """A chunk (or completion) as JSON bytes: the fields its source set, in one core call."""
    try:
        return obj.__pydantic_serializer__.to_json(obj, exclude_unset=True, warnings=False)
    except Exception:  # a leniently constructed object the schema cannot serialise
        data = obj.model_dump(mode="json", exclude_unset=True, warnings=False)
        return json.dumps(data, default=str, ensure_ascii=False).encode()


class Recorder:
    """One run's recording: numbers its calls and writes them to the store. Thread-safe.

    ``owner`` is the run (anything with ``store``, ``run_id``, ``thread_id`` and
    ``agent``); read lazily, so a recorder can be made before the run is whole.
    Without one (a ModelChoice outside a run) nothing is recorded.
    """

    def __init__(self, owner: Any) -> None:
        self._owner = owner if all(
            hasattr(owner, a) for a in ("store", "run_id", "thread_id", "agent")
        ) else None  # fmt: skip
        self._numbers = itertools.count(1)
        self._lock = threading.Lock()
        self._started = False
        self._shared: dict[Any, Any] = {}

    @classmethod
    def of(cls, announce: Any) -> Recorder:
        """The recorder for the run whose notice callback ``announce`` is (a bound method)."""
        return cls(getattr(announce, "__self__", None))

    @property
    def active(self) -> bool:
        return self._owner is not None and recording_enabled()

    def wrap(self, resolved: Resolved, model: str) -> Resolved:
        """``resolved`` with its provider recorded; ``model`` is what the run asked for.

        A provider with per-run state (a replay's position in its file, named by
        ``per_run_key``) is shared by every model name this run resolves.
        """
        key = getattr(resolved.provider, "per_run_key", None)
        if key is not None:
            with self._lock:
                shared = self._shared.setdefault(key, resolved.provider)
            resolved = replace(resolved, provider=shared)
        if not self.active:
            return resolved
        self._start(resolved)
        provider = RecordingProvider(resolved.provider, self, model, resolved.label)
        return replace(resolved, provider=provider)

    # ------------------------------------------------------------------ store

    def _start(self, resolved: Resolved) -> None:
        """Row 0, once: the agent and where the thread stood (export needs both)."""
        with self._lock:
            if self._started:
                return
            self._started = True
        try:
            header = self._header(resolved)
        except Exception:  # like a failed write: the run goes on, its export guesses the rest
            logger.exception("nearnb: could not record run %s's header", self._owner.run_id)
            return
        self._save(0, header, None, expire=True)

    def _header(self, resolved: Resolved) -> dict[str, Any]:
        owner = self._owner
        agent = owner.agent
        try:
            metadata = json.loads((agent.path / "metadata.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            metadata = agent.metadata.model_dump(mode="json")
        store: Store = owner.store
        last = store.read(
            "SELECT id FROM messages WHERE thread_id = ? AND (run_id IS NULL OR run_id != ?) "
            "ORDER BY n DESC LIMIT 1",
            (owner.thread_id, owner.run_id),
        )
        return {
            "agent": {
                "identifier": agent.identifier,
                "name": agent.name,
                "path": str(agent.path),
                "metadata": metadata,
            },
            "model": resolved.label,
            "provider": resolved.label.partition("::")[0],
            "last_input_message": last[0][0] if last else None,
        }

    def number(self) -> int:
        return next(self._numbers)

    def save(self, n: int, request: dict[str, Any], response: str) -> None:
        """Write call ``n`` (``response``: its stored JSON text). Never fails the run."""
        self._save(n, request, response)

    def _save(
        self, n: int, request: dict[str, Any], response: str | None, *, expire: bool = False
    ) -> None:
        store: Store = self._owner.store
        text = replayfile.line(request).rstrip("\n")
        try:
            with store.write() as db:
                if expire:  # recordings go with their event logs (Store.expire_events)
                    cutoff = time.time() - store.event_ttl
                    db.execute(
                        "DELETE FROM recorded_calls WHERE run_id IN (SELECT id FROM runs "
                        "WHERE ended_at IS NOT NULL AND ended_at <= ?)",
                        (cutoff,),
                    )
                db.execute(
                    "INSERT INTO recorded_calls (run_id, n, request, response) "
                    "VALUES (?, ?, ?, ?) ON CONFLICT (run_id, n) DO UPDATE SET "
                    "request = excluded.request, response = excluded.response",
                    (self._owner.run_id, n, text, response),
                )
        except Exception:  # a full disk must not fail the agent; the run just has no fixture
            logger.exception("nearnb: could not record call %s of run %s", n, self._owner.run_id)


class RecordingProvider:
    """A provider that records what passes through it; otherwise the provider itself.

    Attribute access falls through to the wrapped provider, and ``__class__``
    reports its class, so code that asks ``isinstance(p, OpenAICompatProvider)``
    (the embeddings of an HTTP provider) or reads ``p.base_url`` behaves as before.
    """

    def __init__(self, inner: Provider, recorder: Recorder, model: str, label: str) -> None:
        self._inner = inner
        self._recorder = recorder
        self._model = model
        self._label = label

    @property  # type: ignore[misc]
    def __class__(self) -> type:  # see the class docstring
        return type(self._inner)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def __repr__(self) -> str:
        return repr(self._inner)

    def _request(self, kind: str, messages: Any, model: str, params: dict[str, Any]) -> tuple:
        try:
            record = replayfile.request_record(
                kind, self._model, messages, params, provider_model=model, label=self._label
            )
        except Exception as exc:  # recording must never be why an agent's request fails
            record = {"kind": kind, "model": self._model, "unrecordable": repr(exc)[:300]}
        return self._recorder.number(), record

    def complete(self, messages: list[dict[str, Any]], *, model: str, **params: Any) -> Any:
        n, request = self._request("complete", messages, model, params)
        try:
            completion = self._inner.complete(messages, model=model, **params)
        except BaseException as exc:
            self._recorder.save(n, request, _response(None, None, "error", exc))
            raise
        body = chunk_json(completion).decode()
        self._recorder.save(n, request, _response(None, body, "done", None))
        return completion

    def stream(self, messages: list[dict[str, Any]], *, model: str, **params: Any) -> ChunkStream:
        n, request = self._request("stream", messages, model, params)
        try:
            chunks = self._inner.stream(messages, model=model, **params)
        except BaseException as exc:
            self._recorder.save(n, request, _response("[]", None, "error", exc))
            raise
        observe = getattr(chunks, "observe", None)
        if observe is None:
            return RecordingStream(chunks, self._recorder, n, request)

        packer = wirepack.Packer()

        def save(texts: list[str], reason: str, error: BaseException | None) -> None:
            self._recorder.save(n, request, _response(packer.finish(texts), None, reason, error))

        # An HTTP stream keeps its wire text itself (no wrapper per chunk), and hands
        # it over in blocks that are packed while they are fresh.
        observe(save, on_block=packer.add)
        return chunks


def _response(chunks: str | None, completion: str | None, reason: str, error: Any) -> str:
    """A call's stored response object, assembled from already-serialised JSON parts."""
    if error is not None and not isinstance(error, Exception):
        reason = "closed"  # a Stop or Ctrl-C is the reader leaving, not the provider failing
    parts = [f'"reason":"{reason}"']
    if chunks is not None:
        parts.append(f'"chunks":{chunks}')
    if completion is not None:
        parts.append(f'"completion":{completion}')
    if error is not None and reason == "error":
        message = replayfile.scrub(f"{type(error).__name__}: {error}")
        parts.append(f'"error":{json.dumps(message, ensure_ascii=False)}')
    return "{" + ",".join(parts) + "}"


class RecordingStream:
    """A :class:`~nearnb.providers.base.ChunkStream` that keeps what it yields.

    Written once, at the first of: the end of the stream, an error, ``close()``.
    """

    def __init__(
        self, inner: ChunkStream, recorder: Recorder, n: int, request: dict[str, Any]
    ) -> None:
        self._inner = inner
        self._recorder = recorder
        self._n = n
        self._request = request
        # Text or bytes, never chunk objects: the garbage collector does not scan strings.
        self._parts: list[bytes] = []
        self._saved = False
        self._interrupted = False

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        try:
            chunk = next(self._inner)
        except StopIteration:
            # An interrupted read ends like a stream: it is the reader leaving, not the end.
            self._finish("closed" if self._interrupted else "done", None)
            raise
        except BaseException as exc:
            self._finish("error", exc)
            raise
        self._parts.append(chunk_json(chunk))
        return chunk

    def close(self) -> None:
        self._finish("closed", None)
        self._inner.close()

    def interrupt(self) -> None:
        """A cancel unblocking a read (another thread): recorded as closed, not done."""
        self._interrupted = True
        interrupt = getattr(self._inner, "interrupt", None)
        if interrupt is not None:
            interrupt()

    def __enter__(self) -> RecordingStream:
        """``with client.chat.completions.create(..., stream=True) as s:`` (env.openai)."""
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getattr__(self, name: str) -> Any:  # e.g. SSEChunkStream.chunks
        return getattr(self._inner, name)

    def _finish(self, reason: str, error: BaseException | None) -> None:
        if self._saved:
            return
        self._saved = True
        chunks = "[" + b",".join(self._parts).decode() + "]"
        self._parts = []
        self._recorder.save(self._n, self._request, _response(chunks, None, reason, error))


# ------------------------------------------------------------------ reading


def recorded_calls(
    store: Store, run_id: str
) -> tuple[dict[str, Any] | None, list[tuple[int, dict[str, Any], dict[str, Any] | None]]]:
    """A run's recording header (or None) and its calls ``(n, request, response)`` in order."""
    rows = store.read(
        "SELECT n, request, response FROM recorded_calls WHERE run_id = ? ORDER BY n", (run_id,)
    )
    header = None
    calls = []
    for n, request, response in rows:
        if n == 0:
            header = json.loads(request)
        else:
            loaded = json.loads(response) if response else None
            if loaded is not None and isinstance(loaded.get("chunks"), dict):
                loaded["chunks"] = wirepack.unpack(loaded["chunks"])
            calls.append((n, json.loads(request), loaded))
    return header, calls
