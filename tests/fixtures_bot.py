"""The `bot` fixture: a GLPI simulator, a config in a temporary folder and the secrets set."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.botenv import BotEnv, make_bot_env


@pytest.fixture
def bot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[BotEnv]:
    env = make_bot_env(tmp_path, monkeypatch)
    try:
        yield env
    finally:
        env.sim.stop()
