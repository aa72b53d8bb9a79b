"""Strict YAML loading for specs: YAML 1.2 core scalars, no duplicate keys, limits, line numbers.

PyYAML follows YAML 1.1, where `yes`, `no`, `on` and `off` are booleans,
`017` is octal, `1:30` is a base-60 number and `2024-06-01` is a date. A spec
author who types `host: no` means the host named "no", so this loader keeps
only the YAML 1.2 core forms:

- booleans: only `true`, `True`, `TRUE`, `false`, `False` and `FALSE`. Every
  other word (`yes`, `no`, `on`, `off`, `y`, `n`) stays a string, as a key or a value;
- integers: decimal only, without leading zeros or `_` (`017`, `0x1F`,
  `0o17`, `1_000` and `1:30` stay strings, exactly as typed);
- floats: plain decimal and exponent forms (`1.5`, `-2e3`); `.inf` and
  `.nan` stay strings;
- null: `null`, `Null`, `NULL`, `~` or nothing;
- everything else, dates included, is a string.

Mapping keys are always strings: the key's text as written. Anchors, aliases,
merge keys (`<<`) and explicit tags are rejected, and the document may hold at
most MAX_DEPTH nested collections and MAX_NODES nodes, so no input can expand
into a large object. A key with a non-printable character (a line break,
U+00A0, U+FEFF) and a key or value holding U+FFFD are rejected with their
path, so every path and message fits on one line.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from typing import Any

import yaml
from yaml.events import (
    AliasEvent,
    MappingStartEvent,
    NodeEvent,
    SequenceStartEvent,
    StreamEndEvent,
)
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from glpibot.errors import SpecError, SpecIssue

logger = logging.getLogger(__name__)

MAX_YAML_BYTES = 64 * 1024
MAX_DEPTH = 20  # nested lists and mappings, the top-level mapping counting as 1
MAX_NODES = 10_000  # scalars, lists and mappings together
_MAX_NUMBER_DIGITS = 100  # longer digit strings stay text; Python refuses ints past 4300 digits
_RAW_TEXT_LIMIT = 200  # maximum length of the typed text kept per scalar for messages
# Text decoded with errors="replace" (a client reading invalid UTF-8) and the
# entity `&#0;` both turn into U+FFFD, so a value holding it is not what the author typed.
REPLACEMENT_CHARACTER = "\ufffd"
_REPLACEMENT_PROBLEM = (
    "contains U+FFFD, the replacement character that stands for bytes that were not valid UTF-8 "
    "or for an entity such as `&#0;`"
)

PathPart = str | int
Path = tuple[PathPart, ...]

_BOOL_TAG = "tag:yaml.org,2002:bool"
_INT_TAG = "tag:yaml.org,2002:int"
_FLOAT_TAG = "tag:yaml.org,2002:float"
_NULL_TAG = "tag:yaml.org,2002:null"
_STR_TAG = "tag:yaml.org,2002:str"

_BOOL_RE = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")
_NULL_RE = re.compile(r"^(?:~|null|Null|NULL|)$")
_INT_RE = re.compile(r"^[-+]?(?:0|[1-9][0-9]*)$")
# A float needs a dot or an exponent, and a leading zero only before the dot: `017.5` stays text.
_FLOAT_RE = re.compile(r"^[-+]?(?:(?:0|[1-9][0-9]*)(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?$")


class LineMap(dict[Path, int]):
    """1-based YAML line of every key, list item and value, by path.

    A path is a tuple such as ("steps", 1, "params", "url"). The line stored
    under a mapping entry's path is the line of its key. `value_lines` stores
    the line where each value starts, and `raw` the text of each scalar as
    typed (quotes included), so messages can quote what the author wrote.
    """

    def __init__(self) -> None:
        super().__init__()
        self.value_lines: dict[Path, int] = {}
        self.raw: dict[Path, str] = {}

    def line_of(self, path: Path) -> int | None:
        """Return the line of `path`, or of its nearest ancestor that has one."""
        for end in range(len(path), -1, -1):
            line = self.get(path[:end], self.value_lines.get(path[:end]))
            if line is not None:
                return line
        return None

    def value_line_of(self, path: Path) -> int | None:
        """Return the line where the value at `path` starts, else the line of its key."""
        line = self.value_lines.get(path)
        return line if line is not None else self.line_of(path)


def printable(text: str) -> str:
    """Return text with each non-printable character (line break, tab, NUL, U+00A0, bidi control) as its Python escape.

    Messages and paths quote ticket text through this, so they stay on one line.
    """
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in text)


def format_path(path: Path) -> str:
    """Render a path the way messages show it: `steps[1].params.url`; keys go through `printable`."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{printable(part)}" if text else printable(part)
    return text


