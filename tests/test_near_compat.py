"""NEAR 0.1.19 parity of the ``env`` object: the ``nearai`` stand-in, old call forms,
client attributes, files as NEAR laid them out, honest refusals, and the method table.

Every behaviour is checked in real runs (``nearnb.runs.run_agent``) against the scripted
OpenAI server, with agents written the way public NEAR agents are.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from nearnb.env_compat import REFUSED, UnsupportedCallError
from nearnb.environment import Environment
from nearnb.runs import run_agent
from nearnb.store import Store
from tests.agent_helpers import API_KEY, make_agent
from tests.conftest import EXAMPLES
from tests.support.openai_server import ScriptedOpenAI

FIXTURE = json.loads(
    (Path(__file__).parent / "fixtures" / "near_environment_methods.json").read_text()
)
NEAR_METHODS: dict[str, str] = FIXTURE["methods"]
NEAR_ATTRIBUTES: list[str] = FIXTURE["attributes"]

#: NEAR methods other parts of issue 10 are building; missing ones are skipped, not failed.
#: NEAR methods still being built (skipped by the walk, never refused); none are left.
IN_PROGRESS: dict[str, str] = {}


def _run(folder: Path, code: str, message: str = "go", **kwargs: Any) -> Any:
    result = run_agent(make_agent(folder, code), message, **kwargs)
    assert result.status == "completed", result.traceback
    return result


def _answer(result: Any) -> Any:
    return json.loads(result.messages[-1].text)


# ------------------------------------------------------------------ item 9: the method table


@pytest.mark.parametrize("name", sorted(NEAR_METHODS))
def test_every_near_environment_method_exists(name: str) -> None:
    member = getattr(Environment, name, None)
    if member is None and name in IN_PROGRESS:
        pytest.skip(f"in progress: {IN_PROGRESS[name]}")
    assert callable(member), f"env.{name} (NEAR: {name}{NEAR_METHODS[name]}) is missing"
    refusal = getattr(member, "_nearnb_refusal", None)
    assert refusal is None or name not in IN_PROGRESS, f"env.{name} is being built, not refused"


def test_the_refusal_table_is_honest() -> None:
    near_names = set(NEAR_METHODS) | set(NEAR_ATTRIBUTES)
    assert set(REFUSED) <= near_names, set(REFUSED) - near_names
    assert not set(REFUSED) & set(IN_PROGRESS)
    for name in REFUSED:  # implemented somewhere? then delete its REFUSED line
        assert getattr(Environment, name)._nearnb_refusal == REFUSED[name], name


def test_near_attributes_exist_on_a_running_env(srv: ScriptedOpenAI, tmp_path: Path) -> None:
    code = (
        "import json\n"
        f"names = {NEAR_ATTRIBUTES!r}\n"
        "env.add_reply(json.dumps([n for n in names if not hasattr(env, n)]))\n"
    )
    assert _answer(_run(tmp_path / "attrs", code)) == []


# ------------------------------------------------------------------ item 1: the stand-in


def test_nearai_stand_in_offers_near_types(srv: ScriptedOpenAI, tmp_path: Path) -> None:
    code = """
import json
from nearai.agents.environment import Environment, ThreadMode, RunMode
from nearai.agents.environment import DEFAULT_PROVIDER_MODEL, SYSTEM_LOG_FILENAME
from nearai.agents.agent import Agent
from nearai.agents.tool_registry import ToolRegistry
from nearai.shared.client_config import DEFAULT_MODEL_MAX_TOKENS
from nearai.shared.inference_client import InferenceClient
import nearai.shared.models as models
from nearai.shared.models import GitHubSource, SimilaritySearch, ExpiresAfter

