"""Recording a run's provider traffic and exporting the run, on the real stack.

The original runs talk to the scripted OpenAI server on 127.0.0.1 through the
real provider; export goes through ``RunResult.save``, the ``nearnb`` command
in a subprocess and a real hub on a socket, and the three must agree byte for byte.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import nearnb
from nearnb.hub.client import RunNotFound, StreamProtocolError, attach_async
from nearnb.providers.openai_compat import OpenAICompatProvider
from nearnb.recording import RecordingProvider, recorded_calls
from nearnb.replayfile import RecordingError, load
from nearnb.runs import RunResult, run_agent
from nearnb.store import default_store
from tests.agent_helpers import API_KEY, make_agent
from tests.support.hub import running_hub
from tests.support.openai_server import Reply, ScriptedOpenAI
from tests.test_cli import nearnb as nearnb_cli

ROOT = Path(__file__).resolve().parents[1]
STREAMING = (ROOT / "examples" / "streaming-example" / "agent.py").read_text()
PLAIN = "env.add_reply(env.completion(env.list_messages(), temperature=0.25))\n"


@pytest.fixture
def hub() -> Iterator[object]:
    with running_hub() as server:
        yield server


def _streaming_run(srv: ScriptedOpenAI, tmp_path: Path, **reply: float) -> RunResult:
    srv.script(Reply.text("Know ", "thyself.", **reply), Reply.text("The ", "Forms.", **reply))
    agent = make_agent(tmp_path / "socrates", STREAMING)
    result = run_agent(agent, "What is virtue?")
    assert result.status == "completed", result.error
    return result


@pytest.mark.usefixtures("database_url")  # on each store backend
def test_each_streamed_request_and_its_chunks_are_kept_in_order(
    srv: ScriptedOpenAI, tmp_path: Path
) -> None:
    result = _streaming_run(srv, tmp_path)
    header, calls = recorded_calls(default_store(), result.run_id)
    assert header is not None and header["agent"]["name"] == "socrates"
    assert header["model"] == "scripted::test-model"
    assert [n for n, _, _ in calls] == [1, 2]
    for (_, request, response), sent in zip(calls, srv.requests, strict=True):
        assert request["kind"] == "stream" and request["model"] == "test-model"
        assert request["messages"] == sent.body["messages"]  # exactly what the server got
        assert response is not None and response["reason"] == "done"
        deltas = [c["choices"][0]["delta"] for c in response["chunks"] if c["choices"]]
        text = "".join(d.get("content") or "" for d in deltas)
        assert text in ("Know thyself.", "The Forms.")
    assert [m.text for m in result.messages] == ["Know thyself.", "The Forms."]


def test_http_chunks_are_kept_as_the_wire_sent_them(srv: ScriptedOpenAI, tmp_path: Path) -> None:
    """The transport's own JSON text, not a re-serialisation (cheaper, and exactly what came)."""
    result = _streaming_run(srv, tmp_path)
    _, calls = recorded_calls(default_store(), result.run_id)
    chunk = calls[0][2]["chunks"][1]  # type: ignore[index]
    # the scripted server writes id, object, created, model, choices; pydantic would
    # serialise id, choices, created, model, object
    assert list(chunk)[:5] == ["id", "object", "created", "model", "choices"]


def test_a_stream_that_breaks_is_kept_up_to_the_break(srv: ScriptedOpenAI, tmp_path: Path) -> None:
    srv.script(Reply.text("Know ", "thy", "self.", drop_after=2))
    agent = make_agent(
        tmp_path / "drop", "env.add_reply(env.completion(env.list_messages(), stream=True))\n"
    )
    result = run_agent(agent, "go")
    assert result.status == "failed", result.status
    _, [(_, _, response)] = recorded_calls(default_store(), result.run_id)
    assert response is not None and response["reason"] == "error"
    assert "stream from provider 'scripted'" in response["error"]
    deltas = [c["choices"][0]["delta"] for c in response["chunks"] if c["choices"]]
    assert "".join(d.get("content") or "" for d in deltas) == "Know thy"


def test_a_long_stream_is_kept_whole_across_its_packed_blocks(
    srv: ScriptedOpenAI, tmp_path: Path
) -> None:
    """Texts are packed in blocks as they come (wirepack.Packer): every chunk survives,
    in order, whether the stream ends or breaks, a block boundary or not."""
    pieces = [("é", "\n", '"q"', "w ")[i % 4] + str(i) for i in range(5000)]
    agent = make_agent(
        tmp_path / "long", "env.add_reply(env.completion(env.list_messages(), stream=True))\n"
    )
    for drop_after, status in ((None, "completed"), (4097, "failed")):
        srv.script(Reply.text(*pieces, drop_after=drop_after))
        result = run_agent(agent, "go")
        assert result.status == status, result.error
        _, [(_, _, response)] = recorded_calls(default_store(), result.run_id)
        assert response is not None
        texts = [c["choices"][0]["delta"].get("content") for c in response["chunks"]]
        assert texts[1:] == pieces[:drop_after] + ([None] if drop_after is None else [])
        [(row,)] = default_store().read(
            "SELECT length(response) FROM recorded_calls WHERE run_id = ? AND n = 1",
            (result.run_id,),
        )
        assert row < 20 * len(texts)  # the content literals, not 5,000 whole chunks


