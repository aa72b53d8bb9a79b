"""GLPI faults against whole passes: each request of a clean pass times each kind of failure.

The default run covers one cell per fault kind and the client's own time
limits. `pytest -m reliability tests/test_glpi_faults.py` runs every cell;
with GLPIBOT_RELIABILITY_REPORT=<file.md> set, the figures of every cell
that ran are written there (and as JSON to <file.md>.json).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from glpibot.errors import GlpiUnreachableError
from glpibot.exitcodes import ExitCode
from glpibot.glpi.client import GlpiClient
from glpibot.testing import Fault, GlpiSimulator
from glpibot.workflow.pass_runner import run_pass
from tests import faultkit, faultreport, faultscenario
from tests.botenv import BotEnv
from tests.faultkit import FAULT_KINDS, KINDS_BY_NAME, CellResult, RequestSlot
from tests.fixtures_glpi import settings_for

REPORT_ENV = "GLPIBOT_RELIABILITY_REPORT"
REPORT_COMMAND = f"{REPORT_ENV}=/tmp/glpi-faults.md python -m pytest -q -m reliability tests/test_glpi_faults.py"
CLIENT_TIMEOUT_S = 0.5

# One cell per fault kind for the default run: (fault kind, request label of the clean pass).
# Tickets 1, 2 and 3 are the valid, invalid and failing tickets of the scenario.
REPRESENTATIVE = [
    ("http500", "POST /Assistance/Ticket/1/Timeline/Followup #1"),
    ("http500", "POST /token #1"),
    ("http502", "GET /Assistance/Ticket #1"),
    ("http503", "POST /Assistance/Ticket/2/Timeline/Followup #2"),
    ("reset", "POST /Assistance/Ticket/1/Timeline/Solution #1"),
    ("read_timeout", "PATCH /Assistance/Ticket/3 #1"),
    ("trickle", "GET /Assistance/Ticket/2/Timeline #1"),
    ("expired_401", "POST /Assistance/Ticket/3/Timeline/Followup #2"),
    ("invalid_token_400", "GET /session #1"),
    ("missing_right_403", "GET /Assistance/Ticket/2 #1"),
    ("status_kept", "PATCH /Assistance/Ticket/2 #1"),
    ("applied_500", "POST /Assistance/Ticket/1/Timeline/Solution #1"),
    ("applied_502", "POST /Assistance/Ticket/3/Timeline/Followup #1"),
]


@pytest.fixture(scope="module")
def collected() -> Iterator[dict[tuple[str, str], CellResult]]:
    """Cell results of this module, keyed by (fault, request); written as a report when REPORT_ENV is set."""
    results: dict[tuple[str, str], CellResult] = {}
    yield results
    target = os.environ.get(REPORT_ENV)
    if target and results:
        faultreport.write_report(Path(target), list(results.values()), REPORT_COMMAND)


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[RequestSlot], CellResult]:
    return faultkit.record_clean_pass(tmp_path_factory.mktemp("clean"))


def slot_named(slots: list[RequestSlot], label: str) -> RequestSlot:
    found = [slot for slot in slots if slot.label == label]
    assert found, f"the clean pass made no request {label}; it made {[slot.label for slot in slots]}"
    return found[0]


def describe(cells: list[CellResult]) -> str:
    return "\n".join(f"{cell.fault} on {cell.request}: {'; '.join(cell.violations)}" for cell in cells)


# The clean pass


def test_clean_pass_settles(clean: tuple[list[RequestSlot], CellResult]) -> None:
    _, result = clean
    assert result.violations == []
    assert result.exit_codes == [ExitCode.OK]
    assert result.passes_needed == 1


def test_clean_pass_requests(clean: tuple[list[RequestSlot], CellResult]) -> None:
    slots, _ = clean
    labels = [slot.label for slot in slots]
    first = ["POST /token #1", "GET /session #1", "GET /Dropdowns/ITILCategory #1", "GET /Assistance/Ticket #1"]
    assert labels[:4] == first
    assert "POST /Assistance/Ticket/1/Timeline/Solution #1" in labels
    assert "PATCH /Assistance/Ticket/2 #1" in labels
    assert "PATCH /Assistance/Ticket/3 #1" in labels


# One cell per fault kind


@pytest.mark.parametrize(("kind_name", "label"), REPRESENTATIVE, ids=[f"{kind}:{label}" for kind, label in REPRESENTATIVE])
def test_fault_cell(
    kind_name: str,
    label: str,
    clean: tuple[list[RequestSlot], CellResult],
    collected: dict[tuple[str, str], CellResult],
    tmp_path: Path,
) -> None:
    slot = slot_named(clean[0], label)
    result = faultkit.run_cell(tmp_path, slot, KINDS_BY_NAME[kind_name])
    collected[(result.fault, result.request)] = result
    assert result.violations == [], describe([result])


def test_kinds_all_represented() -> None:
    assert {kind for kind, _ in REPRESENTATIVE} == {kind.name for kind in FAULT_KINDS}


# The whole matrix


@pytest.mark.reliability
@pytest.mark.parametrize("kind_name", [kind.name for kind in FAULT_KINDS])
def test_matrix_row(
    kind_name: str,
    clean: tuple[list[RequestSlot], CellResult],
    collected: dict[tuple[str, str], CellResult],
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    if "reliability" not in (request.config.getoption("markexpr") or ""):
        pytest.skip("the full fault matrix runs with -m reliability")
    kind = KINDS_BY_NAME[kind_name]
    cells = []
    for slot in clean[0]:
        if kind.applies_to(slot):
            result = faultkit.run_cell(tmp_path / f"cell-{slot.index}", slot, kind)
            collected[(result.fault, result.request)] = result
            cells.append(result)
    assert cells
    failed = [cell for cell in cells if cell.violations]
    assert failed == [], describe(failed)


# The client's own limits, which the matrix relies on


@pytest.fixture
def client(glpi_sim: GlpiSimulator, glpi_client_factory: Any) -> GlpiClient:
    return glpi_client_factory(settings=settings_for(glpi_sim, timeout_s=CLIENT_TIMEOUT_S))


def test_trickled_get_retried(glpi_sim: GlpiSimulator, client: GlpiClient) -> None:
    glpi_sim.add_fault(Fault(method="GET", path="^/session$", trickle_s=20 * CLIENT_TIMEOUT_S))

    started = time.monotonic()
    user_id = client.user_id()
    duration = time.monotonic() - started

    assert user_id == 7
    assert glpi_sim.count("GET", "/session") == 2
    assert duration < 4 * CLIENT_TIMEOUT_S + 2


def test_trickled_write_times_out(glpi_sim: GlpiSimulator, client: GlpiClient) -> None:
    ticket_id = glpi_sim.add_ticket(name="t", content="x", assigned_user_ids=[7])
    glpi_sim.add_fault(Fault(method="POST", path="/Followup$", trickle_s=20 * CLIENT_TIMEOUT_S))

    started = time.monotonic()
    with pytest.raises(GlpiUnreachableError) as caught:
        client.add_followup(ticket_id, "<p>once</p>")
    duration = time.monotonic() - started

    assert "no complete response within 0.5 s" in str(caught.value)
    assert "may have been applied" in str(caught.value)
    assert duration < 4 * CLIENT_TIMEOUT_S + 2
    assert len(glpi_sim.followups(ticket_id)) == 1


def test_trickled_headers_not_parsed(glpi_sim: GlpiSimulator, client: GlpiClient) -> None:
    # Cut off inside the headers, a response parses as a 200 with no body unless the client discards it.
    glpi_sim.add_fault(Fault(method="GET", path="^/session$", times=-1, trickle_s=20 * CLIENT_TIMEOUT_S))
    client.max_get_retries = 0

    with pytest.raises(GlpiUnreachableError) as caught:
        client.user_id()

    assert "GET /session" in str(caught.value)
    assert "no complete response" in str(caught.value)


def test_slow_answer_kept(glpi_sim: GlpiSimulator, client: GlpiClient) -> None:
    glpi_sim.add_fault(Fault(method="GET", path="^/session$", delay_s=CLIENT_TIMEOUT_S / 2))

    assert client.user_id() == 7
    assert glpi_sim.count("GET", "/session") == 1


def test_renewal_log_names_request(
    glpi_sim: GlpiSimulator, client: GlpiClient, caplog: pytest.LogCaptureFixture
) -> None:
    glpi_sim.add_fault(Fault(method="GET", path="^/session$", unauthorized=True))
    caplog.set_level(logging.INFO, logger="glpibot")

    client.user_id()

    renewals = [record for record in caplog.records if "rejected the access token" in record.getMessage()]
    assert len(renewals) == 1
    assert renewals[0].levelno == logging.WARNING
    assert "GET /session" in renewals[0].getMessage()


def test_pass_error_names_token_request(bot: BotEnv) -> None:
    bot.sim.add_fault(Fault(method="POST", path="^/token$", status=500))

    summary = bot.run()

    assert summary.exit_code == ExitCode.TICKET_ERROR
    assert summary.error is not None
    assert summary.error.startswith("GLPI POST /token: ")


# The command line's exit code and stderr



def test_cli_reset_exits_3(bot: BotEnv) -> None:
    ticket = bot.ticket("valid", faultscenario.VALID.format(url=bot.sim.url))
    path = f"/Assistance/Ticket/{ticket}/Timeline/Followup"
    bot.sim.add_fault(Fault(method="POST", path=f"^{path}$", drop=True))

    result = bot.cli("poll", "--config", str(bot.write_config()), "--json")

    assert result.returncode == ExitCode.GLPI_UNAVAILABLE
    errors = [line for line in result.stderr.splitlines() if " ERROR " in line]
    assert any(f"POST {path}" in line and f"ticket={ticket}" in line for line in errors), result.stderr
    assert json.loads(result.stdout)["outcomes"][0]["outcome"] == "fatal"


def test_cli_ticket_error_exits_1(bot: BotEnv) -> None:
    ticket = bot.ticket("valid", faultscenario.VALID.format(url=bot.sim.url))
    other = bot.ticket("second", faultscenario.VALID.format(url=bot.sim.url))
    path = f"/Assistance/Ticket/{ticket}/Timeline/Solution"
    bot.sim.add_fault(Fault(method="POST", path=f"^{path}$", status=500))

    result = bot.cli("poll", "--config", str(bot.write_config()))

    assert result.returncode == ExitCode.TICKET_ERROR
    errors = [line for line in result.stderr.splitlines() if " ERROR " in line]
    assert any(f"POST {path}" in line and f"ticket={ticket}" in line for line in errors), result.stderr
    assert bot.status(other) == 5


def test_cli_next_pass_exits_0(bot: BotEnv) -> None:
    ticket = bot.ticket("valid", faultscenario.VALID.format(url=bot.sim.url))
    bot.sim.add_fault(Fault(method="POST", path="/Solution$", status=502, apply_then_fail=True))
    config = str(bot.write_config())
    bot.cli("poll", "--config", config)

    result = bot.cli("poll", "--config", config)

    assert result.returncode == ExitCode.OK, result.stderr
    assert len(bot.sim.solutions(ticket)) == 1
    assert "not posting it again" in result.stderr


def test_missing_right_is_ticket_error(bot: BotEnv) -> None:
    ticket = bot.ticket("valid", faultscenario.VALID.format(url=bot.sim.url))
    bot.sim.add_fault(Fault(method="POST", path="/Followup$", status=403, body=faultkit.MISSING_RIGHT_BODY))

    summary = run_pass(bot.config())

    assert summary.exit_code == ExitCode.TICKET_ERROR
    assert summary.outcomes[0].ticket_id == ticket
    assert summary.outcomes[0].outcome == "error"
    assert "HTTP 403" in summary.outcomes[0].summary


# A state-changing step: a lost GLPI response must never make the unit restart twice

RESTART = """
glpibot: 1
action: systemd_remote
host: svc-auto
params:
  unit: nginx.service
  operation: restart
