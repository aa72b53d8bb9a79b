"""Find the YAML spec in a ticket body: HTML to text, then the fenced block, `<pre>` or `glpibot:` document.

GLPI returns ticket bodies as HTML written by its rich-text editor: one `<p>`
per typed line or one `<p>` with `<br>` line breaks, indentation as
`&nbsp; &nbsp;`, and `&amp;` or `&lt;` inside values. Tickets migrated from
older GLPI versions may contain the whole body entity-encoded once more
(`&#60;p&#62;`). API clients may also store plain text.
"""

from __future__ import annotations

import html
import logging
import re
import unicodedata
from html.parser import HTMLParser

from glpibot.errors import SpecError, SpecIssue
from glpibot.spec.yaml_loader import MAX_YAML_BYTES

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 256 * 1024
_MAX_EXTRA_DECODING = 3  # levels of whole-body entity encoding undone, one at a time

MINIMAL_EXAMPLE = "```yaml\nglpibot: 1\naction: http_check\nparams:\n  url: https://wiki.example.test/health\n```"
NO_SPEC_MESSAGE = (
    "no spec found: no YAML block was found in the ticket body; "
    "add the spec as a ```yaml block, for example:\n" + MINIMAL_EXAMPLE
)

# Tags that turn into line breaks; the text of other tags simply runs on.
_BREAK_TAGS = frozenset(
    "p div li ul ol dl dt dd h1 h2 h3 h4 h5 h6 tr table thead tbody tfoot "
    "blockquote hr section article header footer address figure figcaption".split()
)
_DROPPED_TAGS = frozenset({"script", "style"})
# Tags that mark a body as HTML. Inline tags (`<b>`, `<span>`) alone do not,
# so a plain YAML spec that checks for `<b>ok</b>` in a page stays plain text.
_STRUCTURE_TAGS = _BREAK_TAGS | _DROPPED_TAGS | frozenset({"br", "pre", "html", "body"})
_TAG_NAMES_RE = "|".join(sorted(_STRUCTURE_TAGS, key=len, reverse=True))
# A real tag such as <p>, </div> or <br/>; `<ok>` in plain text is not one.
# The patterns avoid nested or adjacent repeats, so a 256 KiB body is scanned in linear time.
_REAL_TAG = re.compile(rf"</?(?:{_TAG_NAMES_RE})(?:[\s/][^<>]*)?>", re.IGNORECASE)
# The same tags written as entities: &lt;p&gt;, &#60;p&#62;, &#x3c;/div&#x3e;.
_LT = r"(?:&lt;|&#0*60;|&#[xX]0*3[cC];)"
_GT = r"(?:&gt;|&#0*62;|&#[xX]0*3[eE];)"
_ENCODED_TAG = re.compile(rf"{_LT}/?(?:{_TAG_NAMES_RE})(?:[\s/](?:(?!{_LT}|{_GT}).){{0,200}})?{_GT}", re.IGNORECASE)

_FENCE_OPEN = re.compile(r"^([ \t]*)(`{3,}|~{3,})[ \t]*(yaml|yml|glpibot)[ \t]*$", re.IGNORECASE)
_SPEC_START = re.compile(r"^([ \t]*)glpibot[ \t]*:")
# Lines that keep a `glpibot:` document going at its own indentation.
_YAML_LINE = re.compile(r"""^(?:[-?:](?:[ \t]|$)|#|---|\.\.\.|[\]}]|(?:"[^"]*"|'[^']*'|[^\s#'"][^:#]*):(?:[ \t]|$))""")
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff"))


