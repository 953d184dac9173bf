"""The recorded-run file: one run as JSON Lines, what export writes and replay reads.

A file is self-contained so it can live in a repository as a test fixture: it
needs no store, no hub and no model to be played or re-run. Lines, in order::

    {"type": "nearnb.run", "version": 1, "run_id", "thread_id", "status", "model",
     "provider", "agent": {"identifier", "name", "metadata": <metadata.json>}}
    {"type": "message", "message": <Message>}            the thread before the run
    {"type": "event", "seq", "event", "at", "data"}       the run's event log
    {"type": "request", "call", "kind", "model", "provider_model", "label",
     "messages", "params"}                                 one provider request ...
    {"type": "chunk", "call", "chunk": <ChatCompletionChunk>}   ... what streamed back
    {"type": "completion", "call", "completion": <ChatCompletion>}  (non-streamed)
    {"type": "end", "call", "reason": "done" | "closed" | "error", "error"?}

One line per chunk keeps lines short and a diff of two recordings readable.
This module is pure format: reading, writing and normalising requests (the
same normalisation is applied when recording and when a replay compares, so
a key or a message id can never make two equal requests differ).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FORMAT = "nearnb.run"
VERSION = 1

#: Parameter names whose values are credentials or transport settings, never recorded
#: (exact names: ``max_tokens`` and ``prompt_cache_key`` are parameters, not secrets).
_SECRET_PARAMS = frozenset(
    {"api_key", "apikey", "authorization", "password", "secret", "token", "access_token"}
)
_TRANSPORT_PARAMS = frozenset({"extra_headers", "extra_query", "base_url", "timeout"})
_SECRET_ENV_WORDS = ("KEY", "TOKEN", "SECRET", "PASSWORD")
REDACTED = "***"


class RecordingError(ValueError):
    """A file that is not a nearnb recording, or one this version cannot read.

    The message never quotes the file's content beyond its line number: a hub
    may be asked to read any path, and must not echo what it finds there.
    """


def _jsonable(value: Any) -> Any:
    """``json.dumps`` fallback: pydantic objects (an agent's ``ChatCompletionMessage``)."""
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump(mode="json", exclude_unset=True)
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    return str(value)


def _secrets() -> list[str]:
    """Credential-like environment values (8+ characters), longest first."""
    values = {
        v
        for k, v in os.environ.items()
        if len(v) >= 8 and any(word in k.upper() for word in _SECRET_ENV_WORDS)
    }
    return sorted(values, key=len, reverse=True)


def scrub(text: str) -> str:
    """``text`` with every credential-like environment value replaced by ``***``."""
    for secret in _secrets():
        text = text.replace(secret, REDACTED)
    return text


def request_record(
    kind: str,
    model: str,
    messages: Any,
    params: dict[str, Any],
    *,
    provider_model: str = "",
    label: str = "",
) -> dict[str, Any]:
    """A provider request as it is recorded and compared: JSON values, credentials removed.

    ``model`` is what the run asked for (``""``: the run's default), which is
    stable across machines; ``provider_model`` and ``label`` say what it
    resolved to and are informative only.
    """
    clean = {}
    for name, value in params.items():
        if name in _TRANSPORT_PARAMS or name.lower() in _SECRET_PARAMS:
            continue
        clean[name] = value
    text = json.dumps(
        {"messages": list(messages), "params": clean}, default=_jsonable, ensure_ascii=False
    )
    body = json.loads(scrub(text))
    return {
        "kind": kind,
        "model": model,
        "provider_model": provider_model,
        "label": label,
        "messages": body["messages"],
        "params": body["params"],
    }


def comparable(request: dict[str, Any]) -> dict[str, Any]:
    """The part of a request that must match on replay: kind, model, messages, parameters.

    Message ``id`` fields are dropped: ``env.list_messages()`` includes them,
    and a re-run's thread has new ones.
    """
    messages = [
        {k: v for k, v in m.items() if k != "id"} if isinstance(m, dict) else m
        for m in request.get("messages") or []
    ]
    return {
        "kind": request.get("kind"),
        "model": request.get("model"),
        "messages": messages,
        "params": request.get("params") or {},
    }


@dataclass
class Call:
    """One recorded provider request and what came back."""

    n: int
    request: dict[str, Any]
    chunks: list[dict[str, Any]] = field(default_factory=list)
    completion: dict[str, Any] | None = None
    reason: str = "done"  # "done", "closed" (the agent stopped reading) or "error"
    error: str | None = None


@dataclass
class Recording:
    """A parsed recorded-run file."""

    header: dict[str, Any]
    messages: list[dict[str, Any]]
    events: list[dict[str, Any]]
    calls: list[Call]
    path: Path | None = None

    @property
    def agent(self) -> dict[str, Any]:
        return self.header.get("agent") or {}

    @property
    def label(self) -> str:
        return str(self.header.get("model") or "")

    @property
    def answers(self) -> list[str]:
        """The recorded run's answers, as ``RunResult.messages`` would hold them."""
        from .events import Message

        texts = []
        for event in self.events:
            ends = event["event"] in ("thread.message.completed", "thread.message.incomplete")
            if ends and isinstance(event["data"], dict) and "content" in event["data"]:
                message = Message.model_validate(event["data"])
                if message.role == "assistant" and not (message.hidden or message.is_tool_output):
                    texts.append(message.text)
        return texts

    @property
    def text(self) -> str:
        """The answers separated by blank lines, like ``RunResult.text``."""
        return "\n\n".join(self.answers)


def load(path: str | os.PathLike[str], *, calls: bool = True) -> Recording:
    """Parse a recorded-run file; :class:`RecordingError` when it is not one.

    ``calls=False`` skips the provider calls (playing a file needs only its events).
    """
    path = Path(path).expanduser()
    try:
        handle = path.open(encoding="utf-8")
    except OSError as exc:
        raise RecordingError(f"cannot read recording {path}: {exc.strerror or exc}") from None
    with handle:
        return parse(handle, path=path, calls=calls)


_CALL_LINES = ('{"type":"chunk"', '{"type":"request"', '{"type":"end"', '{"type":"completion"')


def parse(lines: Iterable[str], *, path: Path | None = None, calls: bool = True) -> Recording:
    """Parse the lines of a recorded-run file (see the module docstring)."""
    where = str(path) if path is not None else "recording"
    header: dict[str, Any] | None = None
    messages: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    found: dict[int, Call] = {}
    for number, line in enumerate(lines, 1):
        if not line.strip() or (not calls and line.startswith(_CALL_LINES)):
            continue
        try:
            obj = json.loads(line)
            kind = obj["type"]
        except (ValueError, TypeError, KeyError, RecursionError):
            kind = None
        if header is None:
            if kind != FORMAT:
                raise RecordingError(f"{where} is not a nearnb run recording (line 1)")
            if obj.get("version") != VERSION:
                raise RecordingError(
                    f"{where} is recording format version {obj.get('version')!r}; "
                    f"this nearnb reads version {VERSION}"
                )
            header = obj
            continue
        if kind is None:
            raise RecordingError(f"{where} line {number}: not a recording line")
        try:
            _add(obj, kind, messages, events, found)
        except (KeyError, TypeError, AttributeError, ValueError, _Orphan) as exc:
            problem = "comes before its request" if isinstance(exc, _Orphan) else "is malformed"
            raise RecordingError(f"{where} line {number}: {str(kind)[:40]!r} {problem}") from None
    if header is None:
        raise RecordingError(f"{where} is empty")
    return Recording(header, messages, events, [found[n] for n in sorted(found)], path)


class _Orphan(Exception):
    """A chunk, completion or end line whose request came before nowhere."""


def _add(
    obj: dict[str, Any],
    kind: str,
    messages: list[dict[str, Any]],
    events: list[dict[str, Any]],
    found: dict[int, Call],
) -> None:
    """File one parsed line; KeyError/TypeError/ValueError when malformed, _Orphan when a call
    line names no request before it."""
    if kind == "message":
        messages.append(dict(obj["message"]))
    elif kind == "event":
        if "data" not in obj:
            raise KeyError("data")
        obj["seq"], obj["event"], obj["at"] = int(obj["seq"]), str(obj["event"]), float(obj["at"])
        events.append(obj)
    elif kind == "request":
        n = int(obj["call"])
        found[n] = Call(n, {k: v for k, v in obj.items() if k not in ("type", "call")})
    elif kind in ("chunk", "completion", "end"):
        call = found.get(obj["call"])
        if call is None:
            raise _Orphan(kind)
        if kind == "chunk":
            call.chunks.append(dict(obj["chunk"]))
        elif kind == "completion":
            call.completion = dict(obj["completion"])
        else:
            call.reason, call.error = str(obj.get("reason") or "done"), obj.get("error")


_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=_jsonable).encode


