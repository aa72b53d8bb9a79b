"""Turn the remote layer's outcomes (sudo refusals, time-outs, RemoteError) into StepResults."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from glpibot.actions.base import ActionContext, StepResult
from glpibot.errors import HostKeyError, RemoteError

if TYPE_CHECKING:
    from glpibot.config import HostSettings
    from glpibot.remote.session import CommandResult, RemoteSession

logger = logging.getLogger(__name__)

# A command never gets less than this, so a step that starts with its
# deadline almost spent still reports a time-out instead of failing oddly.
MIN_COMMAND_TIMEOUT_S = 1.0
EXCERPT_CHARS = 300


def format_seconds(seconds: float) -> str:
    """Return seconds as "30", "2.5" or "0.3" for messages."""
    rounded = round(seconds, 1)
    if seconds >= 10 or rounded.is_integer():
        return str(int(round(seconds)))
    return f"{rounded:.1f}"


def excerpt(text: str, limit: int = EXCERPT_CHARS) -> str:
    """Return the last non-empty lines of a command's output, joined on one line and at most `limit` chars."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    joined = " / ".join(lines[-3:])
    if len(joined) > limit:
        joined = "..." + joined[-(limit - 3) :]
    return joined


def sudo_problem_message(host: str, tool: str, refusal: str) -> str:
    """Return the operator-facing message for a sudo refusal on `host` when running `tool`."""
    if refusal == "missing":
        return f"sudo is not installed on {host}; install it there, or set sudo: false for host {host} in the config"
    if refusal == "not-allowed":
        return (
            f"sudo on {host} does not allow {tool} for the glpibot user; "
            f"add a NOPASSWD rule without requiretty for the glpibot user"
        )
    return (
        f"sudo on {host} needs a password (or a tty) for {tool}; "
        f"add a NOPASSWD rule without requiretty for the glpibot user"
    )


@dataclass
class StepClock:
    """The step's time budget: a monotonic end time fixed when the step starts."""

    started: float
    end: float
    budget_s: float

    @classmethod
    def start(cls, context: ActionContext, host: "HostSettings") -> "StepClock":
        """Fix the budget: what the context's deadline leaves, at most the host's command time-out."""
        budget = context.remaining_s(host.command_timeout_s)
        now = time.monotonic()
        return cls(started=now, end=now + budget, budget_s=budget)

    def begin_commands(self, context: ActionContext, host: "HostSettings") -> None:
        """Fix the budget again once connected, so the SSH handshake does not eat the command time-out."""
        self.budget_s = context.remaining_s(host.command_timeout_s)
        self.end = time.monotonic() + self.budget_s

    def remaining_s(self) -> float:
        """Return the seconds left in the step, never below MIN_COMMAND_TIMEOUT_S."""
        return max(MIN_COMMAND_TIMEOUT_S, self.end - time.monotonic())

    def elapsed_s(self) -> float:
        """Return the seconds since the step started."""
        return time.monotonic() - self.started


class StepFailed(Exception):
    """Internal signal: stop the step and return this result."""

    def __init__(self, result: StepResult) -> None:
        super().__init__(result.summary)
        self.result = result


def open_session(context: ActionContext, host: str) -> "RemoteSession":
    """Return the pass's session to `host`; raise StepFailed when it cannot be opened."""
    if context.ssh is None:
        raise StepFailed(StepResult(ok=False, summary=f"no SSH pool is available to reach {host}", config_problem=True))
    try:
        return context.ssh.session(host)
    except HostKeyError as exc:
        logger.warning("ticket %s: host key problem on %s: %s", context.ticket_id, host, exc)
        raise StepFailed(StepResult(ok=False, summary=str(exc), config_problem=True)) from None
    except RemoteError as exc:
        logger.warning("ticket %s: cannot connect to %s: %s", context.ticket_id, host, exc)
        # The bot could not reach the host at all: a problem for the operator, not a verdict on the target.
        raise StepFailed(StepResult(ok=False, summary=f"cannot connect to {host}: {exc}", config_problem=True)) from None


def policy_refusal(issues: list[Any]) -> StepResult | None:
    """Return the failed result for a step the policy refuses at run time, or None when it is allowed.

    Every remote action checks its policy again in `run`, so a refused step
    never connects even when a caller skipped the check before.
    """
    if not issues:
        return None
    return StepResult(ok=False, summary=f"refused by policy: {issues[0].message}")


def run_on_host(
    context: ActionContext,
    host: "HostSettings",
    facts: dict[str, Any],
    work: Callable[["RemoteSession", StepClock], StepResult],
) -> StepResult:
    """Connect to the host, run `work` within the step's time budget and add `facts` to its result.

    The budget starts before the connection and is reset once connected, so
    a slow SSH handshake does not eat the command's time.
    """
    clock = StepClock.start(context, host)
    try:
        session = open_session(context, host.name)
        clock.begin_commands(context, host)
        result = work(session, clock)
    except StepFailed as failed:
        result = failed.result
    result.facts = {**facts, **result.facts}
    result.duration_s = clock.elapsed_s()
    return result


def run_command(
    session: "RemoteSession",
    argv: list[str],
    *,
    clock: StepClock,
    host: str,
    tool: str,
    context: ActionContext,
) -> "CommandResult":
    """Run one command within the step's budget; raise StepFailed on a sudo refusal, time-out or RemoteError.

    Every other exit status is returned for the action to interpret, because
    its meaning depends on the tool (`systemctl is-active` exits 3 for a stopped unit).
    """
    timeout = clock.remaining_s()
    logger.info("ticket %s: running %s on %s", context.ticket_id, " ".join(argv), host)
    try:
        result = session.run(argv, timeout_s=timeout)
    except RemoteError as exc:
        logger.warning("ticket %s: %s on %s failed: %s", context.ticket_id, tool, host, exc)
        raise StepFailed(StepResult(ok=False, summary=f"{tool} on {host} could not be run: {exc}")) from None
    if result.timed_out:
        logger.warning("ticket %s: %s on %s timed out after %.1f s", context.ticket_id, tool, host, timeout)
        raise StepFailed(
            StepResult(
                ok=False,
                summary=f"{tool} on {host} timed out after {format_seconds(timeout)} s",
                output=joined_output(result),
                timed_out=True,
                facts={"command": result.command_line, "timeout_s": round(timeout, 3)},
            )
        )
    if result.exit_status not in (0, None):
        from glpibot.remote.sudo import sudo_refusal

        refusal = sudo_refusal(result.stderr)
        if refusal is not None:
            logger.warning("ticket %s: sudo on %s rejected %s (%s)", context.ticket_id, host, tool, refusal)
            raise StepFailed(
                StepResult(
                    ok=False,
                    summary=sudo_problem_message(host, tool, refusal),
                    output=result.stderr,
                    config_problem=True,
                    facts={"sudo_refusal": refusal, "command": result.command_line},
                )
            )
        if result.exit_status in (1, 127) and "command not found" in result.stderr:
            raise StepFailed(
                StepResult(
                    ok=False,
                    summary=f"{tool} is not installed on {host} (command not found)",
                    output=result.stderr,
                    config_problem=True,
                )
            )
    if result.exit_status is None:
        raise StepFailed(
            StepResult(
                ok=False,
                summary=f"{tool} on {host} ended without an exit status (connection lost?)",
                output=joined_output(result),
            )
        )
    return result


def joined_output(result: "CommandResult") -> str:
    """Return stdout followed by stderr, for a step's raw `output`."""
    if result.stdout and result.stderr:
        return f"{result.stdout.rstrip()}\n{result.stderr}"
    return result.stdout or result.stderr
