"""Agent data, vector stores and user memory, kept locally (part of the ``env`` object)."""

from __future__ import annotations

from .env_base import EnvBase


class DataMixin(EnvBase):
    """Agent data, vector stores and user memory, kept locally."""
