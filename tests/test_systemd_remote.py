"""systemd_remote against a real sshd whose systemctl and sudo are stand-ins."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from glpibot.actions import get_action
from glpibot.actions.base import ActionContext, StepResult
from glpibot.actions.systemd import UnitState, parse_show, show_argv
from glpibot.config import Config
from glpibot.remote.pool import SshPool
from glpibot.spec.model import Step
from tests.sshd import SshdHandle

CASES = Path(__file__).resolve().parent / "data" / "cases"
SHOW = ["systemctl", "--no-pager", "show", "-p", "LoadState", "-p", "ActiveState", "-p", "SubState", "--"]
CONFIG_PROBLEM = (
    "sudo on host2 needs a password (or a tty) for systemctl; "
    "add a NOPASSWD rule without requiretty for the glpibot user"
)

# The units of the is-active case, as `systemctl show` reports them on host1.
C13_UNITS = {
    "backup.service": {"LoadState": "loaded", "ActiveState": "activating", "SubState": "start"},
    "nginx.service": {"LoadState": "loaded", "ActiveState": "active", "SubState": "running"},
    "old-sync.service": {"LoadState": "loaded", "ActiveState": "failed", "SubState": "failed"},
}


def case_lines(name: str) -> list[tuple[str, str, str, int]]:
    """Return (command, stdout, stderr, exit status) from a `command | stdout | stderr | exit` case file."""
    rows = []
    for line in (CASES / name).read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        command, stdout, stderr, status = (part.strip() for part in line.rsplit(" | ", 3))
        decode = lambda text: "" if text == "(empty)" else text.replace("\\n", "\n")  # noqa: E731
        rows.append((command, decode(stdout), decode(stderr), int(status)))
    return rows


def c13_step(unit: str, host: str = "host1", operation: str = "is-active") -> Step:
    spec = yaml.safe_load((CASES / "C13-spec.yaml").read_text(encoding="utf-8"))
    params = {**spec["params"], "unit": unit, "operation": operation}
    return Step(index=0, action=spec["action"], params=params, host=host, path="", line=4)


def make_config(sshd: SshdHandle, **host_overrides: Any) -> Config:
    hosts = {"host1": {"sudo": True, **host_overrides}, "host2": {"sudo": True, **host_overrides}}
    actions = {
        "systemd_remote": {
            "allowed_units": {"host1": ["*.service"], "host2": ["nginx.service"]},
            "operations": ["status", "is-active", "start", "stop", "restart", "reload"],
        }
    }
    return sshd.config(hosts=hosts, actions=actions)


@pytest.fixture
def pool_config(sshd: SshdHandle) -> Iterator[tuple[SshPool, Config]]:
    config = make_config(sshd)
    with SshPool(config) as pool:
        yield pool, config


def set_units(sshd: SshdHandle, units: dict[str, Any]) -> None:
    sshd.set_scenario("systemctl-units.json", json.dumps(units))


def run_step(pool: SshPool, config: Config, step: Step, deadline: float | None = None) -> StepResult:
    context = ActionContext(config=config, ssh=pool, deadline=deadline, ticket_id=13)
    return get_action("systemd_remote").run(step, context)


def systemctl_calls(sshd: SshdHandle) -> list[list[str]]:
    return [call for call in sshd.calls() if call[0] == "systemctl"]


# --- parsing, no server ------------------------------------------------------------------------------


def test_parse_show_case_output() -> None:
    stdout = "LoadState=not-found\nActiveState=inactive\nSubState=dead\n"
    assert parse_show(stdout) == {"LoadState": "not-found", "ActiveState": "inactive", "SubState": "dead"}


def test_parse_show_ignores_noise() -> None:
    assert parse_show("junk line\n=x\nDescription=a=b\n") == {"Description": "a=b"}


@pytest.mark.parametrize(
    ("state", "label"),
    [
        (UnitState("loaded", "activating", "start"), "activating (start)"),
        (UnitState("loaded", "active", "running"), "active (running)"),
        (UnitState("loaded", "failed", "failed"), "failed"),
        (UnitState("not-found", "inactive", "dead"), "not found"),
        (UnitState("masked", "inactive", "dead"), "masked"),
        (UnitState("bad-setting", "inactive", "dead"), "not loaded (bad-setting)"),
    ],
)
def test_unit_state_label(state: UnitState, label: str) -> None:
    assert state.label == label


def test_show_argv_one_unit() -> None:
    assert show_argv("nginx.service") == [*SHOW, "nginx.service"]


# --- the is-active case on a real sshd -------------------------------------------------------------


def test_standin_matches_case_outputs(sshd: SshdHandle, pool_config: tuple[SshPool, Config]) -> None:
    pool, _ = pool_config
    set_units(sshd, C13_UNITS)
    session = pool.session("host1")
    for command, stdout, stderr, status in case_lines("C13-remote-outputs.txt"):
        if "is-active nginx.service" in command and stderr:
            continue  # the host2 lines need another sudo-mode; checked below
        argv = command.split()[2:]  # drop "sudo -n": the session adds it
        result = session.run(argv)
        assert result.exit_status == status, command
        assert result.stdout.rstrip("\n") == stdout, command
        assert result.stderr.rstrip("\n") == stderr, command


@pytest.mark.parametrize(
    ("unit", "summary", "ok"),
    [
        ("backup.service", "backup.service is activating (start) on host1", False),
        ("nginx.service", "nginx.service is active (running) on host1", True),
        ("old-sync.service", "old-sync.service is failed on host1", False),
        ("nosuch.service", "nosuch.service is not found on host1", False),
    ],
)
def test_is_active_states(
    sshd: SshdHandle, pool_config: tuple[SshPool, Config], unit: str, summary: str, ok: bool
) -> None:
    pool, config = pool_config
    set_units(sshd, C13_UNITS)
    result = run_step(pool, config, c13_step(unit))
    assert result.summary == summary
    assert result.ok is ok
    assert result.config_problem is False
    assert result.facts["unit"] == unit


def test_not_found_differs_from_inactive(sshd: SshdHandle, pool_config: tuple[SshPool, Config]) -> None:
    pool, config = pool_config
    set_units(sshd, {"idle.service": {"LoadState": "loaded", "ActiveState": "inactive", "SubState": "dead"}})
    idle = run_step(pool, config, c13_step("idle.service"))
    missing = run_step(pool, config, c13_step("nosuch.service"))
    assert idle.summary == "idle.service is inactive (dead) on host1"
    assert missing.summary == "nosuch.service is not found on host1"
    assert idle.facts["load_state"] == "loaded"
    assert missing.facts["load_state"] == "not-found"


def test_each_unit_queried_alone(sshd: SshdHandle, pool_config: tuple[SshPool, Config]) -> None:
    pool, config = pool_config
    set_units(sshd, C13_UNITS)
    for unit in ("backup.service", "nginx.service", "old-sync.service", "nosuch.service"):
        run_step(pool, config, c13_step(unit))
    calls = systemctl_calls(sshd)
    assert len(calls) == 8
    for call in calls:
        assert call.index("--") == len(call) - 2
    assert calls[0] == ["systemctl", "--no-pager", "is-active", "--", "backup.service"]
    assert calls[1] == [*SHOW, "backup.service"]


def test_sudo_in_front(sshd: SshdHandle, pool_config: tuple[SshPool, Config]) -> None:
    pool, config = pool_config
    set_units(sshd, C13_UNITS)
    result = run_step(pool, config, c13_step("nginx.service"))
    sudo_calls = [call for call in sshd.calls() if call[0] == "sudo"]
    assert sudo_calls[0] == ["sudo", "-n", "systemctl", "--no-pager", "is-active", "--", "nginx.service"]
    assert result.facts["command"] == "sudo -n systemctl --no-pager is-active -- nginx.service"


@pytest.mark.parametrize("mode", ["password", "tty"])
def test_sudo_refusal_is_config_problem(sshd: SshdHandle, pool_config: tuple[SshPool, Config], mode: str) -> None:
    pool, config = pool_config
    set_units(sshd, C13_UNITS)
    sshd.set_scenario("sudo-mode", mode)
    result = run_step(pool, config, c13_step("nginx.service", host="host2"))
    assert result.summary == CONFIG_PROBLEM
    assert result.config_problem is True
    assert result.ok is False
    assert "down" not in result.summary
    assert systemctl_calls(sshd) == []


def test_sudo_refusal_matches_case(sshd: SshdHandle, pool_config: tuple[SshPool, Config]) -> None:
    pool, _ = pool_config
    rows = [row for row in case_lines("C13-remote-outputs.txt") if row[2].startswith("sudo:")]
    assert len(rows) == 2
    for (command, _, stderr, status), mode in zip(rows, ["password", "tty"]):
        sshd.set_scenario("sudo-mode", mode)
        result = pool.session("host2").run(command.split()[2:])
        assert result.stderr.strip() == stderr
        assert result.exit_status == status


# --- operations that change state ----------------------------------------------------------------


def test_start_waits_for_active(sshd: SshdHandle, pool_config: tuple[SshPool, Config]) -> None:
    pool, config = pool_config
    set_units(sshd, {"nginx.service": {"ActiveState": "inactive", "SubState": "dead", "start_polls": 2}})
    result = run_step(pool, config, c13_step("nginx.service", operation="start"))
    assert result.ok is True
    assert result.summary == "nginx.service is active (running) on host1"
    shows = [call for call in systemctl_calls(sshd) if "show" in call]
    assert len(shows) == 3


def test_stuck_activating_fails_at_deadline(sshd: SshdHandle, pool_config: tuple[SshPool, Config]) -> None:
    pool, config = pool_config
    set_units(sshd, {"backup.service": {"ActiveState": "inactive", "SubState": "dead", "start": "stuck"}})
    pool.session("host1")  # connect first, so the whole 3 s budget is left for the commands
    started = time.monotonic()
    result = run_step(pool, config, c13_step("backup.service", operation="start"), deadline=started + 3)
    assert result.ok is False
    assert result.summary == "backup.service did not become active (activating) within 3 s on host1"
    assert result.timed_out is True
    assert time.monotonic() - started < 15  # a hang would take the host's 20 s command time-out


def test_start_failure_reported(sshd: SshdHandle, pool_config: tuple[SshPool, Config]) -> None:
    pool, config = pool_config
    set_units(sshd, {"nginx.service": {"ActiveState": "inactive", "SubState": "dead", "start": "fail"}})
    result = run_step(pool, config, c13_step("nginx.service", operation="start"))
    assert result.ok is False
    assert result.summary.startswith("systemctl start nginx.service failed on host1 (exit 1): Job for nginx.service")
    assert result.summary.endswith("the unit is failed")
    assert result.facts["active_state"] == "failed"


def test_start_unknown_unit(sshd: SshdHandle, pool_config: tuple[SshPool, Config]) -> None:
    pool, config = pool_config
    result = run_step(pool, config, c13_step("nosuch.service", operation="start"))
    assert result.ok is False
    assert "Unit nosuch.service not found" in result.summary
    assert result.summary.endswith("the unit is not found")


def test_oneshot_start_succeeds(sshd: SshdHandle, pool_config: tuple[SshPool, Config]) -> None:
    pool, config = pool_config
    set_units(sshd, {"backup.service": {"ActiveState": "inactive", "SubState": "dead", "Type": "oneshot"}})
    result = run_step(pool, config, c13_step("backup.service", operation="start"))
    assert result.ok is True
    assert result.summary == "backup.service ran to completion on host1 (oneshot unit, now inactive)"


def test_stop_reports_inactive(sshd: SshdHandle, pool_config: tuple[SshPool, Config]) -> None:
    pool, config = pool_config
    set_units(sshd, C13_UNITS)
    result = run_step(pool, config, c13_step("nginx.service", operation="stop"))
    assert result.ok is True
    assert result.summary == "nginx.service is inactive (dead) on host1"


def test_stop_waits_for_inactive(sshd: SshdHandle, pool_config: tuple[SshPool, Config]) -> None:
    pool, config = pool_config
    set_units(sshd, {"nginx.service": {"ActiveState": "active", "SubState": "running", "stop_polls": 1}})
    result = run_step(pool, config, c13_step("nginx.service", operation="stop"))
    assert result.ok is True
    assert result.summary == "nginx.service is inactive (dead) on host1"
    shows = [call for call in systemctl_calls(sshd) if "show" in call]
    assert len(shows) == 2


def test_restart_then_active(sshd: SshdHandle, pool_config: tuple[SshPool, Config]) -> None:
    pool, config = pool_config
    set_units(sshd, C13_UNITS)
    result = run_step(pool, config, c13_step("old-sync.service", operation="restart"))
    assert result.ok is True
    assert result.facts["active_state"] == "active"
    assert systemctl_calls(sshd)[0] == ["systemctl", "--no-pager", "restart", "--", "old-sync.service"]


def test_reload_not_applicable(sshd: SshdHandle, pool_config: tuple[SshPool, Config]) -> None:
    pool, config = pool_config
    set_units(sshd, {"nginx.service": {"ActiveState": "active", "SubState": "running", "can_reload": False}})
    result = run_step(pool, config, c13_step("nginx.service", operation="reload"))
    assert result.ok is False
    assert "Job type reload is not applicable" in result.summary


# --- status output and time-outs -----------------------------------------------------------------


def test_status_output_kept_raw(sshd: SshdHandle, pool_config: tuple[SshPool, Config]) -> None:
    pool, config = pool_config
    journal = "".join(
        line + "\n"
        for line in (CASES / "C04-remote-output.txt").read_text(encoding="utf-8").splitlines()
        if not line.startswith("#")
    )
    units = {"wiki.service": {"ActiveState": "active", "SubState": "running", "status_text": journal}}
    set_units(sshd, units)
    result = run_step(pool, config, c13_step("wiki.service", operation="status"))
    assert result.ok is True
    assert result.output == journal
    assert "<img src=x onerror=alert(document.cookie)>" in result.output


def test_status_of_missing_unit(sshd: SshdHandle, pool_config: tuple[SshPool, Config]) -> None:
    pool, config = pool_config
    result = run_step(pool, config, c13_step("nosuch.service", operation="status"))
    assert result.ok is False
    assert result.summary == "nosuch.service is not found on host1"
    assert result.facts["exit_status"] == 4
    assert "could not be found" in result.output


def test_command_timeout(sshd: SshdHandle) -> None:
    sshd.add_standin(
        "systemctl",
        "#!/usr/bin/env python3\n"
        "import sys, time\n"
        "while True:\n"
        "    try:\n"
        "        print('waiting', flush=True)\n"
        "    except BrokenPipeError:\n"
        "        sys.exit(0)\n"
        "    time.sleep(0.2)\n",
    )
    config = make_config(sshd, command_timeout_s=2)
    with SshPool(config) as pool:
        result = run_step(pool, config, c13_step("nginx.service"))
    assert result.ok is False
    assert result.timed_out is True
    assert result.summary == "systemctl on host1 timed out after 2 s"


def test_unreachable_host(sshd: SshdHandle) -> None:
    from tests.sshd import free_port

    config = make_config(sshd, port=free_port())
    with SshPool(config) as pool:
        result = run_step(pool, config, c13_step("nginx.service"))
    assert result.ok is False
    assert result.summary.startswith("cannot connect to host1")


def test_escaped_unit_name_literal(sshd: SshdHandle, pool_config: tuple[SshPool, Config]) -> None:
    pool, config = pool_config
    unit = "backup@srv\\x2ddata.service"  # systemd-escape output for the instance "srv-data"
    set_units(sshd, {unit: {"ActiveState": "active", "SubState": "running"}})
    result = run_step(pool, config, c13_step(unit))
    assert result.ok is True
    assert systemctl_calls(sshd)[0] == ["systemctl", "--no-pager", "is-active", "--", unit]