def test_a_non_streamed_completion_and_its_parameters_are_kept(
    srv: ScriptedOpenAI, tmp_path: Path
) -> None:
    srv.script(["Four."])
    agent = make_agent(tmp_path / "plain", PLAIN, defaults={"model_max_tokens": 64})
    result = run_agent(agent, "2+2?")
    assert result.status == "completed", result.error
    _, [(n, request, response)] = recorded_calls(default_store(), result.run_id)
    assert (n, request["kind"]) == (1, "complete")
    assert request["params"] == {"temperature": 0.25, "max_tokens": 64}
    assert response is not None and response["completion"]["choices"][0]["message"]["content"] == (
        "Four."
    )


@pytest.mark.usefixtures("database_url")  # on each store backend
def test_no_key_reaches_the_recording_or_the_file(srv: ScriptedOpenAI, tmp_path: Path) -> None:
    result = _streaming_run(srv, tmp_path)
    stored = default_store().read("SELECT request || COALESCE(response, '') FROM recorded_calls")
    assert stored and all(API_KEY not in row[0] for row in stored)
    text = result.save(tmp_path / "run.jsonl").read_text()
    assert API_KEY not in text and "127.0.0.1" not in text  # nor the provider's base_url


def test_save_cli_export_and_hub_route_give_the_same_file(
    srv: ScriptedOpenAI, tmp_path: Path, hub: object
) -> None:
    result = _streaming_run(srv, tmp_path)
    saved = result.save(tmp_path / "saved.jsonl").read_bytes()

    done = nearnb_cli("export", result.run_id, "-o", str(tmp_path / "cli.jsonl"))
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "cli.jsonl").read_bytes() == saved
    assert nearnb_cli("export", result.run_id).stdout.encode() == saved  # no -o: stdout

    url = f"{hub.url}/v1/threads/{result.thread_id}/runs/{result.run_id}/export"  # type: ignore[attr-defined]
    response = httpx.get(url, timeout=30)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/x-ndjson")
    assert f'{result.run_id}.jsonl"' in response.headers["content-disposition"]
    assert response.content == saved

    recording = load(tmp_path / "saved.jsonl")
    assert recording.header["run_id"] == result.run_id and recording.header["status"] == "completed"
    assert recording.header["agent"]["metadata"]["name"] == "socrates"
    assert [(m["role"], m["content"][0]["text"]["value"]) for m in recording.messages] == [
        ("user", "What is virtue?")
    ]
    assert [e["event"] for e in recording.events] == [e.event for e in result.events]
    assert [e["seq"] for e in recording.events] == [e.seq for e in result.events]
    assert len(recording.calls) == 2 and recording.text == result.text


def test_unknown_runs_are_refused_by_the_cli_and_the_hub(
    srv: ScriptedOpenAI, tmp_path: Path, hub: object
) -> None:
    result = _streaming_run(srv, tmp_path)
    done = nearnb_cli("export", "run_nope", "-o", str(tmp_path / "x.jsonl"))
    assert done.returncode == 2 and "run not found: run_nope" in done.stderr
    assert not (tmp_path / "x.jsonl").exists()
    base = f"{hub.url}/v1/threads"  # type: ignore[attr-defined]
    for url in (
        f"{base}/{result.thread_id}/runs/run_nope/export",
        f"{base}/thread_nope/runs/{result.run_id}/export",
    ):
        response = httpx.get(url, timeout=30)
        assert response.status_code == 404
        error = response.json()["error"]
        assert error["type"] == "not_found_error" and "not found" in error["message"]


def test_a_second_run_on_the_thread_exports_the_thread_as_it_found_it(
    srv: ScriptedOpenAI, tmp_path: Path
) -> None:
    srv.script(["one"], ["two"])
    agent = make_agent(tmp_path / "chat", PLAIN)
    first = run_agent(agent, "q1")
    second = run_agent(agent, "q2", thread_id=first.thread_id)
    recording = load(second.save(tmp_path / "second.jsonl"))
    roles = [(m["role"], m["content"][0]["text"]["value"]) for m in recording.messages]
    assert roles == [("user", "q1"), ("assistant", "one"), ("user", "q2")]


