"""HTTP responses of the GLPI simulator: the response value, GLPI's error bodies and its JSON encoding."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

API_CONTENT_TYPE = "application/json"
OAUTH_CONTENT_TYPE = "application/json; charset=UTF-8"  # GLPI 11.0.6 sends this on /token only

NOT_AUTHENTICATED = {
    "title": "You are not authenticated",
    "detail": "The Authorization header is missing or invalid",
    "status": "ERROR_UNAUTHENTICATED",
}
PERMISSION_TITLE = "You don't have permission to perform this action."
SCOPE_DETAIL = "You do not have the required scope(s) to access this endpoint."


@dataclass
class HttpResponse:
    """One HTTP response before it is written to the socket."""

    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


class ApiError(Exception):
    """An error response raised inside a route. A `body` of None means an empty body."""

    def __init__(self, status: int, body: dict[str, Any] | None) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.body = body


def encode_json(value: Any) -> bytes:
    """Encode like PHP's json_encode with GLPI's flags: `/` is escaped as `\\/`."""
    return json.dumps(value).replace("/", "\\/").encode("utf-8")


def json_response(status: int, value: Any, *, headers: dict[str, str] | None = None, content_type: str = API_CONTENT_TYPE) -> HttpResponse:
    all_headers = {"Content-Type": content_type}
    all_headers.update(headers or {})
    return HttpResponse(status, encode_json(value), all_headers)


def empty_response(status: int) -> HttpResponse:
    """Return a response with no body at all, like GLPI's 500 after an uncaught PHP error."""
    return HttpResponse(status, b"", {"Content-Type": API_CONTENT_TYPE})


def error_body(code: str, title: str, detail: Any = None, messages: list[str] | None = None) -> dict[str, Any]:
    """Build GLPI's error body; `messages` become `additional_messages` with priority error."""
    body: dict[str, Any] = {"status": code, "title": title, "detail": detail}
    if messages:
        body["additional_messages"] = [{"priority": "error", "message": message} for message in messages]
    return body


def invalid_parameter(title: str, detail: Any = None, messages: list[str] | None = None) -> ApiError:
    return ApiError(400, error_body("ERROR_INVALID_PARAMETER", title, detail, messages))


def not_found() -> ApiError:
    return ApiError(404, error_body("ERROR_ITEM_NOT_FOUND", "Item not found"))


def server_failure(title: str, messages: list[str]) -> ApiError:
    """Return the error for a rejected write: HTTP 500 with GLPI's session messages."""
    return ApiError(500, error_body("ERROR", title, None, messages))


def empty_server_error() -> ApiError:
    """Return the error for an uncaught server-side exception: HTTP 500 with an empty body."""
    return ApiError(500, None)
