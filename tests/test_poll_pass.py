"""End-to-end passes: the real lifecycle against the GLPI simulator over HTTP."""

from __future__ import annotations

import json

from glpibot.exitcodes import ExitCode
from tests.botenv import BOT_ID, BotEnv

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


def _followup_texts(bot: BotEnv, ticket_id: int) -> list[str]:
    return [item["content"] for item in bot.sim.followups(ticket_id)]


def test_pass_solves_valid_ticket(bot: BotEnv) -> None:
    ticket = bot.ticket("valid", VALID.format(url=bot.sim.url))

    summary = bot.run()

    assert summary.exit_code == ExitCode.OK
    assert bot.status(ticket) == 5
    assert len(bot.sim.solutions(ticket)) == 1
    followups = _followup_texts(bot, ticket)
    assert len(followups) == 1
    assert "claimed" in followups[0]
    assert (bot.artifact_dir / f"ticket-{ticket}.md").is_file()
    records = bot.memory_records()
    assert [record["ticket_id"] for record in records] == [ticket]
    assert records[0]["outcome"] == "solved"


def test_pass_blocks_invalid_spec(bot: BotEnv) -> None:
    ticket = bot.ticket("invalid", INVALID)

    summary = bot.run()

    assert summary.exit_code == ExitCode.OK
    assert bot.status(ticket) == 4
    assert bot.sim.solutions(ticket) == []
    followups = _followup_texts(bot, ticket)
    assert len(followups) == 2
    assert "expect_staus" in followups[1]
    assert "params.url" in followups[1]
    assert bot.memory_records()[0]["outcome"] == "pending"


def test_pass_blocks_failing_check(bot: BotEnv) -> None:
    ticket = bot.ticket("failing", FAILING.format(url=bot.sim.url))

    bot.run()

    assert bot.status(ticket) == 4
    assert "404" in _followup_texts(bot, ticket)[-1]
    assert (bot.artifact_dir / f"ticket-{ticket}.md").is_file()


def test_pass_ignores_other_tickets(bot: BotEnv) -> None:
    unassigned = bot.ticket("unassigned", VALID.format(url=bot.sim.url), assigned_user_ids=[])
    other_category = bot.ticket("elsewhere", VALID.format(url=bot.sim.url), category_id=1)
    deleted = bot.ticket("trash", VALID.format(url=bot.sim.url), is_deleted=True)
    assigned_to_person = bot.ticket("tech", VALID.format(url=bot.sim.url), assigned_user_ids=[4])

    bot.run()

    for ticket in (unassigned, other_category, deleted, assigned_to_person):
        assert bot.sim.followups(ticket) == []
    assert bot.status(unassigned) == 1
    assert bot.status(assigned_to_person) == 2
    assert bot.memory_records() == []


def test_second_pass_sends_one_request(bot: BotEnv) -> None:
    bot.ticket("valid", VALID.format(url=bot.sim.url))
    bot.ticket("invalid", INVALID)
    bot.run()
    bot.sim.reset_requests()

    summary = bot.run()

    assert bot.sim.request_count == 1
    assert bot.sim.requests[0].method == "GET"
    assert summary.count("solved") == 0
    assert summary.count("pending") == 0


def test_new_ticket_status_moves_to_processing(bot: BotEnv) -> None:
    ticket = bot.ticket("new", VALID.format(url=bot.sim.url), assigned_user_ids=[])
    bot.sim.set_status(ticket, 1)
    # Assigning the bot moves a New ticket to Processing (assigned), as GLPI does.
    bot.sim.assign(ticket, BOT_ID)
    assert bot.status(ticket) == 2

    bot.run()

    assert bot.status(ticket) == 5


def test_reopened_ticket_is_new_attempt(bot: BotEnv) -> None:
    ticket = bot.ticket("valid", VALID.format(url=bot.sim.url))
    bot.run()
    bot.sim.set_status(ticket, 1)

    bot.run()

    claims = [text for text in _followup_texts(bot, ticket) if " claimed" in text]
    assert len(claims) == 2
    assert "attempt 2" in claims[1]
    assert bot.status(ticket) == 5


def test_lost_ledger_recognises_claim(bot: BotEnv) -> None:
    ticket = bot.ticket("valid", VALID.format(url=bot.sim.url))
    bot.run()
    (bot.state_dir / "ledger.sqlite3").unlink()
    bot.sim.set_status(ticket, 2)

    bot.run()

    claims = [text for text in _followup_texts(bot, ticket) if " claimed" in text]
    assert len(claims) == 2
    assert "attempt 2" in claims[1]


def test_lost_ledger_mid_attempt_resumes(bot: BotEnv) -> None:
    ticket = bot.ticket("valid", VALID.format(url=bot.sim.url))
    # A claim the bot posted before its ledger was lost.
    bot.sim.add_human_followup(ticket, "<p>claimed</p><p><code>glpibot-run %d-1-abcdef claimed</code></p>" % ticket, user_id=BOT_ID)

    bot.run()

    claims = [text for text in _followup_texts(bot, ticket) if " claimed" in text]
    assert len(claims) == 1
    assert bot.status(ticket) == 5
    assert "glpibot-run %d-1-abcdef solved" % ticket in bot.sim.solutions(ticket)[0]["content"]


