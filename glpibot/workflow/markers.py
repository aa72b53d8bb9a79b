"""Run markers: the short visible tag in every message the bot posts, so its own claims can be
recognised from the ticket timeline even when the ledger is lost."""

from __future__ import annotations

import html
import re
import secrets
from dataclasses import dataclass

# "glpibot-run 17-2-a1b2c3 claimed": ticket 17, attempt 2, a random nonce, the message kind.
MESSAGE_KINDS = ("claimed", "solved", "blocked", "interrupted")
_MARKER_RE = re.compile(r"glpibot-run (\d+)-(\d+)-([0-9a-f]{6}) (claimed|solved|blocked|interrupted)")
_TAG_RE = re.compile(r"<[^>]*>")


def new_run_marker(ticket_id: int, attempt: int) -> str:
    """Return a fresh marker such as "glpibot-run 17-2-a1b2c3"."""
    return f"glpibot-run {ticket_id}-{attempt}-{secrets.token_hex(3)}"


def tagged(run_marker: str, kind: str) -> str:
    """Return the marker with the message kind, as it appears in a posted message."""
    return f"{run_marker} {kind}"


def marker_footer(run_marker: str, kind: str) -> str:
    """Return the HTML paragraph appended to every message the bot posts."""
    return f"<p><small><code>{html.escape(tagged(run_marker, kind))}</code></small></p>"


@dataclass(frozen=True)
class FoundMarker:
    ticket_id: int
    attempt: int
    run_marker: str
    kind: str
    item_type: str  # "Followup" or "Solution"
    item_id: int


def markers_in_timeline(timeline: list[dict], ticket_id: int, bot_user_id: int) -> list[FoundMarker]:
    """Return the markers in the bot's own follow-ups and solutions for this ticket, oldest first.

    Only items written by the bot user count, so a person quoting a marker
    cannot make the bot believe it already acted.
    """
    found: list[FoundMarker] = []
    for item in timeline:
        if item.get("type") not in ("Followup", "Solution"):
            continue
        author = item.get("user") or {}
        if not isinstance(author, dict) or author.get("id") != bot_user_id:
            continue
        text = html.unescape(_TAG_RE.sub(" ", str(item.get("content") or "")))
        for match in _MARKER_RE.finditer(text):
            if int(match.group(1)) != ticket_id:
                continue
            found.append(
                FoundMarker(
                    ticket_id=ticket_id,
                    attempt=int(match.group(2)),
                    run_marker=f"glpibot-run {match.group(1)}-{match.group(2)}-{match.group(3)}",
                    kind=match.group(4),
                    item_type=str(item.get("type")),
                    item_id=int(item.get("id") or 0),
                )
            )
    return found
