"""Route table of the simulated high-level API: authentication, lists with RSQL and paging, and each endpoint."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from typing import Any, Callable

from glpibot.testing import rsql
from glpibot.testing.responses import (
    HttpResponse,
    ApiError,
    empty_response,
    empty_server_error,
    error_body,
    invalid_parameter,
    json_response,
    not_found,
)
from glpibot.testing.oauth import OAuthServer
from glpibot.testing.store import Store

TICKET_PROPERTIES = frozenset(
    "id name content is_deleted urgency impact priority actiontime type external_id global_validation "
    "date date_creation date_mod date_solve date_close begin_waiting_date take_into_account_date "
    "waiting_duration resolution_duration close_duration take_into_account_duration resolution_date "
    "status.id category.id category.name location.id location.name request_type.id request_type.name "
    "entity.id entity.name entity.completename user_recipient.id user_recipient.name "
    "user_editor.id user_editor.name".split()
)
CATEGORY_PROPERTIES = frozenset(
    "id name completename level comment is_recursive code date_creation date_mod entity.id entity.name "
    "parent.id parent.name is_helpdesk_visible is_incident_visible is_request_visible is_change_visible "
    "is_problem_visible".split()
)
USER_PROPERTIES = frozenset("id username realname firstname phone phone2 mobile comment is_active is_deleted authtype".split())
TIMELINE_KINDS = {kind.lower(): kind for kind in ("Followup", "Task", "Document", "Solution", "Validation")}


@dataclass
class ApiRequest:
    """One API request after parsing; `path` has no /api.php or version prefix."""

    method: str
    path: str
    query: dict[str, str]
    json: Any  # None when the body was absent or ignored (Content-Type not exactly application/json)
    form: dict[str, str] | None
    authorization: str | None
    invalid_json: bool = False
    user_id: int = 0
    ignore_status_change: bool = False
    params: list[str] = field(default_factory=list)

    def body(self) -> dict[str, Any]:
        if self.invalid_json:
            raise ApiError(400, error_body("ERROR", "Invalid JSON body"))
        return self.json if isinstance(self.json, dict) else {}


def _page_bounds(query: dict[str, str]) -> tuple[int, int | None]:
    try:
        start = int(query.get("start", "0"))
        limit = int(query["limit"]) if "limit" in query else None
    except ValueError:
        raise invalid_parameter("Invalid parameter", messages=["start and limit must be integers"]) from None
    if start < 0 or (limit is not None and limit < 0):
        raise invalid_parameter("Invalid parameter", messages=["start and limit must not be negative"])
    return start, limit


def _sort_key(selector: str) -> Callable[[dict[str, Any]], tuple[int, Any]]:
    def key(row: dict[str, Any]) -> tuple[int, Any]:
        value = rsql.lookup(row, selector)
        return (0, "") if value is None else (1, value)  # NULL sorts first, as in SQL

    return key


@dataclass
class SearchResult:
    """One page of a list, with GLPI's status (200, or 206 when more rows exist) and Content-Range."""

    status: int
    rows: list[dict[str, Any]]
    content_range: str
    filtered: bool

    def response(self) -> HttpResponse:
        return json_response(self.status, self.rows, headers={"Content-Range": self.content_range})


def search(rows: list[dict[str, Any]], query: dict[str, str], properties: frozenset[str]) -> SearchResult:
    """Filter, sort and page rows as GLPI's search does."""
    text = query.get("filter", "")
    if text:
        try:
            tree = rsql.parse(text)
        except rsql.RsqlError as exc:
            raise invalid_parameter("RSQL query has invalid filters", messages=[str(exc)]) from None
        used = rsql.selectors(tree)
        if any(name == "team" or name.startswith("team.") for name in used):
            raise empty_server_error()  # team is computed after the SQL query; GLPI 11.0.6 fails with an SQL error
        unknown = [name for name in used if name not in properties]
        if unknown:
            raise invalid_parameter(
                "RSQL query has invalid filters", messages=[f"Invalid property: {name}" for name in unknown]
            )
        rows = [row for row in rows if rsql.evaluate(tree, row)]
    for part in reversed([item for item in query.get("sort", "").split(",") if item]):
        name, _, direction = part.partition(":")
        if name not in properties or direction.lower() not in ("", "asc", "desc"):
            raise ApiError(400, error_body("ERROR", f"Invalid property for sorting: {name}"))
        rows = sorted(rows, key=_sort_key(name), reverse=direction.lower() == "desc")
    start, limit = _page_bounds(query)
    page = rows[start:] if limit is None else rows[start : start + limit]
    total = len(rows)
    status = 206 if start + len(page) < total else 200
    return SearchResult(status, page, f"{start}-{start + len(page) - 1}/{total}", bool(text))


