"""Decide which attempt a ticket is on, from the ledger or, when the ledger is lost, from the timeline."""

from __future__ import annotations

import logging
from typing import Any

from glpibot.ledger import Attempt
from glpibot.workflow.effects import effect_key
from glpibot.workflow.eligibility import status_id
from glpibot.workflow.markers import markers_in_timeline, new_run_marker
from glpibot.workflow.session import PassSession

log = logging.getLogger(__name__)

STATUS_NEW = 1
STATUS_PENDING = 4


def attempt_for(session: PassSession, ticket: dict[str, Any]) -> Attempt | None:
    """Return the attempt to carry on with, opening a new one when the last one finished.

    Returns None when the only work left was finishing a lost status change.
    An attempt stays open in the ledger until its answer is posted and its
    status set, so a finished attempt on an eligible ticket means a person
    set the ticket back to New or Processing: that is a new attempt.
    """
    ledger = session.ledger
    ticket_id = int(ticket["id"])
    latest = ledger.latest_attempt(ticket_id)
    if latest is not None and latest.state == "open":
        log.info("resuming attempt %d (%s)", latest.attempt, latest.run_marker)
        return latest
    if latest is not None:
        return _new_attempt(session, ticket_id, latest.attempt + 1)
    return _attempt_from_timeline(session, ticket)


def _new_attempt(session: PassSession, ticket_id: int, number: int) -> Attempt:
    attempt = session.ledger.open_attempt(ticket_id, number, new_run_marker(ticket_id, number))
    log.info("opened attempt %d (%s)", attempt.attempt, attempt.run_marker)
    return attempt


def _attempt_from_timeline(session: PassSession, ticket: dict[str, Any]) -> Attempt | None:
    """Rebuild the ticket's state from the bot's own markers in the timeline (no ledger row exists)."""
    ticket_id = int(ticket["id"])
    markers = markers_in_timeline(session.client.timeline(ticket_id), ticket_id, session.bot_user_id)
    if not markers:
        return _new_attempt(session, ticket_id, 1)

    last_number = max(marker.attempt for marker in markers)
    of_last = [marker for marker in markers if marker.attempt == last_number]
    run_marker = of_last[0].run_marker
    endings = {marker.kind for marker in of_last} - {"claimed"}
    log.warning(
        "no ledger record, but the timeline shows attempt %d (%s) ending with %s",
        last_number,
        run_marker,
        ", ".join(sorted(endings)) or "a claim only",
    )
    ledger = session.ledger

    if "solved" in endings or (endings and status_id(ticket) == STATUS_NEW):
        return _new_attempt(session, ticket_id, last_number + 1)

    if endings:
        # The blocked answer was posted but the status change to Pending was lost
        # with the ledger: finish that change only.
        ledger.open_attempt(ticket_id, last_number, run_marker, recovered=True)
        session.effects.set_status(ticket_id, last_number, "pending", status=STATUS_PENDING, current=status_id(ticket))
        ledger.close_attempt(ticket_id, last_number, "pending", "recovered")
        return None

    # Claimed but never answered: carry the attempt on without claiming again.
    attempt = ledger.open_attempt(ticket_id, last_number, run_marker, recovered=True)
    key = effect_key(ticket_id, last_number, "claimed")
    ledger.add_effect(key, ticket_id, last_number, "followup", {"html": "", "tag": f"{run_marker} claimed"})
    ledger.effect_done(key, {"recovered": True})
    return attempt
