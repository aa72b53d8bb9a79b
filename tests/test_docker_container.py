"""docker_container_check against a real sshd whose docker and sudo are stand-ins."""

from __future__ import annotations

import json
import shlex
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from glpibot.actions import get_action
from glpibot.actions.base import ActionContext, StepResult
from glpibot.actions.docker_container import (
    INSPECT_FORMAT,
    _inspect_failure,
    container_facts,
    describe_exit,
    inspect_argv,
    judge,
    parse_inspect,
)
from glpibot.config import Config
from glpibot.remote.pool import SshPool
from glpibot.spec.model import Step
from tests.sshd import SshdHandle

CASES = Path(__file__).resolve().parent / "data" / "cases"
SUDO_PROBLEM = (
    "sudo on host3 needs a password (or a tty) for docker; add a NOPASSWD rule without requiretty for the glpibot user"
)


def case_rows() -> list[tuple[str, str, str, int]]:
    """Return (command, stdout, stderr, exit status) rows of the docker inspect case file."""
    rows = []
    for line in (CASES / "C15-remote-outputs.txt").read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        command, stdout, stderr, status = (part.strip() for part in line.rsplit(" | ", 3))
        stdout = "" if stdout == "(empty)" else stdout
        stderr = "" if stderr == "(empty)" else stderr
        rows.append((command, stdout, stderr, int(status)))
    return rows


def case_states() -> dict[str, dict[str, Any]]:
    """Return container name -> State object, from the `{{json .State}}` outputs of the case file."""
    states = {}
    for command, stdout, _, status in case_rows():
        if "{{json .State}}" in command and status == 0:
            states[command.split()[-1]] = json.loads(stdout)
    return states


def containers_scenario() -> dict[str, Any]:
    restart_counts = {"wiki-web-1": 0, "wiki-db-1": 2, "wiki-cache-1": 0, "wiki-old-1": 4}
    return {
        name: {"Name": f"/{name}", "RestartCount": restart_counts[name], "State": state}
        for name, state in case_states().items()
    }


def step_for(container: str, host: str = "host1", expect: str | None = None) -> Step:
    spec = yaml.safe_load((CASES / "C15-spec.yaml").read_text(encoding="utf-8"))
    params: dict[str, Any] = {**spec["params"], "container": container}
    if expect:
        params["expect"] = expect
    return Step(index=0, action=spec["action"], params=params, host=host, path="", line=4)


@pytest.fixture
def pool_config(sshd: SshdHandle) -> Iterator[tuple[SshPool, Config]]:
    hosts = {"host1": {"sudo": True}, "host2": {"sudo": True}, "host3": {"sudo": True}}
    allowed = {"host1": ["wiki-*", "nosuch"], "host2": ["*"], "host3": ["*"]}
    config = sshd.config(hosts=hosts, actions={"docker_container_check": {"allowed_containers": allowed}})
    sshd.set_scenario("docker-containers.json", json.dumps(containers_scenario()))
    with SshPool(config) as pool:
        yield pool, config


def run_step(pool: SshPool, config: Config, step: Step, deadline: float | None = None) -> StepResult:
    context = ActionContext(config=config, ssh=pool, deadline=deadline, ticket_id=15)
    return get_action("docker_container_check").run(step, context)


# --- parsing, no server ------------------------------------------------------------------------------


def test_case_has_four_states() -> None:
    assert sorted(case_states()) == ["wiki-cache-1", "wiki-db-1", "wiki-old-1", "wiki-web-1"]


def test_parse_inspect_state_only() -> None:
    data = parse_inspect(json.dumps(case_states()["wiki-web-1"]) + "\n")
    assert data is not None
    assert data["State"]["Status"] == "running"


@pytest.mark.parametrize("stdout", ["", "\n", "[]\n", "[]"])
def test_parse_inspect_empty(stdout: str) -> None:
    assert parse_inspect(stdout) is None


