"""Fuzzing the hub: hostile requests on every route, in-process (ASGI) and over real HTTP.

Hypothesis builds requests for every ``/v1`` route: bodies shaped like the route's schema
but with hostile leaves (lone surrogates, control characters, huge or non-finite numbers,
wrong types, 300-character names), raw bytes and structural bombs (5,000 open brackets),
bodies around the size limit, hostile path ids, query parameters and headers
(``Last-Event-ID: ²``). Every response must be:

* below 500;
* in OpenAI's error shape when it is a 4xx, and then the store must not have changed
  (row counts of threads, messages, runs and events, read with sqlite3 from the file);
* over HTTP, delivered on the same keep-alive connection as every other (same local port).

Valid requests do happen (a thread, a message, a run of a tiny agent whose provider is a
scripted OpenAI-compatible server on 127.0.0.1); the suite waits for such a run to end
before the next example, so a later refusal is compared against a quiet store.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from nearnb.config import home
from nearnb.hub.app import create_app
from nearnb.store import Store
from tests.agent_helpers import make_agent, use_scripted_provider
from tests.support.hub import FakeRun, client_port, running_hub, store_counts
from tests.support.openai_server import Reply, ScriptedOpenAI

MAX_BODY = 64 * 1024  # small, so bodies around the limit stay cheap to generate
FUZZ = settings(
    deadline=None,
    database=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,  # one world per test, shared by its examples
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)

# ----------------------------------------------------------------- the world


@dataclass
class World:
    """What the requests aim at: agents, an existing thread and a finished run."""

    thread_id: str
    run_id: str
    log: list[str] = field(default_factory=list)


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    with ScriptedOpenAI(default=Reply.text("fuzzed ", "reply")) as server:
        use_scripted_provider(monkeypatch, server)
        # Every provider name resolves to the scripted server: a fuzzed model never loads
        # the embedded model, and a valid chat request gets a real OpenAI-shaped answer.
        monkeypatch.setenv("NEARNB_MODEL", "scripted::test-model")
        agents = tmp_path / "agents"
        make_agent(agents / "echo", "env.add_reply('ok')\n")
        make_agent(agents / "broken", "pass\n")
        (agents / "broken" / "metadata.json").write_text('{"name": 5}')
        monkeypatch.setenv("FUZZ_AGENTS", str(agents))
        run = FakeRun(3).complete()
        yield World(thread_id=run.thread_id, run_id=run.run_id)


def settle(timeout: float = 30.0) -> None:
    """Wait until every run in the store has logged ``done`` (a fuzzed run may still be
    writing when its response arrives), so the next example starts on a quiet store."""
    deadline = time.monotonic() + timeout
    while True:
        db = sqlite3.connect(home() / "nearnb.db")
        try:
            open_runs = db.execute(
                "SELECT count(*) FROM runs WHERE id NOT IN "
                "(SELECT run_id FROM events WHERE event = 'done')"
            ).fetchone()[0]
        finally:
            db.close()
        if not open_runs:
            return
        assert time.monotonic() < deadline, f"{open_runs} fuzzed run(s) never ended"
        time.sleep(0.02)


# ---------------------------------------------------------------- strategies

HOSTILE_STRINGS = [
    "\ud800",
    "a\udfffb",
    "\x00",
    "\x1b[31m",
    "²",
    "٣",
    "-1",
    "9" * 5000,
    "1e999",
    "../../etc/passwd",
    "/etc",
    "a" * 300,
    "a/" * 149 + "a",
    "local/echo/0.1.0",
    "local/../../x/1",
    "echo",
    "broken",
    "\u202eevil",
    "NaN",
    "",
    " ",
]
#: JSON text with no surrogates (those are added explicitly, as escapes).
plain_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
hostile_text = st.one_of(plain_text, st.sampled_from(HOSTILE_STRINGS))
numbers = st.one_of(
    st.integers(),
    st.integers(min_value=10**18, max_value=10**40),
    st.floats(),  # NaN and infinities included: json.dumps writes NaN / Infinity
    st.sampled_from([1e308, -0.0, 2**63, -(2**63) - 1]),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, hostile_text)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(hostile_text, inner, max_size=3)
    ),
    max_leaves=8,
)


@st.composite
def mostly(draw: st.DrawFn, valid: st.SearchStrategy[Any], hostile: st.SearchStrategy[Any]) -> Any:
    """``valid`` three times in four: a body with one hostile field gets past the others.
    (``sampled_from`` is uniform; ``one_of`` of repeated branches is not.)"""
    return draw(valid if draw(st.sampled_from([True, True, True, False])) else hostile)


def shaped(
    required: dict[str, st.SearchStrategy[Any]], optional: dict[str, st.SearchStrategy[Any]]
) -> st.SearchStrategy[dict[str, Any]]:
    """A body with the route's fields, mostly valid; now and then without its required ones."""
    return mostly(
        st.fixed_dictionaries(required, optional=optional),
        st.fixed_dictionaries({}, optional={**required, **optional}),
    )


words = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=12)
metadata = mostly(
    st.dictionaries(words.filter(len), words, max_size=3),
    st.one_of(st.dictionaries(hostile_text, hostile_text, max_size=20), json_values),
)
content_parts = st.lists(
    st.fixed_dictionaries(
        {"type": mostly(st.sampled_from(["text", "image_url"]), json_values)},
        optional={"text": mostly(words, st.one_of(hostile_text, json_values))},
    ),
    max_size=3,
)
attachments = st.lists(
    st.fixed_dictionaries(
        {},
        optional={
            "file_id": mostly(st.just("file-1"), hostile_text),
            "type": hostile_text,
            "tools": mostly(st.just([{"type": "file_search"}]), json_values),
        },
    ),
    max_size=2,
)
message_body = shaped(
    {"content": mostly(st.one_of(words, content_parts), st.one_of(hostile_text, json_values))},
    {
        "role": mostly(st.sampled_from(["user", "assistant"]), st.one_of(hostile_text, scalars)),
        "metadata": metadata,
        "attachments": mostly(attachments, json_values),
    },
)
thread_body = shaped(
    {},
    {
        "messages": mostly(st.lists(message_body, max_size=3), json_values),
        "metadata": metadata,
    },
)
run_body = shaped(
    {"assistant_id": mostly(st.sampled_from(["echo", "local/echo/0.1.0"]), hostile_text)},
    {
        "model": mostly(st.just("test-model"), st.one_of(hostile_text, scalars)),
        "provider": mostly(st.just("scripted"), st.one_of(hostile_text, scalars)),
        "additional_messages": mostly(st.lists(message_body, max_size=2), json_values),
        "stream": mostly(st.booleans(), scalars),
        "metadata": metadata,
        "instructions": json_values,
    },
)
chat_message = shaped(
    {"role": mostly(st.sampled_from(["user", "system"]), scalars)},
    {"content": mostly(words, json_values), "name": hostile_text},
)
chat_body = shaped(
    {"messages": mostly(st.lists(chat_message, min_size=1, max_size=2), json_values)},
    {
        "model": mostly(st.just("test-model"), st.one_of(hostile_text, scalars)),
        "provider": mostly(st.just("scripted"), st.one_of(hostile_text, scalars)),
        "stream": mostly(st.booleans(), scalars),
        "temperature": mostly(st.floats(0, 2), scalars),
        "max_tokens": mostly(st.integers(1, 50), scalars),
        "logit_bias": mostly(st.just({"42": -100}), json_values),
        "timeout": scalars,
        "extra_headers": json_values,
        "extra_body": json_values,
        "stop": json_values,
        "tools": json_values,
        "response_format": json_values,
    },
)
BODIES = {"threads": thread_body, "messages": message_body, "runs": run_body, "chat": chat_body}
BOMBS = [
    b"[" * 5000,
    b'{"a":' * 3000,
    b'{"content": "\\ud800"}',
    b'{"content": "\xed\xa0\x80"}',
    b'{"content": "x", "metadata": {"k": 1e999}}',
    b"\xef\xbb\xbf{}",
    b"\xff\xfe{\x00}\x00",
    b"null",
    b"[]",
    b"",
    b"   ",
    b'{"content": "x"' + b" " * 10 + b"}",
]


@st.composite
def encoded_body(draw: st.DrawFn, kind: str) -> bytes:
    """A request body: the route's shape as JSON (surrogates as ``\\ud800`` escapes), raw
    bytes, a known bomb, or a valid-looking message right around the size limit."""
    how = draw(st.sampled_from(["shaped"] * 5 + ["any", "bytes", "bomb", "bomb", "size"]))
    if how == "shaped":
        return json.dumps(draw(BODIES.get(kind, json_values))).encode()
    if how == "any":
        return json.dumps(draw(json_values)).encode()
    if how == "bytes":
        return draw(st.binary(max_size=64))
    if how == "bomb":
        return draw(st.sampled_from(BOMBS))
    size = draw(st.integers(MAX_BODY - 40, MAX_BODY + 40))
    return json.dumps({"content": "x" * max(0, size - 15)}).encode()


