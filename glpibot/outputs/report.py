"""The outcome of one ticket attempt, which every output (follow-up, artifact, memory) renders."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from glpibot.actions.base import StepResult

# Reasons a ticket ends Pending. A solved ticket has the kind "ok".
BLOCK_KINDS = ("no_spec", "invalid", "policy", "failed", "interrupted", "error")


@dataclass
class StepReport:
    """One step as planned, and what happened when (or whether) it ran."""

    index: int
    action: str
    params: dict[str, Any]
    host: str | None = None
    changes_state: bool = False
    result: StepResult | None = None  # None: the step did not run
    not_run_reason: str | None = None  # why it did not run ("an earlier step failed")


@dataclass
class TicketReport:
    """Everything known about one attempt at one ticket.

    Text fields that came from the ticket or a remote host (ticket_name,
    reason, problems, step output) are untrusted; renderers escape them.
    """

    ticket_id: int
    ticket_name: str
    attempt: int  # 1 for the first attempt; a ticket set back to New starts the next
    run_marker: str  # short visible marker posted in the claimed follow-up, e.g. "glpibot-run 17-2-a1b2c3"
    outcome: str = "claimed"  # claimed | solved | pending
    kind: str = "ok"  # "ok" or one of BLOCK_KINDS
    reason: str | None = None  # the spec's `reason`
    problems: list[str] = field(default_factory=list)  # one line each: spec errors, refusals, failures
    steps: list[StepReport] = field(default_factory=list)
    started_at: str = ""  # ISO 8601 UTC
    finished_at: str = ""
    artifact_path: str | None = None
    idempotency_key: str = ""  # "ticket-<id>-attempt-<n>": stable across retries of the same attempt
    dry_run: bool = False

    @property
    def summary(self) -> str:
        """Return one line describing how the attempt ended."""
        if self.outcome == "solved":
            return f"ticket {self.ticket_id}: all {len(self.steps)} step(s) passed"
        if self.problems:
            return f"ticket {self.ticket_id}: blocked ({self.kind}): {self.problems[0]}"
        return f"ticket {self.ticket_id}: {self.outcome}"
