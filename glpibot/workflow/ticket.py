"""One attempt at one ticket: claim, set Processing, validate, run the steps, report, answer.

The lifecycle is re-entrant: every write is an effect recorded in the ledger
and every step is marked started before it runs, so calling `process` again
after a crash resumes where the dead pass stopped. A step that changes state
and was started but never finished is never run again: the ticket goes to
Pending with a follow-up saying the run was interrupted.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import time
from typing import Any, cast

from glpibot.actions import ActionContext, StepResult, get_action
from glpibot.errors import GlpibotError, SpecError
from glpibot.ledger import Attempt
from glpibot.outputs import memory
from glpibot.outputs.report import StepReport, TicketReport
from glpibot.policy import check_policy
from glpibot.redact import redact_data
from glpibot.spec.model import Spec
from glpibot.spec.validate import parse_ticket_body
from glpibot.workflow.effects import Effects
from glpibot.workflow.eligibility import status_id
from glpibot.workflow.markers import marker_footer, tagged
from glpibot.workflow.session import PassSession

log = logging.getLogger(__name__)

STATUS_PROCESSING = 2
STATUS_PENDING = 4
STATUS_SOLVED = 5
STATUS_CLOSED = 6


def _now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()


class TicketRun:
    """Carry one attempt through the lifecycle. Construct it per ticket, then call `process`."""

    def __init__(self, session: PassSession, ticket: dict[str, Any], attempt: Attempt) -> None:
        self.session = session
        self.ticket = ticket
        self.attempt = attempt
        self.ticket_id = int(ticket["id"])
        self.effects: Effects = session.effects
        self.report = TicketReport(
            ticket_id=self.ticket_id,
            ticket_name=str(ticket.get("name") or ""),
            attempt=attempt.attempt,
            run_marker=attempt.run_marker,
            started_at=_now_iso(),
            idempotency_key=f"ticket-{self.ticket_id}-attempt-{attempt.attempt}",
        )

    def process(self) -> TicketReport:
        """Run the whole lifecycle; GLPI errors propagate and leave the attempt open for the next pass."""
        self._claim()
        self._set_processing()
        try:
            spec = parse_ticket_body(str(self.ticket.get("content") or ""))
            self.report.reason = spec.reason
            self.report.steps = [self._plan(step) for step in spec.steps]
            check_policy(spec, self.session.config)
        except SpecError as exc:
            kind = {"missing": "no_spec", "policy": "policy"}.get(exc.kind, "invalid")
            return self._finish_blocked(kind, [str(issue) for issue in exc.issues])
        return self._run_steps(spec)

    # claim and status

    def _claim(self) -> None:
        html = self.session.renderer.claimed_html(self.report) + marker_footer(self.attempt.run_marker, "claimed")
        self.effects.post_message(
            self.ticket_id,
            self.attempt.attempt,
            "claimed",
            kind="followup",
            html=html,
            tag=tagged(self.attempt.run_marker, "claimed"),
        )

    def _set_processing(self) -> None:
        self.effects.set_status(
            self.ticket_id,
            self.attempt.attempt,
            "processing",
            status=STATUS_PROCESSING,
            current=status_id(self.ticket),
        )

    # steps

    def _plan(self, step: Any) -> StepReport:
        action = get_action(step.action)
        return StepReport(
            index=step.index,
            action=step.action,
            params=dict(step.params),
            host=step.host,
            changes_state=action.changes_state(step.params),
        )

    def _run_steps(self, spec: Spec) -> TicketReport:
        ledger = self.session.ledger
        records = {record.step_index: record for record in ledger.steps(self.ticket_id, self.attempt.attempt)}
        for step, step_report in zip(spec.steps, self.report.steps):
            record = records.get(step.index)
            if record is not None and record.state == "finished" and record.result is not None:
                step_report.result = StepResult(**record.result)
            elif step_report.changes_state and (record is not None or self.attempt.recovered):
                return self._finish_interrupted(step_report, ledger_lost=record is None)
            else:
                if self.session.out_of_time():
                    raise PassDeadlineReached(self.ticket_id)
                step_report.result = self._run_one(step, step_report, first_try=record is None)
            if not step_report.result.ok:
                self._mark_not_run(after=step.index, reason=f"step {step.index + 1} failed")
                return self._finish_blocked("failed", [f"step {step.index + 1} ({step.action}): {step_report.result.summary}"])
        return self._finish_solved()

    def _run_one(self, step: Any, step_report: StepReport, *, first_try: bool = True) -> StepResult:
        """Run one step and record its result; a read-only step cut short by the pass deadline is deferred once.

        The step's deadline is the pass deadline, so a check that times out as
        the pass runs out of time may have been given less than its own
        timeout_s. On its first try it stays marked started, which makes the
        next pass run it again; on a later try its time-out is the result.
        """
        ledger = self.session.ledger
        ledger.step_started(self.ticket_id, self.attempt.attempt, step.index, step.action, step_report.changes_state)
        log.info("step %d: %s started", step.index + 1, step.action)
        context = ActionContext(
            config=self.session.config,
            ssh=self.session.ssh_pool() if get_action(step.action).runs_on == "ssh" else None,
            deadline=self.session.deadline,
            ticket_id=self.ticket_id,
        )
        started = time.monotonic()
        try:
            result = get_action(step.action).run(step, context)
        except GlpibotError as exc:
            result = StepResult(ok=False, summary=str(exc), config_problem=True)
        if not result.duration_s:
            result.duration_s = round(time.monotonic() - started, 3)
        if result.timed_out and first_try and not step_report.changes_state and self.session.out_of_time():
            log.warning(
                "step %d: %s was cut short by the pass deadline; the next pass runs it again", step.index + 1, step.action
            )
            raise PassDeadlineReached(self.ticket_id)
        # The output comes from the target and may quote a secret, so the ledger gets the masked copy.
        stored = cast(dict[str, Any], redact_data(dataclasses.asdict(result)))
        ledger.step_finished(self.ticket_id, self.attempt.attempt, step.index, result.ok, stored)
        log.info("step %d: %s finished, ok=%s: %s", step.index + 1, step.action, result.ok, stored["summary"])
        return result

    def _mark_not_run(self, *, after: int, reason: str) -> None:
        for later in self.report.steps:
            if later.index > after and later.result is None:
                later.not_run_reason = reason

    # endings

    def _finish_interrupted(self, step_report: StepReport, *, ledger_lost: bool) -> TicketReport:
        if ledger_lost:
            why = (
                "the bot's local records of this attempt were lost, so it cannot tell whether step "
                f"{step_report.index + 1} ({step_report.action}) already ran"
            )
        else:
            why = (
                f"an earlier pass stopped while step {step_report.index + 1} ({step_report.action}) was running; "
                "it may or may not have taken effect"
            )
        self._mark_not_run(after=step_report.index - 1, reason="not run again after the interruption")
        return self._finish_blocked("interrupted", [why, "set the ticket back to New to run it again"])

    def finish_with_error(self, problems: list[str]) -> TicketReport:
        """Answer the ticket as blocked by an internal error, after `process` raised something unexpected."""
        return self._finish_blocked("error", problems)

    def _finish_blocked(self, kind: str, problems: list[str]) -> TicketReport:
        self.report.outcome = "pending"
        self.report.kind = kind
        self.report.problems = problems
        self._write_reports()
        message_kind = "interrupted" if kind == "interrupted" else "blocked"
        renderer = self.session.renderer
        body = renderer.interrupted_html(self.report) if kind == "interrupted" else renderer.blocked_html(self.report)
        self.effects.post_message(
            self.ticket_id,
            self.attempt.attempt,
            message_kind,
            kind="followup",
            html=body + marker_footer(self.attempt.run_marker, message_kind),
            tag=tagged(self.attempt.run_marker, message_kind),
        )
        self.effects.set_status(self.ticket_id, self.attempt.attempt, "pending", status=STATUS_PENDING, current=None)
        self.session.ledger.close_attempt(self.ticket_id, self.attempt.attempt, "pending", kind)
        log.info("blocked (%s): %s", kind, problems[0] if problems else "")
        return self.report

    def _finish_solved(self) -> TicketReport:
        self.report.outcome = "solved"
        self.report.kind = "ok"
        self._write_reports()
        html = self.session.renderer.completion_html(self.report) + marker_footer(self.attempt.run_marker, "solved")
        self.effects.post_message(
            self.ticket_id,
            self.attempt.attempt,
            "solution",
            kind="solution",
            html=html,
            tag=tagged(self.attempt.run_marker, "solved"),
        )
        # A Solution solves the ticket (or closes it at once where the entity
        # closes solved tickets), but GLPI may accept it without a status change
        # when a right is missing. Until the ticket shows Solved or Closed the
        # attempt stays open, so a later pass finishes the change instead of
        # taking the still-open ticket for a new attempt and running it again.
        self.effects.set_status(
            self.ticket_id, self.attempt.attempt, "solved", status=STATUS_SOLVED, current=None, accept=(STATUS_CLOSED,)
        )
        self.session.ledger.close_attempt(self.ticket_id, self.attempt.attempt, "solved", "ok")
        log.info("solved: %d step(s) passed", len(self.report.steps))
        return self.report

    def _write_reports(self) -> None:
        """Write the artifact and the memory record; a failure is retried later and never changes the outcome."""
        self.report.finished_at = _now_iso()
        self.report.artifact_path = str(self.session.config.artifacts.dir / f"ticket-{self.ticket_id}.md")
        markdown = self.session.renderer.artifact_markdown(self.report)
        self.effects.write_artifact(self.report, markdown)
        self.effects.store_memory(self.report, memory.memory_record(self.report))


class PassDeadlineReached(GlpibotError):
    """The pass ran out of time before this ticket's next step; it resumes on the next pass."""

    def __init__(self, ticket_id: int) -> None:
        self.ticket_id = ticket_id
        super().__init__(f"ticket {ticket_id}: the pass deadline was reached; the next pass resumes it")
