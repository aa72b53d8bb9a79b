"""Users and ITIL categories of the GLPI simulator, and the JSON GLPI returns for them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

ROOT_ENTITY = {"id": 0, "name": "Root entity"}


def now_iso() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


@dataclass
class Category:
    id: int
    name: str
    parent_id: int | None
    comment: str = ""
    created: str = field(default_factory=now_iso)


class Directory:
    """The users (login, id) and the ITIL categories; the base of the simulator's Store."""

    def __init__(self, users: dict[str, tuple[int, str]]) -> None:
        self.user_names = {user_id: login for login, (user_id, _password) in users.items()}
        self.categories: dict[int, Category] = {}
        self._next = {"ticket": 1, "followup": 1, "solution": 1, "category": 1}

    def _new_id(self, kind: str) -> int:
        value = self._next[kind]
        self._next[kind] += 1
        return value

    def user_name(self, user_id: int) -> str:
        return self.user_names.get(user_id, f"user{user_id}")

    def user_ref(self, user_id: int) -> dict[str, Any]:
        return {"id": user_id, "name": self.user_name(user_id)}

    # Categories

    def add_category(self, name: str, parent_id: int | None = None, comment: str = "") -> int:
        if parent_id is not None and parent_id not in self.categories:
            raise ValueError(f"parent category {parent_id} does not exist")
        category_id = self._new_id("category")
        self.categories[category_id] = Category(category_id, name, parent_id, comment)
        return category_id

    def completename(self, category: Category) -> str:
        names = [category.name]
        parent_id = category.parent_id
        while parent_id is not None:
            parent = self.categories[parent_id]
            names.insert(0, parent.name)
            parent_id = parent.parent_id
        return " > ".join(names)

    def category_json(self, category_id: int, *, joined_as_parent: bool = False) -> dict[str, Any]:
        """Return a category; `joined_as_parent` reproduces GLPI 11.0.6's unfiltered-list bug."""
        category = self.categories[category_id]
        parent = self.categories.get(category.parent_id) if category.parent_id is not None else None
        body: dict[str, Any] = {
            "id": category.id,
            "name": category.name,
            "completename": self.completename(category),
            "level": self.completename(category).count(" > ") + 1,
            "comment": category.comment,
            "is_recursive": True,
            "code": "",
            "is_helpdesk_visible": True,
            "is_incident_visible": True,
            "is_request_visible": True,
            "is_change_visible": True,
            "is_problem_visible": True,
            "date_creation": category.created,
            "date_mod": category.created,
            "entity": dict(ROOT_ENTITY),
            "parent": {"id": parent.id, "name": parent.name} if parent else None,
            "user": None,
            "group": None,
            "ticket_incident_template": None,
            "ticket_request_template": None,
            "change_template": None,
            "problem_template": None,
            "knowbase_category": None,
        }
        if joined_as_parent:
            for key in ("completename", "level", "comment", "is_recursive", "code") + tuple(
                key for key in body if key.startswith("is_") and key.endswith("_visible")
            ):
                body[key] = None
            del body["date_creation"], body["date_mod"]
        return body

    # Users and session

    def user_json(self, user_id: int) -> dict[str, Any]:
        return {
            "id": user_id,
            "username": self.user_name(user_id),
            "realname": None,
            "firstname": None,
            "phone": "",
            "phone2": "",
            "mobile": "",
            "emails": [],
            "comment": "",
            "is_active": True,
            "is_deleted": False,
            "picture": None,
            "location": None,
            "authtype": 1,
            "last_login": None,
            "default_profile": {"id": 6, "name": "Technician"},
            "default_entity": dict(ROOT_ENTITY),
        }

    def session_json(self, user_id: int) -> dict[str, Any]:
        name = self.user_name(user_id)
        return {
            "current_time": now_iso(),
            "user_id": user_id,
            "use_mode": 0,
            "friendly_name": name,
            "name": name,
            "real_name": None,
            "first_name": None,
            "default_entity": 0,
            "profiles": [6],
            "active_entities": [0],
            "active_profile": {"id": 6, "name": "Technician", "interface": "central"},
            "active_entity": {"id": 0, "short_name": "Root entity", "complete_name": "Root entity", "recursive": True},
        }
