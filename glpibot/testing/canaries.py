"""Canary secrets: the default secret values of the simulator and the test suite.

Each value is distinctive, so the test suite's scanner can search every file,
log record, follow-up and command output of a test run for it. A hit means
a secret escaped redaction. Every canary starts with `CANARY`, so even a
truncated copy is easy to spot by eye. Tokens issued by the simulator start
with TOKEN_PREFIX followed by random characters. Their values are not known
in advance, so the scanner matches them by shape with TOKEN_PATTERN.

These values protect nothing. They exist only to be found.
"""

from __future__ import annotations

import re
import secrets

CLIENT_SECRET = "CANARY-client-secret-7f3a"  # the simulator's default OAuth client secret
BOT_PASSWORD = "CANARY-bot-password-91c2"  # the simulator's default password of the bot user
MEMORY_TOKEN = "CANARY-memory-token-5be0"  # the memory service bearer token in tests
SSH_KEY_PASSPHRASE = "CANARY-ssh-passphrase-d41e"  # passphrase of the sshd fixture's encrypted client key

TOKEN_PREFIX = "CANARYTOKEN-"
# Eight or more token characters after the prefix, so the prefix named alone in a message is no hit.
TOKEN_PATTERN = re.compile(re.escape(TOKEN_PREFIX) + r"[A-Za-z0-9_~+/=.-]{8,}")

VALUES: dict[str, str] = {
    "client secret": CLIENT_SECRET,
    "bot password": BOT_PASSWORD,
    "memory token": MEMORY_TOKEN,
    "SSH key passphrase": SSH_KEY_PASSPHRASE,
}


def new_access_token() -> str:
    """Return a fresh access token: the canary prefix and 48 random bytes, URL-safe."""
    return TOKEN_PREFIX + secrets.token_urlsafe(48)


def new_refresh_token() -> str:
    """Return a fresh refresh token: the canary prefix and 64 random bytes in hex."""
    return TOKEN_PREFIX + secrets.token_hex(64)