def _created(href: str, new_id: int) -> HttpResponse:
    return json_response(200, {"id": new_id, "href": href}, headers={"Location": href})


class ApiRoutes:
    """Dispatch an ApiRequest to its endpoint; every endpoint runs under the simulator lock."""

    def __init__(self, store: Store, oauth: OAuthServer, lock: threading.RLock) -> None:
        self.store = store
        self.oauth = oauth
        self.lock = lock
        ticket = r"/Assistance/Ticket/(\d+)"
        self.table: list[tuple[str, re.Pattern[str], Callable[[ApiRequest], HttpResponse]]] = [
            (method, re.compile(f"^{pattern}$", re.IGNORECASE), handler)
            for method, pattern, handler in [
                ("GET", "/session", self.get_session),
                ("GET", "/Assistance/Ticket", self.list_tickets),
                ("POST", "/Assistance/Ticket", self.create_ticket),
                ("GET", ticket, self.get_ticket),
                ("PATCH", ticket, self.patch_ticket),
                ("DELETE", ticket, self.delete_ticket),
                ("GET", ticket + "/TeamMember", self.list_team),
                ("GET", ticket + "/TeamMember/(\\w+)", self.list_team_role),
                ("POST", ticket + "/TeamMember", self.add_team_member),
                ("DELETE", ticket + "/TeamMember", self.remove_team_member),
                ("GET", ticket + "/Timeline", self.get_timeline),
                ("GET", ticket + "/Timeline/(\\w+)", self.get_timeline_kind),
                ("GET", ticket + "/Timeline/(\\w+)/(\\d+)", self.get_timeline_item),
                ("POST", ticket + "/Timeline/(\\w+)", self.add_timeline_item),
                ("GET", "/Dropdowns/ITILCategory", self.list_categories),
                ("GET", "/Dropdowns/ITILCategory/(\\d+)", self.get_category),
                ("GET", "/Administration/User", self.list_users),
                ("GET", "/Administration/User/Me", self.get_me),
                ("GET", "/Administration/User/(\\d+)", self.get_user),
                ("GET", "/Administration/User/username/([a-zA-Z0-9_]+)", self.get_user_by_login),
            ]
        ]

    def handle(self, request: ApiRequest, api_index: Callable[[], HttpResponse]) -> HttpResponse:
        """Authenticate and route the request; errors become GLPI's error responses."""
        try:
            if request.method in ("GET", "HEAD") and request.path in ("", "/"):
                return api_index()
            if request.path.lower() == "/token":
                if request.method != "POST":
                    raise not_found()
                params = request.form if request.form is not None else request.body()
                return self.oauth.token_endpoint(params)
            request.user_id = self.oauth.authenticate(request.authorization, request.path)
            route_method = "GET" if request.method == "HEAD" else request.method
            for method, pattern, handler in self.table:
                match = pattern.match(request.path)
                if match and method == route_method:
                    request.params = list(match.groups())
                    with self.lock:
                        return handler(request)
            raise not_found()
        except ApiError as exc:
            if exc.body is None:
                return empty_response(exc.status)
            return json_response(exc.status, exc.body)

    def _ticket_id(self, request: ApiRequest) -> int:
        ticket_id = int(request.params[0])
        self.store.ticket_record(ticket_id)
        return ticket_id

    def get_session(self, request: ApiRequest) -> HttpResponse:
        return json_response(200, self.store.session_json(request.user_id))

    def list_tickets(self, request: ApiRequest) -> HttpResponse:
        rows = [self.store.ticket_json(ticket_id) for ticket_id in sorted(self.store.tickets)]
        return search(rows, request.query, TICKET_PROPERTIES).response()

    def create_ticket(self, request: ApiRequest) -> HttpResponse:
        ticket_id = self.store.create_ticket(request.body(), request.user_id)
        return _created(f"/Assistance/Ticket/{ticket_id}", ticket_id)

    def get_ticket(self, request: ApiRequest) -> HttpResponse:
        return json_response(200, self.store.ticket_json(self._ticket_id(request)))

    def patch_ticket(self, request: ApiRequest) -> HttpResponse:
        ticket_id = self._ticket_id(request)
        self.store.patch_ticket(ticket_id, request.body(), ignore_status=request.ignore_status_change)
        return json_response(200, self.store.ticket_json(ticket_id))

    def delete_ticket(self, request: ApiRequest) -> HttpResponse:
        ticket = self.store.ticket_record(self._ticket_id(request))
        if request.query.get("force", "").lower() in ("1", "true"):
            del self.store.tickets[ticket.id]
        else:
            ticket.is_deleted = True
        return empty_response(204)

    def list_team(self, request: ApiRequest) -> HttpResponse:
        return json_response(200, self.store.team_json(self._ticket_id(request)))

    def list_team_role(self, request: ApiRequest) -> HttpResponse:
        # GLPI filters a PHP array without re-indexing it: when the kept members
        # are not the first ones, PHP encodes the result as an object keyed by position.
        members = self.store.team_json(self._ticket_id(request))
        kept = {index: member for index, member in enumerate(members) if member["role"] == request.params[1].lower()}
        if list(kept) == list(range(len(kept))):
            return json_response(200, list(kept.values()))
        return json_response(200, {str(index): member for index, member in kept.items()})

    def add_team_member(self, request: ApiRequest) -> HttpResponse:
        self.store.add_member(self._ticket_id(request), request.body())
        return empty_response(201)

    def remove_team_member(self, request: ApiRequest) -> HttpResponse:
        self.store.remove_member(self._ticket_id(request), request.body())
        return empty_response(200)

    def _kind(self, request: ApiRequest) -> str:
        kind = TIMELINE_KINDS.get(request.params[1].lower())
        if kind is None:
            raise not_found()
        return kind

    def get_timeline(self, request: ApiRequest) -> HttpResponse:
        return json_response(200, self.store.timeline_json(self._ticket_id(request)))

    def get_timeline_kind(self, request: ApiRequest) -> HttpResponse:
        return json_response(200, self.store.timeline_json(self._ticket_id(request), self._kind(request)))

    def get_timeline_item(self, request: ApiRequest) -> HttpResponse:
        ticket_id, kind = self._ticket_id(request), self._kind(request)
        for wrapper in self.store.timeline_json(ticket_id, kind):
            if wrapper["item"]["id"] == int(request.params[2]):
                return json_response(200, wrapper["item"])
        raise not_found()

    def add_timeline_item(self, request: ApiRequest) -> HttpResponse:
        ticket_id, kind = self._ticket_id(request), self._kind(request)
        body = request.body()
        content = body.get("content") if isinstance(body.get("content"), str) else ""
        if kind == "Followup":
            is_private = body.get("is_private") is True
            item_id = self.store.add_followup(ticket_id, content, request.user_id, is_private=is_private)
        elif kind == "Solution":
            item_id = self.store.add_solution(
                ticket_id, content, request.user_id, ignore_status=request.ignore_status_change
            )
        else:
            # NOTE: tasks, documents and validations are not simulated; GLPI itself accepts them.
            raise not_found()
        return _created(f"/Assistance/Ticket/{ticket_id}/Timeline/{kind}/{item_id}", item_id)

    def list_categories(self, request: ApiRequest) -> HttpResponse:
        rows = [self.store.category_json(category_id) for category_id in sorted(self.store.categories)]
        result = search(rows, request.query, CATEGORY_PROPERTIES)
        if not result.filtered:
            # GLPI 11.0.6 bug: in an unfiltered list, a parent whose child is on the
            # same page comes back with completename, level, comment and dates missing.
            parents_on_page = {row["parent"]["id"] for row in result.rows if row.get("parent")}
            result.rows = [
                self.store.category_json(row["id"], joined_as_parent=row["id"] in parents_on_page)
                for row in result.rows
            ]
        return result.response()

    def get_category(self, request: ApiRequest) -> HttpResponse:
        category_id = int(request.params[0])
        if category_id not in self.store.categories:
            raise not_found()
        return json_response(200, self.store.category_json(category_id))

    def list_users(self, request: ApiRequest) -> HttpResponse:
        rows = [self.store.user_json(user_id) for user_id in sorted(self.store.user_names)]
        return search(rows, request.query, USER_PROPERTIES).response()

    def get_me(self, request: ApiRequest) -> HttpResponse:
        return json_response(200, self.store.user_json(request.user_id))

    def get_user(self, request: ApiRequest) -> HttpResponse:
        user_id = int(request.params[0])
        if user_id not in self.store.user_names:
            raise not_found()
        return json_response(200, self.store.user_json(user_id))

    def get_user_by_login(self, request: ApiRequest) -> HttpResponse:
        for user_id, login in self.store.user_names.items():
            if login.lower() == request.params[0].lower():
                return json_response(200, self.store.user_json(user_id))
        raise not_found()
