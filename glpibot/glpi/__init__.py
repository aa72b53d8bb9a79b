"""GLPI 11 high-level API (v2) client and its OAuth token handling."""

from glpibot.glpi.client import GlpiClient

__all__ = ["GlpiClient"]
