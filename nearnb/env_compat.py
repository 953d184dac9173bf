"""NEAR's older call forms, its client attributes, and honest refusals for what cannot exist here (part of the ``env`` object)."""

from __future__ import annotations

from .env_base import EnvBase


class CompatMixin(EnvBase):
    """NEAR's older call forms, its client attributes, and honest refusals for what cannot exist here."""
