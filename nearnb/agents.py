"""Agent folders in the NEAR AI format: ``agent.py`` + ``metadata.json``.

Loading validates ``metadata.json`` with pydantic so a mistake is reported
with the field that is wrong, before any run starts. Executing follows NEAR's
conventions exactly, so agents written for NEAR run unchanged: fresh globals
holding ``env``, ``agent``, ``task``, ``__name__ == "__main__"`` and
``__file__``; the agent folder on ``sys.path``; the agent's own modules
reloaded on every run.

One deliberate difference: NEAR changed the process working directory to a
copy of the agent folder. In a notebook kernel that would move the user's
cwd under their feet (and race between concurrent runs), so nearnb leaves
cwd alone; agents reach their files through ``env.read_file``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .config import load_config


class AgentError(ValueError):
    """An agent folder cannot be used; the message is one line naming why."""


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class Defaults(_Open):
    model: str = ""
    model_provider: str = ""
    model_temperature: float | None = None
    model_max_tokens: int | None = Field(default=None, gt=0)
    max_iterations: int | None = None


class Welcome(_Open):
    title: str = ""
    description: str = ""


class AgentDetails(_Open):
    defaults: Defaults = Field(default_factory=Defaults)
    #: NEAR's web UI treated a missing value as true; so do we.
    show_streaming_message: bool = True
    welcome: Welcome | None = None


class Details(_Open):
    agent: AgentDetails = Field(default_factory=AgentDetails)
    display_name: str | None = None
    env_vars: dict[str, str] = Field(default_factory=dict)


class AgentMetadata(_Open):
    name: str = Field(min_length=1, pattern=r"^\S+$")
    version: str = Field(min_length=1)
    description: str = ""
    category: str = "agent"
    tags: list[str] = Field(default_factory=list)
    details: Details = Field(default_factory=Details)
    show_entry: bool = True


@dataclass(frozen=True)
class Agent:
    """A loaded agent folder. This is the ``agent`` global NEAR agents see."""

    path: Path
    metadata: AgentMetadata

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def identifier(self) -> str:
        """``local/<name>/<version>``, NEAR's namespace/name/version shape."""
        return f"{self.namespace}/{self.metadata.name}/{self.metadata.version}"

    @property
    def namespace(self) -> str:
        """NEAR's owner account; agents run here are all ``local``."""
        return "local"

    @property
    def version(self) -> str:
        return self.metadata.version

    def get_full_name(self) -> str:
        """NEAR's ``namespace/name/version``."""
        return self.identifier

    @property
    def defaults(self) -> Defaults:
        return self.metadata.details.agent.defaults

    @property
    def show_streaming_message(self) -> bool:
        return self.metadata.details.agent.show_streaming_message

    # NEAR's Agent exposed these as attributes; some agents read them.
    @property
    def model(self) -> str:
        return self.defaults.model

    @property
    def model_provider(self) -> str:
        return self.defaults.model_provider

    @property
    def model_temperature(self) -> float | None:
        return self.defaults.model_temperature

    @property
    def model_max_tokens(self) -> int | None:
        return self.defaults.model_max_tokens

    @property
    def welcome_title(self) -> str:
        welcome = self.metadata.details.agent.welcome
        return welcome.title if welcome else ""

    @property
    def welcome_description(self) -> str:
        welcome = self.metadata.details.agent.welcome
        return welcome.description if welcome else ""

    @property
    def env_vars(self) -> dict[str, str]:
        return dict(self.metadata.details.env_vars)


def agent_dirs() -> list[Path]:
    """Folders searched for agents named by name: ``$NEARNB_AGENTS_DIR``
    (os.pathsep-separated) then ``[agents] dirs`` in config.toml."""
    dirs = [Path(p) for p in os.environ.get("NEARNB_AGENTS_DIR", "").split(os.pathsep) if p]
    dirs += [Path(p) for p in (load_config().get("agents") or {}).get("dirs", [])]
    return [d.expanduser() for d in dirs]


def find_agent(name_or_path: str | os.PathLike[str], dirs: Iterable[Path] | None = None) -> Path:
    """The agent folder for a path, or for a name under the agents dirs."""
    candidate = Path(name_or_path).expanduser()
    searched = [candidate]
    if not candidate.is_dir() and not candidate.is_absolute():
        for base in agent_dirs() if dirs is None else dirs:
            searched.append(base / candidate)
            if (base / candidate).is_dir():
                candidate = base / candidate
                break
    if not candidate.is_dir():
        where = ", ".join(str(p) for p in searched)
        raise AgentError(f"agent not found: {name_or_path!s} (looked in {where})")
    return candidate.resolve()


def load_agent(path: str | os.PathLike[str]) -> Agent:
    """Load and validate an agent folder; :class:`AgentError` names the problem."""
    folder = find_agent(path)
    meta_path = folder / "metadata.json"
    if not meta_path.is_file():
        raise AgentError(f"{folder}: metadata.json is missing")
    if not (folder / "agent.py").is_file():
        raise AgentError(f"{folder}: agent.py is missing")
    try:
        raw = json.loads(meta_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise AgentError(
            f"{meta_path}: not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        ) from None
    try:
        metadata = AgentMetadata.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "(top level)"
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise AgentError(f"{meta_path}: {field}: {first['msg']}{more}") from None
    return Agent(path=folder, metadata=metadata)
