"""Which provider and model a call uses: NEAR's ``provider::model`` rules plus a safe fallback.

NEAR resolves a run's model from ``provider::model`` strings, a provider name and defaults, with
Fireworks as the default provider (see the NEAR notes, section 1.6). nearnb keeps those names,
but a notebook must work with no account at all, so a provider without credentials falls back
to the embedded model and says so in ``Resolved.notice`` (``NEARNB_FALLBACK=error`` makes that
an error instead).

Order, first match wins:

* provider: ``NEARNB_MODEL="p::m"`` > ``NEARNB_PROVIDER`` > ``"p::m"`` in ``model`` >
  ``provider`` > ``defaults_provider`` > ``[defaults] provider`` in config.toml > ``fireworks``
  when a bare model name is given (NEAR's rule, so an agent's Fireworks model is never sent to
  another vendor) > the first provider with credentials (fireworks, openai, nearai, then
  config/env-defined ones) > ``local`` (no credentials anywhere).
  The two environment variables are session-wide overrides: they are how a user says "run
  every agent on this model", whatever the agents' metadata asks for.
* model: ``NEARNB_MODEL`` > ``model`` > the provider's ``default_model``. Under an environment
  override the call's ``model`` is kept only if the call named that same provider: model names
  are provider-specific (an agent's Fireworks model means nothing to ``NEARNB_PROVIDER=openai``).

Providers: ``openai``, ``fireworks``, ``nearai`` and ``local`` are built in, and
``replay:FILE`` answers from a recorded run (:mod:`nearnb.providers.replay`). More come from
``$NEARNB_HOME/config.toml`` (``[providers.NAME]`` with ``base_url``, ``api_key`` or
``api_key_env``, ``default_model``, ``models = {short = "long"}``, ``model_prefix``) and from
``NEARNB_PROVIDER_<NAME>_BASE_URL`` / ``_API_KEY`` / ``_MODEL``; these also override fields of
the built-ins. Environment beats the file. A provider whose ``base_url`` is on the loopback
interface needs no key. Keys are read only from the environment and that file, and never
appear in a repr, notice or error.
"""

from __future__ import annotations

import hashlib
import os
import threading
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from ..config import config_path, load_config
from .base import Provider, ProviderError, Resolved
from .local import LocalProvider, unavailable_reason
from .openai_compat import OpenAICompatProvider
from .replay import replay_source, resolve_replay

LOCAL = "local"
NEAR_DEFAULT_PROVIDER = "fireworks"  # what NEAR assumes for a model name without a provider
DEFAULT_ORDER = ("fireworks", "openai", "nearai")  # who is picked when nothing is named


@dataclass(frozen=True)
class ProviderSpec:
    """Everything needed to build one HTTP provider. ``api_key`` stays out of the repr."""

    name: str
    base_url: str = ""
    api_key: str = field(default="", repr=False)
    key_env: str = ""  # the variable a user should set, for messages
    default_model: str = ""
    models: dict[str, str] = field(default_factory=dict)
    model_prefix: str = ""

    @property
    def loopback(self) -> bool:
        host = urlsplit(self.base_url).hostname or ""
        return host in ("localhost", "::1") or host.startswith("127.")

    def missing(self) -> str | None:
        """What stops this provider from being used, as advice; None when it is usable."""
        env = f"NEARNB_PROVIDER_{_env_name(self.name)}"
        if not self.base_url:
            hint = " (the NEAR AI hub is shut down; point it at a compatible server)"
            return (
                f"Provider {self.name!r} has no base_url{hint if self.name == 'nearai' else ''}"
                f" (set {env}_BASE_URL or base_url in {config_path()})"
            )
        if not self.api_key and not self.loopback:
            var = self.key_env or f"{env}_API_KEY"
            return f"No credentials for provider {self.name!r} (set {var})"
        return None