def _normalize_text(text: str) -> str:
    """Turn CRLF, CR and Unicode line separators into LF and every Unicode space separator into a space."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = text.replace("\u2028", "\n").replace("\u2029", "\n").replace("\x85", "\n")
    text = text.translate(_INVISIBLE)
    return "".join(" " if char != " " and unicodedata.category(char) == "Zs" else char for char in text)


class _TextBuilder(HTMLParser):
    """Collect the text of an HTML body with line breaks where the editor shows them.

    Entities are decoded by the parser (convert_charrefs), so an `&lt;` in the
    source reaches the text as `<` exactly once. The text of each `<pre>`
    block is also kept on its own, in `pre_blocks`.
    """

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.pre_depth = 0
        self.dropped_depth = 0
        self.pre_blocks: list[str] = []
        self._pre_parts: list[str] = []

    def _at_line_start(self) -> bool:
        for part in reversed(self.parts):
            if part:
                return part.endswith("\n")
        return True

    def _line_break(self) -> None:
        """End the current line unless it is already empty; block tags do not stack blank lines."""
        if not self._at_line_start():
            self.parts.append("\n")

    def _append(self, text: str) -> None:
        self.parts.append(text)
        if self.pre_depth:
            self._pre_parts.append(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _DROPPED_TAGS:
            self.dropped_depth += 1
        elif tag == "br":
            self._append("\n")
        elif tag == "pre":
            self._line_break()
            if self.pre_depth == 0:
                self._pre_parts = []
            self.pre_depth += 1
        elif tag in _BREAK_TAGS and not self.pre_depth:
            self._line_break()
        elif tag in ("td", "th") and not self._at_line_start():
            self._append(" ")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _DROPPED_TAGS:
            return
        self.handle_starttag(tag, attrs)
        if tag == "pre":
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in _DROPPED_TAGS:
            self.dropped_depth = max(0, self.dropped_depth - 1)
        elif tag == "pre" and self.pre_depth:
            self.pre_depth -= 1
            if self.pre_depth == 0:
                block = "".join(self._pre_parts)
                # HTML ignores one line break right after <pre>.
                self.pre_blocks.append(block[1:] if block.startswith("\n") else block)
                self._line_break()
        elif tag in _BREAK_TAGS and not self.pre_depth:
            self._line_break()

    def handle_data(self, data: str) -> None:
        if self.dropped_depth:
            return
        if not self.pre_depth and "\n" in data and data.strip(" \t\r\n\f") == "":
            # Source formatting between tags, such as the newline between </p> and <p>.
            self._line_break()
            return
        self._append(data)

    def finish(self) -> None:
        self.close()
        if self.pre_depth:
            # An unclosed <pre> still counts as a block.
            self.pre_depth = 0
            block = "".join(self._pre_parts)
            self.pre_blocks.append(block[1:] if block.startswith("\n") else block)


_TAG_START = re.compile(r"(/?)([A-Za-z][A-Za-z0-9:-]*)")


def _tidy_markup(body: str) -> str:
    """Rewrite markup so html.parser reads it in linear time: `<name ...>` becomes `<name>`, other `<` become text.

    Python 3.11's html.parser rescans to the end of the body for every tag it
    cannot close (an unclosed quote in an attribute, `<a` without `>`), which
    took minutes on a 256 KiB body in a test run. Attributes carry nothing the spec needs, so each tag is
    rewritten as its bare name. Comments, `<!...>` declarations, CDATA markers
    and `<?...?>` instructions are dropped; an unclosed comment drops the rest,
    as browsers do. A `<` that starts no tag before the next `<` stays text.
    """
    parts: list[str] = []
    position, size = 0, len(body)
    next_gt = -1  # cached position of the next ">", so the search never rescans
    while position < size:
        lt = body.find("<", position)
        if lt < 0:
            parts.append(body[position:])
            break
        parts.append(body[position:lt])
        if body.startswith("<!--", lt):
            end = body.find("-->", lt + 4)
            position = size if end < 0 else end + 3
            continue
        if next_gt != size and next_gt <= lt:
            found = body.find(">", lt + 1)
            next_gt = size if found < 0 else found
        next_lt = body.find("<", lt + 1, next_gt if next_gt < size else size)
        if next_gt == size or next_lt >= 0:
            parts.append("&lt;")
            position = lt + 1
            continue
        inner = body[lt + 1 : next_gt]
        match = _TAG_START.match(inner)
        if match is not None:
            closing, name = match.group(1), match.group(2).lower()
            self_closing = "/" if not closing and inner.rstrip().endswith("/") else ""
            parts.append(f"<{closing}{name}{self_closing}>")
        elif not inner.startswith(("!", "?")):
            parts.append("&lt;")  # text such as `a <3 b>`: keep it, as browsers do
            position = lt + 1
            continue
        position = next_gt + 1
    return "".join(parts)


def _has_real_tags(text: str) -> bool:
    return _REAL_TAG.search(text) is not None


def _decode_legacy(body: str) -> str:
    """Undo whole-body entity encoding: the fewest levels that turn the body into real markup.

    Bodies of tickets migrated from old GLPI versions contain `&#60;p&#62;`
    where `<p>` was meant, and some were encoded two or three times. A body
    with real tags is never decoded here; otherwise it is decoded level by
    level, at most `_MAX_EXTRA_DECODING` times, and the first level that
    shows real tags is kept. So an `&lt;` the author typed as text is
    decoded once more, by the parser, never into a tag. A body that shows
    no tags at any level is returned as it came.
    """
    if _has_real_tags(body):
        return body
    decoded = body
    for _ in range(_MAX_EXTRA_DECODING):
        next_level = html.unescape(decoded)
        if next_level == decoded:
            break
        decoded = next_level
        if _has_real_tags(decoded):
            return decoded
    return body


def looks_like_html(text: str) -> bool:
    """Tell whether a body is HTML (real tags, or tags encoded as entities) rather than plain text."""
    return _has_real_tags(_decode_legacy(text))


def _convert(body: str) -> tuple[str, list[str]]:
    """Return the text of an HTML body and the text of each of its `<pre>` blocks."""
    if body.startswith("\ufeff"):
        body = body[1:]
    body = _decode_legacy(body)
    body = body.replace("\r\n", "\n").replace("\r", "\n")

    builder = _TextBuilder()
    builder.feed(_tidy_markup(body))
    builder.finish()
    text = _normalize_text("".join(builder.parts)).strip("\n")
    return text, [_normalize_text(block) for block in builder.pre_blocks]


def html_to_text(html_text: str) -> str:
    """Convert an HTML ticket body to plain text, with line breaks where the editor shows them.

    `<p>`, `<br>`, `<div>`, `<li>`, `<h1>`-`<h6>` and `<tr>` end lines, and
    `<pre>` text is kept verbatim. Entities are decoded. Unicode space
    separators (U+00A0, U+2007, U+202F, ...) become plain spaces, and CRLF and
    CR become LF. A leading BOM and the contents of `<script>` and `<style>`
    are dropped. A body with only entity-encoded tags is decoded one extra
    level first.
    """
    _check_body(html_text)
    return _convert(html_text)[0]


def _check_body(body: str) -> None:
    if not isinstance(body, str):
        raise SpecError([SpecIssue("", f"the ticket body must be text, not {type(body).__name__}")])
    size = len(body.encode("utf-8", errors="surrogatepass"))
    if size > MAX_BODY_BYTES:
        message = (
            f"the ticket body is {size} bytes; the limit is {MAX_BODY_BYTES} bytes (256 KiB); "
            "move long logs out of the description into a follow-up or an attachment"
        )
        raise SpecError([SpecIssue("", message)])


def _fenced_block(lines: list[str]) -> str | None:
    """Return the first ```yaml, ```glpibot or ~~~yaml block, or None.

    A block with no closing fence runs until the first line that reads as prose.
    """
    for start, line in enumerate(lines):
        match = _FENCE_OPEN.match(line)
        if match is None:
            continue
        indent, fence = match.group(1), match.group(2)
        closing = re.compile(rf"^[ \t]*{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$")
        body: list[str] = []
        for inner in lines[start + 1 :]:
            if closing.match(inner):
                return _dedent(body, len(indent))
            body.append(inner)
        return _document_lines(_dedent(body, len(indent)).split("\n"), 0)
    return None


def _dedent(lines: list[str], width: int) -> str:
    """Remove up to `width` leading spaces from each line, the indentation of the fence or first line."""
    if width == 0:
        return "\n".join(lines)
    result = []
    for line in lines:
        stripped = len(line) - len(line.lstrip(" \t"))
        result.append(line[min(width, stripped) :])
    return "\n".join(result)


def _document_lines(lines: list[str], indent: int) -> str:
    """Return the lines of a YAML document up to the first line that reads as prose.

    The document ends at the first line, indented no more than its first
    line, that is not `key:`, a list item, a comment, a flow closer or a
    document marker. So a signature such as "Thanks," ends it, but a further
    key or list item does not.
    """
    document = [lines[0]] if lines else []
    for line in lines[1:]:
        if line.strip():
            own_indent = len(line) - len(line.lstrip(" "))
            if own_indent < indent:
                break
            if own_indent == indent and not _YAML_LINE.match(line[indent:]):
                break
        document.append(line)
    while document and not document[-1].strip():
        document.pop()
    return _dedent(document, indent)


def _spec_document(lines: list[str]) -> str | None:
    """Return the YAML document that starts at the first `glpibot:` line, or None."""
    for start, line in enumerate(lines):
        match = _SPEC_START.match(line)
        if match is not None:
            indent = len(match.group(1).expandtabs(1))
            return _document_lines(lines[start:], indent)
    return None


def has_spec_fence(text: str) -> bool:
    """Tell whether a text has a line opening a ```yaml, ```glpibot or ~~~yaml block."""
    return any(_FENCE_OPEN.match(line) for line in _normalize_text(text).split("\n"))


def _has_spec_key(text: str) -> bool:
    return any(_SPEC_START.match(line) for line in text.split("\n"))


def extract_spec_text(body: str) -> str:
    """Return the YAML text of the spec in a ticket body (HTML or plain text).

    Order: the first ```yaml or ```glpibot fence (also ~~~), else a `<pre>`
    block (the first one with a `glpibot:` line, else the first one), else the
    document starting at the first `glpibot:` line. A greeting before and a
    signature after the spec are left out. Raises SpecError(kind="missing")
    when there is no spec, and SpecError when the body or the spec is too large.
    """
    _check_body(body)
    pre_blocks: list[str] = []
    if looks_like_html(body):
        text, pre_blocks = _convert(body)
    else:
        text = _normalize_text(body[1:] if body.startswith("\ufeff") else body)
    lines = text.split("\n")

    spec_text = _fenced_block(lines)
    source = "fenced block"
    if spec_text is None:
        with_key = [block for block in pre_blocks if _has_spec_key(block)]
        plain = _spec_document(lines)
        if with_key:
            spec_text, source = with_key[0], "<pre> block"
        elif plain is not None:
            spec_text, source = plain, "glpibot: line"
        elif pre_blocks and any(block.strip() for block in pre_blocks):
            spec_text, source = next(block for block in pre_blocks if block.strip()), "<pre> block"
    if spec_text is None or not spec_text.strip():
        raise SpecError([SpecIssue("", NO_SPEC_MESSAGE)], kind="missing")

    size = len(spec_text.encode("utf-8", errors="surrogatepass"))
    if size > MAX_YAML_BYTES:
        raise SpecError([SpecIssue("", f"the YAML spec is {size} bytes; the limit is {MAX_YAML_BYTES} bytes (64 KiB); shorten it")])
    logger.debug("spec found in a %s: %d lines", source, spec_text.count("\n") + 1)
    return spec_text
