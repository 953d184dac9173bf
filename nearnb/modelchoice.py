"""Which provider and model a run's completions use, and with which parameters.

Layer 2: the environment asks it, the orchestration configures it. The
choice is, in order: the model named in the call, else the run's ``--model``,
else the agent's ``metadata.json`` default; the provider likewise. A
resolution is cached per requested model, and a fallback notice (the
embedded model standing in for a provider without credentials) is announced
once per run through ``announce``. Every resolved provider is wrapped by the
run's :class:`~nearnb.recording.Recorder`, so the run's requests and chunks are
kept with it (export and offline replay need them).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .recording import Recorder

if TYPE_CHECKING:
    from .agents import Defaults as AgentDefaults
    from .providers.base import Resolved

#: NEAR passes these to completions; providers do not take them.
NEAR_ONLY_KWARGS = ("thread_id", "attachments", "message_type")


class ModelChoice:
    """Resolves models for one run; thread-safe."""

    def __init__(
        self,
        defaults: AgentDefaults,
        *,
        model: str | None,
        provider: str | None,
        announce: Callable[[str], None],
        recorder: Recorder | None = None,
    ) -> None:
        self.defaults = defaults
        self.model = model
        self.provider = provider
        self._announce = announce
        # The run is the owner of its notice callback; a ModelChoice outside a run records nothing.
        self._recorder = recorder if recorder is not None else Recorder.of(announce)
        self._lock = threading.Lock()
        self._resolved: dict[str, Resolved] = {}
        self._notices: set[str] = set()

    def resolve(self, model: str = "") -> Resolved:
        """Provider and model for a completion; announces a fallback notice once."""
        from .providers import resolve

        d = self.defaults
        with self._lock:
            resolved = self._resolved.get(model)
            if resolved is None:
                asked = model or self.model or d.model or ""
                resolved = resolve(asked or None, self.provider or d.model_provider or None)
                resolved = self._resolved[model] = self._recorder.wrap(resolved, asked)
            fresh = bool(resolved.notice) and resolved.notice not in self._notices
            if fresh:
                self._notices.add(resolved.notice)
        if fresh:
            self._announce(resolved.notice)
        return resolved

    def params(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        """Completion parameters: per-call values win over metadata defaults."""
        params = {k: v for k, v in kwargs.items() if k not in NEAR_ONLY_KWARGS}
        d = self.defaults
        if params.get("temperature") is None and d.model_temperature is not None:
            params["temperature"] = d.model_temperature
        if params.get("max_tokens") is None and d.model_max_tokens is not None:
            params["max_tokens"] = d.model_max_tokens  # the embedded model caps it
        return {k: v for k, v in params.items() if v is not None}
