"""Allowlist helpers shared by the SSH actions: per-host globs, strict params, remote paths.

Globs here are path globs, unlike fnmatch: `*` and `?` stop at `/`, and only
`**` crosses it. With fnmatch, `/home/svc-admin/docker/*` would also allow
`/home/svc-admin/docker/a/b`.
"""

from __future__ import annotations

import posixpath
import re
import unicodedata
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from glpibot.errors import SpecIssue
from glpibot.resources import load_action_schema

if TYPE_CHECKING:
    from glpibot.config import Config
    from glpibot.spec.model import Step

MAX_SHOWN_CHARS = 80


def show_value(value: object) -> str:
    """Return a quoted, escaped and shortened form of a value for one-line messages.

    Control characters appear as escapes (`'a\\nb'`), so a message never
    spans two lines whatever the ticket wrote.
    """
    text = repr(value) if isinstance(value, str) else repr(str(value))
    if len(text) > MAX_SHOWN_CHARS:
        text = text[: MAX_SHOWN_CHARS - 4] + "...'"
    return text


def param_path(step: "Step", name: str) -> str:
    """Return the spec path of one parameter, for example `steps[0].params.unit`."""
    prefix = f"{step.path}." if step.path else ""
    return f"{prefix}params.{name}"


def host_path(step: "Step") -> str:
    """Return the spec path of the step's host field."""
    prefix = f"{step.path}." if step.path else ""
    return f"{prefix}host"


@lru_cache(maxsize=512)
def glob_to_regex(pattern: str) -> re.Pattern[str]:
    """Compile a path glob into an anchored regex.

    `**` matches any text including `/`; `/**/` also matches a single `/`.
    `*` matches any text without `/`, `?` one character other than `/`, and
    `[abc]`, `[a-z]` or `[!abc]` one character of a set (never `/`). Every
    other character, including an unclosed `[`, matches itself.
    """
    parts: list[str] = []
    i = 0
    length = len(pattern)
    while i < length:
        char = pattern[i]
        if pattern.startswith("/**/", i):
            parts.append("(?:/|/.*/)")
            i += 4
        elif pattern.startswith("**", i):
            parts.append(".*")
            i += 2
        elif char == "*":
            parts.append("[^/]*")
            i += 1
        elif char == "?":
            parts.append("[^/]")
            i += 1
        elif char == "[":
            end = pattern.find("]", i + 2)
            if end == -1:
                parts.append(re.escape(char))
                i += 1
                continue
            body = pattern[i + 1 : end]
            negate = body.startswith("!")
            if negate:
                body = body[1:]
            escaped = "".join("\\" + c if c in "\\^[]" else c for c in body)
            parts.append(f"(?!/)[^{escaped}]" if negate else f"(?!/)[{escaped}]")
            i = end + 1
        else:
            parts.append(re.escape(char))
            i += 1
    return re.compile("".join(parts), re.DOTALL)


def glob_matches(pattern: str, value: str) -> bool:
    """Return True when the whole value matches the path glob."""
    return glob_to_regex(pattern).fullmatch(value) is not None


def host_globs(config: "Config", action: str, key: str, host: str) -> list[str]:
    """Return the globs the operator allows for one host; [] when the section, key or host is missing."""
    section = config.action_settings(action) or {}
    per_host = section.get(key) or {}
    globs = per_host.get(host) or []
    return [glob for glob in globs if isinstance(glob, str)]


def first_match(globs: list[str], value: str) -> str | None:
    """Return the first glob that matches the value, or None."""
    for glob in globs:
        if glob_matches(glob, value):
            return glob
    return None


def remote_step_issues(step: "Step", action: str) -> list[SpecIssue]:
    """Return the issues every remote action checks first: malformed params, then a missing host."""
    issues = strict_param_issues(step, action)
    if issues:
        return issues
    if step.host is None:
        return [SpecIssue(host_path(step), f"{action} needs a host from the inventory", step.line_of("host"))]
    return []


