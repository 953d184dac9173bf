"""Attach follows sub-agents: each child a step names is attached on its own thread.

A parent's stream does not carry its children's events; it carries a
``run_agent`` step whose metadata names the child's thread and run
(:class:`~nearnb.reducer.ChildRef`). So ``nearnb.attach`` on a parent, on
seeing such a step, attaches to ``/threads/{child_thread}/stream/{child_run}``
on the same hub (same token, same framing and pacing) on a thread of its own,
and feeds what arrives into the parent's view, which nests it under the step
(:mod:`nearnb.view.tree`). The child's attach follows *its* children the same
way, so a tree of any depth is shown by one view. The child's Stop stops
watching that child; stopping the parent stops watching them all.

When the parent's stream ends, the view is finished only after the children's
attaches have ended too (they end at their own ``done``), and their
:class:`~nearnb.runs.RunResult` objects become the parent result's
``children``. A child that cannot be attached (gone from the hub, a 401) is
logged and left out; it never fails the parent's attach.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx

from ..events import Event
from ..reducer import ChildRef, child_ref
from .attach_errors import _STREAM_PATH, AttachError

log = logging.getLogger("nearnb.hub.client")

#: How long the end of a parent's attach waits for its children's attaches.
JOIN_TIMEOUT = 60.0


def child_url(url: str, ref: ChildRef) -> str:
    """The child's stream URL on the hub ``url`` (a stream URL) is on, query kept."""
    parts = httpx.URL(url)
    match = _STREAM_PATH.search(parts.path)
    base = parts.path[: match.start()] if match else "/v1"
    path = f"{base}/threads/{ref.thread_id}/stream/{ref.run_id}"
    return str(parts.copy_with(path=path, fragment=None))


class Feed:
    """The display a child's attach is given: its events go into the parent's view."""

    def __init__(self, parent: Any, ref: ChildRef) -> None:
        self.parent, self.ref = parent, ref  # the parent's Session (its renderer may be a Feed)
        self.result: Any = None
        self._stop: Callable[[], None] | None = None

    def __call__(self, event: Event) -> None:
        renderer = self.parent.renderer
        if renderer is not None:
            renderer(event)

    def follow_child(self, run_id: str, **info: Any) -> None:
        """Passed up the tree to the view (a grandchild's Stop and name)."""
        renderer = self.parent.renderer
        if renderer is not None and hasattr(renderer, "follow_child"):
            renderer.follow_child(run_id, **info)

    def bind_stop(self, stop: Callable[[], None]) -> None:
        """The child's session says how to stop watching it: that is its Stop in the view."""
        self._stop = stop
        self.follow_child(self.ref.run_id, stop=stop, agent_name=self.ref.agent_name)

    def finish(self, result: Any = None) -> None:
        self.result = result  # the parent's view is finished by the parent

    def stop(self) -> None:
        if self._stop is not None:
            self._stop()


class Children:
    """The children of one attached run, each followed by ``attach`` on a thread."""

    def __init__(self, session: Any, attach: Callable[..., Any], **options: Any) -> None:
        self.session, self.attach, self.options = session, attach, options
        self.followed: list[tuple[threading.Thread, Feed]] = []
        self._seen: set[str] = set()

    def see(self, event: Event) -> None:
        """A parent event: start following the child a step names (once)."""
        if not event.event.startswith("thread.run.step.") or not isinstance(event.data, dict):
            return
        ref = child_ref(event.data)
        if ref is None or ref.run_id in self._seen:
            return
        self._seen.add(ref.run_id)
        feed = Feed(self.session, ref)
        url = child_url(self.session.url, ref)
        thread = threading.Thread(
            target=self._run, args=(url, feed), name=f"nearnb-attach-{ref.run_id}", daemon=True
        )
        self.followed.append((thread, feed))
        thread.start()

    def _run(self, url: str, feed: Feed) -> None:
        try:
            feed.result = self.attach(url, display=feed, **self.options)
        except AttachError as exc:
            feed.result = exc.result
            log.warning("nearnb: could not follow sub-agent run %s: %s", feed.ref.run_id, exc)
        except Exception:
            log.exception("nearnb: following sub-agent run %s failed", feed.ref.run_id)

    def join(self, *, stop: bool = False, timeout: float = JOIN_TIMEOUT) -> list[Any]:
        """Wait for every child's attach to end (``stop``: stop watching them first);
        their results, in the order the steps named them."""
        if stop:
            for _, feed in self.followed:
                feed.stop()
        deadline = time.monotonic() + timeout
        for thread, feed in self.followed:
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                feed.stop()
        return [feed.result for _, feed in self.followed if feed.result is not None]
