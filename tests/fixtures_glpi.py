"""GLPI fixtures: a simulator per test, settings pointing at it and a client factory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import pytest

from glpibot.config import GlpiSettings
from glpibot.glpi.client import GlpiClient
from glpibot.testing import GlpiSimulator

BOT_LOGIN = "homelab-bot"


@pytest.fixture
def glpi_sim() -> Iterator[GlpiSimulator]:
    """A started simulator with the default users and categories; stopped after the test."""
    sim = GlpiSimulator().start()
    try:
        yield sim
    finally:
        sim.stop()


def settings_for(sim: GlpiSimulator, **overrides: Any) -> GlpiSettings:
    values: dict[str, Any] = {
        "url": sim.url,
        "client_id": sim.client_id,
        "username": BOT_LOGIN,
        "category": "Automation > Homelab Bot",
        "timeout_s": 5.0,
    }
    values.update(overrides)
    return GlpiSettings(**values)


@pytest.fixture
def glpi_client_factory(glpi_sim: GlpiSimulator, tmp_path: Path) -> Iterator[Callable[..., GlpiClient]]:
    """Build clients for `glpi_sim` with its credentials; keyword arguments override the defaults."""
    clients: list[GlpiClient] = []

    def make(sim: GlpiSimulator | None = None, **options: Any) -> GlpiClient:
        target = sim or glpi_sim
        options.setdefault("client_secret", target.client_secret)
        options.setdefault("password", target.users[BOT_LOGIN][1])
        options.setdefault("token_cache", tmp_path / "glpi-token.json")
        options.setdefault("backoff_s", 0.01)
        settings = options.pop("settings", None) or settings_for(target)
        client = GlpiClient(settings, **options)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()