ROUTES = [
    ("POST", "/threads", "threads"),
    ("GET", "/threads/{tid}", None),
    ("POST", "/threads/{tid}/messages", "messages"),
    ("GET", "/threads/{tid}/messages", None),
    ("POST", "/threads/{tid}/runs", "runs"),
    ("GET", "/threads/{tid}/runs", None),
    ("GET", "/threads/{tid}/runs/{rid}", None),
    ("POST", "/threads/{tid}/runs/{rid}/cancel", "any"),
    ("GET", "/threads/{tid}/stream/{rid}", None),
    ("POST", "/chat/completions", "chat"),
]
QUERY = ["limit", "order", "after", "before", "run_id", "framing", "timing", "token"]
HEADERS = ["last-event-id", "content-type", "accept", "authorization", "origin", "expect"]
query_value = st.one_of(
    st.sampled_from(["0", "1", "100", "101", "asc", "desc", "near", "official", "²", "9" * 5000]),
    plain_text,
)
header_value = st.one_of(
    st.sampled_from(["0", "3", "²", "-1", "9" * 30, "99999999999999999999", "application/json"]),
    st.text(st.characters(min_codepoint=0x21, max_codepoint=0xFF), min_size=1, max_size=20),
)


@dataclass
class Probe:
    method: str
    path: str
    params: dict[str, str]
    headers: dict[str, bytes]
    body: bytes | None

    def __str__(self) -> str:
        body = None if self.body is None else self.body[:200]
        return f"{self.method} {self.path} params={self.params} headers={self.headers} {body!r}"


def _path_id(text: str) -> str:
    return quote(text.encode("utf-8", "surrogatepass"), safe="")


@st.composite
def probes(draw: st.DrawFn, world: World) -> Probe:
    method, template, kind = draw(st.sampled_from(ROUTES))
    tid = draw(mostly(st.just(world.thread_id), st.one_of(st.just("thread_nope"), hostile_text)))
    rid = draw(mostly(st.just(world.run_id), st.one_of(st.just("run_nope"), hostile_text)))
    path = "/v1" + template.format(tid=_path_id(tid), rid=_path_id(rid))
    params = draw(st.dictionaries(st.sampled_from(QUERY), query_value, max_size=3))
    headers = {
        name: value.encode("latin-1")
        for name, value in draw(
            st.dictionaries(st.sampled_from(HEADERS), header_value, max_size=2)
        ).items()
        if name != "origin" or method == "GET"  # a foreign Origin on POST is a plain 403
    }
    body = draw(encoded_body(kind)) if kind is not None else None
    return Probe(method, path, params, headers, body)


def check(probe: Probe, response: httpx.Response, before: dict[str, int]) -> None:
    """The invariants every response keeps."""
    assert response.status_code < 500, f"{probe}\n-> {response.status_code} {response.text}"
    if response.status_code >= 400:
        body = response.json()
        assert set(body) == {"error"} and set(body["error"]) == {
            "message",
            "type",
            "param",
            "code",
        }, f"{probe}\n-> {response.text}"
        assert store_counts() == before, f"a refused request wrote to the store: {probe}"
    else:
        settle()


def send(client: httpx.Client | TestClient, probe: Probe) -> httpx.Response:
    return client.request(
        probe.method,
        probe.path,
        params=probe.params,
        headers=probe.headers,
        content=probe.body,
    )


# --------------------------------------------------------------------- tests


@pytest.fixture
def app_client(world: World) -> Iterator[TestClient]:
    app = create_app(Store(), agents_dir=os.environ["FUZZ_AGENTS"], max_body=MAX_BODY)
    with TestClient(app, base_url="http://127.0.0.1") as client:
        yield client


@settings(FUZZ, max_examples=200)
@given(data=st.data())
def test_fuzz_the_asgi_app_in_process(world: World, app_client: TestClient, data: Any) -> None:
    probe = data.draw(probes(world))
    before = store_counts()
    check(probe, send(app_client, probe), before)


@dataclass
class Connection:
    """One keep-alive client, and the local port of the connection every request must use."""

    client: httpx.Client
    port: int | None = None

    def same_port(self, response: httpx.Response) -> bool:
        port = client_port(response)
        if self.port is None:
            self.port = port
        return port == self.port


@pytest.fixture
def connection(world: World) -> Iterator[Connection]:
    with (
        running_hub(agents_dir=os.environ["FUZZ_AGENTS"], max_body=MAX_BODY) as server,
        httpx.Client(base_url=server.url, timeout=30) as client,
    ):
        yield Connection(client)


@settings(FUZZ, max_examples=150)
@given(data=st.data())
def test_fuzz_a_real_hub_over_http_on_one_connection(
    world: World, connection: Connection, data: Any
) -> None:
    probe = data.draw(probes(world))
    ping = connection.client.get("/v1/threads/" + world.thread_id)
    assert connection.same_port(ping), "the connection was dropped after an earlier request"
    before = store_counts()
    response = send(connection.client, probe)
    check(probe, response, before)
    assert connection.same_port(response), f"the connection was dropped after {probe}"
