"""Escape and cut untrusted text for the HTML follow-ups and the Markdown artifact.

Ticket text and remote output reach these helpers as plain strings. The HTML
templates rely on Jinja2 autoescape, and `html_lines` only adds line breaks.
The Markdown template has no autoescape, so every value in it goes through one
of the `md_*` filters here.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from markupsafe import Markup, escape

KIB = 1024
FOLLOWUP_OUTPUT_CAP = 4 * KIB  # bytes of output per step in a GLPI follow-up
ARTIFACT_OUTPUT_CAP = 64 * KIB  # bytes of output per step in the Markdown artifact

# Characters that start Markdown inline syntax (emphasis, links, images, code
# spans, strikethrough, table cells). A backslash before any ASCII punctuation
# is a valid escape in CommonMark and GFM, so escaping a few extra is harmless.
_MD_BACKSLASHED = set("\\`*_{}[]()#!|~")
# `<`, `>` and `&` become entities: some Markdown dialects do not treat `\<`
# as an escape, and an entity keeps `&lt;` typed in a ticket visible as typed.
_MD_ENTITIES = {"<": "&lt;", ">": "&gt;", "&": "&amp;"}
# Text at the start of a list item or paragraph that would open a block
# (list marker, ordered list number, setext or thematic line).
_MD_LEADING_MARKER = re.compile(r"^[-+=]")
_MD_LEADING_NUMBER = re.compile(r"^(\d{1,9})\.")
# GFM turns bare URLs and `www.` names into links by itself. Escaping the colon
# or the dot stops that autolink without changing the visible text.
# NOTE: GFM also links bare e-mail addresses as mailto:, and those stay unescaped.
_MD_AUTOLINK = re.compile(r"(?i)\b(https?|ftp|mailto|javascript|data|vbscript|file|xmpp):|\b(www)\.")
_WHITESPACE_RUN = re.compile(r"\s+")
_BACKTICK_RUN = re.compile(r"`+")
_TILDE_RUN = re.compile(r"~+")


def _size_kib(total_bytes: int) -> int:
    return max(1, math.ceil(total_bytes / KIB))


def _utf8_head(data: bytes, limit: int) -> str:
    # errors="ignore" drops a character split by the byte cut.
    return data[:limit].decode("utf-8", errors="ignore")


def _utf8_tail(data: bytes, limit: int) -> str:
    return data[-limit:].decode("utf-8", errors="ignore")


def cut_head(text: str, cap_bytes: int = FOLLOWUP_OUTPUT_CAP) -> tuple[str, str | None]:
    """Keep the first `cap_bytes` bytes (UTF-8) of text.

    Returns the kept text and the cut marker, or None when nothing was cut.
    The marker names where the rest is: the artifact keeps all of it up to
    ARTIFACT_OUTPUT_CAP, and the first and last halves of that cap beyond it.
    """
    data = text.encode("utf-8")
    if len(data) <= cap_bytes:
        return text, None
    total = _size_kib(len(data))
    shown = _size_kib(cap_bytes)
    if len(data) <= ARTIFACT_OUTPUT_CAP:
        where = "the full text is in the artifact"
    else:
        half = _size_kib(ARTIFACT_OUTPUT_CAP // 2)
        where = f"the artifact keeps the first and the last {half} KiB"
    marker = f"[output cut: {total} KiB total, first {shown} KiB shown; {where}]"
    return _utf8_head(data, cap_bytes), marker


def cut_head_tail(text: str, cap_bytes: int = ARTIFACT_OUTPUT_CAP) -> tuple[str, str | None]:
    """Keep the first and the last half of `cap_bytes` bytes of text, with a marker line between.

    Returns the kept text and the marker, or None when nothing was cut.
    """
    data = text.encode("utf-8")
    if len(data) <= cap_bytes:
        return text, None
    half = cap_bytes // 2
    marker = (
        f"[output cut: {_size_kib(len(data))} KiB total; "
        f"the first and the last {_size_kib(half)} KiB are kept]"
    )
    head = _utf8_head(data, half)
    tail = _utf8_tail(data, half)
    if not head.endswith("\n"):
        head += "\n"
    return f"{head}{marker}\n{tail}", marker


def html_lines(text: str | None) -> Markup:
    """Escape text for HTML and turn its line breaks into `<br>`."""
    if not text:
        return Markup("")
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return Markup("<br>").join(escape(line) for line in lines)


def md_inline(text: object) -> str:
    """Escape a value for Markdown inline text: a title, a list item or a table cell.

    Line breaks and runs of whitespace become one space, so the value stays on
    its line and cannot end a table row. Link, image, emphasis, code and HTML
    syntax is escaped, so ticket text shows as typed and adds no markup.
    """
    flat = _WHITESPACE_RUN.sub(" ", str(text)).strip()
    parts: list[str] = []
    for char in flat:
        if char in _MD_ENTITIES:
            parts.append(_MD_ENTITIES[char])
        elif char in _MD_BACKSLASHED:
            parts.append("\\" + char)
        else:
            parts.append(char)
    escaped = "".join(parts)
    escaped = _MD_LEADING_MARKER.sub(lambda match: "\\" + match.group(0), escaped)
    escaped = _MD_LEADING_NUMBER.sub(r"\1\\.", escaped)
    return _MD_AUTOLINK.sub(_break_autolink, escaped)


def _break_autolink(match: re.Match[str]) -> str:
    if match.group(2):
        return f"{match.group(2)}\\."
    return f"{match.group(1)}\\:"


def md_fence(text: str) -> str:
    """Return a backtick fence longer than every backtick and tilde run in text (at least 3)."""
    longest = 0
    for pattern in (_BACKTICK_RUN, _TILDE_RUN):
        for run in pattern.findall(text):
            longest = max(longest, len(run))
    return "`" * max(3, longest + 1)


def md_code_block(text: str, info: str = "text") -> str:
    """Wrap text in a fenced code block that no line of the text can close.

    `info` is the language tag. It must not contain backticks or spaces, so
    callers pass fixed words such as "json" or "text".
    """
    body = text.replace("\r\n", "\n").replace("\r", "\n")
    if body and not body.endswith("\n"):
        body += "\n"
    fence = md_fence(body)
    return f"{fence}{info}\n{body}{fence}"


def to_json(value: Any) -> str:
    """Dump params or facts as indented JSON; values JSON cannot hold become strings."""
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)


def to_compact_json(value: Any) -> str:
    """Dump params or facts on one line, for a `<code>` element in a follow-up."""
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str, separators=(", ", ": "))
