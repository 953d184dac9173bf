"""``nearnb.scrub(run)``: a finished run with a slider over its events.

Any of four things names the run, and each becomes the same thing - the run's
event log (and its sub-agents' logs) as a :class:`~nearnb.view.timeline.Timeline`:

* a :class:`~nearnb.result.RunResult` (the value of a ``%%near_agent`` cell,
  of ``run_agent`` or of ``attach``): its events and its children's;
* a run id (``"run_…"``): read from the store (``nearnb.store.default_store()``),
  children found through the ``run_agent`` steps that name them;
* a hub URL of the run (``http://host/v1/threads/<tid>/runs/<rid>``, its
  ``/export``, or its ``/stream/<rid>``): read through the hub's export route,
  each child through its own;
* a recorded-run file (``run.jsonl``, what ``result.save`` and ``nearnb export``
  write): its events, plus any child whose own file ``<child run id>.jsonl``
  lies next to it.

A run that has not ended is refused (``nearnb.attach`` follows a live one):
the slider would have no end. Every refusal is a :class:`ScrubError` that
names the run, the file or the URL and what is wrong with it.

(The module is not called ``nearnb.scrub``: importing a submodule binds it as
an attribute of the package, and ``nearnb.scrub`` must stay the function.)
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .events import Event
from .reducer import ChildRef, child_ref
from .result import RunResult
from .view.timeline import RunEvents, Timeline

if TYPE_CHECKING:
    from .store import Store
    from .view.scrubber import Scrubber

#: Sub-agent runs followed at most (a guard against a log that names runs without end).
MAX_RUNS = 1000
#: Seconds a hub has to answer an export.
HUB_TIMEOUT = 30.0

_HUB_RUN = re.compile(r"^(?P<base>.*?)/threads/(?P<tid>[^/?#]+)/(?:runs|stream)/(?P<rid>[^/?#]+)")


class ScrubError(ValueError):
    """The run cannot be scrubbed: unknown, unreadable, empty or still running."""


def scrub(
    run: RunResult | str | os.PathLike[str],
    *,
    token: str | None = None,
    store: Store | None = None,
    every: int | None = None,
) -> Scrubber:
    """A finished run with a slider over its events, play/pause and step buttons.

    ``run``: a ``RunResult``, a run id, a hub URL of the run or a ``.jsonl``
    recorded-run file (see the module docstring). ``token``: the hub's bearer
    token, for a URL. ``store``: where a run id is looked up (default: this
    process's store). ``every``: events between reducer checkpoints (a seek
    folds fewer than this many events; default 128, more for huge runs).

    The returned widget shows the run as it was after the event at its
    ``position`` (an int trait, ``0..len(events)``, starting at the end), with
    that event's name and time since the run's first event; set
    ``.position`` from code or drag the slider. ``.view_at(k)`` is the view
    model after the first ``k`` events. Raises :class:`ScrubError`.
    """
    from .view.scrubber import Scrubber

    return Scrubber(timeline_of(run, token=token, store=store, every=every))


def timeline_of(
    run: Any,
    *,
    token: str | None = None,
    store: Store | None = None,
    every: int | None = None,
) -> Timeline:
    """The seekable timeline of ``run`` (what :func:`scrub` shows); :class:`ScrubError`."""
    if isinstance(run, RunResult):
        root, children, name = _from_result(run), _result_children(run), f"run {run.run_id}"
    elif isinstance(run, os.PathLike) or (isinstance(run, str) and _is_file(run)):
        root, children, name = _from_file(run)
    elif isinstance(run, str) and run.startswith(("http://", "https://")):
        root, children, name = _from_hub(run, token)
    elif isinstance(run, str) and run.strip():
        root, children, name = _from_store(run.strip(), store)
    else:
        raise ScrubError(
            f"cannot scrub {run!r}: expected a RunResult, a run id, a hub URL of a run "
            "or a recorded-run file (.jsonl)"
        )
    if not root.events:
        raise ScrubError(f"{name} has no events to scrub")
    timeline = Timeline(root, children, every=every)
    state = timeline.final.root
    if not state.terminal:
        raise ScrubError(
            f"{name} has not finished (its last status is {state.status!r}): scrub shows a "
            "finished run; nearnb.attach follows one that is still going"
        )
    return timeline


# ------------------------------------------------------------------ children


def child_refs(events: Sequence[Event]) -> list[ChildRef]:
    """The sub-agent runs a run's ``run_agent`` steps started, in order (read from the whole
    steps the way the reducer reads them, without folding every delta a second time)."""
    refs: dict[str, ChildRef] = {}
    for event in events:
        data = event.data
        if not event.event.startswith("thread.run.step.") or event.event.endswith(".delta"):
            continue
        if not isinstance(data, dict) or not isinstance(data.get("step_details"), dict):
            continue
        if data["step_details"].get("type") == "tool_calls" and (ref := child_ref(data)):
            refs.setdefault(ref.run_id, ref)
    return list(refs.values())


def _children(root: RunEvents, fetch: Callable[[ChildRef], RunEvents | None]) -> list[RunEvents]:
    """Every descendant ``fetch`` finds, parents first; one it cannot find is left out (its
    step then shows as a tool call, as a live view shows a child it did not follow)."""
    found: list[RunEvents] = []
    seen = {root.run_id}
    queue = child_refs(root.events)
    while queue and len(seen) < MAX_RUNS:
        ref = queue.pop(0)
        if ref.run_id in seen:
            continue
        seen.add(ref.run_id)
        child = fetch(ref)
        if child is not None and child.events:
            found.append(child)
            queue.extend(child_refs(child.events))
    return found


# ------------------------------------------------------------------- sources


def _from_result(result: RunResult) -> RunEvents:
    return RunEvents(result.run_id, list(result.events), result.agent)


def _result_children(result: RunResult) -> list[RunEvents]:
    out = []
    for child in result.children:
        out.append(_from_result(child))
        out.extend(_result_children(child))
    return out


def _from_store(run_id: str, store: Store | None) -> tuple[RunEvents, list[RunEvents], str]:
    from .recording import recorded_calls
    from .store import default_store

    store = store or default_store()
    run = store.get_run(run_id)
    if run is None:
        where = getattr(store, "path", None)
        raise ScrubError(f"run not found: {run_id}" + (f" (in the store {where})" if where else ""))
    events = store.events(run_id)
    if not events:
        raise ScrubError(f"run {run_id} has no event log (expired, or never stored)")
    header, _ = recorded_calls(store, run_id)
    agent = (header or {}).get("agent") or {}
    name = agent.get("name") or ChildRef(run_id, run.thread_id, run.assistant_id).agent_name
    root = RunEvents(run_id, events, name, _shows_stream(agent.get("metadata")))

    def fetch(ref: ChildRef) -> RunEvents | None:
        return RunEvents(ref.run_id, store.events(ref.run_id), ref.agent_name)

    return root, _children(root, fetch), f"run {run_id}"


def _shows_stream(metadata: Any) -> bool:
    """The agent's ``details.agent.show_streaming_message`` (default True)."""
    try:
        return bool(metadata["details"]["agent"].get("show_streaming_message", True))
    except (KeyError, TypeError, AttributeError):
        return True


