"""The ``env`` object's older NEAR call forms, client attributes and honest refusals."""

from __future__ import annotations

from .env_base import EnvBase


class CompatMixin(EnvBase):
    """Old call forms, client attributes, and refusals for what cannot exist here."""
