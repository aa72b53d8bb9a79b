"""OAuth2 tokens for the GLPI client: password and refresh_token grants, renewal rules and the token cache.

A pass is a new process every minute, so the token is cached in a file
(JSON, mode 0600, replaced atomically) and reused until it is about to
expire. Every token request adds rows to GLPI's database, which is why
a pass must not log in again without a reason.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import requests

from glpibot.config import GlpiSettings
from glpibot.errors import GlpiAuthError, GlpiError
from glpibot.redact import redact, register_secret

logger = logging.getLogger(__name__)

TOKEN_PATH = "/token"
RENEWAL_MARGIN_S = 60.0  # renew a token that has less than this left (or a third of its lifetime, if shorter)
DEFAULT_LIFETIME_S = 3600.0  # GLPI 11 issues one-hour access tokens

TokenPoster = Callable[[dict[str, str]], requests.Response]


@dataclass(frozen=True)
class Token:
    """An access token, its refresh token (GLPI may issue none) and its expiry in clock seconds."""

    access_token: str
    refresh_token: str | None
    expires_at: float
    lifetime_s: float = DEFAULT_LIFETIME_S

    def needs_renewal(self, now: float) -> bool:
        """Return True when less than the renewal margin is left before expiry."""
        margin = min(RENEWAL_MARGIN_S, self.lifetime_s / 3)
        return self.expires_at - now < margin

    def __repr__(self) -> str:
        return f"Token(expires_at={self.expires_at:.0f}, refresh_token={'yes' if self.refresh_token else 'no'})"


class TokenCache:
    """The token file shared by passes; ignored when it belongs to another GLPI URL, client or user."""

    def __init__(self, path: Path, identity: dict[str, str]) -> None:
        self.path = path
        self.identity = identity

    def load(self) -> Token | None:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            logger.warning("token cache %s is unreadable (%s); logging in again", self.path, type(exc).__name__)
            return None
        if not isinstance(data, dict) or data.get("identity") != self.identity:
            return None
        try:
            token = Token(
                access_token=str(data["access_token"]),
                refresh_token=str(data["refresh_token"]) if data.get("refresh_token") else None,
                expires_at=float(data["expires_at"]),
                lifetime_s=float(data.get("expires_in") or DEFAULT_LIFETIME_S),
            )
        except (KeyError, TypeError, ValueError):
            logger.warning("token cache %s has an unexpected shape; logging in again", self.path)
            return None
        register_secret(token.access_token)
        register_secret(token.refresh_token)
        return token

    def save(self, token: Token) -> None:
        """Write the token atomically with mode 0600; a failure is logged and the pass goes on."""
        data = {
            "access_token": token.access_token,
            "refresh_token": token.refresh_token,
            "expires_at": token.expires_at,
            "expires_in": token.lifetime_s,
            "identity": self.identity,
        }
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=".glpi-token-", suffix=".tmp")
            try:
                with os.fdopen(handle, "w", encoding="utf-8") as stream:
                    json.dump(data, stream)
                    stream.flush()
                    os.fsync(stream.fileno())
                os.chmod(temporary, 0o600)
                os.replace(temporary, self.path)
            except BaseException:
                Path(temporary).unlink(missing_ok=True)
                raise
        except OSError as exc:
            logger.warning("cannot write token cache %s: %s", self.path, exc.strerror)

    def clear(self) -> None:
        try:
            self.path.unlink(missing_ok=True)
        except OSError as exc:
            logger.warning("cannot remove token cache %s: %s", self.path, exc.strerror)


def _oauth_body(response: requests.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


class TokenManager:
    """Hand out a valid access token and renew it by GLPI's rules.

    Renewal before use: when less than the margin is left, use the refresh
    token if GLPI issued one, else the password grant. After GLPI rejects a
    token: one renewal (refresh token once, then one password login if the
    refresh token is rejected). When a token obtained that way is rejected
    too, or GLPI rejects the credentials, the manager stops logging in for
    the rest of its lifetime and raises GlpiAuthError.
    """

    def __init__(
        self,
        settings: GlpiSettings,
        *,
        client_secret: str,
        password: str,
        post: TokenPoster,
        cache: TokenCache | None,
        clock: Callable[[], float],
    ) -> None:
        self.settings = settings
        self._client_secret = client_secret
        self._password = password
        self._post = post
        self._cache = cache
        self._clock = clock
        self._token: Token | None = None
        self._cache_read = False
        self._broken: str | None = None  # why logging in again is pointless

    def __repr__(self) -> str:
        return f"TokenManager(user={self.settings.username!r}, client_id={self.settings.client_id!r})"

    def current(self) -> str:
        """Return an access token that is not about to expire, renewing or logging in when needed."""
        self._check_not_broken()
        if self._token is None and not self._cache_read and self._cache is not None:
            self._cache_read = True
            self._token = self._cache.load()
            if self._token is not None:
                logger.debug("using the cached GLPI token")
        if self._token is None:
            self._store(self._password_grant())
        elif self._token.needs_renewal(self._clock()):
            logger.debug("GLPI token expires in %.0f s; renewing it before use", self._token.expires_at - self._clock())
            self._store(self._renew(self._token))
        assert self._token is not None
        return self._token.access_token

    def renew_after_rejection(self) -> str:
        """Drop the rejected token, get a new one and return it. The client calls this once per rejected request."""
        self._check_not_broken()
        rejected = self._token
        self._token = None
        if self._cache is not None:
            self._cache.clear()
        logger.debug("dropped the rejected GLPI token; requesting a new one")
        self._store(self._renew(rejected) if rejected is not None else self._password_grant())
        assert self._token is not None
        return self._token.access_token

    def rejected_after_renewal(self, http_status: int, code: str | None) -> GlpiAuthError:
        """Record that a fresh token was rejected too and return the error to raise. No more logins follow."""
        self._token = None
        if self._cache is not None:
            self._cache.clear()
        self._broken = (
            f"GLPI rejected a freshly issued token for bot user '{self.settings.username}' "
            f"(HTTP {http_status} {code or ''}); check that the web server passes the Authorization header "
            f"to GLPI and that OAuth client '{self.settings.client_id}' has the api scope"
        )
        return GlpiAuthError(self._broken, path=TOKEN_PATH, http_status=http_status, error_code=code)

    def _check_not_broken(self) -> None:
        if self._broken is not None:
            raise GlpiAuthError(self._broken, path=TOKEN_PATH)

    def _store(self, token: Token) -> None:
        self._token = token
        if self._cache is not None:
            self._cache.save(token)

    def _renew(self, token: Token) -> Token:
        if token.refresh_token:
            renewed = self._refresh_grant(token.refresh_token)
            if renewed is not None:
                return renewed
            logger.info("GLPI rejected the refresh token; logging in with the password instead")
        return self._password_grant()

    def _password_grant(self) -> Token:
        form = {
            "grant_type": "password",
            "client_id": self.settings.client_id,
            "client_secret": self._client_secret,
            "username": self.settings.username,
            "password": self._password,
            "scope": "api",
        }
        response = self._post(form)
        if response.status_code == 200:
            return self._token_from(response)
        raise self._failure(response, "password")

    def _refresh_grant(self, refresh_token: str) -> Token | None:
        """Return a token from the refresh grant, or None when GLPI rejects the refresh token."""
        form = {
            "grant_type": "refresh_token",
            "client_id": self.settings.client_id,
            "client_secret": self._client_secret,
            "refresh_token": refresh_token,
            "scope": "api",
        }
        response = self._post(form)
        if response.status_code == 200:
            return self._token_from(response)
        if response.status_code == 400 and _oauth_body(response).get("error") == "invalid_grant":
            return None
        raise self._failure(response, "refresh_token")

    def _token_from(self, response: requests.Response) -> Token:
        body = _oauth_body(response)
        # Register both tokens before anything else looks at them, even when the body turns out unusable.
        for field in ("access_token", "refresh_token"):
            if isinstance(body.get(field), str):
                register_secret(body[field])
        access = body.get("access_token")
        if not isinstance(access, str) or not access:
            raise GlpiError(
                "GLPI's token endpoint returned 200 without an access_token; check glpi.url",
                method="POST",
                path=TOKEN_PATH,
                http_status=response.status_code,
            )
        refresh = body.get("refresh_token") if isinstance(body.get("refresh_token"), str) else None
        expires_in = body.get("expires_in")
        lifetime = float(expires_in) if isinstance(expires_in, (int, float)) and expires_in > 0 else DEFAULT_LIFETIME_S
        logger.debug("got a GLPI token valid for %.0f s (refresh token: %s)", lifetime, "yes" if refresh else "no")
        return Token(access, refresh, self._clock() + lifetime, lifetime)

    def _failure(self, response: requests.Response, grant: str) -> GlpiError:
        """Build the error for a failed token request; rejected credentials stop further logins."""
        body = _oauth_body(response)
        error = str(body.get("error") or "") or None
        description = redact(str(body.get("error_description") or body.get("message") or "")) or None
        status = response.status_code
        details = ": ".join(part for part in (error, description) if part) or "no error details"
        common = {"method": "POST", "path": TOKEN_PATH, "http_status": status, "error_code": error, "title": description}
        if status >= 500:
            return GlpiError(
                f"GLPI's token endpoint failed with HTTP {status} ({details}); this is a server-side problem "
                "such as unreadable OAuth key files, not rejected credentials",
                **common,
            )
        who = f"bot user '{self.settings.username}' with OAuth client '{self.settings.client_id}'"
        if error == "invalid_client":
            advice = "check glpi.client_id and the client secret"
        elif error == "invalid_grant":
            advice = (
                "check glpi.username and the bot user's password"
                if grant == "password"
                else "check the bot user's account"
            )
        elif error == "unauthorized_client":
            advice = f"allow the '{grant}' grant on the OAuth client in GLPI"
        else:
            advice = "check the OAuth client settings in GLPI"
        self._broken = f"GLPI rejected the credentials of {who} (HTTP {status}, {details}); {advice}"
        return GlpiAuthError(self._broken, **common)
