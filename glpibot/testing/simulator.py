"""A GLPI 11 high-level API (v2) simulator served over real HTTP on 127.0.0.1.

Tests and the demo use it in place of a GLPI server. It follows what a real
GLPI 11.0.6 sends, quirks included: 400 "Invalid OAuth token" for expired
tokens, 206 with `Content-Range` for partial lists, an empty 500 for a string
status or a `team` filter, JSON bodies ignored unless `Content-Type` is
exactly `application/json`.

Seeding methods (`add_ticket`, `set_status`, ...) change the data directly,
without HTTP, and are not counted. Every HTTP request under `/api.php` is
recorded in `requests`; other paths (`/health`, which returns 200 "ok"
without authentication) go to `other_requests`. Faults (`add_fault`) apply
to both.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any, Callable, Iterable

from glpibot.testing import canaries
from glpibot.testing.responses import HttpResponse, json_response
from glpibot.testing.faults import Fault, FaultSet
from glpibot.testing.server import RecordedRequest, SimulatorServer
from glpibot.testing.oauth import OAuthServer
from glpibot.testing.routes import ApiRequest, ApiRoutes
from glpibot.testing.store import Store

# The bot's default password and the default client secret are canaries, so a leak of either is found.
DEFAULT_USERS: dict[str, tuple[int, str]] = {"homelab-bot": (7, canaries.BOT_PASSWORD), "tech": (4, "tech")}
HUMAN_USER_ID = 4  # the technician who files seeded tickets and writes human follow-ups

# Every simulator created in this process, and callbacks run with each one
# just before it stops. The test suite's secret scanner uses both to read the
# follow-ups and solutions of every simulator.
INSTANCES: "weakref.WeakSet[GlpiSimulator]" = weakref.WeakSet()
STOP_HOOKS: list[Callable[["GlpiSimulator"], None]] = []


class GlpiSimulator:
    """Serve GLPI's v2 API on 127.0.0.1 from an in-memory store; see the module docstring.

    `users` maps a login to (user id, password). A test may replace a user's
    password in `sim.users` while the simulator runs, and the token endpoint
    checks the new one from then on.
    """

    def __init__(
        self,
        *,
        client_id: str = "glpibot-client",
        client_secret: str = canaries.CLIENT_SECRET,
        users: dict[str, tuple[int, str]] | None = None,
        token_lifetime_s: int = 3600,
        issue_refresh_token: bool = True,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.users = dict(DEFAULT_USERS if users is None else users)
        self.host = host
        self.port = port
        self.lock = threading.RLock()
        self.store = Store(self.users)
        self.oauth = OAuthServer(
            client_id=client_id,
            client_secret=client_secret,
            users=self.users,
            token_lifetime_s=token_lifetime_s,
            issue_refresh_token=issue_refresh_token,
        )
        self.routes = ApiRoutes(self.store, self.oauth, self.lock)
        self.faults = FaultSet()
        self._requests: list[RecordedRequest] = []
        self._other_requests: list[RecordedRequest] = []
        self._server: SimulatorServer | None = None
        self.add_category("Automation")
        self.add_category("Homelab Bot", parent_id=1)
        INSTANCES.add(self)

    # Lifecycle

    @property
    def url(self) -> str:
        """GLPI's root URL; the API is at url + "/api.php"."""
        if self._server is None:
            raise RuntimeError("the simulator is not started; call start() first")
        return f"http://{self.host}:{self._server.server_address[1]}"

    def start(self) -> "GlpiSimulator":
        if self._server is None:
            self._server = SimulatorServer((self.host, self.port), self)
            self._server.start()
        return self

    def stop(self) -> None:
        for hook in list(STOP_HOOKS):
            hook(self)
        if self._server is not None:
            self._server.stop()
            self._server = None

    def __enter__(self) -> "GlpiSimulator":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # Seeding, without HTTP

    def add_category(self, name: str, parent_id: int | None = None) -> int:
        """Add an ITIL category; its completename is built as "Parent > Child"."""
        with self.lock:
            return self.store.add_category(name, parent_id, comment=f"{name} tickets")

    def add_ticket(
        self,
        *,
        name: str,
        content: str,
        category_id: int | None = 2,
        status: int = 1,
        assigned_user_ids: Iterable[int] = (),
        is_deleted: bool = False,
        entity_auto_close: bool = False,
    ) -> int:
        """Add a ticket as a technician filing it in the UI (user 4 is its requester).

        Assigning a user to a New ticket moves it to status 2, as GLPI does.
        `entity_auto_close` makes a solution close the ticket (status 6) at once.
        """
        with self.lock:
            ticket_id = self.store.add_ticket(
                name=name,
                content=content,
                category_id=category_id,
                status=status,
                recipient_id=HUMAN_USER_ID,
                is_deleted=is_deleted,
                entity_auto_close=entity_auto_close,
            )
            self.store.attach(ticket_id, "requester", HUMAN_USER_ID)
            for user_id in assigned_user_ids:
                self.store.attach(ticket_id, "assigned", user_id)
            return ticket_id

    def ticket(self, ticket_id: int) -> dict[str, Any]:
        """Return the ticket as GET /Assistance/Ticket/{id} would; KeyError when it does not exist."""
        with self.lock:
            if ticket_id not in self.store.tickets:
                raise KeyError(f"ticket {ticket_id} does not exist")
            return self.store.ticket_json(ticket_id)

    def followups(self, ticket_id: int) -> list[dict[str, Any]]:
        """Return the bare follow-up items of a ticket, oldest first."""
        with self.lock:
            return [self.store.followup_json(item) for item in self.store.followups.values() if item.ticket_id == ticket_id]

    def solutions(self, ticket_id: int) -> list[dict[str, Any]]:
        with self.lock:
            return [self.store.solution_json(item) for item in self.store.solutions.values() if item.ticket_id == ticket_id]

    def set_status(self, ticket_id: int, status: int) -> None:
        """Change a ticket's status as a human in the UI would, with GLPI's date side effects."""
        with self.lock:
            if ticket_id not in self.store.tickets:
                raise KeyError(f"ticket {ticket_id} does not exist")
            if status not in range(1, 7):
                raise ValueError(f"unknown ticket status {status}")
            self.store.change_status(self.store.tickets[ticket_id], status)

    def assign(self, ticket_id: int, user_id: int) -> None:
        """Assign a user as a human in the UI would; a New ticket moves to status 2."""
        with self.lock:
            if ticket_id not in self.store.tickets:
                raise KeyError(f"ticket {ticket_id} does not exist")
            self.store.attach(ticket_id, "assigned", user_id)

    def add_human_followup(self, ticket_id: int, content: str, user_id: int = HUMAN_USER_ID) -> int:
        """Add a follow-up written by a person; from the requester it takes a Pending ticket out of Pending."""
        with self.lock:
            if ticket_id not in self.store.tickets:
                raise KeyError(f"ticket {ticket_id} does not exist")
            return self.store.add_followup(ticket_id, content, user_id)

    # Observation

    @property
    def requests(self) -> list[RecordedRequest]:
        """A copy of the API requests received so far, in order."""
        with self.lock:
            return list(self._requests)

    @property
    def other_requests(self) -> list[RecordedRequest]:
        """A copy of the requests outside /api.php (for example /health)."""
        with self.lock:
            return list(self._other_requests)

    @property
    def request_count(self) -> int:
        """How many API requests arrived, token requests included; /health is not counted."""
        with self.lock:
            return len(self._requests)

    def count(self, method: str | None = None, path: str | None = None) -> int:
        """Count recorded API requests by method and exact path."""
        return sum(
            1
            for request in self.requests
            if (method is None or request.method == method) and (path is None or request.path == path)
        )

    def reset_requests(self) -> None:
        with self.lock:
            self._requests.clear()
            self._other_requests.clear()

    def issued_tokens(self) -> list[str]:
        """Return every access and refresh token issued so far, so tests can check that none leaks."""
        with self.lock:
            return list(self.oauth.issued)

    # Faults

    def add_fault(self, fault: Fault) -> None:
        self.faults.add(fault)

    def clear_faults(self) -> None:
        self.faults.clear()

    def expire_tokens(self) -> None:
        """Refuse every token issued so far with 400 "Invalid OAuth token", as GLPI does for expired ones."""
        self.oauth.expire_tokens()

    def revoke_refresh_tokens(self) -> None:
        self.oauth.revoke_refresh_tokens()

    # Called by the HTTP layer

    def record(self, request: RecordedRequest, *, api: bool) -> None:
        with self.lock:
            (self._requests if api else self._other_requests).append(request)

    def respond_api(self, request: ApiRequest) -> HttpResponse:
        return self.routes.handle(request, self._api_index)

    def _api_index(self) -> HttpResponse:
        versions = [{"api_version": "1", "version": "1.0.0", "endpoint": f"{self.url}/api.php/v1"}] + [
            {"api_version": "2", "version": f"2.{minor}.0", "endpoint": f"{self.url}/api.php/v2.{minor}"}
            for minor in range(3)
        ]
        return json_response(200, {"message": "Welcome to GLPI API", "api_versions": versions})

    def __repr__(self) -> str:
        where = self.url if self._server is not None else "not started"
        return f"GlpiSimulator({where}, {len(self.store.tickets)} tickets)"