def test_parse_inspect_not_json() -> None:
    with pytest.raises(ValueError):
        parse_inspect("<no value>\n")


def test_describe_exit_signal() -> None:
    assert describe_exit({"ExitCode": 137, "OOMKilled": True}) == "exited with code 137 (killed: out of memory)"
    assert describe_exit({"ExitCode": 137, "OOMKilled": False}) == "exited with code 137 (killed by signal 9)"
    assert describe_exit({"ExitCode": 1, "OOMKilled": False}) == "exited with code 1"


def test_judge_without_health() -> None:
    data = {"State": case_states()["wiki-web-1"], "RestartCount": 0}
    assert judge(data, "running") == (True, "is running, no health check defined", "")
    ok, text, _ = judge(data, "healthy")
    assert ok is False
    assert "no health check defined" in text


def test_facts_of_unhealthy() -> None:
    facts = container_facts({"State": case_states()["wiki-db-1"], "RestartCount": 2})
    assert facts["health"] == "unhealthy"
    assert facts["failing_streak"] == 5
    assert facts["restart_count"] == 2
    assert facts["started_at"] == "2024-06-01T10:00:01.000000000Z"


@pytest.mark.parametrize(
    ("stdout", "stderr", "summary"),
    [
        ("", "Error: No such container: nosuch\n", "container nosuch not found on host1"),
        ("[]\n", "Error: No such object: nosuch\n", "container nosuch not found on host1"),
        ("[]\n", "", "container nosuch not found on host1"),
    ],
)
def test_missing_container_variants(stdout: str, stderr: str, summary: str) -> None:
    assert _inspect_failure("nosuch", "host1", 1, stdout, stderr).summary == summary


def test_template_error_not_in_summary() -> None:
    stderr = case_rows()[0][2]
    result = _inspect_failure("wiki-web-1", "host1", 1, "", stderr)
    assert "map has no entry" not in result.summary
    assert "template" not in result.summary
    assert result.output == stderr


def test_inspect_argv_ends_options() -> None:
    argv = inspect_argv("wiki-web-1")
    assert argv == ["docker", "inspect", "--type", "container", "--format", INSPECT_FORMAT, "--", "wiki-web-1"]


# --- the case on a real sshd ----------------------------------------------------------------------------


def test_standin_matches_case_outputs(sshd: SshdHandle, pool_config: tuple[SshPool, Config]) -> None:
    pool, _ = pool_config
    session = pool.session("host1")
    for command, stdout, stderr, status in case_rows():
        sshd.set_scenario("docker-mode", "daemon-down" if "Cannot connect" in stderr else "ok")
        sshd.set_scenario("sudo-mode", "password" if stderr.startswith("sudo:") else "ok")
        result = session.run(shlex.split(command)[2:])  # without "sudo -n": the session adds it
        assert result.exit_status == status, command
        assert result.stdout.rstrip("\n") == stdout, command
        assert result.stderr.rstrip("\n") == stderr, command


@pytest.mark.parametrize(
    ("container", "summary"),
    [
        ("wiki-db-1", "container wiki-db-1 on host1 is running but unhealthy (5 failed checks in a row)"),
        ("wiki-old-1", "container wiki-old-1 on host1 exited with code 137 (killed: out of memory)"),
        ("nosuch", "container nosuch not found on host1"),
    ],
)
def test_failing_containers(pool_config: tuple[SshPool, Config], container: str, summary: str) -> None:
    pool, config = pool_config
    result = run_step(pool, config, step_for(container))
    assert result.ok is False
    assert result.summary == summary
    assert result.config_problem is False


def test_running_without_health_check(sshd: SshdHandle, pool_config: tuple[SshPool, Config]) -> None:
    pool, config = pool_config
    result = run_step(pool, config, step_for("wiki-web-1"))
    assert result.ok is True
    assert result.summary == "container wiki-web-1 on host1 is running, no health check defined"
    assert result.facts["health"] == "no health check defined"
    assert sshd.calls()[-1] == inspect_argv("wiki-web-1")