_BUILTIN: dict[str, dict[str, Any]] = {
    "openai": {
        "base_url": "https://api.openai.com/v1",
        "key_env": "OPENAI_API_KEY",
        "base_url_env": "OPENAI_BASE_URL",
        "default_model": "gpt-4o-mini",
    },
    "fireworks": {
        "base_url": "https://api.fireworks.ai/inference/v1",
        "key_env": "FIREWORKS_API_KEY",
        "default_model": "llama-v3p1-70b-instruct",  # NEAR's DEFAULT_PROVIDER_MODEL
        "model_prefix": "accounts/fireworks/models/",
    },
    "nearai": {
        "base_url": "",
        "key_env": "NEARAI_API_KEY",
        "base_url_env": "NEARAI_BASE_URL",
        "default_model": "llama-v3p1-70b-instruct",
    },
}


def _env_name(name: str) -> str:
    return name.upper().replace("-", "_").replace(".", "_")


def _env_defined() -> list[str]:
    """Provider names that exist only through ``NEARNB_PROVIDER_<NAME>_BASE_URL``."""
    prefix, suffix = "NEARNB_PROVIDER_", "_BASE_URL"
    return [
        var[len(prefix) : -len(suffix)].lower()
        for var in sorted(os.environ)
        if var.startswith(prefix) and var.endswith(suffix) and len(var) > len(prefix + suffix)
    ]


def provider_names(config: dict[str, Any] | None = None) -> list[str]:
    """Every provider name known right now: built-ins, then config.toml, then environment."""
    config = load_config() if config is None else config
    names = [*DEFAULT_ORDER, LOCAL]
    for name in [*(config.get("providers") or {}), *_env_defined()]:
        if name not in names:
            names.append(name)
    return names


def provider_spec(name: str, config: dict[str, Any] | None = None) -> ProviderSpec:
    """The merged spec for HTTP provider ``name`` (built-in < config.toml < environment)."""
    config = load_config() if config is None else config
    builtin = _BUILTIN.get(name, {})
    table = (config.get("providers") or {}).get(name)
    if not builtin and table is None and name not in _env_defined():
        known = ", ".join(provider_names(config))
        raise ProviderError(
            f"unknown provider {name!r}; known providers: {known}. Define it in "
            f"{config_path()} as [providers.{name}] or with "
            f"NEARNB_PROVIDER_{_env_name(name)}_BASE_URL",
            provider=name,
        )
    table = table or {}
    if not isinstance(table, dict):
        raise ProviderError(f"[providers.{name}] in {config_path()} is not a table", provider=name)
    env = f"NEARNB_PROVIDER_{_env_name(name)}"
    key_env = table.get("api_key_env") or builtin.get("key_env", "")
    key = (
        os.environ.get(f"{env}_API_KEY")
        or (os.environ.get(builtin["key_env"]) if builtin.get("key_env") else None)
        or (os.environ.get(table["api_key_env"]) if table.get("api_key_env") else None)
        or table.get("api_key")
        or ""
    )
    base_url = (
        os.environ.get(f"{env}_BASE_URL")
        or table.get("base_url")
        or (os.environ.get(builtin["base_url_env"]) if builtin.get("base_url_env") else None)
        or builtin.get("base_url", "")
    )
    models = {str(k): str(v) for k, v in (table.get("models") or {}).items()}
    return ProviderSpec(
        name=name,
        base_url=str(base_url),
        api_key=str(key),
        key_env=key_env,
        default_model=str(
            os.environ.get(f"{env}_MODEL")
            or table.get("default_model")
            or builtin.get("default_model", "")
        ),
        models=models,
        model_prefix=str(table.get("model_prefix", builtin.get("model_prefix", ""))),
    )


_CACHE: dict[tuple[Any, ...], Provider] = {}
_CACHE_LOCK = threading.Lock()


def build(spec: ProviderSpec) -> OpenAICompatProvider:
    """The (cached) provider for ``spec``: one SDK client and connection pool per endpoint."""
    digest = hashlib.sha256(spec.api_key.encode()).hexdigest()
    key = (spec.name, spec.base_url, digest, spec.default_model, spec.model_prefix,
           tuple(sorted(spec.models.items())))  # fmt: skip
    with _CACHE_LOCK:
        provider = _CACHE.get(key)
        if provider is None:
            provider = OpenAICompatProvider(
                spec.name,
                spec.base_url,
                spec.api_key or "none",
                default_model=spec.default_model,
                model_map=spec.models,
                model_prefix=spec.model_prefix,
            )
            _CACHE[key] = provider
    assert isinstance(provider, OpenAICompatProvider)
    return provider


