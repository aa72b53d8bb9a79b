"""The simulator's tickets, their team members and timeline items.

Business rules follow what GLPI 11.0.6 does on its own. Assigning a user to a
New ticket moves it to Processing (assigned). A solution solves the ticket, or
closes it when the entity closes at once. A follow-up from a requester who is
not assigned takes a Pending ticket out of Pending. The caller holds the simulator lock around every call.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from glpibot.testing.directory import ROOT_ENTITY, Directory, now_iso
from glpibot.testing.responses import empty_server_error, invalid_parameter, not_found, server_failure

STATUS_NAMES = {
    1: "New",
    2: "Processing (assigned)",
    3: "Processing (planned)",
    4: "Pending",
    5: "Solved",
    6: "Closed",
}
ROLE_BY_NUMBER = {1: "requester", 2: "assigned", 3: "observer"}


@dataclass
class TeamMember:
    role: str
    user_id: int


@dataclass
class Ticket:
    id: int
    name: str
    content: str
    category_id: int | None
    status: int
    recipient_id: int
    type: int = 1
    urgency: int = 3
    impact: int = 3
    is_deleted: bool = False
    entity_auto_close: bool = False  # the entity closes solved tickets at once
    team: list[TeamMember] = field(default_factory=list)
    created: str = field(default_factory=now_iso)
    modified: str = field(default_factory=now_iso)
    date_solve: str | None = None
    date_close: str | None = None
    take_into_account_date: str | None = None
    begin_waiting_date: str | None = None


@dataclass
class TimelineItem:
    id: int
    ticket_id: int
    content: str
    user_id: int
    is_private: bool = False
    status: int = 2  # solutions only: 2 waiting for approval, 3 accepted, 4 refused
    created: str = field(default_factory=now_iso)


def _as_id(value: Any) -> int | None:
    """Collapse GLPI's two input forms, `2` and `{"id": 2}`, to the id."""
    if isinstance(value, dict):
        value = value.get("id")
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value


def _plain_text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]*>", " ", html)).strip()


