"""GLPI 11 high-level REST API (v2) client: the calls one poll pass makes.

Rules that come from how GLPI 11 behaves:
- JSON bodies go out with `Content-Type: application/json` exactly, because
  GLPI ignores a body whose header carries a charset.
- A 401, or a 400 titled "Invalid OAuth token" (GLPI's response to an expired
  token), means GLPI did not act: the client renews the token and sends the
  request once more. That is the only case where a write is sent twice.
- GETs are retried with exponential backoff on connection errors, timeouts
  and 502/503/504. Writes are never retried, because the first one may have
  been applied.
- Lists are always paged with an explicit `limit`. GLPI returns 206 with a
  `Content-Range` header when more rows exist.
- Statuses are sent as integers; GLPI 11.0.6 fails with HTTP 500 on a string.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import requests

from glpibot.config import GlpiSettings
from glpibot.errors import GlpiAuthError, GlpiError, GlpiNotFoundError, GlpiStatusNotChangedError, GlpiUnreachableError
from glpibot.glpi.auth import TOKEN_PATH, TokenCache, TokenManager
from glpibot.glpi.watchdog import RequestWatchdog, watch_session
from glpibot.redact import redact, register_secret

logger = logging.getLogger(__name__)

API_VERSION_PREFIX = "/v2"  # the newest 2.x API of the server, so a future 3.x cannot change responses under us
RETRY_STATUSES = frozenset({502, 503, 504})
_CONTENT_RANGE = re.compile(r"^\s*(\d+)-(-?\d+)/(\d+)\s*$")
_MAX_PAGES = 10_000  # stops a server that never reports the end of a list


def _status_int(status: object) -> int:
    if isinstance(status, bool) or not isinstance(status, int):
        raise TypeError(f"a GLPI status must be an int, got {status!r}")
    return status


def _body_of(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _token_rejected(response: requests.Response) -> bool:
    """Return True for GLPI's responses to a missing, invalid or expired token."""
    if response.status_code == 401:
        return True
    body = _body_of(response) if response.status_code == 400 else None
    return isinstance(body, dict) and body.get("title") == "Invalid OAuth token"


def _connection_reason(exc: requests.ConnectionError) -> str:
    """Return a short cause such as "Connection refused", without urllib3's object reprs."""
    text = str(exc)
    errno_text = re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", text)
    if errno_text:
        return errno_text.group(1).strip()
    for marker, reason in (
        ("RemoteDisconnected", "connection closed without an answer"),
        ("ConnectionResetError", "connection reset"),
        ("Connection reset", "connection reset"),
    ):
        if marker in text:
            return reason
    return type(exc).__name__


def _content_range_total(header: str | None) -> int | None:
    match = _CONTENT_RANGE.match(header or "")
    return int(match.group(3)) if match else None


def error_from_response(method: str, path: str, response: requests.Response) -> GlpiError:
    """Build a GlpiError from an error response, with GLPI's status, title, detail and messages."""
    body = _body_of(response)
    code = title = None
    detail: object = None
    messages: list[str] = []
    if isinstance(body, dict):
        code = body.get("status") or body.get("error")
        title = body.get("title") or body.get("error_description")
        detail = body.get("detail")
        for item in body.get("additional_messages") or []:
            if isinstance(item, dict) and item.get("message"):
                messages.append(str(item["message"]))

    text = f"GLPI {method} {path} failed with HTTP {response.status_code}"
    if code:
        text += f" {code}"
    if title:
        text += f": {title}"
    if detail:
        text += f" ({detail})"
    if messages:
        text += "; " + "; ".join(messages)
    if response.status_code >= 500 and not response.content:
        text += " (empty answer: an internal GLPI error; see GLPI's php-errors log)"
    elif response.status_code == 403 and detail and "scope" in str(detail):
        text += "; allow the 'api' scope on the OAuth client in GLPI"

    cls = {401: GlpiAuthError, 404: GlpiNotFoundError}.get(response.status_code, GlpiError)
    return cls(
        redact(text),
        method=method,
        path=path,
        http_status=response.status_code,
        error_code=str(code) if code else None,
        title=redact(str(title)) if title else None,
        detail=detail,
    )


def credentials_fingerprint(settings: GlpiSettings, client_secret: str, password: str) -> str:
    """Return a slow salted hash of the secrets, so a cached token is dropped when they change.

    Without it a token cached under the old password would keep working
    until it expires, hiding from the operator that the new one is wrong.
    """
    salt = f"glpibot token cache|{settings.url}|{settings.client_id}|{settings.username}".encode()
    secret = f"{client_secret}\0{password}".encode()
    return hashlib.pbkdf2_hmac("sha256", secret, salt, 20_000).hex()


