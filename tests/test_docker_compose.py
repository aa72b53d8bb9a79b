"""docker_compose_remote against a real sshd whose docker, docker-compose and sudo are stand-ins."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from glpibot.actions import get_action
from glpibot.actions.base import ActionContext, StepResult
from glpibot.actions.docker_compose import compose_argv, container_summary, describe_container, parse_ps
from glpibot.config import Config, HostSettings
from glpibot.remote.pool import SshPool
from glpibot.spec.model import Step
from tests.sshd import SshdHandle

# A directory with a space and a quote: it must reach compose as one argument, byte for byte.
PROJECT_DIR = "/srv/docker/my grafana's"
PS = ["ps", "--all", "--format", "json"]


def project_scenario(**overrides: Any) -> dict[str, Any]:
    project: dict[str, Any] = {
        "name": "grafana",
        "services": {
            "web": {"State": "running", "Health": "healthy", "ExitCode": 0, "logs": [f"line {n}" for n in range(300)]},
            "db": {"State": "running", "Health": "", "ExitCode": 0, "logs": ["ready"]},
        },
    }
    project.update(overrides)
    return {PROJECT_DIR: project}


def make_config(sshd: SshdHandle, operations: list[str] | None = None, **host: Any) -> Config:
    projects = {
        "grafana": {
            "host": "svc-auto",
            "path": PROJECT_DIR,
            "operations": operations or ["ps", "pull", "up", "restart", "stop", "down", "logs"],
        }
    }
    return sshd.config(hosts={"svc-auto": host}, actions={"docker_compose_remote": {"projects": projects}})


@pytest.fixture
def pool_config(sshd: SshdHandle) -> Iterator[tuple[SshPool, Config]]:
    config = make_config(sshd)
    sshd.set_scenario("compose-projects.json", json.dumps(project_scenario()))
    with SshPool(config) as pool:
        yield pool, config


def step_for(operation: str, services: list[str] | None = None) -> Step:
    params: dict[str, Any] = {"project": "grafana", "operation": operation}
    if services:
        params["services"] = services
    return Step(index=0, action="docker_compose_remote", params=params, host="svc-auto", path="steps[0]", line=3)


def run_step(pool: SshPool, config: Config, step: Step) -> StepResult:
    return get_action("docker_compose_remote").run(step, ActionContext(config=config, ssh=pool, ticket_id=20))


def compose_calls(sshd: SshdHandle) -> list[list[str]]:
    return [call for call in sshd.calls() if call[0] in ("docker", "docker-compose")]


def base(command: tuple[str, ...] = ("docker", "compose")) -> list[str]:
    return [*command, "--project-directory", PROJECT_DIR]


# --- parsing, no server ----------------------------------------------------------------------------


def test_parse_ps_lines() -> None:
    stdout = (
        '{"Name":"g-web-1","Service":"web","State":"running","Health":"healthy","ExitCode":0}\n'
        '{"Name":"g-db-1","Service":"db","State":"exited","Health":"","ExitCode":1}\n'
    )
    rows = parse_ps(stdout)
    assert [row["Service"] for row in rows] == ["web", "db"]


def test_parse_ps_array() -> None:
    stdout = '[{"Name":"g-web-1","Service":"web","State":"running","Health":"","ExitCode":0}]\n'
    assert parse_ps(stdout)[0]["Name"] == "g-web-1"


def test_parse_ps_empty() -> None:
    assert parse_ps("") == []
    assert parse_ps("[]\n") == []


def test_parse_ps_garbage() -> None:
    with pytest.raises(ValueError):
        parse_ps("NAME IMAGE COMMAND\n")


def test_describe_container() -> None:
    row = {"Service": "db", "Name": "g-db-1", "State": "exited", "Health": "", "ExitCode": 1}
    assert describe_container(container_summary(row)) == "db exited (1)"
    row = {"Service": "web", "State": "running", "Health": "healthy", "ExitCode": 0}
    assert describe_container(container_summary(row)) == "web running (healthy)"


def test_argv_services_after_separator() -> None:
    host = HostSettings(name="h", address="127.0.0.1", user="u", known_hosts=__import__("pathlib").Path("/k"))
    assert compose_argv(host, "/srv/g", "up", ["web"]) == [
        "docker", "compose", "--project-directory", "/srv/g", "up", "-d", "--", "web",
    ]
    assert compose_argv(host, "/srv/g", "logs", []) == [
        "docker", "compose", "--project-directory", "/srv/g", "logs", "--no-color", "--tail", "200",
    ]


# --- operations on a real sshd -----------------------------------------------------------------------


def test_up_runs_detached(sshd: SshdHandle, pool_config: tuple[SshPool, Config]) -> None:
    pool, config = pool_config
    result = run_step(pool, config, step_for("up"))
    assert result.ok is True
    assert result.summary == (
        "docker compose up of project grafana on svc-auto succeeded: web running (healthy), db running"
    )
    calls = compose_calls(sshd)
    assert calls[0] == [*base(), "up", "-d"]
    assert calls[1] == [*base(), *PS]
    assert [container["service"] for container in result.facts["containers"]] == ["web", "db"]


@pytest.mark.parametrize("ps_format", ["lines", "array"])
def test_ps_both_formats(sshd: SshdHandle, pool_config: tuple[SshPool, Config], ps_format: str) -> None:
    pool, config = pool_config
    sshd.set_scenario("compose-projects.json", json.dumps(project_scenario(ps_format=ps_format)))
    result = run_step(pool, config, step_for("ps"))
    assert result.ok is True
    assert result.summary == "project grafana on svc-auto: web running (healthy), db running"
    assert compose_calls(sshd) == [[*base(), *PS]]


def test_services_passed(sshd: SshdHandle, pool_config: tuple[SshPool, Config]) -> None:
    pool, config = pool_config
    result = run_step(pool, config, step_for("restart", ["web"]))
    assert result.ok is True
    assert compose_calls(sshd)[0] == [*base(), "restart", "--", "web"]
    assert compose_calls(sshd)[1] == [*base(), *PS, "--", "web"]
    assert result.summary.endswith("succeeded: web running (healthy)")


def test_unknown_service(pool_config: tuple[SshPool, Config]) -> None:
    pool, config = pool_config
    result = run_step(pool, config, step_for("up", ["cache"]))
    assert result.ok is False
    assert result.summary == "project grafana on svc-auto has no service cache; check the services list"


def test_up_with_crashing_service(sshd: SshdHandle, pool_config: tuple[SshPool, Config]) -> None:
    pool, config = pool_config
    scenario = project_scenario()
    scenario[PROJECT_DIR]["services"]["db"]["after_up"] = {"State": "exited", "ExitCode": 1}
    sshd.set_scenario("compose-projects.json", json.dumps(scenario))
    result = run_step(pool, config, step_for("up"))
    assert result.ok is False
    assert result.summary == "docker compose up of project grafana on svc-auto ran, but db exited (1)"


def test_stop_then_states(pool_config: tuple[SshPool, Config]) -> None:
    pool, config = pool_config
    result = run_step(pool, config, step_for("stop"))
    assert result.ok is True
    assert result.summary.endswith("succeeded: web exited (0), db exited (0)")


def test_down_leaves_none(pool_config: tuple[SshPool, Config]) -> None:
    pool, config = pool_config
    result = run_step(pool, config, step_for("down"))
    assert result.ok is True
    assert result.summary == "docker compose down of project grafana on svc-auto succeeded: no containers"


def test_pull_reports_states(sshd: SshdHandle, pool_config: tuple[SshPool, Config]) -> None:
    pool, config = pool_config
    result = run_step(pool, config, step_for("pull"))
    assert result.ok is True
    assert "web Pulled" in result.output
    assert compose_calls(sshd)[0] == [*base(), "pull"]


def test_logs_tail(sshd: SshdHandle, pool_config: tuple[SshPool, Config]) -> None:
    pool, config = pool_config
    result = run_step(pool, config, step_for("logs", ["web"]))
    assert result.ok is True
    assert compose_calls(sshd) == [[*base(), "logs", "--no-color", "--tail", "200", "--", "web"]]
    assert result.output.count("\n") == 200
    assert "\x1b" not in result.output
    assert result.output.endswith("grafana-web-1  | line 299\n")


def test_operation_failure(sshd: SshdHandle, pool_config: tuple[SshPool, Config]) -> None:
    pool, config = pool_config
    failing = {"pull": {"stderr": "Error response from daemon: manifest for grafana/grafana:99 not found", "exit": 18}}
    sshd.set_scenario("compose-projects.json", json.dumps(project_scenario(fail=failing)))
    result = run_step(pool, config, step_for("pull"))
    assert result.ok is False
    assert result.summary == (
        "docker compose pull of project grafana on svc-auto failed (exit 18): "
        "Error response from daemon: manifest for grafana/grafana:99 not found"
    )


def test_missing_compose_file(sshd: SshdHandle, pool_config: tuple[SshPool, Config]) -> None:
    pool, config = pool_config
    sshd.set_scenario("compose-projects.json", "{}")
    result = run_step(pool, config, step_for("ps"))
    assert result.config_problem is True
    assert result.summary.startswith(f"no compose file found in {PROJECT_DIR} on svc-auto")


def test_daemon_down(sshd: SshdHandle, pool_config: tuple[SshPool, Config]) -> None:
    pool, config = pool_config
    sshd.set_scenario("docker-mode", "daemon-down")
    result = run_step(pool, config, step_for("up"))
    assert result.ok is False
    assert result.summary == "Docker is not running on svc-auto"


def test_sudo_refusal(sshd: SshdHandle) -> None:
    config = make_config(sshd, sudo=True)
    sshd.set_scenario("sudo-mode", "tty")
    with SshPool(config) as pool:
        result = run_step(pool, config, step_for("ps"))
    assert result.config_problem is True
    assert result.summary == (
        "sudo on svc-auto needs a password (or a tty) for docker; "
        "add a NOPASSWD rule without requiretty for the glpibot user"
    )


def test_standalone_compose_command(sshd: SshdHandle) -> None:
    config = make_config(sshd, compose_command="docker-compose")
    sshd.set_scenario("compose-projects.json", json.dumps(project_scenario(ps_format="array")))
    with SshPool(config) as pool:
        result = run_step(pool, config, step_for("ps"))
    assert result.ok is True
    assert sshd.calls() == [[*base(("docker-compose",)), *PS]]


def test_directory_from_config_only(sshd: SshdHandle, pool_config: tuple[SshPool, Config]) -> None:
    pool, config = pool_config
    step = step_for("ps")
    result = run_step(pool, config, step)
    assert result.facts["path"] == PROJECT_DIR
    assert compose_calls(sshd)[0][3] == PROJECT_DIR


def test_refused_operation_runs_nothing(sshd: SshdHandle) -> None:
    config = make_config(sshd, operations=["ps"])
    before = sshd.connection_count()
    with SshPool(config) as pool:
        result = run_step(pool, config, step_for("down"))
    assert result.ok is False
    assert result.summary.startswith("refused by policy: operation 'down' is not allowed for project grafana")
    assert sshd.connection_count() == before
    assert sshd.calls() == []
