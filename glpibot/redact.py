"""The one place where secret values are masked before any text leaves glpibot.

Every secret glpibot reads (client secret, password, tokens, key passphrase)
is registered here; logs, follow-ups, solutions, artifacts, memory records,
`--json` output and error messages all pass through `redact`.
"""

from __future__ import annotations

import logging
import re
import threading

MASK = "[REDACTED]"
_MIN_SECRET_LENGTH = 4  # shorter values would mask ordinary words

_lock = threading.Lock()
_secrets: set[str] = set()
_pattern: re.Pattern[str] | None = None

# Bearer tokens and OAuth fields are masked by shape too, so a token that was
# never registered (one quoted in a logged response) is still masked.
_SHAPES = [
    (re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{8,}"), r"\1" + MASK),
    (
        re.compile(
            r'(?i)(?<![A-Za-z0-9_])("?(?:access_token|refresh_token|client_secret|password)"?\s*[:=]\s*"?)[^"&\s,}]+'
        ),
        r"\1" + MASK,
    ),
]


def register_secret(value: str | None) -> None:
    """Add a value that must never appear in any output."""
    global _pattern
    if not value or len(value) < _MIN_SECRET_LENGTH:
        return
    with _lock:
        if value in _secrets:
            return
        _secrets.add(value)
        ordered = sorted(_secrets, key=len, reverse=True)
        _pattern = re.compile("|".join(re.escape(secret) for secret in ordered))


def forget_secrets() -> None:
    """Drop every registered value; tests use it between runs."""
    global _pattern
    with _lock:
        _secrets.clear()
        _pattern = None


def redact(text: str) -> str:
    """Return text with every registered secret and every token-shaped value masked."""
    if not text:
        return text
    pattern = _pattern
    if pattern is not None:
        text = pattern.sub(MASK, text)
    for shape, replacement in _SHAPES:
        text = shape.sub(replacement, text)
    return text


def redact_data(value: object) -> object:
    """Return a copy of JSON-like data with every string redacted."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {key: redact_data(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_data(item) for item in value]
    return value


class RedactingFilter(logging.Filter):
    """A logging filter that masks secrets in the formatted message and the traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        record.msg = redact(message)
        record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            import traceback

            record.exc_text = redact("".join(traceback.format_exception(*record.exc_info)))
            record.exc_info = None
        return True
