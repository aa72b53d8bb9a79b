"""docker_container_check: inspect one allowlisted container over SSH and check it is running or healthy.

The inspect template prints whole JSON objects (`State` and `RestartCount`)
instead of a field path such as `{{.State.Health.Status}}`, which fails with
"map has no entry for key" on containers without a HEALTHCHECK. Missing keys
are then read in Python, and Docker's own template errors never become the
step's summary.
"""

from __future__ import annotations

import json
import logging
import time
from typing import TYPE_CHECKING, Any

from glpibot.actions.base import Action, ActionContext, StepResult
from glpibot.actions.remote_common import (
    StepClock,
    StepFailed,
    excerpt,
    format_seconds,
    policy_refusal,
    run_command,
    run_on_host,
)
from glpibot.actions.remote_policy import (
    first_match,
    host_globs,
    param_path,
    remote_step_issues,
    show_value,
)
from glpibot.errors import SpecIssue

if TYPE_CHECKING:
    from glpibot.config import Config
    from glpibot.remote.session import RemoteSession
    from glpibot.spec.model import Step

logger = logging.getLogger(__name__)

# Both fields are in every container's inspect output (ContainerJSONBase in the
# Docker Engine API), so the template does not depend on optional keys such as Health.
INSPECT_FORMAT = '{"State":{{json .State}},"RestartCount":{{json .RestartCount}}}'
HEALTH_POLL_INTERVAL_S = 2.0
NO_HEALTH_CHECK = "no health check defined"


def inspect_argv(container: str) -> list[str]:
    """Return the argv that prints one container's State and RestartCount as JSON.

    `--` ends the options, so a name can never be read as a flag (the docker 28.2 CLI accepts it).
    """
    return ["docker", "inspect", "--type", "container", "--format", INSPECT_FORMAT, "--", container]


def parse_inspect(stdout: str) -> dict[str, Any] | None:
    """Return the inspected object, or None when docker printed nothing or `[]` (no such container).

    Raise ValueError when the output is not a JSON object.
    """
    text = stdout.strip()
    if not text or text == "[]":
        return None
    first_line = text.splitlines()[0]
    data = json.loads(first_line)
    if isinstance(data, list):
        if not data:
            return None
        data = data[0]
    if not isinstance(data, dict):
        raise ValueError("docker inspect output is not a JSON object")
    if "State" not in data and "Status" in data:
        # Output of the shorter template `{{json .State}}`.
        data = {"State": data}
    return data


def describe_exit(state: dict[str, Any]) -> str:
    """Return "exited with code 137 (killed: out of memory)" and similar for a stopped container."""
    code = state.get("ExitCode")
    text = f"exited with code {code}"
    if state.get("OOMKilled"):
        return f"{text} (killed: out of memory)"
    if isinstance(code, int) and 128 < code < 160:
        return f"{text} (killed by signal {code - 128})"
    return text


def last_health_output(health: dict[str, Any]) -> str:
    """Return the output of the most recent health check run, or ""."""
    log = health.get("Log") or []
    if log and isinstance(log[-1], dict):
        return str(log[-1].get("Output", ""))
    return ""


def container_facts(data: dict[str, Any]) -> dict[str, Any]:
    """Return the reported fields: status, health, exit code, OOM kill, restart count, times."""
    state = data.get("State") or {}
    health = state.get("Health")
    return {
        "status": state.get("Status"),
        "health": health.get("Status") if isinstance(health, dict) else NO_HEALTH_CHECK,
        "failing_streak": health.get("FailingStreak") if isinstance(health, dict) else None,
        "exit_code": state.get("ExitCode"),
        "oom_killed": state.get("OOMKilled"),
        "restart_count": data.get("RestartCount"),
        "started_at": state.get("StartedAt"),
        "finished_at": state.get("FinishedAt"),
        "pid": state.get("Pid"),
    }


def judge(data: dict[str, Any], expect: str) -> tuple[bool, str, str]:
    """Return (ok, state text, output) for an inspected container and the expectation.

    A container passes when it is running and, if it has a health check,
    healthy; `expect: healthy` also fails a container without a health
    check. The state text follows "container NAME on HOST ", for example
    "is running, no health check defined" or "exited with code 1".
    """
    state = data.get("State") or {}
    status = state.get("Status", "unknown")
    health = state.get("Health") if isinstance(state.get("Health"), dict) else None
    if status != "running":
        if status == "exited":
            return False, describe_exit(state), ""
        if status == "restarting":
            return False, f"is restarting (restart count {data.get('RestartCount', '?')})", ""
        return False, f"is {status}", ""
    if health is None:
        if expect == "healthy":
            return False, f"is running, but {NO_HEALTH_CHECK}, so it cannot be reported healthy", ""
        return True, f"is running, {NO_HEALTH_CHECK}", ""
    health_status = health.get("Status", "unknown")
    if health_status == "healthy":
        return True, "is running and healthy", ""
    if health_status == "unhealthy":
        streak = health.get("FailingStreak")
        text = f"unhealthy ({streak} failed checks in a row)" if streak else "unhealthy"
        return False, f"is running but {text}", last_health_output(health)
    if health_status == "starting":
        return False, "is running but not healthy yet (starting)", ""
    return False, f"is running but its health is {health_status}", last_health_output(health)


