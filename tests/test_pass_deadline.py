"""The pass deadline (pass_timeout_s): tickets not reached wait, slow checks get the time left, the unit allows it."""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from glpibot.exitcodes import ExitCode
from glpibot.ledger import Ledger
from glpibot.testing.faults import Fault
from tests.botenv import BotEnv
from tests.httpservers import LocalHttpServer, RecordedRequest, Reply

ROOT = Path(__file__).resolve().parent.parent
UNIT_FILE = ROOT / "systemd" / "glpibot.service"
CONFIG_SCHEMA = ROOT / "schemas" / "config.schema.json"
HANG_MARGIN_S = 3.5  # added to pass_timeout_s: detects a pass that waits for a check's own 30 s time-out

VALID = """
glpibot: 1
action: http_check
params:
  url: "{url}/health"
  expect_status: 200
"""

INVALID = """
glpibot: 1
action: http_check
params:
  url: "{url}/health"
  expect_staus: 200
"""

SLOW = """
glpibot: 1
action: http_check
params:
  url: "{url}"
  expect_status: 200
  timeout_s: 30
"""


class HangingRoute:
    """A route that responds with 200 "ok" only after `release` is set, or after 60 s."""

    def __init__(self) -> None:
        self.release = threading.Event()

    def __call__(self, request: RecordedRequest) -> Reply:
        self.release.wait(60)
        return Reply(200, b"ok\n")


@pytest.fixture
def hanging() -> Iterator[tuple[LocalHttpServer, HangingRoute]]:
    route = HangingRoute()
    server = LocalHttpServer()
    server.route("/hang", route)
    with server:
        try:
            yield server, route
        finally:
            route.release.set()


def outcomes_of(summary: object) -> dict[int, str]:
    return {item.ticket_id: item.outcome for item in summary.outcomes}  # type: ignore[attr-defined]


def claims(bot: BotEnv, ticket_id: int) -> list[str]:
    return [item["content"] for item in bot.sim.followups(ticket_id) if " claimed" in item["content"]]


def blocked(bot: BotEnv, ticket_id: int) -> list[str]:
    return [item["content"] for item in bot.sim.followups(ticket_id) if " blocked" in item["content"]]


def step_states(bot: BotEnv, ticket_id: int) -> list[str]:
    with Ledger(bot.state_dir / "ledger.sqlite3") as ledger:
        return [record.state for record in ledger.steps(ticket_id, 1)]


# Tickets the pass does not reach


def test_unreached_tickets_wait(bot: BotEnv, caplog: pytest.LogCaptureFixture) -> None:
    first = bot.ticket("first", VALID.format(url=bot.sim.url))
    second = bot.ticket("second", VALID.format(url=bot.sim.url))
    third = bot.ticket("third", INVALID.format(url=bot.sim.url))
    bot.overrides["pass_timeout_s"] = 1.0
    # GLPI responds to the first ticket's solution after the pass deadline has passed.
    bot.sim.add_fault(Fault(method="POST", path=f"^/Assistance/Ticket/{first}/Timeline/Solution$", delay_s=1.5))
    caplog.set_level(logging.INFO, logger="glpibot")

    summary = bot.run()

    assert outcomes_of(summary) == {first: "solved", second: "not_reached", third: "not_reached"}
    assert summary.exit_code == ExitCode.OK
    assert "not_reached=2" in summary.line()
    assert bot.sim.followups(second) == []
    assert bot.sim.followups(third) == []
    assert bot.status(second) == 2
    assert bot.status(third) == 2
    waiting = [record.getMessage() for record in caplog.records if "not reached" in record.getMessage()]
    assert any(f"ticket {second} " in message for message in waiting)


def test_unreached_tickets_next_pass(bot: BotEnv) -> None:
    first = bot.ticket("first", VALID.format(url=bot.sim.url))
    second = bot.ticket("second", VALID.format(url=bot.sim.url))
    third = bot.ticket("third", INVALID.format(url=bot.sim.url))
    bot.overrides["pass_timeout_s"] = 1.0
    bot.sim.add_fault(Fault(method="POST", path=f"^/Assistance/Ticket/{first}/Timeline/Solution$", delay_s=1.5))
    bot.run()

    summary = bot.run()

    assert outcomes_of(summary) == {second: "solved", third: "pending"}
    assert summary.exit_code == ExitCode.OK
    assert len(claims(bot, second)) == 1
    assert len(blocked(bot, third)) == 1
    assert bot.status(second) == 5
    assert bot.status(third) == 4
    assert len(bot.sim.solutions(first)) == 1


def test_spent_deadline_reaches_nothing(bot: BotEnv) -> None:
    tickets = [bot.ticket(f"t{number}", VALID.format(url=bot.sim.url)) for number in range(3)]
    bot.overrides["pass_timeout_s"] = 0.001

    summary = bot.run()

    assert outcomes_of(summary) == {ticket: "not_reached" for ticket in tickets}
    assert summary.exit_code == ExitCode.OK
    assert summary.error is None
    for ticket in tickets:
        assert bot.sim.followups(ticket) == []


# A check that the pass deadline cuts short


def test_slow_check_gets_time_left(bot: BotEnv, hanging: tuple[LocalHttpServer, HangingRoute]) -> None:
    server, _ = hanging
    ticket = bot.ticket("slow", SLOW.format(url=server.url("/hang")))
    bot.overrides["pass_timeout_s"] = 1.5

    started = time.monotonic()
    summary = bot.run()
    duration = time.monotonic() - started

    assert duration < 1.5 + HANG_MARGIN_S
    assert len(server.requests) == 1
    assert outcomes_of(summary) == {ticket: "not_reached"}
    assert summary.exit_code == ExitCode.OK


