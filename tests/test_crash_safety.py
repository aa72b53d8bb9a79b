"""SIGKILL a real `glpibot poll` at steps of its lifecycle, then check the next passes (harness: tests/crashkit.py).

The default run covers a representative subset of kill points, each with the
state directory kept and deleted. `pytest -m reliability` (make reliability)
runs every kill point and writes the figures to crash-summary.json in the
test's temporary directory, or to $GLPIBOT_CRASH_SUMMARY when set.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from glpibot.testing.simulator import GlpiSimulator
from tests.botenv import BOT_ID, BotEnv
from tests.crashkit import (
    QUICK,
    KillPoint,
    KillResult,
    artifact_problem,
    count_state_changes,
    kill_points,
    quick_points,
    record_clean_pass,
    run_kill_point,
    run_matrix,
    summarize,
    ticket_outcome,
)
from tests.sshd import SshServer

CleanPass = tuple[list[tuple[str, str]], dict[str, int]]


@pytest.fixture(scope="module")
def clean_pass(ssh_server: SshServer, tmp_path_factory: pytest.TempPathFactory) -> CleanPass:
    """The GLPI requests of one pass over the scenario without a kill, and the scenario's ticket ids."""
    return record_clean_pass(ssh_server, tmp_path_factory.mktemp("clean-pass"))


def problems(result: KillResult, category: str) -> list[str]:
    return [message for found, message in result.problems if found == category]


# The checks themselves, on made-up evidence: each must catch what it is for.


def test_state_changes_counted() -> None:
    calls = [
        ["systemctl", "--no-pager", "restart", "--", "nginx.service"],
        ["systemctl", "--no-pager", "show", "-p", "ActiveState", "--", "nginx.service"],
        ["systemctl", "--no-pager", "restart", "--", "nginx.service"],
        ["docker", "compose", "--project-directory", "/srv/compose/web", "up", "-d"],
        ["docker", "compose", "--project-directory", "/srv/compose/web", "ps", "--all", "--format", "json"],
        ["docker-compose", "--project-directory=/srv/x", "down"],
    ]
    counts = count_state_changes(calls)
    assert counts["systemctl restart"] == 2
    assert counts["compose up"] == 1
    assert counts["compose down"] == 1
    assert "systemctl show" not in counts
    assert "compose ps" not in counts


def test_outcome_finds_duplicate_claims() -> None:
    sim = GlpiSimulator()
    ticket = sim.add_ticket(name="t", content="x", assigned_user_ids=[BOT_ID])
    for _ in range(2):
        sim.add_human_followup(ticket, f"<p><code>glpibot-run {ticket}-1-abcdef claimed</code></p>", user_id=BOT_ID)
    outcome, duplicates = ticket_outcome(sim, ticket)
    assert outcome.startswith("unanswered")
    assert duplicates == [f"2 claimed messages for run {ticket}-1-abcdef"]


def test_outcome_ignores_quoted_marker() -> None:
    sim = GlpiSimulator()
    ticket = sim.add_ticket(name="t", content="x", assigned_user_ids=[BOT_ID])
    sim.add_human_followup(ticket, f"<p>glpibot-run {ticket}-1-abcdef blocked</p>", user_id=4)
    sim.set_status(ticket, 4)
    outcome, _ = ticket_outcome(sim, ticket)
    assert outcome.startswith("unanswered")


def test_artifact_check_finds_truncation() -> None:
    whole = "# Ticket 3: restart\n\n## Steps\n\n### Step 1: systemd_remote\n\nOutput:\n\n```text\nok\n```\n"
    assert artifact_problem(whole, 3, 1) is None
    assert artifact_problem(whole[: -len("```\n")], 3, 1) == "a code block is not closed"
    assert artifact_problem(whole[: whole.index("### Step")], 3, 1) == "it does not hold 1 step section(s)"
    assert artifact_problem(whole.rstrip("\n"), 3, 1) == "it stops before the end of the template"