def test_attach_plays_a_file_through_the_view_like_the_run(
    srv: ScriptedOpenAI, tmp_path: Path
) -> None:
    result = _streaming_run(srv, tmp_path, delay=0.15)
    path = result.save(tmp_path / "run.jsonl")
    span = result.events[-1].at - result.events[0].at
    assert span > 0.4  # four delayed chunks

    played = nearnb.attach(str(path), display="none")
    assert (played.status, played.run_id, played.thread_id) == (
        "completed",
        result.run_id,
        result.thread_id,
    )
    assert [m.text for m in played.messages] == [m.text for m in result.messages]
    # as from a hub's stream: everything but the closing ``done``
    assert [e.event for e in played.events] == [e.event for e in result.events][:-1]
    assert played.deltas == result.deltas

    awaited = asyncio.run(attach_async(str(path), display="none"))
    assert [e.event for e in awaited.events] == [e.event for e in played.events]

    start = time.monotonic()
    nearnb.attach(path, speed=4.0, display="none")
    fast = time.monotonic() - start
    start = time.monotonic()
    nearnb.attach(path, speed=1.0, display="none")
    original = time.monotonic() - start
    assert span / 4 * 0.8 <= fast < span * 0.8
    assert original >= span * 0.9


def test_attach_refuses_a_file_that_is_not_a_recording(tmp_path: Path) -> None:
    bogus = tmp_path / "secret.jsonl"
    bogus.write_text('{"password": "hunter2-hunter2"}\n')
    with pytest.raises(StreamProtocolError) as caught:
        nearnb.attach(bogus, display="none")
    assert "not a nearnb run recording" in str(caught.value)
    assert "hunter2" not in str(caught.value)  # the file's content is never echoed
    with pytest.raises(RunNotFound):
        nearnb.attach(tmp_path / "missing.jsonl", display="none")
    with pytest.raises(RecordingError, match="line 2"):
        load_lines = tmp_path / "cut.jsonl"
        load_lines.write_text('{"type": "nearnb.run", "version": 1}\n{"type": "chunk"}\n')
        load(load_lines)


def test_record_off_keeps_no_calls_and_export_still_has_the_events(
    srv: ScriptedOpenAI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEARNB_RECORD", "0")
    result = _streaming_run(srv, tmp_path)
    assert recorded_calls(default_store(), result.run_id) == (None, [])
    recording = load(result.save(tmp_path / "run.jsonl"))
    assert recording.calls == [] and len(recording.events) == len(result.events)
    assert [m["role"] for m in recording.messages] == ["user"]


def test_the_recording_wrapper_still_looks_like_its_provider() -> None:
    """Embeddings pick an HTTP embedder by isinstance; env.openai reads base_url."""
    inner = OpenAICompatProvider("x", "http://127.0.0.1:9/v1", "sk-never-shown")
    wrapped = RecordingProvider(inner, recorder=None, model="m", label="x::m")  # type: ignore[arg-type]
    assert isinstance(wrapped, OpenAICompatProvider)
    assert wrapped.base_url == "http://127.0.0.1:9/v1" and wrapped.name == "x"
    assert "sk-never-shown" not in repr(wrapped)
    assert json.dumps(wrapped.map_model("m")) == '"m"'


def test_the_magic_and_the_attach_command_play_a_file(
    srv: ScriptedOpenAI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from IPython.core.interactiveshell import InteractiveShell

    result = _streaming_run(srv, tmp_path)
    path = result.save(tmp_path / "run file.jsonl")  # a space: the magic line is shell-split

    done = nearnb_cli("attach", str(path), "--speed", "50")
    assert done.returncode == 0, done.stderr
    assert "Know thyself." in done.stdout and "The Forms." in done.stdout

    monkeypatch.setenv("NEARNB_DISPLAY", "plain")
    shell = InteractiveShell.instance()
    assert shell.run_cell("%load_ext nearnb").success
    try:
        cell = shell.run_cell(f"%near_agent --attach '{path}'")
        assert cell.error_in_exec is None, cell.error_in_exec
        played = cell.result
    finally:
        shell.run_cell("%reload_ext nearnb")
    assert (played.status, played.run_id) == ("completed", result.run_id)
    assert played.text == result.text


def test_env_openai_streams_are_recorded_and_still_work_as_context_managers(
    srv: ScriptedOpenAI, tmp_path: Path
) -> None:
    code = (
        "create = env.openai.chat.completions.create\n"
        "with create(messages=env.list_messages(), stream=True) as s:\n"
        "    text = ''.join(c.choices[0].delta.content or '' for c in s if c.choices)\n"
        "env.add_reply(text)\n"
    )
    srv.script(["via ", "env.openai"])
    result = run_agent(make_agent(tmp_path / "sdkish", code), "hi")
    assert (result.status, result.text) == ("completed", "via env.openai"), result.error
    _, [(_, request, response)] = recorded_calls(default_store(), result.run_id)
    assert request["kind"] == "stream" and response is not None
    assert response["reason"] == "done" and len(response["chunks"]) >= 2
