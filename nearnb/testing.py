"""Test agents against recorded runs: the ``nearnb_replay`` pytest fixture (a pytest plugin).

Record a run once (``result.save("tests/fixtures/run.jsonl")`` or ``nearnb
export RUN_ID -o ...``), then test the agent against it with no key, no network
and no model::

    def test_my_agent(nearnb_replay):
        result = nearnb_replay("agents/x", "tests/fixtures/run.jsonl")
        assert result.status == "completed", result.error
        assert result.text == nearnb_replay.load("tests/fixtures/run.jsonl").text

The agent's code runs for real; each provider request it makes must match
the recording's request in order (else the run ends ``failed`` with a diff of
the two requests as ``result.error``) and is answered with the recorded chunks.
Without ``message`` the thread is the one the recorded run found; with it, a
new thread holding just that message.

The plugin is registered under ``pytest11`` (``nearnb = "nearnb.testing"`` in
pyproject.toml), so installing nearnb makes the fixture available. This module
imports only pytest at import time: collection stays fast and cannot fail on
nearnb's heavier dependencies; they load when a test uses the fixture.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from .replayfile import Recording
    from .result import RunResult
    from .store import Store

__all__ = ["Replayer", "nearnb_replay", "rerun"]


def rerun(
    agent: str | os.PathLike[str],
    recording: str | os.PathLike[str],
    message: str | None = None,
    *,
    store: Store | None = None,
    model: str | None = None,
    env_vars: dict[str, str] | None = None,
) -> RunResult:
    """Run ``agent`` again with ``recording``'s responses standing in for the model.

    ``message=None``: on a new thread holding the recorded run's input messages
    (copies with new ids), so the agent sees what it saw then.
    """
    from .events import Message, new_id
    from .replayfile import load
    from .runs import run_agent
    from .store import default_store

    path = Path(recording).expanduser().resolve()
    store = store or default_store()
    thread_id = None
    if message is None:
        thread_id = store.create_thread().id
        for raw in load(path, calls=False).messages:
            copy = Message.model_validate(raw).model_copy(
                update={"id": new_id("msg"), "thread_id": thread_id}
            )
            store.save_message(copy)
    return run_agent(
        agent,
        message,
        thread_id=thread_id,
        model=model,
        provider=f"replay:{path}",
        store=store,
        env_vars=env_vars,
    )


class Replayer:
    """What the fixture gives a test: call it to re-run an agent; ``load`` reads a file."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self._store: Store | None = None

    @property
    def store(self) -> Store:
        """A private store for this test (threads, the re-run's log and its recording)."""
        if self._store is None:
            from .store import Store

            self._store = Store(self.home / "nearnb.db")
        return self._store

    def __call__(
        self,
        agent: str | os.PathLike[str],
        recording: str | os.PathLike[str],
        message: str | None = None,
        **options: Any,
    ) -> RunResult:
        return rerun(agent, recording, message, store=self.store, **options)

    @staticmethod
    def load(recording: str | os.PathLike[str]) -> Recording:
        """The parsed file (``.messages``, ``.events``, ``.calls``, ``.answers``, ``.text``)."""
        from .replayfile import load

        return load(recording)

    def close(self) -> None:
        if self._store is not None:
            self._store.close()


@pytest.fixture
def nearnb_replay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replayer]:
    """Re-run agents against recorded-run files, offline (see :mod:`nearnb.testing`)."""
    replayer = Replayer(tmp_path_factory.mktemp("nearnb-replay"))
    yield replayer
    replayer.close()