class Store(Directory):
    """Tickets, their team and timeline, with GLPI's side effects."""

    def __init__(self, users: dict[str, tuple[int, str]]) -> None:
        super().__init__(users)
        self.tickets: dict[int, Ticket] = {}
        self.followups: dict[int, TimelineItem] = {}
        self.solutions: dict[int, TimelineItem] = {}

    # Tickets

    def ticket_record(self, ticket_id: int) -> Ticket:
        ticket = self.tickets.get(ticket_id)
        if ticket is None:
            raise not_found()
        return ticket

    def add_ticket(
        self,
        *,
        name: str,
        content: str,
        category_id: int | None,
        status: int,
        recipient_id: int,
        type_: int = 1,
        urgency: int = 3,
        impact: int = 3,
        is_deleted: bool = False,
        entity_auto_close: bool = False,
    ) -> int:
        if status not in STATUS_NAMES:
            raise ValueError(f"unknown ticket status {status}")
        ticket_id = self._new_id("ticket")
        self.tickets[ticket_id] = Ticket(
            ticket_id,
            name=name or _plain_text(content)[:70],
            content=content,
            category_id=category_id if category_id in self.categories else None,
            status=status,
            recipient_id=recipient_id,
            type=type_,
            urgency=urgency,
            impact=impact,
            is_deleted=is_deleted,
            entity_auto_close=entity_auto_close,
        )
        if status == 2:
            self.tickets[ticket_id].take_into_account_date = now_iso()
        return ticket_id

    def create_ticket(self, body: dict[str, Any], user_id: int) -> int:
        """Create a ticket from an API body; unknown keys and unknown categories are ignored like GLPI does."""
        status = body.get("status", 1)
        status_id = _as_id(status)
        if status_id is None:
            raise empty_server_error()  # GLPI 11.0.6 fails with an SQL error on a non-integer status
        return self.add_ticket(
            name=str(body.get("name") or ""),
            content=str(body.get("content") or ""),
            category_id=_as_id(body.get("category")),
            status=status_id if status_id in STATUS_NAMES else 1,
            recipient_id=user_id,
            type_=body.get("type") if body.get("type") in (1, 2) else 1,
            urgency=body.get("urgency") if body.get("urgency") in range(1, 6) else 3,
            impact=body.get("impact") if body.get("impact") in range(1, 6) else 3,
        )

    def ticket_json(self, ticket_id: int) -> dict[str, Any]:
        ticket = self.ticket_record(ticket_id)
        category = self.categories.get(ticket.category_id) if ticket.category_id is not None else None
        waiting = ticket.begin_waiting_date
        return {
            "id": ticket.id,
            "name": ticket.name,
            "content": ticket.content,
            "is_deleted": ticket.is_deleted,
            "urgency": ticket.urgency,
            "impact": ticket.impact,
            "priority": math.ceil((ticket.urgency + ticket.impact) / 2),
            "actiontime": 0,
            "begin_waiting_date": waiting,
            "waiting_duration": 0,
            "resolution_duration": 0,
            "close_duration": 0,
            "resolution_date": None,
            "date_creation": ticket.created,
            "date_mod": ticket.modified,
            "date": ticket.created,
            "date_solve": ticket.date_solve,
            "date_close": ticket.date_close,
            "type": ticket.type,
            "external_id": None,
            "take_into_account_date": ticket.take_into_account_date,
            "take_into_account_duration": 0,
            "global_validation": 1,
            "status": {"id": ticket.status, "name": STATUS_NAMES[ticket.status]},
            "user_recipient": self.user_ref(ticket.recipient_id),
            "user_editor": self.user_ref(ticket.recipient_id),
            "category": {"id": category.id, "name": category.name} if category else None,
            "location": None,
            "request_type": {"id": 1, "name": "Helpdesk"},
            "entity": {**ROOT_ENTITY, "completename": "Root entity"},
            "team": self.team_json(ticket_id),
        }

    def change_status(self, ticket: Ticket, status: int) -> None:
        """Set a status with GLPI's date side effects."""
        stamp = now_iso()
        if status in (4, 5):
            ticket.begin_waiting_date = stamp
        if status == 5:
            ticket.date_solve = stamp
        elif status == 6:
            ticket.date_close = stamp
            ticket.date_solve = ticket.date_solve or stamp
        elif ticket.status in (5, 6):
            ticket.date_solve = ticket.date_close = None
            for solution in self.solutions.values():
                if solution.ticket_id == ticket.id and solution.status in (2, 3):
                    solution.status = 4  # reopening refuses the last solution
        if status == 2 and ticket.take_into_account_date is None:
            ticket.take_into_account_date = stamp
        ticket.status = status
        ticket.modified = stamp

    def patch_ticket(self, ticket_id: int, body: dict[str, Any], *, ignore_status: bool = False) -> None:
        ticket = self.ticket_record(ticket_id)
        if "status" in body:
            status_id = _as_id(body["status"])
            if status_id is None:
                raise empty_server_error()  # GLPI 11.0.6: SQL error, empty 500
            if status_id in STATUS_NAMES and status_id != ticket.status and not ignore_status:
                self.change_status(ticket, status_id)
        if "name" in body and isinstance(body["name"], str):
            ticket.name = body["name"]
        if "content" in body and isinstance(body["content"], str):
            ticket.content = body["content"]
        if "category" in body:
            category_id = _as_id(body["category"])
            ticket.category_id = category_id if category_id in self.categories else None
        for key in ("urgency", "impact"):
            if body.get(key) in range(1, 6):
                setattr(ticket, key, body[key])
        ticket.modified = now_iso()

    # Team

    def team_json(self, ticket_id: int) -> list[dict[str, Any]]:
        return [self._member_json(member) for member in self.ticket_record(ticket_id).team]

    def _member_json(self, member: TeamMember) -> dict[str, Any]:
        name = self.user_name(member.user_id)
        return {
            "role": member.role,
            "name": name,
            "realname": None,
            "firstname": None,
            "display_name": name,
            "id": member.user_id,
            "href": f"/front/user.form.php?id={member.user_id}",
        }

    def assigned_ids(self, ticket: Ticket) -> set[int]:
        return {member.user_id for member in ticket.team if member.role == "assigned"}

    def add_member(self, ticket_id: int, body: dict[str, Any]) -> None:
        ticket = self.ticket_record(ticket_id)
        role = body.get("role")
        role = ROLE_BY_NUMBER.get(role, role) if isinstance(role, int) else role
        if body.get("type") != "User":
            raise invalid_parameter("Invalid parameter", messages=["Only User members are simulated"])
        user_id = _as_id(body.get("id"))
        if role not in ROLE_BY_NUMBER.values() or user_id is None or user_id not in self.user_names:
            raise invalid_parameter("Invalid parameter", messages=["Unknown member, type or role"])
        if any(member.role == role and member.user_id == user_id for member in ticket.team):
            raise invalid_parameter("Invalid parameter", messages=["The actor already has this role"])
        self.attach(ticket_id, role, user_id)

    def attach(self, ticket_id: int, role: str, user_id: int) -> None:
        """Add a team member without input checks; an assignee moves a New ticket to Processing (assigned)."""
        ticket = self.ticket_record(ticket_id)
        ticket.team.append(TeamMember(role, user_id))
        ticket.modified = now_iso()
        if role == "assigned" and ticket.status == 1:
            self.change_status(ticket, 2)

    def remove_member(self, ticket_id: int, body: dict[str, Any]) -> None:
        ticket = self.ticket_record(ticket_id)
        role = "observer" if body.get("role") == "watcher" else body.get("role")
        user_id = _as_id(body.get("id"))
        before = len(ticket.team)
        ticket.team = [member for member in ticket.team if not (member.role == role and member.user_id == user_id)]
        if len(ticket.team) == before:
            raise invalid_parameter("Invalid parameter", messages=["No such team member"])
        if role == "assigned" and not self.assigned_ids(ticket) and ticket.status not in (5, 6):
            self.change_status(ticket, 1)

    # Timeline

    def add_followup(self, ticket_id: int, content: str, user_id: int, *, is_private: bool = False) -> int:
        ticket = self.ticket_record(ticket_id)
        if not content.strip():
            raise server_failure("Failed to create item(s)", ["You can't add a followup without description"])
        followup_id = self._new_id("followup")
        self.followups[followup_id] = TimelineItem(followup_id, ticket_id, content, user_id, is_private=is_private)
        ticket.modified = now_iso()
        assigned = self.assigned_ids(ticket)
        requesters = {member.user_id for member in ticket.team if member.role == "requester"}
        if ticket.status == 4 and user_id in requesters and user_id not in assigned:
            self.change_status(ticket, 2 if assigned else 1)
        return followup_id

    def add_solution(self, ticket_id: int, content: str, user_id: int, *, ignore_status: bool = False) -> int:
        """Add a solution, which solves the ticket; `ignore_status` stores it but keeps the status."""
        ticket = self.ticket_record(ticket_id)
        if ticket.status in (5, 6):
            raise server_failure("Failed to create item(s)", ["The item is already solved."])
        solution_id = self._new_id("solution")
        status = 3 if ticket.entity_auto_close else 2
        self.solutions[solution_id] = TimelineItem(solution_id, ticket_id, content, user_id, status=status)
        if not ignore_status:
            self.change_status(ticket, 6 if ticket.entity_auto_close else 5)
        return solution_id

    def followup_json(self, item: TimelineItem) -> dict[str, Any]:
        return {
            "id": item.id,
            "itemtype": "Ticket",
            "items_id": item.ticket_id,
            "content": item.content,
            "is_private": item.is_private,
            "date": item.created,
            "date_creation": item.created,
            "date_mod": item.created,
            "timeline_position": 4,
            "source_item_id": 0,
            "source_of_item_id": 0,
            "user": self.user_ref(item.user_id),
            "user_editor": None,
            "request_type": None,
        }

    def solution_json(self, item: TimelineItem) -> dict[str, Any]:
        return {
            "id": item.id,
            "itemtype": "Ticket",
            "items_id": item.ticket_id,
            "content": item.content,
            "status": item.status,
            "date_creation": item.created,
            "date_mod": item.created,
            "date_approval": item.created if item.status == 3 else None,
            "type": None,
            "user": self.user_ref(item.user_id),
            "user_editor": None,
            "approver": None,
            "approval_followup": None,
        }

    def timeline_json(self, ticket_id: int, kind: str | None = None) -> list[dict[str, Any]]:
        """Return `{type, item}` wrappers, grouped by type in GLPI's order."""
        self.ticket_record(ticket_id)
        wrapped: list[dict[str, Any]] = []
        if kind in (None, "Followup"):
            wrapped += [
                {"type": "Followup", "item": self.followup_json(item)}
                for item in self.followups.values()
                if item.ticket_id == ticket_id
            ]
        if kind in (None, "Solution"):
            wrapped += [
                {"type": "Solution", "item": self.solution_json(item)}
                for item in self.solutions.values()
                if item.ticket_id == ticket_id
            ]
        return wrapped
