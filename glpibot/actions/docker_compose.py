"""docker_compose_remote: run one allowlisted Compose operation on one configured project over SSH.

The project's host and directory come from the operator's config, never
from the ticket; the ticket names the project, the operation and optionally
services. Service names go after `--`, which ends flag parsing in Compose v2
(a cobra program); the schema also forbids a leading `-`.

NOTE: these argv lists were tested against a stand-in, not a real Compose
binary. Compose v1 (the Python `docker-compose` before 2.0) has no
`ps --format json`, so projects on such hosts fail at `ps`.
"""

from __future__ import annotations

import json
import logging
import re
from typing import TYPE_CHECKING, Any

from glpibot.actions.base import Action, ActionContext, StepResult
from glpibot.actions.remote_common import (
    StepClock,
    excerpt,
    joined_output,
    policy_refusal,
    run_command,
    run_on_host,
)
from glpibot.actions.remote_policy import host_path, param_path, remote_step_issues, show_value
from glpibot.errors import SpecIssue

if TYPE_CHECKING:
    from glpibot.config import Config, HostSettings
    from glpibot.remote.session import CommandResult, RemoteSession
    from glpibot.spec.model import Step

logger = logging.getLogger(__name__)

# `ps` lists stopped containers too (--all), so a stopped or exited service is
# reported instead of silently missing from the list.
PS_ARGS = ("ps", "--all", "--format", "json")
OPERATION_ARGS: dict[str, tuple[str, ...]] = {
    "ps": PS_ARGS,
    "pull": ("pull",),
    "up": ("up", "-d"),
    "restart": ("restart",),
    "stop": ("stop",),
    "down": ("down",),
    "logs": ("logs", "--no-color", "--tail", "200"),
}
STATE_CHANGING = ("pull", "up", "restart", "stop", "down")
# Operations allowed when a project has no `operations` key (the config schema's default).
DEFAULT_PROJECT_OPERATIONS = ("ps",)


def compose_argv(host: "HostSettings", directory: str, operation: str, services: list[str]) -> list[str]:
    """Return the argv of one Compose operation in the configured project directory."""
    argv = [*host.compose_command, "--project-directory", directory, *OPERATION_ARGS[operation]]
    if services:
        argv += ["--", *services]
    return argv


def parse_ps(stdout: str) -> list[dict[str, Any]]:
    """Parse `ps --format json`: one JSON object per line (Compose 2.21 and later) or one JSON array (before).

    Raise ValueError when the output is neither.
    """
    text = stdout.strip()
    if not text:
        return []
    if text.startswith("["):
        data = json.loads(text)
        if not isinstance(data, list):
            raise ValueError("compose ps printed a JSON value that is not a list")
        rows = data
    else:
        rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    if not all(isinstance(row, dict) for row in rows):
        raise ValueError("compose ps printed a JSON value that is not an object")
    return rows


def container_summary(row: dict[str, Any]) -> dict[str, Any]:
    """Return the reported fields of one `ps` row."""
    return {
        "name": row.get("Name", ""),
        "service": row.get("Service", ""),
        "state": row.get("State", ""),
        "health": row.get("Health", ""),
        "exit_code": row.get("ExitCode"),
        "status": row.get("Status", ""),
    }


def describe_container(container: dict[str, Any]) -> str:
    """Return "web running (healthy)", "init exited (0)" and similar."""
    label = f"{container['service'] or container['name']} {container['state'] or 'unknown'}"
    if container["state"] == "exited" and container["exit_code"] is not None:
        label += f" ({container['exit_code']})"
    if container["health"] and container["state"] == "running":
        label += f" ({container['health']})"
    return label


def is_broken(container: dict[str, Any]) -> bool:
    """Return True for a container that failed: exited non-zero, dead, restarting or unhealthy."""
    if container["state"] in ("dead", "restarting"):
        return True
    if container["state"] == "exited" and container["exit_code"] not in (0, None):
        return True
    return container["state"] == "running" and container["health"] == "unhealthy"