def test_marker_from_person_is_ignored(bot: BotEnv) -> None:
    ticket = bot.ticket("valid", VALID.format(url=bot.sim.url))
    bot.sim.add_human_followup(ticket, "glpibot-run %d-1-abcdef solved" % ticket, user_id=4)

    bot.run()

    assert bot.status(ticket) == 5
    assert len(bot.sim.solutions(ticket)) == 1


def test_dry_run_changes_nothing(bot: BotEnv) -> None:
    ticket = bot.ticket("valid", VALID.format(url=bot.sim.url))

    summary = bot.run(dry_run=True)

    assert summary.outcomes[0].outcome == "would_solve"
    assert bot.status(ticket) == 2
    assert bot.sim.followups(ticket) == []
    assert all(request.method == "GET" or request.path.endswith("/token") for request in bot.sim.requests)
    assert not bot.state_dir.exists()
    assert not bot.artifact_dir.exists()


def test_cli_poll_json(bot: BotEnv) -> None:
    ticket = bot.ticket("valid", VALID.format(url=bot.sim.url))
    config = bot.write_config()

    result = bot.cli("poll", "--config", str(config), "--json")

    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["outcomes"][0]["ticket_id"] == ticket
    assert summary["outcomes"][0]["outcome"] == "solved"
    assert f"ticket={ticket}" in result.stderr
    assert "pass finished" in result.stderr


def test_cli_lock_held_exits_75(bot: BotEnv) -> None:
    from glpibot.workflow.lock import PassLock

    config = bot.write_config()
    with PassLock(bot.state_dir):
        result = bot.cli("poll", "--config", str(config))

    assert result.returncode == 75
    assert "another glpibot pass holds the lock" in result.stderr


def test_cli_missing_secret_exits_2(bot: BotEnv) -> None:
    config = bot.write_config()
    env = bot.env()
    del env["GLPIBOT_GLPI_PASSWORD"]
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "glpibot", "poll", "--config", str(config)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 2
    assert "GLPIBOT_GLPI_PASSWORD" in result.stderr
    assert "glpi-password" in result.stderr


def test_cli_process_ticket_not_eligible(bot: BotEnv) -> None:
    ticket = bot.ticket("unassigned", VALID.format(url=bot.sim.url), assigned_user_ids=[])
    config = bot.write_config()

    result = bot.cli("process-ticket", str(ticket), "--config", str(config), "--json")

    assert result.returncode == 0
    outcome = json.loads(result.stdout)["outcomes"][0]
    assert outcome["outcome"] == "skipped"
    assert "not assigned" in outcome["summary"]
    assert bot.sim.followups(ticket) == []


def test_process_ticket_force_skips_status(bot: BotEnv) -> None:
    ticket = bot.ticket("pending", VALID.format(url=bot.sim.url))
    bot.sim.set_status(ticket, 4)

    skipped = bot.run(only_ticket=ticket)
    forced = bot.run(only_ticket=ticket, force=True)

    assert skipped.outcomes[0].outcome == "skipped"
    assert forced.outcomes[0].outcome == "solved"
    assert bot.status(ticket) == 5


def test_glpi_unreachable_exits_3(bot: BotEnv) -> None:
    config = bot.config()
    bot.sim.stop()

    from glpibot.workflow.pass_runner import run_pass

    summary = run_pass(config)

    assert summary.exit_code == ExitCode.GLPI_UNAVAILABLE
    assert summary.error


def _new_ticket_assigned(bot: BotEnv, name: str) -> int:
    """Return a ticket a person set back to New after assigning the bot, so the pass must PATCH status 2."""
    ticket = bot.ticket(name, VALID.format(url=bot.sim.url))
    bot.sim.set_status(ticket, 1)
    return ticket


def test_token_refused_mid_pass_relogs_once(bot: BotEnv) -> None:
    from glpibot.testing import Fault

    first = _new_ticket_assigned(bot, "first")
    second = _new_ticket_assigned(bot, "second")
    bot.sim.add_fault(Fault(method="PATCH", path=r"^/Assistance/Ticket/\d+$", unauthorized=True))

    summary = bot.run()

    assert summary.exit_code == ExitCode.OK
    assert bot.sim.count("POST", "/token") == 2
    assert bot.sim.count("PATCH") == 3  # refused, resent, then the second ticket's
    for ticket in (first, second):
        claims = [text for text in _followup_texts(bot, ticket) if " claimed" in text]
        assert len(claims) == 1
        assert bot.status(ticket) == 5


def test_new_token_refused_stops_pass(bot: BotEnv) -> None:
    from glpibot.testing import Fault

    ticket = _new_ticket_assigned(bot, "first")
    bot.sim.add_fault(Fault(method="PATCH", path=r"^/Assistance/Ticket/\d+$", unauthorized=True, times=2))

    stopped = bot.run()

    assert stopped.exit_code == ExitCode.GLPI_UNAVAILABLE
    assert bot.sim.count("POST", "/token") == 2
    assert bot.status(ticket) == 1

    resumed = bot.run()

    assert resumed.exit_code == ExitCode.OK
    claims = [text for text in _followup_texts(bot, ticket) if " claimed" in text]
    assert len(claims) == 1
    assert bot.status(ticket) == 5


