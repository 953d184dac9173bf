"""The ``env`` object's older NEAR call forms, client attributes and honest refusals.

Three things public NEAR agents rely on that are not about messages, files or tools:

* **Old call forms.** NEAR still accepted ``completion(model, messages)`` and
  swapped the arguments with a warning; :meth:`CompatMixin._messages_first` is
  that detection, for the completion methods to call.
* **Attributes agents read**: ``env.openai`` / ``env.async_openai`` (clients
  with NEAR's one method, ``chat.completions.create``, sent to the run's
  provider: see :mod:`nearnb.near_clients`), ``signer_account_id``,
  ``base_url`` and NEAR's other public attributes.
* **Refusals.** Calls tied to NEAR's blockchain or to NEAR AI Hub's hosted
  services cannot work here. Each raises :class:`UnsupportedCallError` naming
  the call and why, never ``AttributeError``, so an agent fails on the line
  that needs the service with a reason instead of a typo-looking error.
"""

from __future__ import annotations

import json
import logging
import uuid
import warnings
from collections.abc import Callable
from datetime import UTC, datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any

from .env_base import EnvBase

if TYPE_CHECKING:
    from .near_clients import AsyncNearClient, NearClient

logger = logging.getLogger("nearnb.agent")

#: NEAR's own words when it swapped the arguments (``get_inference_parameters``).
DEPRECATED_ORDER = "Deprecated completions call. Pass `messages` as a first parameter."


class UnsupportedCallError(NotImplementedError):
    """A NEAR ``env`` call that nearnb cannot provide; the message says which and why."""


#: NEAR 0.1.19 public ``Environment`` calls nearnb refuses, with the reason.
#: Only names that no part of ``Environment`` implements get a refusal (see
#: ``CompatMixin.__init_subclass__``), so implementing one later needs no edit here
#: beyond deleting its line (a test insists, so the README table stays true).
REFUSED: dict[str, str] = {
    "signed_completion": (
        "NEAR AI Hub signed completions with the agent's key inside its TEE; there is no hub "
        "and no agent key here. Use env.completion(...) and sign the text yourself if needed"
    ),
    "verify_signed_message": (
        "it checks signatures made by NEAR AI Hub (signed_completion), which nearnb cannot make"
    ),
    "verify_message": (
        "verifying a message signed with a NEAR account looks the key up on the NEAR "
        "blockchain (through FastNEAR's API); nearnb does not talk to the blockchain"
    ),
    "get_agent_public_key": "agent keys were held by NEAR AI Hub, which shut down",
    "set_near": (
        "NEAR blockchain accounts (py_near) are outside nearnb; install py-near and use "
        "py_near.account.Account directly"
    ),
    "find_agents": (
        "it searched NEAR AI Hub's registry, which shut down; env.run_agent takes an agent "
        "folder, or a name found in $NEARNB_AGENTS_DIR"
    ),
    "schedule_run": (
        "NEAR AI Hub's scheduler started runs later; nearnb runs an agent when asked "
        "(schedule `nearnb run AGENT MESSAGE` with cron or a job runner)"
    ),
    "generate_image": (
        "NEAR AI Hub's image endpoint shut down; call an image API from the agent instead"
    ),
    "call_agent": (
        "NEAR's several-agents-in-one-environment mode has no nearnb equivalent (one agent "
        "per run); use env.run_agent(agent_id, query)"
    ),
    "run": (
        "env.run was NEAR's runner entry point and this run is already running; start "
        "another run with env.run_agent(...) or nearnb.run_agent(...)"
    ),
}


def _refusal(name: str, reason: str) -> Callable[..., Any]:
    def refused(self: Any, *args: Any, **kwargs: Any) -> Any:
        raise UnsupportedCallError(f"env.{name} is not supported by nearnb: {reason}")

    refused.__name__ = refused.__qualname__ = name
    refused.__doc__ = f"Not supported by nearnb: {reason}."
    refused._nearnb_refusal = reason  # type: ignore[attr-defined]
    return refused


class InferenceParameters:
    """NEAR's resolved completion parameters (``get_inference_parameters``' first value)."""

    def __init__(
        self,
        model: str,
        messages: Any,
        stream: bool,
        temperature: float | None = None,
        max_tokens: int | None = None,
    ) -> None:
        self.model = model
        self.messages = messages
        self.stream = stream
        self.temperature = temperature
        self.max_tokens = max_tokens

    def __repr__(self) -> str:
        return (
            f"InferenceParameters(model={self.model!r}, stream={self.stream}, "
            f"temperature={self.temperature}, max_tokens={self.max_tokens})"
        )