def test_healthy_needs_health_check(pool_config: tuple[SshPool, Config]) -> None:
    pool, config = pool_config
    result = run_step(pool, config, step_for("wiki-web-1", expect="healthy"))
    assert result.ok is False
    assert "no health check defined" in result.summary
    assert "map has no entry" not in result.summary


def test_unhealthy_keeps_check_output(pool_config: tuple[SshPool, Config]) -> None:
    pool, config = pool_config
    result = run_step(pool, config, step_for("wiki-db-1"))
    assert result.output == "pg_isready: no response\n"
    assert result.facts["restart_count"] == 2


def test_starting_fails_at_deadline(sshd: SshdHandle, pool_config: tuple[SshPool, Config]) -> None:
    pool, config = pool_config
    pool.session("host1")
    started = time.monotonic()
    result = run_step(pool, config, step_for("wiki-cache-1"), deadline=started + 3)
    assert result.ok is False
    assert result.summary.startswith("container wiki-cache-1 on host1 is running but not healthy yet (starting)")
    inspects = [call for call in sshd.calls() if call[:2] == ["docker", "inspect"]]
    assert len(inspects) >= 2
    assert time.monotonic() - started < 15


def test_starting_then_healthy(sshd: SshdHandle, pool_config: tuple[SshPool, Config]) -> None:
    pool, config = pool_config
    scenario = containers_scenario()
    scenario["wiki-cache-1"].update(starting_inspects=1, then_health="healthy")
    sshd.set_scenario("docker-containers.json", json.dumps(scenario))
    result = run_step(pool, config, step_for("wiki-cache-1", expect="healthy"))
    assert result.ok is True
    assert result.summary == "container wiki-cache-1 on host1 is running and healthy"


def test_daemon_down(sshd: SshdHandle, pool_config: tuple[SshPool, Config]) -> None:
    pool, config = pool_config
    sshd.set_scenario("docker-mode", "daemon-down")
    result = run_step(pool, config, step_for("wiki-web-1", host="host2"))
    assert result.ok is False
    assert result.summary == "Docker is not running on host2"
    assert result.config_problem is False


def test_sudo_password(sshd: SshdHandle, pool_config: tuple[SshPool, Config]) -> None:
    pool, config = pool_config
    sshd.set_scenario("sudo-mode", "password")
    result = run_step(pool, config, step_for("wiki-web-1", host="host3"))
    assert result.summary == SUDO_PROBLEM
    assert result.config_problem is True
    assert [call for call in sshd.calls() if call[0] == "docker"] == []


def test_socket_permission(sshd: SshdHandle, pool_config: tuple[SshPool, Config]) -> None:
    pool, config = pool_config
    sshd.set_scenario("docker-mode", "permission-denied")
    result = run_step(pool, config, step_for("wiki-web-1"))
    assert result.config_problem is True
    assert "may not use the Docker socket" in result.summary


def test_seven_distinct_messages(sshd: SshdHandle, pool_config: tuple[SshPool, Config]) -> None:
    pool, config = pool_config
    pool.session("host1")
    summaries = []
    for container in ("wiki-web-1", "wiki-db-1", "wiki-old-1", "nosuch"):
        summaries.append(run_step(pool, config, step_for(container)).summary)
    summaries.append(run_step(pool, config, step_for("wiki-cache-1"), deadline=time.monotonic() + 1).summary)
    sshd.set_scenario("docker-mode", "daemon-down")
    summaries.append(run_step(pool, config, step_for("wiki-web-1", host="host2")).summary)
    sshd.set_scenario("docker-mode", "ok")
    sshd.set_scenario("sudo-mode", "password")
    summaries.append(run_step(pool, config, step_for("wiki-web-1", host="host3")).summary)
    assert len(set(summaries)) == 7
    assert sum("not found" in summary for summary in summaries) == 1
    for summary in summaries:
        assert "map has no entry" not in summary
        assert "template" not in summary
