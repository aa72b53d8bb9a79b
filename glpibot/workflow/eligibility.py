"""Ticket eligibility, decided by the ids on each ticket, never by names."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def status_id(ticket: dict[str, Any]) -> int | None:
    status = ticket.get("status")
    if isinstance(status, dict):
        status = status.get("id")
    return status if isinstance(status, int) else None


def category_id_of(ticket: dict[str, Any]) -> int | None:
    category = ticket.get("category")
    if isinstance(category, dict):
        category = category.get("id")
    return category if isinstance(category, int) else None


def is_assigned_to(ticket: dict[str, Any], user_id: int) -> bool:
    """True when the embedded team has the user with role `assigned`.

    GLPI returns team members without a `type` field, so a member is the bot
    when its id matches and its href, if any, points at a user form.
    """
    for member in ticket.get("team") or []:
        if not isinstance(member, dict):
            continue
        if member.get("role") != "assigned" or member.get("id") != user_id:
            continue
        member_type = member.get("type")
        href = str(member.get("href") or "")
        if member_type not in (None, "User"):
            continue
        if href and "user" not in href.lower():
            continue
        return True
    return False


def ineligibility_reason(
    ticket: dict[str, Any],
    *,
    category_id: int,
    bot_user_id: int,
    statuses: Sequence[int],
    check_status: bool = True,
) -> str | None:
    """Return why the bot must not take this ticket, or None when it is eligible."""
    if ticket.get("is_deleted"):
        return "the ticket is in the trash"
    found_category = category_id_of(ticket)
    if found_category != category_id:
        return f"its category id is {found_category}, not the automation category {category_id}"
    if not is_assigned_to(ticket, bot_user_id):
        return f"it is not assigned to the bot user (id {bot_user_id})"
    if check_status:
        found_status = status_id(ticket)
        if found_status not in statuses:
            allowed = ", ".join(str(status) for status in statuses)
            return f"its status is {found_status}, not one of the eligible statuses {allowed}"
    return None