class CompatMixin(EnvBase):
    """Old call forms, client attributes, and refusals for what cannot exist here."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Give the assembled Environment a refusal for each :data:`REFUSED` name it lacks.

        Done here rather than as methods of this mixin so a refusal can never
        shadow a real implementation elsewhere in the class's bases.
        """
        super().__init_subclass__(**kwargs)
        for name, reason in REFUSED.items():
            if not hasattr(cls, name):
                setattr(cls, name, _refusal(name, reason))

    # ------------------------------------------------------------ call forms

    def _messages_first(self, messages: Any, model: Any) -> tuple[Any, Any]:
        """``(messages, model)``, swapped when called NEAR's deprecated way, model first.

        NEAR detected the old order by ``messages`` being a string and swapped
        with a system-log warning; nearnb does the same and also raises a
        ``DeprecationWarning`` pointing at the agent's line (shown by default:
        agent code runs as ``__main__``).
        """
        if not isinstance(messages, str):
            return messages, model
        warnings.warn(DEPRECATED_ORDER, DeprecationWarning, stacklevel=3)
        self.add_system_log(DEPRECATED_ORDER, logging.WARNING)
        return model, messages

    def get_inference_parameters(
        self, messages: Any, model: Any, stream: bool, **kwargs: Any
    ) -> tuple[InferenceParameters, dict[str, Any]]:
        """NEAR's parameter resolution: ``(InferenceParameters, remaining kwargs)``.

        ``model`` is ``provider::model`` as :meth:`get_model_for_inference`
        gives it; temperature and max_tokens come from the call, else the
        agent's metadata.
        """
        messages, model = self._messages_first(messages, model)
        defaults = self._agent.defaults
        temperature = kwargs.pop("temperature", defaults.model_temperature)
        max_tokens = kwargs.pop("max_tokens", defaults.model_max_tokens)
        label = self._ports.choice.resolve(model or "").label
        return InferenceParameters(label, messages, stream, temperature, max_tokens), kwargs

    def add_agent_start_system_log(self, agent_idx: int = 0) -> None:
        """NEAR's "Running agent X that will connect to M" system-log line."""
        agent = self._agent
        message = f"Running agent {agent.name}"
        if agent.model:
            message += f" that will connect to {self._ports.choice.resolve().label}"
            if agent.model_temperature:
                message += f", temperature={agent.model_temperature}"
            if agent.model_max_tokens:
                message += f", max_tokens={agent.model_max_tokens}"
        self.add_system_log(message)

    def environment_run_info(self, base_id: Any, run_type: str) -> dict[str, Any]:
        """The registry entry NEAR described an environment run with (same keys)."""
        agent = self._agent
        namespace = getattr(agent, "namespace", "local")
        full_name = f"{namespace}/{agent.name}/{agent.metadata.version}"
        uid = uuid.uuid4().hex
        timestamp = datetime.now(UTC).isoformat()
        return {
            "name": f"environment_run_{full_name.replace('/', '_')}_{uid}",
            "version": "0",
            "description": f"Agent {run_type} {full_name} {uid} {timestamp}",
            "category": "environment",
            "tags": ["environment"],
            "details": {
                "base_id": base_id,
                "timestamp": timestamp,
                "agents": [agent.name],
                "primary_agent_namespace": namespace,
                "primary_agent_name": agent.name,
                "primary_agent_version": agent.metadata.version,
                "run_id": self.run_id,
                "run_type": run_type,
            },
            "show_entry": True,
        }

    # ------------------------------------------------------------ attributes

    @cached_property
    def openai(self) -> NearClient:
        """NEAR's ``env.openai``: ``chat.completions.create(**params)`` on the run's provider.

        Built on first use (openai loads lazily). Like NEAR's SecureOpenAI it
        offers that one method and holds no key an agent could read.
        """
        from .near_clients import NearClient

        return NearClient(self._ports.choice.resolve, self._runlog.check_cancelled)

    @cached_property
    def async_openai(self) -> AsyncNearClient:
        """``env.openai``'s async twin: ``await env.async_openai.chat.completions.create(...)``."""
        from .near_clients import AsyncNearClient

        return AsyncNearClient(self.openai)

    @property
    def base_url(self) -> str | None:
        """The run's provider endpoint (credentials stripped); None for the embedded model.

        NEAR's was the hub's URL, which agents used to build clients of their own.
        """
        from .near_clients import provider_base_url

        return provider_base_url(self._ports.choice.resolve().provider)

    @property
    def signer_account_id(self) -> str | None:
        """The NEAR account that signed the run, when a NEAR auth token is configured.

        NEAR took it from the hub's signed request. Here the one NEAR credential
        is the ``nearai`` provider's key (NEAR's bearer token is JSON with an
        ``account_id``); without one it is None. Only the account id is read.
        """
        from .providers.registry import provider_spec

        try:
            auth = json.loads(provider_spec("nearai").api_key or "null")
        except (ValueError, LookupError, RuntimeError):
            return None
        account = auth.get("account_id") if isinstance(auth, dict) else None
        return account if isinstance(account, str) and account else None

    @cached_property
    def tool_resources(self) -> dict[str, Any]:
        """What NEAR's run request attached for tools (vector store ids ...); empty here."""
        return {}

    @cached_property
    def cached_models_for_inference(self) -> dict[str, str]:
        """NEAR's model-name cache; nearnb caches in the run's model choice instead."""
        return {}

    @property
    def logs_collection_mode(self) -> bool:
        """``LOGS_COLLECTION`` from env_vars, else debug mode, as NEAR decided it."""
        for key, value in self.env_vars.items():
            if key.lower() == "logs_collection":
                return str(value).lower() in ("true", "1", "yes", "on")
        return any(
            str(v).lower() in ("true", "1", "yes", "on")
            for k, v in self.env_vars.items()
            if k.lower() == "debug"
        )

    #: NEAR cleared the caller's auth before running agent code; there is none here.
    user_auth: None = None
    #: NEAR's placeholder for a solver's inference client; always None for agents.
    client: None = None
    print_system_log: bool = False
    agent_runner_user: str | None = None
    analytics_collector: None = None