def _is_file(text: str) -> bool:
    if text.startswith("file://"):
        return True
    if "://" in text:
        return False
    return text.endswith((".jsonl", ".ndjson")) or Path(text).expanduser().is_file()


def _recording_events(recording: Any) -> RunEvents:
    header = recording.header
    run_id, thread_id = str(header.get("run_id") or ""), str(header.get("thread_id") or "")
    events = [
        Event.trusted(e["seq"], e["event"], e["data"], run_id, thread_id, e["at"])
        for e in recording.events
    ]
    agent = recording.agent
    return RunEvents(
        run_id, events, str(agent.get("name") or ""), _shows_stream(agent.get("metadata"))
    )


def _from_file(source: Any) -> tuple[RunEvents, list[RunEvents], str]:
    from .replayfile import RecordingError, load

    text = os.fspath(source) if isinstance(source, os.PathLike) else str(source)
    path = Path(text.removeprefix("file://")).expanduser()
    if not path.is_file():
        raise ScrubError(f"no recorded-run file at {path}")
    try:
        root = _recording_events(load(path, calls=False))
    except RecordingError as exc:
        raise ScrubError(str(exc)) from None

    def fetch(ref: ChildRef) -> RunEvents | None:
        sibling = path.with_name(f"{ref.run_id}.jsonl")
        if not sibling.is_file():
            return None
        try:
            child = _recording_events(load(sibling, calls=False))
        except RecordingError as exc:
            raise ScrubError(f"sub-agent {ref.run_id}: {exc}") from None
        return RunEvents(ref.run_id, child.events, ref.agent_name or child.agent_name)

    return root, _children(root, fetch), str(path)


def _from_hub(url: str, token: str | None) -> tuple[RunEvents, list[RunEvents], str]:
    import httpx

    from .replayfile import RecordingError, parse

    match = _HUB_RUN.match(url)
    if match is None:
        raise ScrubError(
            f"{url} is not a hub URL of a run: expected …/threads/<thread id>/runs/<run id> "
            "(or its /export, or …/stream/<run id>)"
        )
    base = match["base"]
    headers = {"Authorization": f"Bearer {token}"} if token else {}

    def get(tid: str, rid: str, *, required: bool) -> RunEvents | None:
        export = f"{base}/threads/{tid}/runs/{rid}/export"
        try:
            response = httpx.get(export, headers=headers, timeout=HUB_TIMEOUT)
        except httpx.HTTPError as exc:
            raise ScrubError(f"cannot reach the hub at {export}: {type(exc).__name__}") from None
        if response.status_code != 200:
            if not required and response.status_code == 404:
                return None
            raise ScrubError(f"{export}: {_hub_problem(response)}")
        try:
            return _recording_events(parse(response.text.splitlines(), calls=False))
        except RecordingError as exc:
            raise ScrubError(f"{export} did not send a recorded run: {exc}") from None

    root = get(match["tid"], match["rid"], required=True)
    assert root is not None

    def fetch(ref: ChildRef) -> RunEvents | None:
        child = get(ref.thread_id, ref.run_id, required=False)
        if child is None:
            return None
        return RunEvents(ref.run_id, child.events, ref.agent_name or child.agent_name)

    return root, _children(root, fetch), url


def _hub_problem(response: Any) -> str:
    """What the hub said (its OpenAI-shaped error message), with the status."""
    status = response.status_code
    try:
        message = str(response.json()["error"]["message"])[:300]
    except (ValueError, KeyError, TypeError):
        message = ""
    if status == 401:
        message = message or "unauthorized"
        return f"401 {message} (pass token=… to scrub)"
    if status == 404:
        return f"404 run not found on the hub{': ' + message if message else ''}"
    return f"HTTP {status}{': ' + message if message else ''}"
