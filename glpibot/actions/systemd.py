"""systemd_remote: run one allowlisted systemctl operation on one allowlisted unit over SSH.

The unit's state always comes from `systemctl show`, never from an exit
status: `is-active` exits 3 for activating, inactive, failed and unknown
units alike, and `status` exits 3 or 4. Each unit is queried on its own, so
one active unit never hides another.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from glpibot.actions.base import Action, ActionContext, StepResult
from glpibot.actions.remote_common import (
    StepClock,
    StepFailed,
    excerpt,
    format_seconds,
    joined_output,
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

CHECK_OPERATIONS = ("status", "is-active")
# Operations allowed when the section has no `operations` key (the config schema's default).
DEFAULT_OPERATIONS = ("status", "is-active")
POLL_INTERVAL_S = 1.0
# States that systemd leaves on its own; the step polls through them.
TRANSITIONAL_STATES = ("activating", "deactivating", "reloading", "refreshing")


@dataclass(frozen=True)
class UnitState:
    """A unit's state as `systemctl show -p LoadState -p ActiveState -p SubState` prints it."""

    load_state: str
    active_state: str
    sub_state: str

    @property
    def label(self) -> str:
        """Return the state in words: "active (running)", "activating (start)", "failed", "not found"."""
        if self.load_state == "not-found":
            return "not found"
        if self.load_state == "masked":
            return "masked"
        if self.load_state not in ("loaded", ""):
            return f"not loaded ({self.load_state})"
        if self.sub_state and self.sub_state != self.active_state:
            return f"{self.active_state} ({self.sub_state})"
        return self.active_state

    def facts(self) -> dict[str, str]:
        """Return the three properties for the step's facts."""
        return {"load_state": self.load_state, "active_state": self.active_state, "sub_state": self.sub_state}


def parse_show(stdout: str) -> dict[str, str]:
    """Parse `systemctl show` output (one `Key=Value` per line) into a dict; later lines win."""
    properties: dict[str, str] = {}
    for line in stdout.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip():
            properties[key.strip()] = value.strip()
    return properties


def show_argv(unit: str, properties: tuple[str, ...] = ("LoadState", "ActiveState", "SubState")) -> list[str]:
    """Return the argv that prints the given properties of one unit."""
    argv = ["systemctl", "--no-pager", "show"]
    for name in properties:
        argv += ["-p", name]
    return argv + ["--", unit]