def test_cut_short_check_not_failed(bot: BotEnv, hanging: tuple[LocalHttpServer, HangingRoute]) -> None:
    server, _ = hanging
    ticket = bot.ticket("slow", SLOW.format(url=server.url("/hang")))
    bot.overrides["pass_timeout_s"] = 1.5

    bot.run()

    assert blocked(bot, ticket) == []
    assert len(claims(bot, ticket)) == 1
    assert bot.status(ticket) == 2
    assert step_states(bot, ticket) == ["started"]
    assert bot.memory_records() == []


def test_cut_short_check_reruns(bot: BotEnv, hanging: tuple[LocalHttpServer, HangingRoute]) -> None:
    server, route = hanging
    ticket = bot.ticket("slow", SLOW.format(url=server.url("/hang")))
    bot.overrides["pass_timeout_s"] = 1.5
    bot.run()
    route.release.set()

    summary = bot.run()

    assert outcomes_of(summary) == {ticket: "solved"}
    assert len(server.requests) == 2
    assert len(claims(bot, ticket)) == 1
    assert bot.status(ticket) == 5


def test_cut_short_twice_blocks(bot: BotEnv, hanging: tuple[LocalHttpServer, HangingRoute]) -> None:
    server, _ = hanging
    ticket = bot.ticket("slow", SLOW.format(url=server.url("/hang")))
    bot.overrides["pass_timeout_s"] = 1.5
    bot.run()

    summary = bot.run()

    assert outcomes_of(summary) == {ticket: "pending"}
    assert summary.exit_code == ExitCode.OK
    assert len(server.requests) == 2
    assert len(blocked(bot, ticket)) == 1
    assert "timed out" in blocked(bot, ticket)[0]
    assert bot.status(ticket) == 4


# The systemd unit


def unit_seconds(value: str) -> float:
    """Convert a systemd time span such as "600", "10min" or "5min 30s" to seconds."""
    units = {"": 1, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hr": 3600}
    total = 0.0
    for number, unit in re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]*)", value.strip()):
        total += float(number) * units[unit]
    return total


def service_setting(path: Path, key: str) -> str:
    """Return the last value of `key` in the [Service] section of a unit file."""
    section = ""
    found = None
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line
        elif section == "[Service]" and line.partition("=")[0].strip() == key:
            found = line.partition("=")[2].strip()
    if found is None:
        raise AssertionError(f"{path} sets no {key}= in [Service]")
    return found


def test_unit_seconds_parses_spans() -> None:
    assert unit_seconds("600") == 600
    assert unit_seconds("10min") == 600
    assert unit_seconds("5min 30s") == 330


def test_unit_timeout_above_pass_timeout() -> None:
    schema = json.loads(CONFIG_SCHEMA.read_text(encoding="utf-8"))
    pass_timeout = schema["properties"]["pass_timeout_s"]["default"]
    host = schema["properties"]["hosts"]["additionalProperties"]["properties"]
    command_timeout = host["command_timeout_s"]["default"]

    timeout_start = unit_seconds(service_setting(UNIT_FILE, "TimeoutStartSec"))

    # The last step may run one command past the pass deadline, so the unit must allow for it.
    assert timeout_start > pass_timeout + command_timeout


# A state-changing step that the pass deadline cuts short is never run again

HANGING_SYSTEMCTL = '''#!/usr/bin/env python3
"""Stand-in for systemctl whose every call hangs: it logs its argv, then sleeps for 10 s."""
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

state = Path(os.environ.get("GLPIBOT_STANDIN_STATE", "/nonexistent"))
if state.is_dir():
    with (state / "calls.log").open("a", encoding="utf-8") as log:
        log.write(json.dumps(["systemctl", *sys.argv[1:]]) + "\\n")
time.sleep(10)
'''

RESTART = """
glpibot: 1
action: systemd_remote
host: svc-auto
params:
  unit: nginx.service
  operation: restart
"""


@pytest.mark.ssh
def test_cut_short_restart_not_rerun(bot: BotEnv, sshd: Any) -> None:
    sshd.add_standin("systemctl", HANGING_SYSTEMCTL)
    ticket = bot.ticket("restart", RESTART)
    bot.overrides["hosts"] = {"svc-auto": sshd.host_entry()}
    bot.overrides["actions"] = {
        "systemd_remote": {"allowed_units": {"svc-auto": ["nginx.service"]}, "operations": ["restart"]}
    }
    bot.overrides["pass_timeout_s"] = 3.0

    started = time.monotonic()
    first = bot.run()
    duration = time.monotonic() - started
    second = bot.run()

    restarts = [argv for argv in sshd.calls() if argv[:1] == ["systemctl"] and "restart" in argv]
    assert outcomes_of(first) == {ticket: "pending"}
    assert outcomes_of(second) == {}
    assert duration < 3.0 + HANG_MARGIN_S
    assert len(restarts) == 1
    assert len(blocked(bot, ticket)) == 1
    assert "timed out" in blocked(bot, ticket)[0]
    assert bot.status(ticket) == 4


@pytest.mark.ssh
def test_cut_short_status_deferred(bot: BotEnv, sshd: Any) -> None:
    sshd.add_standin("systemctl", HANGING_SYSTEMCTL)
    ticket = bot.ticket("status", RESTART.replace("operation: restart", "operation: status"))
    bot.overrides["hosts"] = {"svc-auto": sshd.host_entry()}
    bot.overrides["actions"] = {
        "systemd_remote": {"allowed_units": {"svc-auto": ["nginx.service"]}, "operations": ["status"]}
    }
    bot.overrides["pass_timeout_s"] = 3.0

    summary = bot.run()

    assert outcomes_of(summary) == {ticket: "not_reached"}
    assert blocked(bot, ticket) == []
    assert step_states(bot, ticket) == ["started"]