def line(obj: dict[str, Any]) -> str:
    """One JSON line (compact, UTF-8 kept readable)."""
    return _dumps(obj) + "\n"


def event_line(seq: int, name: str, data_json: str, at: float) -> str:
    """An event line from the store's row, its data spliced in as stored (not re-encoded)."""
    return f'{{"type":"event","seq":{seq},"event":{_dumps(name)},"at":{at!r},"data":{data_json}}}\n'


def call_lines(n: int, request: dict[str, Any], response: dict[str, Any] | None) -> Iterator[str]:
    """The lines of one recorded call from its stored request and response objects."""
    yield line({"type": "request", "call": n, **request})
    response = response or {"reason": "closed"}
    for chunk in response.get("chunks") or ():
        yield line({"type": "chunk", "call": n, "chunk": chunk})
    if response.get("completion") is not None:
        yield line({"type": "completion", "call": n, "completion": response["completion"]})
    end: dict[str, Any] = {"type": "end", "call": n, "reason": response.get("reason", "done")}
    if response.get("error"):
        end["error"] = response["error"]
    yield line(end)


def write(path: str | os.PathLike[str], lines: Iterable[str]) -> Path:
    """Write ``lines`` to ``path`` through a temporary file, so a failure leaves no half file."""
    target = Path(path).expanduser()
    temporary = target.with_name(f".{target.name}.part")
    with temporary.open("w", encoding="utf-8") as out:
        out.writelines(lines)
    temporary.replace(target)
    return target
