"""The simulator's OAuth2 token endpoint and token registry (password and refresh_token grants)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from glpibot.testing import canaries
from glpibot.testing.responses import (
    NOT_AUTHENTICATED,
    OAUTH_CONTENT_TYPE,
    PERMISSION_TITLE,
    SCOPE_DETAIL,
    HttpResponse,
    ApiError,
    error_body,
    json_response,
)

KNOWN_SCOPES = frozenset({"email", "user", "api", "inventory", "status", "graphql"})


@dataclass
class _AccessToken:
    user_id: int
    scopes: frozenset[str]
    expires_at: float
    revoked: bool = False


@dataclass
class _RefreshToken:
    user_id: int
    scopes: frozenset[str]


def _oauth_error(status: int, error: str, description: str) -> HttpResponse:
    return json_response(status, {"error": error, "error_description": description}, content_type=OAUTH_CONTENT_TYPE)


def required_scope(path: str) -> str:
    """Return the scope a route needs, by GLPI's route-to-scope rule."""
    lowered = path.lower()
    if lowered.startswith("/administration/user/me"):
        return "user"
    if lowered.startswith("/status"):
        return "status"
    if lowered.startswith("/graphql"):
        return "graphql"
    return "api"


class OAuthServer:
    """The token registry: it issues and checks tokens. Access tokens expire after `token_lifetime_s` of wall time.

    Every token starts with the canary prefix (see canaries.py), so a leaked token is found by its shape.
    """

    def __init__(
        self,
        *,
        client_id: str,
        client_secret: str,
        users: dict[str, tuple[int, str]],
        token_lifetime_s: int,
        issue_refresh_token: bool,
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.users = users
        self.token_lifetime_s = token_lifetime_s
        self.issue_refresh_token = issue_refresh_token
        self._lock = threading.Lock()
        self._access: dict[str, _AccessToken] = {}
        self._refresh: dict[str, _RefreshToken] = {}
        self.issued: list[str] = []  # every access and refresh token value, for leak checks in tests

    def token_endpoint(self, params: dict[str, Any]) -> HttpResponse:
        """Respond to POST /token with form or JSON parameters."""
        grant_type = params.get("grant_type")
        if grant_type not in ("password", "refresh_token"):
            return _oauth_error(
                400, "unsupported_grant_type", "The authorization grant type is not supported by the authorization server."
            )
        if params.get("client_id") != self.client_id or params.get("client_secret") != self.client_secret:
            return _oauth_error(401, "invalid_client", "Client authentication failed")
        requested = frozenset(str(params.get("scope") or "").split()) & KNOWN_SCOPES
        if grant_type == "password":
            return self._password_grant(params, requested)
        return self._refresh_grant(params, requested)

    def _password_grant(self, params: dict[str, Any], scopes: frozenset[str]) -> HttpResponse:
        username, password = params.get("username"), params.get("password")
        if not username or not password:
            return _oauth_error(400, "invalid_request", "The request is missing a required parameter: username or password.")
        account = self.users.get(str(username))
        if account is None or account[1] != password:
            return _oauth_error(400, "invalid_grant", "The user credentials were incorrect.")
        return self._issue(account[0], scopes)

    def _refresh_grant(self, params: dict[str, Any], scopes: frozenset[str]) -> HttpResponse:
        value = params.get("refresh_token")
        with self._lock:
            record = self._refresh.pop(str(value), None) if value else None  # refresh tokens rotate
        if record is None:
            return _oauth_error(400, "invalid_grant", "The refresh token is invalid.")
        return self._issue(record.user_id, scopes & record.scopes if scopes else record.scopes)

    def _issue(self, user_id: int, scopes: frozenset[str]) -> HttpResponse:
        access = canaries.new_access_token()
        body: dict[str, Any] = {"token_type": "Bearer", "expires_in": self.token_lifetime_s, "access_token": access}
        with self._lock:
            self._access[access] = _AccessToken(user_id, scopes, time.time() + self.token_lifetime_s)
            self.issued.append(access)
            if self.issue_refresh_token:
                refresh = canaries.new_refresh_token()
                self._refresh[refresh] = _RefreshToken(user_id, scopes)
                self.issued.append(refresh)
                body["refresh_token"] = refresh
        return json_response(200, body, content_type=OAUTH_CONTENT_TYPE)

    def authenticate(self, authorization: str | None, path: str) -> int:
        """Return the user id behind a Bearer header; otherwise raise the ApiError that GLPI would return."""
        if not authorization or not authorization.lower().startswith("bearer "):
            raise ApiError(401, dict(NOT_AUTHENTICATED))
        value = authorization[len("bearer ") :].strip()
        with self._lock:
            record = self._access.get(value)
        if record is None:
            raise ApiError(400, error_body("ERROR_INVALID_PARAMETER", "Invalid OAuth token", "Error while decoding from JSON"))
        if record.revoked or record.expires_at <= time.time():
            raise ApiError(400, error_body("ERROR_INVALID_PARAMETER", "Invalid OAuth token", "Access token has been revoked"))
        if required_scope(path) not in record.scopes:
            raise ApiError(403, error_body("ERROR_RIGHT_MISSING", PERMISSION_TITLE, SCOPE_DETAIL))
        return record.user_id

    def expire_tokens(self) -> None:
        """Make every access token issued so far invalid."""
        with self._lock:
            for record in self._access.values():
                record.revoked = True

    def revoke_refresh_tokens(self) -> None:
        with self._lock:
            self._refresh.clear()