assert isinstance(env, Environment) and isinstance(agent, Agent)
assert models.ThreadMode is ThreadMode and models.RunMode is RunMode
assert isinstance(env.get_tool_registry(), ToolRegistry)
env.add_reply(json.dumps({
    "thread": {m.name: m.value for m in ThreadMode},
    "run": {m.name: m.value for m in RunMode},
    "source": GitHubSource(owner="o", repo="r").model_dump(),
    "hit": SimilaritySearch(file_id="f", chunk_text="t", distance=0.5).distance,
    "expires": sorted(ExpiresAfter.__annotations__),
    "defaults": [DEFAULT_PROVIDER_MODEL, DEFAULT_MODEL_MAX_TOKENS, SYSTEM_LOG_FILENAME],
    "client": InferenceClient.__name__,
}))
"""
    assert _answer(_run(tmp_path / "types", code)) == {
        "thread": {"SAME": 1, "FORK": 2, "CHILD": 3},
        "run": {"SIMPLE": 0, "WITH_CALLBACK": 1},
        "source": {"type": "github", "owner": "o", "repo": "r", "branch": "main"},
        "hit": 0.5,
        "expires": ["anchor", "days"],
        "defaults": [
            "fireworks::accounts/fireworks/models/llama-v3p1-70b-instruct",
            16384,
            "system_log.txt",
        ],
        "client": "InferenceClient",
    }


def test_import_nearnb_stays_light() -> None:
    code = (
        "import sys, nearnb\n"
        "heavy = [m for m in ('nearnb.near_models', 'nearnb.near_clients', 'nearnb.env_compat',"
        " 'pydantic', 'openai') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_the_hub_client_stand_in_refuses_clearly() -> None:
    from nearnb._compat import install_nearai_shim

    assert install_nearai_shim() is True
    from nearai.shared.inference_client import (  # type: ignore[import-not-found]
        ClientConfig,
        InferenceClient,
    )

    with pytest.raises(UnsupportedCallError, match="InferenceClient is not supported by nearnb"):
        InferenceClient(ClientConfig(base_url="https://api.near.ai/v1"))


# ------------------------------------------------------------------ item 6: old call forms


def test_get_inference_parameters_swaps_the_deprecated_order(
    srv: ScriptedOpenAI, tmp_path: Path
) -> None:
    code = """
import json, warnings
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    params, rest = env.get_inference_parameters(
        "scripted::other", [{"role": "user", "content": "hi"}], False, temperature=0.2, top_p=0.5)
env.add_reply(json.dumps({
    "model": params.model, "messages": params.messages, "temperature": params.temperature,
    "max_tokens": params.max_tokens, "rest": rest,
    "warned": [(w.category.__name__, str(w.message), w.filename) for w in caught],
    "log": env.read_file("system_log.txt"),
}))
"""
    folder = tmp_path / "params"
    got = _answer(_run(folder, code))
    assert got["model"] == "scripted::other"
    assert got["messages"] == [{"role": "user", "content": "hi"}]
    assert (got["temperature"], got["max_tokens"], got["rest"]) == (0.2, None, {"top_p": 0.5})
    message = "Deprecated completions call. Pass `messages` as a first parameter."
    assert got["warned"] == [["DeprecationWarning", message, str(folder / "agent.py")]]
    assert f"WARNING {message}" in got["log"]


def test_completion_with_the_model_first_still_answers(srv: ScriptedOpenAI, tmp_path: Path) -> None:
    srv.script("old style works")
    code = (
        "import warnings\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        "    text = env.completion('test-model', [{'role': 'user', 'content': 'hi'}])\n"
        "assert [w.category for w in caught] == [DeprecationWarning], caught\n"
        "env.add_reply(text)\n"
    )
    result = _run(tmp_path / "oldstyle", code)
    assert result.messages[-1].text == "old style works"
    assert srv.requests[0].body["messages"] == [{"role": "user", "content": "hi"}]


def test_env_openai_uses_the_runs_provider_and_hides_its_key(
    srv: ScriptedOpenAI, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    srv.script("plain answer", ["str", "eamed"])
    code = """
import json
client = env.openai
done = client.chat.completions.create(messages=[{"role": "user", "content": "a"}], temperature=0.3)
with client.chat.completions.create(model="test-model", messages=[{"role": "user", "content": "b"}],
                                     stream=True) as stream:
    pieces = [c.choices[0].delta.content for c in stream
              if c.choices and c.choices[0].delta.content]