def _key_problem(key: str) -> str | None:
    """Return why a mapping key cannot be a spec key, or None; every spec key is printable text."""
    if REPLACEMENT_CHARACTER in key:
        return f"key `{printable(key)}` {_REPLACEMENT_PROBLEM}; retype the key"
    for char in key:
        if not char.isprintable():
            name = unicodedata.name(char, "a control character")
            return (
                f"key `{printable(key)}` contains the character U+{ord(char):04X} ({name}), "
                "which is not allowed in a key; type the key in plain letters and indent with spaces"
            )
    return None


def _tag_as_typed(tag: str) -> str:
    """Return a tag the way it is written in YAML: `!!str` rather than its expanded form."""
    return "!!" + tag[len("tag:yaml.org,2002:"):] if tag.startswith("tag:yaml.org,2002:") else tag


class _Rejected(Exception):
    """A construct the spec loader does not accept, with the mark where it starts."""

    def __init__(self, message: str, mark: yaml.Mark | None) -> None:
        super().__init__(message)
        self.message = message
        self.mark = mark


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 core resolvers and guards run while the node tree is composed."""

    yaml_implicit_resolvers: dict[str, list[tuple[str, re.Pattern[str]]]] = {}

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.depth = 0
        self.node_count = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node:
        if self.check_event(AliasEvent):
            raise _Rejected("anchors and aliases are not allowed in a spec; write the value out", self.peek_event().start_mark)
        event = self.peek_event()
        if isinstance(event, NodeEvent) and event.anchor is not None:
            raise _Rejected("anchors and aliases are not allowed in a spec; write the value out", event.start_mark)
        tag = getattr(event, "tag", None)
        if tag is not None:
            raise _Rejected(f"YAML tags such as `{_tag_as_typed(tag)}` are not allowed in a spec; remove the tag", event.start_mark)

        self.node_count += 1
        if self.node_count > MAX_NODES:
            raise _Rejected(f"the spec has more than {MAX_NODES} YAML nodes; a spec is a few lines long", event.start_mark)
        is_collection = isinstance(event, (MappingStartEvent, SequenceStartEvent))
        if is_collection:
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise _Rejected(f"the spec nests lists and mappings more than {MAX_DEPTH} levels deep", event.start_mark)
        try:
            return super().compose_node(parent, index)
        finally:
            if is_collection:
                self.depth -= 1


# Resolvers are looked up by the scalar's first character, as PyYAML does.
for _first in "tTfF":
    _StrictLoader.add_implicit_resolver(_BOOL_TAG, _BOOL_RE, [_first])
for _first in ["~", "n", "N", ""]:
    _StrictLoader.add_implicit_resolver(_NULL_TAG, _NULL_RE, [_first])
for _first in "-+0123456789":
    _StrictLoader.add_implicit_resolver(_INT_TAG, _INT_RE, [_first])
for _first in "-+0123456789.":
    _StrictLoader.add_implicit_resolver(_FLOAT_TAG, _FLOAT_RE, [_first])


def _line(mark: yaml.Mark | None) -> int | None:
    return mark.line + 1 if mark is not None else None


class _Builder:
    """Turn a composed node tree into plain Python data while recording lines and issues."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.lines = LineMap()
        self.issues: list[SpecIssue] = []

    def build(self, node: Node, path: Path) -> Any:
        self.lines.value_lines[path] = node.start_mark.line + 1
        if isinstance(node, ScalarNode):
            self._record_raw(node, path)
            if REPLACEMENT_CHARACTER in node.value:
                message = f"{_REPLACEMENT_PROBLEM}; retype the value"
                self.issues.append(SpecIssue(format_path(path), message, node.start_mark.line + 1))
            return self._scalar(node)
        if isinstance(node, SequenceNode):
            items = []
            for index, item in enumerate(node.value):
                self.lines[path + (index,)] = item.start_mark.line + 1
                items.append(self.build(item, path + (index,)))
            return items
        if isinstance(node, MappingNode):
            return self._mapping(node, path)
        raise _Rejected("unsupported YAML node", node.start_mark)

    def _record_raw(self, node: ScalarNode, path: Path) -> None:
        start, end = node.start_mark.index, node.end_mark.index
        raw = self.text[start:end] if 0 <= start < end <= len(self.text) else node.value
        if "\n" not in raw and len(raw) <= _RAW_TEXT_LIMIT:
            self.lines.raw[path] = raw

    def _scalar(self, node: ScalarNode) -> Any:
        value: str = node.value
        if node.tag == _STR_TAG:
            return value
        if node.tag == _BOOL_TAG:
            return value.lower() == "true"
        if node.tag == _NULL_TAG:
            return None
        if node.tag in (_INT_TAG, _FLOAT_TAG):
            # Very long numbers are kept as typed; the schema then names the rule they break.
            if sum(char.isdigit() for char in value) > _MAX_NUMBER_DIGITS:
                return value
            return int(value) if node.tag == _INT_TAG else float(value)
        raise _Rejected(f"YAML tags such as `{_tag_as_typed(node.tag)}` are not allowed in a spec; remove the tag", node.start_mark)

    def _mapping(self, node: MappingNode, path: Path) -> dict[str, Any]:
        result: dict[str, Any] = {}
        first_lines: dict[str, int] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode):
                raise _Rejected("a mapping key must be a plain name, not a list or a mapping", key_node.start_mark)
            key = key_node.value
            key_line = key_node.start_mark.line + 1
            if key == "<<" and key_node.style is None:
                raise _Rejected("merge keys (`<<`) are not allowed in a spec; write each key out", key_node.start_mark)
            problem = _key_problem(key)
            if problem is not None:
                self.issues.append(SpecIssue(format_path(path + (key,)), problem, key_line))
                continue
            if key in first_lines:
                self.issues.append(
                    SpecIssue(
                        format_path(path + (key,)),
                        f"duplicate key `{key}` at line {key_line} (first at line {first_lines[key]})",
                        key_line,
                    )
                )
                continue
            first_lines[key] = key_line
            self.lines[path + (key,)] = key_line
            result[key] = self.build(value_node, path + (key,))
        return result


