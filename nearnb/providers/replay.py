"""Provider ``replay:FILE``: a recorded run's responses stand in for the model.

``--provider replay:run.jsonl`` (or ``provider="replay:run.jsonl"``) runs an
agent's code again, offline: its N-th provider request is compared with the
N-th request in the recording (kind, requested model, messages without their
ids, parameters) and, when they match, answered with the recorded chunks (or
completion, or error). No model is loaded and nothing touches the network, so
a changed agent can be tested deterministically in CI.

A request that does not match raises :class:`ReplayMismatch` with a compact
unified diff of the two requests' JSON. It is a ``BaseException`` (like
``RunCancelled``) so an agent's ``except Exception`` cannot swallow it: the
run ends ``failed`` with the diff as its error, which is what a test wants.

A replay wins over every other provider setting (``NEARNB_PROVIDER``, an
agent's ``provider::model``): the point is that no model answers.
"""

from __future__ import annotations

import difflib
import json
import os
import threading
from typing import TYPE_CHECKING, Any

from .base import ProviderError, Resolved

if TYPE_CHECKING:
    from ..replayfile import Call, Recording

PREFIX = "replay:"
#: The most diff lines an error shows; the rest is summarised.
MAX_DIFF_LINES = 60


class ReplayMismatch(BaseException):
    """The agent made a request the recording does not have (the message shows the diff)."""


def replay_source(*names: str | None) -> str | None:
    """The file of the first ``replay:FILE`` among ``NEARNB_PROVIDER`` and ``names``."""
    for name in (os.environ.get("NEARNB_PROVIDER"), *names):
        text = (name or "").strip()
        if text[: len(PREFIX)].lower() == PREFIX:
            return text[len(PREFIX) :].strip()
    return None


def resolve_replay(source: str, model: str | None) -> Resolved:
    """The Resolved for ``replay:source``; ProviderError when the file is not a recording."""
    from ..replayfile import RecordingError, load

    if not source:
        raise ProviderError("replay: needs a file, e.g. replay:run.jsonl", provider="replay")
    try:
        recording = load(source)
    except RecordingError as exc:
        raise ProviderError(str(exc), provider="replay") from None
    provider = ReplayProvider(recording)
    wanted = (model or "").strip()
    return Resolved(provider=provider, model=wanted, label=f"replay::{recording.label}")


class ReplayProvider:
    """Answers requests from one recording, in order. Thread-safe.

    ``per_run_key``: a run shares one instance per file across the model names
    it resolves (see :meth:`nearnb.recording.Recorder.wrap`), so the position
    in the recording is the run's, not one model name's.
    """

    name = "replay"

    def __init__(self, recording: Recording) -> None:
        self.recording = recording
        self.per_run_key = ("replay", str(recording.path))
        self._next = 0
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"ReplayProvider({str(self.recording.path)!r}, calls={len(self.recording.calls)})"

    def _take(self, kind: str, messages: Any, model: str, params: dict[str, Any]) -> Call:
        from ..replayfile import comparable, request_record

        with self._lock:
            index = self._next
            self._next += 1
        asked = comparable(request_record(kind, model, messages, params))
        calls = self.recording.calls
        where = self.recording.path.name if self.recording.path else "the recording"
        if index >= len(calls):
            raise ReplayMismatch(
                f"request {index + 1} is not in {where}, which has {len(calls)} "
                f"request{'s' * (len(calls) != 1)}; the agent asked for:\n" + _dump(asked)[:2000]
            )
        call = calls[index]
        recorded = comparable(call.request)
        if recorded != asked:
            raise ReplayMismatch(
                f"request {index + 1} does not match {where} "
                f"(- recorded, + this run):\n{diff(recorded, asked)}"
            )
        return call

    def complete(self, messages: list[dict[str, Any]], *, model: str, **params: Any) -> Any:
        from .sdk import sdk

        call = self._take("complete", messages, model, params)
        if call.error:
            raise ProviderError(f"(recorded) {call.error}", provider="replay")
        if call.completion is None:
            raise ReplayMismatch(f"request {call.n} was recorded without a completion")
        completion_type = sdk().ChatCompletion
        try:
            return completion_type.model_validate(call.completion)
        except ValueError:
            return completion_type.construct(**call.completion)

    def stream(self, messages: list[dict[str, Any]], *, model: str, **params: Any) -> ReplayStream:
        call = self._take("stream", messages, model, params)
        if call.error and not call.chunks:
            raise ProviderError(f"(recorded) {call.error}", provider="replay")
        return ReplayStream(call)


class ReplayStream:
    """The recorded chunks of one call as ``ChatCompletionChunk`` objects."""

    def __init__(self, call: Call) -> None:
        from .sdk import sdk

        self._chunk_type = sdk().ChatCompletionChunk
        self._call = call
        self._index = 0
        self._closed = False

    def __iter__(self) -> ReplayStream:
        return self

    def __next__(self) -> Any:
        call = self._call
        if self._closed:
            raise StopIteration
        if self._index < len(call.chunks):
            raw = call.chunks[self._index]
            self._index += 1
            try:
                return self._chunk_type.model_validate(raw)
            except ValueError:
                return self._chunk_type.construct(**raw)
        self._closed = True
        if call.reason == "error":
            raise ProviderError(f"(recorded) {call.error}", provider="replay")
        if call.reason == "closed":
            raise ReplayMismatch(
                f"request {call.n}: the recorded stream was closed by its reader after "
                f"{len(call.chunks)} chunks; this run read further"
            )
        raise StopIteration

    def close(self) -> None:
        self._closed = True


def _dump(obj: Any) -> str:
    return json.dumps(obj, indent=1, sort_keys=True, ensure_ascii=False, default=str)


def diff(recorded: Any, asked: Any) -> str:
    """A compact unified diff of two requests' JSON (at most :data:`MAX_DIFF_LINES` lines)."""
    lines = list(
        difflib.unified_diff(
            _dump(recorded).splitlines(),
            _dump(asked).splitlines(),
            "recorded",
            "this run",
            n=2,
            lineterm="",
        )
    )
    if len(lines) > MAX_DIFF_LINES:
        lines = lines[:MAX_DIFF_LINES] + [f"... {len(lines) - MAX_DIFF_LINES} more diff lines"]
    return "\n".join(lines)
