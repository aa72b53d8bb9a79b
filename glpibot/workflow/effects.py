"""Writes with at-most-once effect: follow-ups, solutions, status changes, artifacts, memory records.

Every write is recorded in the ledger as an effect with a unique key before it
is sent, and its try is counted first. When a later pass finds the effect still
pending after a try, the earlier try may have landed (the answer was lost), so
messages are looked up in the ticket timeline by their tag before they are
posted again, and status changes are compared with the ticket first.
"""

from __future__ import annotations

import logging
from typing import Any

from glpibot.config import Config
from glpibot.errors import GlpibotError, GlpiError
from glpibot.glpi.client import GlpiClient
from glpibot.ledger import Effect, Ledger
from glpibot.outputs import artifacts, memory
from glpibot.outputs.report import TicketReport
from glpibot.redact import redact
from glpibot.workflow.eligibility import status_id
from glpibot.workflow.markers import markers_in_timeline

log = logging.getLogger(__name__)

LOCAL_KINDS = ("artifact", "memory")


def effect_key(ticket_id: int, attempt: int, name: str) -> str:
    return f"t{ticket_id}-a{attempt}-{name}"


class Effects:
    """Perform the lifecycle's writes through the ledger's effect records."""

    def __init__(
        self,
        ledger: Ledger,
        client: GlpiClient,
        config: Config,
        *,
        bot_user_id: int,
        memory_token: str | None,
    ) -> None:
        self.ledger = ledger
        self.client = client
        self.config = config
        self.bot_user_id = bot_user_id
        self.memory_token = memory_token
        self.local_failures = 0  # artifact and memory writes that failed in this pass

    # GLPI writes: failures raise, so the ticket's attempt stays open for the next pass.

    def post_message(self, ticket_id: int, attempt: int, name: str, *, kind: str, html: str, tag: str) -> None:
        """Post a follow-up or a solution once; `tag` is the marker text that identifies it in the timeline."""
        key = effect_key(ticket_id, attempt, name)
        effect = self.ledger.add_effect(key, ticket_id, attempt, kind, {"html": html, "tag": tag})
        self._perform_glpi(effect)

    def set_status(
        self,
        ticket_id: int,
        attempt: int,
        name: str,
        *,
        status: int,
        current: int | None,
        accept: tuple[int, ...] = (),
    ) -> None:
        """Set the ticket status once; no request when the ticket already has it or a status in `accept`."""
        key = effect_key(ticket_id, attempt, name)
        payload = {"status": status, "accept": sorted({status, *accept})}
        effect = self.ledger.add_effect(key, ticket_id, attempt, "status", payload)
        self._perform_glpi(effect, current_status=current)

    def _perform_glpi(self, effect: Effect, *, current_status: int | None = None) -> None:
        if effect.state == "done":
            return
        if effect.kind == "status":
            self._perform_status(effect, current_status)
            return
        if effect.tries > 0 and self._message_landed(effect):
            log.info("found %s from an earlier try in the timeline; not posting it again", effect.key)
            self.ledger.effect_done(effect.key)
            return
        self.ledger.effect_trying(effect.key)
        try:
            if effect.kind == "solution":
                item_id = self.client.add_solution(effect.ticket_id, effect.payload["html"])
            else:
                item_id = self.client.add_followup(effect.ticket_id, effect.payload["html"])
        except GlpiError as exc:
            self.ledger.effect_failed(effect.key, str(exc))
            raise
        self.ledger.effect_done(effect.key, {"id": item_id})
        log.info("posted %s (%s id %s)", effect.key, effect.kind, item_id)

    def _perform_status(self, effect: Effect, current_status: int | None) -> None:
        target = int(effect.payload["status"])
        accepted = effect.payload.get("accept") or [target]
        if effect.tries > 0 or current_status is None:
            current_status = status_id(self.client.get_ticket(effect.ticket_id))
        if current_status in accepted:
            self.ledger.effect_done(effect.key, {"status": target, "sent": False})
            return
        self.ledger.effect_trying(effect.key)
        try:
            self.client.set_status(effect.ticket_id, target)
        except GlpiError as exc:
            self.ledger.effect_failed(effect.key, str(exc))
            raise
        self.ledger.effect_done(effect.key, {"status": target, "sent": True})
        log.info("set status %s (%s)", target, effect.key)

    def _message_landed(self, effect: Effect) -> bool:
        timeline = self.client.timeline(effect.ticket_id)
        tag = effect.payload["tag"]
        expected_type = "Solution" if effect.kind == "solution" else "Followup"
        for found in markers_in_timeline(timeline, effect.ticket_id, self.bot_user_id):
            if f"{found.run_marker} {found.kind}" == tag and found.item_type == expected_type:
                return True
        return False

    # Local writes: failures are logged and retried on later passes; they never change the outcome.

    def write_artifact(self, report: TicketReport, markdown: str) -> bool:
        key = effect_key(report.ticket_id, report.attempt, "artifact")
        payload = {"markdown": markdown, "outcome": report.outcome, "run_marker": report.run_marker}
        effect = self.ledger.add_effect(key, report.ticket_id, report.attempt, "artifact", payload)
        return self.perform_local(effect)

    def store_memory(self, report: TicketReport, record: dict[str, Any]) -> bool:
        key = effect_key(report.ticket_id, report.attempt, "memory")
        effect = self.ledger.add_effect(key, report.ticket_id, report.attempt, "memory", {"record": record})
        return self.perform_local(effect)

    def perform_local(self, effect: Effect) -> bool:
        """Perform an artifact or memory effect; return True when it is done."""
        if effect.state == "done":
            return True
        self.ledger.effect_trying(effect.key)
        try:
            if effect.kind == "artifact":
                stub = TicketReport(
                    ticket_id=effect.ticket_id,
                    ticket_name="",
                    attempt=effect.attempt,
                    run_marker=effect.payload["run_marker"],
                    outcome=effect.payload["outcome"],
                )
                path = artifacts.write_artifact(self.config.artifacts, stub, effect.payload["markdown"])
                result: dict[str, Any] = {"path": str(path)}
            else:
                memory.store_record(self.config.memory, effect.payload["record"], token=self.memory_token)
                result = {}
        except (GlpibotError, OSError) as exc:
            message = redact(str(exc))
            self.ledger.effect_failed(effect.key, message)
            self.local_failures += 1
            log.error("%s failed, will retry on a later pass: %s", effect.key, message)
            return False
        self.ledger.effect_done(effect.key, result)
        log.info("%s done", effect.key)
        return True

    def retry_due_local_effects(self) -> int:
        """Retry artifact and memory writes whose backoff has passed; return how many are still pending."""
        still_pending = 0
        for effect in self.ledger.pending_effects(due_only=True):
            if effect.kind in LOCAL_KINDS and not self.perform_local(effect):
                still_pending += 1
        return still_pending