def test_rejected_credentials_name_user(bot: BotEnv, monkeypatch) -> None:
    bot.ticket("valid", VALID.format(url=bot.sim.url))
    monkeypatch.setenv("GLPIBOT_GLPI_PASSWORD", "not-the-password")

    summary = bot.run()

    assert summary.exit_code == ExitCode.GLPI_UNAVAILABLE
    assert summary.error is not None
    assert "homelab-bot" in summary.error
    assert "not-the-password" not in summary.error
    assert bot.sim.client_secret not in summary.error


def test_solution_without_status_change_not_rerun(bot: BotEnv) -> None:
    from glpibot.testing import Fault

    ticket = bot.ticket("valid", VALID.format(url=bot.sim.url))
    bot.sim.add_fault(Fault(method="POST", path=r"/Timeline/Solution$", ignore_status_change=True))
    bot.sim.add_fault(Fault(method="PATCH", path=r"^/Assistance/Ticket/\d+$", ignore_status_change=True))

    first = bot.run()

    assert first.exit_code == ExitCode.TICKET_ERROR
    assert bot.status(ticket) == 2
    assert len(bot.sim.solutions(ticket)) == 1

    second = bot.run()

    assert second.exit_code == ExitCode.OK
    assert bot.status(ticket) == 5
    assert len(bot.sim.solutions(ticket)) == 1
    claims = [text for text in _followup_texts(bot, ticket) if " claimed" in text]
    assert len(claims) == 1
    checks = [request for request in bot.sim.other_requests if request.path == "/health"]
    assert len(checks) == 1


def test_unknown_category_id_is_config_error(bot: BotEnv) -> None:
    bot.overrides["glpi"] = dict(bot.config_data()["glpi"], category=99)
    config = bot.write_config()

    result = bot.cli("poll", "--config", str(config))

    assert result.returncode == 2
    assert "category id 99 not found" in result.stderr


def test_process_missing_ticket_exits_2(bot: BotEnv) -> None:
    config = bot.write_config()

    result = bot.cli("process-ticket", "999", "--config", str(config), "--json")

    assert result.returncode == 2
    summary = json.loads(result.stdout)
    assert summary["outcomes"][0]["outcome"] == "not_found"
    assert "999 not found" in summary["outcomes"][0]["summary"]


def test_poll_reports_skipped_tickets(bot: BotEnv) -> None:
    unassigned = bot.ticket("unassigned", VALID.format(url=bot.sim.url), assigned_user_ids=[])

    summary = bot.run()

    skipped = [item for item in summary.outcomes if item.outcome == "skipped"]
    assert [item.ticket_id for item in skipped] == [unassigned]
    assert "not assigned" in skipped[0].summary
    assert "skipped=1" in summary.line()


def test_process_solved_ticket_says_why(bot: BotEnv) -> None:
    ticket = bot.ticket("valid", VALID.format(url=bot.sim.url))
    bot.run()

    again = bot.run(only_ticket=ticket)

    assert again.outcomes[0].outcome == "skipped"
    assert "status is 5" in again.outcomes[0].summary


def test_changed_password_not_hidden_by_cache(bot: BotEnv, monkeypatch) -> None:
    bot.run()
    monkeypatch.setenv("GLPIBOT_GLPI_PASSWORD", "a-changed-password")

    summary = bot.run()

    assert summary.exit_code == ExitCode.GLPI_UNAVAILABLE
    assert "homelab-bot" in (summary.error or "")


def test_json_on_lock_error(bot: BotEnv) -> None:
    from glpibot.workflow.lock import PassLock

    config = bot.write_config()
    with PassLock(bot.state_dir):
        result = bot.cli("poll", "--config", str(config), "--json")

    assert result.returncode == 75
    assert json.loads(result.stdout)["exit_code"] == 75


def test_bug_in_one_ticket_spares_others(bot: BotEnv, monkeypatch) -> None:
    from glpibot.actions.http_check import HttpCheck

    broken = bot.ticket("broken", VALID.format(url=bot.sim.url))
    fine = bot.ticket("fine", INVALID)
    original = HttpCheck.run

    def run_with_bug(self, step, context):  # a stand-in for a programming error in an action
        if context.ticket_id == broken:
            raise TypeError("'float' object is not iterable")
        return original(self, step, context)

    monkeypatch.setattr(HttpCheck, "run", run_with_bug)

    summary = bot.run()

    assert summary.exit_code == ExitCode.TICKET_ERROR
    assert bot.status(broken) == 4
    assert "internal error" in _followup_texts(bot, broken)[-1]
    assert bot.status(fine) == 4

    again = bot.run()

    assert again.exit_code == ExitCode.OK
    assert len(_followup_texts(bot, broken)) == 2
