"""Regression tests for the hub's limits (issue 8, items 4, 5, 7, 8 and 10), on real uvicorn hubs.

* 4: a hub serves agents only from ``$NEARNB_HOME/agents`` and the folders it is given, never
  from its working directory, and says which folders it serves;
* 5: hostile bodies, headers and query strings get a 4xx in OpenAI's error shape, write
  nothing, leak no thread and keep the keep-alive connection;
* 7: a run whose producing process was SIGKILLed reads ``expired`` over REST, with no stream
  ever opened;
* 8: bodies above the size limit get 413 while being read (declared or chunked);
* 10: weak tokens on a non-loopback bind are refused; a generated token is printed once;
  the ``Bearer`` scheme is matched in any case.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from nearnb.config import home
from nearnb.hub.server import HubError, HubServer, check_token
from tests.agent_helpers import make_agent
from tests.conftest import ROOT
from tests.support.hub import (
    FakeRun,
    HubProcess,
    client_port,
    free_port,
    running_hub,
    store_counts,
)
from tests.support.openai_server import ScriptedOpenAI
from tests.support.waiting import wait_until

REPLY = "env.add_reply('ok')\n"
#: An agent that proves it ran: it writes a file next to itself.
MARKER = "import pathlib\npathlib.Path(__file__).with_name('RAN').write_text('x')\n"
BLOCK = "import time\ntime.sleep(600)\n"


def nearnb_threads() -> int:
    """Threads nearnb started in this process (run workers, event writers): a refused run
    request must not leave one behind (issue 8, item 3)."""
    return sum(t.name.startswith("nearnb-") for t in threading.enumerate())


def error_of(response: httpx.Response) -> dict:
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"message", "type", "param", "code"}, body
    return body["error"]


@pytest.fixture
def agents(tmp_path: Path) -> Path:
    folder = tmp_path / "agents"
    make_agent(folder / "echo", REPLY)
    make_agent(folder / "broken", REPLY)
    (folder / "broken" / "metadata.json").write_text("{not json")
    return folder


@pytest.fixture
def hub(agents: Path) -> Iterator[HubServer]:
    with running_hub(agents_dir=agents) as server:
        yield server


@pytest.fixture
def api(hub: HubServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=hub.url + "/v1", timeout=30) as client:
        yield client


# ------------------------------------------------------------ 4: agents folders


def test_a_hub_never_runs_folders_below_its_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cwd = tmp_path / "cwd"
    outside = make_agent(cwd / "evil", MARKER)
    make_agent(home() / "agents" / "homely", REPLY)
    monkeypatch.chdir(cwd)
    with running_hub() as server, httpx.Client(base_url=server.url + "/v1") as api:
        tid = api.post("/threads", json={}).json()["id"]
        before = store_counts()
        for name in ("evil", "local/evil/0.1.0"):
            response = api.post(f"/threads/{tid}/runs", json={"assistant_id": name})
            assert response.status_code == 404, response.text
            assert error_of(response)["param"] == "assistant_id"
            assert str(home() / "agents") in error_of(response)["message"]
        assert store_counts() == before and not (outside / "RAN").exists()
        run = api.post(f"/threads/{tid}/runs", json={"assistant_id": "homely"}).json()
        assert run["assistant_id"] == "local/homely/0.1.0"


def test_several_agents_folders_are_served_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    make_agent(one / "first", REPLY)
    make_agent(two / "second", REPLY)
    with (
        caplog.at_level(logging.INFO, logger="nearnb.hub.app"),
        running_hub(agents_dir=[one, str(two)]) as server,
    ):
        assert server.agents_dirs == [home().resolve() / "agents", one.resolve(), two.resolve()]
        with httpx.Client(base_url=server.url + "/v1") as api:
            tid = api.post("/threads", json={}).json()["id"]
            for name in ("first", "second"):
                response = api.post(f"/threads/{tid}/runs", json={"assistant_id": name})
                assert response.status_code == 200, response.text
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert str(one.resolve()) in logged and str(two.resolve()) in logged


def test_cli_startup_line_names_every_served_folder(tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "nearnb.hub", "--port", str(port)]
        + ["--agents", str(one), "--agents", str(two)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        banner = proc.stdout.readline()
        for folder in (home() / "agents", one, two):
            assert str(folder.resolve()) in banner, banner
        assert f"127.0.0.1:{port}/v1" in banner
    finally:
        proc.terminate()
        proc.wait(15)


# ------------------------------------------------------------- 5: hostile input

SURROGATE = '"\\ud800"'  # a lone surrogate, as a JSON escape


def _raw(template: str) -> bytes:
    return template.replace("@", SURROGATE).encode()


HOSTILE_POSTS = [
    ("/threads", b"[" * 5000, "invalid_json"),
    ("/threads", b'{"a":' * 5000, "invalid_json"),
    ("/threads", _raw('{"messages": [{"role": "user", "content": "ok"}, {"content": @}]}'), None),
    ("/threads", _raw('{"metadata": {"k": @}}'), None),
    ("/threads", b'{"messages": [{"content": "x", "attachments": [{"type": "text"}]}]}', None),
    ("/threads", b'{"metadata": {"k": 1e999}}', None),
    ("/threads", b'{"x": 1e999}', "invalid_json"),
    ("/threads", b'{"x": NaN}', "invalid_json"),
    ("/threads", b'{"x": "\xed\xa0\x80"}', "invalid_json"),  # a surrogate as raw bytes
    ("/threads", b'{"x": 1' + b"0" * 5000 + b"}", "invalid_json"),
    ("/threads", b"\xff\xfe", "invalid_json"),
    ("{thread}/messages", _raw('{"content": @}'), None),
    ("{thread}/messages", _raw('{"content": [{"type": "text", "text": @}]}'), None),
    ("{thread}/messages", b'{"content": "x", "attachments": [{"type": "text"}]}', None),
    ("{thread}/messages", b'{"content": "x", "metadata": {"' + b"k" * 65 + b'": "v"}}', None),
    ("{thread}/runs", _raw('{"assistant_id": "echo", "model": @}'), None),
    ("{thread}/runs", _raw('{"assistant_id": "echo", "provider": @}'), None),
    ("{thread}/runs", b'{"assistant_id": "echo", "model": "a\\u0000b"}', None),
    (
        "{thread}/runs",
        _raw('{"assistant_id": "echo", "additional_messages": [{"content": @}]}'),
        None,
    ),
    ("{thread}/runs", _raw('{"assistant_id": "echo", "metadata": {"k": @}}'), None),
    ("{thread}/runs", b'{"assistant_id": "' + b"a" * 300 + b'"}', None),
    ("{thread}/runs", b'{"assistant_id": "' + b"a/" * 149 + b'a"}', None),
    (
        "{thread}/runs",
        b'{"assistant_id": "broken", "additional_messages": [{"content": "x"}]}',
        None,
    ),
    ("/chat/completions", _raw('{"messages": [{"role": "user", "content": @}]}'), None),
    ("/chat/completions", b'{"messages": [{"role": "user"}], "temperature": 1e999}', None),
    ("/chat/completions", b'{"messages": [{"role": "user"}], "max_tokens": -1}', None),
    ("/chat/completions", b'{"messages": [{"role": "user"}], "logit_bias": {"x": 1}}', None),
]


@pytest.mark.parametrize(("path", "body", "code"), HOSTILE_POSTS)
def test_hostile_bodies_are_4xx_in_openai_shape_and_write_nothing(
    api: httpx.Client, path: str, body: bytes, code: str | None
) -> None:
    tid = api.post("/threads", json={}).json()["id"]
    first = api.get(f"/threads/{tid}")
    threads_before = nearnb_threads()
    before = store_counts()
    response = api.post(path.format(thread=f"/threads/{tid}"), content=body)
    assert 400 <= response.status_code < 500, response.text
    error = error_of(response)
    if code is not None:
        assert error["code"] == code
    assert store_counts() == before
    assert nearnb_threads() <= threads_before  # no event writer left behind (item 3)
    again = api.get(f"/threads/{tid}")
    assert client_port(again) == client_port(first)  # the keep-alive connection survived


@pytest.mark.parametrize(
    ("headers", "params", "param"),
    [
        ({"Last-Event-ID": "²".encode()}, {}, "Last-Event-ID"),
        ({"Last-Event-ID": b"\xb2"}, {}, "Last-Event-ID"),
        ({"Last-Event-ID": b"-1"}, {}, "Last-Event-ID"),
        ({"Last-Event-ID": b"9" * 19}, {}, "Last-Event-ID"),
        ({}, {"after": "9" * 5000}, "after"),
        ({}, {"after": "1e3"}, "after"),
    ],
)
def test_hostile_resume_positions_are_422(
    api: httpx.Client, headers: dict, params: dict, param: str
) -> None:
    run = FakeRun(2).complete()
    response = api.get(run.stream_path()[3:], headers=headers, params=params)
    assert response.status_code == 422, response.text
    assert error_of(response)["param"] == param
    assert len(error_of(response)["message"]) < 200  # a 5,000-digit value is not echoed whole


@pytest.mark.parametrize("limit", ["9" * 5000, "²", "-3", "1.5", ""])
def test_hostile_page_sizes_are_422(api: httpx.Client, limit: str) -> None:
    tid = api.post("/threads", json={}).json()["id"]
    response = api.get(f"/threads/{tid}/messages", params={"limit": limit})
    assert response.status_code == 422 and error_of(response)["param"] == "limit"


def test_a_refused_thread_with_messages_is_not_created(api: httpx.Client) -> None:
    body = _raw('{"messages": [{"content": "fine"}, {"content": "x", "metadata": {"k": @}}]}')
    before = store_counts()
    assert api.post("/threads", content=body).status_code == 422
    assert store_counts() == before


# ------------------------------------------------------- 7: liveness over REST

PRODUCER = """
import sys
from nearnb.runs import start_run
handle = start_run(sys.argv[1], "go")
print(handle.thread_id, handle.run_id, flush=True)
handle.wait()
"""


def _run_status(run_id: str) -> str | None:
    db = sqlite3.connect(home() / "nearnb.db")
    try:
        row = db.execute("SELECT status FROM runs WHERE id = ?", (run_id,)).fetchone()
    finally:
        db.close()
    return row[0] if row else None


@dataclass
class Producer:
    """``start_run`` of an agent that blocks, in a child process (a notebook kernel)."""

    proc: subprocess.Popen[str]
    thread_id: str
    run_id: str

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)  # reaped: a zombie still counts as a live pid


@pytest.fixture
def producer(tmp_path: Path, srv: ScriptedOpenAI) -> Iterator[Producer]:
    agent = make_agent(tmp_path / "blocker", BLOCK)
    errors = tmp_path / "producer.err"
    with errors.open("w") as stderr:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen(
            [sys.executable, "-c", PRODUCER, str(agent)],
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
    try:
        assert proc.stdout is not None
        started = proc.stdout.readline().split()
        assert len(started) == 2, f"the producer did not start: {errors.read_text()}"
        thread_id, run_id = started
        wait_until(lambda: _run_status(run_id) == "in_progress", "the agent is running")
        yield Producer(proc, thread_id, run_id)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()


def test_a_sigkilled_producers_run_reads_expired_over_rest_without_a_stream(
    producer: Producer,
) -> None:
    with running_hub() as server, httpx.Client(base_url=server.url + "/v1") as api:
        path = f"/threads/{producer.thread_id}/runs/{producer.run_id}"
        assert api.get(path).json()["status"] == "in_progress"  # alive: left alone
        producer.kill()
        wait_until(lambda: api.get(path).json()["status"] == "expired", "GET says expired")
        run = api.get(path).json()
        assert run["last_error"]["code"] == "server_error"
        assert str(producer.proc.pid) in run["last_error"]["message"]
        listed = api.get(f"/threads/{producer.thread_id}/runs").json()["data"]
        assert [(r["id"], r["status"]) for r in listed] == [(producer.run_id, "expired")]
        assert server.hub.broker.channels == {}  # nobody ever opened the stream


def test_list_runs_expires_an_orphan_too(producer: Producer) -> None:
    producer.kill()
    with running_hub() as server, httpx.Client(base_url=server.url + "/v1") as api:
        listed = api.get(f"/threads/{producer.thread_id}/runs").json()["data"]
        assert [r["status"] for r in listed] == ["expired"]
        assert server.hub.broker.channels == {}


# ------------------------------------------------------------- 8: body size


def _big_message(size: int) -> bytes:
    return json.dumps({"content": "x" * size}).encode()


def test_a_body_over_the_default_limit_is_413_and_not_stored(api: httpx.Client) -> None:
    tid = api.post("/threads", json={}).json()["id"]
    first = api.get(f"/threads/{tid}")
    before = store_counts()
    response = api.post(f"/threads/{tid}/messages", content=_big_message(5 * 1024 * 1024))
    assert response.status_code == 413
    error = error_of(response)
    assert error["code"] == "request_too_large" and str(4 * 1024 * 1024) in error["message"]
    assert store_counts() == before
    again = api.get(f"/threads/{tid}")
    assert again.status_code == 200 and client_port(again) == client_port(first)
    fits = api.post(f"/threads/{tid}/messages", content=_big_message(3 * 1024 * 1024))
    assert fits.status_code == 200


def test_a_chunked_body_over_the_limit_is_413_while_it_is_read() -> None:
    with running_hub(max_body=10_000) as server, httpx.Client(base_url=server.url + "/v1") as api:
        tid = api.post("/threads", json={}).json()["id"]
        first = api.get(f"/threads/{tid}")
        before = store_counts()
        sent: list[int] = []

        def chunks() -> Iterator[bytes]:  # no Content-Length: Transfer-Encoding: chunked
            body = _big_message(1_000_000)
            for i in range(0, len(body), 4096):
                sent.append(i)
                yield body[i : i + 4096]

        response = api.post(f"/threads/{tid}/messages", content=chunks())
        assert response.request.headers.get("transfer-encoding") == "chunked"
        assert response.status_code == 413 and error_of(response)["code"] == "request_too_large"
        assert store_counts() == before
        again = api.get(f"/threads/{tid}")
        assert client_port(again) == client_port(first)
        small = api.post(f"/threads/{tid}/messages", content=_big_message(5_000))
        assert small.status_code == 200


def test_a_huge_declared_length_is_refused_before_reading() -> None:
    import socket

    with running_hub(max_body=1000) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(
                b"POST /v1/threads HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Content-Type: application/json\r\nContent-Length: 1000000000\r\n\r\n{"
            )
            answer = b""
            while b"request_too_large" not in answer and (chunk := sock.recv(65536)):
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 413"), answer
        assert b'"request_too_large"' in answer
    assert store_counts()["threads"] == 0


def test_the_limit_comes_from_env_and_cli(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEARNB_MAX_BODY", "2048")
    with running_hub() as server:
        assert server.max_body == 2048
        ok = httpx.post(server.url + "/v1/threads", content=b'{"metadata": {}}')
        assert ok.status_code == 200
        big = httpx.post(server.url + "/v1/threads", content=b" " * 3000 + b"{}")
        assert big.status_code == 413
    monkeypatch.setenv("NEARNB_MAX_BODY", "lots")
    with pytest.raises(HubError, match="NEARNB_MAX_BODY"):
        HubServer("127.0.0.1", 0)
    monkeypatch.delenv("NEARNB_MAX_BODY")
    with HubProcess(None, "--max-body", "100") as process:
        response = httpx.post(process.url + "/v1/threads", content=b" " * 200 + b"{}")
        assert response.status_code == 413 and "100 bytes" in error_of(response)["message"]


# ---------------------------------------------------------------- 10: tokens


def test_a_short_token_on_a_public_bind_is_refused() -> None:
    with pytest.raises(HubError, match="at least 16 characters"):
        check_token("0.0.0.0", "a")
    check_token("0.0.0.0", "x" * 16)
    check_token("127.0.0.1", "a")  # loopback: any token
    done = subprocess.run(
        [sys.executable, "-m", "nearnb.cli", "hub", "--host", "0.0.0.0", "--token", "a"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert done.returncode == 2 and "at least 16 characters" in done.stderr


def test_a_generated_token_is_printed_once_and_required(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with running_hub(generate_token=True) as server:
        token = server.token
        assert token and len(token) >= 16
        err = capsys.readouterr().err
        assert err.count(token) == 1
        base = server.url + "/v1/threads"
        assert httpx.post(base, json={}).status_code == 401
        assert httpx.post(base, json={}, headers={"Authorization": f"Bearer {token}"}).is_success


def test_the_bearer_scheme_is_case_insensitive() -> None:
    token = "s3cret-token-123456"
    cases = {
        f"Bearer {token}": 404,  # past the guard: the thread does not exist
        f"bearer {token}": 404,
        f"BEARER  {token}": 404,
        f"Basic {token}": 401,
        f"Bearer{token}": 401,
        f"Bearer {token[:-1]}": 401,
        token: 401,
    }
    with running_hub(token=token) as server, httpx.Client(base_url=server.url) as client:
        for header, status in cases.items():
            response = client.get("/v1/threads/none", headers={"Authorization": header})
            assert response.status_code == status, (header, response.text)