print(repr(client), vars(client), vars(client.chat), vars(client.chat.completions))
env.add_reply(json.dumps({
    "text": done.choices[0].message.content, "pieces": pieces,
    "has_key": hasattr(client, "api_key"), "base_url": env.base_url,
}))
"""
    result = _run(tmp_path / "client", code)
    assert _answer(result) == {
        "text": "plain answer",
        "pieces": ["str", "eamed"],
        "has_key": False,
        "base_url": srv.base_url,
    }
    first, second = srv.requests
    assert first.body["model"] == second.body["model"] == "test-model"
    assert first.body["temperature"] == 0.3 and second.body["stream"] is True
    assert first.headers["authorization"] == f"Bearer {API_KEY}"  # the key reached the server
    out, err = capfd.readouterr()
    stored = json.dumps([e.model_dump(mode="json") for e in result.events])
    assert API_KEY not in out + err + stored + "".join(m.text for m in result.messages)


def test_env_async_openai_awaits_and_streams(srv: ScriptedOpenAI, tmp_path: Path) -> None:
    srv.script("async answer", ["a", "b", "c"])
    code = """
import asyncio, json

async def main():
    done = await env.async_openai.chat.completions.create(
        messages=[{"role": "user", "content": "x"}])
    stream = await env.async_openai.chat.completions.create(
        messages=[{"role": "user", "content": "y"}], stream=True)
    async with stream:
        pieces = [c.choices[0].delta.content async for c in stream
                  if c.choices and c.choices[0].delta.content]
    return done.choices[0].message.content, pieces

env.add_reply(json.dumps(asyncio.run(main())))
"""
    assert _answer(_run(tmp_path / "async", code)) == ["async answer", ["a", "b", "c"]]


def test_near_attributes_agents_read(
    srv: ScriptedOpenAI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code = """
import json
env.add_reply(json.dumps({
    "signer": env.signer_account_id, "user_auth": env.user_auth, "client": env.client,
    "tool_resources": env.tool_resources, "logs": env.logs_collection_mode,
    "env_vars": env.env_vars, "info": sorted(env.environment_run_info("b", "run")["details"]),
}))
"""
    folder = tmp_path / "attrs"
    got = _answer(_run(folder, code, env_vars={"DEBUG": "false"}))
    assert got == {
        "signer": None,
        "user_auth": None,
        "client": None,
        "tool_resources": {},
        "logs": False,
        "env_vars": {"DEBUG": "false"},
        "info": [
            "agents",
            "base_id",
            "primary_agent_name",
            "primary_agent_namespace",
            "primary_agent_version",
            "run_id",
            "run_type",
            "timestamp",
        ],
    }
    # NEAR's bearer token is JSON naming the account; with one configured, the signer is known
    token = {"account_id": "alice.near", "signature": "sig", "public_key": "ed25519:k"}
    monkeypatch.setenv("NEARAI_API_KEY", json.dumps(token))
    assert _answer(run_agent(folder, "again"))["signer"] == "alice.near"


# ------------------------------------------------------------------ item 7: files


def test_multifile_example_reads_its_files_by_relative_path(srv: ScriptedOpenAI) -> None:
    srv.script("What do you think virtue is?")
    folder = EXAMPLES / "near-style-multifile"
    before = os.getcwd()
    result = run_agent(folder, "What is virtue?", provider="scripted", model="test-model")
    assert result.status == "completed", result.traceback
    assert os.getcwd() == before
    body = srv.requests[0].body
    system = (folder / "prompts" / "system.txt").read_text(encoding="utf-8").strip()
    assert body["messages"][0] == {"role": "system", "content": system}
    assert body["temperature"] == 0.7  # settings.json, opened by relative path
    written = Store().thread_dir(result.thread_id) / "last_answer.txt"
    assert written.read_text() == "What do you think virtue is?"
    assert not (folder / "last_answer.txt").exists()  # the agent's folder is never written


def test_files_as_near_laid_them_out(srv: ScriptedOpenAI, tmp_path: Path) -> None:
    outside = tmp_path / "secret.txt"
    outside.write_text("secret")
    folder = tmp_path / "layout"
    (folder / "data").mkdir(parents=True)
    (folder / "data" / "facts.txt").write_text("shipped")
    (folder / "__pycache__").mkdir()
    code = f"""