class DockerComposeRemote(Action):
    """Run ps, pull, up, restart, stop, down or logs on a configured Compose project."""

    name = "docker_compose_remote"
    description = "Run an allowlisted Docker Compose operation on a configured project over SSH; report its containers."
    runs_on = "ssh"

    def changes_state(self, params: dict[str, Any]) -> bool:
        """Return True for pull, up, restart, stop and down; False for ps and logs."""
        return params.get("operation") in STATE_CHANGING

    def check_policy(self, step: "Step", config: "Config") -> list[SpecIssue]:
        """Return issues for an unknown project, a project of another host or an operation it does not allow."""
        issues = remote_step_issues(step, self.name)
        if issues:
            return issues

        project = step.params.get("project", "")
        operation = step.params.get("operation", "")
        projects = (config.action_settings(self.name) or {}).get("projects") or {}
        entry = projects.get(project)
        if not isinstance(entry, dict):
            return [
                SpecIssue(
                    param_path(step, "project"),
                    f"project {show_value(project)} is not configured; "
                    f"add it under actions.docker_compose_remote.projects",
                    step.line_of("params.project"),
                )
            ]

        if entry.get("host") != step.host:
            issues.append(
                SpecIssue(
                    host_path(step),
                    f"project '{project}' runs on host {entry.get('host')}, not on host {step.host}",
                    step.line_of("host"),
                )
            )

        allowed = entry.get("operations", list(DEFAULT_PROJECT_OPERATIONS))
        if operation not in allowed:
            issues.append(
                SpecIssue(
                    param_path(step, "operation"),
                    f"operation {show_value(operation)} is not allowed for project {project}; "
                    f"add it to actions.docker_compose_remote.projects.{project}.operations",
                    step.line_of("params.operation"),
                )
            )
        return issues

    def run(self, step: "Step", context: ActionContext) -> StepResult:
        """Run the operation in the project's directory; after a change, list the containers' states."""
        refused = policy_refusal(self.check_policy(step, context.config))
        if refused is not None:
            return refused
        host = context.config.hosts[str(step.host)]
        project = str(step.params["project"])
        entry = context.config.action_settings(self.name)["projects"][project]
        directory = str(entry["path"])
        operation = str(step.params["operation"])
        services = [str(name) for name in step.params.get("services") or []]

        facts = {"host": host.name, "project": project, "path": directory, "operation": operation, "services": services}
        result = run_on_host(
            context,
            host,
            facts,
            lambda session, clock: self._run(session, host, project, directory, operation, services, clock, context),
        )
        logger.info(
            "ticket %s: compose %s of %s on %s: %s", context.ticket_id, operation, project, host.name, result.summary
        )
        return result

    def _run(
        self,
        session: "RemoteSession",
        host: "HostSettings",
        project: str,
        directory: str,
        operation: str,
        services: list[str],
        clock: StepClock,
        context: ActionContext,
    ) -> StepResult:
        tool = " ".join(host.compose_command)
        sudo_tool = host.compose_command[0]
        argv = compose_argv(host, directory, operation, services)
        command = run_command(session, argv, clock=clock, host=host.name, tool=sudo_tool, context=context)
        output = joined_output(command)
        facts: dict[str, Any] = {"exit_status": command.exit_status, "command": command.command_line}
        if command.exit_status != 0:
            return _compose_failure(tool, operation, project, directory, host.name, command, facts)

        if operation == "logs":
            lines = len(command.stdout.splitlines())
            summary = f"{tool} logs of project {project} on {host.name}: {lines} lines (at most 200 per service)"
            return StepResult(ok=True, summary=summary, facts=facts, output=output)

        ps_command = command
        if operation != "ps":
            ps_argv = compose_argv(host, directory, "ps", services)
            ps_command = run_command(session, ps_argv, clock=clock, host=host.name, tool=sudo_tool, context=context)
            if ps_command.exit_status != 0:
                summary = (
                    f"{tool} {operation} of project {project} on {host.name} succeeded, but listing its containers "
                    f"failed: {excerpt(ps_command.stderr) or 'no error message'}"
                )
                return StepResult(ok=operation in ("stop", "down", "pull"), summary=summary, facts=facts, output=output)
        try:
            containers = [container_summary(row) for row in parse_ps(ps_command.stdout)]
        except ValueError:
            summary = f"{tool} ps of project {project} on {host.name} printed output that is not JSON"
            output = f"{output}\n{ps_command.stdout}"
            return StepResult(ok=operation != "ps", summary=summary, facts=facts, output=output)
        facts["containers"] = containers
        states = ", ".join(describe_container(container) for container in containers) or "no containers"
        broken = [describe_container(container) for container in containers if is_broken(container)]

        if operation == "ps":
            summary = f"project {project} on {host.name}: {states}"
            return StepResult(ok=True, summary=summary, facts=facts, output=output)
        if operation in ("up", "restart") and broken:
            summary = f"{tool} {operation} of project {project} on {host.name} ran, but {', '.join(broken)}"
            return StepResult(ok=False, summary=summary, facts=facts, output=output)
        summary = f"{tool} {operation} of project {project} on {host.name} succeeded: {states}"
        return StepResult(ok=True, summary=summary, facts=facts, output=output)


def _compose_failure(
    tool: str,
    operation: str,
    project: str,
    directory: str,
    host: str,
    command: "CommandResult",
    facts: dict[str, Any],
) -> StepResult:
    """Classify a failed Compose command: stopped daemon, missing compose file, unknown service, other."""
    stderr = command.stderr
    output = joined_output(command)
    if "Cannot connect to the Docker daemon" in stderr:
        return StepResult(ok=False, summary=f"Docker is not running on {host}", facts=facts, output=output)
    if "no configuration file provided" in stderr:
        summary = (
            f"no compose file found in {directory} on {host}; "
            f"fix actions.docker_compose_remote.projects.{project}.path"
        )
        return StepResult(ok=False, summary=summary, facts=facts, output=output, config_problem=True)
    missing = re.search(r"no such service: (\S+)", stderr)
    if missing:
        summary = f"project {project} on {host} has no service {missing.group(1)}; check the services list"
        return StepResult(ok=False, summary=summary, facts=facts, output=output)
    summary = (
        f"{tool} {operation} of project {project} on {host} failed (exit {command.exit_status}): "
        f"{excerpt(stderr) or 'no error message'}"
    )
    return StepResult(ok=False, summary=summary, facts=facts, output=output)