def strict_param_issues(step: "Step", action: str) -> list[SpecIssue]:
    """Re-check every string parameter against its schema pattern with a whole-string match.

    Plain jsonschema applies `pattern` with `re.search`, where `$` also
    matches before a final line break. The spec validator closes that gap,
    but a Step built by other code has not been through it, so the policy
    checks again before anything reaches a host. Patterns are ASCII classes,
    so look-alike letters (a Cyrillic `е`) fail.
    """
    schema = load_action_schema(action)
    issues: list[SpecIssue] = []
    for name, prop in schema.get("properties", {}).items():
        if name not in step.params:
            continue
        value = step.params[name]
        pattern = prop.get("pattern")
        if pattern and isinstance(value, str):
            problem = _pattern_problem(name, value, pattern)
            if problem:
                issues.append(SpecIssue(param_path(step, name), problem, step.line_of(f"params.{name}")))
        item_pattern = (prop.get("items") or {}).get("pattern")
        if item_pattern and isinstance(value, list):
            for index, item in enumerate(value):
                if isinstance(item, str):
                    problem = _pattern_problem(f"{name}[{index}]", item, item_pattern)
                    if problem:
                        item_name = f"{name}[{index}]"
                        line = step.line_of(f"params.{item_name}")
                        issues.append(SpecIssue(param_path(step, item_name), problem, line))
    return issues


def _pattern_problem(name: str, value: str, pattern: str) -> str | None:
    if re.fullmatch(pattern, value):
        return None
    bad = [char for char in value if not char.isascii() or not char.isprintable()]
    if bad:
        return f"{name} {show_value(value)} contains {_describe_char(bad[0])}, which is not allowed here"
    return f"{name} {show_value(value)} is invalid: it must match {pattern}"


def _describe_char(char: str) -> str:
    code = f"U+{ord(char):04X}"
    name = unicodedata.name(char, "")
    if char == "\n":
        return "a line break"
    if char == "\x00":
        return "a NUL character"
    if unicodedata.category(char).startswith("C"):
        return f"the control character {code}"
    return f"the non-ASCII character {code} {name}".rstrip()


def check_remote_path(raw: Any) -> tuple[str | None, str | None]:
    """Validate an absolute remote path and return (normalised path, None) or (None, problem).

    Rejected: relative paths, `.` and `..` segments, empty segments (`//`),
    backslashes, control and invisible format characters (NUL, line breaks,
    bidi overrides). A single trailing `/` is the only thing normalised away,
    so the checked path is the one the spec author wrote. The problem text
    names the value and, where one exists, the normalised form to write instead.
    """
    if not isinstance(raw, str) or not raw:
        return None, "path must be a non-empty string"
    shown = show_value(raw)
    if not raw.startswith("/"):
        return None, f"path {shown} is not absolute; write the full path starting with /"
    for char in raw:
        category = unicodedata.category(char)
        if category in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"):
            return None, f"path {shown} contains {_describe_char(char)}, which is not allowed in a path"
    if "\\" in raw:
        return None, f"path {shown} contains a backslash, which is not allowed in a path"
    normalised = posixpath.normpath(raw)
    if normalised.startswith("//"):
        normalised = "/" + normalised.lstrip("/")
    body = raw[1:-1] if raw.endswith("/") and len(raw) > 1 else raw[1:]
    segments = body.split("/") if body else []
    if "" in segments:
        return None, f"path {shown} contains an empty segment (//); write it as {normalised}"
    if "." in segments:
        return None, f"path {shown} contains a '.' segment; write it as {normalised}"
    if ".." in segments:
        return None, f"path {shown} contains a '..' segment; write the target path itself, without '..'"
    return normalised, None


def glob_literal_prefix(glob: str) -> str:
    """Return the directory part of a glob before its first wildcard, for example `/srv` for `/srv/**`."""
    cut = len(glob)
    for marker in ("*", "?", "["):
        index = glob.find(marker)
        if index != -1:
            cut = min(cut, index)
    literal = glob[:cut]
    if cut == len(glob):
        return posixpath.dirname(literal) or "/"
    return literal.rsplit("/", 1)[0] or "/"