import json, os
from nearnb.environment import FileAccessError
temp = env.get_agent_temp_path()
env.write_file("notes.txt", "mine", logging=False)
with open("data/facts.txt") as fh:
    relative = fh.read()
with open(os.path.join(temp, "data", "facts.txt")) as fh:
    via_temp = fh.read()
with open("data/new.txt", "w") as fh:
    fh.write("written")
os.symlink({str(outside)!r}, os.path.join(temp, "link.txt"))
refused = []
for call in (lambda: env.read_file("link.txt"),
             lambda: env.read_file(os.path.join(temp, "link.txt")),
             lambda: env.read_file({str(outside)!r}),
             lambda: env.list_files({str(tmp_path)!r}),
             lambda: env.write_file(os.path.join(temp, "..", "x.txt"), "x")):
    try:
        call()
    except FileAccessError:
        refused.append(True)
env.add_reply(json.dumps({{
    "top": env.list_files("."), "top_temp": env.list_files(temp),
    "data": env.list_files(os.path.join(temp, "data")),
    "read_abs": env.read_file(os.path.join(temp, "data/facts.txt")),
    "read_own": env.read_file(str(temp / "notes.txt")),
    "relative": relative, "via_temp": via_temp, "refused": len(refused),
    "cwd": os.getcwd(), "same_dir": env.get_primary_agent_temp_dir() == temp,
}}))
"""
    got = _answer(_run(folder, code))
    top = ["agent.py", "data", "link.txt", "metadata.json", "notes.txt"]
    assert got["top"] == got["top_temp"] == top  # no __pycache__
    assert got["data"] == ["facts.txt", "new.txt"]
    assert got["read_abs"] == got["relative"] == got["via_temp"] == "shipped"
    assert got["read_own"] == "mine"
    assert got["refused"] == 5
    assert got["cwd"] == os.getcwd()  # the run never moved the working directory
    assert got["same_dir"] is True
    assert not (folder / "data" / "new.txt").exists()


def test_concurrent_runs_each_open_their_own_files(srv: ScriptedOpenAI, tmp_path: Path) -> None:
    barrier = threading.Barrier(2, timeout=20)
    module = type(sys)("near_compat_barrier")
    module.wait = barrier.wait  # type: ignore[attr-defined]
    sys.modules["near_compat_barrier"] = module
    code = (
        "import near_compat_barrier\n"
        "first = open('who.txt').read()\n"
        "near_compat_barrier.wait()\n"  # both runs are inside exec now
        "second = open('who.txt').read()\n"
        "env.add_reply(first + '/' + second)\n"
    )
    folders = [make_agent(tmp_path / name, code) for name in ("one", "two")]
    for folder in folders:
        (folder / "who.txt").write_text(folder.name)
    answers: dict[str, str] = {}

    def go(folder: Path) -> None:
        answers[folder.name] = run_agent(folder, "go").messages[-1].text

    try:
        threads = [threading.Thread(target=go, args=(f,)) for f in folders]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
    finally:
        del sys.modules["near_compat_barrier"]
    assert answers == {"one": "one/one", "two": "two/two"}


# ------------------------------------------------------------------ item 8: refusals


def test_unsupported_calls_raise_one_clear_error(srv: ScriptedOpenAI, tmp_path: Path) -> None:
    code = f"""
import json
seen = {{}}
for name in {sorted(REFUSED)!r}:
    try:
        getattr(env, name)("x")
    except Exception as exc:
        seen[name] = [type(exc).__name__, isinstance(exc, NotImplementedError), str(exc)]
env.add_reply(json.dumps(seen))
"""
    seen = _answer(_run(tmp_path / "refusals", code))
    assert sorted(seen) == sorted(REFUSED)
    for name, (kind, not_implemented, message) in seen.items():
        assert (kind, not_implemented) == ("UnsupportedCallError", True)
        assert message == f"env.{name} is not supported by nearnb: {REFUSED[name]}"
