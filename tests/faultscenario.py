"""The fault matrix's scenario and the invariants checked after it: each ticket gets its one reply.

The scenario has one ticket to solve (an http_check on the simulator's
/health), one with an invalid spec and one whose check fails (a 404). The
invariants are read from the simulator's timeline through the run markers
in the bot's messages, not from the bot's ledger (only `open_attempts` reads it).
"""

from __future__ import annotations

import html
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

from glpibot.config import Config, config_from_dict
from glpibot.ledger import Ledger
from glpibot.testing.simulator import GlpiSimulator
from tests.botenv import BOT_ID, BotEnv

STATUS_SOLVED = 5
STATUS_PENDING = 4

VALID = """
glpibot: 1
action: http_check
params:
  url: "{url}/health"
  expect_status: 200
reason: is the simulator up
"""

FAILING = """
glpibot: 1
action: http_check
params:
  url: "{url}/no-such-page"
  expect_status: 200
"""

INVALID = """
glpibot: 1
action: http_check
params:
  url: "wiki.example.test/health"
  expect_staus: 200
"""

_MARKER = re.compile(r"glpibot-run (\d+)-(\d+)-([0-9a-f]{6}) (claimed|solved|blocked|interrupted)")
_TAG = re.compile(r"<[^>]*>")


@dataclass(frozen=True)
class Scenario:
    """The three tickets of the matrix: one to solve, one with an invalid spec, one whose check fails."""

    valid: int
    invalid: int
    failing: int

    @classmethod
    def seed(cls, env: BotEnv) -> "Scenario":
        url = env.sim.url
        return cls(
            valid=env.ticket("valid", VALID.format(url=url)),
            invalid=env.ticket("invalid", INVALID),
            failing=env.ticket("failing", FAILING.format(url=url)),
        )

    def tickets(self) -> dict[int, str]:
        return {self.valid: "valid", self.invalid: "invalid", self.failing: "failing"}


def matrix_config(env: BotEnv, timeout_s: float, **top_level: Any) -> Config:
    """Return the env's config with glpi.timeout_s set and top-level sections replaced."""
    data = env.config_data()
    data["glpi"]["timeout_s"] = timeout_s
    data.update(top_level)
    return config_from_dict(data)


def bot_markers(sim: GlpiSimulator, ticket_id: int) -> list[tuple[str, int, str, str]]:
    """Return (item type, attempt, run marker, kind) for each marker in the bot's follow-ups and solutions."""
    found = []
    items = [("Followup", item) for item in sim.followups(ticket_id)]
    items += [("Solution", item) for item in sim.solutions(ticket_id)]
    for item_type, item in items:
        author = item.get("user") or {}
        if isinstance(author, dict) and author.get("id") != BOT_ID:
            continue
        text = html.unescape(_TAG.sub(" ", str(item.get("content") or "")))
        for match in _MARKER.finditer(text):
            if int(match.group(1)) == ticket_id:
                marker = f"glpibot-run {match.group(1)}-{match.group(2)}-{match.group(3)}"
                found.append((item_type, int(match.group(2)), marker, match.group(4)))
    return found


def check_invariants(env: BotEnv, scenario: Scenario) -> list[str]:
    """Return every broken invariant: a write twice in effect, or a ticket without its solution or blocked follow-up."""
    sim = env.sim
    problems = []
    records = Counter(record.get("ticket_id") for record in env.memory_records())
    for ticket_id, role in scenario.tickets().items():
        markers = bot_markers(sim, ticket_id)
        claims = Counter(marker for _, _, marker, kind in markers if kind == "claimed")
        blocked = [marker for _, _, marker, kind in markers if kind == "blocked"]
        solutions = sim.solutions(ticket_id)
        attempts = sorted({attempt for _, attempt, _, _ in markers})
        if attempts != [1]:
            problems.append(f"ticket {ticket_id} ({role}): attempts {attempts} in the timeline, expected [1]")
        for marker, count in claims.items():
            if count != 1:
                problems.append(f"ticket {ticket_id} ({role}): {count} claimed follow-ups for {marker}")
        if len(blocked) > 1:
            problems.append(f"ticket {ticket_id} ({role}): {len(blocked)} blocked follow-ups")
        if len(solutions) > 1:
            problems.append(f"ticket {ticket_id} ({role}): {len(solutions)} solutions")
        if records[ticket_id] != 1:
            problems.append(f"ticket {ticket_id} ({role}): {records[ticket_id]} memory records, expected 1")
        problems.extend(_reply_problems(env, ticket_id, role, len(blocked), len(solutions)))
    return problems


def _reply_problems(env: BotEnv, ticket_id: int, role: str, blocked: int, solutions: int) -> list[str]:
    status = env.status(ticket_id)
    where = f"ticket {ticket_id} ({role})"
    if role == "valid":
        if status != STATUS_SOLVED or solutions != 1 or blocked != 0:
            return [f"{where}: not solved (status {status}, {solutions} solution(s), {blocked} blocked)"]
        return []
    if status != STATUS_PENDING or blocked != 1 or solutions != 0:
        return [f"{where}: not blocked (status {status}, {solutions} solution(s), {blocked} blocked)"]
    reason = "expect_staus" if role == "invalid" else "404"
    last = env.sim.followups(ticket_id)[-1]["content"]
    if reason not in last:
        return [f"{where}: the blocked follow-up does not name the reason {reason!r}"]
    return []


def open_attempts(env: BotEnv) -> int:
    path = env.state_dir / "ledger.sqlite3"
    if not path.exists():
        return 0
    with Ledger(path) as ledger:
        return len(ledger.open_attempts())
