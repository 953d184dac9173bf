"""openai-python's own Assistants streaming against the hub (no nearnb code on the client side).

The Assistants API is deprecated in openai-python but still shipped; its DeprecationWarnings are
silenced here. Keepalives are made frequent to prove they do not break the SDK's SSE parser.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from openai import AssistantEventHandler, OpenAI
from openai.types.beta.threads import Message, Text, TextDelta

from nearnb.hub.server import HubServer
from nearnb.store import Store
from tests.agent_helpers import make_agent
from tests.conftest import EXAMPLES
from tests.support.hub import running_hub
from tests.support.openai_server import Reply, ScriptedOpenAI

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

TWO_REPLIES = (
    "env.add_reply(env.completion(env.list_messages(), stream=True))\n"
    "env.add_reply(env.completion(env.list_messages(), stream=True))\n"
)


class Collector(AssistantEventHandler):
    """Keeps the SDK's own accumulated snapshots."""

    def __init__(self) -> None:
        super().__init__()
        self.deltas: list[str] = []
        self.snapshots: list[str] = []
        self.done: list[str] = []

    def on_text_delta(self, delta: TextDelta, snapshot: Text) -> None:
        self.deltas.append(delta.value or "")
        self.snapshots.append(snapshot.value)

    def on_message_done(self, message: Message) -> None:
        self.done.append("".join(c.text.value for c in message.content if c.type == "text"))


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[HubServer]:
    make_agent(tmp_path / "agents" / "twice", TWO_REPLIES)
    with running_hub(agents_dir=tmp_path / "agents", keepalive=0.03) as server:
        yield server


@pytest.fixture
def client(hub: HubServer) -> OpenAI:
    return OpenAI(base_url=hub.url + "/v1", api_key="unused", max_retries=0)


def stored_answers(thread_id: str) -> list[str]:
    return [m.text for m in Store().list_messages(thread_id) if m.role == "assistant"]


def test_runs_create_stream_true_yields_typed_events(client: OpenAI, srv: ScriptedOpenAI) -> None:
    srv.script(Reply.text("Hel", "lo", delay=0.1))  # slow enough for keepalives in between
    srv.script(["Bye"])
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "hi"}])
    stream = client.beta.threads.runs.create(thread_id=thread.id, assistant_id="twice", stream=True)
    events = list(stream)
    names = [e.event for e in events]
    assert names[0] == "thread.run.created" and names[-1] == "thread.run.completed"
    assert type(events[0]).__name__ == "ThreadRunCreated"
    assert events[0].data.thread_id == thread.id
    deltas = [e for e in events if e.event == "thread.message.delta"]
    assert "".join(d.data.delta.content[0].text.value for d in deltas) == "HelloBye"
    completed = [e.data for e in events if e.event == "thread.message.completed"]
    assert [m.content[0].text.value for m in completed] == ["Hello", "Bye"]
    # the SDK keeps unknown keys as extras: there are none (no nearnb_at unless asked for)
    assert all(not e.data.model_extra for e in events)


def test_assistant_event_handler_reconstructs_the_stored_messages(
    client: OpenAI, srv: ScriptedOpenAI
) -> None:
    srv.script(Reply.text("Soc", "rates ", "says", delay=0.04))
    srv.script(Reply.text("Pla", "to ", "says", delay=0.04))
    thread = client.beta.threads.create()
    client.beta.threads.messages.create(thread_id=thread.id, role="user", content="virtue?")
    handler = Collector()
    with client.beta.threads.runs.stream(
        thread_id=thread.id, assistant_id="twice", event_handler=handler
    ) as stream:
        stream.until_done()
    assert handler.done == stored_answers(thread.id) == ["Socrates says", "Plato says"]
    assert handler.snapshots[-1] == "Plato says"  # the SDK's own accumulation
    page = client.beta.threads.messages.list(thread_id=thread.id, order="asc")
    assert [m.content[0].text.value for m in page.data] == ["virtue?", *handler.done]


@pytest.mark.local_model
def test_real_streaming_example_on_the_embedded_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """The shipped example, run by the hub on SmolLM2, consumed by openai-python."""
    monkeypatch.setenv("NEARNB_LOCAL_MAX_TOKENS", "24")
    with running_hub(agents_dir=EXAMPLES) as server:
        client = OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)
        thread = client.beta.threads.create(
            messages=[{"role": "user", "content": "What is virtue?"}]
        )
        handler = Collector()
        with client.beta.threads.runs.stream(
            thread_id=thread.id, assistant_id="streaming-example", event_handler=handler
        ) as stream:
            stream.until_done()
            run = stream.get_final_run()
    assert run.status == "completed"
    answers = stored_answers(thread.id)
    # the fallback notice, then Socrates and Plato; the handler saw each one whole
    assert len(answers) == 3 and "FIREWORKS_API_KEY" in answers[0]
    assert handler.done == answers and all(a.strip() for a in answers[1:])
    assert len(handler.deltas) > 4