def _odd_indentation(text: str) -> tuple[int, str] | None:
    """Return (line, character) of the first line indented with a space character other than U+0020, or None."""
    for number, line in enumerate(text.split("\n"), 1):
        for char in line:
            if char not in " \t":
                if unicodedata.category(char) == "Zs":
                    return number, char
                break
    return None


def _yaml_error_issue(text: str, exc: yaml.YAMLError) -> SpecIssue:
    """Describe a PyYAML error on one line, with the line it points at."""
    if isinstance(exc, yaml.reader.ReaderError):
        line = text.count("\n", 0, max(exc.position, 0)) + 1
        return SpecIssue("", f"invalid YAML: the character U+{exc.character:04X} is not allowed; remove it", line)
    odd = _odd_indentation(text)
    if odd is not None:
        # PyYAML reads U+00A0 indentation as part of a key and then reports the
        # structure, which does not name the cause the author can see.
        line, char = odd
        name = unicodedata.name(char, "a space character")
        return SpecIssue("", f"invalid YAML: line {line} is indented with U+{ord(char):04X} ({name}); indent with plain spaces", line)
    if not isinstance(exc, yaml.MarkedYAMLError):
        return SpecIssue("", f"invalid YAML: {exc}".replace("\n", " "), None)

    mark = exc.problem_mark or exc.context_mark
    line = _line(mark)
    problem = (exc.problem or "").strip()
    if "'\\t'" in problem and mark is not None:
        line_text = text.splitlines()[mark.line] if mark.line < len(text.splitlines()) else ""
        if line_text[: mark.column + 1].strip(" \t") == "":
            return SpecIssue("", "invalid YAML: tabs are not allowed for indentation; indent with spaces", line)
        return SpecIssue("", "invalid YAML: a tab is not allowed here; use spaces", line)
    if problem.startswith("expected a single document"):
        return SpecIssue("", "the spec must be a single YAML document; remove the extra `---` line", line)
    message = f"invalid YAML: {problem or exc.context or 'unreadable text'}"
    if exc.context and problem:
        context = exc.context
        if exc.context_mark is not None and exc.problem_mark is not None and exc.context_mark.line != exc.problem_mark.line:
            context = f"{context} that starts at line {exc.context_mark.line + 1}"
        message = f"{message} ({context})"
    return SpecIssue("", message.replace("\n", " "), line)