def local_provider() -> LocalProvider:
    with _CACHE_LOCK:
        provider = _CACHE.get((LOCAL,))
        if provider is None:
            provider = _CACHE[(LOCAL,)] = LocalProvider()
    assert isinstance(provider, LocalProvider)
    return provider


def _split(model: str | None) -> tuple[str, str]:
    """``"p::m"`` -> ``("p", "m")``; ``"m"`` -> ``("", "m")``."""
    model = (model or "").strip()
    if "::" in model:
        provider, _, name = model.partition("::")
        return provider.strip().lower(), name.strip()
    return "", model


def _auto_provider(config: dict[str, Any]) -> str:
    """The first provider that has credentials, else ``local``."""
    for name in provider_names(config):
        if name == LOCAL:
            continue
        try:
            if provider_spec(name, config).missing() is None:
                return name
        except ProviderError:
            continue
    return LOCAL


def resolve(
    model: str | None = None,
    provider: str | None = None,
    *,
    defaults_provider: str | None = None,
) -> Resolved:
    """Pick provider and model for one call (order in the module docstring).

    Raises ProviderError for an unknown provider name, and for a provider without credentials
    when ``NEARNB_FALLBACK=error`` or when the embedded model is not installed either.
    ``replay:FILE`` (see :mod:`.replay`) wins over every other setting.
    """
    if (source := replay_source(provider, defaults_provider)) is not None:
        return resolve_replay(source, model)
    config = load_config()
    env_provider, env_model = _split(os.environ.get("NEARNB_MODEL"))
    env_provider = env_provider or os.environ.get("NEARNB_PROVIDER", "").strip().lower()
    arg_provider, arg_model = _split(model)
    defaults = config.get("defaults") or {}
    name = (
        env_provider
        or arg_provider
        or (provider or "").strip().lower()
        or (defaults_provider or "").strip().lower()
        or str(defaults.get("provider") or "").strip().lower()
    )
    chosen_automatically = not name
    name = name or (NEAR_DEFAULT_PROVIDER if arg_model else _auto_provider(config))
    asked_for = arg_provider or (provider or "").strip().lower()
    if env_model:
        wanted = env_model
    elif env_provider and asked_for != env_provider:
        wanted = ""  # the call's model belongs to the provider the override replaced
    else:
        wanted = arg_model

    if name == LOCAL:
        # Nobody asked for the embedded model: it stands in because no provider has
        # credentials, and the user should know their answers come from a 135M model.
        notice = (
            f"No provider credentials are set; using the embedded model "
            f"local::{local_provider().model_name}. Set OPENAI_API_KEY or FIREWORKS_API_KEY, "
            "or configure a provider, for a larger model."
            if chosen_automatically
            else None
        )
        return _local(wanted, notice=notice)
    spec = provider_spec(name, config)
    problem = spec.missing()
    if problem is not None:
        return _fallback(problem, spec, wanted)
    http = build(spec)
    short = wanted or spec.default_model
    return Resolved(provider=http, model=http.map_model(short), label=f"{name}::{short}")


def _local(wanted: str, notice: str | None) -> Resolved:
    local = local_provider()
    name = local.model_name
    if wanted and not local.accepts(wanted):
        notice = notice or (
            f"The embedded provider runs {name!r}, not {wanted!r}; using local::{name}."
        )
    return Resolved(provider=local, model=name, label=f"{LOCAL}::{name}", notice=notice)


def _fallback(problem: str, spec: ProviderSpec, wanted: str) -> Resolved:
    """The embedded model in place of ``spec``, or ProviderError when that is not allowed."""
    if os.environ.get("NEARNB_FALLBACK", "").strip().lower() == "error":
        raise ProviderError(f"{problem}; NEARNB_FALLBACK=error forbids falling back to the "
                            "embedded model.", provider=spec.name)  # fmt: skip
    reason = unavailable_reason()
    if reason is not None:
        raise ProviderError(f"{problem}, and the embedded fallback model is unavailable: "
                            f"{reason}", provider=spec.name)  # fmt: skip
    label = f"{spec.name}::{wanted or spec.default_model}".rstrip(":")
    name = local_provider().model_name
    notice = f"{problem}; using the embedded model local::{name} instead of {label}."
    return _local("", notice=notice)
