"""Agent folders: metadata validation, lookup, NEAR-style execution."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from nearnb.agents import AgentError, find_agent, load_agent
from nearnb.execution import exec_agent
from tests.conftest import EXAMPLES


def write_agent(folder: Path, code: str = "pass\n", metadata: object | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "agent.py").write_text(code)
    meta = metadata if metadata is not None else {"name": folder.name, "version": "0.1"}
    (folder / "metadata.json").write_text(meta if isinstance(meta, str) else json.dumps(meta))
    return folder


def test_examples_load_with_their_defaults() -> None:
    agent = load_agent(EXAMPLES / "streaming-example")
    assert agent.name == "streaming-example" and agent.show_streaming_message is True
    assert agent.defaults.model == "llama-v3p3-70b-instruct"
    assert agent.defaults.model_provider == "fireworks" and agent.defaults.model_max_tokens == 4000
    assert agent.welcome_title == "Example of streaming agent runs"
    assert load_agent(EXAMPLES / "intermediate-example").show_streaming_message is False


def test_missing_show_streaming_message_means_true(tmp_path: Path) -> None:
    assert load_agent(write_agent(tmp_path / "a")).show_streaming_message is True


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [
        ('{"name": "a", "version": ', "not valid JSON"),
        ({"version": "1"}, "name: Field required"),
        ({"name": "has space", "version": "1"}, "name: String should match pattern"),
        (
            {
                "name": "a",
                "version": "1",
                "details": {"agent": {"defaults": {"model_temperature": "hot"}}},
            },
            "details.agent.defaults.model_temperature: Input should be a valid number",
        ),
        (
            {
                "name": "a",
                "version": "1",
                "details": {"agent": {"show_streaming_message": "maybe"}},
            },
            "details.agent.show_streaming_message: Input should be a valid boolean",
        ),
    ],
)
def test_broken_metadata_names_the_problem(tmp_path: Path, metadata: object, expected: str) -> None:
    folder = write_agent(tmp_path / "a", metadata=metadata)
    with pytest.raises(AgentError, match="metadata.json") as info:
        load_agent(folder)
    assert expected in str(info.value)
    assert "\n" not in str(info.value)


def test_missing_files_and_unknown_agents(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(AgentError, match="metadata.json is missing"):
        load_agent(tmp_path / "empty")
    with pytest.raises(AgentError, match="agent not found: nope"):
        find_agent("nope")
    monkeypatch.setenv("NEARNB_AGENTS_DIR", str(EXAMPLES))
    assert find_agent("simple-agent") == (EXAMPLES / "simple-agent").resolve()


def test_agents_dir_from_config(nearnb_home: Path, tmp_path: Path) -> None:
    write_agent(tmp_path / "agents" / "mine")
    (nearnb_home / "config.toml").write_text(f'[agents]\ndirs = ["{tmp_path / "agents"}"]\n')
    assert find_agent("mine").name == "mine"


def test_exec_follows_near_conventions(tmp_path: Path) -> None:
    folder = tmp_path / "conv"
    write_agent(
        folder,
        code=(
            "import helper\n"
            "from nearai.agents.environment import Environment\n"
            "env.seen = dict(name=__name__, file=__file__, task=task, agent=agent.name,\n"
            "                helper=helper.VALUE, env_is_env=isinstance(env, object))\n"
        ),
    )
    (folder / "helper.py").write_text("VALUE = 1\n")

    class Env:
        seen: dict

    env = Env()
    agent = load_agent(folder)
    exec_agent(agent, env, "hi")
    assert env.seen == {
        "name": "__main__",
        "file": str(folder / "agent.py"),
        "task": "hi",
        "agent": "conv",
        "helper": 1,
        "env_is_env": True,
    }
    assert str(folder) not in sys.path  # removed again after the run
    (folder / "helper.py").write_text("VALUE = 2\n")
    exec_agent(agent, env, None)
    assert env.seen["helper"] == 2  # the agent's own modules are reloaded each run


def test_nearai_shim_exposes_our_environment() -> None:
    from nearnb._compat import install_nearai_shim
    from nearnb.environment import Environment

    assert install_nearai_shim() is True
    from nearai.agents.environment import Environment as Shimmed  # type: ignore[import-not-found]

    assert Shimmed is Environment


def test_a_real_nearai_install_is_not_shadowed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = tmp_path / "site" / "nearai"
    (fake / "agents").mkdir(parents=True)
    (fake / "__init__.py").write_text("REAL = True\n")
    (fake / "agents" / "__init__.py").write_text("")
    (fake / "agents" / "environment.py").write_text("class Environment: real = True\n")
    for name in [m for m in sys.modules if m == "nearai" or m.startswith("nearai.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    from nearnb._compat import install_nearai_shim

    assert install_nearai_shim() is False
    import nearai.agents.environment as real  # type: ignore[import-not-found]

    assert real.Environment.real is True
    for name in [m for m in sys.modules if m == "nearai" or m.startswith("nearai.")]:
        monkeypatch.delitem(sys.modules, name)