def test_quick_points_exist(clean_pass: CleanPass) -> None:
    requests, tickets = clean_pass
    points = kill_points(requests)
    assert len(quick_points(points, tickets)) == len(QUICK)
    assert len([point for point in points if point.kind.startswith("glpi")]) == 2 * len(requests)


# Kill points: each run kills one pass, runs two more and lists every broken promise.


@pytest.mark.parametrize("lose_state", [False, True], ids=["state-kept", "state-lost"])
@pytest.mark.parametrize("label", QUICK)
def test_kill_point(
    label: str, lose_state: bool, clean_pass: CleanPass, ssh_server: SshServer, tmp_path: Path
) -> None:
    requests, tickets = clean_pass
    by_label = {point.label: point for point in kill_points(requests)}
    point = by_label[label.format(**tickets)]

    result = run_kill_point(ssh_server, tmp_path / "world", point, lose_state=lose_state)

    assert result.reached, result.problems
    assert problems(result, "double_execution") == []
    assert problems(result, "unanswered") == []
    assert problems(result, "duplicate_message") == []
    assert problems(result, "wrong_outcome") == []
    assert problems(result, "interrupted_wording") == []
    assert problems(result, "half_written") == []
    assert problems(result, "missing_artifact") == []
    assert problems(result, "missing_memory") == []
    assert problems(result, "ledger") == []
    assert problems(result, "lock") == []
    assert problems(result, "pass_error") == []
    assert result.problems == []


def test_killed_action_reported_interrupted(ssh_server: SshServer, tmp_path: Path) -> None:
    result = run_kill_point(ssh_server, tmp_path / "world", KillPoint("action", "systemd"), lose_state=False)
    assert result.outcomes["systemd"] == "interrupted"
    assert result.state_changes["systemctl restart"] == 1
    assert result.outcomes["compose"] == "solved"


def test_killed_temp_file_removed(ssh_server: SshServer, tmp_path: Path) -> None:
    # A pass killed between writing an artifact's temporary file and renaming it leaves that
    # file behind. A later pass removes it once it is older than a minute (the timer's period).
    result = run_kill_point(ssh_server, tmp_path / "world", KillPoint("artifact-file", "http"), lose_state=False)
    assert result.reached
    assert problems(result, "half_written") == []
    assert result.outcomes["http"] == "solved"
    assert list((tmp_path / "world" / "docs").glob(".ticket-*.tmp")) == []


def test_pass_removes_stale_temp_file(bot: BotEnv) -> None:
    bot.artifact_dir.mkdir(parents=True)
    leftover = bot.artifact_dir / ".ticket-abc123.tmp"
    leftover.write_text("# Ticket 1: half of it")
    fresh = bot.artifact_dir / ".ticket-def456.tmp"
    fresh.write_text("# Ticket 2: being written")
    now = time.time()
    os.utime(leftover, (now - 61, now - 61))

    bot.run()

    assert not leftover.exists()
    assert fresh.exists()


@pytest.mark.reliability
def test_full_matrix(
    request: pytest.FixtureRequest, clean_pass: CleanPass, ssh_server: SshServer, tmp_path: Path
) -> None:
    if "reliability" not in (request.config.getoption("markexpr") or ""):
        pytest.skip("the full kill matrix runs with -m reliability (make reliability)")
    requests, _ = clean_pass

    results = run_matrix(ssh_server, tmp_path, kill_points(requests))

    figures = summarize(results)
    figures["command"] = "python -m pytest -q -m reliability tests/test_crash_safety.py"
    summary_path = Path(os.environ.get("GLPIBOT_CRASH_SUMMARY") or tmp_path / "crash-summary.json")
    summary_path.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    print(f"crash figures written to {summary_path}:\n{json.dumps(figures, indent=2)}")
    assert figures["kill_points"] == 2 * len(kill_points(requests))
    assert figures["double_executions"] == 0, figures["failures"]
    assert figures["unanswered_tickets"] == 0, figures["failures"]
    assert figures["duplicate_messages"] == 0, figures["failures"]
    assert figures["half_written_files"] == 0, figures["failures"]
    assert figures["problems"]["not_reached"] == 0, figures["failures"]
    assert figures["failures"] == []