class SystemdRemote(Action):
    """Run status, is-active, start, stop, restart or reload on one unit and report its state."""

    name = "systemd_remote"
    description = "Run an allowlisted systemctl operation on an allowlisted unit over SSH and report the unit's state."
    runs_on = "ssh"

    def changes_state(self, params: dict[str, Any]) -> bool:
        """Return False for the checks (status, is-active), True for every other operation."""
        return params.get("operation") not in CHECK_OPERATIONS

    def check_policy(self, step: "Step", config: "Config") -> list[SpecIssue]:
        """Return an issue for a unit or operation that the operator did not allow on the step's host."""
        issues = remote_step_issues(step, self.name)
        if issues:
            return issues
        unit = step.params.get("unit", "")
        operation = step.params.get("operation", "")
        section = config.action_settings(self.name)
        allowed_operations = section.get("operations", list(DEFAULT_OPERATIONS)) if section else []
        if operation not in allowed_operations:
            issues.append(
                SpecIssue(
                    param_path(step, "operation"),
                    f"operation {show_value(operation)} is not allowed; add it to actions.systemd_remote.operations",
                    step.line_of("params.operation"),
                )
            )
        globs = host_globs(config, self.name, "allowed_units", step.host)
        if first_match(globs, unit) is None:
            issues.append(
                SpecIssue(
                    param_path(step, "unit"),
                    f"unit {show_value(unit)} is not allowed on host {step.host}; "
                    f"add it to actions.systemd_remote.allowed_units.{step.host}",
                    step.line_of("params.unit"),
                )
            )
        return issues

    def run(self, step: "Step", context: ActionContext) -> StepResult:
        """Run the operation, then read the unit's state; wait for the target state after start/stop."""
        refused = policy_refusal(self.check_policy(step, context.config))
        if refused is not None:
            return refused
        host = context.config.hosts[str(step.host)]
        unit = str(step.params["unit"])
        operation = str(step.params["operation"])
        result = run_on_host(
            context,
            host,
            {"host": host.name, "unit": unit, "operation": operation},
            lambda session, clock: self._run(session, unit, operation, host.name, clock, context),
        )
        logger.info("ticket %s: %s %s on %s: %s", context.ticket_id, operation, unit, host.name, result.summary)
        return result

    def _run(
        self,
        session: "RemoteSession",
        unit: str,
        operation: str,
        host: str,
        clock: StepClock,
        context: ActionContext,
    ) -> StepResult:
        argv = ["systemctl", "--no-pager", operation, "--", unit]
        command = run_command(session, argv, clock=clock, host=host, tool="systemctl", context=context)
        output = joined_output(command)
        facts: dict[str, Any] = {"exit_status": command.exit_status, "command": command.command_line}
        state = self._query_state(session, unit, host, clock, context)
        facts.update(state.facts())

        if operation in CHECK_OPERATIONS:
            ok = state.load_state == "loaded" and state.active_state == "active"
            return StepResult(ok=ok, summary=f"{unit} is {state.label} on {host}", facts=facts, output=output)

        if command.exit_status != 0:
            summary = (
                f"systemctl {operation} {unit} failed on {host} (exit {command.exit_status}): "
                f"{excerpt(command.stderr) or 'no error message'}; the unit is {state.label}"
            )
            return StepResult(ok=False, summary=summary, facts=facts, output=output)

        if operation == "stop":
            stopped = ("inactive", "failed")
            state = self._wait(session, unit, host, clock, context, state, lambda s: s.active_state in stopped)
            facts.update(state.facts())
            ok = state.active_state in stopped
            if ok:
                return StepResult(ok=True, summary=f"{unit} is {state.label} on {host}", facts=facts, output=output)
            summary = f"{unit} did not stop ({state.active_state}) within {format_seconds(clock.budget_s)} s"
            still_going = state.active_state in TRANSITIONAL_STATES
            return StepResult(
                ok=False, summary=f"{summary} on {host}", facts=facts, output=output, timed_out=still_going
            )

        state = self._wait(session, unit, host, clock, context, state, lambda s: s.active_state == "active")
        facts.update(state.facts())
        if state.active_state == "active":
            return StepResult(ok=True, summary=f"{unit} is {state.label} on {host}", facts=facts, output=output)
        if state.active_state in TRANSITIONAL_STATES:
            summary = f"{unit} did not become active ({state.active_state}) within {format_seconds(clock.budget_s)} s"
            return StepResult(ok=False, summary=f"{summary} on {host}", facts=facts, output=output, timed_out=True)
        if state.active_state == "inactive" and operation in ("start", "restart"):
            finished = self._finished_oneshot(session, unit, host, clock, context)
            if finished is not None:
                facts.update(finished)
                summary = f"{unit} ran to completion on {host} (oneshot unit, now {state.active_state})"
                return StepResult(ok=True, summary=summary, facts=facts, output=output)
        return StepResult(
            ok=False, summary=f"{unit} is {state.label} on {host} after {operation}", facts=facts, output=output
        )

    def _query_state(
        self, session: "RemoteSession", unit: str, host: str, clock: StepClock, context: ActionContext
    ) -> UnitState:
        command = run_command(session, show_argv(unit), clock=clock, host=host, tool="systemctl", context=context)
        properties = parse_show(command.stdout)
        if command.exit_status != 0 or "LoadState" not in properties or "ActiveState" not in properties:
            reason = excerpt(command.stderr) or "no LoadState/ActiveState in its output"
            raise StepFailed(
                StepResult(
                    ok=False,
                    summary=f"cannot read the state of {unit} on {host}: {reason}",
                    output=command.stdout + command.stderr,
                    facts={"show_exit_status": command.exit_status},
                )
            )
        return UnitState(properties["LoadState"], properties["ActiveState"], properties.get("SubState", ""))

    def _wait(
        self,
        session: "RemoteSession",
        unit: str,
        host: str,
        clock: StepClock,
        context: ActionContext,
        state: UnitState,
        reached: Callable[[UnitState], bool],
    ) -> UnitState:
        """Poll `show` every POLL_INTERVAL_S while the unit is in a transitional state and the budget lasts."""
        while not reached(state) and state.active_state in TRANSITIONAL_STATES:
            if clock.end - time.monotonic() < POLL_INTERVAL_S:
                break
            time.sleep(POLL_INTERVAL_S)
            state = self._query_state(session, unit, host, clock, context)
        return state

    def _finished_oneshot(
        self, session: "RemoteSession", unit: str, host: str, clock: StepClock, context: ActionContext
    ) -> dict[str, str] | None:
        """Return Type and Result when the unit is a oneshot that ended with success, else None.

        A oneshot unit without RemainAfterExit= is inactive once `systemctl
        start` returns, and that is its successful end, not a failure.
        """
        argv = show_argv(unit, ("Type", "Result"))
        command = run_command(session, argv, clock=clock, host=host, tool="systemctl", context=context)
        properties = parse_show(command.stdout)
        if properties.get("Type") == "oneshot" and properties.get("Result") == "success":
            return {"type": "oneshot", "result": "success"}
        return None
