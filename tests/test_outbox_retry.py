"""Failed artifact and memory writes stay pending in the ledger and are retried, with backoff, on later passes.

Each pass gets a clock set some seconds after the first pass's, so the
backoff (RETRY_BASE_S, doubling per failed try) passes without waiting.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from glpibot.exitcodes import ExitCode
from glpibot.ledger import RETRY_BASE_S, Ledger
from tests.botenv import BotEnv
from tests.crashkit import MEMORY_TOKEN, MemorySink

VALID = """
glpibot: 1
reason: is the simulator up
action: http_check
params:
  url: "{url}/health"
  expect_status: 200
"""


@pytest.fixture
def sink(bot: BotEnv, monkeypatch: pytest.MonkeyPatch) -> Iterator[MemorySink]:
    """A memory service the bot's config points at, down until a test sets `down = False`."""
    service = MemorySink()
    service.down = True
    monkeypatch.setenv("GLPIBOT_MEMORY_TOKEN", MEMORY_TOKEN)  # the token MemorySink expects
    bot.overrides["memory"] = {"sink": "http", "url": service.url, "timeout_s": 5}
    try:
        yield service
    finally:
        service.stop()


def clock_at(start: float, offset_s: float) -> Callable[[], float]:
    return lambda: start + offset_s


def effect_state(bot: BotEnv, key: str) -> tuple[str, int, str | None]:
    with Ledger(bot.state_dir / "ledger.sqlite3") as ledger:
        effect = ledger.effect(key)
    assert effect is not None, f"no effect {key} in the ledger"
    return effect.state, effect.tries, effect.last_error


def glpi_writes(bot: BotEnv) -> int:
    return sum(1 for request in bot.sim.requests if request.method in ("POST", "PATCH") and request.path != "/token")


def test_memory_stored_once_when_back(bot: BotEnv, sink: MemorySink) -> None:
    ticket = bot.ticket("valid", VALID.format(url=bot.sim.url))
    start = time.time()

    first = bot.run(clock=clock_at(start, 0))
    rejected_first = sink.rejected
    pending = effect_state(bot, f"t{ticket}-a1-memory")
    sink.down = False
    bot.sim.reset_requests()
    bot.run(clock=clock_at(start, RETRY_BASE_S / 2))
    keys_before_backoff = sink.keys(ticket)
    bot.run(clock=clock_at(start, RETRY_BASE_S + 1))
    bot.run(clock=clock_at(start, RETRY_BASE_S * 10))

    assert first.exit_code == ExitCode.TICKET_ERROR  # the failed write is reported, the ticket still answered
    assert rejected_first == 1
    assert pending[0] == "pending"
    assert "503" in str(pending[2])
    assert keys_before_backoff == []
    assert sink.keys(ticket) == [f"ticket-{ticket}-attempt-1"]
    assert all(entry["token_ok"] for entry in sink.accepted)
    assert effect_state(bot, f"t{ticket}-a1-memory")[0] == "done"


def test_memory_retry_keeps_outcome(bot: BotEnv, sink: MemorySink) -> None:
    ticket = bot.ticket("valid", VALID.format(url=bot.sim.url))
    start = time.time()

    bot.run(clock=clock_at(start, 0))
    followups_first = bot.sim.followups(ticket)
    sink.down = False
    bot.sim.reset_requests()
    bot.run(clock=clock_at(start, RETRY_BASE_S + 1))

    assert bot.status(ticket) == 5
    assert len(bot.sim.solutions(ticket)) == 1
    assert bot.sim.followups(ticket) == followups_first
    assert glpi_writes(bot) == 0
    assert len(sink.keys(ticket)) == 1


def test_memory_backoff_doubles(bot: BotEnv, sink: MemorySink) -> None:
    ticket = bot.ticket("valid", VALID.format(url=bot.sim.url))
    start = time.time()
    second_try = RETRY_BASE_S + 1

    bot.run(clock=clock_at(start, 0))
    bot.run(clock=clock_at(start, second_try))
    rejected_after_two = sink.rejected
    sink.down = False
    bot.run(clock=clock_at(start, second_try + RETRY_BASE_S + 1))
    keys_before_doubled_backoff = sink.keys(ticket)
    bot.run(clock=clock_at(start, second_try + 2 * RETRY_BASE_S + 1))

    assert rejected_after_two == 2
    assert keys_before_doubled_backoff == []
    assert sink.keys(ticket) == [f"ticket-{ticket}-attempt-1"]


def init_repository(directory: Path) -> None:
    directory.mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(directory)], check=True, timeout=30)
    for key, value in (("user.name", "outbox test"), ("user.email", "outbox@localhost")):
        subprocess.run(["git", "-C", str(directory), "config", key, value], check=True, timeout=30)


def commits_of(directory: Path, name: str) -> list[str]:
    log = subprocess.run(
        ["git", "-C", str(directory), "log", "--format=%s", "--", name],
        check=True, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    return log.stdout.splitlines()


def test_artifact_lands_once_when_fixed(bot: BotEnv) -> None:
    # A regular file where a directory should be makes mkdir fail, even for root.
    blocker = bot.root / "blocker"
    blocker.write_text("not a directory\n")
    docs = blocker / "docs"
    bot.overrides["artifacts"] = {"dir": str(docs), "git_commit": True}
    ticket = bot.ticket("valid", VALID.format(url=bot.sim.url))
    start = time.time()

    first = bot.run(clock=clock_at(start, 0))
    pending = effect_state(bot, f"t{ticket}-a1-artifact")
    status_first = bot.status(ticket)
    blocker.unlink()
    init_repository(docs)
    bot.sim.reset_requests()
    bot.run(clock=clock_at(start, RETRY_BASE_S / 2))
    written_before_backoff = (docs / f"ticket-{ticket}.md").exists()
    bot.run(clock=clock_at(start, RETRY_BASE_S + 1))
    bot.run(clock=clock_at(start, RETRY_BASE_S * 10))

    assert first.exit_code == ExitCode.TICKET_ERROR  # the failed write is reported, the ticket still answered
    assert pending[0] == "pending"
    assert "cannot create artifact directory" in str(pending[2])
    assert status_first == 5
    assert not written_before_backoff
    assert (docs / f"ticket-{ticket}.md").read_text().startswith(f"# Ticket {ticket}: valid")
    assert commits_of(docs, f"ticket-{ticket}.md") == [f"glpibot: ticket {ticket} attempt 1 solved"]
    assert effect_state(bot, f"t{ticket}-a1-artifact")[0] == "done"
    assert bot.status(ticket) == 5
    assert len(bot.sim.solutions(ticket)) == 1
    assert glpi_writes(bot) == 0


def test_artifact_failure_keeps_blocked_outcome(bot: BotEnv) -> None:
    blocker = bot.root / "blocker"
    blocker.write_text("not a directory\n")
    bot.overrides["artifacts"] = {"dir": str(blocker / "docs")}
    ticket = bot.ticket("invalid", "glpibot: 1\naction: http_check\nparams:\n  expect_staus: 200\n")

    bot.run()

    assert bot.status(ticket) == 4
    assert bot.sim.solutions(ticket) == []
    assert "could not complete this ticket" in bot.sim.followups(ticket)[-1]["content"]
    assert effect_state(bot, f"t{ticket}-a1-artifact")[0] == "pending"
