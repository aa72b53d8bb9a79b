"""Logging setup: one plain line per event on stderr, the ticket id in every line that has one."""

from __future__ import annotations

import contextlib
import contextvars
import logging
import sys
from collections.abc import Iterator
from typing import TextIO

from glpibot.redact import RedactingFilter

_current_ticket: contextvars.ContextVar[int | None] = contextvars.ContextVar("glpibot_ticket", default=None)
# Every character that str.splitlines() breaks on, written as its escape.
_LINE_BREAK_ESCAPES = {ord(char): repr(char)[1:-1] for char in "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"}


class TicketFilter(logging.Filter):
    """Add `ticket=<id>` to records logged while a ticket is being handled."""

    def filter(self, record: logging.LogRecord) -> bool:
        ticket_id = _current_ticket.get()
        record.ticket = f" ticket={ticket_id}" if ticket_id is not None else ""
        return True


class SingleLineFilter(logging.Filter):
    """Escape line breaks in the message, so ticket text (a name, a spec value) cannot start a forged log line.

    Only the message changes; a traceback still follows on its own lines.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        record.msg = message.translate(_LINE_BREAK_ESCAPES)
        record.args = None
        return True


@contextlib.contextmanager
def ticket_context(ticket_id: int) -> Iterator[None]:
    """Tag every log line inside the block with the ticket id."""
    token = _current_ticket.set(ticket_id)
    try:
        yield
    finally:
        _current_ticket.reset(token)


def production_handler(stream: TextIO) -> logging.StreamHandler[TextIO]:
    """Return the handler glpibot logs through: plain lines, the ticket id, secrets masked.

    The redacting filter sits on the handler, not on a logger, so records from
    every logger that reaches it (urllib3 and paramiko included) are masked.
    """
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s%(ticket)s: %(message)s"))
    handler.addFilter(TicketFilter())
    handler.addFilter(RedactingFilter())
    # After redaction, so a secret is matched in the text as it was logged.
    handler.addFilter(SingleLineFilter())
    return handler


def setup_logging(level: int = logging.INFO) -> None:
    """Send glpibot's logs to stderr as plain text (no colour, so journald and pipes stay clean)."""
    handler = production_handler(sys.stderr)
    root = logging.getLogger()
    for existing in list(root.handlers):
        if getattr(existing, "_glpibot", False):
            root.removeHandler(existing)
    handler._glpibot = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    # Third-party libraries stay quiet unless glpibot runs with --debug.
    for noisy in ("urllib3", "paramiko"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if level <= logging.DEBUG else logging.WARNING)