"""

RESTART_CELLS = [
    ("reset", "POST /Assistance/Ticket/1/Timeline/Solution #1"),
    ("applied_502", "POST /Assistance/Ticket/1/Timeline/Solution #1"),
    ("read_timeout", "POST /Assistance/Ticket/1/Timeline/Solution #1"),
    ("applied_500", "POST /Assistance/Ticket/1/Timeline/Followup #1"),
    ("reset", "POST /Assistance/Ticket/1/Timeline/Followup #1"),
]


def restart_calls(sshd: Any) -> list[list[str]]:
    return [argv for argv in sshd.calls() if argv[:1] == ["systemctl"] and "restart" in argv]


@pytest.mark.ssh
@pytest.mark.parametrize(("kind_name", "label"), RESTART_CELLS, ids=[f"{kind}:{label}" for kind, label in RESTART_CELLS])
def test_restart_runs_once(kind_name: str, label: str, sshd: Any, tmp_path: Path) -> None:
    nginx = {"LoadState": "loaded", "ActiveState": "active", "SubState": "running"}
    sshd.set_scenario("systemctl-units.json", json.dumps({"nginx.service": nginx}))
    kind = KINDS_BY_NAME[kind_name]
    method, path, occurrence = label.replace("#", "").split()
    slot = RequestSlot(0, method, path, int(occurrence))
    sim = GlpiSimulator().start()
    exit_codes = []
    try:
        env = BotEnv(sim=sim, root=tmp_path)
        ticket = env.ticket("restart", RESTART)
        actions = {"systemd_remote": {"allowed_units": {"svc-auto": ["nginx.service"]}, "operations": ["restart"]}}
        hosts = {"svc-auto": sshd.host_entry()}
        config = faultscenario.matrix_config(env, faultkit.TIMEOUT_S, hosts=hosts, actions=actions)
        fault = slot.fault(**kind.effects(faultkit.TIMEOUT_S))
        sim.add_fault(fault)
        with faultkit.bot_secrets(sim):
            for _ in range(faultkit.MAX_PASSES):
                exit_codes.append(int(run_pass(config).exit_code))
                faultkit.wait_until_idle(sim)
                if exit_codes[-1] == ExitCode.OK:
                    break
        markers = faultscenario.bot_markers(sim, ticket)
        solutions = sim.solutions(ticket)
        status = env.status(ticket)
    finally:
        sim.stop()

    assert fault.seen >= slot.occurrence
    assert exit_codes[0] == faultkit.expected_exit(slot, kind)
    assert exit_codes[-1] == ExitCode.OK
    assert len(restart_calls(sshd)) == 1
    assert [message for _, _, _, message in markers].count("claimed") == 1
    assert len(solutions) == 1
    assert status == 5
