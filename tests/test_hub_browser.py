"""A browser's EventSource (Debian's chromium via Playwright) on the hub's run stream.

The page is opened on the hub's own origin, so EventSource needs no CORS; the run is written
into the store while the browser listens.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from nearnb.hub.server import HubServer
from tests.agent_helpers import make_agent
from tests.support.hub import FakeRun, running_hub
from tests.support.jupyterlab import chromium, require_browser
from tests.support.openai_server import Reply, ScriptedOpenAI

pytestmark = pytest.mark.browser

# Collects the deltas of one stream. ``closeOnTerminal``: what a well-behaved client does;
# otherwise the browser reconnects when the stream ends, and the hub's 204 must stop it.
LISTEN = """
([path, closeOnTerminal]) => new Promise((resolve) => {
  const seen = {names: [], ids: [], text: "", errors: 0, opens: 0, timed: 0};
  const es = new EventSource(path);
  const finish = () => { seen.readyState = es.readyState; es.close(); resolve(seen); };
  es.onopen = () => { seen.opens += 1; };
  const names = ["thread.run.created", "thread.run.queued", "thread.run.in_progress",
    "thread.message.created", "thread.message.in_progress", "thread.message.delta",
    "thread.message.completed", "thread.run.completed", "done"];
  for (const name of names) {
    es.addEventListener(name, (e) => {
      seen.names.push(name);
      seen.ids.push(Number(e.lastEventId));
      if (seen.ids.length === 1 && window.firstFrame) { window.firstFrame(); }
      if (e.data.includes("nearnb_at")) { seen.timed += 1; }
      if (name === "thread.message.delta") {
        seen.text += JSON.parse(e.data).delta.content[0].text.value;
      }
      if (name === "thread.run.completed" && closeOnTerminal) { finish(); }
    });
  }
  es.onerror = () => {
    seen.errors += 1;
    if (es.readyState === EventSource.CLOSED) { finish(); }
  };
  setTimeout(finish, 20000);
})
"""


@pytest.fixture
def hub() -> Iterator[HubServer]:
    with running_hub() as server:
        yield server


@pytest.fixture
def page(hub: HubServer) -> Iterator[object]:
    # Skipped only on a developer machine without chromium or Playwright; under CI=true
    # either one missing fails the test (scripts/setup.sh installs both), never skips it.
    require_browser()
    with chromium() as browser:
        yield browser.new_page()


def open_origin(page: object, hub: HubServer, run: FakeRun) -> None:
    page.goto(f"{hub.url}/v1/threads/{run.thread_id}")  # any page of the hub's origin


def test_event_source_receives_the_deltas_and_stops_at_the_terminal_event(
    page: object, hub: HubServer
) -> None:
    gate = threading.Event()
    run = FakeRun(60, interval=0.005, start_gate=gate).start()
    open_origin(page, hub, run)
    # deltas flow once the browser listens: its first frame (of the run's start) opens the gate
    page.expose_function("firstFrame", gate.set)
    seen = page.evaluate(LISTEN, [run.stream_path(), True])
    assert seen["text"] == run.text
    assert seen["names"].count("thread.message.delta") == run.deltas
    assert seen["names"][-1] == "thread.run.completed"
    assert seen["ids"] == list(range(1, run.total))  # everything up to the terminal event
    assert seen["errors"] == 0 and seen["opens"] == 1
    assert seen["timed"] == 0  # no emit times unless asked for (?timing=1)


def test_event_source_that_does_not_close_is_stopped_by_204_after_done(
    page: object, hub: HubServer
) -> None:
    run = FakeRun(10).complete()
    open_origin(page, hub, run)
    seen = page.evaluate(LISTEN, [run.stream_path(), False])
    # the stream ended after done; the browser reconnected with Last-Event-ID and got 204
    assert seen["ids"] == list(range(1, run.total + 1))  # nothing twice
    assert seen["names"][-1] == "done" and seen["text"] == run.text
    assert seen["readyState"] == 2  # CLOSED: no reconnect loop


# The seed document's React client, as written there (state setters become plain variables):
# NEAR's legacy framing, every frame a 'message' whose data carries the event's name.
SEED_CLIENT = """
(path) => new Promise((resolve) => {
  const seen = {answers: [], streaming: "", unknown: [], stoppedOn: null, errors: []};
  const eventSource = new EventSource(path);
  const stopStreaming = (es, why) => { seen.stoppedOn = why; es.close(); resolve(seen); };
  eventSource.addEventListener('message', (event) => {
    try {
      const data = JSON.parse(event.data);
      const eventType = data.event;
      switch (eventType) {
        case 'thread.message.delta':
          if (!data?.data?.delta?.content) return;
          const content = data.data.delta.content;
          if (content.length === 0 || !content[0]?.text?.value) return;
          seen.streaming = seen.streaming + data.data.delta.content[0].text.value;
          break;
        case 'thread.message.completed':
          if (seen.streaming) { seen.answers.push(seen.streaming); }
          seen.streaming = '';
          break;
        case 'thread.run.completed':
        case 'thread.run.error':
        case 'thread.run.canceled':
        case 'thread.run.expired':
        case 'thread.run.requires_action':
          stopStreaming(eventSource, eventType);
          break;
        default:
          if (!eventType.startsWith('thread.')) { seen.unknown.push(eventType); }
      }
    } catch (error) { seen.errors.push(String(error)); }
  });
  eventSource.onerror = () => {
    seen.errors.push('sse error'); eventSource.close(); resolve(seen);
  };
  setTimeout(() => resolve(seen), 20000);
})
"""


def test_the_seed_react_client_follows_a_parent_with_sub_agents(
    srv: ScriptedOpenAI, page: Any, tmp_path: Path
) -> None:
    """The parent's stream (run steps for its children included) reads as the seed expects."""
    agents = tmp_path / "agents"
    make_agent(agents / "kid", "env.add_reply(env.completion([], stream=True))\n")
    make_agent(
        agents / "boss",
        "env.run_agent('kid', query='q')\nenv.add_reply(env.completion([], stream=True))\n",
    )
    srv.script(Reply.text("kid ", "text"), Reply.text("boss ", "text"))
    with running_hub(agents_dir=agents) as hub:
        thread = httpx.post(f"{hub.url}/v1/threads", json={}).json()
        run = httpx.post(
            f"{hub.url}/v1/threads/{thread['id']}/runs", json={"assistant_id": "boss"}
        ).json()
        page.goto(f"{hub.url}/v1/threads/{thread['id']}")
        path = f"/v1/threads/{thread['id']}/stream/{run['id']}?framing=near"
        seen = page.evaluate(SEED_CLIENT, path)
    assert seen["errors"] == [] and seen["unknown"] == []
    assert seen["stoppedOn"] == "thread.run.completed"
    assert seen["answers"] == ["boss text"]  # the child's text streams on its own endpoint