def load_yaml(text: str, *, max_bytes: int = MAX_YAML_BYTES) -> tuple[Any, LineMap]:
    """Load one YAML document strictly and return the data with the line of every path.

    Raises SpecError, and only SpecError. It is raised for text that is not a
    string or is larger than `max_bytes` UTF-8 bytes, for invalid YAML,
    several documents, anchors, aliases, merge keys, tags and broken limits.
    Repeated keys give one issue each, all reported together. Specs keep the
    default MAX_YAML_BYTES, and the config file passes its own limit.
    """
    if not isinstance(text, str):
        raise SpecError([SpecIssue("", f"the spec must be text, not {type(text).__name__}")])
    size = len(text.encode("utf-8", errors="surrogatepass"))
    if size > max_bytes:
        limit = f"{max_bytes} bytes ({max_bytes // 1024} KiB)" if max_bytes % 1024 == 0 else f"{max_bytes} bytes"
        raise SpecError([SpecIssue("", f"the YAML spec is {size} bytes; the limit is {limit}; shorten it")])

    builder = _Builder(text)
    try:
        loader = _StrictLoader(text)
        try:
            root = _compose_single(loader)
            data = builder.build(root, ()) if root is not None else None
        finally:
            loader.dispose()
    except _Rejected as exc:
        raise SpecError([SpecIssue("", exc.message, _line(exc.mark))]) from None
    except yaml.YAMLError as exc:
        raise SpecError([_yaml_error_issue(text, exc)]) from None
    except RecursionError:
        raise SpecError([SpecIssue("", f"the spec nests lists and mappings more than {MAX_DEPTH} levels deep")]) from None

    if builder.issues:
        raise SpecError(builder.issues)
    logger.debug("loaded a YAML spec of %d bytes with %d paths", size, len(builder.lines))
    return data, builder.lines


def _compose_single(loader: _StrictLoader) -> Node | None:
    """Compose the only document of the stream; a second document is an error."""
    loader.get_event()  # stream start
    root = None
    if not loader.check_event(StreamEndEvent):
        root = loader.compose_document()
    if not loader.check_event(StreamEndEvent):
        event = loader.peek_event()
        raise _Rejected("the spec must be a single YAML document; remove the extra `---` line", event.start_mark)
    return root
