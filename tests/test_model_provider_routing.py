"""``--model`` / ``--provider`` reach the model server, from every entry point.

Two real scripted OpenAI-compatible servers on 127.0.0.1 are registered as two providers,
``alpha`` and ``beta``, each with its own API key (a request with another key gets HTTP 401).
The agent's metadata names ``alpha::default-model``. Each case starts the agent through

* ``%%near_agent`` in a real (in-process) IPython shell,
* ``nearnb run`` in a subprocess,
* ``POST /v1/threads/{tid}/runs`` to a real hub (uvicorn on 127.0.0.1),

and asserts on what the servers received: which server got the request says which provider
was used, its body's ``model`` which model, its ``Authorization`` header whose key. The answer
each server scripts ("from alpha" / "from beta") must also come back as the run's answer.
``NEARNB_FALLBACK=error``: a provider that cannot be used fails the run instead of quietly
answering from the embedded model.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from httpx_sse import connect_sse
from IPython.core.interactiveshell import InteractiveShell

from nearnb.runs import RunResult
from tests.agent_helpers import make_agent
from tests.conftest import ROOT
from tests.support.hub import running_hub
from tests.support.openai_server import ScriptedOpenAI

STREAM_REPLY = "env.add_reply(env.completion(env.list_messages(), stream=True))\n"
KEYS = {"alpha": "sk-alpha-test-key", "beta": "sk-beta-test-key"}


@dataclass(frozen=True)
class Case:
    """Options as a user gives them, and where the request must land."""

    model: str | None
    provider: str | None
    server: str  # "alpha" or "beta"
    sent_model: str  # the body's "model"

    def flags(self) -> list[str]:
        """The magic's and the CLI's options."""
        out: list[str] = []
        if self.model is not None:
            out += ["--model", self.model]
        if self.provider is not None:
            out += ["--provider", self.provider]
        return out

    def body(self) -> dict[str, str]:
        """The hub's run-request fields."""
        return {
            k: v for k, v in (("model", self.model), ("provider", self.provider)) if v is not None
        }


CASES = [
    # no options: the agent's defaults (proves the other cases change something)
    Case(None, None, "alpha", "default-model"),
    Case(None, "beta", "beta", "default-model"),  # provider only: the agent's model name kept
    Case("chosen-model", None, "alpha", "chosen-model"),  # model only: the agent's provider
    Case("chosen-model", "beta", "beta", "chosen-model"),
    Case("beta::chosen-model", None, "beta", "chosen-model"),  # provider::model in --model
]
CASE_IDS = ["defaults", "provider", "model", "model+provider", "provider::model"]


@dataclass
class Servers:
    alpha: ScriptedOpenAI
    beta: ScriptedOpenAI

    def __getitem__(self, name: str) -> ScriptedOpenAI:
        return {"alpha": self.alpha, "beta": self.beta}[name]

    def assert_routed(self, case: Case) -> None:
        """Exactly one request, to the expected server, with the expected model and key."""
        other = "beta" if case.server == "alpha" else "alpha"
        assert self[other].requests == [], f"{other} was asked, not {case.server}"
        (request,) = self[case.server].requests
        assert request.path == "/v1/chat/completions"
        assert request.body["model"] == case.sent_model
        assert request.body["stream"] is True
        assert request.headers["authorization"] == f"Bearer {KEYS[case.server]}"
        last = request.body["messages"][-1]  # the user's message, as the agent listed it
        assert (last["role"], last["content"]) == ("user", "Which one?")


@pytest.fixture
def servers(monkeypatch: pytest.MonkeyPatch) -> Iterator[Servers]:
    with (
        ScriptedOpenAI(api_key=KEYS["alpha"]) as alpha,
        ScriptedOpenAI(api_key=KEYS["beta"]) as beta,
    ):
        for name, server in (("alpha", alpha), ("beta", beta)):
            server.default = None  # a second request would get HTTP 500: one request each
            server.script(["from ", name])
            monkeypatch.setenv(f"NEARNB_PROVIDER_{name.upper()}_BASE_URL", server.base_url)
            monkeypatch.setenv(f"NEARNB_PROVIDER_{name.upper()}_API_KEY", KEYS[name])
        monkeypatch.setenv("NEARNB_FALLBACK", "error")
        yield Servers(alpha, beta)


@pytest.fixture
def agent(tmp_path: Path) -> Path:
    defaults = {"model": "default-model", "model_provider": "alpha"}
    return make_agent(tmp_path / "agents" / "router", STREAM_REPLY, defaults=defaults)


# ---------------------------------------------------------------- the magic


@pytest.fixture
def ip(monkeypatch: pytest.MonkeyPatch) -> Iterator[InteractiveShell]:
    monkeypatch.setenv("NEARNB_DISPLAY", "plain")
    shell = InteractiveShell.instance()
    assert shell.run_cell("%load_ext nearnb").success
    yield shell
    shell.run_cell("%reload_ext nearnb")  # forget remembered threads between tests


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_magic_options_reach_the_server(
    case: Case, servers: Servers, agent: Path, ip: InteractiveShell
) -> None:
    line = shlex.join(["%%near_agent", str(agent), *case.flags()])
    cell = ip.run_cell(f"{line}\nWhich one?")
    assert cell.error_in_exec is None, cell.error_in_exec
    result = cell.result
    assert isinstance(result, RunResult)
    assert result.status == "completed", result.error
    servers.assert_routed(case)
    assert [m.text for m in result.messages] == [f"from {case.server}"]


# ------------------------------------------------------------------ the CLI


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_cli_options_reach_the_server(case: Case, servers: Servers, agent: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "nearnb.cli", "run", str(agent), "Which one?", *case.flags()],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env=dict(os.environ),  # NEARNB_HOME and both providers, from the fixtures
    )
    assert done.returncode == 0, done.stderr
    servers.assert_routed(case)
    assert f"from {case.server}" in done.stdout


# ------------------------------------------------------------------ the hub


def hub_run(base: str, body: dict[str, object]) -> list[tuple[str, dict[str, object]]]:
    """Create a thread, start a streamed run on it, read the stream to its end."""
    with httpx.Client(base_url=base, timeout=httpx.Timeout(10, read=60)) as client:
        thread = client.post("/v1/threads", json={}).raise_for_status().json()
        with connect_sse(client, "POST", f"/v1/threads/{thread['id']}/runs", json=body) as source:
            source.response.raise_for_status()
            return [
                (sse.event, json.loads(sse.data))
                for sse in source.iter_sse()
                if sse.event != "done"
            ]


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_hub_run_request_fields_reach_the_server(case: Case, servers: Servers, agent: Path) -> None:
    body = {
        "assistant_id": agent.name,
        "additional_messages": [{"role": "user", "content": "Which one?"}],
        "stream": True,
        **case.body(),
    }
    with running_hub(agents_dir=agent.parent) as hub:
        events = hub_run(hub.url, body)
    names = [name for name, _ in events]
    assert names[-1] == "thread.run.completed", events[-3:]
    servers.assert_routed(case)
    (completed,) = [data for name, data in events if name == "thread.message.completed"]
    assert completed["content"][0]["text"]["value"] == f"from {case.server}"
