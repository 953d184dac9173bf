"""The hub's REST surface over real HTTP: threads, messages, runs, chat completions, security.

Runs the hub starts execute real agents (tests.agent_helpers) whose provider is the scripted
OpenAI-compatible server, so nothing but the model is scripted.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from httpx_sse import connect_sse

from nearnb.hub.server import HubError, HubServer, check_bind
from nearnb.store import Store
from tests.agent_helpers import API_KEY, make_agent
from tests.support.hub import FakeRun, running_hub
from tests.support.openai_server import Reply, ScriptedOpenAI

STREAM_REPLY = "env.add_reply(env.completion(env.list_messages(), stream=True))\n"


@pytest.fixture
def agents(tmp_path: Path) -> Path:
    folder = tmp_path / "agents"
    make_agent(folder / "echo", STREAM_REPLY)
    return folder


@pytest.fixture
def hub(agents: Path) -> Iterator[HubServer]:
    with running_hub(agents_dir=agents) as server:
        yield server


@pytest.fixture
def api(hub: HubServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=hub.url + "/v1", timeout=30) as client:
        yield client


def error_of(response: httpx.Response) -> dict:
    return response.json()["error"]


# ----------------------------------------------------------- threads/messages


def test_threads_and_messages_follow_openai_shapes(api: httpx.Client) -> None:
    thread = api.post("/threads", json={"messages": [{"role": "user", "content": "one"}]}).json()
    assert thread["object"] == "thread" and thread["id"].startswith("thread_")
    assert api.get(f"/threads/{thread['id']}").json() == thread
    for word in ("two", "three"):
        message = api.post(
            f"/threads/{thread['id']}/messages",
            json={"role": "user", "content": [{"type": "text", "text": word}]},
        ).json()
        assert message["object"] == "thread.message" and message["content"][0]["text"] == {
            "value": word,
            "annotations": [],
        }
    page = api.get(f"/threads/{thread['id']}/messages").json()  # default order: desc
    assert [m["content"][0]["text"]["value"] for m in page["data"]] == ["three", "two", "one"]
    assert page["first_id"] == page["data"][0]["id"] and not page["has_more"]


def test_message_pagination_after_before_limit_order(api: httpx.Client) -> None:
    tid = api.post("/threads", json={}).json()["id"]
    ids = [
        api.post(f"/threads/{tid}/messages", json={"content": str(i)}).json()["id"]
        for i in range(5)
    ]
    page = api.get(f"/threads/{tid}/messages", params={"order": "asc", "limit": 2}).json()
    assert [m["id"] for m in page["data"]] == ids[:2] and page["has_more"]
    page = api.get(
        f"/threads/{tid}/messages", params={"order": "asc", "after": page["last_id"]}
    ).json()
    assert [m["id"] for m in page["data"]] == ids[2:] and not page["has_more"]
    page = api.get(f"/threads/{tid}/messages", params={"before": ids[1]}).json()  # desc
    assert [m["id"] for m in page["data"]] == ids[2:][::-1]


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "many"}, "limit"),
        ({"order": "sideways"}, "order"),
        ({"after": "msg_nope"}, "after"),
    ],
)
def test_bad_list_parameters_are_422_naming_the_parameter(
    api: httpx.Client, params: dict, param: str
) -> None:
    tid = api.post("/threads", json={}).json()["id"]
    response = api.get(f"/threads/{tid}/messages", params=params)
    assert response.status_code == 422 and error_of(response)["param"] == param


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({}, "content"),
        ({"content": "x", "role": "robot"}, "role"),
        ({"content": 5}, "content"),
        ({"content": "x", "metadata": {"k": 1}}, "metadata.k"),
    ],
)
def test_bad_message_bodies_are_422_naming_the_field(
    api: httpx.Client, body: dict, param: str
) -> None:
    tid = api.post("/threads", json={}).json()["id"]
    response = api.post(f"/threads/{tid}/messages", json=body)
    assert response.status_code == 422, response.text
    assert error_of(response)["param"].startswith(param)
    assert error_of(response)["message"].startswith(param)


def test_non_json_body_is_422(api: httpx.Client) -> None:
    response = api.post("/threads", content=b"{nope", headers={"content-type": "application/json"})
    assert response.status_code == 422 and "not valid JSON" in error_of(response)["message"]


def test_unknown_objects_and_routes_are_404_in_openai_shape(api: httpx.Client) -> None:
    for path in ("/threads/thread_nope", "/threads/thread_nope/messages", "/nowhere"):
        response = api.get(path)
        assert response.status_code == 404 and error_of(response)["type"] == "not_found_error"
    tid = api.post("/threads", json={}).json()["id"]
    assert api.get(f"/threads/{tid}/runs/run_nope").status_code == 404
    assert api.post(f"/threads/{tid}/runs/run_nope/cancel").status_code == 404
    assert api.delete(f"/threads/{tid}").status_code == 405


# ----------------------------------------------------------------------- runs


def test_run_created_on_the_hub_returns_a_run_and_streams(
    api: httpx.Client, srv: ScriptedOpenAI
) -> None:
    srv.script(["Hel", "lo ", "there"])
    tid = api.post("/threads", json={"messages": [{"role": "user", "content": "hi"}]}).json()["id"]
    run = api.post(f"/threads/{tid}/runs", json={"assistant_id": "echo"}).json()
    assert run["object"] == "thread.run" and run["assistant_id"] == "local/echo/0.1.0"
    with connect_sse(api, "GET", f"/threads/{tid}/stream/{run['id']}") as source:
        events = [(sse.event, sse.data) for sse in source.iter_sse()]
    names = [name for name, _ in events]
    assert names[0] == "thread.run.created" and names[-2:] == ["thread.run.completed", "done"]
    text = "".join(
        json.loads(data)["delta"]["content"][0]["text"]["value"]
        for name, data in events
        if name == "thread.message.delta"
    )
    assert text == "Hello there"
    assert api.get(f"/threads/{tid}/runs/{run['id']}").json()["status"] == "completed"
    assert [r["id"] for r in api.get(f"/threads/{tid}/runs").json()["data"]] == [run["id"]]
    messages = api.get(f"/threads/{tid}/messages", params={"order": "asc"}).json()["data"]
    assert [m["content"][0]["text"]["value"] for m in messages] == ["hi", "Hello there"]


def test_stream_true_answers_with_the_run_stream(api: httpx.Client, srv: ScriptedOpenAI) -> None:
    srv.script(["a", "b"])
    tid = api.post("/threads", json={}).json()["id"]
    body = {
        "assistant_id": "local/echo/0.1.0",  # the identifier runs report works too
        "stream": True,
        "additional_messages": [{"role": "user", "content": "go"}],
    }
    with connect_sse(api, "POST", f"/threads/{tid}/runs", json=body) as source:
        assert source.response.headers["content-type"].startswith("text/event-stream")
        frames = [(sse.id, sse.event) for sse in source.iter_sse()]
    assert [int(i) for i, _ in frames] == list(range(1, len(frames) + 1))
    assert frames[-1][1] == "done"
    assert srv.requests[0].body["messages"][-1]["content"] == "go"


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({}, 422, "assistant_id"),
        ({"assistant_id": "../../etc"}, 422, "assistant_id"),
        ({"assistant_id": "/abs/path"}, 422, "assistant_id"),
        ({"assistant_id": "nobody"}, 404, "assistant_id"),
        ({"assistant_id": "echo", "stream": "yes please"}, 422, "stream"),
    ],
)
def test_bad_run_requests(api: httpx.Client, body: dict, status: int, param: str) -> None:
    tid = api.post("/threads", json={}).json()["id"]
    response = api.post(f"/threads/{tid}/runs", json=body)
    assert response.status_code == status, response.text
    assert error_of(response)["param"] == param


def test_cancel_a_hub_run_and_request_one_from_another_process(
    api: httpx.Client, srv: ScriptedOpenAI
) -> None:
    srv.script(Reply.text(*["tick "] * 300, delay=0.05))  # 15 s unless cancelled
    tid = api.post("/threads", json={}).json()["id"]
    run = api.post(f"/threads/{tid}/runs", json={"assistant_id": "echo"}).json()
    cancelled = api.post(f"/threads/{tid}/runs/{run['id']}/cancel")
    assert cancelled.json()["status"] == "cancelling", cancelled.text
    with connect_sse(api, "GET", f"/threads/{tid}/stream/{run['id']}") as source:
        names = [sse.event for sse in source.iter_sse()]
    assert names[-2:] == ["thread.run.cancelled", "done"]
    foreign = FakeRun(1, thread_id=tid)  # saved as queued, written by "another process"
    response = api.post(f"/threads/{tid}/runs/{foreign.run_id}/cancel")
    assert response.status_code == 200 and response.json()["status"] == "cancelling"
    assert Store().cancel_requested(foreign.run_id) is not None  # for its process to honour
    foreign.complete()
    response = api.post(f"/threads/{tid}/runs/{foreign.run_id}/cancel")
    assert response.status_code == 400 and "completed" in error_of(response)["message"]


def test_no_credential_in_any_response_or_event(api: httpx.Client, srv: ScriptedOpenAI) -> None:
    srv.script(Reply.error(401, f"bad key {API_KEY}"))  # a server that echoes the key back
    srv.script(Reply.error(500))
    tid = api.post("/threads", json={"messages": [{"role": "user", "content": "hi"}]}).json()["id"]
    seen = []
    with connect_sse(
        api, "POST", f"/threads/{tid}/runs", json={"assistant_id": "echo", "stream": True}
    ) as source:
        seen += [sse.data for sse in source.iter_sse()]
    chat = api.post("/chat/completions", json={"messages": [{"role": "user", "content": "x"}]})
    seen += [chat.text, api.get(f"/threads/{tid}/messages").text]
    assert any("failed" in s for s in seen)
    assert all(API_KEY not in s for s in seen)


# ------------------------------------------------------------ chat completions


def test_chat_completions_non_streamed_and_streamed(api: httpx.Client, srv: ScriptedOpenAI) -> None:
    srv.script(["4"])
    srv.script(["Hel", "lo"])
    body = {"model": "scripted::test-model", "messages": [{"role": "user", "content": "2+2?"}]}
    completion = api.post("/chat/completions", json=body).json()
    assert completion["object"] == "chat.completion"
    assert completion["choices"][0]["message"]["content"] == "4"
    with connect_sse(api, "POST", "/chat/completions", json={**body, "stream": True}) as source:
        frames = [sse.data for sse in source.iter_sse()]
    assert frames[-1] == "[DONE]"
    chunks = [json.loads(f) for f in frames[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == "Hello"


def test_chat_completions_through_the_openai_sdk(hub: HubServer, srv: ScriptedOpenAI) -> None:
    from openai import OpenAI

    srv.script(["from ", "the hub"])
    client = OpenAI(base_url=hub.url + "/v1", api_key="unused", max_retries=0)
    stream = client.chat.completions.create(
        model="scripted::test-model", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "from the hub"


def test_chat_completions_validation(api: httpx.Client) -> None:
    response = api.post("/chat/completions", json={"messages": []})
    assert response.status_code == 422 and error_of(response)["param"] == "messages"
    response = api.post("/chat/completions", json={"messages": [{"content": "no role"}]})
    assert response.status_code == 422 and error_of(response)["param"] == "messages"


# ------------------------------------------------------------------- security


def test_token_guards_every_route() -> None:
    run = FakeRun(2).complete()
    with running_hub(token="s3cret-token") as server:
        base = server.url + "/v1"
        for path in (f"/threads/{run.thread_id}", run.stream_path()[3:], "/nowhere"):
            response = httpx.get(base + path)
            assert response.status_code == 401, path
            assert response.headers["www-authenticate"] == "Bearer"
            assert error_of(response)["message"].startswith("unauthorized")
        wrong = httpx.get(base + f"/threads/{run.thread_id}", headers={"Authorization": "Bearer x"})
        assert wrong.status_code == 401 and "wrong" in error_of(wrong)["message"]
        ok = {"Authorization": "Bearer s3cret-token"}
        assert httpx.get(base + f"/threads/{run.thread_id}", headers=ok).status_code == 200
        assert httpx.post(base + "/threads", headers=ok, json={}).status_code == 200
        # EventSource cannot send headers: ?token= works for the stream
        response = httpx.get(server.url + run.stream_path() + "?token=s3cret-token")
        assert response.status_code == 200 and "s3cret-token" not in response.text


def test_non_loopback_bind_needs_a_token() -> None:
    with pytest.raises(HubError, match="refusing to serve on 0.0.0.0 without a token"):
        HubServer("0.0.0.0", 0)
    check_bind("0.0.0.0", "tok")  # allowed with one
    for host in ("127.0.0.1", "localhost", "::1", "127.0.0.2"):
        check_bind(host, None)


def test_dns_rebinding_and_cross_origin_posts_are_refused(hub: HubServer) -> None:
    response = httpx.get(hub.url + "/v1/threads/x", headers={"Host": "evil.example:8081"})
    assert response.status_code == 403 and error_of(response)["code"] == "bad_host"
    response = httpx.post(
        hub.url + "/v1/threads", json={}, headers={"Origin": "https://evil.example"}
    )
    assert response.status_code == 403 and error_of(response)["code"] == "bad_origin"
    same = httpx.post(hub.url + "/v1/threads", json={}, headers={"Origin": hub.url})
    assert same.status_code == 200


def test_store_is_shared_with_this_process(hub: HubServer) -> None:
    thread = Store().create_thread({"from": "kernel"})
    assert httpx.get(f"{hub.url}/v1/threads/{thread.id}").json()["metadata"] == {"from": "kernel"}