class GlpiClient:
    """A GLPI v2 client for the bot user; see the module docstring for its retry and token rules."""

    def __init__(
        self,
        settings: GlpiSettings,
        *,
        client_secret: str,
        password: str,
        token_cache: Path | None = None,
        session: requests.Session | None = None,
        clock: Callable[[], float] = time.time,
        max_get_retries: int = 3,
        backoff_s: float = 0.5,
    ) -> None:
        register_secret(client_secret)
        register_secret(password)
        self.settings = settings
        self.max_get_retries = max_get_retries
        self.backoff_s = backoff_s
        self._api_url = settings.api_url + API_VERSION_PREFIX
        self._owns_session = session is None
        self._session = session if session is not None else requests.Session()
        self._watchdog = RequestWatchdog()
        if self._owns_session:
            watch_session(self._session, self._watchdog)  # a session passed in keeps its own adapters
        self._request_count = 0
        self._user_id: int | None = None
        identity = {
            "url": settings.url,
            "client_id": settings.client_id,
            "username": settings.username,
            "credentials": credentials_fingerprint(settings, client_secret, password),
        }
        cache = TokenCache(token_cache, identity) if token_cache is not None else None
        self._tokens = TokenManager(
            settings, client_secret=client_secret, password=password, post=self._post_token, cache=cache, clock=clock
        )

    def __repr__(self) -> str:
        return f"GlpiClient(url={self.settings.url!r}, user={self.settings.username!r})"

    def __enter__(self) -> "GlpiClient":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def request_count(self) -> int:
        """HTTP requests sent so far, token requests and retries included."""
        return self._request_count

    def close(self) -> None:
        if self._owns_session:
            self._session.close()

    # Transport

    def _http(self, method: str, url: str, path: str, **kwargs: Any) -> requests.Response:
        """Send one request; connection failures become GlpiUnreachableError without the token."""
        self._request_count += 1
        started = time.monotonic()
        try:
            # timeout_s bounds each socket operation and, through the watchdog, the whole request.
            with self._watchdog.limit(self.settings.timeout_s):
                response = self._session.request(
                    method,
                    url,
                    timeout=self.settings.timeout_s,
                    verify=self.settings.verify_tls,
                    allow_redirects=False,
                    **kwargs,
                )
        except requests.RequestException as exc:
            if not isinstance(exc, requests.Timeout) and not self._watchdog.fired:
                raise self._transport_error(method, path, exc) from None
            raise self._timeout_error(method, path) from None
        if self._watchdog.fired:
            # A response cut off inside its headers still parses, as a complete response with an empty body.
            raise self._timeout_error(method, path)
        logger.debug("%s %s -> %d (%.2f s)", method, path, response.status_code, time.monotonic() - started)
        if 300 <= response.status_code < 400:
            raise GlpiError(
                f"GLPI {method} {path} returned a redirect (HTTP {response.status_code}) to "
                f"{response.headers.get('Location', '?')}; set glpi.url to the final address",
                method=method,
                path=path,
                http_status=response.status_code,
            )
        return response

    def _timeout_error(self, method: str, path: str) -> GlpiUnreachableError:
        maybe = "; the change may have been applied" if method in ("POST", "PATCH", "DELETE") else ""
        return GlpiUnreachableError(
            f"GLPI {method} {path}: no complete response within {self.settings.timeout_s:g} s{maybe}",
            method=method,
            path=path,
        )

    def _transport_error(self, method: str, path: str, exc: requests.RequestException) -> GlpiError:
        if isinstance(exc, requests.ConnectionError):
            reason = _connection_reason(exc)
            return GlpiUnreachableError(
                f"GLPI {method} {path}: cannot reach {self.settings.url} ({reason}); check glpi.url and that GLPI is up",
                method=method,
                path=path,
            )
        return GlpiError(f"GLPI {method} {path} failed: {type(exc).__name__}", method=method, path=path)

    def _post_token(self, form: dict[str, str]) -> requests.Response:
        return self._http("POST", self.settings.api_url + TOKEN_PATH, TOKEN_PATH, data=form, headers={"Accept": "application/json"})

    def _send(self, method: str, path: str, params: dict[str, Any] | None, data: str | None) -> requests.Response:
        """Send with the current token; GETs are retried on connection errors and 502/503/504."""
        attempts = 1 + (self.max_get_retries if method == "GET" else 0)
        for attempt in range(1, attempts + 1):
            headers = {
                "Authorization": f"Bearer {self._tokens.current()}",
                "Accept": "application/json",
                "Accept-Language": "en_GB",  # GLPI translates error titles; token rejections are matched in English
            }
            if data is not None:
                headers["Content-Type"] = "application/json"
            try:
                response = self._http(method, self._api_url + path, path, params=params, data=data, headers=headers)
            except GlpiUnreachableError as exc:
                if attempt == attempts:
                    raise
                reason = str(exc)
            else:
                if response.status_code not in RETRY_STATUSES or attempt == attempts:
                    return response
                reason = f"HTTP {response.status_code}"
            delay = self.backoff_s * 2 ** (attempt - 1)
            logger.warning("%s %s failed (%s); retry %d of %d in %.1f s", method, path, reason, attempt, attempts - 1, delay)
            time.sleep(delay)
        raise AssertionError("unreachable")

    def _call(self, method: str, path: str, *, params: dict[str, Any] | None = None, body: Any = None) -> requests.Response:
        """Send a request and return the 2xx response. A rejected token is renewed once and the request resent once."""
        data = json.dumps(body) if body is not None else None
        response = self._send(method, path, params, data)
        if _token_rejected(response):
            logger.warning(
                "GLPI rejected the access token on %s %s (HTTP %d); renewing it and sending the request once more",
                method,
                path,
                response.status_code,
            )
            self._tokens.renew_after_rejection()
            response = self._send(method, path, params, data)
            if _token_rejected(response):
                error = error_from_response(method, path, response)
                raise self._tokens.rejected_after_renewal(response.status_code, error.error_code)
        if not 200 <= response.status_code < 300:
            raise error_from_response(method, path, response)
        return response

    def _json(self, method: str, path: str, response: requests.Response, kind: type) -> Any:
        body = _body_of(response)
        if not isinstance(body, kind):
            raise GlpiError(
                f"GLPI {method} {path} returned HTTP {response.status_code} without the expected JSON {kind.__name__}",
                method=method,
                path=path,
                http_status=response.status_code,
            )
        return body

    def _created_id(self, path: str, response: requests.Response) -> int:
        body = _body_of(response)
        if isinstance(body, dict) and isinstance(body.get("id"), int):
            return int(body["id"])
        location = re.search(r"/(\d+)$", response.headers.get("Location", ""))
        if location:
            return int(location.group(1))
        raise GlpiError(
            f"GLPI POST {path} returned HTTP {response.status_code} without the new item's id",
            method="POST",
            path=path,
            http_status=response.status_code,
        )

    # API calls

    def user_id(self) -> int:
        """Return the bot user's GLPI id from GET /session, requested once per client."""
        if self._user_id is None:
            body = self._json("GET", "/session", self._call("GET", "/session"), dict)
            if not isinstance(body.get("user_id"), int):
                raise GlpiError("GLPI GET /session returned no user_id", method="GET", path="/session")
            self._user_id = int(body["user_id"])
        return self._user_id

    def category_id(self, category: str | int) -> int:
        """Return the ITIL category id: an id after checking it exists, a name looked up by its full name ("Parent > Child")."""
        if isinstance(category, int) and not isinstance(category, bool):
            return self._checked_category_id(category)
        name = str(category).strip()
        if '"' not in name:
            quoted = f'"{name}"'
        elif "'" not in name:
            quoted = f"'{name}'"
        else:
            raise GlpiError(f"category name {name!r} contains both quote characters; set glpi.category to the category id")

        path = "/Dropdowns/ITILCategory"
        try:
            response = self._call("GET", path, params={"filter": f"completename=={quoted}", "limit": 2})
        except GlpiError as exc:
            if exc.http_status == 404:
                raise GlpiError(
                    f"GLPI has no {path} endpoint (it needs API 2.2); set glpi.category to the category id",
                    method="GET",
                    path=path,
                    http_status=404,
                ) from None
            raise

        rows = self._json("GET", path, response, list)
        total = _content_range_total(response.headers.get("Content-Range"))
        total = len(rows) if total is None else total
        if total == 0 or not rows:
            raise GlpiNotFoundError(
                f"ITIL category {name!r} not found in GLPI; set glpi.category to the full name "
                "as GLPI shows it ('Parent > Child') or to the category id",
                method="GET",
                path=path,
            )
        if total > 1:
            ids = ", ".join(str(row.get("id")) for row in rows)
            raise GlpiError(
                f"{total} ITIL categories are named {name!r} (ids {ids}, ...); set glpi.category to the id",
                method="GET",
                path=path,
            )
        return int(rows[0]["id"])

    def _checked_category_id(self, category_id: int) -> int:
        """Return the id when GLPI has that category; raise GlpiNotFoundError when it has not.

        Before API 2.2 GLPI has no category route at all and answers 404 for
        any id, so a 404 counts as "not found" only when the list route works.
        """
        path = f"/Dropdowns/ITILCategory/{category_id}"
        try:
            self._call("GET", path)
            return category_id
        except GlpiNotFoundError:
            pass
        try:
            self._call("GET", "/Dropdowns/ITILCategory", params={"limit": 1})
        except GlpiNotFoundError:
            logger.warning("GLPI has no ITIL category route (API older than 2.2); using category id %d unchecked", category_id)
            return category_id
        raise GlpiNotFoundError(
            f"ITIL category id {category_id} not found in GLPI; set glpi.category to an existing category id "
            "or to its full name ('Parent > Child')",
            method="GET",
            path=path,
            http_status=404,
        )

    def search_tickets(self, category_id: int, statuses: Sequence[int], *, page_size: int = 50) -> list[dict[str, Any]]:
        """Return every ticket of the category in the statuses, not in the trash, oldest id first."""
        status_ids = [_status_int(status) for status in statuses]
        if not status_ids:
            return []
        if page_size < 1:
            raise ValueError(f"page_size must be 1 or more, got {page_size}")
        path = "/Assistance/Ticket"
        text = f"category.id=={int(category_id)};status.id=in=({','.join(map(str, status_ids))});is_deleted==false"
        tickets: dict[int, dict[str, Any]] = {}
        start = 0
        for _page in range(_MAX_PAGES):
            params = {"filter": text, "sort": "id:asc", "start": start, "limit": page_size}
            response = self._call("GET", path, params=params)
            rows = self._json("GET", path, response, list)
            for row in rows:
                if isinstance(row, dict) and isinstance(row.get("id"), int):
                    tickets.setdefault(row["id"], row)  # rows shift when tickets change between pages
            start += len(rows)
            total = _content_range_total(response.headers.get("Content-Range"))
            more = start < total if total is not None else response.status_code == 206
            if not rows or not more:
                return list(tickets.values())
        raise GlpiError(f"GLPI GET {path} kept returning pages after {_MAX_PAGES} requests", method="GET", path=path)

    def get_ticket(self, ticket_id: int) -> dict[str, Any]:
        path = f"/Assistance/Ticket/{int(ticket_id)}"
        result: dict[str, Any] = self._json("GET", path, self._call("GET", path), dict)
        return result

    def timeline(self, ticket_id: int) -> list[dict[str, Any]]:
        """Return the ticket's timeline items, unwrapped, each with "type" ("Followup", "Solution", ...).

        The item's own `type` field (a solution type, usually null) is replaced by the wrapper's type.
        Items come sorted by (date_creation, id), because GLPI groups them by type.
        """
        path = f"/Assistance/Ticket/{int(ticket_id)}/Timeline"
        items = []
        for entry in self._json("GET", path, self._call("GET", path), list):
            if isinstance(entry, dict) and isinstance(entry.get("item"), dict):
                items.append({**entry["item"], "type": str(entry.get("type") or "")})
            elif isinstance(entry, dict):
                items.append(entry)
        return sorted(items, key=lambda item: (str(item.get("date_creation") or ""), int(item.get("id") or 0)))

    def add_followup(self, ticket_id: int, html: str, *, is_private: bool = False) -> int:
        path = f"/Assistance/Ticket/{int(ticket_id)}/Timeline/Followup"
        followup_id = self._created_id(path, self._call("POST", path, body={"content": html, "is_private": is_private}))
        logger.info("ticket %d: follow-up %d posted", ticket_id, followup_id)
        return followup_id

    def set_status(self, ticket_id: int, status: int) -> dict[str, Any]:
        """PATCH the status as an int and return the ticket; raise GlpiStatusNotChangedError when GLPI kept the old one."""
        requested = _status_int(status)
        path = f"/Assistance/Ticket/{int(ticket_id)}"
        ticket: dict[str, Any] = self._json("PATCH", path, self._call("PATCH", path, body={"status": requested}), dict)
        returned = ticket.get("status")
        got = returned.get("id") if isinstance(returned, dict) else returned
        if got != requested:
            raise GlpiStatusNotChangedError(
                f"ticket {ticket_id}: GLPI accepted the change to status {requested} but the ticket has status {got}; "
                "check the bot profile's ticket update right and life cycle",
                method="PATCH",
                path=path,
                http_status=200,
            )
        logger.info("ticket %d: status set to %d", ticket_id, requested)
        return ticket

    def add_solution(self, ticket_id: int, html: str) -> int:
        path = f"/Assistance/Ticket/{int(ticket_id)}/Timeline/Solution"
        solution_id = self._created_id(path, self._call("POST", path, body={"content": html}))
        logger.info("ticket %d: solution %d posted", ticket_id, solution_id)
        return solution_id