class DockerContainerCheck(Action):
    """Inspect one container and check that it is running, or healthy."""

    name = "docker_container_check"
    description = "Inspect an allowlisted Docker container over SSH and check that it is running (or healthy)."
    runs_on = "ssh"

    def changes_state(self, params: dict[str, Any]) -> bool:
        """Return False: inspecting a container changes nothing."""
        return False

    def check_policy(self, step: "Step", config: "Config") -> list[SpecIssue]:
        """Return an issue for a container that the operator did not allow on the step's host."""
        issues = remote_step_issues(step, self.name)
        if issues:
            return issues
        container = step.params.get("container", "")
        globs = host_globs(config, self.name, "allowed_containers", step.host)
        if first_match(globs, container) is None:
            issues.append(
                SpecIssue(
                    param_path(step, "container"),
                    f"container {show_value(container)} is not allowed on host {step.host}; "
                    f"add it to actions.docker_container_check.allowed_containers.{step.host}",
                    step.line_of("params.container"),
                )
            )
        return issues

    def run(self, step: "Step", context: ActionContext) -> StepResult:
        """Inspect the container; while its health check is "starting", re-check every 2 s within the step's budget."""
        refused = policy_refusal(self.check_policy(step, context.config))
        if refused is not None:
            return refused
        host = context.config.hosts[str(step.host)]
        container = str(step.params["container"])
        expect = str(step.params.get("expect", "running"))
        result = run_on_host(
            context,
            host,
            {"host": host.name, "container": container, "expect": expect},
            lambda session, clock: self._run(session, container, expect, host.name, clock, context),
        )
        logger.info("ticket %s: container %s on %s: %s", context.ticket_id, container, host.name, result.summary)
        return result

    def _run(
        self,
        session: "RemoteSession",
        container: str,
        expect: str,
        host: str,
        clock: StepClock,
        context: ActionContext,
    ) -> StepResult:
        data = self._inspect(session, container, host, clock, context)
        ok, text, output = judge(data, expect)
        waited = False
        while _health_status(data) == "starting":
            if clock.end - time.monotonic() < HEALTH_POLL_INTERVAL_S:
                break
            waited = True
            time.sleep(HEALTH_POLL_INTERVAL_S)
            data = self._inspect(session, container, host, clock, context)
            ok, text, output = judge(data, expect)
        if waited and _health_status(data) == "starting":
            text = f"{text} after {format_seconds(clock.elapsed_s())} s"
        summary = f"container {container} on {host} {text}"
        return StepResult(ok=ok, summary=summary, facts=container_facts(data), output=output)

    def _inspect(
        self, session: "RemoteSession", container: str, host: str, clock: StepClock, context: ActionContext
    ) -> dict[str, Any]:
        command = run_command(session, inspect_argv(container), clock=clock, host=host, tool="docker", context=context)
        stderr = command.stderr
        if command.exit_status != 0:
            raise StepFailed(_inspect_failure(container, host, command.exit_status, command.stdout, stderr))
        try:
            data = parse_inspect(command.stdout)
        except ValueError:
            raise StepFailed(
                StepResult(
                    ok=False,
                    summary=f"docker inspect on {host} printed output that is not JSON for container {container}",
                    output=command.stdout,
                )
            ) from None
        if data is None:
            raise StepFailed(StepResult(ok=False, summary=f"container {container} not found on {host}"))
        return data


def _health_status(data: dict[str, Any]) -> str | None:
    health = (data.get("State") or {}).get("Health")
    return health.get("Status") if isinstance(health, dict) else None


def _inspect_failure(container: str, host: str, exit_status: int | None, stdout: str, stderr: str) -> StepResult:
    """Classify a failed `docker inspect`: missing container, stopped daemon, socket permission, other."""
    output = f"{stdout}{stderr}"
    if "Cannot connect to the Docker daemon" in stderr:
        return StepResult(ok=False, summary=f"Docker is not running on {host}", output=output)
    if "permission denied while trying to connect to the Docker daemon socket" in stderr:
        return StepResult(
            ok=False,
            summary=(
                f"the SSH user on {host} may not use the Docker socket; "
                f"add it to the docker group or set hosts.{host}.sudo"
            ),
            output=output,
            config_problem=True,
        )
    if "No such container" in stderr or "No such object" in stderr or stdout.strip() == "[]":
        return StepResult(ok=False, summary=f"container {container} not found on {host}", output=output)
    if "template" in stderr and ("parsing error" in stderr or "executing" in stderr):
        return StepResult(
            ok=False,
            summary=f"docker inspect on {host} could not format the state of container {container}; "
            f"the Docker version there may be too old",
            output=output,
        )
    return StepResult(
        ok=False,
        summary=f"docker inspect failed on {host} (exit {exit_status}): {excerpt(stderr) or 'no error message'}",
        output=output,
    )
